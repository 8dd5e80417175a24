/* SPDX-License-Identifier: Apache-2.0 */

#include <signal.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include "http.h"
#include "log.h"
#include "manager.h"
#include "model.h"
#include "serve.h"
#include "strv.h"

struct ServeOp {
        Model *model;
        ServeDoneFn done;
        void *userdata;
        char *version;
        sd_event_source *timeout_source;
        sd_event_source *poll_source;
        sd_event_source *child_source;
        sd_bus_slot *call_slot;
        sd_bus_slot *match_slot;
        char *job_path;
        HttpRequest *http;
        uint64_t deadline;
        unsigned attempts;
        char last_problem[512];
        bool answered;           /* the server answered at least once (it is up, the version is not ready) */
};

static void serve_op_free(ServeOp *op) {
        if (!op)
                return;
        sd_event_source_disable_unref(op->timeout_source);
        sd_event_source_disable_unref(op->poll_source);
        /* A command still running is killed and reaped with its source (process_own). */
        sd_event_source_disable_unref(op->child_source);
        sd_bus_slot_unref(op->call_slot);
        sd_bus_slot_unref(op->match_slot);
        http_request_cancel(op->http);
        free(op->job_path);
        free(op->version);
        free(op);
}

static void serve_op_finish(ServeOp *op, int error, const char *reason) {
        ServeDoneFn done = op->done;
        Model *model = op->model;
        void *userdata = op->userdata;

        if (model->serve_op == op)
                model->serve_op = NULL;
        serve_op_free(op);
        if (done)
                done(model, error, reason, userdata);
}

void serve_op_cancel(ServeOp *op) {
        if (!op)
                return;
        if (op->model->serve_op == op)
                op->model->serve_op = NULL;
        serve_op_free(op);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        ServeOp *op = userdata;
        char reason[700];

        snprintf(reason, sizeof(reason), "timed out%s%s", op->last_problem[0] ? " (last: " : "",
                 op->last_problem[0] ? op->last_problem : "");
        if (op->last_problem[0])
                strncat(reason, ")", sizeof(reason) - strlen(reason) - 1);
        /* -EPROTO: the server is up and kept saying "not ready" — the version's fault; -ETIMEDOUT:
         * it never answered — the host's. */
        serve_op_finish(op, op->answered ? -EPROTO : -ETIMEDOUT, reason);
        return 0;
}

static int serve_op_new(Model *model, const char *version, uint64_t timeout, ServeDoneFn done, void *userdata,
                        ServeOp **ret) {
        Manager *m = model->manager;
        ServeOp *op;
        uint64_t now;
        int r;

        op = calloc(1, sizeof(ServeOp));
        if (!op)
                return -ENOMEM;
        op->model = model;
        op->done = done;
        op->userdata = userdata;
        op->version = version ? strdup(version) : NULL;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        op->deadline = now + timeout;
        r = sd_event_add_time(m->event, &op->timeout_source, CLOCK_MONOTONIC, op->deadline, USEC_PER_MSEC * 10,
                              on_timeout, op);
        if (r < 0) {
                serve_op_free(op);
                return r;
        }
        *ret = op;
        return 0;
}

/* --- systemd ------------------------------------------------------------------------------ */

static int on_job_removed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        ServeOp *op = userdata;
        const char *path, *unit, *result;
        uint32_t id;
        char reason[300];

        if (sd_bus_message_read(msg, "uoss", &id, &path, &unit, &result) < 0)
                return 0;
        if (!op->job_path || !streq(path, op->job_path))
                return 0;
        if (streq(result, "done")) {
                serve_op_finish(op, 0, NULL);
                return 0;
        }
        snprintf(reason, sizeof(reason), "%s of %s finished with result '%s'",
                 unit_action_to_string(op->model->config->serve.unit_action), unit, result);
        serve_op_finish(op, -EIO, reason);
        return 0;
}

static int on_unit_call(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        ServeOp *op = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *path;
        char reason[600];

        op->call_slot = sd_bus_slot_unref(op->call_slot);
        if (e) {
                snprintf(reason, sizeof(reason), "systemd refused to %s %s: %s",
                         unit_action_to_string(op->model->config->serve.unit_action), op->model->config->serve.unit,
                         e->message ?: e->name);
                serve_op_finish(op, -EIO, reason);
                return 0;
        }
        if (sd_bus_message_read(reply, "o", &path) < 0 || !(op->job_path = strdup(path))) {
                serve_op_finish(op, -EIO, "unexpected reply from systemd");
                return 0;
        }
        return 0;
}

