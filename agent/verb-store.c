/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The store verbs: import, activate, rollback, gc, verify, reconcile, list. Arguments follow
 * "--" (the daemon passes them there; by hand too):
 *
 *   import DIR [--id ID]
 *   activate ID [--from ID] [--no-verify]
 *   rollback ID [--from ID]        (an activation that skips re-hashing: instant)
 *   gc [--keep N] [--protect ID]…
 *   verify ID
 *   reconcile
 *   list
 */

#include <getopt.h>
#include <openssl/evp.h>
#include <inttypes.h>
#include <time.h>

#include "age.h"
#include "agent.h"
#include "log.h"
#include "parse-util.h"
#include "store.h"
#include "strv.h"
#include "unseal.h"

typedef struct Throttle {
        Agent *agent;
        uint64_t last;
} Throttle;

static uint64_t now_mono(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* At most ten progress messages a second, and always the last one. */
static void progress_cb(void *userdata, const char *phase, uint64_t done, uint64_t total) {
        Throttle *t = userdata;
        uint64_t n = now_mono();

        if (done < total && n - t->last < 100 * USEC_PER_MSEC)
                return;
        t->last = n;
        agent_progress(t->agent, phase, done, total);
}

/* Parse the verb's own arguments: positional ones into pos[], options into the table. */
typedef struct VerbArgs {
        const char *pos[2];
        size_t n_pos;
        const char *from;
        const char *id;
        bool no_verify;
        unsigned keep;
        bool keep_set;
        char **protect;
} VerbArgs;

static int parse_verb_args(Agent *a, VerbArgs *va) {
        enum { ARG_FROM = 0x100, ARG_ID, ARG_NO_VERIFY, ARG_KEEP, ARG_PROTECT };
        static const struct option options[] = {
                {"from", required_argument, NULL, ARG_FROM},
                {"id", required_argument, NULL, ARG_ID},
                {"no-verify", no_argument, NULL, ARG_NO_VERIFY},
                {"keep", required_argument, NULL, ARG_KEEP},
                {"protect", required_argument, NULL, ARG_PROTECT},
                {},
        };
        int argc, c;
        _cleanup_free_ char **argv = agent_getopt_argv(a, &argc);

        if (!argv)
                return -ENOMEM;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case ARG_FROM:
                        va->from = *optarg ? optarg : NULL;
                        break;
                case ARG_ID:
                        va->id = optarg;
                        break;
                case ARG_NO_VERIFY:
                        va->no_verify = true;
                        break;
                case ARG_KEEP:
                        if (parse_unsigned(optarg, &va->keep) < 0)
                                return agent_result_error(a, -EINVAL, "invalid --keep '%s'", optarg);
                        va->keep_set = true;
                        break;
                case ARG_PROTECT:
                        if (strv_extend(&va->protect, optarg) < 0)
                                return -ENOMEM;
                        break;
                default:
                        return agent_result_error(a, -EINVAL, "unknown or incomplete option in '%s'",
                                                  argv[optind - 1 < argc ? optind - 1 : argc - 1]);
                }
        for (int i = optind; i < argc; i++) {
                if (va->n_pos >= ELEMENTSOF(va->pos))
                        return agent_result_error(a, -EINVAL, "too many arguments");
                va->pos[va->n_pos++] = argv[i];
        }
        return 0;
}

int agent_open_store(Agent *a, Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;
        char reason[512] = "";
        int r;

        r = store_open(a->config->daemon.state_directory, a->config->daemon.runtime_directory, a->model_name, &s);
        if (r < 0)
                return agent_result_error(a, r, "cannot open the store of %s: %m", a->model_name);
        r = store_set_group(s, a->model->storage.group, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "%s", reason);
        *ret = TAKE_PTR(s);
        return 0;
}

static int open_store(Agent *a, Store **ret) {
        return agent_open_store(a, ret);
}

static StoreLimits limits_of(const ModelConfig *m) {
        return (StoreLimits){
                .max_version_size = m->storage.max_version_size,
                .max_file_size = m->source ? MIN(m->source->max_file_size, m->storage.max_version_size)
                                           : m->storage.max_version_size,
                .max_files = m->storage.max_files,
                .min_free = m->storage.min_free,
        };
}

