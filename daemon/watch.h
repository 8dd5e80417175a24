/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The watching half of a model (DESIGN.md §6): scraping its metrics, evaluating its rules, and
 * the rollout analysis (probation) after an activation. The store half (model.c) calls these
 * hooks; the watch half acts through model.c's operations (model_rollback, model_promote,
 * model_set_hold, …).
 */

#include "macros.h"
#include "model.h"

/* The model's store is reconciled and its configuration loaded: start scraping and evaluating.
 * Called again after the configuration changed (restart with the new one). */
int model_watch_start(Model *model);
void model_watch_stop(Model *model);

/* A version was activated and the model server is ready. Returns 1 when a rollout analysis
 * starts for it (the version is on probation until the watch promotes or rolls it back), 0 when
 * the model has no rollout analysis (the caller promotes at once), < 0 on error. */
int model_watch_activated(Model *model, const char *version, const char *from, ActivationKind kind);
