/* SPDX-License-Identifier: Apache-2.0 */

#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <systemd/sd-bus.h>

#include "control.h"
#include "http.h"
#include "fileio.h"
#include "log.h"
#include "manager.h"
#include "metrics-file.h"
#include "model.h"
#include "strv.h"

/* Several editors write a file in more than one step; wait for the dust to settle. */
#define INOTIFY_DEBOUNCE_USEC (500 * USEC_PER_MSEC)

int manager_new(Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(Manager));
        if (!m)
                return -ENOMEM;
        m->self_uid = getuid();
        m->admin_gid = (gid_t) -1;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = job_runner_new(m->event, &m->jobs);
        if (r < 0)
                return r;
        r = http_client_new(m->event, &m->http);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static void manager_free_models(Manager *m) {
        for (size_t i = 0; i < m->n_models; i++)
                model_free(m->models[i]);
        free(m->models);
        m->models = NULL;
        m->n_models = 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        metrics_file_stop(m);
        m->control = control_free(m->control);
        manager_free_models(m);
        m->jobs = job_runner_free(m->jobs);
        m->http = http_client_free(m->http);
        m->system_bus = sd_bus_flush_close_unref(m->system_bus);
        sd_event_source_disable_unref(m->sigterm_source);
        sd_event_source_disable_unref(m->sigint_source);
        sd_event_source_disable_unref(m->sighup_source);
        sd_event_source_disable_unref(m->inotify_source);
        sd_event_source_disable_unref(m->inotify_debounce);
        config_free(m->config);
        strv_free(m->refused_files);
        free(m->config_path);
        free(m->arg_state_directory);
        free(m->arg_runtime_directory);
        free(m->models_directory);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

Model *manager_find_model(Manager *m, const char *name) {
        for (size_t i = 0; i < m->n_models; i++)
                if (streq(m->models[i]->name, name))
                        return m->models[i];
        return NULL;
}

static int cmp_models(const void *a, const void *b) {
        return strcmp((*(Model *const *) a)->name, (*(Model *const *) b)->name);
}

static int manager_add_model(Manager *m, Model *model) {
        Model **a = reallocarray(m->models, m->n_models + 1, sizeof(Model *));
        if (!a)
                return -ENOMEM;
        m->models = a;
        m->models[m->n_models++] = model;
        qsort(m->models, m->n_models, sizeof(Model *), cmp_models);
        return 0;
}

static void manager_remove_model(Manager *m, Model *model) {
        for (size_t i = 0; i < m->n_models; i++)
                if (m->models[i] == model) {
                        memmove(m->models + i, m->models + i + 1, (m->n_models - i - 1) * sizeof(Model *));
                        m->n_models--;
                        break;
                }
        model_free(model);
}

/* The one-line summary systemd shows in `systemctl status`. */
static void manager_status_line(Manager *m, char *buf, size_t size) {
        unsigned running = job_runner_running(m->jobs), pending = job_runner_pending(m->jobs), held = 0;
        size_t refused = strv_length(m->refused_files);

        for (size_t i = 0; i < m->n_models; i++)
                if (m->models[i]->state->hold)
                        held++;
        snprintf(buf, size, "%zu model%s, %u job%s running, %u queued%s%s%s", m->n_models,
                 m->n_models == 1 ? "" : "s", running, running == 1 ? "" : "s", pending, held > 0 ? ", some held" : "",
                 refused > 0 ? ", model file refused: " : "", refused > 0 ? m->refused_files[0] : "");
}

void manager_update_status(Manager *m) {
        char buf[512];

        manager_status_line(m, buf, sizeof(buf));
        (void) sd_notifyf(false, "STATUS=%s", buf);
}

/* READY=1 and the summary in one message, so a watcher never sees one without the other. */
static void manager_notify_ready(Manager *m) {
        char buf[512];

        manager_status_line(m, buf, sizeof(buf));
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", buf);
}

static void log_config_errors(const ConfigErrors *e) {
        for (size_t i = 0; i < e->n; i++)
                log_error("%s", e->lines[i]);
}

static int resolve_admin_group(Manager *m, const Config *c) {
        struct group *g;

        if (!c->daemon.admin_group) {
                m->admin_gid = (gid_t) -1;
                return 0;
        }
        errno = 0;
        g = getgrnam(c->daemon.admin_group);
        if (!g)
                return log_error_errno(errno > 0 ? -errno : -ESRCH, "Admin group '%s' does not exist.",
                                       c->daemon.admin_group);
        m->admin_gid = g->gr_gid;
        return 0;
}

/* Load the whole configuration into a new Config; on success *ret owns it and the model configs
 * sit in its models array. */
static int manager_read_config(Manager *m, Config **ret, char ***ret_refused) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **refused = NULL;
        ConfigErrors errors = {};
        int r;

        r = config_load(m->config_path, &c, &errors, &refused);
        log_config_errors(&errors);
        if (r >= 0)
                r = config_override_directories(c, m->arg_state_directory, m->arg_runtime_directory);
        if (r < 0) {
                log_event(LOG_ERR, r,
                          &(LogFields){.message_id = MK_MESSAGE_CONFIG_REFUSED,
                                       .reason = errors.n > 0 ? errors.lines[0] : strerror(-r)},
                          "Configuration %s refused (%zu error%s); keeping the last good configuration.",
                          m->config_path, errors.n, errors.n == 1 ? "" : "s");
                config_errors_done(&errors);
                return r;
        }
        STRV_FOREACH(f, refused) {
                const char *first = NULL;
                for (size_t i = 0; i < errors.n && !first; i++)
                        if (startswith(errors.lines[i], *f))
                                first = errors.lines[i];
                log_event(LOG_ERR, 0, &(LogFields){.message_id = MK_MESSAGE_CONFIG_REFUSED, .reason = first},
                          "Model file %s refused; its last good configuration (if any) keeps running.", *f);
        }
        config_errors_done(&errors);
        /* Missing or broken files it refers to: warnings here (they may appear later, and refusing
         * would stop every model); `--check-config` reports them as errors. */
        if (config_check_references(c, &errors) > 0)
                for (size_t i = 0; i < errors.n; i++)
                        log_warning("%s", errors.lines[i]);
        config_errors_done(&errors);
        r = resolve_admin_group(m, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        *ret_refused = TAKE_PTR(refused);
        return 0;
}

/* The model name a (possibly broken) file would define. */
static char *model_name_of_file(const char *path) {
        const char *b = strrchr(path, '/');
        const char *e;

        b = b ? b + 1 : path;
        e = endswith(b, ".yaml") ?: endswith(b, ".yml") ?: b + strlen(b);
        return strndup(b, (size_t) (e - b));
}

/* Bring the models in line with a freshly loaded configuration, model by model: unchanged files
 * keep their Model untouched, changed ones get the new configuration, new ones are added,
 * removed ones go, and a refused file keeps the last good configuration of its model. */
static int manager_apply_models(Manager *m, Config *c, char **refused) {
        int r;

        /* Removed models: neither in the new configuration nor kept because their file was refused. */
        for (size_t i = 0; i < m->n_models;) {
                Model *model = m->models[i];
                bool keep = config_find_model(c, model->name) != NULL;

                STRV_FOREACH(f, refused) {
                        _cleanup_free_ char *n = model_name_of_file(*f);
                        if (n && streq(n, model->name))
                                keep = true;
                }
                if (keep) {
                        i++;
                        continue;
                }
                log_info("Model %s is no longer configured; its store stays on disk.", model->name);
                manager_remove_model(m, model);
        }

        while (c->n_models > 0) {
                _cleanup_(model_config_freep) ModelConfig *mc = config_take_model(c, c->models[0]->name);
                Model *model = manager_find_model(m, mc->name);

                if (!model) {
                        Model *n = NULL;
                        r = model_new(m, mc, &n);
                        if (r < 0)
                                return r;
                        TAKE_PTR(mc);
                        r = manager_add_model(m, n);
                        if (r < 0) {
                                model_free(n);
                                return r;
                        }
                        log_info("Model %s loaded from %s.", n->name, n->config->path);
                        if (m->started)
                                (void) model_start(n);
                } else if (model->config->text_size != mc->text_size ||
                           memcmp(model->config->text, mc->text, mc->text_size) != 0 ||
                           !streq(model->config->path, mc->path)) {
                        log_info("Model %s: configuration changed, applied.", model->name);
                        model_set_config(model, TAKE_PTR(mc));
                }
        }
        return 0;
}

static int on_inotify_debounce(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        m->inotify_debounce = sd_event_source_disable_unref(m->inotify_debounce);
        (void) manager_reload(m, "a model file changed");
        return 0;
}

static int on_models_changed(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Manager *m = userdata;

        if (ev->len > 0 && (ev->name[0] == '.' || !(endswith(ev->name, ".yaml") || endswith(ev->name, ".yml"))))
                return 0; /* editor swap files and the like */
        if (m->inotify_debounce)
                return sd_event_source_set_time_relative(m->inotify_debounce, INOTIFY_DEBOUNCE_USEC);
        return sd_event_add_time_relative(m->event, &m->inotify_debounce, CLOCK_MONOTONIC, INOTIFY_DEBOUNCE_USEC, 0,
                                          on_inotify_debounce, m);
}

static int manager_watch_models(Manager *m) {
        int r;

        if (!m->config->daemon.watch_models) {
                m->inotify_source = sd_event_source_disable_unref(m->inotify_source);
                return 0;
        }
        if (m->inotify_source && streq_ptr(m->models_directory, m->config->daemon.models_directory))
                return 0;
        m->inotify_source = sd_event_source_disable_unref(m->inotify_source);
        free(m->models_directory);
        m->models_directory = strdup(m->config->daemon.models_directory);
        if (!m->models_directory)
                return log_oom();
        r = sd_event_add_inotify(m->event, &m->inotify_source, m->models_directory,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR, on_models_changed,
                                 m);
        if (r < 0)
                log_warning_errno(r, "Cannot watch %s for changes (reload with SIGHUP instead): %m",
                                  m->models_directory);
        return 0;
}

static int manager_configure_jobs(Manager *m) {
        unsigned max = m->config->daemon.max_jobs;

        if (max == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                max = n > 0 ? (unsigned) n : 1;
        }
        /* Tests and the demo may point at an agent in the build tree. */
        const char *agent = getenv("MODELKEEPER_AGENT") ?: m->config->daemon.agent_path;
        return job_runner_configure(m->jobs, agent, m->config->daemon.state_directory,
                                    m->config->daemon.runtime_directory, max, m->config->daemon.job_timeout);
}

int manager_load(Manager *m) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **refused = NULL;
        int r;

        r = manager_read_config(m, &c, &refused);
        if (r < 0)
                return r;
        /* The main configuration first: models find their directories through it. */
        config_free(m->config);
        m->config = TAKE_PTR(c);
        r = manager_apply_models(m, m->config, refused);
        if (r < 0)
                return r;
        strv_free(m->refused_files);
        m->refused_files = TAKE_PTR(refused);
        return manager_configure_jobs(m);
}