int verb_import(Agent *a) {
        const InstallSealHook *seal = NULL;
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
        _cleanup_free_ char *next = NULL;
        VerbArgs va = {};
        Throttle t = {.agent = a};
        StoreLimits lim;
        char reason[1024] = "";
        int r;

        r = parse_verb_args(a, &va);
        if (r < 0)
                return r;
        if (va.n_pos != 1)
                return agent_result_error(a, -EINVAL, "usage: import DIR [--id ID]");
        r = open_store(a, &s);
        if (r < 0)
                return r;
        if (!va.id) {
                r = store_next_id(s, &next);
                if (r < 0)
                        return agent_result_error(a, r, "cannot list the store: %m");
                va.id = next;
        }
        if (a->model->storage.encrypt) {
                r = agent_seal_hook(a, &seal);
                if (r < 0)
                        return r;
        }
        lim = limits_of(a->model);
        r = store_import(s, va.pos[0], va.id, &lim, seal, progress_cb, &t, &meta, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "%s", reason);
        return agent_result_ok(a, json_pack("{s:s, s:I, s:i, s:b}", "id", meta->id, "total_size",
                                            (json_int_t) meta->total_size, "files", (int) meta->n_files, "sealed",
                                            meta->sealed));
}

static int do_activate(Agent *a, bool verify_default) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
        _cleanup_free_ char *target = NULL, *current = NULL;
        VerbArgs va = {};
        Throttle t = {.agent = a};
        char reason[1024] = "";
        const char *to, *from;
        int r;

        r = parse_verb_args(a, &va);
        if (r < 0)
                return r;
        if (va.n_pos != 1)
                return agent_result_error(a, -EINVAL, "usage: %s ID [--from ID]%s", a->verb,
                                          verify_default ? " [--no-verify]" : "");
        to = va.pos[0];
        r = open_store(a, &s);
        if (r < 0)
                return r;

        /* Without --from (by hand): the version serving now becomes previous. */
        from = va.from;
        if (!from && store_read_link(s->dirfd, "current", &current) >= 0 && !streq(current, to))
                from = current;

        /* Always check completeness; re-hash every byte only for a version that has not served
         * before (a rollback must be instant whatever the model's size; scrub covers bit rot). */
        r = store_verify(s, to, verify_default && !va.no_verify, progress_cb, &t, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "%s", reason);
        r = version_meta_load(s->dirfd, to, &meta);
        if (r < 0)
                return agent_result_error(a, r, "version %s: cannot read meta.json: %m", to);
        if (meta->sealed) {
                /* The model server reads plaintext: decrypt into $RUNTIME/plain/<model>/<id> (tmpfs),
                 * every byte authenticated and every file's digest checked on the way. */
                r = agent_decrypt_version(a, s, meta, progress_cb, &t);
                if (r < 0)
                        return r;
        }
        r = store_serve_target(s, to, meta->sealed, &target);
        if (r < 0)
                return agent_result_error(a, r, "out of memory");
        r = store_activate(s, to, from, target);
        if (r < 0)
                return agent_result_error(a, r, "cannot activate version %s: %m", to);
        return agent_result_ok(a, json_pack("{s:s, s:s?, s:s}", "id", to, "from", from, "serve", target));
}

int verb_activate(Agent *a) {
        return do_activate(a, true);
}

int verb_rollback(Agent *a) {
        return do_activate(a, false);
}

int verb_gc(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        VerbArgs va = {};
        json_t *removed = NULL;
        uint64_t freed = 0;
        int r;

        r = parse_verb_args(a, &va);
        if (r < 0)
                goto out;
        r = open_store(a, &s);
        if (r < 0)
                goto out;
        r = store_gc(s, va.keep_set ? va.keep : a->model->storage.keep_versions, va.protect,
                     a->model->storage.keep_previous_plain, &removed, &freed);
        if (r < 0) {
                r = agent_result_error(a, r, "garbage collection failed: %m");
                goto out;
        }
        r = agent_result_ok(a, json_pack("{s:o, s:I}", "removed", removed, "freed", (json_int_t) freed));
out:
        strv_free(va.protect);
        return r;
}

int verb_verify(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        VerbArgs va = {};
        Throttle t = {.agent = a};
        char reason[1024] = "";
        int r;

        r = parse_verb_args(a, &va);
        if (r < 0)
                return r;
        if (va.n_pos != 1)
                return agent_result_error(a, -EINVAL, "usage: verify ID");
        r = open_store(a, &s);
        if (r < 0)
                return r;
        r = store_verify(s, va.pos[0], true, progress_cb, &t, reason, sizeof(reason));
        if (r < 0)
                return agent_result_error(a, r, "%s", reason);
        return agent_result_ok(a, json_pack("{s:s, s:b}", "id", va.pos[0], "ok", 1));
}

