/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>

#include "control.h"
#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "parse-util.h"
#include "serve.h"
#include "store-layout.h"
#include "strv.h"
#include "watch.h"

static const char *const model_state_table[_MODEL_STATE_MAX] = {
        [MODEL_STATE_IDLE] = "idle",           [MODEL_STATE_OK] = "ok",
        [MODEL_STATE_BUSY] = "busy",           [MODEL_STATE_PROBATION] = "probation",
        [MODEL_STATE_HELD] = "held",           [MODEL_STATE_FAILED] = "failed",
};

const char *model_state_to_string(ModelState s) {
        return s >= 0 && s < _MODEL_STATE_MAX ? model_state_table[s] : NULL;
}

static const char *const activation_kind_table[_ACTIVATION_KIND_MAX] = {
        [ACTIVATION_UPDATE] = "update",       [ACTIVATION_IMPORT] = "import",
        [ACTIVATION_RECOMPRESS] = "recompress", [ACTIVATION_ROLLBACK] = "rollback",
        [ACTIVATION_RESTORE] = "restore",
};

const char *activation_kind_to_string(ActivationKind k) {
        return k >= 0 && k < _ACTIVATION_KIND_MAX ? activation_kind_table[k] : NULL;
}

ActivationKind activation_kind_from_string(const char *s) {
        for (int i = 0; s && i < _ACTIVATION_KIND_MAX; i++)
                if (streq(activation_kind_table[i], s))
                        return (ActivationKind) i;
        return _ACTIVATION_KIND_INVALID;
}

int model_new(Manager *m, ModelConfig *config, Model **ret) {
        _cleanup_(model_freep) Model *model = NULL;
        _cleanup_free_ char *models = NULL;
        int r;

        model = calloc(1, sizeof(Model));
        if (!model)
                return -ENOMEM;
        model->manager = m;
        model->name = strdup(config->name);
        models = path_join(m->config ? m->config->daemon.state_directory : "/nonexistent", "models");
        if (!model->name || !models)
                return -ENOMEM;
        model->dir = path_join(models, config->name);
        if (!model->dir)
                return -ENOMEM;
        r = model_state_file_new(&model->state);
        if (r < 0)
                return r;
        model->config = config;
        *ret = TAKE_PTR(model);
        return 0;
}

static ModelOp *model_op_free(ModelOp *op) {
        if (!op)
                return NULL;
        free(op->to);
        free(op->from);
        free(op->previous_before);
        free(op->failure);
        free(op->suspect);
        free(op->result);
        free(op->reason);
        free(op->rule);
        free(op->import_dir);
        sd_bus_message_unref(op->reply);
        free(op);
        return NULL;
}

Model *model_free(Model *model) {
        if (!model)
                return NULL;
        model_watch_stop(model);
        model_update_stop(model);
        model_scrub_stop(model);
        model_abort(model, "model removed");
        model_config_free(model->config);
        model_state_file_free(model->state);
        free(model->name);
        free(model->dir);
        free(model->last_error);
        free(model);
        return NULL;
}

void model_set_config(Model *model, ModelConfig *config) {
        model_config_free(model->config);
        model->config = config;
        /* Rules, scrape targets and the rollout may all have changed: start watching afresh. */
        if (model->started) {
                model_watch_stop(model);
                (void) model_watch_start(model);
                (void) model_update_start(model);
        }
}

ModelState model_get_state(const Model *model) {
        if (model->op)
                return MODEL_STATE_BUSY;
        if (model->state->hold)
                return MODEL_STATE_HELD;
        if (model->state->probation)
                return MODEL_STATE_PROBATION;
        if (model->last_error)
                return MODEL_STATE_FAILED;
        if (model->state->active)
                return MODEL_STATE_OK;
        return MODEL_STATE_IDLE;
}

static int model_save(Model *model) {
        int r = model_state_file_save(model->dir, model->state);
        if (r < 0)
                log_error_errno(r, "Model %s: failed to write state.json: %m", model->name);
        return r;
}

static void model_set_error(Model *model, const char *reason) {
        free(model->last_error);
        model->last_error = reason ? strdup(reason) : NULL;
}

static ModelRequest *model_request_free(ModelRequest *q) {
        if (!q)
                return NULL;
        free(q->dir);
        free(q->id);
        free(q->reason);
        sd_bus_message_unref(q->reply);
        free(q);
        return NULL;
}

