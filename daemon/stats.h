/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The daemon's own figures, kept in one place (DESIGN.md §8, daemon.metrics_textfile).
 *
 * Decisions are counted where they are recorded: stats_install() registers the log event hook,
 * and every decision entry (MK_MESSAGE_ACTIVATED, _ROLLBACK, _PROMOTED, _QUARANTINED,
 * _RECOMPRESSED, _VERIFIED, _CONFIG_REFUSED, _RELOADED) increments its counter. A decision
 * that reaches the journal is therefore counted without a counting call beside each
 * log_event(), including in code written later. What is not a journal entry is counted by the
 * explicit calls below: update checks that found nothing, refusals by reason class, scrapes,
 * rule actions and agent job durations.
 *
 * stats_render() writes the counters in the Prometheus text format 0.0.4; metrics-file.c adds
 * the gauges that are read from the models at that moment (models by state, rule states).
 */

#include "macros.h"

typedef enum StatsCounter {
        STATS_UPDATE_CHECKS,       /* explicit: a model's source was checked */
        STATS_UPDATES,             /* MK_MESSAGE_VERIFIED: a release verified and installed */
        STATS_ACTIVATIONS,         /* MK_MESSAGE_ACTIVATED */
        STATS_ROLLBACKS_POLICY,    /* MK_MESSAGE_ROLLBACK with RULE= (a rule or a rollout) */
        STATS_ROLLBACKS_OTHER,     /* MK_MESSAGE_ROLLBACK: operator, restore after a failure */
        STATS_PROMOTIONS,          /* MK_MESSAGE_PROMOTED */
        STATS_QUARANTINES,         /* MK_MESSAGE_QUARANTINED, ACTION=quarantine */
        STATS_RECOMPRESSIONS,      /* MK_MESSAGE_RECOMPRESSED */
        STATS_CONFIG_REFUSALS,     /* MK_MESSAGE_CONFIG_REFUSED */
        STATS_RELOADS,             /* MK_MESSAGE_RELOADED */
        STATS_RULE_ACTIONS,        /* explicit: a rule's action was run */
        STATS_RULE_ACTIONS_FAILED, /* explicit: … and could not be carried out */
        STATS_PROBATION_ROUNDS,    /* explicit: rollout analysis rounds evaluated */
        STATS_SCRAPES,             /* explicit: scrapes completed (successful or not) */
        _STATS_COUNTER_MAX,
} StatsCounter;

/* Why a scrape failed: a bounded label set. */
typedef enum StatsScrapeError {
        STATS_SCRAPE_TRANSPORT, /* connection refused, reset, TLS … */
        STATS_SCRAPE_TIMEOUT,
        STATS_SCRAPE_STATUS,    /* an HTTP status other than 200 */
        STATS_SCRAPE_TOO_LARGE, /* max_body */
        STATS_SCRAPE_PARSE,     /* the exposition is malformed */
        STATS_SCRAPE_LIMIT,     /* an ExpfmtLimits limit (lines, labels, series) */
        STATS_SCRAPE_FILE,      /* a file:// target missing or unreadable */
        _STATS_SCRAPE_ERROR_MAX,
} StatsScrapeError;

/* Count decision entries from now on (log_set_event_hook). */
void stats_install(void);
/* The hook itself, exposed for tests. */
void stats_observe_event(const char *message_id, const char *action, const char *rule);

void stats_count(StatsCounter c);
uint64_t stats_get(StatsCounter c) _pure_;
void stats_count_scrape_error(StatsScrapeError e);
uint64_t stats_get_scrape_errors(StatsScrapeError e) _pure_;

/* A release refused, by errno as the verification code returns it (common/reason.h): mapped to
 * a bounded label: signature, expired, downgrade, version_reuse, wrong_target, clock, too_large,
 * no_space, malformed, other. */
void stats_count_refusal(int error);
const char *stats_refusal_reason(int error) _const_;

/* An agent job ended (jobs.c): its verb and how long it ran. Verbs beyond a small table are
 * counted as "other" so that the label set stays bounded. */
void stats_job_finished(const char *verb, uint64_t usec, int error);

/* Forget everything (tests). */
void stats_reset(void);

/* Append the counters, with HELP and TYPE lines, to f. */
int stats_render(FILE *f);
