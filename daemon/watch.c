/* SPDX-License-Identifier: Apache-2.0 */

/* Scraping, rules and probation per model: the daemon side of policies/ (see watch.h). */

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sys/wait.h>
#include <time.h>

#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "parse-util.h"
#include "scrape.h"
#include "serve.h"
#include "stats.h"
#include "store-layout.h"
#include "strv.h"
#include "watch.h"

/* Rules of a model without scrape targets still run (on constant or absent data). */
#define WATCH_EVAL_INTERVAL (15 * USEC_PER_SEC)
/* How soon a decision that found the model busy is tried again. */
#define WATCH_RETRY (2 * USEC_PER_SEC)
/* An exec action is a hook (notify someone, restart something): it gets this long. */
#define EXEC_ACTION_TIMEOUT (10 * 60 * USEC_PER_SEC)
#define EXEC_ACTIONS_MAX    4
/* Series stored per model (referenced by a policy), and remembered as not referenced. With the
 * ring sizes from the policy's longest range these bound the store's memory (logged at start). */
#define WATCH_MAX_SERIES    1024
#define WATCH_MAX_IGNORED   1024
#define WATCH_MEMORY_BUDGET (16 * MIB)

typedef struct Watch Watch;
typedef struct ExecAction ExecAction;

struct ExecAction {
        Watch *watch;
        ExecAction *next;
        char *rule;
        sd_event_source *child, *timeout;
};

typedef struct RuleExtra {
        bool pending; /* ACT decided while the model was busy: run when idle */
        bool error_reported;
} RuleExtra;

struct Watch {
        Model *model;
        Policy *policy;
        SeriesStore *store;
        Scraper **scrapers;
        size_t n_scrapers;
        RuleExtra *rules;
        size_t n_rules;
        sd_event_source *eval_timer, *rollout_timer;
        ExecAction *execs;
        unsigned n_execs;

        char *baseline_version; /* the activation the baseline snapshot was taken for */
        /* Probation */
        char *from; /* the version the one on probation replaced */
        ActivationKind kind;
        bool rollback_pending; /* the analysis failed; the rollback waits for an idle model */
        char *rollback_reason, *rollback_rule;
        bool paused_reported;

        /* What this watch adds to the totals (see below). */
        bool counted;
        bool *up; /* per target: the last scrape worked */
        size_t series;
        uint64_t memory_used, memory_bound;
        unsigned n_alerting; /* rules pending or firing */
        Watch *alert_prev, *alert_next;
};

/* Totals over all watches, kept up to date where things change, so that the daemon's figures
 * (written every 15 s) need not visit a thousand models whose memory is cold: that visit cost
 * tens of milliseconds of cache and TLB misses per file. One daemon, one set of totals. */
static WatchTotals totals;
static Watch *alerting; /* watches with a pending or firing rule */

void watch_totals(WatchTotals *ret) {
        *ret = totals;
}

void watch_foreach_alert(WatchAlertFn fn, void *userdata) {
        for (Watch *w = alerting; w; w = w->alert_next)
                for (size_t i = 0; i < w->n_rules; i++) {
                        RuleState s = policy_rule_state(w->policy, i);
                        if (s == RULE_PENDING || s == RULE_FIRING)
                                fn(w->model, w->model->config->rules[i].name, s, userdata);
                }
}

static void totals_rule(Watch *w, RuleState from, RuleState to) {
        bool was = from != RULE_INACTIVE, is = to != RULE_INACTIVE;

        if (!w->counted || from == to || from < 0 || to < 0)
                return;
        totals.rules[from]--;
        totals.rules[to]++;
        if (was == is)
                return;
        if (is && w->n_alerting++ == 0) {
                w->alert_prev = NULL;
                w->alert_next = alerting;
                if (alerting)
                        alerting->alert_prev = w;
                alerting = w;
        } else if (!is && --w->n_alerting == 0) {
                if (w->alert_prev)
                        w->alert_prev->alert_next = w->alert_next;
                else
                        alerting = w->alert_next;
                if (w->alert_next)
                        w->alert_next->alert_prev = w->alert_prev;
                w->alert_prev = w->alert_next = NULL;
        }
}

static void totals_store(Watch *w) {
        SeriesStoreStats st;

        if (!w->counted)
                return;
        series_store_stats(w->store, &st);
        totals.series = totals.series - w->series + st.series;
        totals.memory_used = totals.memory_used - w->memory_used + st.memory_used;
        w->series = st.series;
        w->memory_used = st.memory_used;
}

static void totals_add(Watch *w) {
        SeriesStoreStats st;

        series_store_stats(w->store, &st);
        w->counted = true;
        totals.rules[RULE_INACTIVE] += w->n_rules;
        totals.targets += w->n_scrapers;
        w->memory_bound = st.memory_bound;
        totals.memory_bound += st.memory_bound;
        totals_store(w);
}

