/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The watching half of a model (DESIGN.md §6): scraping its metrics, evaluating its rules, and
 * the rollout analysis (probation) after an activation. The store half (model.c) calls these
 * hooks; the watch half acts through model.c's operations (model_rollback, model_promote,
 * model_set_hold, …).
 *
 * Clocks. The policy engine keeps time in the caller's clock; we give it CLOCK_REALTIME (sample
 * timestamps, rule `for`, cooldowns, probation rounds), because its state is persisted in
 * state.json and must mean something after a reboot. Timers are CLOCK_BOOTTIME, relative.
 *
 * When rules are evaluated. After each scrape round: when a scrape completes (successful or not)
 * and no other scrape of the same model is in flight, the rules are evaluated once. A model is
 * thus judged as soon as new data is there, once for targets scraped together, and not at all
 * while nothing changes; a model without scrape targets but with rules is evaluated every 15 s.
 *
 * Busy models. A rule that decides to act while the model runs an operation (an activation, a
 * gc, the start-up reconciliation) keeps its action pending; the action runs at the first
 * evaluation where the model is idle and the rule still fires, and is dropped (logged) when the
 * rule stopped firing or the model was put on hold meanwhile. Only actions that start an
 * operation wait (rollback, update, recompress); hold, exec and log run at once.
 *
 * Baselines. baseline(x) must see the previous version's data, so it is snapshotted by
 * model_watch_before_activation(), which model.c calls right before the agent switches the
 * links, while the old version still serves. model_watch_activated() (after the switch and the
 * readiness gate) then forgets all samples so that the new version is judged on its own data
 * only, resets the rules, and starts the probation.
 */

#include "macros.h"
#include "model.h"
#include "rules.h"

/* The model's store is reconciled and its configuration loaded: start scraping and evaluating.
 * Called again after the configuration changed (restart with the new one). A probation recorded
 * in state.json continues. */
int model_watch_start(Model *model);
void model_watch_stop(Model *model);

/* An activation of version `to` is about to switch the links (the old version still serves):
 * snapshot baseline(…) values for a new version's rollout analysis. */
void model_watch_before_activation(Model *model, const char *to, ActivationKind kind);

/* A version was activated and the model server is ready. Returns 1 when a rollout analysis
 * starts for it (the version is on probation until the watch promotes or rolls it back), 0 when
 * the model has no rollout analysis (the caller promotes at once), < 0 on error. Rollbacks and
 * restores start no probation and end a running one. */
int model_watch_activated(Model *model, const char *version, const char *from, ActivationKind kind);

/* For the daemon's own figures: totals over every watched model, kept up to date as rules change
 * state and scrapes complete (reading them touches no model). */
typedef struct WatchTotals {
        unsigned rules[_RULE_STATE_MAX];
        size_t targets, targets_up;
        size_t series;
        uint64_t memory_used, memory_bound;
} WatchTotals;

void watch_totals(WatchTotals *ret);
/* Each rule that is pending or firing, in no particular order. */
typedef void (*WatchAlertFn)(const Model *model, const char *rule, RuleState state, void *userdata);
void watch_foreach_alert(WatchAlertFn fn, void *userdata);

/* Tests and debugging: scrape every target now (the evaluation follows). */
int model_watch_scrape_now(Model *model);
