/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>

#include "rules.h"
#include "strv.h"

typedef struct PolicyRule {
        char *name, *when;
        const Expr *expr;
        uint64_t for_, keep_firing_for, cooldown;
        Action action;

        RuleState state;
        uint64_t active_at, keep_firing_since, last_action;
        bool keep_firing_set, has_last_action;
        bool acted, held_reported, cooldown_reported; /* this firing episode */
} PolicyRule;

typedef struct PolicyCheck {
        char *name, *expr_text, *min_text, *max_text;
        const Expr *expr, *min, *max;
} PolicyCheck;

typedef struct RolloutState {
        RolloutPhase phase;
        char *version;
        uint64_t started, next;
        unsigned round, passed, failed, inconclusive;
        bool first;      /* nothing served before: there is nothing to compare with */
} RolloutState;

struct Policy {
        char *model;
        ExprEnv *env;

        PolicyRule *rules;
        size_t n_rules;
        RuleEvent *events;

        bool has_rollout;
        uint64_t interval;
        unsigned iterations, threshold, min_samples;
        NoDataPolicy on_no_data;
        PolicyCheck *checks;
        size_t n_checks;
        CheckResult *results;
        RolloutState ro;

        ExprSnapshot *baselines;
        const ExprSnapshot **baseline_ptrs;
        size_t n_baselines;

        char **targets;
        uint64_t min_interval;
};

static const char *const rule_state_table[_RULE_STATE_MAX] = {"inactive", "pending", "firing"};
static const char *const rule_decision_table[_RULE_DECISION_MAX] = {"none", "act", "cooldown", "held", "error"};
static const char *const phase_table[_ROLLOUT_PHASE_MAX] = {"idle", "probation", "promoted", "failed"};
static const char *const outcome_table[_CHECK_OUTCOME_MAX] = {"pass", "fail", "no data"};
static const char *const verdict_table[_ROUND_VERDICT_MAX] = {"pass", "fail", "inconclusive"};
static const char *const decision_table[_ROLLOUT_DECISION_MAX] = {"continue", "promote", "rollback"};

#define TABLE_TO_STRING(table, v) ((int) (v) >= 0 && (size_t) (v) < ELEMENTSOF(table) ? table[v] : NULL)

const char *rule_state_to_string(RuleState s) {
        return TABLE_TO_STRING(rule_state_table, s);
}
const char *rule_decision_to_string(RuleDecision d) {
        return TABLE_TO_STRING(rule_decision_table, d);
}
const char *rollout_phase_to_string(RolloutPhase p) {
        return TABLE_TO_STRING(phase_table, p);
}
RolloutPhase rollout_phase_from_string(const char *s) {
        for (size_t i = 0; s && i < ELEMENTSOF(phase_table); i++)
                if (streq(phase_table[i], s))
                        return (RolloutPhase) i;
        return _ROLLOUT_PHASE_INVALID;
}
const char *check_outcome_to_string(CheckOutcome o) {
        return TABLE_TO_STRING(outcome_table, o);
}
const char *round_verdict_to_string(RoundVerdict v) {
        return TABLE_TO_STRING(verdict_table, v);
}
const char *rollout_decision_to_string(RolloutDecision d) {
        return TABLE_TO_STRING(decision_table, d);
}

/* ---------------------------------------------------------------------------------------------
 * Building
 */

Policy *policy_free(Policy *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_rules; i++) {
                free(p->rules[i].name);
                free(p->rules[i].when);
                free(p->rules[i].action.profile);
                strv_free(p->rules[i].action.argv);
        }
        free(p->rules);
        free(p->events);
        for (size_t i = 0; i < p->n_checks; i++) {
                free(p->checks[i].name);
                free(p->checks[i].expr_text);
                free(p->checks[i].min_text);
                free(p->checks[i].max_text);
        }
        free(p->checks);
        free(p->results);
        free(p->ro.version);
        for (size_t i = 0; i < p->n_baselines; i++)
                expr_snapshot_done(&p->baselines[i]);
        free(p->baselines);
        free(p->baseline_ptrs);
        strv_free(p->targets);
        expr_env_free(p->env);
        free(p->model);
        free(p);
        return NULL;
}

static int perror_set(PolicyError *err, const char *what, size_t offset, const char *message) {
        if (err) {
                snprintf(err->what, sizeof(err->what), "%s", what);
                err->offset = offset;
                snprintf(err->message, sizeof(err->message), "%s", message);
        }
        return -EINVAL;
}

static int env_with_defines(const ModelConfig *m, ExprEnv **ret) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        int r;

        r = expr_env_new(&e);
        if (r < 0)
                return r;
        for (size_t i = 0; m && i < m->metrics.n_defines; i++) {
                r = expr_env_define(e, m->metrics.defines[i].name, m->metrics.defines[i].expr);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        *ret = TAKE_PTR(e);
        return 0;
}