static int run_request(Model *model, ModelRequest *q) {
        if (q->type == OP_IMPORT)
                return model_import(model, q->dir, q->id, q->activate, q->reply);
        if (q->type == OP_UPDATE)
                return model_check_update(model, q->reply, q->reason);
        if (q->type == OP_RECOMPRESS)
                return model_recompress(model, q->id, q->reason, NULL, q->reply);
        if (q->type == OP_SCRUB)
                return model_scrub(model, q->reply, q->reason);
        return model_rollback(model, q->id, q->reason, NULL, q->reply);
}

/* Operation errors in words, for the control API (also for requests that waited in the queue). */
int model_error_to_bus(const Model *model, int r, sd_bus_error *error) {
        if (r == -EBUSY)
                return sd_bus_error_setf(error, "dev.modelkeeper.Busy", "Model %s is busy; try again when it is done.",
                                         model->name);
        if (r == -EALREADY)
                return sd_bus_error_setf(error, "dev.modelkeeper.AlreadyActive", "That version of %s is already active.",
                                         model->name);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, "dev.modelkeeper.NoSuchVersion", "No such version of %s to switch to.",
                                         model->name);
        if (r == -ENOMEDIUM)
                return sd_bus_error_setf(error, "dev.modelkeeper.NoSource", "Model %s has no source: section.",
                                         model->name);
        if (r == -ENOPKG)
                return sd_bus_error_setf(error, "dev.modelkeeper.NoSuchProfile",
                                         "Model %s has no such recompress profile.", model->name);
        if (r == -EKEYREVOKED)
                return sd_bus_error_setf(error, "dev.modelkeeper.Quarantined",
                                         "That version of %s is quarantined; `modelkeeperctl release MODEL VERSION` "
                                         "lifts it.", model->name);
        if (r == -EINVAL)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument.");
        return sd_bus_error_set_errno(error, r);
}

static int on_dispatch_requests(sd_event_source *s, void *userdata) {
        Model *model = userdata;

        while (!model->op && model->requests) {
                ModelRequest *q = model->requests;
                int r;

                model->requests = q->next;
                model->n_requests--;
                r = run_request(model, q);
                if (r < 0 && q->reply) {
                        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                        (void) model_error_to_bus(model, r, &e);
                        (void) sd_bus_reply_method_error(q->reply, &e);
                }
                model_request_free(q);
        }
        return 0;
}

static void schedule_requests(Model *model) {
        if (!model->requests || model->op)
                return;
        if (!model->dispatch_source &&
            sd_event_add_defer(model->manager->event, &model->dispatch_source, on_dispatch_requests, model) < 0)
                return;
        (void) sd_event_source_set_enabled(model->dispatch_source, SD_EVENT_ONESHOT);
}

/* Queue an operator request behind the running operation (answered when it has run). */
int model_enqueue(Model *model, OpType type, const char *dir, const char *id, bool activate, const char *reason,
                         sd_bus_message *reply) {
        ModelRequest *q, **p;

        if (model->n_requests >= MODEL_REQUESTS_MAX)
                return -EBUSY;
        q = calloc(1, sizeof(ModelRequest));
        if (!q)
                return -ENOMEM;
        q->type = type;
        q->activate = activate;
        q->dir = dir ? strdup(dir) : NULL;
        q->id = id ? strdup(id) : NULL;
        q->reason = reason ? strdup(reason) : NULL;
        q->reply = sd_bus_message_ref(reply);
        for (p = &model->requests; *p; p = &(*p)->next)
                ;
        *p = q;
        model->n_requests++;
        return 0;
}

/* End the current operation and answer whoever waits for it. */
void model_op_finish(Model *model, int error, const char *reason) {
        ModelOp *op = model->op;

        if (!op)
                return;
        model->op = NULL;
        model_set_error(model, error < 0 ? reason : NULL);
        if (op->reply) {
                if (error < 0)
                        (void) sd_bus_reply_method_errorf(op->reply, "dev.modelkeeper.OperationFailed", "%s",
                                                          reason ?: strerror(-error));
                else
                        (void) sd_bus_reply_method_return(op->reply, "s", op->result ?: strempty(op->to));
        }
        model_op_free(op);
        manager_update_status(model->manager);
        schedule_requests(model);
}

void model_op_finish_with(Model *model, int error, const char *text) {
        if (model->op && text && error >= 0) {
                free(model->op->result);
                model->op->result = strdup(text);
        }
        model_op_finish(model, error, text);
}

