/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperctl: the verb table, options and dispatch; the verbs live in libctl (ctl.c,
 * verbs-*.c) so that tests can link them. */

#include <getopt.h>

#include "ctl.h"
#include "log.h"
#include "rules.h"

static const CtlVerb verbs[] = {
        {"status", 0, 1, verb_status, "status [MODEL]", "Show the models and what is happening to them"},
        {"versions", 1, 1, verb_versions, "versions MODEL", "List the versions in a model's store"},
        {"update", 1, 1, verb_update, "update MODEL", "Check the model's channel now; install and activate a new release"},
        {"rollback", 1, 2, verb_rollback, "rollback MODEL [VERSION]",
         "Serve the last good (or previous, or given) version again"},
        {"recompress", 2, 2, verb_recompress, "recompress MODEL PROFILE",
         "Build a smaller derived version with a profile of the model file and activate it"},
        {"scrub", 1, 1, verb_scrub, "scrub MODEL", "Re-verify every stored version now (tags and digests)"},
        {"hold", 1, 1, verb_hold, "hold MODEL", "Stop automatic actions for a model"},
        {"release", 1, 64, verb_release_dispatch, "release MODEL [VERSION]",
         "Lift a hold, or take VERSION out of quarantine"},
        {"import", 2, 5, verb_import, "import MODEL DIR [--version ID] [--activate]",
         "Add a version from a local directory"},
        {"reload", 0, 0, verb_reload, "reload", "Re-read the configuration (like systemctl reload)"},
        /* Two lines of help, one verb: the lookup takes either entry. */
        {"policy", 1, 1024, verb_policy, "policy check [--config PATH] FILE...", "Validate model files offline"},
        {"policy", 1, 1024, verb_policy, "policy test FILE --series SERIES",
         "Run a model's policy over written series and print the decisions"},
        {"units", 0, 2, verb_units, "units [--config PATH]",
         "List the systemd units that model files may restart (offline; used by polkit)"},
        {"keygen", 2, 8, verb_keygen, "keygen --type ed25519|p256|age --out FILE",
         "Create a signing key pair, or an age identity"},
        {"release-create", 0, 0, NULL, "release create --model M --channel C --version N DIR --repo REPO",
         "Publish files as an unsigned release (offline)"},
        {"release-sign", 0, 0, NULL, "release sign --key KEY RELEASE", "Add a signature to a release (offline)"},
        {"release-verify", 0, 0, NULL, "release verify --trust KEY.pub… RELEASE", "Check a release (offline)"},
        {},
};

static void help(void) {
        printf("%s [OPTIONS…] VERB [ARGS…]\n\n"
               "Talk to modelkeeperd, and publish or check releases and policies offline.\n\n"
               "Options:\n"
               "  -h --help           Show this help\n"
               "     --version        Show the version\n"
               "     --json           Machine-readable output\n"
               "     --socket=PATH    Control socket (default: " DEFAULT_RUNTIME_DIRECTORY "/control)\n"
               "\nVerbs:\n",
               program_invocation_short_name);
        for (const CtlVerb *v = verbs; v->name; v++)
                printf("  %-36s %s\n", v->usage, v->help);
        printf("\nSee modelkeeperctl(1).\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_JSON, ARG_SOCKET };
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, ARG_VERSION},
                {"json", no_argument, NULL, ARG_JSON},
                {"socket", required_argument, NULL, ARG_SOCKET},
                {},
        };
        const CtlVerb *verb = NULL;
        int c, r;

        log_setup();
        log_set_target(LOG_TARGET_CONSOLE);
        /* Model files are judged as modelkeeperd judges them, expressions included. */
        policies_install_config_validator();
        /* "+": options after the verb belong to the verb. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("modelkeeperctl %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case ARG_SOCKET:
                        arg_socket = optarg;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (optind >= argc) {
                help();
                return EXIT_FAILURE;
        }
        for (const CtlVerb *v = verbs; v->name; v++)
                if (v->run && streq(v->name, argv[optind]))
                        verb = v;
        if (!verb) {
                log_error("Unknown verb '%s' (see --help).", argv[optind]);
                return EXIT_FAILURE;
        }
        argc -= optind;
        argv += optind;
        if ((unsigned) (argc - 1) < verb->min_args || (unsigned) (argc - 1) > verb->max_args) {
                log_error("Usage: %s %s", program_invocation_short_name, verb->usage);
                return EXIT_FAILURE;
        }
        /* Reset getopt for verbs that parse their own options. */
        optind = 0;
        r = verb->run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
