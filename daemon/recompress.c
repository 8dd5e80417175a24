/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Re-compression (DESIGN.md §7): the agent builds "<release>~<profile>" from the release parent of
 * what serves now, then it is activated like any new version — and so goes through the rollout
 * analysis (an accuracy gate) when the model has one, with rollback to the parent when it fails.
 */

#include <inttypes.h>
#include <math.h>

#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "parse-util.h"
#include "store-layout.h"
#include "strv.h"

/* The worst error over every converted tensor, for the journal's one-line summary. The agent's
 * statistics: {input file: {"files": {output file: {max_abs_error, rel_rmse, tensors: {…}}}}}. */
static void summarize(json_t *statistics, double *ret_max_abs, double *ret_rmse, unsigned *ret_tensors) {
        const char *file, *out, *name;
        json_t *f, *o, *t;

        *ret_max_abs = 0;
        *ret_rmse = 0;
        *ret_tensors = 0;
        json_object_foreach(statistics, file, f) {
                json_t *outs = json_object_get(f, "files");
                if (!json_is_object(outs))
                        continue;
                json_object_foreach(outs, out, o) {
                        double m = json_number_value(json_object_get(o, "max_abs_error"));
                        double e = json_number_value(json_object_get(o, "rel_rmse"));
                        if (isfinite(m) && m > *ret_max_abs)
                                *ret_max_abs = m;
                        if (isfinite(e) && e > *ret_rmse)
                                *ret_rmse = e;
                        json_object_foreach(json_object_get(o, "tensors"), name, t)
                                if (!streq_ptr(json_string_value(json_object_get(t, "action")), "copy"))
                                        (*ret_tensors)++;
                }
        }
}

static void on_recompress_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        ModelOp *op = model->op;
        const char *id = json_string_value(json_object_get(data, "id"));
        _cleanup_free_ char *why = NULL, *to = NULL, *from = NULL, *rule = NULL, *activation = NULL;
        sd_bus_message *reply;
        char job[32];
        int r;

        model->job = NULL;
        if (!op)
                return;
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        if (error < 0 || !id || !version_id_is_valid(id) || !version_id_is_derived(id)) {
                why = xasprintf("re-compression with profile %s failed: %s", strna(op->import_dir),
                                reason ?: "the agent reported no version");
                log_event(LOG_ERR, 0,
                          &(LogFields){.message_id = MK_MESSAGE_JOB_FAILED, .model = model->name, .version = op->to,
                                       .action = "recompress", .rule = op->rule, .job = job, .reason = why},
                          "Model %s: %s", model->name, strna(why));
                model_op_finish(model, error < 0 ? error : -EPROTO, why);
                return;
        }

        if (!json_is_true(json_object_get(data, "exists"))) {
                double max_abs, rmse;
                unsigned n;
                uint64_t size = (uint64_t) json_integer_value(json_object_get(data, "total_size"));
                uint64_t parent = (uint64_t) json_integer_value(json_object_get(data, "parent_size"));
                char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
                double percent = parent > 0 ? 100.0 * (double) size / (double) parent : 0.0;

                model->manager->counters.recompressions++;
                if (streq_ptr(json_string_value(json_object_get(data, "method")), "exec"))
                        /* An external compressor: we measured nothing of its numerics, so claim
                         * nothing — the rollout analysis is what judges the result. */
                        why = xasprintf("profile %s: built by external compressor %s: %s → %s (%.0f%%)",
                                        strna(op->import_dir),
                                        strna(json_string_value(json_object_get(data, "tool"))),
                                        format_bytes(a, parent), format_bytes(b, size), percent);
                else {
                        summarize(json_object_get(data, "statistics"), &max_abs, &rmse, &n);
                        why = xasprintf("profile %s: %s → %s (%.0f%%), %u tensors, max abs error %.3g, "
                                        "max relative RMSE %.3g",
                                        strna(op->import_dir), format_bytes(a, parent), format_bytes(b, size),
                                        percent, n, max_abs, rmse);
                }
                log_event(LOG_NOTICE, 0,
                          &(LogFields){.message_id = MK_MESSAGE_RECOMPRESSED, .model = model->name, .version = id,
                                       .from_version = op->from, .action = "recompress", .rule = op->rule,
                                       .job = job, .reason = why},
                          "Model %s: built version %s from %s (%s).", model->name, id,
                          strna(json_string_value(json_object_get(data, "parent"))), strna(why));
        }

        /* Continue as an activation of the derived version (probation follows if configured). */
        to = strdup(id);
        from = op->from ? strdup(op->from) : NULL;
        rule = op->rule ? strdup(op->rule) : NULL;
        activation = xasprintf("re-compressed with profile %s%s%s", strna(op->import_dir), op->reason ? ": " : "",
                               strempty(op->reason));
        reply = sd_bus_message_ref(op->reply);
        op->reply = sd_bus_message_unref(op->reply);
        model_op_finish(model, 0, NULL);
        r = to ? model_activate(model, to, from, ACTIVATION_RECOMPRESS, activation, rule, reply) : -ENOMEM;
        if (r < 0 && reply)
                (void) sd_bus_reply_method_errorf(reply, "dev.modelkeeper.OperationFailed",
                                                  "Built version %s, but cannot activate it: %s", id, strerror(-r));
        sd_bus_message_unref(reply);
}

int model_recompress(Model *model, const char *profile, const char *reason, const char *rule,
                     sd_bus_message *reply) {
        _cleanup_(strv_freep) char **args = NULL;
        _cleanup_free_ char *parent = NULL, *id = NULL;
        const char *active = model->state->active;
        int r;

        if (!model_config_find_profile(model->config, profile))
                return -ENOPKG;
        if (model->op) {
                if (reply)
                        return model_enqueue(model, OP_RECOMPRESS, NULL, profile, false, reason, reply);
                return -EBUSY;
        }
        if (!active)
                return -ENOENT;
        /* Always from the release parent, never from a derived version (DESIGN.md §3). */
        parent = xasprintf("%" PRIu64, version_id_release(active));
        id = xasprintf("%s~%s", strna(parent), profile);
        if (!parent || !id)
                return -ENOMEM;
        if (!version_id_is_valid(id))
                return -EINVAL;
        if (streq(id, active))
                return -EALREADY;
        if (model_state_file_is_quarantined(model->state, id))
                return -EKEYREVOKED;

        r = model_op_new(model, OP_RECOMPRESS, reply);
        if (r < 0)
                return r;
        model->op->to = strdup(id);
        model->op->from = strdup(active);
        model->op->import_dir = strdup(profile); /* the profile, for the messages */
        model->op->reason = reason ? strdup(reason) : NULL;
        model->op->rule = rule ? strdup(rule) : NULL;
        if (strv_extend(&args, profile) < 0 || strv_extend(&args, "--from") < 0 || strv_extend(&args, parent) < 0) {
                model_op_finish(model, -ENOMEM, "out of memory");
                return -ENOMEM;
        }
        log_info("Model %s: re-compressing version %s with profile %s (%s).", model->name, parent, profile,
                 strna(reason));
        r = model_submit(model, "recompress", args, on_recompress_job);
        if (r < 0) {
                model->op->reply = sd_bus_message_unref(model->op->reply);
                model_op_finish(model, r, "cannot start the re-compression");
        }
        return r;
}
