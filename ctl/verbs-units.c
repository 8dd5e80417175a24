/* SPDX-License-Identifier: Apache-2.0 */

/* modelkeeperctl units: the systemd units that model files name in serve.reload.systemd_unit, one
 * per line, read offline with the same loader as the daemon.
 *
 * The polkit rule shipped for the modelkeeper user (packaging/polkit/50-modelkeeper.rules) runs it
 * through polkit.spawn() to decide which units that user may restart or reload: a JavaScript rule
 * cannot read files. polkitd runs it at every authorization check of that user, as its own user, so
 * it is quiet (one line on stderr at most, in polkitd's journal), reads nothing but the
 * configuration, and lists only the units of model files that load: a file the daemon would refuse
 * grants nothing. */

#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>

#include "config.h"
#include "ctl.h"
#include "log.h"

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int verb_units(int argc, char *argv[]) {
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {},
        };
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **refused = NULL, **units = NULL;
        const char *config = DEFAULT_CONFIG_FILE;
        ConfigErrors errors = {};
        size_t n;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "c:", options, NULL)) >= 0)
                switch (opt) {
                case 'c':
                        config = optarg;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s'.", argv[optind]);

        r = config_load(config, &c, &errors, &refused);
        if (r < 0) {
                /* The main file decides for every model: without it nothing is granted. */
                for (size_t i = 0; i < errors.n; i++)
                        log_error("%s", errors.lines[i]);
                config_errors_done(&errors);
                return log_error_errno(r, "Cannot list the units: %s has errors.", config);
        }
        config_errors_done(&errors);
        if (refused)
                log_warning("%zu model file%s with errors left out (modelkeeperd --check-config shows why).",
                            strv_length(refused), strv_length(refused) == 1 ? "" : "s");

        for (size_t i = 0; i < c->n_models; i++) {
                const ServeConfig *s = &c->models[i]->serve;

                if (s->reload != RELOAD_SYSTEMD || !s->unit || strv_contains(units, s->unit))
                        continue;
                if (strv_extend(&units, s->unit) < 0)
                        return log_oom();
        }
        n = strv_length(units);
        qsort(units, n, sizeof(char *), cmp_str);

        if (arg_json) {
                json_t *list = json_array();
                char *s;

                for (size_t i = 0; list && i < n; i++)
                        json_array_append_new(list, json_string(units[i]));
                s = list ? json_dumps(list, JSON_INDENT(2)) : NULL;
                json_decref(list);
                if (!s)
                        return log_oom();
                printf("%s\n", s);
                free(s);
        } else
                for (size_t i = 0; i < n; i++)
                        printf("%s\n", units[i]);
        return fflush(stdout) == 0 ? 0 : log_error_errno(-errno, "Failed to write the list: %m");
}