static void totals_remove(Watch *w) {
        if (!w->counted)
                return;
        for (size_t i = 0; i < w->n_rules; i++)
                totals_rule(w, policy_rule_state(w->policy, i), RULE_INACTIVE);
        totals.rules[RULE_INACTIVE] -= w->n_rules;
        totals.targets -= w->n_scrapers;
        for (size_t i = 0; i < w->n_scrapers; i++)
                totals.targets_up -= w->up[i];
        totals.series -= w->series;
        totals.memory_used -= w->memory_used;
        totals.memory_bound -= w->memory_bound;
        w->counted = false;
}

/* Every rule back to inactive (policy_reset_rules), with the totals. */
static void watch_reset_rules(Watch *w) {
        for (size_t i = 0; i < w->n_rules; i++) {
                totals_rule(w, policy_rule_state(w->policy, i), RULE_INACTIVE);
                w->rules[i].pending = false;
        }
        policy_reset_rules(w->policy);
}

static Watch *watch_free(Watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Watch *, watch_free);

static uint64_t now_clock(Manager *m, clockid_t clock) {
        uint64_t t = 0;

        if (sd_event_now(m->event, clock, &t) < 0) {
                struct timespec ts;
                (void) clock_gettime(clock, &ts);
                t = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
        }
        return t;
}

static uint64_t watch_now(const Watch *w) {
        return now_clock(w->model->manager, CLOCK_REALTIME);
}

static bool is_new_version(ActivationKind kind) {
        return kind == ACTIVATION_UPDATE || kind == ACTIVATION_IMPORT || kind == ACTIVATION_RECOMPRESS;
}

static void fmt_number(char *buf, size_t size, double v) {
        (void) expr_format_short(v, buf, size); /* 6 significant digits: these are messages */
}

/* --- exec actions ------------------------------------------------------------------------- */

static ExecAction *exec_action_free(ExecAction *a) {
        if (!a)
                return NULL;
        if (a->watch) {
                for (ExecAction **p = &a->watch->execs; *p; p = &(*p)->next)
                        if (*p == a) {
                                *p = a->next;
                                a->watch->n_execs--;
                                break;
                        }
        }
        /* A command still running is killed and reaped with its source (process_own). */
        sd_event_source_disable_unref(a->child);
        sd_event_source_disable_unref(a->timeout);
        free(a->rule);
        free(a);
        return NULL;
}

static int on_exec_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        ExecAction *a = userdata;
        Model *model = a->watch->model;

        if (si->si_code == CLD_EXITED && si->si_status == 0)
                log_info("Model %s: exec action of rule %s finished.", model->name, a->rule);
        else if (si->si_code == CLD_EXITED)
                log_warning("Model %s: exec action of rule %s failed with exit status %d.", model->name,
                            a->rule, si->si_status);
        else
                log_warning("Model %s: exec action of rule %s was killed by signal %s.", model->name,
                            a->rule, sigabbrev_np(si->si_status) ?: "?");
        exec_action_free(a);
        return 0;
}

static int on_exec_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        ExecAction *a = userdata;

        log_warning("Model %s: exec action of rule %s still runs after %" PRIu64 " minutes; killing it.",
                    a->watch->model->name, a->rule, EXEC_ACTION_TIMEOUT / (60 * USEC_PER_SEC));
        exec_action_free(a);
        return 0;
}

static int run_exec(Watch *w, const char *rule, char *const *argv) {
        Model *model = w->model;
        ExecAction *a;
        int r;

        if (w->n_execs >= EXEC_ACTIONS_MAX)
                return log_warning_errno(
                        -EBUSY, "Model %s: %u exec actions still running; not starting another for rule %s.",
                        model->name, w->n_execs, rule);
        a = calloc(1, sizeof(ExecAction));
        if (!a)
                return log_oom();
        a->rule = strdup(rule);
        if (!a->rule) {
                free(a);
                return log_oom();
        }
        r = serve_spawn(model->manager, argv, model->name, model->state->active, on_exec_exit, a, &a->child);
        if (r < 0) {
                exec_action_free(a);
                return log_error_errno(r, "Model %s: cannot run the exec action of rule %s (%s): %m",
                                       model->name, rule, argv[0]);
        }
        r = sd_event_add_time_relative(model->manager->event, &a->timeout, CLOCK_BOOTTIME,
                                       EXEC_ACTION_TIMEOUT, USEC_PER_SEC, on_exec_timeout, a);
        if (r < 0) {
                exec_action_free(a);
                return log_error_errno(r, "Model %s: cannot watch the exec action of rule %s: %m",
                                       model->name, rule);
        }
        a->watch = w;
        a->next = w->execs;
        w->execs = a;
        w->n_execs++;
        return 0;
}

/* --- rollback targets --------------------------------------------------------------------- */

static bool version_in_store(const Model *model, const char *id) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;

        fd = open(model->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd >= 0 && version_meta_load(fd, id, &meta) >= 0;
}

/* Where an automatic rollback may go: the first candidate that is a valid id, not the active
 * version, not quarantined and completely in the store. */
static const char *rollback_target(const Model *model, const char *const *candidates, size_t n) {
        const ModelStateFile *s = model->state;

        for (size_t i = 0; i < n; i++) {
                const char *c = candidates[i];

                if (!c || !version_id_is_valid(c) || streq_ptr(c, s->active) ||
                    model_state_file_is_quarantined(s, c) || !version_in_store(model, c))
                        continue;
                return c;
        }
        return NULL;
}

