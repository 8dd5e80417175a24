/* SPDX-License-Identifier: Apache-2.0 */

#include "jobs.h"
#include "manager.h"
#include "model.h"

static const char *const model_state_table[_MODEL_STATE_MAX] = {
        [MODEL_STATE_IDLE] = "idle",           [MODEL_STATE_OK] = "ok",
        [MODEL_STATE_BUSY] = "busy",           [MODEL_STATE_PROBATION] = "probation",
        [MODEL_STATE_HELD] = "held",           [MODEL_STATE_FAILED] = "failed",
};

const char *model_state_to_string(ModelState s) {
        return s >= 0 && s < _MODEL_STATE_MAX ? model_state_table[s] : NULL;
}

int model_new(Manager *m, ModelConfig *config, Model **ret) {
        Model *model = calloc(1, sizeof(Model));

        if (!model)
                return -ENOMEM;
        model->manager = m;
        model->name = strdup(config->name);
        if (!model->name) {
                free(model);
                return -ENOMEM;
        }
        model->config = config;
        *ret = model;
        return 0;
}

Model *model_free(Model *model) {
        if (!model)
                return NULL;
        model_config_free(model->config);
        free(model->name);
        free(model->active_version);
        free(model->previous_version);
        free(model->last_error);
        free(model);
        return NULL;
}

void model_set_config(Model *model, ModelConfig *config) {
        model_config_free(model->config);
        model->config = config;
}

ModelState model_get_state(const Model *model) {
        if (model->held)
                return MODEL_STATE_HELD;
        if (model->manager && model->manager->jobs && job_runner_find_model(model->manager->jobs, model->name))
                return MODEL_STATE_BUSY;
        if (model->active_version)
                return MODEL_STATE_OK;
        if (model->last_error)
                return MODEL_STATE_FAILED;
        return MODEL_STATE_IDLE;
}