/* What a kind of expression must evaluate to. */
static const char *check_kind_type(const char *kind, const Expr *x) {
        /* A range alone has no value: every evaluation would fail, so refuse it at load time. */
        if (expr_type(x) == EXPR_MATRIX)
                return "a range like x[5m] has no value on its own: wrap it in a function, e.g. rate(x[5m]) or "
                       "avg_over_time(x[5m])";
        if (streq(kind, "when") && expr_type(x) != EXPR_VECTOR)
                return "a rule condition must be an instant vector, e.g. x > 0 (a comparison of two numbers needs "
                       "at least one series)";
        return NULL;
}

static int compile_one(ExprEnv *e, const char *kind, const char *what, const char *text, const Expr **ret,
                       PolicyError *err) {
        ExprError xe = {};
        const char *bad;
        int r;

        r = expr_compile(e, text, ret, &xe);
        if (r < 0)
                return perror_set(err, what, xe.offset, xe.message);
        bad = check_kind_type(kind, *ret);
        if (bad)
                return perror_set(err, what, 0, bad);
        return 0;
}

static char *instance_of(const char *url) {
        const char *rest;

        if ((rest = startswith(url, "file://")))
                return strdup(rest);
        if ((rest = startswith(url, "http://")) || (rest = startswith(url, "https://")))
                return strndup(rest, strcspn(rest, "/?#"));
        return strdup(url);
}

int policy_new(const ModelConfig *m, Policy **ret, PolicyError *err) {
        _cleanup_(policy_freep) Policy *p = NULL;
        char what[128];
        size_t bad;
        ExprError xe;
        int r;

        assert_return(m && ret, -EINVAL);
        p = calloc(1, sizeof(Policy));
        if (!p)
                return -ENOMEM;
        p->model = strdup(strempty(m->name));
        if (!p->model)
                return -ENOMEM;
        r = env_with_defines(m, &p->env);
        if (r < 0)
                return r;
        if (expr_env_check_defines(p->env, &bad, &xe) < 0) {
                snprintf(what, sizeof(what), "metrics.define.%s", m->metrics.defines[bad].name);
                return perror_set(err, what, xe.offset, xe.message);
        }

        p->rules = calloc(m->n_rules + 1, sizeof(PolicyRule));
        p->events = calloc(m->n_rules + 1, sizeof(RuleEvent));
        if (!p->rules || !p->events)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_rules; i++) {
                const RuleConfig *rc = &m->rules[i];
                PolicyRule *pr = &p->rules[p->n_rules++];

                *pr = (PolicyRule){
                        .name = strdup(strempty(rc->name)),
                        .when = strdup(strempty(rc->when)),
                        .for_ = rc->for_,
                        .keep_firing_for = rc->keep_firing_for,
                        .cooldown = rc->cooldown,
                        .action = {.type = rc->action.type},
                };
                if (!pr->name || !pr->when)
                        return -ENOMEM;
                if (rc->action.profile && !(pr->action.profile = strdup(rc->action.profile)))
                        return -ENOMEM;
                if (rc->action.argv && !(pr->action.argv = strv_copy(rc->action.argv)))
                        return -ENOMEM;
                snprintf(what, sizeof(what), "rules[%zu].when", i);
                r = compile_one(p->env, "when", what, pr->when, &pr->expr, err);
                if (r < 0)
                        return r;
        }

        if (m->rollout) {
                const RolloutConfig *ro = m->rollout;

                p->has_rollout = true;
                p->interval = ro->interval;
                p->iterations = ro->iterations;
                p->threshold = ro->threshold;
                p->min_samples = ro->min_samples;
                p->on_no_data = ro->on_no_data;
                p->checks = calloc(ro->n_checks + 1, sizeof(PolicyCheck));
                p->results = calloc(ro->n_checks + 1, sizeof(CheckResult));
                if (!p->checks || !p->results)
                        return -ENOMEM;
                for (size_t i = 0; i < ro->n_checks; i++) {
                        const RolloutCheck *c = &ro->checks[i];
                        PolicyCheck *pc = &p->checks[p->n_checks++];
                        bool bounded = c->min || c->max;

                        pc->name = c->name ? strdup(c->name) : NULL;
                        if (!pc->name && asprintf(&pc->name, "check%zu", i + 1) < 0)
                                pc->name = NULL;
                        pc->expr_text = strdup(strempty(c->expr));
                        if (!pc->name || !pc->expr_text || (c->min && !(pc->min_text = strdup(c->min))) ||
                            (c->max && !(pc->max_text = strdup(c->max))))
                                return -ENOMEM;
                        snprintf(what, sizeof(what), "rollout.checks[%zu].expr", i);
                        r = compile_one(p->env, bounded ? "check" : "condition", what, pc->expr_text, &pc->expr, err);
                        if (r < 0)
                                return r;
                        if (pc->min_text) {
                                snprintf(what, sizeof(what), "rollout.checks[%zu].min", i);
                                r = compile_one(p->env, "min", what, pc->min_text, &pc->min, err);
                                if (r < 0)
                                        return r;
                        }
                        if (pc->max_text) {
                                snprintf(what, sizeof(what), "rollout.checks[%zu].max", i);
                                r = compile_one(p->env, "max", what, pc->max_text, &pc->max, err);
                                if (r < 0)
                                        return r;
                        }
                }
        }

        p->n_baselines = expr_env_n_baselines(p->env);
        p->baselines = calloc(p->n_baselines + 1, sizeof(ExprSnapshot));
        p->baseline_ptrs = calloc(p->n_baselines + 1, sizeof(ExprSnapshot *));
        if (!p->baselines || !p->baseline_ptrs)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_baselines; i++)
                p->baseline_ptrs[i] = &p->baselines[i];

        /* Targets: their instance labels, and the shortest interval for the rings. */
        p->min_interval = m->metrics.n_targets > 0 ? UINT64_MAX : 15 * USEC_PER_SEC;
        for (size_t i = 0; i < m->metrics.n_targets; i++) {
                char *inst = instance_of(m->metrics.targets[i].url);
                if (!inst || strv_consume(&p->targets, inst) < 0)
                        return -ENOMEM;
                p->min_interval = MIN(p->min_interval, m->metrics.targets[i].every ?: 15 * USEC_PER_SEC);
        }
        /* Two targets on one host:port would share an instance: use their full URLs then. */
        for (size_t i = 0; i < m->metrics.n_targets; i++)
                for (size_t j = 0; j < m->metrics.n_targets; j++)
                        if (i != j && streq(p->targets[i], p->targets[j]) &&
                            !streq(m->metrics.targets[i].url, m->metrics.targets[j].url)) {
                                char *u = strdup(m->metrics.targets[i].url);
                                if (!u)
                                        return -ENOMEM;
                                free(p->targets[i]);
                                p->targets[i] = u;
                        }

        *ret = TAKE_PTR(p);
        return 0;
}

