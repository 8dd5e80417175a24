/* SPDX-License-Identifier: Apache-2.0 */

#include "control-methods.h"
#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"

static Model *find_model_or_error(Manager *m, const char *name, sd_bus_error *error) {
        Model *model = manager_find_model(m, name);
        if (!model)
                sd_bus_error_setf(error, "dev.modelkeeper.NoSuchModel", "No model '%s' is configured.", name);
        return model;
}

static int method_list_models(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = control_manager(userdata);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sssss)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_models; i++) {
                Model *model = m->models[i];
                Job *j = job_runner_find_model(m->jobs, model->name);

                r = sd_bus_message_append(reply, "(sssss)", model->name, model_state_to_string(model_get_state(model)),
                                          strempty(model->active_version), strempty(model->previous_version),
                                          j ? j->verb : "");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int append_sv(sd_bus_message *reply, const char *key, char type, const void *value) {
        char sig[2] = {type, 0};
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", key);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', sig);
        if (r >= 0)
                r = sd_bus_message_append_basic(reply, type, value);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int method_get_model(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = control_manager(userdata);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        Model *model;
        Job *j;
        int r, held;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        j = job_runner_find_model(m->jobs, model->name);
        held = model->held;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_sv(reply, "Name", 's', model->name)) < 0 ||
            (r = append_sv(reply, "State", 's', model_state_to_string(model_get_state(model)))) < 0 ||
            (r = append_sv(reply, "Active", 's', strempty(model->active_version))) < 0 ||
            (r = append_sv(reply, "Previous", 's', strempty(model->previous_version))) < 0 ||
            (r = append_sv(reply, "Held", 'b', &held)) < 0 ||
            (r = append_sv(reply, "ConfigFile", 's', model->config->path)) < 0 ||
            (r = append_sv(reply, "LastError", 's', strempty(model->last_error))) < 0 ||
            (r = append_sv(reply, "Source", 's', model->config->source ? model->config->source->url : "")) < 0 ||
            (r = append_sv(reply, "Channel", 's', model->config->source ? model->config->source->channel : "")) < 0)
                return r;
        if (j) {
                if ((r = append_sv(reply, "Job", 's', j->verb)) < 0 || (r = append_sv(reply, "JobId", 't', &j->id)) < 0 ||
                    (r = append_sv(reply, "JobPhase", 's', j->phase)) < 0 ||
                    (r = append_sv(reply, "JobDone", 't', &j->done_bytes)) < 0 ||
                    (r = append_sv(reply, "JobTotal", 't', &j->total_bytes)) < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = manager_reload(m, "control API");
        if (r < 0)
                return sd_bus_error_set(error, "dev.modelkeeper.ConfigRefused",
                                        "The configuration was refused; the last good one keeps running. See the "
                                        "journal for every error.");
        return sd_bus_reply_method_return(msg, NULL);
}

const sd_bus_vtable control_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListModels", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssss)", models /* name, state, active, previous, job */),
                                method_list_models, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetModel", SD_BUS_ARGS("s", name), SD_BUS_RESULT("a{sv}", properties),
                                method_get_model, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("JobProgress", SD_BUS_ARGS("s", model, "t", job, "s", verb, "s", phase, "t", done, "t", total), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobFinished", SD_BUS_ARGS("s", model, "t", job, "s", verb, "b", ok, "s", reason), 0),
        SD_BUS_VTABLE_END,
};