/* --- probation persistence ---------------------------------------------------------------- */

static int watch_save(Watch *w) {
        int r = model_state_file_save(w->model->dir, w->model->state);
        if (r < 0)
                log_error_errno(r, "Model %s: failed to write state.json: %m", w->model->name);
        return r;
}

/* state.json "probation": the version (so gc keeps it), what it replaced, and the engine's state
 * (rollout counters, baseline snapshot, rules' last actions). */
static int watch_save_probation(Watch *w) {
        Model *model = w->model;
        char ts[TIMESTAMP_MAX];
        json_t *o, *engine;

        engine = policy_state_to_json(w->policy);
        if (!engine)
                return log_oom();
        o = json_pack("{s:s, s:s?, s:s, s:s, s:o}", "version", policy_rollout_version(w->policy), "from",
                      w->from, "kind", activation_kind_to_string(w->kind), "saved",
                      format_timestamp(ts, now_realtime_usec()), "engine", engine);
        if (!o)
                return log_oom();
        if (w->rollback_pending &&
            json_object_set_new(o, "rollback",
                                json_pack("{s:s, s:s}", "reason", strempty(w->rollback_reason), "rule",
                                          strempty(w->rollback_rule))) < 0) {
                json_decref(o);
                return log_oom();
        }
        json_decref(model->state->probation);
        model->state->probation = o;
        return watch_save(w);
}

static void watch_end_probation(Watch *w) {
        policy_rollout_abort(w->policy);
        w->rollback_pending = false;
        w->paused_reported = false;
        w->rollback_reason = mfree(w->rollback_reason);
        w->rollback_rule = mfree(w->rollback_rule);
        w->from = mfree(w->from);
        w->rollout_timer = sd_event_source_disable_unref(w->rollout_timer);
        if (w->model->state->probation) {
                json_decref(w->model->state->probation);
                w->model->state->probation = NULL;
                (void) watch_save(w);
        }
}

/* --- the probation timer ------------------------------------------------------------------ */

static int on_rollout_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void watch_arm_rollout(Watch *w, uint64_t delay) {
        Manager *m = w->model->manager;
        int r;

        if (w->rollout_timer) {
                r = sd_event_source_set_time_relative(w->rollout_timer, delay);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->rollout_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(m->event, &w->rollout_timer, CLOCK_BOOTTIME, delay,
                                               100 * USEC_PER_MSEC, on_rollout_timer, w);
        if (r < 0)
                log_error_errno(r, "Model %s: cannot arm the rollout analysis timer: %m", w->model->name);
}

/* The next round, from the engine's realtime schedule. */
static void watch_arm_next_round(Watch *w) {
        uint64_t next = policy_rollout_next(w->policy), now = watch_now(w);

        if (next == USEC_INFINITY)
                return;
        /* A few ms late rather than early: the engine runs a round only once it is due. */
        watch_arm_rollout(w, (next > now ? next - now : 0) + 10 * USEC_PER_MSEC);
}

/* "accuracy: fail, value 0.93, min 0.94 (0.93 below min 0.94); errors: pass, value 0.001, max 0.01" */
static char *format_checks(const RolloutRound *round) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&out, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < round->n_checks; i++) {
                const CheckResult *c = &round->checks[i];
                char v[64];

                fmt_number(v, sizeof(v), c->value);
                fprintf(f, "%s%s: %s", i > 0 ? "; " : "", c->name ?: c->expr,
                        check_outcome_to_string(c->outcome));
                if (!isnan(c->value))
                        fprintf(f, ", value %s", v);
                if (!isnan(c->min)) {
                        fmt_number(v, sizeof(v), c->min);
                        fprintf(f, ", min %s", v);
                }
                if (!isnan(c->max)) {
                        fmt_number(v, sizeof(v), c->max);
                        fprintf(f, ", max %s", v);
                }
                if (c->outcome != CHECK_PASS && c->reason[0])
                        fprintf(f, " (%s)", c->reason);
        }
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(out);
}

/* "rollout:accuracy,errors": the checks that failed in the deciding round. */
static char *failed_checks(const RolloutRound *round) {
        _cleanup_free_ char *out = strdup("rollout");
        bool first = true;

        for (size_t i = 0; out && i < round->n_checks; i++) {
                const CheckResult *c = &round->checks[i];
                char *n;

                if (c->outcome == CHECK_PASS)
                        continue;
                n = xasprintf("%s%s%s", out, first ? ":" : ",", c->name ?: c->expr);
                free(out);
                out = n;
                first = false;
        }
        return TAKE_PTR(out);
}

/* The analysis failed: the version is already quarantined; serve what it replaced (or the last
 * good version) again. Waits while the model is busy. */