int policy_new_store_with_interval(const Policy *p, uint64_t interval, SeriesStore **ret, char *msg, size_t msg_size) {
        SeriesStoreOptions o = {.min_interval = interval, .min_samples = p->min_samples};
        Selector *const *sel;
        size_t n;

        sel = expr_env_selectors(p->env, &n);
        return series_store_new(sel, n, &o, ret, msg, msg_size);
}

int policy_new_store(const Policy *p, SeriesStore **ret, char *msg, size_t msg_size) {
        SeriesStoreOptions o = {
                .min_interval = p->min_interval, .min_samples = p->min_samples, .targets = p->targets};
        Selector *const *sel;
        size_t n;

        sel = expr_env_selectors(p->env, &n);
        return series_store_new(sel, n, &o, ret, msg, msg_size);
}

const char *policy_target_instance(const Policy *p, size_t target) {
        return target < strv_length(p->targets) ? p->targets[target] : NULL;
}

size_t policy_n_targets(const Policy *p) {
        return strv_length(p->targets);
}

const ExprEnv *policy_env(const Policy *p) {
        return p->env;
}

/* ---------------------------------------------------------------------------------------------
 * Rules
 */

size_t policy_n_rules(const Policy *p) {
        return p->n_rules;
}

RuleState policy_rule_state(const Policy *p, size_t i) {
        return i < p->n_rules ? p->rules[i].state : _RULE_STATE_INVALID;
}

void policy_reset_rules(Policy *p) {
        for (size_t i = 0; i < p->n_rules; i++) {
                PolicyRule *r = &p->rules[i];
                r->state = RULE_INACTIVE;
                r->keep_firing_set = false;
                r->acted = r->held_reported = r->cooldown_reported = false;
        }
}

static void context_for(const Policy *p, ExprContext *c, const SeriesStore *s, uint64_t now) {
        expr_context_init(c, s, now);
        c->baselines = p->baseline_ptrs;
        c->n_baselines = p->n_baselines;
}

/* usec elapsed from a to b; a clock that went backwards counts as no time passed. */
static uint64_t elapsed(uint64_t from, uint64_t to) {
        return to > from ? to - from : 0;
}