static int manager_system_bus(Manager *m, sd_bus **ret) {
        int r;

        if (m->system_bus && sd_bus_is_open(m->system_bus) > 0) {
                *ret = m->system_bus;
                return 0;
        }
        m->system_bus = sd_bus_flush_close_unref(m->system_bus);
        r = sd_bus_open_system(&m->system_bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->system_bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                m->system_bus = sd_bus_flush_close_unref(m->system_bus);
                return r;
        }
        /* systemd only emits JobRemoved to subscribed clients. */
        r = sd_bus_call_method_async(m->system_bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                     "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL, "");
        if (r < 0)
                log_debug_errno(r, "Failed to subscribe to systemd's signals: %m");
        *ret = m->system_bus;
        return 0;
}

static int reload_systemd(ServeOp *op) {
        static const char *const methods[_UNIT_ACTION_MAX] = {
                [UNIT_RESTART] = "RestartUnit",
                [UNIT_RELOAD] = "ReloadUnit",
                [UNIT_TRY_RESTART] = "TryRestartUnit",
                [UNIT_RELOAD_OR_RESTART] = "ReloadOrRestartUnit",
        };
        const ServeConfig *sc = &op->model->config->serve;
        sd_bus *bus;
        int r;

        r = manager_system_bus(op->model->manager, &bus);
        if (r < 0) {
                snprintf(op->last_problem, sizeof(op->last_problem), "no system bus to reach systemd: %s", strerror(-r));
                return r;
        }
        r = sd_bus_match_signal(bus, &op->match_slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, op);
        if (r >= 0)
                r = sd_bus_call_method_async(bus, &op->call_slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                             "org.freedesktop.systemd1.Manager", methods[sc->unit_action], on_unit_call,
                                             op, "ss", sc->unit, "replace");
        if (r < 0)
                snprintf(op->last_problem, sizeof(op->last_problem), "cannot call systemd: %s", strerror(-r));
        return r;
}

/* --- http --------------------------------------------------------------------------------- */

static void on_reload_http(HttpRequest *req, int error, long status, const char *body, size_t size,
                           const char *reason, void *userdata) {
        ServeOp *op = userdata;
        char buf[600];

        op->http = NULL;
        if (error < 0) {
                snprintf(buf, sizeof(buf), "%s %s: %s", op->model->config->serve.http_method,
                         op->model->config->serve.http_url, reason);
                serve_op_finish(op, error, buf);
        } else if (status < 200 || status > 299) {
                snprintf(buf, sizeof(buf), "%s %s answered HTTP %ld", op->model->config->serve.http_method,
                         op->model->config->serve.http_url, status);
                serve_op_finish(op, -EIO, buf);
        } else
                serve_op_finish(op, 0, NULL);
}

static int reload_http(ServeOp *op) {
        const ServeConfig *sc = &op->model->config->serve;
        HttpRequestSpec spec = {
                .method = sc->http_method,
                .url = sc->http_url,
                .body = sc->http_body,
                .tls = &sc->tls,
                .timeout = sc->reload_timeout,
                .max_body = 64 * 1024,
                .done = on_reload_http,
                .userdata = op,
        };
        return http_request_start(op->model->manager->http, &spec, &op->http);
}

/* --- exec --------------------------------------------------------------------------------- */

static int on_command_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        ServeOp *op = userdata;
        char reason[300];

        op->child_source = sd_event_source_disable_unref(op->child_source);
        if (si->si_code == CLD_EXITED && si->si_status == 0) {
                serve_op_finish(op, 0, NULL);
                return 0;
        }
        if (si->si_code == CLD_EXITED)
                snprintf(reason, sizeof(reason), "%s exited with status %d", op->model->config->serve.exec[0],
                         si->si_status);
        else
                snprintf(reason, sizeof(reason), "%s was killed by signal %d", op->model->config->serve.exec[0],
                         si->si_status);
        serve_op_finish(op, -EIO, reason);
        return 0;
}