static void watch_probation_rollback(Watch *w) {
        Model *model = w->model;
        const char *version = policy_rollout_version(w->policy);
        const char *candidates[] = {w->from, model->state->last_good, model->state->previous};
        const char *to;
        int r;

        if (model->op) {
                log_debug("Model %s: rollback of version %s waits for the running operation.", model->name,
                          strna(version));
                watch_arm_rollout(w, WATCH_RETRY);
                return;
        }
        if (!streq_ptr(version, model->state->active)) {
                /* Something else replaced it meanwhile (an operator): nothing left to undo. */
                log_info("Model %s: version %s no longer serves; its rollback is not needed.", model->name,
                         strna(version));
                watch_end_probation(w);
                return;
        }
        to = rollback_target(model, candidates, ELEMENTSOF(candidates));
        if (!to) {
                log_event(
                        LOG_ERR, 0,
                        &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                     .model = model->name,
                                     .version = version,
                                     .policy = "rollout",
                                     .rule = w->rollback_rule,
                                     .action = "rollback",
                                     .reason = "no version to roll back to"},
                        "Model %s: version %s failed its rollout analysis, but there is no good version to roll back to; it keeps serving (quarantined).",
                        model->name, strna(version));
                watch_end_probation(w);
                return;
        }
        r = model_rollback(model, to, w->rollback_reason, w->rollback_rule, NULL);
        if (r == -EBUSY) {
                watch_arm_rollout(w, WATCH_RETRY);
                return;
        }
        if (r < 0)
                log_error_errno(r, "Model %s: cannot roll back from version %s to %s: %m", model->name,
                                strna(version), to);
        /* Started (recorded in state.json's in_progress, which a restart completes), or impossible. */
        watch_end_probation(w);
}

static void watch_log_round(Watch *w, const RolloutRound *round) {
        Model *model = w->model;
        _cleanup_free_ char *checks = format_checks(round);
        const char *action = round->decision == ROLLOUT_PROMOTE    ? "promote"
                             : round->decision == ROLLOUT_ROLLBACK ? "rollback"
                                                                   : "continue";

        log_event(
                round->verdict == ROUND_FAIL ? LOG_WARNING : LOG_INFO, 0,
                &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                             .model = model->name,
                             .version = round->version,
                             .from_version = w->from,
                             .policy = "rollout",
                             .action = action,
                             .reason = checks},
                "Model %s: version %s probation round %u: %s (passed %u/%u, failed %u/%u, inconclusive %u)%s%s: %s",
                model->name, round->version, round->round, round_verdict_to_string(round->verdict),
                round->passed, round->iterations, round->failed, round->threshold, round->inconclusive,
                round->decision != ROLLOUT_CONTINUE ? " → " : "",
                round->decision != ROLLOUT_CONTINUE ? action : "", strna(checks));
}

static int on_rollout_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watch *w = userdata;
        Model *model = w->model;
        const char *version = policy_rollout_version(w->policy);
        RolloutRound round = {};
        uint64_t now = watch_now(w);
        int r;

        if (w->rollback_pending) {
                watch_probation_rollback(w);
                return 0;
        }
        if (policy_rollout_phase(w->policy) == ROLLOUT_PROMOTED) {
                /* Restored from state.json after the rollout section was removed. */
                _cleanup_free_ char *v = strdup(strna(version));
                watch_end_probation(w);
                (void) model_promote(model, v, "the rollout analysis was removed from the configuration");
                return 0;
        }
        if (policy_rollout_phase(w->policy) != ROLLOUT_PROBATION)
                return 0;
        if (model->op && model->op->type == OP_ACTIVATE) {
                /* An activation will end this probation or (a restore) bring the version back. */
                watch_arm_rollout(w, WATCH_RETRY);
                return 0;
        }
        if (!streq_ptr(version, model->state->active)) {
                if (model->op) {
                        watch_arm_rollout(w, WATCH_RETRY);
                        return 0;
                }
                log_event(
                        LOG_NOTICE, 0,
                        &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                     .model = model->name,
                                     .version = version,
                                     .policy = "rollout",
                                     .action = "abort",
                                     .reason = "the version no longer serves"},
                        "Model %s: probation of version %s ended without a verdict: version %s serves now.",
                        model->name, strna(version), strna(model->state->active));
                watch_end_probation(w);
                return 0;
        }
        if (model->state->hold) {
                /* No verdict behind the operator's back: the analysis waits until the hold is lifted. */
                if (!w->paused_reported)
                        log_event(LOG_NOTICE, 0,
                                  &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                               .model = model->name,
                                               .version = version,
                                               .policy = "rollout",
                                               .action = "pause",
                                               .reason = "model on hold"},
                                  "Model %s: probation of version %s paused while the model is on hold.",
                                  model->name, strna(version));
                w->paused_reported = true;
                /* Look again after a round's interval: a lifted hold resumes the analysis then. */
                watch_arm_rollout(w,
                                  model->config->rollout ? model->config->rollout->interval : WATCH_RETRY);
                return 0;
        }
        w->paused_reported = false;

        r = policy_rollout_eval(w->policy, w->store, now, &round);
        if (r < 0) {
                log_error_errno(r, "Model %s: rollout analysis of version %s failed: %m", model->name,
                                strna(version));
                watch_arm_rollout(w, WATCH_RETRY);
                return 0;
        }
        if (!round.evaluated) {
                watch_arm_next_round(w);
                return 0;
        }
        stats_count(STATS_PROBATION_ROUNDS);
        watch_log_round(w, &round);

        switch (round.decision) {
        case ROLLOUT_CONTINUE:
                (void) watch_save_probation(w);
                watch_arm_next_round(w);
                break;
        case ROLLOUT_PROMOTE: {
                _cleanup_free_ char *v = strdup(round.version), *why = NULL;

                why = xasprintf("rollout analysis passed: %s", round.reason);
                w->from = mfree(w->from);
                watch_end_probation(w);
                (void) model_promote(model, v, why);
                break;
        }
        case ROLLOUT_ROLLBACK: {
                _cleanup_free_ char *checks = format_checks(&round);

                free(w->rollback_reason);
                w->rollback_reason =
                        xasprintf("rollout analysis failed (%s): %s", round.reason, strna(checks));
                free(w->rollback_rule);
                w->rollback_rule = failed_checks(&round);
                w->rollback_pending = true;
                /* Decided: recorded first, so that a restart carries it out. */
                (void) watch_save_probation(w);
                (void) model_quarantine(model, round.version, w->rollback_reason);
                watch_probation_rollback(w);
                break;
        }
        default:
                break;
        }
        return 0;
}

