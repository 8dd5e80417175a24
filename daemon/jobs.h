/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent job runner (DESIGN.md §2): every piece of work that touches weights, the network or
 * the store runs as one modelkeeper-agent process. The daemon forks+execs it with a
 * SOCK_SEQPACKET socketpair on fd 3 (WIRE_FD) and the configuration it runs with on fds 4 and 5
 * (sealed memfds holding the bytes of modelkeeper.yaml and of the model file — exactly the last
 * good configuration, even if the file on disk has been edited since), watches it with
 * sd_event_add_child, reads length-checked messages, and kills it on timeout, cancel or a
 * malformed message.
 *
 * Jobs are serialised per model (one running at a time for a model) and limited globally.
 */

#include <jansson.h>
#include <systemd/sd-event.h>

#include "macros.h"
#include "wire.h"

typedef struct Job Job;
typedef struct JobRunner JobRunner;

/* Called once per job when it ends. error == 0: success; error < 0: failure, reason says why in
 * words. data is what the agent reported with its result (borrowed; may be NULL, also on failure). */
typedef void (*JobDoneFn)(Job *j, int error, const char *reason, json_t *data, void *userdata);
/* Called for each progress message. */
typedef void (*JobProgressFn)(Job *j, void *userdata);

typedef struct JobSpec {
        const char *model;        /* serialisation key; NULL for jobs not tied to a model */
        const char *verb;
        char **args;              /* extra arguments after the verb's common ones (copied) */
        uint64_t timeout;         /* usec; 0: the runner's default */
        /* The configuration handed to the agent (bytes, not paths): */
        const char *config_path;
        const char *config_text;
        size_t config_size;
        const char *model_path;
        const char *model_text;
        size_t model_size;
        JobDoneFn done;
        void *userdata;
} JobSpec;

typedef enum JobState {
        JOB_PENDING,
        JOB_RUNNING,
        JOB_FINISHED,
} JobState;

struct Job {
        JobRunner *runner;
        Job *next;                /* in the runner's list */
        uint64_t id;
        char *model;
        char *verb;
        char **argv;
        uint64_t timeout;
        JobState state;
        pid_t pid;
        int fd;
        int config_fd, model_fd;
        sd_event_source *io_source, *child_source, *timer_source, *kill_source;
        uint64_t started_usec;

        char phase[WIRE_PHASE_MAX + 1];
        uint64_t done_bytes, total_bytes;

        bool have_result, killed, cancelled;
        int result_error;
        int kill_error;
        char *kill_reason;
        char result_reason[WIRE_REASON_MAX + 1];
        json_t *result_data;

        JobDoneFn done;
        void *userdata;
};

struct JobRunner {
        sd_event *event;
        char *agent_path;
        char *state_directory;
        char *runtime_directory;
        unsigned max_running;
        uint64_t default_timeout;
        uint64_t next_id;
        Job *jobs;                /* pending and running, in submission order */
        unsigned n_running;
        JobProgressFn progress;
        void *progress_userdata;
        bool shutting_down;
};

int job_runner_new(sd_event *event, JobRunner **ret);
JobRunner *job_runner_free(JobRunner *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(JobRunner *, job_runner_free);
int job_runner_configure(JobRunner *r, const char *agent_path, const char *state_directory,
                         const char *runtime_directory, unsigned max_running, uint64_t default_timeout);

/* Queue a job; it starts as soon as the limits allow. Returns the job (owned by the runner). */
int job_submit(JobRunner *r, const JobSpec *spec, Job **ret);
/* Ask a job to stop: pending jobs are dropped, running agents get SIGTERM (then SIGKILL after a
 * grace period). The done callback runs with -ECANCELED. */
void job_cancel(Job *j, const char *why);
/* Cancel everything (shutdown). */
void job_runner_cancel_all(JobRunner *r, const char *why);

unsigned job_runner_running(const JobRunner *r) _pure_;
unsigned job_runner_pending(const JobRunner *r) _pure_;
/* The running or pending job of a model, if any. */
Job *job_runner_find_model(JobRunner *r, const char *model) _pure_;
Job *job_runner_find(JobRunner *r, uint64_t id) _pure_;