int verb_reconcile(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        json_t *report = NULL;
        int r;

        r = open_store(a, &s);
        if (r < 0)
                return r;
        r = store_reconcile(s, &report);
        if (r < 0)
                return agent_result_error(a, r, "reconciling the store failed: %m");
        return agent_result_ok(a, report);
}

int verb_list(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(strv_freep) char **ids = NULL;
        json_t *list;
        int r;

        r = open_store(a, &s);
        if (r < 0)
                return r;
        r = store_list(s, &ids);
        if (r < 0)
                return agent_result_error(a, r, "cannot list the store: %m");
        list = json_array();
        STRV_FOREACH(id, ids) {
                _cleanup_(version_meta_freep) VersionMeta *m = NULL;
                if (version_meta_load(s->dirfd, *id, &m) >= 0)
                        json_array_append_new(list, version_meta_to_json(m));
        }
        return agent_result_ok(a, json_pack("{s:o}", "versions", list));
}

/* scrub [ID…]: re-verify versions at rest — every sealed chunk authenticated and every file
 * against its digest (unsealed files are re-hashed). Corruption is a finding, not a failure of
 * the job: the daemon quarantines what is reported. */
int verb_scrub(Agent *a) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_(strv_freep) char **ids = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        json_t *corrupt = NULL;
        unsigned checked = 0;
        uint64_t done = 0;
        Throttle t = {.agent = a};
        int r;

        r = open_store(a, &s);
        if (r < 0)
                return r;
        if (a->args && a->args[0])
                ids = strv_copy(a->args);
        else if ((r = store_list(s, &ids)) < 0)
                return agent_result_error(a, r, "cannot list the store: %m");
        if (!ids)
                return -ENOMEM;
        buf = malloc(1024 * 1024);
        corrupt = json_object();
        if (!buf || !corrupt) {
                json_decref(corrupt);
                return -ENOMEM;
        }
        STRV_FOREACH(id, ids) {
                _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
                _cleanup_(unsealer_freep) Unsealer *u = NULL;
                char reason[512] = "";

                if (agent_terminate)
                        break;
                r = version_meta_load(s->dirfd, *id, &meta);
                if (r < 0) {
                        json_object_set_new(corrupt, *id, json_sprintf("meta.json unreadable: %s", strerror(-r)));
                        continue;
                }
                checked++;
                /* Sizes first (cheap), then every byte. */
                r = store_verify(s, *id, !meta->sealed, NULL, NULL, reason, sizeof(reason));
                if (r < 0) {
                        json_object_set_new(corrupt, *id, json_string(reason));
                        continue;
                }
                if (!meta->sealed)
                        continue;
                r = unsealer_new(a, s, meta, &u);
                if (r < 0) {
                        json_decref(corrupt);
                        return r; /* no identity: reported already */
                }
                for (size_t i = 0; i < meta->n_files && !reason[0]; i++) {
                        uint8_t digest[SHA256_DIGEST_SIZE];
                        StreamReader in;
                        EVP_MD_CTX *sha = EVP_MD_CTX_new();
                        unsigned len = 0;
                        ssize_t n = 0;

                        r = sha ? unsealer_open(u, meta->files[i].name, &in) : -ENOMEM;
                        if (r >= 0 && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) == 1) {
                                while ((n = stream_read(&in, buf, 1024 * 1024)) > 0) {
                                        EVP_DigestUpdate(sha, buf, (size_t) n);
                                        done += (uint64_t) n;
                                        progress_cb(&t, "scrub", done, 0);
                                }
                                unsealer_close(u, meta->files[i].name, &in);
                                if (n < 0)
                                        r = (int) n;
                        }
                        if (r >= 0 && (EVP_DigestFinal_ex(sha, digest, &len) != 1 ||
                                       memcmp(digest, meta->files[i].sha256, SHA256_DIGEST_SIZE) != 0))
                                snprintf(reason, sizeof(reason), "'%s' decrypts to content that does not match its SHA-256",
                                         meta->files[i].name);
                        else if (r == -ENOKEY) {
                                EVP_MD_CTX_free(sha);
                                json_decref(corrupt);
                                return agent_result_error(a, r, "the age identity does not match version %s", *id);
                        } else if (r < 0)
                                snprintf(reason, sizeof(reason), "sealed '%s' fails authentication (%s): corrupt or "
                                                                 "tampered at rest",
                                         meta->files[i].name, age_error_class_to_string(r));
                        EVP_MD_CTX_free(sha);
                }
                if (reason[0])
                        json_object_set_new(corrupt, *id, json_string(reason));
        }
        return agent_result_ok(a, json_pack("{s:i, s:o}", "checked", (int) checked, "corrupt", corrupt));
}