/* --- rules -------------------------------------------------------------------------------- */

static const char *action_name(const Action *a) {
        return action_type_to_string(a->type);
}

/* "acc < 0.90 = 0.85", "… = 0.85 (and 2 more series)", "acc < 0.90: no series" */
static void format_rule_reason(char *buf, size_t size, const RuleEvent *e) {
        char v[64];

        if (e->n_values == 0 || isnan(e->value)) {
                snprintf(buf, size, "%s: no series", e->expr);
                return;
        }
        fmt_number(v, sizeof(v), e->value);
        if (e->n_values > 1)
                snprintf(buf, size, "%s = %s (and %zu more series)", e->expr, v, e->n_values - 1);
        else
                snprintf(buf, size, "%s = %s", e->expr, v);
}

static void log_rule(Watch *w, const RuleEvent *e, int level, const char *reason, const char *fmt, ...)
        _printf_(5, 6);
static void log_rule(Watch *w, const RuleEvent *e, int level, const char *reason, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_event(level, 0,
                  &(LogFields){.message_id = MK_MESSAGE_RULE,
                               .model = w->model->name,
                               .version = w->model->state->active,
                               .rule = e->name,
                               .action = action_name(e->action),
                               .reason = reason},
                  "Model %s: rule %s %s", w->model->name, e->name, msg);
}

/* Run a firing rule's action. Returns 0 when done (or failed for good), -EBUSY to try again when
 * the model is idle. */
static int run_action(Watch *w, const RuleEvent *e, const char *reason) {
        Model *model = w->model;
        const Action *a = e->action;
        _cleanup_free_ char *why = xasprintf("rule %s: %s", e->name, reason);
        int r = 0;

        if (!why)
                return log_oom();
        if ((a->type == ACTION_ROLLBACK || a->type == ACTION_UPDATE || a->type == ACTION_RECOMPRESS) &&
            model->op)
                return -EBUSY;

        switch (a->type) {
        case ACTION_ROLLBACK: {
                const char *candidates[] = {model->state->last_good, model->state->previous};
                const char *to = rollback_target(model, candidates, ELEMENTSOF(candidates));

                if (!to) {
                        log_rule(w, e, LOG_WARNING, reason,
                                 "wants a rollback, but there is no good version to roll back to.");
                        r = -ENOENT;
                        break;
                }
                r = model_rollback(model, to, why, e->name, NULL);
                if (r == -EBUSY)
                        return r;
                if (r < 0)
                        log_error_errno(r, "Model %s: rule %s: cannot roll back to version %s: %m",
                                        model->name, e->name, to);
                break;
        }
        case ACTION_HOLD:
                r = model_set_hold(model, true, why);
                break;
        case ACTION_EXEC:
                r = run_exec(w, e->name, a->argv);
                break;
        case ACTION_UPDATE:
                r = model_check_update(model, NULL, why);
                if (r == -EBUSY)
                        return r;
                break;
        case ACTION_RECOMPRESS:
                r = model_recompress(model, a->profile, why, e->name, NULL);
                if (r == -EBUSY)
                        return r;
                break;
        case ACTION_LOG:
        default:
                break;
        }
        stats_count(r < 0 ? STATS_RULE_ACTIONS_FAILED : STATS_RULE_ACTIONS);
        return 0;
}

static void watch_act(Watch *w, RuleExtra *x, const RuleEvent *e, const char *reason) {
        if (run_action(w, e, reason) == -EBUSY) {
                if (!x->pending)
                        log_rule(w, e, LOG_INFO, reason,
                                 "waits for the running operation of the model to act.");
                x->pending = true;
        } else
                x->pending = false;
}

