/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "fileio.h"
#include "jobs.h"
#include "log.h"
#include "parse-util.h"
#include "stats.h"
#include "strv.h"

/* How long a cancelled agent may take to leave its staging area in a resumable state. */
#define JOB_KILL_GRACE_USEC (3 * USEC_PER_SEC)

static void job_free(Job *j) {
        if (!j)
                return;
        sd_event_source_disable_unref(j->io_source);
        sd_event_source_disable_unref(j->child_source);
        sd_event_source_disable_unref(j->timer_source);
        sd_event_source_disable_unref(j->kill_source);
        safe_close(j->fd);
        safe_close(j->config_fd);
        safe_close(j->model_fd);
        json_decref(j->result_data);
        free(j->kill_reason);
        free(j->model);
        free(j->verb);
        strv_free(j->argv);
        free(j);
}

int job_runner_new(sd_event *event, JobRunner **ret) {
        JobRunner *r = calloc(1, sizeof(JobRunner));

        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->max_running = 1;
        r->default_timeout = 3600 * USEC_PER_SEC;
        r->next_id = 1;
        *ret = r;
        return 0;
}

JobRunner *job_runner_free(JobRunner *r) {
        if (!r)
                return NULL;
        while (r->jobs) {
                Job *j = r->jobs;
                r->jobs = j->next;
                if (j->state == JOB_RUNNING && j->pid > 0) {
                        /* Last resort (the daemon is going away without a clean shutdown). */
                        (void) kill(j->pid, SIGKILL);
                        (void) waitpid(j->pid, NULL, 0);
                }
                job_free(j);
        }
        free(r->agent_path);
        free(r->state_directory);
        free(r->runtime_directory);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

int job_runner_configure(JobRunner *r, const char *agent_path, const char *state_directory,
                         const char *runtime_directory, unsigned max_running, uint64_t default_timeout) {
        char *a = strdup(agent_path), *s = strdup(state_directory), *t = strdup(runtime_directory);

        if (!a || !s || !t) {
                free(a);
                free(s);
                free(t);
                return -ENOMEM;
        }
        free(r->agent_path);
        free(r->state_directory);
        free(r->runtime_directory);
        r->agent_path = a;
        r->state_directory = s;
        r->runtime_directory = t;
        r->max_running = MAX(max_running, 1u);
        r->default_timeout = default_timeout;
        return 0;
}

unsigned job_runner_running(const JobRunner *r) {
        return r->n_running;
}

unsigned job_runner_pending(const JobRunner *r) {
        unsigned n = 0;
        for (Job *j = r->jobs; j; j = j->next)
                if (j->state == JOB_PENDING)
                        n++;
        return n;
}

Job *job_runner_find_model(JobRunner *r, const char *model) {
        for (Job *j = r->jobs; j; j = j->next)
                if (j->model && streq(j->model, model))
                        return j;
        return NULL;
}

Job *job_runner_find(JobRunner *r, uint64_t id) {
        for (Job *j = r->jobs; j; j = j->next)
                if (j->id == id)
                        return j;
        return NULL;
}

static void job_unlink(Job *j) {
        JobRunner *r = j->runner;

        for (Job **p = &r->jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
}

static void runner_dispatch(JobRunner *r);

/* The single exit of a job: report, unlink, free, start whatever waits. */
static void job_finish(Job *j, int error, const char *reason) {
        JobRunner *r = j->runner;
        uint64_t now = 0;

        if (j->started_usec > 0 && sd_event_now(r->event, CLOCK_MONOTONIC, &now) >= 0)
                stats_job_finished(j->verb, now - j->started_usec, error);

        if (j->state == JOB_RUNNING)
                r->n_running--;
        j->state = JOB_FINISHED;
        job_unlink(j);
        if (j->done)
                j->done(j, error, error < 0 ? reason : NULL, j->result_data, j->userdata);
        job_free(j);
        runner_dispatch(r);
}

static void job_kill(Job *j, int error, const char *why) {
        if (j->killed || j->pid <= 0)
                return;
        j->killed = true;
        if (!j->kill_reason) {
                j->kill_reason = strdup(why);
                j->kill_error = error;
        }
        /* Through the child event source: it uses the pidfd, so a recycled pid is never hit. */
        if (sd_event_source_send_child_signal(j->child_source, SIGKILL, NULL, 0) < 0)
                (void) kill(j->pid, SIGKILL);
}

static int job_read_messages(Job *j) {
        for (;;) {
                uint8_t buf[WIRE_MESSAGE_MAX + 1];
                WireMessage m;
                ssize_t n;

                n = recv(j->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                if (n == 0)
                        return -EPIPE; /* the agent closed its end */
                if ((size_t) n > WIRE_MESSAGE_MAX || wire_message_parse(buf, (size_t) n, &m) < 0) {
                        log_warning("Job %" PRIu64 " (%s %s): malformed message from the agent (%zd bytes), killing it.",
                                    j->id, j->verb, strna(j->model), n);
                        job_kill(j, -EPROTO, "malformed message from the agent");
                        return -EBADMSG;
                }
                if (j->have_result) {
                        wire_message_done(&m);
                        job_kill(j, -EPROTO, "message from the agent after its result");
                        return -EBADMSG;
                }
                if (m.type == WIRE_PROGRESS) {
                        memcpy(j->phase, m.phase, sizeof(j->phase));
                        j->done_bytes = m.done;
                        j->total_bytes = m.total;
                        if (j->runner->progress)
                                j->runner->progress(j, j->runner->progress_userdata);
                } else {
                        j->have_result = true;
                        j->result_error = m.ok ? 0 : -m.error;
                        memcpy(j->result_reason, m.reason, sizeof(j->result_reason));
                        j->result_data = TAKE_PTR(m.data);
                }
                wire_message_done(&m);
        }
}

static int on_job_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Job *j = userdata;
        int r;

        r = job_read_messages(j);
        if (r < 0)
                /* EOF or a bad message: stop listening; the child handler decides the outcome. */
                j->io_source = sd_event_source_disable_unref(j->io_source);
        return 0;
}

static int on_job_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Job *j = userdata;
        char reason[WIRE_REASON_MAX + 64];
        int error = 0;

        /* Messages may still sit in the socket: read them before judging. */
        if (j->io_source)
                (void) job_read_messages(j);

        if (j->cancelled) {
                /* Whatever the agent did on SIGTERM, the job did not complete. */
                snprintf(reason, sizeof(reason), "%s", j->kill_reason ?: "cancelled");
                error = -ECANCELED;
        } else if (j->killed) {
                snprintf(reason, sizeof(reason), "%s", j->kill_reason ?: "killed");
                error = j->kill_error < 0 ? j->kill_error : -EPROTO;
        } else if (si->si_code == CLD_EXITED && si->si_status == 0) {
                if (!j->have_result) {
                        snprintf(reason, sizeof(reason), "agent exited without reporting a result");
                        error = -EPROTO;
                } else if (j->result_error < 0) {
                        snprintf(reason, sizeof(reason), "%s",
                                 j->result_reason[0] ? j->result_reason : strerror(-j->result_error));
                        error = j->result_error;
                }
        } else if (si->si_code == CLD_EXITED) {
                if (j->have_result && j->result_error < 0) {
                        snprintf(reason, sizeof(reason), "%s", j->result_reason);
                        error = j->result_error;
                } else {
                        /* A success report followed by a failing exit is not a success. */
                        snprintf(reason, sizeof(reason), "agent exited with status %d", si->si_status);
                        error = -EPROTO;
                }
        } else {
                snprintf(reason, sizeof(reason), "agent %s by signal SIG%s",
                         si->si_code == CLD_DUMPED ? "crashed (core dumped)" : "killed",
                         sigabbrev_np(si->si_status) ?: "?");
                error = -ECHILD;
        }

        j->pid = 0; /* reaped by sd-event */
        job_finish(j, error, reason);
        return 0;
}

static int on_job_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;
        char buf[FORMAT_DURATION_MAX + 32], d[FORMAT_DURATION_MAX];

        snprintf(buf, sizeof(buf), "timed out after %s", format_duration(d, j->timeout));
        log_warning("Job %" PRIu64 " (%s %s) %s, killing the agent.", j->id, j->verb, strna(j->model), buf);
        job_kill(j, -ETIMEDOUT, buf);
        return 0;
}

