/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "agent.h"
#include "fault.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"
#include "rules.h"
#include "sandbox.h"
#include "strv.h"
#include "wire.h"

volatile sig_atomic_t agent_terminate = 0;

static const AgentVerb verbs[] = {
        {"import", verb_import, true, false, "DIR [--id ID]: add a version from a local directory"},
        {"activate", verb_activate, true, false, "ID [--from ID] [--no-verify]: verify and serve a version"},
        {"rollback", verb_rollback, true, false, "ID [--from ID]: serve a version again, instantly"},
        {"gc", verb_gc, true, false, "[--keep N] [--protect ID]…: remove old versions"},
        {"verify", verb_verify, true, false, "ID: re-hash a version against its digests"},
        {"reconcile", verb_reconcile, true, false, "repair what a crash interrupted"},
        {"list", verb_list, true, false, "show the versions in the store"},
        {"scrub", verb_scrub, true, false, "[ID…]: re-verify versions at rest (authentication tags, digests)"},
        {"recompress", verb_recompress, true, false, "PROFILE --from RELEASE: build a smaller derived version"},
        {"update", verb_update, true, true, "[--high-water N] [--content-id HEX] [--check-only]: install a new release"},
#if ENABLE_FAULT_INJECTION
        {"test", verb_test, false, false, "exercise the job runner (test builds only)"},
#endif
        {},
};

void agent_progress(Agent *a, const char *phase, uint64_t done, uint64_t total) {
        if (a->wire_fd >= 0)
                (void) wire_send_progress(a->wire_fd, phase, done, total);
        else
                fprintf(stderr, "%s: %" PRIu64 "/%" PRIu64 "\n", phase, done, total);
}

