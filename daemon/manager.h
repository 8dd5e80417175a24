/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The Manager owns the one sd-event loop of modelkeeperd and everything hanging off it: the
 * configuration, the models, the agent job runner and the control socket. Everything is an
 * event source; nothing here blocks.
 */

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "http.h"
#include "jobs.h"
#include "macros.h"

typedef struct Control Control;
typedef struct Model Model;

/* The daemon's own figures (exported in Prometheus text, see metrics_textfile). */
typedef struct ManagerCounters {
        uint64_t update_checks;
        uint64_t updates_installed;
        uint64_t releases_refused;
        uint64_t recompressions;
        uint64_t scrubs;
        uint64_t corrupt_found;
} ManagerCounters;

typedef struct Manager {
        sd_event *event;
        Config *config;              /* the last good main configuration (its models array is unused) */
        char *config_path;
        char *arg_state_directory;   /* command-line overrides */
        char *arg_runtime_directory;
        char *models_directory;      /* the one being watched */

        Model **models;              /* sorted by name */
        size_t n_models;
        char **refused_files;        /* model files refused at the last (re)load */

        JobRunner *jobs;
        Control *control;
        HttpClient *http;
        sd_bus *system_bus;   /* opened when a model restarts a systemd unit */

        sd_event_source *sigterm_source, *sigint_source, *sighup_source;
        sd_event_source *inotify_source, *inotify_debounce;

        ManagerCounters counters;
        bool stopping;
        bool ready_sent;
        uint64_t reloads;
        bool started;                /* manager_startup() done: new models start right away */
        unsigned last_running, last_pending;
        uid_t self_uid;
        gid_t admin_gid;             /* (gid_t) -1: no admin group */
} Manager;

int manager_new(Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Load the configuration for the first time. A broken main file fails; broken model files are
 * logged and left out. */
int manager_load(Manager *m);
/* Create the runtime directory and the control socket, start watching, tell systemd READY=1. */
int manager_startup(Manager *m);
/* Re-read the configuration; on any error in the main file keep everything; per model file keep
 * the last good one. Returns 0 when something was applied, < 0 when the main file was refused. */
int manager_reload(Manager *m, const char *why);
/* Begin a clean stop: STOPPING=1, cancel jobs, exit the loop when they are gone. */
void manager_stop(Manager *m);
int manager_run(Manager *m);

Model *manager_find_model(Manager *m, const char *name) _pure_;
void manager_update_status(Manager *m);

/* Submit an agent job for a model with the model's configuration attached. */
int manager_submit_job(Manager *m, Model *model, const char *verb, char **args, uint64_t timeout, JobDoneFn done,
                       void *userdata, Job **ret);
