/* SPDX-License-Identifier: Apache-2.0 */

/* What a configuration refers to outside its own text. The loader judges the YAML; this judges
 * the world it points at: key files that must parse as public keys, TLS files and programs that
 * must exist. `modelkeeperd --check-config` reports these as errors (an administrator asked "will
 * this work?"); the daemon logs them as warnings at load, because a file may legitimately appear
 * later (a credential, a tool installed after the configuration) and refusing to start over it
 * would take every other model down with it. */

#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"

static void check_file(ConfigErrors *e, const char *file, const char *key, const char *path) {
        struct stat st;

        if (!path)
                return;
        if (stat(path, &st) < 0)
                config_errors_add(e, file, 0, 0, "%s: %s: %m", key, path);
        else if (!S_ISREG(st.st_mode))
                config_errors_add(e, file, 0, 0, "%s: %s is not a regular file", key, path);
}

static void check_program(ConfigErrors *e, const char *file, const char *key, char *const *argv) {
        struct stat st;

        if (!argv || !argv[0])
                return;
        if (stat(argv[0], &st) < 0)
                config_errors_add(e, file, 0, 0, "%s: %s: %m", key, argv[0]);
        else if (!S_ISREG(st.st_mode) || !(st.st_mode & 0111))
                config_errors_add(e, file, 0, 0, "%s: %s is not an executable file", key, argv[0]);
}

static void check_tls(ConfigErrors *e, const char *file, const char *section, const TlsOptions *t) {
        char key[128];

        snprintf(key, sizeof(key), "%s.ca_file", section);
        check_file(e, file, key, t->ca_file);
        snprintf(key, sizeof(key), "%s.client_cert", section);
        check_file(e, file, key, t->client_cert);
        /* The client key may be readable only by the daemon's user: existence is what we can check. */
        snprintf(key, sizeof(key), "%s.client_key", section);
        check_file(e, file, key, t->client_key);
}

static void check_model(ConfigErrors *e, const ModelConfig *m) {
        char key[128];

        if (m->source)
                check_tls(e, m->path, "source.tls", &m->source->tls);
        check_tls(e, m->path, "serve.tls", &m->serve.tls);
        if (m->serve.reload == RELOAD_EXEC)
                check_program(e, m->path, "serve.reload.exec", m->serve.exec);
        for (size_t i = 0; i < m->metrics.n_targets; i++) {
                snprintf(key, sizeof(key), "metrics.scrape[%zu].tls", i);
                check_tls(e, m->path, key, &m->metrics.targets[i].tls);
        }
        for (size_t i = 0; i < m->n_rules; i++)
                if (m->rules[i].action.type == ACTION_EXEC) {
                        snprintf(key, sizeof(key), "rules[%s].action.exec", m->rules[i].name);
                        check_program(e, m->path, key, m->rules[i].action.argv);
                }
        for (size_t i = 0; i < m->n_profiles; i++)
                if (m->profiles[i].method == METHOD_EXEC) {
                        snprintf(key, sizeof(key), "recompress.profiles.%s.command", m->profiles[i].name);
                        check_program(e, m->path, key, m->profiles[i].command);
                }
}

size_t config_check_references(const Config *c, ConfigErrors *e) {
        size_t before = e->n;

        if (c->trust.keys && c->trust.keys[0]) {
                _cleanup_(trust_set_freep) TrustSet *t = NULL;
                _cleanup_free_ char *reason = NULL;

                if (trust_set_load_files(c->trust.keys, c->trust.threshold, &t, &reason) < 0)
                        config_errors_add(e, c->path, 0, 0, "trust.keys: %s", reason ?: "cannot load the keys");
        }
        /* The identity file is the agent's secret, often unreadable to whoever runs the check. */
        if (c->encryption.identity_file && access(c->encryption.identity_file, F_OK) < 0)
                config_errors_add(e, c->path, 0, 0, "encryption.identity_file: %s: %m", c->encryption.identity_file);
        for (size_t i = 0; i < c->n_models; i++)
                check_model(e, c->models[i]);
        return e->n - before;
}