int manager_reload(Manager *m, const char *why) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **refused = NULL;
        uint64_t now_usec = 0;
        int r;

        if (m->stopping)
                return -ESHUTDOWN;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now_usec);
        /* systemd ≥ 253 wants MONOTONIC_USEC= with RELOADING=1 for Type=notify-reload; harmless before. */
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=Reloading configuration…", now_usec);

        r = manager_read_config(m, &c, &refused);
        if (r < 0)
                goto done;

        /* The runtime directory holds the control socket we are serving on: moving it needs a
         * restart. Everything else applies now. */
        if (!streq(c->daemon.runtime_directory, m->config->daemon.runtime_directory)) {
                log_warning("runtime_directory changed to %s; it takes effect at the next restart.",
                            c->daemon.runtime_directory);
                free(c->daemon.runtime_directory);
                c->daemon.runtime_directory = strdup(m->config->daemon.runtime_directory);
                if (!c->daemon.runtime_directory) {
                        r = log_oom();
                        goto done;
                }
        }
        /* Directories in use stay until a restart (state_directory holds the stores being worked on). */
        if (!streq(c->daemon.state_directory, m->config->daemon.state_directory)) {
                log_warning("state_directory changed to %s; it takes effect at the next restart.",
                            c->daemon.state_directory);
                free(c->daemon.state_directory);
                c->daemon.state_directory = strdup(m->config->daemon.state_directory);
                if (!c->daemon.state_directory) {
                        r = log_oom();
                        goto done;
                }
        }
        {
                Config *old = m->config;
                m->config = TAKE_PTR(c);
                r = manager_apply_models(m, m->config, refused);
                config_free(old);
        }
        if (r < 0)
                goto done;
        strv_free(m->refused_files);
        m->refused_files = TAKE_PTR(refused);
        (void) manager_configure_jobs(m);
        (void) manager_watch_models(m);
        (void) metrics_file_setup(m);
        m->reloads++;
        log_event(LOG_INFO, 0,
                  &(LogFields){.message_id = MK_MESSAGE_RELOADED, .action = "reload", .reason = why},
                  "Configuration reloaded (%s): %zu model%s%s.", why, m->n_models, m->n_models == 1 ? "" : "s",
                  m->refused_files ? ", some model files refused" : "");
        r = 0;
