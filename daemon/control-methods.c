/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>

#include "control-methods.h"
#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "store-layout.h"
#include "strv.h"

static Model *find_model_or_error(Manager *m, const char *name, sd_bus_error *error) {
        Model *model = manager_find_model(m, name);
        if (!model)
                sd_bus_error_setf(error, "dev.modelkeeper.NoSuchModel", "No model '%s' is configured.", name);
        return model;
}

static const char *op_name(const Model *model) {
        static const char *const names[_OP_TYPE_MAX] = {
                [OP_RECONCILE] = "reconcile", [OP_IMPORT] = "import", [OP_ACTIVATE] = "activate", [OP_GC] = "gc",
                [OP_UPDATE] = "update", [OP_RECOMPRESS] = "recompress",
                [OP_SCRUB] = "scrub"};
        if (!model->op)
                return "";
        if (model->op->type == OP_ACTIVATE)
                return activation_kind_to_string(model->op->kind);
        return names[model->op->type];
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
                char op[96];

                /* "update download 45%" while a job reports progress with a total. */
                if (model->job && model->job->total_bytes > 0 && model->job->phase[0])
                        snprintf(op, sizeof(op), "%s %s %u%%", op_name(model), model->job->phase,
                                 (unsigned) MIN(model->job->done_bytes * 100 / model->job->total_bytes, (uint64_t) 100));
                else
                        snprintf(op, sizeof(op), "%s", op_name(model));
                r = sd_bus_message_append(reply, "(sssss)", model->name, model_state_to_string(model_get_state(model)),
                                          strempty(model->state->active), strempty(model->state->previous), op);
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
        j = model->job;
        held = model->state->hold;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        if ((r = append_sv(reply, "Name", 's', model->name)) < 0 ||
            (r = append_sv(reply, "State", 's', model_state_to_string(model_get_state(model)))) < 0 ||
            (r = append_sv(reply, "Active", 's', strempty(model->state->active))) < 0 ||
            (r = append_sv(reply, "Previous", 's', strempty(model->state->previous))) < 0 ||
            (r = append_sv(reply, "LastGood", 's', strempty(model->state->last_good))) < 0 ||
            (r = append_sv(reply, "Held", 'b', &held)) < 0 ||
            (r = append_sv(reply, "ConfigFile", 's', model->config->path)) < 0 ||
            (r = append_sv(reply, "LastError", 's', strempty(model->last_error))) < 0 ||
            (r = append_sv(reply, "Operation", 's', op_name(model))) < 0 ||
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

/* The versions in the store, read from the meta.json files the agent wrote (never from weights). */
static int method_list_versions(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = control_manager(userdata);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(strv_freep) char **ids = NULL;
        _cleanup_close_ int dirfd = -EBADF, vfd = -EBADF;
        const char *name;
        Model *model;
        DIR *d;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        dirfd = open(model->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0)
                vfd = openat(dirfd, "versions", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (vfd >= 0 && (d = fdopendir(TAKE_FD(vfd)))) {
                struct dirent *de;
                while ((de = readdir(d)))
                        if (version_id_is_valid(de->d_name) && strv_length(ids) < 10000)
                                (void) strv_extend(&ids, de->d_name);
                closedir(d);
        }
        for (size_t i = 0; ids && ids[i]; i++)
                for (size_t k = i + 1; ids[k]; k++)
                        if (version_id_compare(ids[i], ids[k]) > 0) {
                                char *t = ids[i];
                                ids[i] = ids[k];
                                ids[k] = t;
                        }

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        /* id, origin, state, plaintext bytes, installed (µs since the epoch), label */
        r = sd_bus_message_open_container(reply, 'a', "(ssstts)");
        if (r < 0)
                return r;
        STRV_FOREACH(id, ids) {
                _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
                ModelStateFile *s = model->state;
                const char *probation = json_string_value(json_object_get(s->probation, "version"));
                char state[96] = "";

                if (version_meta_load(dirfd, *id, &meta) < 0)
                        continue; /* incomplete or foreign: not a version */
                snprintf(state, sizeof(state), "%s%s%s%s%s", streq_ptr(*id, s->active) ? "active," : "",
                         streq_ptr(*id, s->previous) ? "previous," : "", streq_ptr(*id, s->last_good) ? "good," : "",
                         streq_ptr(*id, probation) ? "probation," : "",
                         model_state_file_is_quarantined(s, *id) ? "quarantined," : "");
                if (state[0])
                        state[strlen(state) - 1] = 0;
                r = sd_bus_message_append(reply, "(ssstts)", *id, meta->origin, state, meta->total_size, meta->installed,
                                          strempty(meta->label));
                if (r < 0)
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

/* Common errors of operations, in words for modelkeeperctl. */
static int op_error(sd_bus_error *error, int r, Model *model) {
        if (r == -EBUSY)
                return sd_bus_error_setf(error, "dev.modelkeeper.Busy", "Model %s is busy (%s); try again when it is done.",
                                         model->name, op_name(model));
        return model_error_to_bus(model, r, error);
}

static void caller_description(sd_bus_message *msg, char *buf, size_t size) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid = (uid_t) -1;

        if (sd_bus_get_owner_creds(sd_bus_message_get_bus(msg), SD_BUS_CREDS_EUID, &creds) >= 0)
                (void) sd_bus_creds_get_euid(creds, &uid);
        snprintf(buf, size, "operator (uid %d) via the control API", (int) uid);
}

static int method_rollback(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name, *version;
        char who[96];
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "ss", &name, &version);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        if (*version && !version_id_is_valid(version))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid version '%s'.", version);
        if (*version && faccessat(AT_FDCWD, model->dir, F_OK, 0) >= 0) {
                _cleanup_close_ int fd = open(model->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
                if (fd < 0 || version_meta_load(fd, version, &meta) < 0)
                        return sd_bus_error_setf(error, "dev.modelkeeper.NoSuchVersion",
                                                 "Version %s of %s is not (completely) in the store.", version, name);
        }
        caller_description(msg, who, sizeof(who));
        /* Answered when the rollback has completed (or failed). */
        r = model_rollback(model, *version ? version : NULL, who, NULL, msg);
        if (r < 0)
                return op_error(error, r, model);
        return 1;
}

static int method_hold(sd_bus_message *msg, void *userdata, sd_bus_error *error, bool hold) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name;
        char who[96];
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        caller_description(msg, who, sizeof(who));
        r = model_set_hold(model, hold, who);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        manager_update_status(m);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_hold_on(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return method_hold(msg, userdata, error, true);
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name, *version;
        char who[96];
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "ss", &name, &version);
        if (r < 0)
                return r;
        if (!*version) {
                /* Release(model, "") lifts a hold, like Hold's counterpart. */
                r = sd_bus_message_rewind(msg, true);
                if (r < 0)
                        return r;
                return method_hold(msg, userdata, error, false);
        }
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        caller_description(msg, who, sizeof(who));
        r = model_unquarantine(model, version, who);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, "dev.modelkeeper.NotQuarantined", "Version %s of %s is not quarantined.",
                                         version, name);
        if (r < 0)
                return sd_bus_error_set_errno(error, r);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_import(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name, *dir, *version;
        int activate;
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "sssb", &name, &dir, &version, &activate);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        if (!path_is_absolute(dir))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "'%s' is not an absolute path.", dir);
        if (*version && !version_id_is_valid(version))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid version '%s'.", version);
        r = model_import(model, dir, *version ? version : NULL, activate, msg);
        if (r < 0)
                return op_error(error, r, model);
        return 1;
}

static int method_update(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name;
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        r = model_check_update(model, msg, "operator request");
        if (r < 0)
                return op_error(error, r, model);
        return 1;
}

static int method_recompress(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name, *profile;
        char who[96];
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "ss", &name, &profile);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        caller_description(msg, who, sizeof(who));
        r = model_recompress(model, profile, who, NULL, msg);
        if (r < 0)
                return op_error(error, r, model);
        return 1;
}

