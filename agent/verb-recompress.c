/* SPDX-License-Identifier: Apache-2.0 */

/*
 * recompress PROFILE --from RELEASE: build the derived version "<release>~<profile>" from its
 * release parent (never from another derived one; DESIGN.md §3, §7) into staging, then commit it
 * like any version. Built-in methods stream tensor by tensor (agent/recompress.c): the parent's
 * files are read (unsealed on the fly when sealed), the outputs go through the install pipeline
 * (SHA-256, seal, fsync). `exec` runs an external compressor with the parent's plaintext as its
 * input directory and an empty output directory, without network, with a time and memory limit;
 * its output is then installed like an import.
 *
 * meta.json records parent, profile, parameters, tool and version, and the error statistics of
 * every tensor (max abs error, relative RMSE); for exec the tool is the compressor (argv[0]) and
 * there are no statistics.
 *
 * Progress: bytes of the parent's weights converted (built-in methods, every pass of prune
 * counted), or the compressor's input prepared, then the bytes it has written (no total: only it
 * knows), then its output installed; at most ten messages a second.
 */

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "agent.h"
#include "fileio.h"
#include "log.h"
#include "netdeny.h"
#include "parse-util.h"
#include "recompress.h"
#include "store.h"
#include "strv.h"
#include "unseal.h"

typedef struct Output {
        Agent *agent;
        Store *store;
        int files_fd;
        const InstallSealHook *seal;
        VersionMeta *meta;
        char **written;          /* names produced by the compression */
        InstallFile current;
        bool open;
} Output;

static int output_open(void *userdata, const char *name, StreamWriter *ret) {
        Output *o = userdata;
        int r;

        if (!filename_is_safe(name) || o->open)
                return -EINVAL;
        r = install_file_open(&o->current, o->files_fd, name, UINT64_MAX / 2, o->seal);
        if (r < 0)
                return r;
        o->open = true;
        *ret = o->current.writer;
        return 0;
}

static int add_meta_file(VersionMeta *meta, const char *name, const InstallFile *f, const uint8_t *sha) {
        VersionFile *a = reallocarray(meta->files, meta->n_files + 1, sizeof(VersionFile));
        if (!a)
                return -ENOMEM;
        meta->files = a;
        a[meta->n_files] = (VersionFile){.name = strdup(name), .size = f->plain_bytes, .stored_size = f->stored_bytes};
        if (!a[meta->n_files].name)
                return -ENOMEM;
        memcpy(a[meta->n_files].sha256, sha, SHA256_DIGEST_SIZE);
        meta->n_files++;
        meta->total_size += f->plain_bytes;
        return 0;
}

static int output_close(void *userdata, const char *name, StreamWriter *w, bool ok) {
        Output *o = userdata;
        uint8_t sha[SHA256_DIGEST_SIZE];
        int r = 0;

        if (!o->open)
                return -EINVAL;
        if (ok)
                r = install_file_finish(&o->current, sha);
        if (ok && r >= 0)
                r = add_meta_file(o->meta, name, &o->current, sha);
        if (ok && r >= 0)
                r = strv_extend(&o->written, name);
        if (!ok)
                (void) unlinkat(o->files_fd, o->current.name, 0);
        install_file_done(&o->current);
        o->open = false;
        return r;
}

/* Install a whole buffer (a copied file, an updated config.json) as one output file. */
static int output_buffer(Output *o, const char *name, const void *data, size_t size) {
        StreamWriter w;
        int r;

        r = output_open(o, name, &w);
        if (r < 0)
                return r;
        r = stream_write(&w, data, size);
        return output_close(o, name, &w, r >= 0) < 0 ? -EIO : r;
}

static int output_copy_from(Output *o, const char *name, const StreamReader *in) {
        _cleanup_free_ uint8_t *buf = malloc(1024 * 1024);
        StreamWriter w;
        int r;

        if (!buf)
                return -ENOMEM;
        r = output_open(o, name, &w);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = stream_read(in, buf, 1024 * 1024);
                if (n < 0) {
                        r = (int) n;
                        break;
                }
                if (n == 0)
                        break;
                r = stream_write(&w, buf, (size_t) n);
                if (r < 0)
                        break;
        }
        return output_close(o, name, &w, r >= 0) < 0 && r >= 0 ? -EIO : r;
}

static bool is_weights(const char *name) {
        return endswith(name, ".safetensors") || endswith(name, ".safetensors.index.json");
}

