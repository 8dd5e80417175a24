/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>

#include "log.h"
#include "stats.h"

/* Agent job durations: a histogram per verb, with buckets from a fraction of a second (gc,
 * activate) to an hour (a large download or a re-compression). */
static const double job_buckets[] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};
#define N_JOB_BUCKETS ELEMENTSOF(job_buckets)
#define JOB_VERBS_MAX 16
#define VERB_MAX      31

typedef struct JobHistogram {
        char verb[VERB_MAX + 1];
        uint64_t buckets[N_JOB_BUCKETS]; /* cumulative as Prometheus wants them: counted at render */
        uint64_t count, failed;
        double sum;
} JobHistogram;

typedef struct RefusalCount {
        const char *reason;
        uint64_t count;
} RefusalCount;

static struct {
        uint64_t counters[_STATS_COUNTER_MAX];
        uint64_t scrape_errors[_STATS_SCRAPE_ERROR_MAX];
        RefusalCount refusals[16];
        size_t n_refusals;
        JobHistogram jobs[JOB_VERBS_MAX + 1]; /* the last one: "other" */
        size_t n_jobs;
} stats;

static const struct {
        StatsCounter counter;
        const char *name, *labels, *help;
} counter_table[_STATS_COUNTER_MAX] = {
        {STATS_UPDATE_CHECKS, "modelkeeper_update_checks_total", NULL,
         "Checks of the models' release sources."},
        {STATS_UPDATES, "modelkeeper_updates_total", NULL, "Releases verified and installed."},
        {STATS_ACTIVATIONS, "modelkeeper_activations_total", NULL, "Versions activated (new versions)."},
        {STATS_ROLLBACKS_POLICY, "modelkeeper_rollbacks_total", "trigger=\"policy\"",
         "Rollbacks, by what decided them (policy: a rule or a rollout analysis)."},
        {STATS_ROLLBACKS_OTHER, "modelkeeper_rollbacks_total", "trigger=\"other\"", NULL},
        {STATS_PROMOTIONS, "modelkeeper_promotions_total", NULL, "Versions promoted to last good."},
        {STATS_QUARANTINES, "modelkeeper_quarantines_total", NULL, "Versions quarantined."},
        {STATS_RECOMPRESSIONS, "modelkeeper_recompressions_total", NULL,
         "Derived versions made by re-compression."},
        {STATS_CONFIG_REFUSALS, "modelkeeper_config_refusals_total", NULL, "Configuration files refused."},
        {STATS_RELOADS, "modelkeeper_reloads_total", NULL, "Configuration reloads applied."},
        {STATS_RULE_ACTIONS, "modelkeeper_rule_actions_total", "result=\"done\"",
         "Actions of firing rules, by whether they could be carried out."},
        {STATS_RULE_ACTIONS_FAILED, "modelkeeper_rule_actions_total", "result=\"failed\"", NULL},
        {STATS_PROBATION_ROUNDS, "modelkeeper_probation_rounds_total", NULL,
         "Rollout analysis rounds evaluated."},
        {STATS_SCRAPES, "modelkeeper_scrapes_total", NULL, "Metric scrapes completed, successful or not."},
};

static const char *const scrape_error_table[_STATS_SCRAPE_ERROR_MAX] = {
        [STATS_SCRAPE_TRANSPORT] = "transport", [STATS_SCRAPE_TIMEOUT] = "timeout",
        [STATS_SCRAPE_STATUS] = "status",       [STATS_SCRAPE_TOO_LARGE] = "too_large",
        [STATS_SCRAPE_PARSE] = "parse",         [STATS_SCRAPE_LIMIT] = "limit",
        [STATS_SCRAPE_FILE] = "file",
};

void stats_count(StatsCounter c) {
        if (c >= 0 && c < _STATS_COUNTER_MAX)
                stats.counters[c]++;
}

uint64_t stats_get(StatsCounter c) {
        return c >= 0 && c < _STATS_COUNTER_MAX ? stats.counters[c] : 0;
}

void stats_count_scrape_error(StatsScrapeError e) {
        if (e >= 0 && e < _STATS_SCRAPE_ERROR_MAX)
                stats.scrape_errors[e]++;
}

uint64_t stats_get_scrape_errors(StatsScrapeError e) {
        return e >= 0 && e < _STATS_SCRAPE_ERROR_MAX ? stats.scrape_errors[e] : 0;
}

void stats_observe_event(const char *message_id, const char *action, const char *rule) {
        static const struct {
                const char *id;
                StatsCounter counter;
        } simple[] = {
                {MK_MESSAGE_VERIFIED, STATS_UPDATES},
                {MK_MESSAGE_ACTIVATED, STATS_ACTIVATIONS},
                {MK_MESSAGE_PROMOTED, STATS_PROMOTIONS},
                {MK_MESSAGE_RECOMPRESSED, STATS_RECOMPRESSIONS},
                {MK_MESSAGE_CONFIG_REFUSED, STATS_CONFIG_REFUSALS},
                {MK_MESSAGE_RELOADED, STATS_RELOADS},
        };

        if (!message_id)
                return;
        if (streq(message_id, MK_MESSAGE_ROLLBACK)) {
                stats_count(rule ? STATS_ROLLBACKS_POLICY : STATS_ROLLBACKS_OTHER);
                return;
        }
        if (streq(message_id, MK_MESSAGE_QUARANTINED)) {
                /* The same id records a release from quarantine. */
                if (streq_ptr(action, "quarantine"))
                        stats_count(STATS_QUARANTINES);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(simple); i++)
                if (streq(message_id, simple[i].id)) {
                        stats_count(simple[i].counter);
                        return;
                }
}

static void on_log_event(int level, const LogFields *f, const char *message, void *userdata) {
        stats_observe_event(f->message_id, f->action, f->rule);
}

