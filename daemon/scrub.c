/* SPDX-License-Identifier: Apache-2.0 */

/*
 * Scrubs (DESIGN.md §5): the agent re-verifies every version at rest — each sealed chunk's
 * authentication tag and each file's plaintext SHA-256 (unsealed files are re-hashed) — on a timer
 * (daemon.scrub_every) and on request. A corrupt or tampered version is reported in the journal and
 * quarantined, so it can no longer be activated; if it is the one serving, the model is rolled back
 * to its last good version (unless held).
 */

#include <inttypes.h>
#include <sys/random.h>

#include "jobs.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "parse-util.h"
#include "store-layout.h"

static int on_scrub_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm(Model *model, uint64_t delay) {
        int r;

        if (model->scrub_timer)
                r = sd_event_source_set_time_relative(model->scrub_timer, delay) < 0 ? -EIO
                    : sd_event_source_set_enabled(model->scrub_timer, SD_EVENT_ONESHOT);
        else
                r = sd_event_add_time_relative(model->manager->event, &model->scrub_timer, CLOCK_BOOTTIME, delay,
                                               60 * USEC_PER_SEC, on_scrub_timer, model);
        if (r < 0)
                log_warning_errno(r, "Model %s: cannot schedule scrubs: %m", model->name);
}

static uint64_t spread(uint64_t every) {
        uint64_t v = 0;
        if (getrandom(&v, sizeof(v), 0) != sizeof(v))
                v = 0;
        /* Up to a tenth later: many models (and hosts) do not read their disks all at once. */
        return every + (every >= 10 ? v % (every / 10) : 0);
}

int model_scrub_start(Model *model) {
        uint64_t every = model->manager->config->daemon.scrub_every;

        if (every == 0) {
                model_scrub_stop(model);
                return 0;
        }
        arm(model, spread(every));
        return 0;
}

void model_scrub_stop(Model *model) {
        model->scrub_timer = sd_event_source_disable_unref(model->scrub_timer);
}

static int on_scrub_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Model *model = userdata;

        if (model->op) {
                arm(model, 10 * 60 * USEC_PER_SEC);
                return 0;
        }
        (void) model_scrub(model, NULL, "scheduled scrub");
        arm(model, spread(model->manager->config->daemon.scrub_every));
        return 0;
}

static void on_scrub_job(Job *j, int error, const char *reason, json_t *data, void *userdata) {
        Model *model = userdata;
        json_t *corrupt = json_object_get(data, "corrupt"), *v;
        const char *id;
        bool active_corrupt = false;
        char job[32];
        _cleanup_free_ char *summary = NULL;

        model->job = NULL;
        if (!model->op)
                return;
        snprintf(job, sizeof(job), "%" PRIu64, j->id);
        model->manager->counters.scrubs++;
        if (error < 0) {
                log_event(LOG_ERR, 0,
                          &(LogFields){.message_id = MK_MESSAGE_JOB_FAILED, .model = model->name, .action = "scrub",
                                       .job = job, .reason = reason},
                          "Model %s: scrub failed: %s", model->name, strna(reason));
                model_op_finish(model, error, reason);
                return;
        }
        json_object_foreach(corrupt, id, v) {
                if (!version_id_is_valid(id))
                        continue;
                model->manager->counters.corrupt_found++;
                log_event(LOG_ERR, 0,
                          &(LogFields){.message_id = MK_MESSAGE_SCRUB, .model = model->name, .version = id,
                                       .action = "scrub", .job = job, .reason = json_string_value(v)},
                          "Model %s: version %s is corrupt or tampered at rest: %s", model->name, id,
                          strna(json_string_value(v)));
                (void) model_quarantine(model, id, json_string_value(v));
                if (streq_ptr(id, model->state->active))
                        active_corrupt = true;
        }
        summary = xasprintf("%d version%s checked, %zu corrupt", (int) json_integer_value(json_object_get(data, "checked")),
                            json_integer_value(json_object_get(data, "checked")) == 1 ? "" : "s", json_object_size(corrupt));
        log_event(json_object_size(corrupt) > 0 ? LOG_WARNING : LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_SCRUB, .model = model->name, .action = "scrub", .job = job,
                               .reason = summary},
                  "Model %s: scrub done: %s.", model->name, strna(summary));
        model_op_finish_with(model, 0, summary);

        /* The version serving is damaged on disk: go back to the last good one. */
        if (active_corrupt && !model->state->hold) {
                int r = model_rollback(model, NULL, "scrub found the active version corrupt at rest", NULL, NULL);
                if (r < 0)
                        log_warning_errno(r, "Model %s: cannot roll back from its corrupt version: %m", model->name);
        }
}

int model_scrub(Model *model, sd_bus_message *reply, const char *why) {
        int r;

        if (model->op) {
                if (reply)
                        return model_enqueue(model, OP_SCRUB, NULL, NULL, false, why, reply);
                return -EBUSY;
        }
        r = model_op_new(model, OP_SCRUB, reply);
        if (r < 0)
                return r;
        log_debug("Model %s: scrubbing (%s).", model->name, strna(why));
        r = model_submit(model, "scrub", NULL, on_scrub_job);
        if (r < 0) {
                model->op->reply = sd_bus_message_unref(model->op->reply);
                model_op_finish(model, r, "cannot start the scrub");
        }
        return r;
}