static int on_kill_grace(sd_event_source *s, uint64_t usec, void *userdata) {
        Job *j = userdata;

        j->killed = false; /* allow job_kill to proceed */
        job_kill(j, -ECANCELED, "cancelled");
        return 0;
}

/* A sealed memfd: the agent can read the configuration but nobody can change it under it. */
static int make_config_fd(const char *name, const char *text, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        r = loop_write(fd, text ?: "", text ? size : 0);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return TAKE_FD(fd);
}

_noreturn_ static void child_exec(Job *j, int sock, pid_t parent) {
        sigset_t all;

        /* The agent must not outlive the daemon (DESIGN.md §2): if the daemon dies, so does its
         * job — the next start reconciles. Check for a parent that died before the prctl. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);

        /* Undo what the daemon set up for itself: the agent starts with default signals. */
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) signal(sig, SIG_DFL);

        /* Fixed descriptors: 3 = wire, 4 = modelkeeper.yaml, 5 = model file. dup2 clears O_CLOEXEC
         * on the copies; everything else is closed. */
        int src[3] = {sock, j->config_fd, j->model_fd};
        /* First move the sources out of the way: one of them may sit on 3, 4 or 5 already. */
        for (size_t i = 0; i < ELEMENTSOF(src); i++)
                if (src[i] >= 0 && (src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10)) < 0)
                        _exit(127);
        for (size_t i = 0; i < ELEMENTSOF(src); i++)
                if (src[i] >= 0 && dup2(src[i], 3 + (int) i) < 0)
                        _exit(127);
        (void) close_range(j->model_fd >= 0 ? 6 : 5, ~0U, 0);
        execv(j->argv[0], j->argv);
        fprintf(stderr, "Failed to execute %s: %m\n", j->argv[0]);
        _exit(127);
}