static int method_scrub(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Control *c = userdata;
        Manager *m = control_manager(c);
        const char *name;
        Model *model;
        int r;

        r = control_check_admin(c, msg, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        model = find_model_or_error(m, name, error);
        if (!model)
                return -ENOENT;
        r = model_scrub(model, msg, "operator request");
        if (r < 0)
                return op_error(error, r, model);
        return 1;
}

const sd_bus_vtable control_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("ListModels", SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(sssss)", models /* name, state, active, previous, operation */),
                                method_list_models, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetModel", SD_BUS_ARGS("s", name), SD_BUS_RESULT("a{sv}", properties),
                                method_get_model, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListVersions", SD_BUS_ARGS("s", name),
                                SD_BUS_RESULT("a(ssstts)", versions /* id, origin, state, size, installed, label */),
                                method_list_versions, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Rollback", SD_BUS_ARGS("s", name, "s", version), SD_BUS_RESULT("s", active),
                                method_rollback, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Update", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", outcome), method_update,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Recompress", SD_BUS_ARGS("s", name, "s", profile), SD_BUS_RESULT("s", active),
                                method_recompress, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Scrub", SD_BUS_ARGS("s", name), SD_BUS_RESULT("s", outcome), method_scrub,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Hold", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_hold_on,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("s", name, "s", version), SD_BUS_NO_RESULT, method_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Import", SD_BUS_ARGS("s", name, "s", directory, "s", version, "b", activate),
                                SD_BUS_RESULT("s", version), method_import, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("JobProgress", SD_BUS_ARGS("s", model, "t", job, "s", verb, "s", phase, "t", done, "t", total), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobFinished", SD_BUS_ARGS("s", model, "t", job, "s", verb, "b", ok, "s", reason), 0),
        SD_BUS_VTABLE_END,
};