done:
        manager_notify_ready(m);
        return r;
}

static int on_stop_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("Received SIG%s, stopping.", sigabbrev_np((int) si->ssi_signo) ?: "?");
        manager_stop(m);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) manager_reload(userdata, "SIGHUP");
        return 0;
}

static void on_job_progress(Job *j, void *userdata) {
        Manager *m = userdata;
        control_emit_job_progress(m->control, j);
}

static int check_exit(Manager *m) {
        if (m->stopping && job_runner_running(m->jobs) == 0)
                return sd_event_exit(m->event, 0);
        return 0;
}

void manager_stop(Manager *m) {
        if (m->stopping)
                return;
        m->stopping = true;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping: letting running jobs leave their work resumable…");
        log_event(LOG_INFO, 0, &(LogFields){.message_id = MK_MESSAGE_STOPPING, .action = "stop"},
                  "modelkeeperd stopping (%u job%s running).", job_runner_running(m->jobs),
                  job_runner_running(m->jobs) == 1 ? "" : "s");
        for (size_t i = 0; i < m->n_models; i++)
                model_abort(m->models[i], "modelkeeperd is stopping");
        job_runner_cancel_all(m->jobs, "modelkeeperd is stopping");
        (void) check_exit(m);
}

int manager_submit_job(Manager *m, Model *model, const char *verb, char **args, uint64_t timeout, JobDoneFn done,
                       void *userdata, Job **ret) {
        JobSpec spec = {
                .model = model ? model->name : NULL,
                .verb = verb,
                .args = args,
                .timeout = timeout,
                .config_path = m->config->path,
                .config_text = m->config->text,
                .config_size = m->config->text_size,
                .model_path = model ? model->config->path : NULL,
                .model_text = model ? model->config->text : NULL,
                .model_size = model ? model->config->text_size : 0,
                .done = done,
                .userdata = userdata,
        };
        int r = job_submit(m->jobs, &spec, ret);
        manager_update_status(m);
        return r;
}