static int job_start(Job *j) {
        JobRunner *r = j->runner;
        int sv[2] = {-EBADF, -EBADF};
        pid_t pid, parent;
        int k;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;

        parent = getpid();
        pid = fork();
        if (pid < 0) {
                k = -errno;
                safe_close(sv[0]);
                safe_close(sv[1]);
                return k;
        }
        if (pid == 0)
                child_exec(j, sv[1], parent);

        safe_close(sv[1]);
        j->fd = sv[0];
        j->pid = pid;
        j->config_fd = safe_close(j->config_fd);
        j->model_fd = safe_close(j->model_fd);
        j->state = JOB_RUNNING;
        r->n_running++;
        (void) sd_event_now(r->event, CLOCK_MONOTONIC, &j->started_usec);

        k = sd_event_add_child(r->event, &j->child_source, pid, WEXITED, on_job_exit, j);
        if (k < 0) {
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return k;
        }
        k = sd_event_add_io(r->event, &j->io_source, j->fd, EPOLLIN, on_job_io, j);
        if (k >= 0)
                k = sd_event_add_time_relative(r->event, &j->timer_source, CLOCK_MONOTONIC, j->timeout, USEC_PER_SEC / 10,
                                               on_job_timeout, j);
        if (k < 0) {
                job_kill(j, -EIO, "internal error setting up the job");
                return 0; /* the child handler finishes it */
        }
        log_debug("Job %" PRIu64 " started: %s %s (pid %d).", j->id, j->verb, strna(j->model), (int) pid);
        return 0;
}

static void runner_dispatch(JobRunner *r) {
        if (r->shutting_down)
                return;
        for (Job *j = r->jobs, *next; j && r->n_running < r->max_running; j = next) {
                bool busy = false;
                int k;

                next = j->next;
                if (j->state != JOB_PENDING)
                        continue;
                /* One job at a time per model: it owns the model's directories. */
                if (j->model)
                        for (Job *o = r->jobs; o; o = o->next)
                                if (o != j && o->state == JOB_RUNNING && o->model && streq(o->model, j->model))
                                        busy = true;
                if (busy)
                        continue;
                k = job_start(j);
                if (k < 0) {
                        char reason[128];
                        snprintf(reason, sizeof(reason), "failed to start the agent: %s", strerror(-k));
                        job_finish(j, k, reason);
                        /* job_finish re-entered dispatch; the list may have changed. */
                        return;
                }
        }
}