void model_abort(Model *model, const char *why) {
        if (model->serve_op) {
                serve_op_cancel(model->serve_op);
                model->serve_op = NULL;
        }
        if (model->job) {
                Job *j = model->job;
                model->job = NULL;
                j->done = NULL; /* nobody is listening any more */
                job_cancel(j, why);
        }
        model_op_finish(model, -ECANCELED, why);
        while (model->requests) {
                ModelRequest *q = model->requests;
                model->requests = q->next;
                if (q->reply)
                        (void) sd_bus_reply_method_errorf(q->reply, "dev.modelkeeper.OperationFailed", "%s", why);
                model_request_free(q);
        }
        model->n_requests = 0;
        model->dispatch_source = sd_event_source_disable_unref(model->dispatch_source);
}

int model_op_new(Model *model, OpType type, sd_bus_message *reply) {
        ModelOp *op;

        if (model->op)
                return -EBUSY;
        op = calloc(1, sizeof(ModelOp));
        if (!op)
                return -ENOMEM;
        op->type = type;
        op->reply = sd_bus_message_ref(reply);
        model->op = op;
        return 0;
}

int model_submit(Model *model, const char *verb, char **args, JobDoneFn done) {
        Job *j = NULL;
        int r;

        r = manager_submit_job(model->manager, model, verb, args, 0, done, model, &j);
        if (r < 0)
                return r;
        model->job = j;
        model->job_id = j->id;
        return 0;
}

static void log_job_failed(Model *model, const char *verb, const char *version, const char *reason) {
        char job[32];

        snprintf(job, sizeof(job), "%" PRIu64, model->job_id);
        log_event(LOG_ERR, 0,
                  &(LogFields){.message_id = MK_MESSAGE_JOB_FAILED, .model = model->name, .version = version,
                               .action = verb, .job = job, .reason = reason},
                  "Model %s: %s%s%s failed: %s", model->name, verb, version ? " of version " : "", strempty(version),
                  reason);
}

/* --- gc ----------------------------------------------------------------------------------- */

static void on_gc_done(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        json_t *removed = json_object_get(data, "removed");

        model->job = NULL;
        if (error < 0) {
                log_job_failed(model, "gc", NULL, reason);
                model_op_finish(model, error, reason);
                return;
        }
        if (json_array_size(removed) > 0) {
                _cleanup_free_ char *list = json_dumps(removed, JSON_COMPACT);
                char freed[FORMAT_BYTES_MAX + 32], job[32];

                snprintf(job, sizeof(job), "%" PRIu64, j->id);
                snprintf(freed, sizeof(freed), "%" PRIu64 " bytes freed",
                         (uint64_t) json_integer_value(json_object_get(data, "freed")));
                log_event(LOG_INFO, 0,
                          &(LogFields){.message_id = MK_MESSAGE_GC, .model = model->name, .action = "gc", .job = job,
                                       .reason = freed},
                          "Model %s: removed old versions %s (%s).", model->name, strna(list), freed);
        }
        model_op_finish(model, 0, NULL);
}

