/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Updates from a model's source (DESIGN.md §4): a check timer per model (check_every plus a
 * random jitter, so a fleet does not hit the repository in lockstep), the agent's `update` job
 * (which verifies the release completely before keeping any byte and installs it into the store),
 * then — when source.auto_activate — the activation path of model.c.
 *
 * The daemon never sees the release document: it passes the high-water mark (and the content id
 * of that version) to the agent and records what the agent reports back.
 */

#include <inttypes.h>
#include <sys/random.h>

#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "parse-util.h"
#include "store-layout.h"
#include "strv.h"

#define CHECK_RETRY_BUSY_USEC (30 * USEC_PER_SEC)

static uint64_t random_u64(void) {
        uint64_t v = 0;
        if (getrandom(&v, sizeof(v), 0) != sizeof(v))
                v = (uint64_t) now_realtime_usec();
        return v;
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm_check_timer(Model *model, uint64_t delay) {
        Manager *m = model->manager;
        int r;

        if (!model->config->source)
                return;
        if (model->check_timer)
                r = sd_event_source_set_time_relative(model->check_timer, delay) < 0 ? -EIO
                    : sd_event_source_set_enabled(model->check_timer, SD_EVENT_ONESHOT);
        else
                r = sd_event_add_time_relative(m->event, &model->check_timer, CLOCK_BOOTTIME, delay, USEC_PER_SEC,
                                               on_check_timer, model);
        if (r < 0)
                log_warning_errno(r, "Model %s: cannot schedule update checks: %m", model->name);
}

static uint64_t next_check_delay(const Model *model) {
        const SourceConfig *src = model->config->source;
        return src->check_every + (src->jitter > 0 ? random_u64() % src->jitter : 0);
}

int model_update_start(Model *model) {
        const SourceConfig *src = model->config->source;

        if (!src) {
                model_update_stop(model);
                return 0;
        }
        /* The first check soon after start-up, spread over the jitter. */
        arm_check_timer(model, USEC_PER_SEC + (src->jitter > 0 ? random_u64() % src->jitter : 0));
        return 0;
}

void model_update_stop(Model *model) {
        model->check_timer = sd_event_source_disable_unref(model->check_timer);
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Model *model = userdata;
        int r;

        if (model->state->hold) {
                log_debug("Model %s is on hold: no automatic update check.", model->name);
                arm_check_timer(model, next_check_delay(model));
                return 0;
        }
        if (model->op) {
                arm_check_timer(model, CHECK_RETRY_BUSY_USEC);
                return 0;
        }
        r = model_check_update(model, NULL, "scheduled check");
        if (r < 0)
                log_warning_errno(r, "Model %s: cannot start an update check: %m", model->name);
        arm_check_timer(model, next_check_delay(model));
        return 0;
}

static char *keyids_text(json_t *data) {
        json_t *ids = json_object_get(data, "keyids");
        _cleanup_free_ char *s = NULL;

        if (!json_is_array(ids) || json_array_size(ids) == 0)
                return NULL;
        s = json_dumps(ids, JSON_COMPACT);
        return s ? xasprintf("keys %s", s) : NULL;
}

static void on_update_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        ModelOp *op = model->op;
        const char *verdict = json_string_value(json_object_get(data, "verdict"));
        const char *version = json_string_value(json_object_get(data, "version"));
        const char *content = json_string_value(json_object_get(data, "content_id"));
        const char *channel = model->config->source ? model->config->source->channel : "";
        _cleanup_free_ char *keys = keyids_text(data), *why = NULL;
        char job[32];
        int r;

        model->job = NULL;
        if (!op)
                return;
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        model->manager->counters.update_checks++;

        if (error < 0) {
                bool refused = json_is_true(json_object_get(data, "refused"));
                const char *refused_version = version && version_id_is_valid(version) ? version : NULL;
                /* A refusal's reason already names the keys that signed (the agent's refuse()). */
                why = strdup(strna(reason));
                if (refused) {
                        model->manager->counters.releases_refused++;
                        log_event(LOG_WARNING, 0,
                                  &(LogFields){.message_id = MK_MESSAGE_RELEASE_REFUSED, .model = model->name,
                                               .version = refused_version,
                                               .action = "refuse", .job = job, .reason = why},
                                  "Model %s: release refused: %s", model->name, strna(why));
                } else if (error != -ECANCELED)
                        log_event(LOG_WARNING, 0,
                                  &(LogFields){.message_id = MK_MESSAGE_JOB_FAILED, .model = model->name,
                                               .action = "update", .job = job, .reason = why},
                                  "Model %s: update check failed: %s", model->name, strna(why));
                model_op_finish(model, error, why);
                return;
        }
        if (!verdict || !version || !version_id_is_valid(version) || version_id_is_derived(version)) {
                model_op_finish(model, -EPROTO, "the agent reported no verdict");
                return;
        }

        if (streq(verdict, "current")) {
                log_debug("Model %s: channel %s is at version %s, nothing to do.", model->name, channel, version);
                why = xasprintf("up to date: version %s", version);
                model_op_finish_with(model, 0, why);
                return;
        }
        if (streq(verdict, "not-selected")) {
                /* The agent says why when it is not the bucket (e.g. no readable machine id). */
                const char *note = json_string_value(json_object_get(data, "reason"));
                why = note ? xasprintf("version %s not taken: %s", version, note)
                           : xasprintf("version %s is not yet rolled out to this host (rollout.percent)",
                                       version);
                log_full(note ? LOG_WARNING : LOG_INFO, "Model %s: %s.", model->name, strna(why));
                model_op_finish_with(model, 0, why);
                return;
        }
        if (!streq(verdict, "new")) {
                model_op_finish(model, -EPROTO, "unknown verdict from the agent");
                return;
        }

        /* Installed (complete and verified in the store): never accept a lower version again. */
        r = model_state_file_set_high_water(model->state, channel, version_id_release(version), content);
        if (r >= 0)
                r = model_state_file_save(model->dir, model->state);
        if (r < 0) {
                model_op_finish(model, r, "cannot record the high-water mark");
                return;
        }
        model->manager->counters.updates_installed++;
        why = xasprintf("signed by %s; every file matches its signed size and SHA-256", strna(keys));
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_VERIFIED, .model = model->name, .version = version,
                               .action = "verify", .job = job, .reason = why},
                  "Model %s: release %s%s%s%s verified and installed.", model->name, version,
                  isempty(json_string_value(json_object_get(data, "label"))) ? "" : " (",
                  strempty(json_string_value(json_object_get(data, "label"))),
                  isempty(json_string_value(json_object_get(data, "label"))) ? "" : ")");

        if (!model->config->source->auto_activate) {
                _cleanup_free_ char *msg = xasprintf("version %s installed; source.auto_activate is off", version);
                model_op_finish_with(model, 0, msg);
                return;
        }
        {
                /* Continue as an activation of the new version, answering the same caller. */
                sd_bus_message *reply = sd_bus_message_ref(op->reply);
                _cleanup_free_ char *activation = xasprintf("update from %s channel %s", model->config->source->url,
                                                           channel);
                _cleanup_free_ char *v = strdup(version);

                op->reply = sd_bus_message_unref(op->reply);
                model_op_finish(model, 0, NULL);
                r = v ? model_activate(model, v, NULL, ACTIVATION_UPDATE, activation, NULL, reply) : -ENOMEM;
                if (r < 0 && reply)
                        (void) sd_bus_reply_method_errorf(reply, "dev.modelkeeper.OperationFailed",
                                                          "Installed version %s, but cannot activate it: %s", version,
                                                          strerror(-r));
                sd_bus_message_unref(reply);
        }
}

