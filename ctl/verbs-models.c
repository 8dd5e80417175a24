/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperctl verbs that act on a model through the daemon: versions, rollback, hold,
 * release, import. Long operations show a progress bar on a terminal (JobProgress signals). */

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <time.h>
#include <systemd/sd-event.h>

#include "ctl.h"
#include "log.h"
#include "parse-util.h"
#include "store-layout.h"

#define OBJ   "/dev/modelkeeper/Manager1"
#define IFACE "dev.modelkeeper.Manager1"

typedef struct CallState {
        const char *model;
        sd_bus_message *reply;
        sd_bus_error error;
        bool done;
        bool tty;
        bool drew;
} CallState;

static void draw_progress(CallState *cs, const char *verb, const char *phase, uint64_t done, uint64_t total) {
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
        unsigned pct = total > 0 ? (unsigned) MIN(done * 100 / total, (uint64_t) 100) : 0;
        char bar[31];

        if (!cs->tty)
                return;
        if (total == 0) {
                /* No known end (an external compressor's output so far): bytes only. */
                fprintf(stderr, "\r%-10s %-10s %-37s %s   ", verb, phase, "", format_bytes(a, done));
                cs->drew = true;
                return;
        }
        for (unsigned i = 0; i < 30; i++)
                bar[i] = i < pct * 30 / 100 ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%-10s %-10s [%s] %3u%% %s/%s   ", verb, phase, bar, pct, format_bytes(a, done),
                format_bytes(b, total));
        cs->drew = true;
}

static int on_progress(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        CallState *cs = userdata;
        const char *model, *verb, *phase;
        uint64_t job, done, total;

        if (sd_bus_message_read(m, "stsstt", &model, &job, &verb, &phase, &done, &total) < 0)
                return 0;
        if (streq(model, cs->model))
                draw_progress(cs, verb, phase, done, total);
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        CallState *cs = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (e)
                sd_bus_error_copy(&cs->error, e);
        else
                cs->reply = sd_bus_message_ref(m);
        cs->done = true;
        return 0;
}

/* Send msg and wait for its reply, drawing progress of the model's jobs meanwhile. */
static int call_with_progress(sd_bus *bus, sd_bus_message *msg, const char *model, sd_bus_message **ret,
                              const char *what) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        CallState cs = {.model = model, .error = SD_BUS_ERROR_NULL, .tty = isatty(STDERR_FILENO)};
        int r;

        r = sd_event_new(&e);
        if (r < 0)
                return log_error_errno(r, "Failed to create an event loop: %m");
        r = sd_bus_attach_event(bus, e, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus: %m");
        r = sd_bus_match_signal(bus, NULL, NULL, OBJ, IFACE, "JobProgress", on_progress, &cs);
        if (r < 0)
                return log_error_errno(r, "Failed to subscribe to progress: %m");
        /* No timeout: a download or a re-compression takes as long as it takes; Ctrl-C stops
         * waiting (the daemon carries on). */
        r = sd_bus_call_async(bus, NULL, msg, on_reply, &cs, UINT64_MAX);
        if (r < 0)
                return log_error_errno(r, "Failed to call %s: %m", what);
        while (!cs.done) {
                r = sd_event_run(e, UINT64_MAX);
                if (r < 0)
                        return log_error_errno(r, "Event loop failed: %m");
                if (sd_bus_is_open(bus) <= 0 && !cs.done)
                        return log_error_errno(-ECONNRESET, "modelkeeperd closed the connection.");
        }
        if (cs.drew)
                fputc('\n', stderr);
        (void) sd_bus_detach_event(bus);
        if (sd_bus_error_is_set(&cs.error)) {
                r = ctl_bus_error(&cs.error, -EIO, what);
                sd_bus_error_free(&cs.error);
                return r;
        }
        *ret = cs.reply;
        return 0;
}

static int new_call(sd_bus *bus, const char *method, sd_bus_message **ret) {
        int r = sd_bus_message_new_method_call(bus, ret, NULL, OBJ, IFACE, method);
        if (r < 0)
                return log_error_errno(r, "Failed to create a call: %m");
        return 0;
}

int verb_versions(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *id, *origin, *state, *label;
        uint64_t size, installed;
        json_t *list = NULL;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, NULL, OBJ, IFACE, "ListVersions", &error, &reply, "s", argv[1]);
        if (r < 0)
                return ctl_bus_error(&error, r, "ListVersions");
        r = sd_bus_message_enter_container(reply, 'a', "(ssstts)");
        if (r < 0)
                return log_error_errno(r, "Bad reply: %m");
        if (arg_json)
                list = json_array();
        else
                printf("%-16s %-8s %-10s %-20s %-30s %s\n", "VERSION", "ORIGIN", "SIZE", "INSTALLED", "STATE", "LABEL");
        while ((r = sd_bus_message_read(reply, "(ssstts)", &id, &origin, &state, &size, &installed, &label)) > 0) {
                char ts[TIMESTAMP_MAX], sz[FORMAT_BYTES_MAX];

                format_timestamp(ts, installed);
                if (arg_json) {
                        json_t *states = json_array();
                        _cleanup_free_ char *copy = strdup(state);
                        for (char *tok = copy ? strtok(copy, ",") : NULL; tok; tok = strtok(NULL, ","))
                                json_array_append_new(states, json_string(tok));
                        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:s, s:o, s:s?}", "version", id, "origin",
                                                              origin, "size", (json_int_t) size, "installed", ts,
                                                              "state", states, "label", *label ? label : NULL));
                } else
                        printf("%-16s %-8s %-10s %-20s %-30s %s\n", id, origin, format_bytes(sz, size), ts,
                               *state ? state : "-", *label ? label : "-");
        }
        if (arg_json) {
                char *s = json_dumps(list, JSON_INDENT(2));
                printf("%s\n", s ?: "[]");
                free(s);
                json_decref(list);
        }
        return r < 0 ? log_error_errno(r, "Bad reply: %m") : 0;
}