/* Jobs end through here as well as through their own callbacks: used to notice when a stop can
 * complete and to refresh STATUS=. */
static int on_post(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        unsigned running = job_runner_running(m->jobs), pending = job_runner_pending(m->jobs);

        if (running != m->last_running || pending != m->last_pending) {
                m->last_running = running;
                m->last_pending = pending;
                if (!m->stopping)
                        manager_update_status(m);
        }
        return check_exit(m);
}

int manager_startup(Manager *m) {
        const char *rt = m->config->daemon.runtime_directory;
        _cleanup_free_ char *socket_path = NULL;
        sd_event_source *post = NULL;
        int r;

        r = sd_event_add_signal(m->event, &m->sigterm_source, SIGTERM, on_stop_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sigint_source, SIGINT, on_stop_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, &m->sighup_source, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handling: %m");

        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog: %m");

        r = sd_event_add_post(m->event, &post, on_post, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add post handler: %m");
        (void) sd_event_source_set_floating(post, true);
        sd_event_source_unref(post);

        m->jobs->progress = on_job_progress;
        m->jobs->progress_userdata = m;

        /* The runtime and state directories: systemd creates them for us (RuntimeDirectory=,
         * StateDirectory=); by hand or in tests we create them. */
        r = mkdir_p(rt, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create runtime directory %s: %m", rt);
        r = mkdir_p(m->config->daemon.state_directory, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create state directory %s: %m", m->config->daemon.state_directory);

        socket_path = path_join(rt, "control");
        if (!socket_path)
                return log_oom();
        r = control_new(m, socket_path, &m->control);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the control socket %s: %m", socket_path);

        (void) manager_watch_models(m);
        (void) metrics_file_setup(m);

        /* Each model first reconciles its store with state.json (an agent job each). */
        m->started = true;
        for (size_t i = 0; i < m->n_models; i++)
                (void) model_start(m->models[i]);

        /* Only now is everything in place that READY=1 promises. */
        manager_notify_ready(m);
        m->ready_sent = true;
        log_event(LOG_INFO, 0, &(LogFields){.message_id = MK_MESSAGE_STARTED, .action = "start"},
                  "modelkeeperd " PACKAGE_VERSION " started: %zu model%s, control socket %s.", m->n_models,
                  m->n_models == 1 ? "" : "s", socket_path);
        return 0;
}

int manager_run(Manager *m) {
        return sd_event_loop(m->event);
}
