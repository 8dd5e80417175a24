/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The daemon's view of one model: its last good configuration and what is happening to it. */

#include "config.h"
#include "macros.h"

typedef struct Manager Manager;
typedef struct Job Job;

typedef enum ModelState {
        MODEL_STATE_IDLE,        /* nothing installed yet */
        MODEL_STATE_OK,          /* an active version, promoted */
        MODEL_STATE_BUSY,        /* a job is running */
        MODEL_STATE_PROBATION,   /* an activated version under rollout analysis */
        MODEL_STATE_HELD,        /* an operator put it on hold: no automatic action */
        MODEL_STATE_FAILED,      /* the last job failed and nothing good is active */
        _MODEL_STATE_MAX,
        _MODEL_STATE_INVALID = -EINVAL,
} ModelState;

typedef struct Model {
        Manager *manager;
        char *name;
        ModelConfig *config;     /* owned; the last good one */
        bool held;
        char *active_version;
        char *previous_version;
        char *last_error;
        uint64_t jobs_done, jobs_failed;
} Model;

int model_new(Manager *m, ModelConfig *config, Model **ret);
Model *model_free(Model *model);
DEFINE_TRIVIAL_CLEANUP_FUNC(Model *, model_free);

/* Swap in a new configuration (ownership taken); runtime state stays. */
void model_set_config(Model *model, ModelConfig *config);

ModelState model_get_state(const Model *model) _pure_;
const char *model_state_to_string(ModelState s) _const_;