int verb_rollback(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        const char *active = NULL;
        int r;

        if (argc > 2 && !version_id_is_valid(argv[2]))
                return log_error_errno(-EINVAL, "Invalid version '%s'.", argv[2]);
        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, "Rollback", &msg);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "ss", argv[1], argc > 2 ? argv[2] : "");
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = call_with_progress(bus, msg, argv[1], &reply, "Rollback");
        if (r < 0)
                return r;
        if (sd_bus_message_read(reply, "s", &active) >= 0)
                printf("%s: version %s is active.\n", argv[1], active);
        return 0;
}

static int simple_call(const char *method, const char *types, ...) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        va_list ap;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, method, &msg);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(msg, types, ap);
        va_end(ap);
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = sd_bus_call(bus, msg, 0, &error, &reply);
        if (r < 0)
                return ctl_bus_error(&error, r, method);
        return 0;
}

int verb_hold(int argc, char *argv[]) {
        int r = simple_call("Hold", "s", argv[1]);
        if (r >= 0)
                printf("%s is on hold: no automatic updates, rollbacks or re-compressions.\n", argv[1]);
        return r;
}

int verb_release(int argc, char *argv[]) {
        int r;

        if (argc > 2 && !version_id_is_valid(argv[2]))
                return log_error_errno(-EINVAL, "Invalid version '%s'.", argv[2]);
        r = simple_call("Release", "ss", argv[1], argc > 2 ? argv[2] : "");
        if (r >= 0) {
                if (argc > 2)
                        printf("%s: version %s is no longer quarantined.\n", argv[1], argv[2]);
                else
                        printf("%s is no longer on hold.\n", argv[1]);
        }
        return r;
}

int verb_import(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        char dir[PATH_MAX];
        const char *version = "", *result = NULL;
        bool activate = false;
        int r;

        /* MODEL DIR [--version ID] [--activate] */
        for (int i = 3; i < argc; i++) {
                if (streq(argv[i], "--activate"))
                        activate = true;
                else if (streq(argv[i], "--version") && i + 1 < argc)
                        version = argv[++i];
                else
                        return log_error_errno(-EINVAL, "Unknown argument '%s'.", argv[i]);
        }
        if (*version && !version_id_is_valid(version))
                return log_error_errno(-EINVAL, "Invalid version '%s'.", version);
        if (!realpath(argv[2], dir))
                return log_error_errno(-errno, "Cannot resolve '%s': %m", argv[2]);
        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, "Import", &msg);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "sssb", argv[1], dir, version, activate);
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = call_with_progress(bus, msg, argv[1], &reply, "Import");
        if (r < 0)
                return r;
        if (sd_bus_message_read(reply, "s", &result) >= 0)
                printf("%s: version %s %s.\n", argv[1], result, activate ? "imported and active" : "imported");
        return 0;
}

int verb_update(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        const char *outcome = NULL;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, "Update", &msg);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "s", argv[1]);
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = call_with_progress(bus, msg, argv[1], &reply, "Update");
        if (r < 0)
                return r;
        if (sd_bus_message_read(reply, "s", &outcome) >= 0) {
                if (version_id_is_valid(outcome))
                        printf("%s: version %s installed and active.\n", argv[1], outcome);
                else
                        printf("%s: %s.\n", argv[1], outcome);
        }
        return 0;
}

int verb_recompress(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        const char *active = NULL;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, "Recompress", &msg);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "ss", argv[1], argv[2]);
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = call_with_progress(bus, msg, argv[1], &reply, "Recompress");
        if (r < 0)
                return r;
        if (sd_bus_message_read(reply, "s", &active) >= 0)
                printf("%s: version %s built and active.\n", argv[1], active);
        return 0;
}

int verb_scrub(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL, *reply = NULL;
        const char *outcome = NULL;
        int r;

        r = ctl_connect(&bus);
        if (r < 0)
                return r;
        r = new_call(bus, "Scrub", &msg);
        if (r < 0)
                return r;
        r = sd_bus_message_append(msg, "s", argv[1]);
        if (r < 0)
                return log_error_errno(r, "Failed to build the call: %m");
        r = call_with_progress(bus, msg, argv[1], &reply, "Scrub");
        if (r < 0)
                return r;
        if (sd_bus_message_read(reply, "s", &outcome) >= 0)
                printf("%s: %s.\n", argv[1], outcome);
        return 0;
}
