/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperd: parse arguments, block signals, build the Manager, run the loop. */

#include <getopt.h>
#include <signal.h>

#include "config.h"
#include "log.h"
#include "manager.h"
#include "rules.h"
#include "stats.h"

static char *arg_config = NULL;
static char *arg_state_directory = NULL;
static char *arg_runtime_directory = NULL;
static bool arg_check_config = false;

static void help(void) {
        printf("%s [OPTIONS…]\n\n"
               "Keep machine-learning models deployed on this host healthy, current and safe.\n\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "  -c --config=PATH             Configuration file (default: %s)\n"
               "     --check-config            Validate the configuration and every model file, then exit\n"
               "     --state-directory=PATH    Override daemon.state_directory ($STATE_DIRECTORY wins)\n"
               "     --runtime-directory=PATH  Override daemon.runtime_directory ($RUNTIME_DIRECTORY wins)\n"
               "     --log-level=LEVEL         debug, info, notice, warning, err\n"
               "     --log-target=TARGET       auto, journal, console\n"
               "\nSee modelkeeperd(8) and modelkeeper.yaml(5).\n",
               program_invocation_short_name, DEFAULT_CONFIG_FILE);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CHECK_CONFIG,
                ARG_STATE_DIRECTORY,
                ARG_RUNTIME_DIRECTORY,
                ARG_LOG_LEVEL,
                ARG_LOG_TARGET,
        };
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"config", required_argument, NULL, 'c'},
                {"check-config", no_argument, NULL, ARG_CHECK_CONFIG},
                {"state-directory", required_argument, NULL, ARG_STATE_DIRECTORY},
                {"runtime-directory", required_argument, NULL, ARG_RUNTIME_DIRECTORY},
                {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
                {"log-target", required_argument, NULL, ARG_LOG_TARGET},
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "hc:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("modelkeeperd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'c':
                        free(arg_config);
                        arg_config = strdup(optarg);
                        break;
                case ARG_CHECK_CONFIG:
                        arg_check_config = true;
                        break;
                case ARG_STATE_DIRECTORY:
                        free(arg_state_directory);
                        arg_state_directory = strdup(optarg);
                        break;
                case ARG_RUNTIME_DIRECTORY:
                        free(arg_runtime_directory);
                        arg_runtime_directory = strdup(optarg);
                        break;
                case ARG_LOG_LEVEL:
                        r = log_level_from_string(optarg);
                        if (r < 0)
                                return log_error_errno(r, "Unknown log level '%s'.", optarg);
                        log_set_max_level(r);
                        break;
                case ARG_LOG_TARGET:
                        r = log_target_from_string(optarg);
                        if (r < 0)
                                return log_error_errno(r, "Unknown log target '%s'.", optarg);
                        log_set_target((LogTarget) r);
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s'.", argv[optind]);
        return 1;
}

static int check_config(void) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **refused = NULL;
        ConfigErrors errors = {};
        int r;

        r = config_load(arg_config, &c, &errors, &refused);
        for (size_t i = 0; i < errors.n; i++)
                fprintf(stderr, "%s\n", errors.lines[i]);
        config_errors_done(&errors);
        if (r < 0 || refused) {
                fprintf(stderr, "%s: configuration has errors.\n", arg_config);
                return -EINVAL;
        }
        if (config_check_references(c, &errors) > 0) {
                for (size_t i = 0; i < errors.n; i++)
                        fprintf(stderr, "%s\n", errors.lines[i]);
                fprintf(stderr, "%s: the configuration refers to files that are missing or invalid.\n", arg_config);
                config_errors_done(&errors);
                return -ENOENT;
        }
        printf("%s: OK, %zu model%s.\n", arg_config, c->n_models, c->n_models == 1 ? "" : "s");
        for (size_t i = 0; i < c->n_models; i++)
                printf("  %s (%s)\n", c->models[i]->name, c->models[i]->path);
        return 0;
}

static int run(int argc, char *argv[]) {
        _cleanup_(manager_freep) Manager *m = NULL;
        sigset_t ss;
        int r;

        log_setup();
        /* A model file with a bad expression is refused with file:line:col, at start and reload. */
        policies_install_config_validator();
        stats_install();
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r;
        if (!arg_config && !(arg_config = strdup(DEFAULT_CONFIG_FILE)))
                return log_oom();

        if (arg_check_config)
                return check_config();

        /* Signals are handled as event sources; SIGCHLD for sd_event_add_child. */
        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals: %m");
        /* A control client that goes away mid-reply must not kill us. */
        (void) signal(SIGPIPE, SIG_IGN);

        r = manager_new(&m);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the manager: %m");
        m->config_path = TAKE_PTR(arg_config);
        m->arg_state_directory = TAKE_PTR(arg_state_directory);
        m->arg_runtime_directory = TAKE_PTR(arg_runtime_directory);

        r = manager_load(m);
        if (r < 0)
                return log_error_errno(r, "Cannot start without a valid %s.", m->config_path);
        r = manager_startup(m);
        if (r < 0)
                return r;
        r = manager_run(m);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        log_info("modelkeeperd stopped.");
        return 0;
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);

        free(arg_config);
        free(arg_state_directory);
        free(arg_runtime_directory);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