int serve_spawn(Manager *m, char *const *argv, const char *model, const char *version, sd_event_child_handler_t cb,
                void *userdata, sd_event_source **ret) {
        pid_t pid;
        int r;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t all;
                sigemptyset(&all);
                (void) sigprocmask(SIG_SETMASK, &all, NULL);
                (void) setenv("MODEL", model, 1);
                if (version)
                        (void) setenv("VERSION", version, 1);
                else
                        (void) unsetenv("VERSION");
                (void) close_range(3, ~0U, 0);
                execv(argv[0], argv);
                fprintf(stderr, "Failed to execute %s: %m\n", argv[0]);
                _exit(127);
        }
        r = sd_event_add_child(m->event, ret, pid, WEXITED, cb, userdata);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return r;
        }
        /* Freeing the source (a cancel) kills and reaps the command. */
        (void) sd_event_source_set_child_process_own(*ret, true);
        return 0;
}

static int reload_exec(ServeOp *op) {
        Model *model = op->model;
        return serve_spawn(model->manager, model->config->serve.exec, model->name, op->version, on_command_exit, op,
                           &op->child_source);
}

int serve_reload(Model *model, const char *version, ServeDoneFn done, void *userdata, ServeOp **ret) {
        const ServeConfig *sc = &model->config->serve;
        ServeOp *op = NULL;
        char reason[600];
        int r;

        if (sc->reload == RELOAD_NONE) {
                done(model, 0, NULL, userdata);
                return 0;
        }
        r = serve_op_new(model, version, sc->reload_timeout, done, userdata, &op);
        if (r < 0)
                return r;
        switch (sc->reload) {
        case RELOAD_SYSTEMD:
                r = reload_systemd(op);
                break;
        case RELOAD_HTTP:
                r = reload_http(op);
                break;
        case RELOAD_EXEC:
                r = reload_exec(op);
                break;
        default:
                r = -EINVAL;
        }
        if (r < 0) {
                snprintf(reason, sizeof(reason), "%s", op->last_problem[0] ? op->last_problem : strerror(-r));
                op->done = NULL;
                serve_op_free(op);
                done(model, r, reason, userdata);
                return 0;
        }
        model->serve_op = op;
        if (ret)
                *ret = op;
        return 0;
}

/* --- readiness ---------------------------------------------------------------------------- */

static int ready_poll(ServeOp *op);

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ServeOp *op = userdata;
        op->poll_source = sd_event_source_disable_unref(op->poll_source);
        (void) ready_poll(op);
        return 0;
}

static void schedule_poll(ServeOp *op) {
        Manager *m = op->model->manager;
        (void) sd_event_add_time_relative(m->event, &op->poll_source, CLOCK_MONOTONIC,
                                          op->model->config->serve.ready_interval, USEC_PER_MSEC * 10, on_poll_timer, op);
}

static void on_ready_http(HttpRequest *req, int error, long status, const char *body, size_t size, const char *reason,
                          void *userdata) {
        ServeOp *op = userdata;

        op->http = NULL;
        if (error >= 0 && status == 200) {
                serve_op_finish(op, 0, NULL);
                return;
        }
        if (error < 0)
                snprintf(op->last_problem, sizeof(op->last_problem), "%s", reason);
        else {
                op->answered = true;
                snprintf(op->last_problem, sizeof(op->last_problem), "HTTP %ld", status);
        }
        schedule_poll(op);
}

static int ready_poll(ServeOp *op) {
        const ServeConfig *sc = &op->model->config->serve;
        uint64_t now;
        HttpRequestSpec spec = {
                .url = sc->ready_url,
                .tls = &sc->tls,
                .max_body = 64 * 1024,
                .done = on_ready_http,
                .userdata = op,
        };

        (void) sd_event_now(op->model->manager->event, CLOCK_MONOTONIC, &now);
        spec.timeout = op->deadline > now ? MAX(op->deadline - now, 100 * USEC_PER_MSEC) : 100 * USEC_PER_MSEC;
        spec.timeout = MIN(spec.timeout, MAX(sc->ready_interval * 5, 2 * USEC_PER_SEC));
        op->attempts++;
        if (http_request_start(op->model->manager->http, &spec, &op->http) < 0)
                schedule_poll(op);
        return 0;
}

int serve_wait_ready(Model *model, ServeDoneFn done, void *userdata, ServeOp **ret) {
        const ServeConfig *sc = &model->config->serve;
        ServeOp *op = NULL;
        int r;

        if (!sc->ready_url) {
                done(model, 0, NULL, userdata);
                return 0;
        }
        r = serve_op_new(model, NULL, sc->ready_timeout, done, userdata, &op);
        if (r < 0)
                return r;
        model->serve_op = op;
        if (ret)
                *ret = op;
        return ready_poll(op);
}