static int gc_args(Model *model, char ***ret) {
        _cleanup_(strv_freep) char **args = NULL;
        const char *protect[] = {model->state->last_good, model->state->active, model->state->previous};
        json_t *probation_version = json_object_get(model->state->probation, "version");

        for (size_t i = 0; i < ELEMENTSOF(protect); i++)
                if (protect[i] && (strv_extend(&args, "--protect") < 0 || strv_extend(&args, protect[i]) < 0))
                        return -ENOMEM;
        if (json_is_string(probation_version) &&
            (strv_extend(&args, "--protect") < 0 || strv_extend(&args, json_string_value(probation_version)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(args);
        return 0;
}

int model_gc(Model *model) {
        _cleanup_(strv_freep) char **args = NULL;
        int r;

        r = model_op_new(model, OP_GC, NULL);
        if (r < 0)
                return r;
        r = gc_args(model, &args);
        if (r >= 0)
                r = model_submit(model, "gc", args, on_gc_done);
        if (r < 0)
                model_op_finish(model, r, "cannot start gc");
        return r;
}

/* --- activation --------------------------------------------------------------------------- */

static void activation_failed(Model *model, int error, const char *reason);

static int record_in_progress(Model *model) {
        ModelOp *op = model->op;
        char ts[TIMESTAMP_MAX];

        json_decref(model->state->in_progress);
        model->state->in_progress = json_pack("{s:s, s:s, s:s?, s:s, s:s?, s:s?, s:s}", "op", "activate", "to", op->to,
                                              "from", op->from, "kind", activation_kind_to_string(op->kind), "reason",
                                              op->reason, "rule", op->rule, "since",
                                              format_timestamp(ts, now_realtime_usec()));
        if (!model->state->in_progress)
                return -ENOMEM;
        return model_save(model);
}

int model_promote(Model *model, const char *version, const char *reason) {
        (void) model_state_file_set(&model->state->last_good, version);
        json_decref(model->state->probation);
        model->state->probation = NULL;
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_PROMOTED, .model = model->name, .version = version,
                               .action = "promote", .reason = reason},
                  "Model %s: version %s promoted (%s).", model->name, version, strna(reason));
        return model_save(model);
}

int model_quarantine(Model *model, const char *version, const char *reason) {
        int r = model_state_file_quarantine(model->state, version);
        if (r < 0)
                return r;
        log_event(LOG_WARNING, 0,
                  &(LogFields){.message_id = MK_MESSAGE_QUARANTINED, .model = model->name, .version = version,
                               .action = "quarantine", .reason = reason},
                  "Model %s: version %s quarantined: %s", model->name, version, strna(reason));
        return model_save(model);
}

static void activation_done(Model *model) {
        ModelOp *op = model->op;
        bool new_version = op->kind == ACTIVATION_UPDATE || op->kind == ACTIVATION_IMPORT ||
                           op->kind == ACTIVATION_RECOMPRESS;
        int r;

        json_decref(model->state->in_progress);
        model->state->in_progress = NULL;

        /* A new version is judged by the rollout analysis when the model has one (probation); without
         * one it is good as soon as it serves. Rollbacks go to versions that were good before. */
        if (new_version && !op->failure) {
                r = model_watch_activated(model, op->to, op->from, op->kind);
                if (r < 0)
                        log_warning_errno(r, "Model %s: cannot start the rollout analysis of version %s (%m); "
                                             "promoting it.", model->name, op->to);
                if (r <= 0)
                        (void) model_promote(model, op->to, model->config->rollout
                                                                     ? "rollout analysis unavailable"
                                                                     : "no rollout analysis configured: promoted once ready");
        } else if (!new_version)
                (void) model_watch_activated(model, op->to, op->from, op->kind);
        (void) model_save(model);
        if (op->failure) {
                /* What was asked for failed, even though what served before is back. */
                _cleanup_free_ char *failure = TAKE_PTR(op->failure);
                model_op_finish(model, -EIO, failure);
                return;
        }
        model_op_finish(model, 0, NULL);

        /* Old versions go once the new one is in place. */
        if (model_gc(model) < 0)
                log_debug("Model %s: gc not started.", model->name);
}

static void on_ready(Model *model, int error, const char *reason, void *userdata) {
        ModelOp *op = model->op;
        char buf[700];

        if (!op)
                return;
        if (error < 0) {
                snprintf(buf, sizeof(buf), "model server not ready: %s", reason);
                /* Up but never ready with this version: the version's fault. Not reachable at all:
                 * the host's or the version's; the restore tells (see the suspect in on_ready). */
                op->serving_failed = error == -EPROTO;
                op->serving_unreachable = !op->serving_failed;
                log_event(LOG_WARNING, 0,
                          &(LogFields){.message_id = MK_MESSAGE_SERVE_READY, .model = model->name, .version = op->to,
                                       .from_version = op->from, .action = "ready", .reason = buf},
                          "Model %s: version %s did not become ready: %s", model->name, op->to, reason);
                activation_failed(model, error, buf);
                return;
        }
        if (model->config->serve.ready_url)
                log_event(LOG_INFO, 0,
                          &(LogFields){.message_id = MK_MESSAGE_SERVE_READY, .model = model->name, .version = op->to,
                                       .from_version = op->from, .action = "ready",
                                       .reason = model->config->serve.ready_url},
                          "Model %s: version %s is ready.", model->name, op->to);
        if (op->kind == ACTIVATION_RESTORE && op->suspect &&
            (model->config->serve.ready_url || model->config->serve.reload != RELOAD_NONE)) {
                /* The same server that could not be reached with the new version is fine with the
                 * old one again: the new version is what brought it down (a crash on load, say). */
                _cleanup_free_ char *why = xasprintf("the model server was unreachable with version %s and is ready "
                                                     "again with version %s",
                                                     op->suspect, op->to);
                (void) model_state_file_quarantine(model->state, op->suspect);
                log_event(LOG_WARNING, 0,
                          &(LogFields){.message_id = MK_MESSAGE_QUARANTINED, .model = model->name,
                                       .version = op->suspect, .from_version = op->to, .action = "quarantine",
                                       .reason = why},
                          "Model %s: version %s quarantined: %s.", model->name, op->suspect, why);
        }
        activation_done(model);
}

static void on_reloaded(Model *model, int error, const char *reason, void *userdata) {
        ModelOp *op = model->op;
        char buf[700];
        const ServeConfig *sc = &model->config->serve;
        const char *how = sc->reload == RELOAD_SYSTEMD ? sc->unit : sc->reload == RELOAD_HTTP ? sc->http_url
                          : sc->reload == RELOAD_EXEC  ? sc->exec[0]
                                                       : "none";

        if (!op)
                return;
        if (error < 0) {
                snprintf(buf, sizeof(buf), "model server reload failed: %s", reason);
                /* It answered and refused (HTTP error, command failed, unit job failed): the version's
                 * fault. Unreachable or timed out: the restore tells whose. */
                op->serving_failed = error == -EIO;
                op->serving_unreachable = !op->serving_failed;
                log_event(LOG_WARNING, 0,
                          &(LogFields){.message_id = MK_MESSAGE_SERVE_RELOAD, .model = model->name, .version = op->to,
                                       .from_version = op->from, .action = "reload", .reason = buf},
                          "Model %s: telling the model server about version %s failed: %s", model->name, op->to,
                          reason);
                activation_failed(model, error, buf);
                return;
        }
        if (sc->reload != RELOAD_NONE)
                log_event(LOG_INFO, 0,
                          &(LogFields){.message_id = MK_MESSAGE_SERVE_RELOAD, .model = model->name, .version = op->to,
                                       .from_version = op->from, .action = "reload", .reason = how},
                          "Model %s: model server told to load version %s (%s, %s).", model->name, op->to,
                          reload_kind_to_string(sc->reload), how);
        if (serve_wait_ready(model, on_ready, NULL, NULL) < 0)
                activation_failed(model, -ENOMEM, "cannot start the readiness check");
}

static void on_activate_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        ModelOp *op = model->op;
        char job[32];
        bool rollback;

        model->job = NULL;
        if (!op)
                return;
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        if (error < 0) {
                log_job_failed(model, j->verb, op->to, reason);
                activation_failed(model, error, reason);
                return;
        }
        /* The journal names the version we switched away from, whatever "previous" becomes. */
        _cleanup_free_ char *was = model->state->active ? strdup(model->state->active) : NULL;

        /* The links now say: current = to, previous = from. */
        (void) model_state_file_set(&model->state->active, op->to);
        if (op->from && !streq(op->from, op->to))
                (void) model_state_file_set(&model->state->previous, op->from);
        (void) model_save(model);

        rollback = op->kind == ACTIVATION_ROLLBACK || op->kind == ACTIVATION_RESTORE;
        log_event(rollback ? LOG_NOTICE : LOG_INFO, 0,
                  &(LogFields){.message_id = rollback ? MK_MESSAGE_ROLLBACK : MK_MESSAGE_ACTIVATED, .model = model->name,
                               .version = op->to, .from_version = streq_ptr(was, op->to) ? NULL : was,
                               .action = rollback ? "rollback" : "activate", .rule = op->rule, .job = job,
                               .reason = op->reason},
                  "Model %s: %s version %s%s%s (%s).", model->name, rollback ? "rolled back to" : "activated", op->to,
                  was && !streq(was, op->to) ? ", previously " : "", was && !streq(was, op->to) ? was : "",
                  strna(op->reason));

        if (serve_reload(model, op->to, on_reloaded, NULL, NULL) < 0)
                activation_failed(model, -ENOMEM, "cannot start the model server reload");
}

