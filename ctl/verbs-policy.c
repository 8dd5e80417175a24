/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperctl policy check|test: offline, no daemon needed (DESIGN.md §6). */

#include <getopt.h>
#include <inttypes.h>

#include "config.h"
#include "ctl.h"
#include "log.h"
#include "parse-util.h"
#include "promseries.h"
#include "rules.h"
#include "strv.h"

static void print_errors(const ConfigErrors *e) {
        for (size_t i = 0; i < e->n; i++)
                fprintf(stderr, "%s\n", e->lines[i]);
}

/* Load a model file the way the daemon does (the expression validator is installed in main()). */
static int load_model(const char *path, const Config *main_config, ModelConfig **ret) {
        _cleanup_free_ char *text = NULL;
        ConfigErrors errors = {};
        size_t size = 0;
        int r;

        r = config_read_file(path, &text, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, r == -EFBIG ? "file too large" : strerror(-r));
                return r;
        }
        r = model_config_load(path, text, size, main_config, ret, &errors);
        print_errors(&errors);
        config_errors_done(&errors);
        return r;
}

static int check_one(const char *path, const Config *main_config) {
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        _cleanup_(policy_freep) Policy *p = NULL;
        _cleanup_(series_store_freep) SeriesStore *store = NULL;
        PolicyError perr = {};
        SeriesStoreStats st = {};
        char msg[256] = "";
        size_t n_selectors = 0;
        int r;

        r = load_model(path, main_config, &m);
        if (r < 0)
                return r;
        /* The validator compiled each expression alone; build the whole policy as the daemon will. */
        r = policy_new(m, &p, &perr);
        if (r < 0) {
                fprintf(stderr, "%s: %s: %s\n", path, perr.what, perr.message);
                return r;
        }
        r = policy_new_store(p, &store, msg, sizeof(msg));
        if (r < 0) {
                fprintf(stderr, "%s: metrics: %s\n", path, msg[0] ? msg : strerror(-r));
                return r;
        }
        series_store_stats(store, &st);
        (void) expr_env_selectors(policy_env(p), &n_selectors);
        printf("%s: OK: model %s, %zu scrape target%s, %zu rule%s, %s, %zu series selector%s, "
               "%zu sample%s per series.\n",
               path, m->name, m->metrics.n_targets, m->metrics.n_targets == 1 ? "" : "s", m->n_rules,
               m->n_rules == 1 ? "" : "s", m->rollout ? "rollout analysis" : "no rollout analysis",
               n_selectors, n_selectors == 1 ? "" : "s", st.capacity, st.capacity == 1 ? "" : "s");
        return 0;
}

static int policy_check(int argc, char *argv[]) {
        enum { ARG_CONFIG = 0x100 };
        static const struct option options[] = {
                {"config", required_argument, NULL, ARG_CONFIG},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(config_freep) Config *main_config = NULL;
        const char *config_path = NULL;
        int c, r, failed = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_CONFIG:
                        config_path = optarg;
                        break;
                case 'h':
                        printf("policy check [--config MODELKEEPER.YAML] MODEL.YAML…\n\n"
                               "Validate model files as modelkeeperd would load them: the schema, every "
                               "expression,\n"
                               "the policy as a whole. Errors are FILE:LINE:COLUMN: MESSAGE. With --config, "
                               "also\n"
                               "what a model file needs from the main file (trust keys, an encryption "
                               "recipient).\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind >= argc)
                return log_error_errno(-EINVAL, "Usage: policy check [--config PATH] FILE…");
        if (config_path) {
                _cleanup_free_ char *text = NULL;
                ConfigErrors errors = {};
                size_t size = 0;

                r = config_read_file(config_path, &text, &size);
                if (r < 0)
                        return log_error_errno(r, "Cannot read %s: %m", config_path);
                r = config_load_main(config_path, text, size, &main_config, &errors);
                print_errors(&errors);
                config_errors_done(&errors);
                if (r < 0)
                        return r;
        }
        for (int i = optind; i < argc; i++)
                if (check_one(argv[i], main_config) < 0)
                        failed++;
        if (failed > 0) {
                if (argc - optind > 1)
                        fprintf(stderr, "%d of %d files refused.\n", failed, argc - optind);
                return -EINVAL;
        }
        return 0;
}

static int policy_test(int argc, char *argv[]) {
        enum { ARG_SERIES = 0x100 };
        static const struct option options[] = {
                {"series", required_argument, NULL, ARG_SERIES},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        _cleanup_(strv_freep) char **lines = NULL;
        _cleanup_free_ char *text = NULL;
        const char *series = NULL;
        ConfigErrors errors = {};
        size_t size = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SERIES:
                        series = optarg;
                        break;
                case 'h':
                        printf("policy test MODEL.YAML --series SERIES.YAML\n\n"
                               "Run the model's rules and rollout analysis over written series (promtool "
                               "notation)\n"
                               "with a simulated clock, and print the timeline of decisions.\n");
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind != argc - 1 || !series)
                return log_error_errno(-EINVAL, "Usage: policy test MODEL.YAML --series SERIES.YAML");

        r = load_model(argv[optind], NULL, &m);
        if (r < 0)
                return r;
        r = config_read_file(series, &text, &size);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", series, r == -EFBIG ? "file too large" : strerror(-r));
                return r;
        }
        r = policy_test_run(m, series, text, size, &lines, &errors);
        print_errors(&errors);
        config_errors_done(&errors);
        if (r < 0) {
                if (errors.n == 0)
                        log_error_errno(r, "%s: %m", series);
                return r;
        }
        STRV_FOREACH (l, lines)
                printf("%s\n", *l);
        return 0;
}

int verb_policy(int argc, char *argv[]) {
        /* argv[0] is "policy", argv[1] the sub-verb; each parses its own options. */
        if (streq(argv[1], "check"))
                return policy_check(argc - 1, argv + 1);
        if (streq(argv[1], "test"))
                return policy_test(argc - 1, argv + 1);
        return log_error_errno(-EINVAL, "Unknown verb 'policy %s' (check, test).", argv[1]);
}