static int agent_result(Agent *a, int error, json_t *data, const char *reason) {
        if (a->result_sent) {
                json_decref(data);
                return error;
        }
        a->result_sent = true;
        if (a->wire_fd >= 0) {
                int r = wire_send_result(a->wire_fd, error, reason, data);
                if (r < 0)
                        log_error_errno(r, "Failed to report the result to the daemon: %m");
        } else {
                if (error < 0) {
                        fprintf(stderr, "%s: failed: %s\n", a->verb, reason ?: strerror(-error));
                        json_decref(data);
                        data = NULL;
                } else {
                        _cleanup_free_ char *s = data ? json_dumps(data, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
                        printf("%s\n", s ?: "{}");
                }
                json_decref(data);
        }
        return error;
}

int agent_result_ok(Agent *a, json_t *data) {
        return agent_result(a, 0, data, NULL);
}

_printf_(4, 0) static int agent_result_errorv(Agent *a, int error, json_t *data, const char *fmt, va_list ap) {
        char reason[WIRE_REASON_MAX + 1];

        if (error >= 0)
                error = -EIO;
        errno = -error;
        vsnprintf(reason, sizeof(reason), fmt, ap);
        /* Reasons go to the journal of the daemon verbatim; say it here too when run under it. */
        log_debug("%s: %s", a->verb, reason);
        return agent_result(a, error, data, reason);
}

char **agent_getopt_argv(const Agent *a, int *ret_argc) {
        int argc = (int) strv_length(a->args) + 1;
        char **argv = calloc((size_t) argc + 1, sizeof(char *));

        if (!argv)
                return NULL;
        argv[0] = (char *) a->verb;
        for (int i = 1; i < argc; i++)
                argv[i] = a->args[i - 1];
        optind = 0;
        opterr = 0;
        *ret_argc = argc;
        return argv;
}

int agent_result_error(Agent *a, int error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = agent_result_errorv(a, error, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int agent_result_error_data(Agent *a, int error, json_t *data, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = agent_result_errorv(a, error, data, fmt, ap);
        va_end(ap);
        return r;
}

static void help(void) {
        printf("%s VERB [OPTIONS…] [-- ARGS…]\n\n"
               "The worker process of modelkeeperd: runs one job and exits. Normally started by\n"
               "modelkeeperd; can be run by hand for debugging.\n\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "  -c --config=PATH             Configuration file (default: %s)\n"
               "     --model=NAME              The model the job is for\n"
               "     --state-directory=PATH    Override daemon.state_directory\n"
               "     --runtime-directory=PATH  Override daemon.runtime_directory\n"
               "\nVerbs:\n",
               program_invocation_short_name, DEFAULT_CONFIG_FILE);
        for (const AgentVerb *v = verbs; v->name; v++)
                printf("  %-12s %s\n", v->name, v->help);
        printf("\nSee modelkeeper-agent(8).\n");
}

static void on_sigterm(int sig) {
        agent_terminate = 1;
}

static int parse_fd(const char *s, int *ret) {
        unsigned v;
        if (parse_unsigned(s, &v) < 0 || v < 3 || v > 64)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

static int parse_argv(Agent *a, int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JOB,
                ARG_MODEL,
                ARG_MODEL_FILE,
                ARG_MODEL_FD,
                ARG_CONFIG_FD,
                ARG_STATE,
                ARG_RUNTIME,
        };
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"config", required_argument, NULL, 'c'},
                {"config-fd", required_argument, NULL, ARG_CONFIG_FD},
                {"model", required_argument, NULL, ARG_MODEL},
                {"model-file", required_argument, NULL, ARG_MODEL_FILE},
                {"model-fd", required_argument, NULL, ARG_MODEL_FD},
                {"job", required_argument, NULL, ARG_JOB},
                {"state-directory", required_argument, NULL, ARG_STATE},
                {"runtime-directory", required_argument, NULL, ARG_RUNTIME},
                {},
        };
        int c;

        /* "+": stop at the first non-option, which is the verb's own argument list. */
        while ((c = getopt_long(argc, argv, "+hc:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("modelkeeper-agent %s\n", PACKAGE_VERSION);
                        return 0;
                case 'c':
                        free(a->config_path);
                        a->config_path = strdup(optarg);
                        break;
                case ARG_CONFIG_FD:
                        if (parse_fd(optarg, &a->config_fd) < 0)
                                return log_error_errno(-EINVAL, "Bad --config-fd '%s'.", optarg);
                        break;
                case ARG_MODEL:
                        if (!name_is_valid(optarg, MODEL_NAME_MAX))
                                return log_error_errno(-EINVAL, "Invalid model name '%s'.", optarg);
                        free(a->model_name);
                        a->model_name = strdup(optarg);
                        break;
                case ARG_MODEL_FILE:
                        free(a->model_file);
                        a->model_file = strdup(optarg);
                        break;
                case ARG_MODEL_FD:
                        if (parse_fd(optarg, &a->model_fd) < 0)
                                return log_error_errno(-EINVAL, "Bad --model-fd '%s'.", optarg);
                        break;
                case ARG_JOB:
                        if (parse_uint64(optarg, &a->job) < 0)
                                return log_error_errno(-EINVAL, "Bad --job '%s'.", optarg);
                        break;
                case ARG_STATE:
                        free(a->state_directory);
                        a->state_directory = strdup(optarg);
                        break;
                case ARG_RUNTIME:
                        free(a->runtime_directory);
                        a->runtime_directory = strdup(optarg);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc && streq(argv[optind], "--"))
                optind++;
        for (int i = optind; i < argc; i++)
                if (strv_extend(&a->args, argv[i]) < 0)
                        return log_oom();
        if (!a->args && !(a->args = calloc(1, sizeof(char *))))
                return log_oom();
        return 1;
}

static int load_text(const char *path, int fd, char **ret, size_t *ret_size) {
        if (fd >= 0) {
                int r = read_full_fd(fd, CONFIG_FILE_MAX, ret, ret_size);
                safe_close(fd);
                return r;
        }
        return config_read_file(path, ret, ret_size);
}

/* The configuration exactly as the daemon has it (fds 4/5), or the files when run by hand. */
static int agent_load_config(Agent *a, bool needs_model) {
        _cleanup_free_ char *text = NULL, *mtext = NULL, *mpath = NULL;
        ConfigErrors errors = {};
        size_t n, mn;
        int r;

        if (!a->config_path && !(a->config_path = strdup(DEFAULT_CONFIG_FILE)))
                return log_oom();
        r = load_text(a->config_path, a->config_fd, &text, &n);
        a->config_fd = -EBADF;
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", a->config_path);
        r = config_load_main(a->config_path, text, n, &a->config, &errors);
        for (size_t i = 0; i < errors.n; i++)
                log_error("%s", errors.lines[i]);
        config_errors_done(&errors);
        if (r < 0)
                return r;
        r = config_override_directories(a->config, a->state_directory, a->runtime_directory);
        if (r < 0)
                return log_oom();

        if (!needs_model)
                return 0;
        if (!a->model_name)
                return log_error_errno(-EINVAL, "Verb '%s' needs --model.", a->verb);
        if (a->model_file)
                mpath = strdup(a->model_file);
        else {
                _cleanup_free_ char *base = NULL;
                if (asprintf(&base, "%s.yaml", a->model_name) < 0)
                        return log_oom();
                mpath = path_join(a->config->daemon.models_directory, base);
        }
        if (!mpath)
                return log_oom();
        r = load_text(mpath, a->model_fd, &mtext, &mn);
        a->model_fd = -EBADF;
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", mpath);
        r = model_config_load(mpath, mtext, mn, a->config, &a->model, &errors);
        for (size_t i = 0; i < errors.n; i++)
                log_error("%s", errors.lines[i]);
        config_errors_done(&errors);
        if (r < 0)
                return r;
        if (!streq(a->model->name, a->model_name))
                return log_error_errno(-EINVAL, "%s defines model '%s', not '%s'.", mpath, a->model->name,
                                       a->model_name);
        return 0;
}

static bool fd_is_wire(int fd) {
        int type = 0;
        socklen_t len = sizeof(type);
        return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) >= 0 && type == SOCK_SEQPACKET;
}

static void agent_done(Agent *a) {
        free(a->state_directory);
        free(a->runtime_directory);
        free(a->config_path);
        free(a->model_file);
        free(a->model_name);
        strv_free(a->args);
        config_free(a->config);
        model_config_free(a->model);
        safe_close(a->config_fd);
        safe_close(a->model_fd);
}

static int run(Agent *a, int argc, char *argv[]) {
        const AgentVerb *verb = NULL;
        SandboxSpec spec = {.keep_fd_max = 3};
        struct sigaction sa = {.sa_handler = on_sigterm};
        int r;

        log_setup();
        /* The same model files as the daemon, judged the same way (expressions included). */
        policies_install_config_validator();
        if (argc < 2 || argv[1][0] == '-') {
                if (argc >= 2 && (streq(argv[1], "--help") || streq(argv[1], "-h"))) {
                        help();
                        return 0;
                }
                if (argc >= 2 && streq(argv[1], "--version")) {
                        printf("modelkeeper-agent %s\n", PACKAGE_VERSION);
                        return 0;
                }
                return log_error_errno(-EINVAL, "Usage: %s VERB [OPTIONS…] (see --help)", program_invocation_short_name);
        }
        a->verb = argv[1];
        for (const AgentVerb *v = verbs; v->name; v++)
                if (streq(v->name, a->verb))
                        verb = v;
        if (!verb)
                return log_error_errno(-EINVAL, "Unknown verb '%s' (see --help).", a->verb);

        r = parse_argv(a, argc - 1, argv + 1);
        if (r <= 0)
                return r;
        fault_setup(a->verb);

        /* Under the daemon fd 3 is the wire; by hand it is whatever the shell left there. */
        if (a->job > 0) {
                if (!fd_is_wire(WIRE_FD))
                        return log_error_errno(-EBADF, "--job given but fd %d is not the daemon's socket.", WIRE_FD);
                a->wire_fd = WIRE_FD;
        }

        (void) sigaction(SIGTERM, &sa, NULL);
        (void) sigaction(SIGINT, &sa, NULL);

        r = agent_load_config(a, verb->needs_model);
        if (r < 0)
                return agent_result_error(a, r, "cannot load the configuration: %m");

        /* Writes only below this model's directories (created here, before we lose the right). */
        _cleanup_free_ char *model_state = NULL, *model_plain = NULL, *serve = NULL;
        const char *writable[4] = {};
        size_t n = 0;
        if (verb->needs_model) {
                model_state = path_join(a->config->daemon.state_directory, "models");
                model_plain = path_join(a->config->daemon.runtime_directory, "plain");
                serve = path_join(a->config->daemon.runtime_directory, "serve");
                if (!model_state || !model_plain || !serve)
                        return log_oom();
                char *ms = path_join(model_state, a->model_name), *mp = path_join(model_plain, a->model_name);
                if (!ms || !mp) {
                        free(ms);
                        free(mp);
                        return log_oom();
                }
                free(model_state);
                free(model_plain);
                model_state = ms;
                model_plain = mp;
                /* The runtime tree must stay traversable for the model server's user; only the
                 * model's own plaintext directory is closed. */
                if ((r = mkdir_p(a->config->daemon.runtime_directory, 0755)) < 0 ||
                    (r = mkdir_p(serve, 0755)) < 0 || (r = chmod(serve, 0755) < 0 ? -errno : 0) < 0 ||
                    (r = mkdir_p(model_plain, 0755)) < 0 || (r = chmod(model_plain, 0750) < 0 ? -errno : 0) < 0 ||
                    (r = mkdir_p(model_state, 0700)) < 0)
                        return agent_result_error(a, r, "cannot create the model's directories: %m");
                writable[n++] = model_state;
                writable[n++] = model_plain;
                writable[n++] = serve;
        }
        spec.writable = writable;
        spec.network = verb->network;
        spec.user = a->config->daemon.agent_user;
        spec.keep_fd_max = a->wire_fd >= 0 ? WIRE_FD : 2;
        r = sandbox_apply(&spec, NULL);
        if (r < 0)
                return agent_result_error(a, r, "cannot set up the sandbox: %m");

        r = verb->run(a);
        if (!a->result_sent)
                r = r < 0 ? agent_result_error(a, r, "%s failed: %m", a->verb) : agent_result_ok(a, NULL);
        return r;
}

int main(int argc, char *argv[]) {
        Agent a = {.config_fd = -EBADF, .model_fd = -EBADF, .wire_fd = -EBADF};
        int r = run(&a, argc, argv);

        agent_done(&a);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