static int start_activation_job(Model *model) {
        ModelOp *op = model->op;
        _cleanup_(strv_freep) char **args = NULL;
        bool instant = op->kind == ACTIVATION_ROLLBACK || op->kind == ACTIVATION_RESTORE;
        int r;

        r = record_in_progress(model);
        if (r < 0)
                return r;
        if (strv_extend(&args, op->to) < 0 || (op->from && (strv_extend(&args, "--from") < 0 ||
                                                            strv_extend(&args, op->from) < 0)))
                return -ENOMEM;
        return model_submit(model, instant ? "rollback" : "activate", args, on_activate_job);
}

/* A step of an activation failed: put back what served before (once), quarantine a new version
 * that never became ready, and report. */
static void activation_failed(Model *model, int error, const char *reason) {
        ModelOp *op = model->op;
        bool new_version = op->kind == ACTIVATION_UPDATE || op->kind == ACTIVATION_IMPORT ||
                           op->kind == ACTIVATION_RECOMPRESS;
        _cleanup_free_ char *failed = strdup(op->to), *why = strdup(reason ?: strerror(-error));
        int r;

        /* A version that failed verification (corrupt or tampered: -EBADMSG), or a new one that the
         * model server could not load or never became ready with, is not offered again. A host problem (I/O error, no
         * space, the agent killed by a timeout or the OOM killer) is not the version's fault. */
        if (error == -EBADMSG || (new_version && op->serving_failed)) {
                char job[32];
                snprintf(job, sizeof(job), "%" PRIu64, model->job_id);
                (void) model_state_file_quarantine(model->state, op->to);
                log_event(LOG_WARNING, 0,
                          &(LogFields){.message_id = MK_MESSAGE_QUARANTINED, .model = model->name, .version = op->to,
                                       .from_version = op->from, .action = "quarantine", .job = job, .reason = why},
                          "Model %s: version %s quarantined: %s", model->name, op->to, strna(why));
        }

        /* Put back exactly what served before (current = from, previous = what it was), recorded
         * first like any activation. Harmless when nothing had switched yet: every step of an
         * activation is atomic and idempotent. Only once: a failing restore is reported. */
        if (!op->failed_once && op->from && op->kind != ACTIVATION_RESTORE && error != -ECANCELED) {
                _cleanup_free_ char *restore_reason = NULL;

                op->failed_once = true;
                if (new_version && op->serving_unreachable && !op->serving_failed)
                        op->suspect = strdup(strna(failed));
                restore_reason = xasprintf("version %s failed: %s", strna(failed), strna(why));
                free(op->failure);
                op->failure = xasprintf("version %s failed (%s); version %s restored", strna(failed), strna(why),
                                        strna(op->from));
                free(op->to);
                op->to = op->from;
                /* previous goes back to what it was; with none before, it names the failed version. */
                op->from = op->previous_before ? TAKE_PTR(op->previous_before) : strdup(strna(failed));
                op->kind = ACTIVATION_RESTORE;
                free(op->reason);
                op->reason = TAKE_PTR(restore_reason);
                r = start_activation_job(model);
                if (r >= 0)
                        return;
                log_error_errno(r, "Model %s: cannot restore version %s: %m", model->name, op->to);
        }

        /* Nothing (more) to undo. A restart re-checks the store against state.json anyway. */
        json_decref(model->state->in_progress);
        model->state->in_progress = NULL;
        (void) model_save(model);
        model_op_finish(model, error, why);
}