static void rule_step(PolicyRule *r, RuleEvent *ev, bool active, uint64_t now, bool may_act) {
        ev->from = r->state;
        if (active) {
                r->keep_firing_set = false;
                if (r->state == RULE_INACTIVE) {
                        r->state = RULE_PENDING;
                        r->active_at = now;
                        r->acted = r->held_reported = r->cooldown_reported = false;
                }
                /* As Prometheus: with for: 0 the rule fires in the same evaluation. */
                if (r->state == RULE_PENDING && elapsed(r->active_at, now) >= r->for_)
                        r->state = RULE_FIRING;
        } else if (r->state == RULE_PENDING)
                r->state = RULE_INACTIVE;
        else if (r->state == RULE_FIRING) {
                if (r->keep_firing_for > 0) {
                        if (!r->keep_firing_set) {
                                r->keep_firing_since = now;
                                r->keep_firing_set = true;
                        }
                        if (elapsed(r->keep_firing_since, now) >= r->keep_firing_for)
                                r->state = RULE_INACTIVE;
                } else
                        r->state = RULE_INACTIVE;
        }
        ev->to = r->state;
        ev->active_since = r->state != RULE_INACTIVE ? r->active_at : 0;

        ev->decision = RULE_DECISION_NONE;
        if (r->state == RULE_FIRING && !r->acted) {
                bool cooling = r->has_last_action && now >= r->last_action && now - r->last_action < r->cooldown;

                if (cooling) {
                        if (!r->cooldown_reported) {
                                ev->decision = RULE_DECISION_COOLDOWN;
                                r->cooldown_reported = true;
                        }
                } else if (may_act) {
                        ev->decision = RULE_DECISION_ACT;
                        r->acted = true;
                        r->last_action = now;
                        r->has_last_action = true;
                } else if (!r->held_reported) {
                        ev->decision = RULE_DECISION_HELD;
                        r->held_reported = true;
                }
        }
}