static void watch_evaluate(Watch *w) {
        Model *model = w->model;
        const RuleEvent *events = NULL;
        size_t n = 0;
        int r;

        if (policy_n_rules(w->policy) == 0)
                return;
        r = policy_eval_rules(w->policy, w->store, watch_now(w), !model->state->hold, &events, &n);
        if (r < 0) {
                log_error_errno(r, "Model %s: cannot evaluate the rules: %m", model->name);
                return;
        }
        for (size_t i = 0; i < n && i < w->n_rules && model->watch == w; i++) {
                const RuleEvent *e = &events[i];
                RuleExtra *x = &w->rules[i];
                char reason[1024];

                if (e->decision == RULE_DECISION_ERROR) {
                        if (!x->error_reported)
                                log_rule(w, e, LOG_WARNING, e->message, "cannot be evaluated: %s (%s)",
                                         e->message, e->expr);
                        x->error_reported = true;
                        continue;
                }
                x->error_reported = false;
                format_rule_reason(reason, sizeof(reason), e);

                totals_rule(w, e->from, e->to);
                if (e->from != e->to)
                        log_rule(w, e, e->to == RULE_FIRING ? LOG_NOTICE : LOG_INFO, reason, "%s -> %s: %s",
                                 rule_state_to_string(e->from), rule_state_to_string(e->to), reason);

                switch (e->decision) {
                case RULE_DECISION_ACT:
                        /* For `log`, the state change above is the whole action. */
                        if (e->action->type != ACTION_LOG)
                                log_rule(w, e, LOG_NOTICE, reason, "acts: %s%s%s (%s)",
                                         action_name(e->action), e->action->profile ? " " : "",
                                         strempty(e->action->profile), reason);
                        watch_act(w, x, e, reason);
                        continue;
                case RULE_DECISION_COOLDOWN:
                        log_rule(w, e, LOG_NOTICE, reason,
                                 "would %s, but it acted less than its cooldown ago (%s).",
                                 action_name(e->action), reason);
                        break;
                case RULE_DECISION_HELD:
                        log_rule(w, e, LOG_NOTICE, reason, "would %s, but the model is on hold (%s).",
                                 action_name(e->action), reason);
                        break;
                default:
                        break;
                }

                /* An action decided while the model was busy. */
                if (x->pending) {
                        if (e->to != RULE_FIRING || model->state->hold) {
                                log_rule(w, e, LOG_INFO, reason, "no longer acts: %s.",
                                         model->state->hold ? "the model was put on hold"
                                                            : "it stopped firing");
                                x->pending = false;
                        } else if (!model->op)
                                watch_act(w, x, e, reason);
                }
        }
}

static int on_eval_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watch *w = userdata;

        (void) sd_event_source_set_time_relative(s, WATCH_EVAL_INTERVAL);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        watch_evaluate(w);
        return 0;
}

static void on_scraped(Scraper *s, bool success, void *userdata) {
        Watch *w = userdata;

        for (size_t i = 0; i < w->n_scrapers; i++)
                if (w->scrapers[i] == s && w->up[i] != success) {
                        w->up[i] = success;
                        if (w->counted)
                                totals.targets_up += success ? 1 : (size_t) -1;
                }
        totals_store(w);

        /* One evaluation per round: when the last of the model's scrapes in flight is in. */
        for (size_t i = 0; i < w->n_scrapers; i++)
                if (w->scrapers[i] != s && scraper_in_flight(w->scrapers[i]))
                        return;
        watch_evaluate(w);
}

/* --- set-up ------------------------------------------------------------------------------- */

static Watch *watch_free(Watch *w) {
        if (!w)
                return NULL;
        totals_remove(w);
        while (w->execs) {
                log_notice("Model %s: exec action of rule %s killed: the model's watch stopped.",
                           w->model->name, w->execs->rule);
                exec_action_free(w->execs);
        }
        for (size_t i = 0; i < w->n_scrapers; i++)
                scraper_free(w->scrapers[i]);
        free(w->scrapers);
        sd_event_source_disable_unref(w->eval_timer);
        sd_event_source_disable_unref(w->rollout_timer);
        /* The store points at the policy's selectors: it goes first. */
        series_store_free(w->store);
        policy_free(w->policy);
        free(w->rules);
        free(w->up);
        free(w->baseline_version);
        free(w->from);
        free(w->rollback_reason);
        free(w->rollback_rule);
        free(w);
        return NULL;
}

/* Like policy_new_store(), with bounds fit for a daemon that watches many models. */
static int watch_new_store(Watch *w, char *msg, size_t msg_size) {
        const MetricsConfig *mc = &w->model->config->metrics;
        _cleanup_(strv_freep) char **targets = NULL;
        SeriesStoreOptions o = {
                .max_series = WATCH_MAX_SERIES,
                .max_ignored = WATCH_MAX_IGNORED,
                .memory_budget = WATCH_MEMORY_BUDGET,
        };
        Selector *const *sel;
        size_t n;

        for (size_t i = 0; i < mc->n_targets; i++) {
                const char *inst = policy_target_instance(w->policy, i);

                if (strv_extend(&targets, strna(inst)) < 0)
                        return -ENOMEM;
                o.min_interval = o.min_interval == 0 ? mc->targets[i].every
                                                     : MIN(o.min_interval, mc->targets[i].every);
        }
        if (o.min_interval == 0)
                o.min_interval = WATCH_EVAL_INTERVAL;
        o.targets = targets;
        sel = expr_env_selectors(policy_env(w->policy), &n);
        return series_store_new(sel, n, &o, &w->store, msg, msg_size);
}