int job_submit(JobRunner *r, const JobSpec *spec, Job **ret) {
        Job *j;
        char idbuf[32];
        int k;

        assert_return(r && spec && spec->verb, -EINVAL);
        if (r->shutting_down)
                return -ESHUTDOWN;
        if (!r->agent_path)
                return -EINVAL;

        j = calloc(1, sizeof(Job));
        if (!j)
                return -ENOMEM;
        *j = (Job){
                .runner = r,
                .id = r->next_id++,
                .timeout = spec->timeout ?: r->default_timeout,
                .fd = -EBADF,
                .config_fd = -EBADF,
                .model_fd = -EBADF,
                .done = spec->done,
                .userdata = spec->userdata,
        };
        j->verb = strdup(spec->verb);
        j->model = spec->model ? strdup(spec->model) : NULL;
        if (!j->verb || (spec->model && !j->model))
                goto oom;

        /* The agent's command line: never a secret on it (it is world-readable in /proc). */
        snprintf(idbuf, sizeof(idbuf), "%" PRIu64, j->id);
        if (strv_extend(&j->argv, r->agent_path) < 0 || strv_extend(&j->argv, spec->verb) < 0 ||
            strv_extend(&j->argv, "--job") < 0 || strv_extend(&j->argv, idbuf) < 0 ||
            strv_extend(&j->argv, "--state-directory") < 0 || strv_extend(&j->argv, r->state_directory) < 0 ||
            strv_extend(&j->argv, "--runtime-directory") < 0 || strv_extend(&j->argv, r->runtime_directory) < 0)
                goto oom;
        /* Without a configuration (tests) the agent gets an empty one: every default. */
        if (strv_extend(&j->argv, "--config") < 0 ||
            strv_extend(&j->argv, spec->config_text ? spec->config_path : "/dev/null") < 0 ||
            strv_extend(&j->argv, "--config-fd") < 0 || strv_extend(&j->argv, "4") < 0)
                goto oom;
        k = make_config_fd("modelkeeper.yaml", spec->config_text, spec->config_size);
        if (k < 0)
                goto fail;
        j->config_fd = k;
        if (spec->model) {
                if (strv_extend(&j->argv, "--model") < 0 || strv_extend(&j->argv, spec->model) < 0)
                        goto oom;
        }
        if (spec->model_text) {
                if (strv_extend(&j->argv, "--model-file") < 0 || strv_extend(&j->argv, spec->model_path) < 0 ||
                    strv_extend(&j->argv, "--model-fd") < 0 || strv_extend(&j->argv, "5") < 0)
                        goto oom;
                k = make_config_fd("model.yaml", spec->model_text, spec->model_size);
                if (k < 0)
                        goto fail;
                j->model_fd = k;
        }
        if (spec->args && strv_length(spec->args) > 0) {
                if (strv_extend(&j->argv, "--") < 0)
                        goto oom;
                STRV_FOREACH(a, spec->args)
                        if (strv_extend(&j->argv, *a) < 0)
                                goto oom;
        }

        /* Append in submission order. */
        {
                Job **p = &r->jobs;
                while (*p)
                        p = &(*p)->next;
                *p = j;
        }
        if (ret)
                *ret = j;
        runner_dispatch(r);
        return 0;
oom:
        k = -ENOMEM;
fail:
        job_free(j);
        return k;
}

void job_cancel(Job *j, const char *why) {
        if (!j || j->state == JOB_FINISHED)
                return;
        j->cancelled = true;
        if (j->state == JOB_PENDING) {
                job_finish(j, -ECANCELED, why);
                return;
        }
        if (j->kill_source)
                return;
        free(j->kill_reason);
        j->kill_reason = strdup(why);
        /* SIGTERM first: the agent leaves its staging area resumable and exits; SIGKILL after the
         * grace period in case it does not. */
        if (sd_event_source_send_child_signal(j->child_source, SIGTERM, NULL, 0) < 0)
                (void) kill(j->pid, SIGTERM);
        (void) sd_event_add_time_relative(j->runner->event, &j->kill_source, CLOCK_MONOTONIC, JOB_KILL_GRACE_USEC, 0,
                                          on_kill_grace, j);
}

void job_runner_cancel_all(JobRunner *r, const char *why) {
        Job *j;

        r->shutting_down = true;
        /* Pending jobs first (they finish synchronously and unlink themselves). */
        for (j = r->jobs; j;) {
                Job *next = j->next;
                if (j->state == JOB_PENDING)
                        job_finish(j, -ECANCELED, why);
                j = next;
        }
        for (j = r->jobs; j; j = j->next)
                job_cancel(j, why);
}