void stats_install(void) {
        log_set_event_hook(on_log_event, NULL);
}

const char *stats_refusal_reason(int error) {
        switch (abs(error)) {
        case EKEYREJECTED:
        case ENOKEY:
                return "signature";
        case ESTALE:
                return "expired";
        case ERANGE:
                return "downgrade";
        case EEXIST:
                return "version_reuse";
        case EXDEV:
                return "wrong_target";
        case ETIME:
                return "clock";
        case EFBIG:
                return "too_large";
        case ENOSPC:
                return "no_space";
        case EBADMSG:
        case EPROTONOSUPPORT:
        case EPERM:
                return "malformed";
        default:
                return "other";
        }
}

void stats_count_refusal(int error) {
        const char *reason = stats_refusal_reason(error);

        for (size_t i = 0; i < stats.n_refusals; i++)
                if (streq(stats.refusals[i].reason, reason)) {
                        stats.refusals[i].count++;
                        return;
                }
        /* The reasons are a fixed set of literals, fewer than the slots. */
        if (stats.n_refusals < ELEMENTSOF(stats.refusals))
                stats.refusals[stats.n_refusals++] = (RefusalCount){reason, 1};
}

static bool verb_is_label_safe(const char *v) {
        if (isempty(v) || strlen(v) > VERB_MAX)
                return false;
        for (const char *p = v; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
                        return false;
        return true;
}

void stats_job_finished(const char *verb, uint64_t usec, int error) {
        JobHistogram *h = NULL;
        double seconds = (double) usec / (double) USEC_PER_SEC;

        if (verb_is_label_safe(verb)) {
                for (size_t i = 0; i < stats.n_jobs && !h; i++)
                        if (streq(stats.jobs[i].verb, verb))
                                h = &stats.jobs[i];
                if (!h && stats.n_jobs < JOB_VERBS_MAX) {
                        h = &stats.jobs[stats.n_jobs++];
                        snprintf(h->verb, sizeof(h->verb), "%s", verb);
                }
        }
        if (!h) {
                h = &stats.jobs[JOB_VERBS_MAX];
                snprintf(h->verb, sizeof(h->verb), "other");
        }
        for (size_t i = 0; i < N_JOB_BUCKETS; i++)
                if (seconds <= job_buckets[i]) {
                        h->buckets[i]++;
                        break;
                }
        h->count++;
        h->sum += seconds;
        if (error < 0)
                h->failed++;
}

void stats_reset(void) {
        memset(&stats, 0, sizeof(stats));
}

static void render_job(FILE *f, const JobHistogram *h) {
        uint64_t cumulative = 0;

        for (size_t i = 0; i < N_JOB_BUCKETS; i++) {
                cumulative += h->buckets[i];
                fprintf(f, "modelkeeper_job_duration_seconds_bucket{verb=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                        h->verb, job_buckets[i], cumulative);
        }
        fprintf(f, "modelkeeper_job_duration_seconds_bucket{verb=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", h->verb,
                h->count);
        fprintf(f, "modelkeeper_job_duration_seconds_sum{verb=\"%s\"} %.6f\n", h->verb, h->sum);
        fprintf(f, "modelkeeper_job_duration_seconds_count{verb=\"%s\"} %" PRIu64 "\n", h->verb, h->count);
}

int stats_render(FILE *f) {
        for (size_t i = 0; i < ELEMENTSOF(counter_table); i++) {
                /* A metric with several label values is announced once, before its first line. */
                if (counter_table[i].help)
                        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counter_table[i].name,
                                counter_table[i].help, counter_table[i].name);
                fprintf(f, "%s%s%s%s %" PRIu64 "\n", counter_table[i].name,
                        counter_table[i].labels ? "{" : "", strempty(counter_table[i].labels),
                        counter_table[i].labels ? "}" : "", stats.counters[counter_table[i].counter]);
        }

        fputs("# HELP modelkeeper_scrape_errors_total Metric scrapes that failed (up == 0), by reason.\n"
              "# TYPE modelkeeper_scrape_errors_total counter\n",
              f);
        for (size_t i = 0; i < _STATS_SCRAPE_ERROR_MAX; i++)
                fprintf(f, "modelkeeper_scrape_errors_total{reason=\"%s\"} %" PRIu64 "\n",
                        scrape_error_table[i], stats.scrape_errors[i]);

        fputs("# HELP modelkeeper_release_refusals_total Releases refused, by reason.\n"
              "# TYPE modelkeeper_release_refusals_total counter\n",
              f);
        for (size_t i = 0; i < stats.n_refusals; i++)
                fprintf(f, "modelkeeper_release_refusals_total{reason=\"%s\"} %" PRIu64 "\n",
                        stats.refusals[i].reason, stats.refusals[i].count);

        fputs("# HELP modelkeeper_job_duration_seconds How long agent jobs ran, by verb.\n"
              "# TYPE modelkeeper_job_duration_seconds histogram\n",
              f);
        for (size_t i = 0; i < stats.n_jobs; i++)
                render_job(f, &stats.jobs[i]);
        if (stats.jobs[JOB_VERBS_MAX].count > 0)
                render_job(f, &stats.jobs[JOB_VERBS_MAX]);

        fputs("# HELP modelkeeper_job_failed_total Agent jobs that ended with an error, by verb.\n"
              "# TYPE modelkeeper_job_failed_total counter\n",
              f);
        for (size_t i = 0; i <= JOB_VERBS_MAX; i++)
                if (stats.jobs[i].count > 0)
                        fprintf(f, "modelkeeper_job_failed_total{verb=\"%s\"} %" PRIu64 "\n",
                                stats.jobs[i].verb, stats.jobs[i].failed);
        return ferror(f) ? -EIO : 0;
}