int model_activate(Model *model, const char *to, const char *from, ActivationKind kind, const char *reason,
                   const char *rule, sd_bus_message *reply) {
        ModelOp *op;
        int r;

        if (!version_id_is_valid(to))
                return -EINVAL;
        r = model_op_new(model, OP_ACTIVATE, reply);
        if (r < 0)
                return r;
        op = model->op;
        op->kind = kind;
        op->to = strdup(to);
        op->from = from ? strdup(from) : model->state->active ? strdup(model->state->active) : NULL;
        op->previous_before = model->state->previous ? strdup(model->state->previous) : NULL;
        op->reason = reason ? strdup(reason) : NULL;
        op->rule = rule ? strdup(rule) : NULL;
        if (!op->to || (op->from && streq(op->from, op->to)))
                op->from = mfree(op->from);
        /* The old version still serves: the last moment to measure it for baseline(…). */
        model_watch_before_activation(model, op->to, kind);
        r = start_activation_job(model);
        if (r < 0) {
                /* Nothing happened: no reply here, the caller reports r. */
                op->reply = sd_bus_message_unref(op->reply);
                model_op_finish(model, r, "cannot start the activation");
        }
        return r;
}

int model_rollback(Model *model, const char *to, const char *reason, const char *rule, sd_bus_message *reply) {
        ModelStateFile *s = model->state;

        /* An operator's request waits for the running operation; its target is chosen then. */
        if (model->op && reply && !rule)
                return model_enqueue(model, OP_ACTIVATE, NULL, to, false, reason, reply);

        if (!to) {
                /* Automatic choice: the last good version, else the previous one. */
                if (s->last_good && !streq_ptr(s->last_good, s->active))
                        to = s->last_good;
                else if (s->previous && !streq_ptr(s->previous, s->active))
                        to = s->previous;
                else
                        return -ENOENT;
        }
        if (streq_ptr(to, s->active))
                return -EALREADY;
        /* Never back to a version judged bad (failed probation, not ready, corrupt at rest) unless
         * an operator released it first. */
        if (model_state_file_is_quarantined(s, to))
                return -EKEYREVOKED;
        return model_activate(model, to, s->active, ACTIVATION_ROLLBACK, reason ?: "operator request", rule, reply);
}