/* Read a small file of the parent (config.json, an index) into memory through the unsealer. */
static int read_small(Unsealer *u, const char *name, size_t max, char **ret, size_t *ret_size) {
        StreamReader r;
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;
        int k;

        k = unsealer_open(u, name, &r);
        if (k < 0)
                return k;
        buf = malloc(max + 1);
        if (!buf) {
                unsealer_close(u, name, &r);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t m = stream_read(&r, buf + n, max + 1 - n);
                if (m < 0) {
                        k = (int) m;
                        break;
                }
                if (m == 0)
                        break;
                n += (size_t) m;
                if (n > max) {
                        k = -EFBIG;
                        break;
                }
        }
        unsealer_close(u, name, &r);
        if (k < 0)
                return k;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

/* --- progress ----------------------------------------------------------------------------- */

static uint64_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* Progress of a whole job in bytes of the parent's plaintext: what the files done so far weigh,
 * plus the part of the current one. At most ten messages a second, and always the last. */
typedef struct Progress {
        Agent *agent;
        const VersionMeta *parent;
        const char *phase;
        uint64_t total;
        uint64_t finished;       /* bytes of the files completed */
        char *current;           /* the file in progress */
        uint64_t current_size;
        uint64_t last;
} Progress;

static void progress_report(Progress *p, uint64_t done, uint64_t total) {
        uint64_t n = now_mono();

        if (done < total && n - p->last < 100 * USEC_PER_MSEC)
                return;
        p->last = n;
        agent_progress(p->agent, p->phase, done, total);
}

/* RecompressInput.progress: file `name` is done/total of the way (over every pass). */
static void progress_file(Progress *p, const char *name, uint64_t done, uint64_t total) {
        uint64_t part;

        if (!streq_ptr(p->current, name)) {
                const VersionFile *vf = version_meta_find_file(p->parent, name);
                p->finished += p->current_size;
                free(p->current);
                p->current = strdup(name);
                /* Out of memory: this file counts for nothing rather than twice. */
                p->current_size = vf && p->current ? vf->size : 0;
        }
        part = total > 0 ? (uint64_t) ((double) p->current_size * ((double) done / (double) total)) : 0;
        progress_report(p, MIN(p->finished + MIN(part, p->current_size), p->total), p->total);
}

typedef struct Input {
        Unsealer *unsealer;
        Progress *progress;
} Input;

static void input_progress(void *userdata, const char *name, uint64_t done, uint64_t total) {
        Input *in = userdata;
        progress_file(in->progress, name, done, total);
}

static int input_open(void *userdata, const char *name, StreamReader *ret) {
        Input *in = userdata;
        return unsealer_open(in->unsealer, name, ret);
}

static void input_close(void *userdata, const char *name, StreamReader *r) {
        Input *in = userdata;
        unsealer_close(in->unsealer, name, r);
}

/* --- exec: an external compressor --------------------------------------------------------- */

/* Replace every occurrence of key in s by value. */
static char *substitute(const char *s, const char *key, const char *value) {
        size_t kl = strlen(key), vl = strlen(value), n = 0;
        const char *p;
        char *out, *o;

        for (p = s; (p = strstr(p, key)); p += kl)
                n++;
        out = malloc(strlen(s) + n * vl + 1);
        if (!out)
                return NULL;
        for (o = out, p = s;;) {
                const char *q = strstr(p, key);
                if (!q) {
                        strcpy(o, p);
                        break;
                }
                memcpy(o, p, (size_t) (q - p));
                o += q - p;
                memcpy(o, value, vl);
                o += vl;
                p = q + kl;
        }
        return out;
}

/* argv with {input} and {output} substituted (also inside an argument, e.g. "--in={input}"). */
static char **exec_argv(char *const *command, const char *input, const char *output) {
        _cleanup_(strv_freep) char **argv = NULL;

        STRV_FOREACH(a, (char **) command) {
                _cleanup_free_ char *x = substitute(*a, "{input}", input);
                char *y = x ? substitute(x, "{output}", output) : NULL;
                if (strv_consume(&argv, y) < 0)
                        return NULL;
        }
        return TAKE_PTR(argv);
}

/* Bytes in the regular files of a directory (the compressor's output so far). */
static uint64_t dir_bytes(int dirfd) {
        struct dirent *de;
        uint64_t n = 0;
        int fd = dup(dirfd);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

        if (!d) {
                safe_close(fd);
                return 0;
        }
        /* A dup shares the directory's position with dirfd: start from the top, and leave it there. */
        rewinddir(d);
        while ((de = readdir(d))) {
                struct stat st;
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                        n += (uint64_t) st.st_size;
        }
        closedir(d);
        return n;
}

static int run_compressor(Agent *a, const RecompressProfile *p, const char *input, const char *output,
                          int out_fd, char *reason, size_t reason_size) {
        _cleanup_(strv_freep) char **argv = exec_argv(p->command, input, output);
        char t[FORMAT_DURATION_MAX];
        uint64_t start, last = 0;
        pid_t pid;
        int status = 0;

        if (!argv)
                return -ENOMEM;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct rlimit rl;

                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                (void) setenv("MODEL", a->model_name, 1);
                (void) close_range(3, ~0U, 0);
                /* No network for the compressor, whatever the kernel (seccomp: no socket(2) of any
                 * family, no io_uring; see netdeny.c). */
                if (netdeny_apply() < 0)
                        _exit(126);
                /* The memory limit last, right before execv(): nothing of ours allocates under it
                 * (an agent built with ASan reserves terabytes of address space). */
                if (p->memory_max > 0) {
                        rl = (struct rlimit){p->memory_max, p->memory_max};
                        if (setrlimit(RLIMIT_AS, &rl) < 0)
                                _exit(125);
                }
                execv(argv[0], argv);
                dprintf(STDERR_FILENO, "Failed to execute %s: %m\n", argv[0]);
                _exit(127);
        }
        start = now_mono();
        for (;;) {
                pid_t k = waitpid(pid, &status, WNOHANG);
                uint64_t n;

                if (k == pid)
                        break;
                if (k < 0 && errno != EINTR)
                        return -errno;
                n = now_mono();
                if (agent_terminate || n - start > p->timeout) {
                        (void) kill(pid, SIGKILL);
                        (void) waitpid(pid, &status, 0);
                        if (agent_terminate)
                                snprintf(reason, reason_size, "%s cancelled", argv[0]);
                        else
                                snprintf(reason, reason_size,
                                         "%s exceeded the profile's timeout (%s) and was killed", argv[0],
                                         format_duration(t, p->timeout));
                        return agent_terminate ? -ECANCELED : -ETIMEDOUT;
                }
                /* Its progress, as far as we can see it: what it has written (once a second). */
                if (n - last >= USEC_PER_SEC) {
                        agent_progress(a, "compress", dir_bytes(out_fd), 0);
                        last = n;
                }
                (void) usleep(50 * 1000);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                snprintf(reason, reason_size, "%s exited with status %d%s", argv[0], WEXITSTATUS(status),
                         WEXITSTATUS(status) == 125   ? " (cannot set the memory limit)"
                         : WEXITSTATUS(status) == 126 ? " (cannot apply the network filter)"
                         : WEXITSTATUS(status) == 127 ? " (cannot execute it)"
                                                      : "");
        else
                snprintf(reason, reason_size, "%s was killed by signal %d%s", argv[0], WTERMSIG(status),
                         WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGSEGV ? " (memory limit?)" : "");
        return -EIO;
}

/* The output directory of the compressor: regular files only, installed like an import. */
static int install_exec_output(Output *o, int out_dirfd, Progress *progress, char *reason,
                               size_t reason_size) {
        _cleanup_(strv_freep) char **names = NULL;
        struct dirent *de;
        uint64_t total = 0, done = 0;
        DIR *d;
        int fd, r = 0;

        fd = dup(out_dirfd);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d); /* shared position with out_dirfd, which dir_bytes() read to the end */
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (!filename_is_safe(de->d_name) || fstatat(out_dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISREG(st.st_mode)) {
                        snprintf(reason, reason_size, "the compressor left '%s', which is not a regular file", de->d_name);
                        closedir(d);
                        return -EPERM;
                }
                total += (uint64_t) st.st_size;
                if (strv_extend(&names, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        if (!names) {
                snprintf(reason, reason_size, "the compressor wrote no files");
                return -ENODATA;
        }
        progress->phase = "install";
        STRV_FOREACH(n, names) {
                _cleanup_close_ int in = openat(out_dirfd, *n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                StreamReader rd = STREAM_READER_FD(in);

                if (in < 0)
                        return -errno;
                r = output_copy_from(o, *n, &rd);
                if (r < 0) {
                        snprintf(reason, reason_size, "cannot install '%s': %s", *n, strerror(-r));
                        return r;
                }
                done += o->meta->files[o->meta->n_files - 1].size;
                progress_report(progress, MIN(done, total), total);
        }
        return 0;
}

static int recompress_exec(Agent *a, Output *o, Unsealer *u, const VersionMeta *parent, const RecompressProfile *p,
                           const char *id, Progress *progress, char *reason, size_t reason_size) {
        _cleanup_free_ char *in_name = xasprintf(".recompress-%s-in", id), *out_name = xasprintf(".recompress-%s-out", id);
        _cleanup_free_ char *in_path = NULL, *out_path = NULL;
        _cleanup_free_ char *what = xasprintf("version %s for the compressor", parent->id);
        _cleanup_close_ int in_fd = -EBADF, out_fd = -EBADF;
        uint64_t done = 0;
        int r;

        if (!in_name || !out_name || !what)
                return -ENOMEM;
        /* The compressor reads plaintext: it lives in the model's plain/ directory, on tmpfs, and is
         * removed afterwards. Where that plaintext is sealed at rest (the parent, or the result
         * to be), it must not reach a disk; and it must fit in any case (its output comes on top:
         * a compressor that runs out of room fails with its own error). */
        (void) rm_rf_at(o->store->plain_fd, in_name);
        (void) rm_rf_at(o->store->plain_fd, out_name);
        r = store_plain_check(o->store, parent->total_size, parent->sealed || o->seal, what, reason,
                              reason_size);
        if (r < 0)
                return r;
        if (mkdirat(o->store->plain_fd, in_name, 0700) < 0 ||
            mkdirat(o->store->plain_fd, out_name, 0700) < 0) {
                r = -errno;
                goto out;
        }
        in_fd = openat(o->store->plain_fd, in_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        out_fd = openat(o->store->plain_fd, out_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        in_path = xasprintf("%s/plain/%s/%s", o->store->runtime, o->store->model, in_name);
        out_path = xasprintf("%s/plain/%s/%s", o->store->runtime, o->store->model, out_name);
        if (in_fd < 0 || out_fd < 0 || !in_path || !out_path) {
                r = -errno ?: -ENOMEM;
                goto out;
        }
        progress->phase = "input";
        for (size_t i = 0; i < parent->n_files; i++) {
                const char *n = parent->files[i].name;
                StreamReader rd;
                _cleanup_close_ int fd = openat(in_fd, n, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

                if (fd < 0) {
                        r = -errno;
                        goto out;
                }
                r = unsealer_open(u, n, &rd);
                if (r >= 0) {
                        _cleanup_free_ uint8_t *buf = malloc(1024 * 1024);
                        ssize_t k = 0;
                        while (buf && (k = stream_read(&rd, buf, 1024 * 1024)) > 0) {
                                if ((r = loop_write(fd, buf, (size_t) k)) < 0)
                                        break;
                                done += (uint64_t) k;
                                progress_report(progress, MIN(done, parent->total_size), parent->total_size);
                                if (agent_terminate) {
                                        r = -ECANCELED;
                                        break;
                                }
                        }
                        if (!buf)
                                r = -ENOMEM;
                        else if (k < 0)
                                r = (int) k;
                        unsealer_close(u, n, &rd);
                }
                if (r < 0) {
                        snprintf(reason, reason_size, "cannot prepare the compressor's input '%s': %s", n, strerror(-r));
                        goto out;
                }
        }
        agent_progress(a, "compress", 0, 0);
        r = run_compressor(a, p, in_path, out_path, out_fd, reason, reason_size);
        if (r < 0)
                goto out;
        r = install_exec_output(o, out_fd, progress, reason, reason_size);
out:
        (void) rm_rf_at(o->store->plain_fd, in_name);
        (void) rm_rf_at(o->store->plain_fd, out_name);
        return r;
}

/* --- the verb ----------------------------------------------------------------------------- */

int verb_recompress(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(version_meta_freep) VersionMeta *parent = NULL, *meta = NULL;
        _cleanup_(unsealer_freep) Unsealer *u = NULL;
        _cleanup_free_ char *id = NULL, *staging = NULL, *error = NULL, *tool = NULL;
        _cleanup_close_ int sdfd = -EBADF, files_fd = -EBADF;
        const InstallSealHook *seal = NULL;
        const RecompressProfile *p;
        const char *profile, *from = NULL;
        json_t *stats = json_object(), *files_stats = json_object();
        char reason[1024] = "";
        Progress progress = {.agent = a, .phase = "compress"};
        Output o = {};
        int r;

        if (!stats || !files_stats) {
                json_decref(stats);
                json_decref(files_stats);
                return -ENOMEM;
        }
        /* Arguments: PROFILE --from RELEASE */
        profile = NULL;
        for (char **arg = a->args; arg && *arg; arg++) {
                if (streq(*arg, "--from") && arg[1])
                        from = *++arg;
                else if (!startswith(*arg, "-") && !profile)
                        profile = *arg;
        }
        if (!profile || !from) {
                json_decref(stats);
                json_decref(files_stats);
                return agent_result_error(a, -EINVAL, "usage: recompress PROFILE --from RELEASE");
        }
        p = model_config_find_profile(a->model, profile);
        if (!p) {
                json_decref(stats);
                json_decref(files_stats);
                return agent_result_error(a, -ENOENT, "no recompress profile '%s' in %s", profile, a->model->path);
        }
        if (!version_id_is_valid(from) || version_id_is_derived(from)) {
                json_decref(stats);
                json_decref(files_stats);
                return agent_result_error(a, -EINVAL,
                                          "a derived version is made from its release parent, not from '%s'", from);
        }
        id = xasprintf("%s~%s", from, profile);
        if (!id || !version_id_is_valid(id)) {
                json_decref(stats);
                json_decref(files_stats);
                return agent_result_error(a, -EINVAL, "invalid derived version id");
        }

        r = agent_open_store(a, &s);
        if (r < 0)
                goto fail_json;
        if (faccessat(s->versions_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                json_decref(files_stats);
                json_object_set_new(stats, "id", json_string(id));
                json_object_set_new(stats, "exists", json_true());
                return agent_result_ok(a, stats);
        }
        r = version_meta_load(s->dirfd, from, &parent);
        if (r < 0) {
                r = agent_result_error(a, r, "parent version %s is not in the store", from);
                goto fail_json;
        }
        r = unsealer_new(a, s, parent, &u);
        if (r < 0)
                goto fail_json; /* reported */

        /* Room for the result: at most the parent's size (every method shrinks or keeps it). */
        r = store_check_space(s, parent->total_size + parent->total_size / 64, a->model->storage.min_free, reason,
                              sizeof(reason));
        if (r < 0) {
                r = agent_result_error(a, r, "%s", reason);
                goto fail_json;
        }
        if (a->model->storage.encrypt) {
                r = agent_seal_hook(a, &seal);
                if (r < 0)
                        goto fail_json;
        }

        staging = xasprintf("recompress-%s", id);
        r = staging ? store_staging_open(s, staging, true, &sdfd, &files_fd) : -ENOMEM;
        if (r < 0) {
                r = agent_result_error(a, r, "cannot prepare staging: %m");
                goto fail_json;
        }
        meta = calloc(1, sizeof(VersionMeta));
        if (!meta) {
                r = -ENOMEM;
                goto fail_json;
        }
        meta->model = strdup(a->model_name);
        meta->id = strdup(id);
        meta->origin = strdup("derived");
        meta->parent = strdup(from);
        meta->profile = strdup(profile);
        meta->channel = parent->channel ? strdup(parent->channel) : NULL;
        meta->label = parent->label ? strdup(parent->label) : NULL;
        meta->sealed = seal != NULL;
        o = (Output){.agent = a, .store = s, .files_fd = files_fd, .seal = seal, .meta = meta};

        progress.parent = parent;
        if (p->method == METHOD_EXEC) {
                progress.total = parent->total_size;
                r = recompress_exec(a, &o, u, parent, p, id, &progress, reason, sizeof(reason));
                if (r < 0) {
                        r = agent_result_error(a, r, "%s", reason[0] ? reason : strerror(-r));
                        goto fail_json;
                }
        } else {
                Input input = {.unsealer = u, .progress = &progress};
                RecompressInput in = {
                        .open = input_open,
                        .close = input_close,
                        .progress = input_progress,
                        .userdata = &input,
                };
                RecompressOutput out = {.open = output_open, .close = output_close, .userdata = &o};
                const char *index = NULL;
                bool any = false;

                /* Progress in bytes of the weights read: every .safetensors file (the shards of
                 * an index among them). */
                for (size_t i = 0; i < parent->n_files; i++) {
                        if (endswith(parent->files[i].name, ".safetensors.index.json"))
                                index = parent->files[i].name;
                        if (endswith(parent->files[i].name, ".safetensors"))
                                progress.total += parent->files[i].size;
                }
                for (size_t i = 0; i < parent->n_files; i++) {
                        const char *n = parent->files[i].name;
                        json_t *st = NULL;

                        if (index ? !streq(n, index) : !endswith(n, ".safetensors"))
                                continue;
                        r = recompress_model(p, &in, &out, n, &st, &error);
                        if (r < 0) {
                                r = agent_result_error(a, r, "%s: %s", n, strna(error));
                                goto fail_json;
                        }
                        json_object_set_new(files_stats, n, st);
                        any = true;
                }
                if (!any) {
                        r = agent_result_error(a, -ENODATA, "version %s has no .safetensors files to re-compress", from);
                        goto fail_json;
                }
                /* Everything else comes along unchanged — config.json updated to describe the
                 * new weights (quantization_config, dtype). */
                for (size_t i = 0; i < parent->n_files; i++) {
                        const char *n = parent->files[i].name;
                        StreamReader rd;

                        if (strv_contains(o.written, n))
                                continue;
                        if (streq(n, "config.json")) {
                                _cleanup_free_ char *text = NULL, *updated = NULL;
                                size_t size = 0, usize = 0;
                                json_t *first = NULL;
                                const char *k;

                                json_object_foreach(files_stats, k, first)
                                        break;
                                r = read_small(u, n, 16 * MIB, &text, &size);
                                if (r >= 0)
                                        r = recompress_update_config(text, size, p->method, first, &updated, &usize);
                                if (r >= 0)
                                        r = output_buffer(&o, n, updated, usize);
                                if (r < 0) {
                                        r = agent_result_error(a, r, "cannot update config.json: %m");
                                        goto fail_json;
                                }
                                continue;
                        }
                        if (is_weights(n))
                                continue; /* shards of the index are written by the compression */
                        r = unsealer_open(u, n, &rd);
                        if (r >= 0) {
                                r = output_copy_from(&o, n, &rd);
                                unsealer_close(u, n, &rd);
                        }
                        if (r < 0) {
                                r = agent_result_error(a, r, "cannot copy '%s': %m", n);
                                goto fail_json;
                        }
                }
        }

        meta->installed = now_realtime_usec();
        /* The tool that made the weights: ours for the built-in methods, with the statistics it
         * measured; for exec the external compressor (argv[0]; the whole command is recorded
         * too), which reports no statistics we could vouch for — so none are recorded. */
        tool = strdup(p->method == METHOD_EXEC ? p->command[0] : "modelkeeper-agent " PACKAGE_VERSION);
        meta->extra = tool ? json_pack("{s:s, s:s, s:s}", "tool", tool, "method",
                                       recompress_method_to_string(p->method), "parent", from)
                           : NULL;
        if (!meta->extra) {
                r = -ENOMEM;
                goto fail_json;
        }
        if (p->method != METHOD_EXEC)
                json_object_set_new(meta->extra, "statistics", TAKE_PTR(files_stats));
        if (p->skip) {
                json_t *skip = json_array();
                STRV_FOREACH(g, p->skip)
                        json_array_append_new(skip, json_string(*g));
                json_object_set_new(meta->extra, "skip", skip);
        }
        if (p->method == METHOD_PRUNE)
                json_object_set_new(meta->extra, "sparsity", json_real(p->sparsity));
        if (p->method == METHOD_EXEC) {
                json_t *cmd = json_array();
                STRV_FOREACH(c, p->command)
                        json_array_append_new(cmd, json_string(*c));
                json_object_set_new(meta->extra, "command", cmd);
        }
        r = store_commit(s, staging, meta, NULL, 0);
        if (r < 0) {
                r = agent_result_error(a, r, "cannot commit version %s: %m", id);
                goto fail_json;
        }
        json_object_set_new(stats, "id", json_string(id));
        json_object_set_new(stats, "parent", json_string(from));
        json_object_set_new(stats, "total_size", json_integer((json_int_t) meta->total_size));
        json_object_set_new(stats, "parent_size", json_integer((json_int_t) parent->total_size));
        json_object_set_new(stats, "method", json_string(recompress_method_to_string(p->method)));
        json_object_set_new(stats, "tool", json_string(tool));
        if (json_object_get(meta->extra, "statistics"))
                json_object_set(stats, "statistics", json_object_get(meta->extra, "statistics"));
        strv_free(o.written);
        free(progress.current);
        json_decref(files_stats); /* exec: none */
        return agent_result_ok(a, stats);

fail_json:
        if (o.open)
                install_file_done(&o.current);
        strv_free(o.written);
        free(progress.current);
        if (staging && s)
                (void) store_staging_remove(s, staging);
        json_decref(stats);
        json_decref(files_stats);
        return r;
}