/* A probation recorded in state.json (a restart, or a new configuration) continues. */
static void watch_restore_probation(Watch *w) {
        Model *model = w->model;
        json_t *pr = model->state->probation, *engine, *rb;
        const char *version, *from;
        uint64_t now = watch_now(w);
        int r;

        if (!pr)
                return;
        version = json_string_value(json_object_get(pr, "version"));
        from = json_string_value(json_object_get(pr, "from"));
        engine = json_object_get(pr, "engine");
        rb = json_object_get(pr, "rollback");
        if (!version || !version_id_is_valid(version)) {
                log_warning("Model %s: state.json has a probation without a valid version; dropping it.",
                            model->name);
                watch_end_probation(w);
                return;
        }
        w->kind = activation_kind_from_string(json_string_value(json_object_get(pr, "kind")));
        if (w->kind < 0)
                w->kind = ACTIVATION_UPDATE;
        w->from = from ? strdup(from) : NULL;

        r = engine ? policy_state_from_json(w->policy, engine, now) : -ENODATA;
        if (r < 0 || !streq_ptr(policy_rollout_version(w->policy), version)) {
                /* Counters lost: the analysis starts over (the baseline, if any, is gone too). */
                log_warning(
                        "Model %s: the saved rollout analysis of version %s cannot be restored (%s); starting it over.",
                        model->name, version, r < 0 ? strerror(-r) : "another version");
                r = policy_rollout_start(w->policy, version, now);
                if (r <= 0) {
                        watch_arm_rollout(w, 0); /* promoted at once (no rollout section) */
                        return;
                }
        }
        if (json_is_object(rb)) {
                w->rollback_pending = true;
                w->rollback_reason = strdup(strna(json_string_value(json_object_get(rb, "reason"))));
                w->rollback_rule = strdup(strna(json_string_value(json_object_get(rb, "rule"))));
                log_notice(
                        "Model %s: version %s failed its rollout analysis before the restart; rolling it back.",
                        model->name, version);
                /* The decision is recorded before the quarantine: a crash in between leaves it to do. */
                if (!model_state_file_is_quarantined(model->state, version))
                        (void) model_quarantine(model, version, w->rollback_reason);
                watch_arm_rollout(w, 0);
                return;
        }
        switch (policy_rollout_phase(w->policy)) {
        case ROLLOUT_PROBATION:
                log_event(LOG_INFO, 0,
                          &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                       .model = model->name,
                                       .version = version,
                                       .from_version = w->from,
                                       .policy = "rollout",
                                       .action = "resume"},
                          "Model %s: probation of version %s resumed.", model->name, version);
                watch_arm_next_round(w);
                break;
        case ROLLOUT_PROMOTED:
                watch_arm_rollout(w, 0);
                break;
        default:
                /* A verdict without its record: nothing safe to do but to forget it. */
                log_warning(
                        "Model %s: the saved probation of version %s has no pending decision; dropping it.",
                        model->name, version);
                watch_end_probation(w);
                break;
        }
}

int model_watch_start(Model *model) {
        _cleanup_(watch_freep) Watch *w = NULL;
        Manager *m = model->manager;
        const MetricsConfig *mc = &model->config->metrics;
        PolicyError perr = {};
        SeriesStoreStats st = {};
        char msg[256] = "", bound[FORMAT_BYTES_MAX];
        int r;

        model_watch_stop(model);

        w = calloc(1, sizeof(Watch));
        if (!w)
                return log_oom();
        w->model = model;
        r = policy_new(model->config, &w->policy, &perr);
        if (r < 0)
                /* The configuration validator compiles every expression, so this is a bug or no memory. */
                return log_error_errno(r, "Model %s: the policy cannot be built: %s: %s", model->name,
                                       perr.what, perr.message);
        r = watch_new_store(w, msg, sizeof(msg));
        if (r < 0)
                return log_error_errno(r, "Model %s: cannot size the metrics store: %s", model->name,
                                       msg[0] ? msg : strerror(-r));

        w->n_rules = policy_n_rules(w->policy);
        w->rules = calloc(w->n_rules + 1, sizeof(RuleExtra));
        w->scrapers = calloc(mc->n_targets + 1, sizeof(Scraper *));
        w->up = calloc(mc->n_targets + 1, sizeof(bool));
        if (!w->rules || !w->scrapers || !w->up)
                return log_oom();

        if (mc->n_targets == 0 && w->n_rules > 0) {
                r = sd_event_add_time_relative(m->event, &w->eval_timer, CLOCK_BOOTTIME, WATCH_EVAL_INTERVAL,
                                               USEC_PER_SEC, on_eval_timer, w);
                if (r < 0)
                        return log_error_errno(r, "Model %s: cannot set up rule evaluation: %m",
                                               model->name);
        }
        for (size_t i = 0; i < mc->n_targets; i++) {
                r = scraper_new(m, model->name, &mc->targets[i], (unsigned) i, w->store, on_scraped, w,
                                &w->scrapers[i]);
                if (r < 0)
                        return log_error_errno(r, "Model %s: cannot scrape %s: %m", model->name,
                                               mc->targets[i].url);
                w->n_scrapers++;
        }

        series_store_stats(w->store, &st);
        log_info(
                "Model %s: watching %zu target%s, %zu rule%s%s; metrics store bound %s (%zu series of %zu samples).",
                model->name, mc->n_targets, mc->n_targets == 1 ? "" : "s", w->n_rules,
                w->n_rules == 1 ? "" : "s", policy_has_rollout(w->policy) ? ", rollout analysis" : "",
                format_bytes(bound, st.memory_bound), st.max_series, st.capacity);

        totals_add(w);
        model->watch = TAKE_PTR(w);
        watch_restore_probation(model->watch);
        return 0;
}