/* --- import ------------------------------------------------------------------------------- */

static void on_import_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        ModelOp *op = model->op;
        const char *id = json_string_value(json_object_get(data, "id"));
        char job[32];
        int r;

        model->job = NULL;
        if (!op)
                return;
        if (error < 0 || !id || !version_id_is_valid(id)) {
                log_job_failed(model, "import", op->to, reason ?: "agent reported no version id");
                model_op_finish(model, error < 0 ? error : -EPROTO, reason ?: "agent reported no version id");
                return;
        }
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_IMPORTED, .model = model->name, .version = id,
                               .action = "import", .job = job, .reason = op->import_dir},
                  "Model %s: imported version %s from %s (%" PRIu64 " bytes).", model->name, id, op->import_dir,
                  (uint64_t) json_integer_value(json_object_get(data, "total_size")));
        if (!op->then_activate) {
                (void) model_state_file_set(&op->to, id);
                model_op_finish(model, 0, NULL);
                return;
        }
        /* Continue as an activation of the new version, answering the same caller. */
        {
                sd_bus_message *reply = sd_bus_message_ref(op->reply);
                _cleanup_free_ char *why = NULL;

                why = xasprintf("imported from %s", op->import_dir);
                op->reply = sd_bus_message_unref(op->reply);
                model_op_finish(model, 0, NULL);
                r = model_activate(model, id, NULL, ACTIVATION_IMPORT, why, NULL, reply);
                if (r < 0 && reply)
                        (void) sd_bus_reply_method_errorf(reply, "dev.modelkeeper.OperationFailed",
                                                          "Imported version %s, but cannot activate it: %s", id,
                                                          strerror(-r));
                sd_bus_message_unref(reply);
        }
}

int model_import(Model *model, const char *dir, const char *id, bool activate, sd_bus_message *reply) {
        _cleanup_(strv_freep) char **args = NULL;
        int r;

        if (!path_is_absolute(dir) || (id && !version_id_is_valid(id)))
                return -EINVAL;
        if (model->op && reply)
                return model_enqueue(model, OP_IMPORT, dir, id, activate, NULL, reply);
        r = model_op_new(model, OP_IMPORT, reply);
        if (r < 0)
                return r;
        model->op->import_dir = strdup(dir);
        model->op->then_activate = activate;
        model->op->to = id ? strdup(id) : NULL;
        if (strv_extend(&args, dir) < 0 || (id && (strv_extend(&args, "--id") < 0 || strv_extend(&args, id) < 0)))
                r = -ENOMEM;
        else
                r = model_submit(model, "import", args, on_import_job);
        if (r < 0) {
                model->op->reply = sd_bus_message_unref(model->op->reply);
                model_op_finish(model, r, "cannot start the import");
        }
        return r;
}

/* --- hold, quarantine --------------------------------------------------------------------- */

int model_set_hold(Model *model, bool hold, const char *who) {
        if (model->state->hold == hold)
                return 0;
        model->state->hold = hold;
        log_event(LOG_NOTICE, 0,
                  &(LogFields){.message_id = MK_MESSAGE_HOLD, .model = model->name, .version = model->state->active,
                               .action = hold ? "hold" : "release", .reason = who},
                  "Model %s %s by %s.", model->name, hold ? "put on hold (no automatic actions)" : "released from hold",
                  who);
        return model_save(model);
}

int model_unquarantine(Model *model, const char *id, const char *who) {
        int r = model_state_file_unquarantine(model->state, id);
        if (r <= 0)
                return r == 0 ? -ENOENT : r;
        log_event(LOG_NOTICE, 0,
                  &(LogFields){.message_id = MK_MESSAGE_QUARANTINED, .model = model->name, .version = id,
                               .action = "unquarantine", .reason = who},
                  "Model %s: version %s released from quarantine by %s.", model->name, id, who);
        return model_save(model);
}

/* --- start-up ----------------------------------------------------------------------------- */