int policy_eval_rules(Policy *p, const SeriesStore *s, uint64_t now, bool may_act, const RuleEvent **ret,
                      size_t *ret_n) {
        assert_return(p && ret && ret_n, -EINVAL);

        for (size_t i = 0; i < p->n_rules; i++) {
                PolicyRule *r = &p->rules[i];
                RuleEvent *ev = &p->events[i];
                ExprContext c;
                ExprValue v;
                int k;

                *ev = (RuleEvent){
                        .rule = i,
                        .name = r->name,
                        .expr = r->when,
                        .action = &r->action,
                        .from = r->state,
                        .to = r->state,
                        .value = NAN,
                };
                context_for(p, &c, s, now);
                k = expr_eval(r->expr, &c, &v);
                if (k < 0) {
                        if (k == -ENOMEM) {
                                expr_context_done(&c);
                                return k;
                        }
                        ev->decision = RULE_DECISION_ERROR;
                        snprintf(ev->message, sizeof(ev->message), "%s", c.err.message);
                        ev->active_since = r->state != RULE_INACTIVE ? r->active_at : 0;
                } else {
                        ev->n_values = v.type == EXPR_VECTOR ? v.n : 1;
                        ev->value = v.type == EXPR_VECTOR ? (v.n > 0 ? v.samples[0].value : NAN) : v.scalar;
                        rule_step(r, ev, v.type == EXPR_VECTOR ? v.n > 0 : v.scalar != 0, now, may_act);
                }
                expr_context_done(&c);
        }
        *ret = p->events;
        *ret_n = p->n_rules;
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Baselines
 */

size_t policy_n_baselines(const Policy *p) {
        return p->n_baselines;
}

const char *policy_baseline_key(const Policy *p, size_t i) {
        return expr_env_baseline_key(p->env, i);
}

const ExprSnapshot *policy_baseline(const Policy *p, size_t i) {
        return i < p->n_baselines ? &p->baselines[i] : NULL;
}

void policy_clear_baselines(Policy *p) {
        for (size_t i = 0; i < p->n_baselines; i++)
                expr_snapshot_done(&p->baselines[i]);
}

int policy_snapshot_baselines(Policy *p, const SeriesStore *s, uint64_t now) {
        ExprSnapshot *fresh;
        int r = 0;

        fresh = calloc(p->n_baselines + 1, sizeof(ExprSnapshot));
        if (!fresh)
                return -ENOMEM;
        for (size_t i = 0; i < p->n_baselines; i++) {
                ExprContext c;
                ExprValue v;

                /* baseline() cannot nest, so the arguments never read the old snapshot. */
                expr_context_init(&c, s, now);
                r = expr_eval(expr_env_baseline_arg(p->env, i), &c, &v);
                if (r >= 0 && (v.type == EXPR_SCALAR ? !isnan(v.scalar) : v.n > 0))
                        r = expr_snapshot_from_value(&v, &fresh[i]);
                else if (r != -ENOMEM)
                        r = 0; /* no data, or an evaluation error: no baseline */
                expr_context_done(&c);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                for (size_t i = 0; i < p->n_baselines; i++)
                        expr_snapshot_done(&fresh[i]);
                free(fresh);
                return r;
        }
        policy_clear_baselines(p);
        for (size_t i = 0; i < p->n_baselines; i++)
                p->baselines[i] = fresh[i];
        free(fresh);
        return (int) p->n_baselines;
}

/* ---------------------------------------------------------------------------------------------
 * Rollout
 */

bool policy_has_rollout(const Policy *p) {
        return p->has_rollout;
}

RolloutPhase policy_rollout_phase(const Policy *p) {
        return p->ro.phase;
}

const char *policy_rollout_version(const Policy *p) {
        return p->ro.version;
}

uint64_t policy_rollout_next(const Policy *p) {
        return p->ro.phase == ROLLOUT_PROBATION ? p->ro.next : USEC_INFINITY;
}

int policy_rollout_start(Policy *p, const char *version, uint64_t now) {
        char *v;

        assert_return(p && version, -EINVAL);
        v = strdup(version);
        if (!v)
                return -ENOMEM;
        free(p->ro.version);
        p->ro = (RolloutState){.version = v, .started = now};
        if (!p->has_rollout) {
                p->ro.phase = ROLLOUT_PROMOTED;
                return 0;
        }
        p->ro.phase = ROLLOUT_PROBATION;
        p->ro.next = now + p->interval;
        return 1;
}

void policy_rollout_set_first(Policy *p, bool first) {
        p->ro.first = first;
}

void policy_rollout_abort(Policy *p) {
        if (p->ro.phase == ROLLOUT_PROBATION)
                p->ro.phase = ROLLOUT_IDLE;
}

/* A bound must be one number: a scalar, or a vector of one element. */
static int eval_bound(const Expr *x, ExprContext *c, double *ret, char *why, size_t why_size, const char *which) {
        ExprValue v;
        int r;

        r = expr_eval(x, c, &v);
        if (r < 0) {
                snprintf(why, why_size, "%s: %.160s", which, c->err.message);
                return r == -ENOMEM ? r : -EINVAL;
        }
        if (v.type == EXPR_SCALAR) {
                *ret = v.scalar;
                return isnan(v.scalar) ? 0 : 1;
        }
        if (v.n == 0)
                return 0;
        if (v.n > 1) {
                snprintf(why, why_size, "%s gives %zu series, expected one number", which, v.n);
                return -EINVAL;
        }
        *ret = v.samples[0].value;
        return isnan(*ret) ? 0 : 1;
}

static int run_check(Policy *p, const PolicyCheck *pc, CheckResult *res, const SeriesStore *s, uint64_t now) {
        ExprContext c;
        char num[64];
        int r = 0;

        *res = (CheckResult){.name = pc->name, .expr = pc->expr_text, .value = NAN, .min = NAN, .max = NAN};
        context_for(p, &c, s, now);

        res->samples = expr_samples_since(pc->expr, &c, p->ro.started);
        if (p->min_samples > 0 && res->samples != SIZE_MAX && res->samples < p->min_samples) {
                res->outcome = CHECK_NO_DATA;
                snprintf(res->reason, sizeof(res->reason), "%zu of %u samples since the activation", res->samples,
                         p->min_samples);
                goto done;
        }

        if (!pc->min && !pc->max) {
                ExprVerdict v;

                r = expr_eval_condition(pc->expr, &c, &v, &res->value);
                if (r < 0) {
                        if (r == -ENOMEM)
                                goto done;
                        res->outcome = CHECK_FAIL;
                        snprintf(res->reason, sizeof(res->reason), "%.180s", c.err.message);
                        r = 0;
                        goto done;
                }
                res->outcome = v == EXPR_TRUE ? CHECK_PASS : v == EXPR_FALSE ? CHECK_FAIL : CHECK_NO_DATA;
                if (v == EXPR_FALSE)
                        snprintf(res->reason, sizeof(res->reason), "condition does not hold");
                else if (v == EXPR_NO_DATA)
                        snprintf(res->reason, sizeof(res->reason), "no data");
                goto done;
        }

        {
                ExprValue v;
                bool any = false;
                int k;

                if (pc->min) {
                        k = eval_bound(pc->min, &c, &res->min, res->reason, sizeof(res->reason), "min");
                        if (k < 0) {
                                r = k == -ENOMEM ? k : 0;
                                res->outcome = CHECK_FAIL;
                                goto done;
                        }
                        if (k == 0 && p->ro.first && expr_has_baseline(pc->min)) {
                                /* The model's first version: no previous one to regress from. The
                                 * check has nothing to say; the others decide (Flagger does not
                                 * analyse a first deployment either). */
                                res->outcome = CHECK_PASS;
                                snprintf(res->reason, sizeof(res->reason),
                                         "no previous version to compare with (first activation)");
                                goto done;
                        }
                        if (k == 0) {
                                res->outcome = CHECK_NO_DATA;
                                snprintf(res->reason, sizeof(res->reason), "min (%s) has no data", pc->min_text);
                        }
                }
                if (pc->max) {
                        k = eval_bound(pc->max, &c, &res->max, res->reason, sizeof(res->reason), "max");
                        if (k < 0) {
                                r = k == -ENOMEM ? k : 0;
                                res->outcome = CHECK_FAIL;
                                goto done;
                        }
                        if (k == 0 && p->ro.first && expr_has_baseline(pc->max)) {
                                res->outcome = CHECK_PASS;
                                snprintf(res->reason, sizeof(res->reason),
                                         "no previous version to compare with (first activation)");
                                goto done;
                        }
                        if (k == 0) {
                                res->outcome = CHECK_NO_DATA;
                                snprintf(res->reason, sizeof(res->reason), "max (%s) has no data", pc->max_text);
                        }
                }

                k = expr_eval(pc->expr, &c, &v);
                if (k < 0) {
                        r = k == -ENOMEM ? k : 0;
                        res->outcome = CHECK_FAIL;
                        snprintf(res->reason, sizeof(res->reason), "%.180s", c.err.message);
                        goto done;
                }
                if (res->outcome == CHECK_NO_DATA) {
                        res->value = v.type == EXPR_SCALAR ? v.scalar : v.n > 0 ? v.samples[0].value : NAN;
                        goto done;
                }
                /* Every element must lie within the bounds. NaN (e.g. 0/0: no traffic) is no data. */
                res->outcome = CHECK_PASS;
                for (size_t i = 0; i < (v.type == EXPR_SCALAR ? 1 : v.n); i++) {
                        double x = v.type == EXPR_SCALAR ? v.scalar : v.samples[i].value;

                        if (isnan(x))
                                continue;
                        if (!any)
                                res->value = x;
                        any = true;
                        if ((pc->min && x < res->min) || (pc->max && x > res->max)) {
                                res->value = x;
                                res->outcome = CHECK_FAIL;
                                expr_format_short(x, num, sizeof(num));
                                if (pc->min && x < res->min) {
                                        char b[64];
                                        expr_format_short(res->min, b, sizeof(b));
                                        snprintf(res->reason, sizeof(res->reason), "%s below min %s", num, b);
                                } else {
                                        char b[64];
                                        expr_format_short(res->max, b, sizeof(b));
                                        snprintf(res->reason, sizeof(res->reason), "%s above max %s", num, b);
                                }
                                break;
                        }
                }
                if (!any) {
                        res->outcome = CHECK_NO_DATA;
                        snprintf(res->reason, sizeof(res->reason), "no data");
                }
        }
done:
        expr_context_done(&c);
        return r;
}

int policy_rollout_eval(Policy *p, const SeriesStore *s, uint64_t now, RolloutRound *ret) {
        RoundVerdict verdict = ROUND_PASS;
        int r;

        assert_return(p && ret, -EINVAL);
        *ret = (RolloutRound){.version = p->ro.version, .iterations = p->iterations, .threshold = p->threshold};
        if (p->ro.phase != ROLLOUT_PROBATION || now < p->ro.next)
                return 0;

        for (size_t i = 0; i < p->n_checks; i++) {
                CheckResult *res = &p->results[i];
                CheckOutcome o;

                r = run_check(p, &p->checks[i], res, s, now);
                if (r < 0)
                        return r;
                o = res->outcome;
                if (o == CHECK_NO_DATA)
                        o = p->on_no_data == NO_DATA_FAIL ? CHECK_FAIL
                                : p->on_no_data == NO_DATA_PASS ? CHECK_PASS : CHECK_NO_DATA;
                if (o == CHECK_FAIL)
                        verdict = ROUND_FAIL;
                else if (o == CHECK_NO_DATA && verdict == ROUND_PASS)
                        verdict = ROUND_INCONCLUSIVE;
        }

        p->ro.round++;
        switch (verdict) {
        case ROUND_PASS:
                p->ro.passed++;
                break;
        case ROUND_FAIL:
                p->ro.failed++;
                break;
        case ROUND_INCONCLUSIVE:
                p->ro.inconclusive++;
                /* Without data a probation could last forever. At most `iterations` inconclusive
                 * rounds are tolerated (as long as a whole clean analysis); each one beyond counts
                 * as failed. */
                if (p->ro.inconclusive > p->iterations) {
                        p->ro.failed++;
                        verdict = ROUND_FAIL;
                        snprintf(ret->reason, sizeof(ret->reason),
                                 "more than %u inconclusive rounds count as failed", p->iterations);
                }
                break;
        default:
                break;
        }

        ret->evaluated = true;
        ret->round = p->ro.round;
        ret->verdict = verdict;
        ret->passed = p->ro.passed;
        ret->failed = p->ro.failed;
        ret->inconclusive = p->ro.inconclusive;
        ret->checks = p->results;
        ret->n_checks = p->n_checks;

        /* Flagger's semantics: roll back when failed checks reach the threshold. */
        if (p->ro.failed >= p->threshold) {
                ret->decision = ROLLOUT_ROLLBACK;
                p->ro.phase = ROLLOUT_FAILED;
                snprintf(ret->reason, sizeof(ret->reason), "%u failed round%s (threshold %u)", p->ro.failed,
                         p->ro.failed == 1 ? "" : "s", p->threshold);
        } else if (p->ro.passed >= p->iterations) {
                ret->decision = ROLLOUT_PROMOTE;
                p->ro.phase = ROLLOUT_PROMOTED;
                snprintf(ret->reason, sizeof(ret->reason), "%u good rounds", p->ro.passed);
        } else {
                ret->decision = ROLLOUT_CONTINUE;
                p->ro.next = now + p->interval;
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Persistence
 */

static json_t *number_to_json(double v) {
        char b[64];

        if (isfinite(v))
                return json_real(v);
        expr_format_number(v, b, sizeof(b));
        return json_string(b);
}

static int number_from_json(const json_t *j, double *ret) {
        if (json_is_number(j)) {
                *ret = json_number_value(j);
                return 0;
        }
        if (json_is_string(j)) {
                const char *s = json_string_value(j);
                if (streq(s, "NaN"))
                        *ret = NAN;
                else if (streq(s, "+Inf"))
                        *ret = INFINITY;
                else if (streq(s, "-Inf"))
                        *ret = -INFINITY;
                else
                        return -EINVAL;
                return 0;
        }
        return -EINVAL;
}

static json_t *snapshot_to_json(const char *key, const ExprSnapshot *s) {
        json_t *o = json_object(), *samples = json_array();

        if (!o || !samples) {
                json_decref(o);
                json_decref(samples);
                return NULL;
        }
        json_object_set_new(o, "expr", json_string(key));
        json_object_set_new(o, "present", json_boolean(s->present));
        for (size_t i = 0; s->present && i < s->n; i++) {
                json_t *smp = json_object(), *labels = json_object();
                if (!smp || !labels) {
                        json_decref(smp);
                        json_decref(labels);
                        json_decref(o);
                        json_decref(samples);
                        return NULL;
                }
                for (size_t k = 0; k < s->samples[i].labels.n; k++)
                        json_object_set_new(labels, s->samples[i].labels.pairs[k].name,
                                            json_string(s->samples[i].labels.pairs[k].value));
                json_object_set_new(smp, "labels", labels);
                json_object_set_new(smp, "value", number_to_json(s->samples[i].value));
                json_array_append_new(samples, smp);
        }
        json_object_set_new(o, "samples", samples);
        return o;
}

json_t *policy_state_to_json(const Policy *p) {
        json_t *root = json_object(), *bl = json_array(), *rules = json_array();

        if (!root || !bl || !rules)
                goto fail;
        if (p->ro.phase != ROLLOUT_IDLE && p->ro.version) {
                json_t *ro = json_pack("{s:s, s:s, s:I, s:i, s:i, s:i, s:i}", "version", p->ro.version, "phase",
                                       rollout_phase_to_string(p->ro.phase), "started", (json_int_t) p->ro.started,
                                       "round", (int) p->ro.round, "passed", (int) p->ro.passed, "failed",
                                       (int) p->ro.failed, "inconclusive", (int) p->ro.inconclusive);
                if (!ro)
                        goto fail;
                if (p->ro.first)
                        json_object_set_new(ro, "first", json_true());
                json_object_set_new(root, "rollout", ro);
        } else
                json_object_set_new(root, "rollout", json_null());
        for (size_t i = 0; i < p->n_baselines; i++) {
                json_t *o = snapshot_to_json(policy_baseline_key(p, i), &p->baselines[i]);
                if (!o)
                        goto fail;
                json_array_append_new(bl, o);
        }
        json_object_set_new(root, "baselines", bl);
        bl = NULL;
        for (size_t i = 0; i < p->n_rules; i++) {
                if (!p->rules[i].has_last_action)
                        continue;
                json_array_append_new(rules, json_pack("{s:s, s:I}", "name", p->rules[i].name, "last_action",
                                                       (json_int_t) p->rules[i].last_action));
        }
        json_object_set_new(root, "rules", rules);
        return root;
fail:
        json_decref(root);
        json_decref(bl);
        json_decref(rules);
        return NULL;
}

static int snapshot_from_json(const json_t *o, ExprSnapshot *ret) {
        const json_t *samples = json_object_get(o, "samples");
        ExprSample *tmp = NULL;
        LabelPair *pairs = NULL;
        ExprValue v = {.type = EXPR_VECTOR};
        size_t n, total = 0, k = 0;
        int r;

        if (!json_is_true(json_object_get(o, "present"))) {
                *ret = (ExprSnapshot){};
                return 0;
        }
        if (!json_is_array(samples) || json_array_size(samples) > 100000)
                return -EINVAL;
        n = json_array_size(samples);
        for (size_t i = 0; i < n; i++) {
                const json_t *l = json_object_get(json_array_get(samples, i), "labels");
                if (!json_is_object(l) || json_object_size(l) > 256)
                        return -EINVAL;
                total += json_object_size(l);
        }
        tmp = calloc(n + 1, sizeof(ExprSample));
        pairs = calloc(total + 1, sizeof(LabelPair));
        if (!tmp || !pairs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                const json_t *smp = json_array_get(samples, i), *l = json_object_get(smp, "labels"), *val;
                const char *key;
                LabelPair *lp = pairs + k;
                size_t m = 0;

                json_object_foreach((json_t *) l, key, val) {
                        if (!json_is_string(val)) {
                                r = -EINVAL;
                                goto out;
                        }
                        lp[m++] = (LabelPair){key, json_string_value(val)};
                }
                /* jansson keeps insertion order; our label sets are sorted by name. */
                for (size_t a = 1; a < m; a++)
                        for (size_t b = a; b > 0 && strcmp(lp[b - 1].name, lp[b].name) > 0; b--) {
                                LabelPair t = lp[b];
                                lp[b] = lp[b - 1];
                                lp[b - 1] = t;
                        }
                k += m;
                tmp[i].labels = (LabelSet){.pairs = lp, .n = m};
                r = number_from_json(json_object_get(smp, "value"), &tmp[i].value);
                if (r < 0)
                        goto out;
        }
        v.samples = tmp;
        v.n = n;
        r = expr_snapshot_from_value(&v, ret);
out:
        free(tmp);
        free(pairs);
        return r;
}

int policy_state_from_json(Policy *p, const json_t *j, uint64_t now) {
        const json_t *ro, *bl, *rules, *o;
        size_t i;

        assert_return(p, -EINVAL);
        if (!json_is_object(j))
                return -EINVAL;

        ro = json_object_get(j, "rollout");
        if (json_is_object(ro)) {
                const char *version = json_string_value(json_object_get(ro, "version"));
                RolloutPhase ph = rollout_phase_from_string(json_string_value(json_object_get(ro, "phase")));
                json_int_t started = json_integer_value(json_object_get(ro, "started"));
                char *v;

                if (!version || ph < 0)
                        return -EINVAL;
                v = strdup(version);
                if (!v)
                        return -ENOMEM;
                free(p->ro.version);
                p->ro = (RolloutState){
                        .phase = ph,
                        .version = v,
                        /* A clock that went backwards (another boot of a boot-time clock) cannot
                         * say how old the data is: count samples from now on. */
                        .started = started > 0 && (uint64_t) started <= now ? (uint64_t) started : now,
                        .round = (unsigned) json_integer_value(json_object_get(ro, "round")),
                        .passed = (unsigned) json_integer_value(json_object_get(ro, "passed")),
                        .failed = (unsigned) json_integer_value(json_object_get(ro, "failed")),
                        .inconclusive = (unsigned) json_integer_value(json_object_get(ro, "inconclusive")),
                        .first = json_is_true(json_object_get(ro, "first")),
                };
                if (ph == ROLLOUT_PROBATION && !p->has_rollout)
                        p->ro.phase = ROLLOUT_PROMOTED; /* the rollout section was removed meanwhile */
                p->ro.next = now + p->interval;
        }

        bl = json_object_get(j, "baselines");
        json_array_foreach((json_t *) bl, i, o) {
                const char *key = json_string_value(json_object_get(o, "expr"));

                if (!key)
                        continue;
                for (size_t b = 0; b < p->n_baselines; b++)
                        if (streq(key, policy_baseline_key(p, b))) {
                                ExprSnapshot s;
                                int r = snapshot_from_json(o, &s);
                                if (r < 0)
                                        return r;
                                expr_snapshot_done(&p->baselines[b]);
                                p->baselines[b] = s;
                        }
        }

        rules = json_object_get(j, "rules");
        json_array_foreach((json_t *) rules, i, o) {
                const char *name = json_string_value(json_object_get(o, "name"));
                const json_t *la = json_object_get(o, "last_action");

                if (!name || !json_is_integer(la) || json_integer_value(la) < 0)
                        continue;
                for (size_t k = 0; k < p->n_rules; k++)
                        if (streq(p->rules[k].name, name)) {
                                p->rules[k].last_action = (uint64_t) json_integer_value(la);
                                p->rules[k].has_last_action = true;
                        }
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The config validator
 */

int policies_validate_expr(const char *kind, const char *text, size_t *ret_offset, char *msg, size_t msg_size,
                           const ModelConfig *m) {
        _cleanup_(expr_env_freep) ExprEnv *e = NULL;
        ExprError xe = {};
        const Expr *x;
        const char *bad;
        int r;

        assert_return(kind && text && ret_offset, -EINVAL);
        r = env_with_defines(m, &e);
        if (r < 0) {
                snprintf(msg, msg_size, "out of memory");
                *ret_offset = 0;
                return r;
        }
        if (streq(kind, "define")) {
                for (size_t i = 0; m && i < m->metrics.n_defines; i++)
                        if (m->metrics.defines[i].expr == text) {
                                r = expr_env_compile_define(e, i, &xe);
                                if (r < 0) {
                                        *ret_offset = xe.offset;
                                        snprintf(msg, msg_size, "%s", xe.message);
                                        return r;
                                }
                                return 0;
                        }
                /* Not one of m's definitions (a caller checking a text alone): compile it plainly. */
        }
        r = expr_compile(e, text, &x, &xe);
        if (r < 0) {
                *ret_offset = xe.offset;
                snprintf(msg, msg_size, "%s", xe.message);
                return r;
        }
        bad = check_kind_type(kind, x);
        if (bad) {
                *ret_offset = 0;
                snprintf(msg, msg_size, "%s", bad);
                return -EINVAL;
        }
        return 0;
}

void policies_install_config_validator(void) {
        config_set_expr_validator(policies_validate_expr);
}
