/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Decisions, with an explicit clock: a compiled Policy per model (from its ModelConfig) holds
 *
 *   - the rules, Prometheus alerting-rule shaped: inactive → pending → firing after `for`,
 *     firing held `keep_firing_for` after the condition stops, and an action at most once per
 *     firing episode, not sooner than `cooldown` after the rule's previous action;
 *   - the rollout analysis (Flagger/Argo shaped) of the version on probation;
 *   - the baseline snapshot: the values of every baseline(x) argument taken at the activation,
 *     so checks like `accuracy >= baseline(accuracy) - 0.01` compare with the previous version.
 *
 * Nothing here does I/O, logs, or keeps time: the caller passes `now` (usec) and acts on what the
 * functions return. State that must survive a restart (probation progress, the baseline
 * snapshot, each rule's last action) serialises to JSON with policy_state_to_json(); times in it
 * are the caller's clock, so use one that survives a reboot (CLOCK_REALTIME) for those.
 *
 * Typical use by the daemon:
 *
 *   policy_new(model_config, &p, &err);          // at config load (also validates)
 *   policy_new_store(p, &store, msg, size);      // ring buffers sized for p's ranges
 *   every scrape:   series_store_begin_scrape / expfmt_parse / series_store_end_scrape
 *   every eval:     policy_eval_rules(p, store, now, !held, &events, &n)  → log, act on ACT
 *   activation:     policy_snapshot_baselines(p, store, now)   (before the switch!)
 *                   series_store_clear(store)                  (optional: judge only new data)
 *                   policy_rollout_start(p, version, now)      → timer at policy_rollout_next(p)
 *   at that timer:  policy_rollout_eval(p, store, now, &round) → log; PROMOTE or ROLLBACK ends it
 *   after each of these: persist policy_state_to_json(p) into state.json
 *   at start-up:    policy_state_from_json(p, saved, now)
 */

#include <jansson.h>

#include "config.h"
#include "expr.h"
#include "series.h"

typedef struct Policy Policy;

typedef struct PolicyError {
        char what[128];   /* where: "metrics.define.acc", "rules[0].when", "rollout.checks[1].min" */
        size_t offset;    /* byte offset into that expression */
        char message[256];
} PolicyError;

int policy_new(const ModelConfig *m, Policy **ret, PolicyError *err);
Policy *policy_free(Policy *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Policy *, policy_free);

/* A store for this policy's selectors, rings sized by the longest range and the shortest scrape
 * interval of the model's targets, one `instance` per target (host:port, or the file path). */
int policy_new_store(const Policy *p, SeriesStore **ret, char *msg, size_t msg_size);
/* The same with an explicit sample interval and no targets (policy test, tests). */
int policy_new_store_with_interval(const Policy *p, uint64_t interval, SeriesStore **ret, char *msg,
                                   size_t msg_size);
const char *policy_target_instance(const Policy *p, size_t target);
size_t policy_n_targets(const Policy *p) _pure_;
const ExprEnv *policy_env(const Policy *p) _pure_;

/* ---------------------------------------------------------------------------------------------
 * Rules
 */

typedef enum RuleState {
        RULE_INACTIVE,
        RULE_PENDING,
        RULE_FIRING,
        _RULE_STATE_MAX,
        _RULE_STATE_INVALID = -EINVAL,
} RuleState;

typedef enum RuleDecision {
        RULE_DECISION_NONE,
        RULE_DECISION_ACT,      /* run the action now (recorded as done: cooldown starts) */
        RULE_DECISION_COOLDOWN, /* would act, but the rule acted less than `cooldown` ago (reported once) */
        RULE_DECISION_HELD,     /* would act, but the caller said it may not (reported once) */
        RULE_DECISION_ERROR,    /* the condition could not be evaluated; the state is unchanged */
        _RULE_DECISION_MAX,
        _RULE_DECISION_INVALID = -EINVAL,
} RuleDecision;

const char *rule_state_to_string(RuleState s) _const_;
const char *rule_decision_to_string(RuleDecision d) _const_;

typedef struct RuleEvent {
        size_t rule;             /* index in the model's rules */
        const char *name;
        const char *expr;        /* the `when` text as written */
        const Action *action;    /* the Policy's copy */
        RuleState from, to;      /* equal when nothing changed */
        RuleDecision decision;
        double value;            /* first element of the `when` result; NaN when empty */
        size_t n_values;         /* elements in the `when` result */
        uint64_t active_since;   /* when the condition became true (pending/firing) */
        char message[256];       /* RULE_DECISION_ERROR: what went wrong */
} RuleEvent;

/* Evaluate every rule at now. may_act=false (the model is held): transitions are still made and
 * reported, but no action is recorded as done; once acting is allowed again and the rule still
 * fires, ACT comes then. Returns an array of one event per rule, owned by the policy and valid
 * until the next call. */
int policy_eval_rules(Policy *p, const SeriesStore *s, uint64_t now, bool may_act, const RuleEvent **ret,
                      size_t *ret_n);
/* Every rule back to inactive (e.g. after a rollback); last actions, and so cooldowns, are kept. */
void policy_reset_rules(Policy *p);
size_t policy_n_rules(const Policy *p) _pure_;
RuleState policy_rule_state(const Policy *p, size_t i) _pure_;

/* ---------------------------------------------------------------------------------------------
 * Baselines
 */

/* Evaluate every baseline(x) argument at now and keep the values; call it at an activation,
 * before the new version serves (the store then holds the previous version's data). An
 * argument without data is kept as "no data". Returns the number of arguments. */
int policy_snapshot_baselines(Policy *p, const SeriesStore *s, uint64_t now);
void policy_clear_baselines(Policy *p);
size_t policy_n_baselines(const Policy *p) _pure_;
const char *policy_baseline_key(const Policy *p, size_t i);
const ExprSnapshot *policy_baseline(const Policy *p, size_t i);

/* ---------------------------------------------------------------------------------------------
 * Rollout analysis
 */

typedef enum RolloutPhase {
        ROLLOUT_IDLE,
        ROLLOUT_PROBATION,
        ROLLOUT_PROMOTED,
        ROLLOUT_FAILED,
        _ROLLOUT_PHASE_MAX,
        _ROLLOUT_PHASE_INVALID = -EINVAL,
} RolloutPhase;

typedef enum CheckOutcome {
        CHECK_PASS,
        CHECK_FAIL,
        CHECK_NO_DATA,           /* turned into pass/fail/inconclusive by on_no_data */
        _CHECK_OUTCOME_MAX,
} CheckOutcome;

typedef enum RoundVerdict {
        ROUND_PASS,
        ROUND_FAIL,
        ROUND_INCONCLUSIVE,
        _ROUND_VERDICT_MAX,
} RoundVerdict;

typedef enum RolloutDecision {
        ROLLOUT_CONTINUE,
        ROLLOUT_PROMOTE,
        ROLLOUT_ROLLBACK,        /* and quarantine the version */
        _ROLLOUT_DECISION_MAX,
} RolloutDecision;

const char *rollout_phase_to_string(RolloutPhase p) _const_;
RolloutPhase rollout_phase_from_string(const char *s) _pure_;
const char *check_outcome_to_string(CheckOutcome o) _const_;
const char *round_verdict_to_string(RoundVerdict v) _const_;
const char *rollout_decision_to_string(RolloutDecision d) _const_;

typedef struct CheckResult {
        const char *name;
        const char *expr;        /* as written */
        CheckOutcome outcome;    /* before on_no_data */
        double value;            /* first value of expr (NaN: none) */
        double min, max;         /* evaluated bounds, NaN when not given or unknown */
        size_t samples;          /* for min_samples: SIZE_MAX when the check reads no series */
        char reason[192];        /* why it failed or had no data */
} CheckResult;

typedef struct RolloutRound {
        bool evaluated;          /* false: nothing on probation, or the round is not due */
        const char *version;
        unsigned round;          /* 1-based */
        RoundVerdict verdict;    /* after on_no_data and the inconclusive bound */
        RolloutDecision decision;
        unsigned passed, failed, inconclusive; /* totals after this round */
        unsigned iterations, threshold;
        const CheckResult *checks; /* owned by the policy, valid until the next call */
        size_t n_checks;
        char reason[192];        /* for the decision, one line */
} RolloutRound;

bool policy_has_rollout(const Policy *p) _pure_;
/* Put version on probation at now: the first round is due one interval later. Returns 1 when
 * probation started, 0 when the model has no rollout section (promoted at once). */
int policy_rollout_start(Policy *p, const char *version, uint64_t now);
/* The version on probation is the model's first (nothing served before it): checks whose bound
 * uses baseline() pass, saying so, instead of having no data. Persisted with the state. */
void policy_rollout_set_first(Policy *p, bool first);
/* End a probation without a verdict (the operator rolled back or promoted by hand). */
void policy_rollout_abort(Policy *p);
RolloutPhase policy_rollout_phase(const Policy *p) _pure_;
const char *policy_rollout_version(const Policy *p) _pure_;
/* When the next round is due (usec), USEC_INFINITY when nothing is on probation. */
uint64_t policy_rollout_next(const Policy *p) _pure_;
/* Run the round if due (rounds missed while the daemon was down are not replayed: one round,
 * then the next one interval later). */
int policy_rollout_eval(Policy *p, const SeriesStore *s, uint64_t now, RolloutRound *ret);

/* ---------------------------------------------------------------------------------------------
 * Persistence and the config hook
 */

/* {"rollout": {...} | null, "baselines": [...], "rules": [{"name", "last_action"}]} */
json_t *policy_state_to_json(const Policy *p);
/* Restores what matches this policy (baselines by expression text, rules by name); a rollout in
 * probation continues with its counters, its next round one interval after now. */
int policy_state_from_json(Policy *p, const json_t *j, uint64_t now);

/* The ConfigExprValidator (config.h): kinds "define", "when", "check", "condition", "min", "max". */
int policies_validate_expr(const char *kind, const char *text, size_t *ret_offset, char *msg, size_t msg_size,
                           const ModelConfig *m);
void policies_install_config_validator(void);