static void on_reconcile_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        ModelStateFile *s = model->state;
        json_t *fixed = json_object_get(data, "fixed"), *removed = json_object_get(data, "staging_removed");
        json_t *versions = json_object_get(data, "versions"), *ip = s->in_progress;
        const char *current = json_string_value(json_object_get(data, "current"));
        const char *previous = json_string_value(json_object_get(data, "previous"));
        char job[32];
        int r;

        model->job = NULL;
        model->started = true;
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        r = model_watch_start(model);
        if (r < 0)
                log_error_errno(r, "Model %s: cannot start watching its metrics: %m", model->name);
        (void) model_update_start(model);
        (void) model_scrub_start(model);
        if (error < 0) {
                log_job_failed(model, "reconcile", NULL, reason);
                model_op_finish(model, error, reason);
                return;
        }
        if (json_array_size(fixed) > 0 || json_array_size(removed) > 0) {
                _cleanup_free_ char *f = json_dumps(fixed, JSON_COMPACT), *rm = json_dumps(removed, JSON_COMPACT);
                _cleanup_free_ char *why = NULL;
                why = xasprintf("fixed %s, staging removed %s", strna(f), strna(rm));
                log_event(LOG_NOTICE, 0,
                          &(LogFields){.message_id = MK_MESSAGE_RECONCILED, .model = model->name, .version = current,
                                       .action = "reconcile", .job = job, .reason = why},
                          "Model %s: store repaired at start-up: %s.", model->name, why);
        }

        /* The links are the physical truth of what serves. */
        if (!streq_ptr(s->active, current) || (previous && !streq_ptr(s->previous, previous))) {
                if (s->active || current)
                        log_event(LOG_NOTICE, 0,
                                  &(LogFields){.message_id = MK_MESSAGE_RECONCILED, .model = model->name,
                                               .version = current, .from_version = s->active, .action = "reconcile",
                                               .job = job, .reason = "state.json disagreed with the store"},
                                  "Model %s: state.json said version %s is active, the store says %s; following the store.",
                                  model->name, strna(s->active), strna(current));
                (void) model_state_file_set(&s->active, current);
                (void) model_state_file_set(&s->previous, previous);
        }
        model_op_finish(model, 0, NULL);

        /* A decision that a crash interrupted: carry it out (roll forward) when its target is in
         * the store, else put back what served before. */
        if (ip && streq_ptr(json_string_value(json_object_get(ip, "op")), "activate")) {
                const char *to = json_string_value(json_object_get(ip, "to"));
                const char *from = json_string_value(json_object_get(ip, "from"));
                ActivationKind kind = activation_kind_from_string(json_string_value(json_object_get(ip, "kind")));
                bool have_to = false, have_from = false;
                size_t i;
                json_t *v;
                _cleanup_free_ char *why = NULL, *to_copy = to ? strdup(to) : NULL,
                                    *from_copy = from ? strdup(from) : NULL;

                _cleanup_free_ char *since = strdup(strna(json_string_value(json_object_get(ip, "since"))));

                json_array_foreach(versions, i, v) {
                        have_to = have_to || streq_ptr(json_string_value(v), to);
                        have_from = have_from || streq_ptr(json_string_value(v), from);
                }
                /* ip (and to/from) die here: only the copies are used below. */
                json_decref(s->in_progress);
                s->in_progress = NULL;
                ip = NULL;
                if (kind < 0)
                        kind = ACTIVATION_ROLLBACK;
                if (to_copy && have_to) {
                        why = xasprintf("completing an activation interrupted at %s", strna(since));
                        r = model_activate(model, to_copy, from_copy, kind, why, NULL, NULL);
                } else if (from_copy && have_from) {
                        why = xasprintf("version %s of an interrupted activation is not in the store",
                                        strna(to_copy));
                        r = model_activate(model, from_copy, NULL, ACTIVATION_RESTORE, why, NULL, NULL);
                } else {
                        (void) model_save(model);
                        r = 0;
                }
                if (r < 0)
                        log_error_errno(r, "Model %s: cannot resume the interrupted activation: %m", model->name);
                return;
        }
        (void) model_save(model);
}

int model_start(Model *model) {
        _cleanup_(model_state_file_freep) ModelStateFile *s = NULL;
        int r;

        r = model_state_file_load(model->dir, &s);
        if (r < 0) {
                log_event(LOG_ERR, r,
                          &(LogFields){.message_id = MK_MESSAGE_RECONCILED, .model = model->name, .action = "reconcile",
                                       .reason = "state.json unreadable: rebuilt from the store"},
                          "Model %s: %s/state.json is unreadable (%m); rebuilding it from the store.", model->name,
                          model->dir);
                r = model_state_file_new(&s);
                if (r < 0)
                        return r;
        }
        model_state_file_free(model->state);
        model->state = TAKE_PTR(s);

        r = model_op_new(model, OP_RECONCILE, NULL);
        if (r < 0)
                return r;
        r = model_submit(model, "reconcile", NULL, on_reconcile_job);
        if (r < 0)
                model_op_finish(model, r, "cannot start reconciliation");
        return r;
}