void model_watch_stop(Model *model) {
        model->watch = watch_free(model->watch);
}

/* --- activation hooks --------------------------------------------------------------------- */

void model_watch_before_activation(Model *model, const char *to, ActivationKind kind) {
        Watch *w = model->watch;
        int r;

        if (!w || !is_new_version(kind) || !policy_has_rollout(w->policy) ||
            policy_n_baselines(w->policy) == 0)
                return;
        r = policy_snapshot_baselines(w->policy, w->store, watch_now(w));
        if (r < 0) {
                log_error_errno(r, "Model %s: cannot take the baseline for version %s: %m", model->name, to);
                return;
        }
        free(w->baseline_version);
        w->baseline_version = strdup(to);
        for (size_t i = 0; i < policy_n_baselines(w->policy); i++) {
                const ExprSnapshot *b = policy_baseline(w->policy, i);
                char v[64] = "no data";

                if (b->present && b->n > 0)
                        fmt_number(v, sizeof(v), b->samples[0].value);
                log_info("Model %s: baseline(%s) = %s%s, from %s%s, for version %s.", model->name,
                         policy_baseline_key(w->policy, i), v,
                         b->present && b->n > 1 ? " (and more series)" : "",
                         model->state->active ? "version " : "what served before any version",
                         strempty(model->state->active), to);
        }
}

int model_watch_activated(Model *model, const char *version, const char *from, ActivationKind kind) {
        Watch *w = model->watch;
        const char *on_probation;
        char iv[FORMAT_DURATION_MAX];
        int r;

        if (!w)
                return 0;
        on_probation = policy_rollout_phase(w->policy) == ROLLOUT_PROBATION || w->rollback_pending
                               ? policy_rollout_version(w->policy)
                               : NULL;

        /* Whatever was measured belongs to what served before: judge this version on its own data. */
        series_store_clear(w->store);
        watch_reset_rules(w);

        if (on_probation) {
                if (kind == ACTIVATION_RESTORE && streq(on_probation, version) && !w->rollback_pending) {
                        /* A newer version failed and this one serves again: its analysis goes on. */
                        log_info("Model %s: version %s serves again; its probation continues.", model->name,
                                 version);
                        watch_arm_next_round(w);
                        return 0;
                }
                log_event(
                        LOG_NOTICE, 0,
                        &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                     .model = model->name,
                                     .version = on_probation,
                                     .policy = "rollout",
                                     .action = "abort",
                                     .reason = "another version was activated"},
                        "Model %s: probation of version %s ended without a verdict: version %s was activated (%s).",
                        model->name, on_probation, version, activation_kind_to_string(kind));
        }
        if (on_probation || model->state->probation)
                watch_end_probation(w);

        if (!is_new_version(kind))
                return 0;
        if (!policy_has_rollout(w->policy))
                return 0;

        if (!streq_ptr(w->baseline_version, version)) {
                /* No snapshot for this activation (e.g. the configuration changed in between): checks
                 * that compare with baseline(…) have no data, and on_no_data decides. */
                if (policy_n_baselines(w->policy) > 0)
                        log_warning("Model %s: no baseline was taken before version %s was activated.",
                                    model->name, version);
                policy_clear_baselines(w->policy);
        }
        w->baseline_version = mfree(w->baseline_version);

        r = policy_rollout_start(w->policy, version, watch_now(w));
        if (r <= 0)
                return r;
        /* The model's first version: nothing to regress from, so baseline() checks have nothing to
         * say (and nothing to roll back to either). */
        policy_rollout_set_first(w->policy, !from);
        w->kind = kind;
        free(w->from);
        w->from = from ? strdup(from) : NULL;
        r = watch_save_probation(w);
        if (r < 0) {
                policy_rollout_abort(w->policy);
                return r;
        }
        {
                const RolloutConfig *rc = model->config->rollout;
                log_event(
                        LOG_INFO, 0,
                        &(LogFields){.message_id = MK_MESSAGE_PROBATION,
                                     .model = model->name,
                                     .version = version,
                                     .from_version = from,
                                     .policy = "rollout",
                                     .action = "start"},
                        "Model %s: version %s on probation: %u round%s every %s, threshold %u, on_no_data %s.",
                        model->name, version, rc->iterations, rc->iterations == 1 ? "" : "s",
                        format_duration(iv, rc->interval), rc->threshold,
                        no_data_policy_to_string(rc->on_no_data));
        }
        watch_arm_next_round(w);
        return 1;
}