int model_check_update(Model *model, sd_bus_message *reply, const char *why) {
        _cleanup_(strv_freep) char **args = NULL;
        const SourceConfig *src = model->config->source;
        const char *content;
        char hw[32];
        int r;

        if (!src)
                return -ENOMEDIUM;
        if (model->op) {
                if (reply)
                        return model_enqueue(model, OP_UPDATE, NULL, NULL, false, why, reply);
                return -EBUSY;
        }
        r = model_op_new(model, OP_UPDATE, reply);
        if (r < 0)
                return r;
        snprintf(hw, sizeof(hw), "%" PRIu64, model_state_file_high_water(model->state, src->channel));
        content = model_state_file_high_water_content(model->state, src->channel);
        if (strv_extend(&args, "--high-water") < 0 || strv_extend(&args, hw) < 0 ||
            (content && (strv_extend(&args, "--content-id") < 0 || strv_extend(&args, content) < 0))) {
                model_op_finish(model, -ENOMEM, "out of memory");
                return -ENOMEM;
        }
        log_debug("Model %s: checking %s channel %s (%s).", model->name, src->url, src->channel, strna(why));
        r = model_submit(model, "update", args, on_update_job);
        if (r < 0) {
                model->op->reply = sd_bus_message_unref(model->op->reply);
                model_op_finish(model, r, "cannot start the update check");
        }
        return r;
}
