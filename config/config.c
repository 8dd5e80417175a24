/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>

#include "config.h"
#include "fileio.h"
#include "parse-util.h"
#include "yaml-tree.h"

/* ---------------------------------------------------------------------------------------------
 * Errors
 */

void config_errors_done(ConfigErrors *e) {
        if (!e)
                return;
        for (size_t i = 0; i < e->n; i++)
                free(e->lines[i]);
        free(e->lines);
        *e = (ConfigErrors){};
}

void config_errors_add(ConfigErrors *e, const char *file, unsigned line, unsigned column, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        char *l = NULL, **a;
        va_list ap;
        int k;

        if (!e)
                return;
        va_start(ap, fmt);
        k = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (k < 0)
                return;
        if (line > 0)
                k = asprintf(&l, "%s:%u:%u: %s", file, line, column, msg);
        else
                k = asprintf(&l, "%s: %s", file, msg);
        if (k < 0)
                return;
        a = reallocarray(e->lines, e->n + 1, sizeof(char *));
        if (!a) {
                free(l);
                return;
        }
        e->lines = a;
        e->lines[e->n++] = l;
}

/* ---------------------------------------------------------------------------------------------
 * String tables
 */

#define DEFINE_STRING_TABLE(name, type, max, ...)                                                          \
        static const char *const name##_table[max] = {__VA_ARGS__};                                        \
        const char *name##_to_string(type v) {                                                             \
                return (int) v >= 0 && (int) v < (max) ? name##_table[v] : NULL;                           \
        }                                                                                                  \
        _unused_ static int name##_lookup(const char *s) {                                                 \
                for (int i = 0; i < (max); i++)                                                            \
                        if (name##_table[i] && streq(name##_table[i], s))                                  \
                                return i;                                                                  \
                return -EINVAL;                                                                            \
        }

DEFINE_STRING_TABLE(reload_kind, ReloadKind, _RELOAD_KIND_MAX, [RELOAD_NONE] = "none",
                    [RELOAD_SYSTEMD] = "systemd_unit", [RELOAD_HTTP] = "http", [RELOAD_EXEC] = "exec")
DEFINE_STRING_TABLE(unit_action, UnitAction, _UNIT_ACTION_MAX, [UNIT_RESTART] = "restart",
                    [UNIT_RELOAD] = "reload", [UNIT_TRY_RESTART] = "try-restart",
                    [UNIT_RELOAD_OR_RESTART] = "reload-or-restart")
DEFINE_STRING_TABLE(action_type, ActionType, _ACTION_TYPE_MAX, [ACTION_ROLLBACK] = "rollback",
                    [ACTION_RECOMPRESS] = "recompress", [ACTION_UPDATE] = "update", [ACTION_HOLD] = "hold",
                    [ACTION_EXEC] = "exec", [ACTION_LOG] = "log")
DEFINE_STRING_TABLE(no_data_policy, NoDataPolicy, _NO_DATA_POLICY_MAX, [NO_DATA_FAIL] = "fail",
                    [NO_DATA_PASS] = "pass", [NO_DATA_INCONCLUSIVE] = "inconclusive")
DEFINE_STRING_TABLE(recompress_method, RecompressMethod, _RECOMPRESS_METHOD_MAX, [METHOD_FP16] = "fp16",
                    [METHOD_BF16] = "bf16", [METHOD_INT8] = "int8", [METHOD_PRUNE] = "prune",
                    [METHOD_EXEC] = "exec")

RecompressMethod recompress_method_from_string(const char *s) {
        return s ? recompress_method_lookup(s) : _RECOMPRESS_METHOD_INVALID;
}

static ConfigExprValidator expr_validator = NULL;

void config_set_expr_validator(ConfigExprValidator v) {
        expr_validator = v;
}

/* ---------------------------------------------------------------------------------------------
 * Freeing
 */

static void tls_done(TlsOptions *t) {
        free(t->ca_file);
        free(t->pinned_pubkey);
        free(t->client_cert);
        free(t->client_key);
}

static void action_done(Action *a) {
        free(a->profile);
        strv_free(a->argv);
}

ModelConfig *model_config_free(ModelConfig *m) {
        if (!m)
                return NULL;
        free(m->name);
        free(m->path);
        free(m->text);
        if (m->source) {
                free(m->source->url);
                free(m->source->channel);
                tls_done(&m->source->tls);
                free(m->source);
        }
        free(m->storage.group);
        free(m->serve.unit);
        free(m->serve.http_url);
        free(m->serve.http_method);
        free(m->serve.http_body);
        strv_free(m->serve.exec);
        free(m->serve.ready_url);
        tls_done(&m->serve.tls);
        for (size_t i = 0; i < m->metrics.n_targets; i++) {
                free(m->metrics.targets[i].url);
                tls_done(&m->metrics.targets[i].tls);
        }
        free(m->metrics.targets);
        for (size_t i = 0; i < m->metrics.n_defines; i++) {
                free(m->metrics.defines[i].name);
                free(m->metrics.defines[i].expr);
        }
        free(m->metrics.defines);
        if (m->rollout) {
                for (size_t i = 0; i < m->rollout->n_checks; i++) {
                        free(m->rollout->checks[i].name);
                        free(m->rollout->checks[i].expr);
                        free(m->rollout->checks[i].min);
                        free(m->rollout->checks[i].max);
                }
                free(m->rollout->checks);
                free(m->rollout);
        }
        for (size_t i = 0; i < m->n_rules; i++) {
                free(m->rules[i].name);
                free(m->rules[i].when);
                action_done(&m->rules[i].action);
        }
        free(m->rules);
        for (size_t i = 0; i < m->n_profiles; i++) {
                free(m->profiles[i].name);
                strv_free(m->profiles[i].skip);
                strv_free(m->profiles[i].command);
        }
        free(m->profiles);
        free(m);
        return NULL;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        free(c->path);
        free(c->text);
        free(c->daemon.state_directory);
        free(c->daemon.runtime_directory);
        free(c->daemon.models_directory);
        free(c->daemon.admin_group);
        free(c->daemon.socket_group);
        free(c->daemon.metrics_textfile);
        free(c->daemon.agent_path);
        free(c->daemon.agent_user);
        strv_free(c->trust.keys);
        free(c->encryption.recipient);
        free(c->encryption.identity_credential);
        free(c->encryption.identity_file);
        for (size_t i = 0; i < c->n_models; i++)
                model_config_free(c->models[i]);
        free(c->models);
        free(c);
        return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The table-driven walker
 */

typedef struct Ctx {
        const char *file;
        char *base_dir;  /* relative paths are resolved against the directory of the file */
        ConfigErrors *errors;
        size_t n_errors;
        char section[256]; /* dotted path of the mapping being parsed, e.g. "source.tls" */
} Ctx;

static int ctx_err(Ctx *ctx, const YNode *n, const char *fmt, ...) _printf_(3, 4);
static int ctx_err(Ctx *ctx, const YNode *n, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);
        config_errors_add(ctx->errors, ctx->file, n ? n->line : 0, n ? n->column : 0, "%s", msg ?: "out of memory");
        ctx->n_errors++;
        return -EINVAL;
}

typedef int (*ParseFn)(Ctx *ctx, const YNode *n, void *dst, const void *arg);

typedef struct Item {
        const char *key;
        ParseFn parse;
        size_t offset;
        const void *arg;
        bool required;
} Item;

typedef struct Range64 {
        uint64_t min, max;
} Range64;

typedef struct RangeD {
        double min, max;
} RangeD;

typedef struct EnumArg {
        int (*lookup)(const char *s);
        const char *choices;
} EnumArg;

#define STRING_MAX 4096

static int expect_scalar(Ctx *ctx, const YNode *n, const char *what) {
        if (!n || n->type != YNODE_SCALAR || ynode_is_null(n))
                return ctx_err(ctx, n, "expected %s, got %s", what, ynode_type_name(n));
        return 0;
}

/* what: used for errors at the top level; below it the dotted section path says where we are. */
static int parse_mapping(Ctx *ctx, const YNode *n, const Item *items, void *base, const char *what) {
        int r = 0;

        if (ctx->section[0])
                what = ctx->section;

        if (ynode_is_null(n))
                goto check_required;
        if (n->type != YNODE_MAPPING)
                return ctx_err(ctx, n, "expected a mapping for %s, got %s", what, ynode_type_name(n));

        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                const Item *it = NULL;

                for (const Item *x = items; x->key; x++)
                        if (streq(x->key, k->value)) {
                                it = x;
                                break;
                        }
                if (!it) {
                        char choices[512] = "";
                        size_t off = 0;

                        for (const Item *x = items; x->key && off < sizeof(choices) - 64; x++)
                                off += (size_t) snprintf(choices + off, sizeof(choices) - off, "%s%s",
                                                         off ? ", " : "", x->key);
                        r = ctx_err(ctx, k, "unknown key '%s' in %s (expected one of: %s)", k->value, what, choices);
                        continue;
                }
                {
                        size_t saved = strlen(ctx->section);

                        snprintf(ctx->section + saved, sizeof(ctx->section) - saved, "%s%s", saved ? "." : "",
                                 k->value);
                        if (it->parse(ctx, v, (uint8_t *) base + it->offset, it->arg) < 0)
                                r = -EINVAL;
                        ctx->section[saved] = 0;
                }
        }

check_required:
        for (const Item *x = items; x->key; x++)
                if (x->required && !ynode_get(n, x->key))
                        r = ctx_err(ctx, n, "missing required key '%s' in %s", x->key, what);
        return r;
}

static int p_string(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        char **s = dst;

        if (expect_scalar(ctx, n, "a string") < 0)
                return -EINVAL;
        if (n->len > STRING_MAX)
                return ctx_err(ctx, n, "string too long (%zu bytes, limit %d)", n->len, STRING_MAX);
        free(*s);
        *s = strdup(n->value);
        return *s ? 0 : -ENOMEM;
}

static int p_name(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        if (expect_scalar(ctx, n, "a name") < 0)
                return -EINVAL;
        if (!name_is_valid(n->value, MODEL_NAME_MAX))
                return ctx_err(ctx, n, "invalid name '%s': use letters, digits, '.', '_' and '-' (at most %d)",
                               n->value, MODEL_NAME_MAX);
        return p_string(ctx, n, dst, arg);
}

static int p_path(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        char **s = dst;

        if (expect_scalar(ctx, n, "a path") < 0)
                return -EINVAL;
        if (n->len > PATH_MAX)
                return ctx_err(ctx, n, "path too long");
        free(*s);
        *s = path_is_absolute(n->value) ? strdup(n->value) : path_join(ctx->base_dir, n->value);
        return *s ? 0 : -ENOMEM;
}

static int p_absolute_path(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        if (expect_scalar(ctx, n, "a path") < 0)
                return -EINVAL;
        if (!path_is_absolute(n->value))
                return ctx_err(ctx, n, "'%s' is not an absolute path", n->value);
        return p_path(ctx, n, dst, arg);
}

/* arg: NULL-terminated list of allowed schemes ("https://", "file://", "http://"). */
static int p_url(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const char *const *schemes = arg;

        if (expect_scalar(ctx, n, "a URL") < 0)
                return -EINVAL;
        for (const char *const *s = schemes; *s; s++) {
                const char *rest = startswith(n->value, *s);
                if (rest && *rest) {
                        for (const char *p = n->value; *p; p++)
                                if ((unsigned char) *p <= 0x20 || *p == 0x7f)
                                        return ctx_err(ctx, n, "URL contains a space or control character");
                        return p_string(ctx, n, dst, NULL);
                }
        }
        if (startswith(n->value, "http://") && !strv_contains((char *const *) schemes, "http://"))
                return ctx_err(ctx, n, "plain http:// is refused here: use https:// (or file:// for a local repository)");
        {
                char choices[128] = "";
                size_t off = 0;

                for (const char *const *s = schemes; *s && off < sizeof(choices) - 32; s++)
                        off += (size_t) snprintf(choices + off, sizeof(choices) - off, "%s%s", off ? " " : "", *s);
                return ctx_err(ctx, n, "'%s' is not a URL with one of the schemes: %s", n->value, choices);
        }
}

static const char *const schemes_source[] = {"https://", "file://", NULL};
static const char *const schemes_http[] = {"http://", "https://", NULL};
static const char *const schemes_scrape[] = {"http://", "https://", "file://", NULL};

static int p_bool(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        bool *b = dst;

        if (expect_scalar(ctx, n, "true or false") < 0)
                return -EINVAL;
        if (n->plain && streq(n->value, "true"))
                *b = true;
        else if (n->plain && streq(n->value, "false"))
                *b = false;
        else
                return ctx_err(ctx, n, "expected true or false, got '%s'", n->value);
        return 0;
}

static int p_duration(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const Range64 *range = arg;
        uint64_t *u = dst, v;
        char a[FORMAT_DURATION_MAX], b[FORMAT_DURATION_MAX];

        if (expect_scalar(ctx, n, "a duration") < 0)
                return -EINVAL;
        if (parse_duration(n->value, &v) < 0)
                return ctx_err(ctx, n, "invalid duration '%s' (write e.g. 30s, 15m, 1h30m)", n->value);
        if (range && (v < range->min || v > range->max))
                return ctx_err(ctx, n, "duration %s out of range [%s, %s]", n->value, format_duration(a, range->min),
                               format_duration(b, range->max));
        *u = v;
        return 0;
}

static int p_size(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const Range64 *range = arg;
        uint64_t *u = dst, v;
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];

        if (expect_scalar(ctx, n, "a size") < 0)
                return -EINVAL;
        if (parse_size(n->value, &v) < 0)
                return ctx_err(ctx, n, "invalid size '%s' (write e.g. 4096, 500MB, 2GiB)", n->value);
        if (range && (v < range->min || v > range->max))
                return ctx_err(ctx, n, "size %s out of range [%s, %s]", n->value, format_bytes(a, range->min),
                               format_bytes(b, range->max));
        *u = v;
        return 0;
}

static int p_unsigned(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const Range64 *range = arg;
        unsigned *u = dst, v;

        if (expect_scalar(ctx, n, "a number") < 0)
                return -EINVAL;
        if (!n->plain || parse_unsigned(n->value, &v) < 0)
                return ctx_err(ctx, n, "invalid number '%s' (expected a non-negative integer)", n->value);
        if (range && (v < range->min || v > range->max))
                return ctx_err(ctx, n, "%u out of range [%" PRIu64 ", %" PRIu64 "]", v, range->min, range->max);
        *u = v;
        return 0;
}

/* A fraction: 0.5 or 50%. */
static int p_fraction(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const RangeD *range = arg;
        double *d = dst, v;

        if (expect_scalar(ctx, n, "a number") < 0)
                return -EINVAL;
        if (parse_percent(n->value, &v) < 0 && parse_double(n->value, &v) < 0)
                return ctx_err(ctx, n, "invalid number '%s' (write e.g. 0.5 or 50%%)", n->value);
        if (range && !(v >= range->min && v <= range->max))
                return ctx_err(ctx, n, "%s out of range [%g, %g]", n->value, range->min, range->max);
        *d = v;
        return 0;
}

static int p_enum(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const EnumArg *e = arg;
        int *i = dst, v;

        if (expect_scalar(ctx, n, "a keyword") < 0)
                return -EINVAL;
        v = e->lookup(n->value);
        if (v < 0)
                return ctx_err(ctx, n, "invalid value '%s' (expected one of: %s)", n->value, e->choices);
        *i = v;
        return 0;
}

static int p_strv(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        _cleanup_(strv_freep) char **l = NULL;
        char ***ret = dst;
        int r = 0;

        if (!n || n->type != YNODE_SEQUENCE)
                return ctx_err(ctx, n, "expected a list of strings, got %s", ynode_type_name(n));
        if (n->n_items > 1024)
                return ctx_err(ctx, n, "too many items (limit 1024)");
        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_items; i++) {
                char *s = NULL;

                if (p_string(ctx, n->items[i], &s, NULL) < 0) {
                        r = -EINVAL;
                        continue;
                }
                if (strv_consume(&l, s) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        strv_free(*ret);
        *ret = TAKE_PTR(l);
        return 0;
}

/* argv for exec: at least one element, the first an absolute path (no $PATH search, no shell). */
static int p_argv(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        char ***ret = dst;

        if (p_strv(ctx, n, dst, arg) < 0)
                return -EINVAL;
        if (!*ret || !(*ret)[0])
                return ctx_err(ctx, n, "expected a command line: a non-empty list, program first");
        if (!path_is_absolute((*ret)[0]))
                return ctx_err(ctx, n->items[0], "'%s' is not an absolute path: commands run without a shell or $PATH",
                               (*ret)[0]);
        return 0;
}

static int p_section(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        const Item *items = arg;
        return parse_mapping(ctx, n, items, dst, NULL);
}

/* Stores an expression string and where it starts; checked when the whole file is known. */
typedef struct ExprSlot {
        char **text;
        ConfigMark *mark;
} ExprSlot;

static int p_expr_into(Ctx *ctx, const YNode *n, char **text, ConfigMark *mark) {
        if (expect_scalar(ctx, n, "an expression") < 0)
                return -EINVAL;
        if (p_string(ctx, n, text, NULL) < 0)
                return -EINVAL;
        *mark = (ConfigMark){.line = n->line, .column = n->column, .exact = n->single_line};
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Schema: modelkeeper.yaml
 */

static const Range64 range_jobs = {0, 256};
static const Range64 range_job_timeout = {USEC_PER_SEC, 7 * 86400 * USEC_PER_SEC};
static const Range64 range_threshold = {1, 64};
static const Range64 range_scrub = {0, 365 * 86400 * USEC_PER_SEC};

static const Item daemon_items[] = {
        {"state_directory", p_absolute_path, offsetof(DaemonConfig, state_directory)},
        {"runtime_directory", p_absolute_path, offsetof(DaemonConfig, runtime_directory)},
        {"models_directory", p_path, offsetof(DaemonConfig, models_directory)},
        {"max_jobs", p_unsigned, offsetof(DaemonConfig, max_jobs), &range_jobs},
        {"job_timeout", p_duration, offsetof(DaemonConfig, job_timeout), &range_job_timeout},
        {"admin_group", p_name, offsetof(DaemonConfig, admin_group)},
        {"socket_group", p_name, offsetof(DaemonConfig, socket_group)},
        {"metrics_textfile", p_absolute_path, offsetof(DaemonConfig, metrics_textfile)},
        {"agent", p_path, offsetof(DaemonConfig, agent_path)},
        {"agent_user", p_name, offsetof(DaemonConfig, agent_user)},
        {"watch_models", p_bool, offsetof(DaemonConfig, watch_models)},
        {"scrub_every", p_duration, offsetof(DaemonConfig, scrub_every), &range_scrub},
        {},
};

static int p_keys(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        char ***keys = dst;

        if (p_strv(ctx, n, dst, arg) < 0)
                return -EINVAL;
        /* Key files are paths, relative to the configuration file. */
        for (size_t i = 0; (*keys)[i]; i++)
                if (!path_is_absolute((*keys)[i])) {
                        char *p = path_join(ctx->base_dir, (*keys)[i]);
                        if (!p)
                                return -ENOMEM;
                        free((*keys)[i]);
                        (*keys)[i] = p;
                }
        return 0;
}

static const Item trust_items[] = {
        {"keys", p_keys, offsetof(TrustConfig, keys)},
        {"threshold", p_unsigned, offsetof(TrustConfig, threshold), &range_threshold},
        {},
};

static int p_recipient(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        if (expect_scalar(ctx, n, "an age recipient") < 0)
                return -EINVAL;
        /* Full bech32 validation happens where the key is used (common/age.c); catch the obvious
         * mistake of pasting the secret key here. */
        if (startswith(n->value, "AGE-SECRET-KEY-"))
                return ctx_err(ctx, n, "this is an age identity (secret key), not a recipient: never put it in this file");
        if (!startswith(n->value, "age1") || n->len != 62)
                return ctx_err(ctx, n, "invalid age recipient '%s' (expected age1… with 62 characters)", n->value);
        return p_string(ctx, n, dst, arg);
}

static int p_credential(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        return p_name(ctx, n, dst, arg);
}

static const Item encryption_items[] = {
        {"recipient", p_recipient, offsetof(EncryptionConfig, recipient)},
        {"identity_credential", p_credential, offsetof(EncryptionConfig, identity_credential)},
        {"identity_file", p_path, offsetof(EncryptionConfig, identity_file)},
        {},
};

static const Item main_items[] = {
        {"daemon", p_section, offsetof(Config, daemon), daemon_items},
        {"trust", p_section, offsetof(Config, trust), trust_items},
        {"encryption", p_section, offsetof(Config, encryption), encryption_items},
        {},
};

/* ---------------------------------------------------------------------------------------------
 * Schema: models.d/<model>.yaml
 */

static const Range64 range_check_every = {10 * USEC_PER_SEC, 30 * 86400 * USEC_PER_SEC};
static const Range64 range_jitter = {0, 86400 * USEC_PER_SEC};
static const Range64 range_timeout = {100 * USEC_PER_MSEC, 86400 * USEC_PER_SEC};
static const Range64 range_speed = {0, 1024 * MIB};
static const Range64 range_retries = {0, 100};
static const Range64 range_release_size = {1 * KIB, 64 * MIB};
static const Range64 range_big_size = {1, UINT64_MAX / 2};
static const Range64 range_files = {1, 100000};
static const Range64 range_keep = {2, 1000};
static const Range64 range_scrape_every = {USEC_PER_SEC, 86400 * USEC_PER_SEC};
static const Range64 range_body = {1 * KIB, 256 * MIB};
static const Range64 range_series = {1, 10000000};
static const Range64 range_rule_dur = {0, 30 * 86400 * USEC_PER_SEC};
static const Range64 range_interval = {USEC_PER_SEC, 86400 * USEC_PER_SEC};
static const Range64 range_iterations = {1, 10000};
static const Range64 range_samples = {0, 1000000};
static const RangeD range_sparsity = {0.0, 0.999};

static const Item tls_items[] = {
        {"ca_file", p_path, offsetof(TlsOptions, ca_file)},
        {"pinned_pubkey", p_string, offsetof(TlsOptions, pinned_pubkey)},
        {"client_cert", p_path, offsetof(TlsOptions, client_cert)},
        {"client_key", p_path, offsetof(TlsOptions, client_key)},
        {},
};

static const Item source_items[] = {
        {"url", p_url, offsetof(SourceConfig, url), schemes_source, true},
        {"channel", p_name, offsetof(SourceConfig, channel), NULL, true},
        {"check_every", p_duration, offsetof(SourceConfig, check_every), &range_check_every},
        {"jitter", p_duration, offsetof(SourceConfig, jitter), &range_jitter},
        {"auto_activate", p_bool, offsetof(SourceConfig, auto_activate)},
        {"tls", p_section, offsetof(SourceConfig, tls), tls_items},
        {"connect_timeout", p_duration, offsetof(SourceConfig, connect_timeout), &range_timeout},
        {"low_speed_limit", p_size, offsetof(SourceConfig, low_speed_limit), &range_speed},
        {"low_speed_time", p_duration, offsetof(SourceConfig, low_speed_time), &range_timeout},
        {"retries", p_unsigned, offsetof(SourceConfig, retries), &range_retries},
        {"retry_backoff", p_duration, offsetof(SourceConfig, retry_backoff), &range_timeout},
        {"retry_backoff_max", p_duration, offsetof(SourceConfig, retry_backoff_max), &range_timeout},
        {"max_release_size", p_size, offsetof(SourceConfig, max_release_size), &range_release_size},
        {"max_file_size", p_size, offsetof(SourceConfig, max_file_size), &range_big_size},
        {"max_total_size", p_size, offsetof(SourceConfig, max_total_size), &range_big_size},
        {"max_files", p_unsigned, offsetof(SourceConfig, max_files), &range_files},
        {},
};

static const Item storage_items[] = {
        {"encrypt", p_bool, offsetof(StorageConfig, encrypt)},
        {"keep_versions", p_unsigned, offsetof(StorageConfig, keep_versions), &range_keep},
        {"min_free", p_size, offsetof(StorageConfig, min_free), &range_big_size},
        {"keep_previous_plain", p_bool, offsetof(StorageConfig, keep_previous_plain)},
        {"group", p_name, offsetof(StorageConfig, group)},
        {"max_version_size", p_size, offsetof(StorageConfig, max_version_size), &range_big_size},
        {"max_files", p_unsigned, offsetof(StorageConfig, max_files), &range_files},
        {},
};

static int unit_action_lookup_int(const char *s) {
        return unit_action_lookup(s);
}
static const EnumArg unit_action_arg = {unit_action_lookup_int, "restart, reload, try-restart, reload-or-restart"};

static int p_unit(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        if (expect_scalar(ctx, n, "a unit name") < 0)
                return -EINVAL;
        if (!name_is_valid(n->value, 255) || !(endswith(n->value, ".service") || endswith(n->value, ".target")))
                return ctx_err(ctx, n, "invalid unit name '%s' (expected NAME.service)", n->value);
        return p_string(ctx, n, dst, arg);
}

/* http: "POST https://…" | "https://…" | {url, method, body} */
static int p_reload_http(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        ServeConfig *s = dst;
        static const Item items[] = {
                {"url", p_url, offsetof(ServeConfig, http_url), schemes_http, true},
                {"method", p_string, offsetof(ServeConfig, http_method)},
                {"body", p_string, offsetof(ServeConfig, http_body)},
                {},
        };

        if (n && n->type == YNODE_MAPPING) {
                if (parse_mapping(ctx, n, items, s, "serve.reload.http") < 0)
                        return -EINVAL;
        } else {
                const char *sp;
                YNode tmp;

                if (expect_scalar(ctx, n, "a URL or \"METHOD URL\"") < 0)
                        return -EINVAL;
                tmp = *n;
                sp = strchr(n->value, ' ');
                if (sp) {
                        free(s->http_method);
                        s->http_method = strndup(n->value, (size_t) (sp - n->value));
                        if (!s->http_method)
                                return -ENOMEM;
                        tmp.value = (char *) sp + 1;
                        tmp.len = strlen(tmp.value);
                }
                if (p_url(ctx, &tmp, &s->http_url, schemes_http) < 0)
                        return -EINVAL;
        }
        if (s->http_method && !streq(s->http_method, "POST") && !streq(s->http_method, "PUT") &&
            !streq(s->http_method, "GET"))
                return ctx_err(ctx, n, "unsupported HTTP method '%s' (POST, PUT or GET)", s->http_method);
        return 0;
}

static int p_reload(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        ServeConfig *s = dst;
        static const Item items[] = {
                {"systemd_unit", p_unit, offsetof(ServeConfig, unit)},
                {"action", p_enum, offsetof(ServeConfig, unit_action), &unit_action_arg},
                {"http", p_reload_http, 0},
                {"exec", p_argv, offsetof(ServeConfig, exec)},
                {"timeout", p_duration, offsetof(ServeConfig, reload_timeout), &range_timeout},
                {},
        };
        unsigned kinds = 0;

        if (parse_mapping(ctx, n, items, s, "serve.reload") < 0)
                return -EINVAL;
        if (s->unit) {
                s->reload = RELOAD_SYSTEMD;
                kinds++;
        }
        if (s->http_url) {
                s->reload = RELOAD_HTTP;
                kinds++;
        }
        if (s->exec) {
                s->reload = RELOAD_EXEC;
                kinds++;
        }
        if (kinds != 1)
                return ctx_err(ctx, n, "serve.reload needs exactly one of systemd_unit, http, exec");
        if (ynode_get(n, "action") && s->reload != RELOAD_SYSTEMD)
                return ctx_err(ctx, ynode_get(n, "action"), "'action' applies to systemd_unit only");
        return 0;
}

static int p_ready(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        ServeConfig *s = dst;
        static const Item items[] = {
                {"http", p_url, offsetof(ServeConfig, ready_url), schemes_http, true},
                {"timeout", p_duration, offsetof(ServeConfig, ready_timeout), &range_timeout},
                {"interval", p_duration, offsetof(ServeConfig, ready_interval), &range_timeout},
                {},
        };
        return parse_mapping(ctx, n, items, s, "serve.ready");
}

static const Item serve_items[] = {
        {"reload", p_reload, 0},
        {"ready", p_ready, 0},
        {"tls", p_section, offsetof(ServeConfig, tls), tls_items},
        {},
};

static const Item scrape_items[] = {
        {"url", p_url, offsetof(ScrapeTarget, url), schemes_scrape, true},
        {"every", p_duration, offsetof(ScrapeTarget, every), &range_scrape_every},
        {"timeout", p_duration, offsetof(ScrapeTarget, timeout), &range_timeout},
        {"tls", p_section, offsetof(ScrapeTarget, tls), tls_items},
        {"max_body", p_size, offsetof(ScrapeTarget, max_body), &range_body},
        {"max_series", p_unsigned, offsetof(ScrapeTarget, max_series), &range_series},
        {},
};

static int scrape_target(Ctx *ctx, const YNode *n, MetricsConfig *m) {
        ScrapeTarget *a, *t;

        if (m->n_targets >= 16)
                return ctx_err(ctx, n, "too many scrape targets (limit 16)");
        a = reallocarray(m->targets, m->n_targets + 1, sizeof(ScrapeTarget));
        if (!a)
                return -ENOMEM;
        m->targets = a;
        t = &m->targets[m->n_targets++];
        *t = (ScrapeTarget){
                .every = 15 * USEC_PER_SEC,
                .timeout = 0, /* not given: see below */
                .max_body = 16 * MIB,
                .max_series = 100000,
        };
        if (parse_mapping(ctx, n, scrape_items, t, "metrics.scrape") < 0)
                return -EINVAL;
        /* As Prometheus: the default timeout is 10s, or the interval when that is shorter; only an
         * explicit timeout longer than the interval is an error. */
        if (t->timeout == 0)
                t->timeout = MIN(10 * USEC_PER_SEC, t->every);
        if (t->timeout > t->every)
                return ctx_err(ctx, n, "scrape timeout is longer than its interval");
        return 0;
}

/* scrape: one mapping, or a list of them. */
static int p_scrape(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        MetricsConfig *m = dst;
        int r = 0;

        if (n && n->type == YNODE_SEQUENCE) {
                for (size_t i = 0; i < n->n_items; i++)
                        if (scrape_target(ctx, n->items[i], m) < 0)
                                r = -EINVAL;
                return r;
        }
        if (!n || n->type != YNODE_MAPPING)
                return ctx_err(ctx, n, "expected a mapping or a list of mappings for metrics.scrape");
        return scrape_target(ctx, n, m);
}

static int p_defines(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        MetricsConfig *m = dst;
        int r = 0;

        if (!n || n->type != YNODE_MAPPING)
                return ctx_err(ctx, n, "expected a mapping of names to expressions for metrics.define");
        if (n->n_items / 2 > 256)
                return ctx_err(ctx, n, "too many definitions (limit 256)");
        m->defines = calloc(n->n_items / 2 + 1, sizeof(Define));
        if (!m->defines)
                return -ENOMEM;
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i];
                Define *d = &m->defines[m->n_defines];
                bool ok = k->value[0] != 0 && !(k->value[0] >= '0' && k->value[0] <= '9');

                for (const char *p = k->value; *p; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                              *p == '_'))
                                ok = false;
                if (!ok) {
                        r = ctx_err(ctx, k, "invalid name '%s' (letters, digits and '_', not starting with a digit)",
                                    k->value);
                        continue;
                }
                d->name = strdup(k->value);
                if (!d->name)
                        return -ENOMEM;
                m->n_defines++;
                if (p_expr_into(ctx, n->items[i + 1], &d->expr, &d->mark) < 0)
                        r = -EINVAL;
        }
        return r;
}

static const Item metrics_items[] = {
        {"scrape", p_scrape, 0},
        {"define", p_defines, 0},
        {},
};

static int p_no_data_lookup(const char *s) {
        return no_data_policy_lookup(s);
}
static const EnumArg no_data_arg = {p_no_data_lookup, "fail, pass, inconclusive"};

/* min/max: a number or an expression (e.g. "baseline(accuracy) - 0.01"). */
static int p_bound(Ctx *ctx, const YNode *n, char **text, ConfigMark *mark) {
        return p_expr_into(ctx, n, text, mark);
}

static int p_checks(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        RolloutConfig *ro = dst;
        int r = 0;

        if (!n || n->type != YNODE_SEQUENCE)
                return ctx_err(ctx, n, "expected a list of checks for rollout.checks");
        if (n->n_items > 64)
                return ctx_err(ctx, n, "too many checks (limit 64)");
        ro->checks = calloc(n->n_items + 1, sizeof(RolloutCheck));
        if (!ro->checks)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_items; i++) {
                const YNode *c = n->items[i];
                RolloutCheck *ck = &ro->checks[ro->n_checks++];
                static const char *const keys[] = {"name", "expr", "min", "max", NULL};

                if (!c || c->type != YNODE_MAPPING) {
                        r = ctx_err(ctx, c, "expected a mapping {expr, min, max} for a check");
                        continue;
                }
                for (size_t j = 0; j + 1 < c->n_items; j += 2)
                        if (!strv_contains((char *const *) keys, c->items[j]->value))
                                r = ctx_err(ctx, c->items[j],
                                            "unknown key '%s' in a rollout check (expected one of: name, expr, min, max)",
                                            c->items[j]->value);
                if (ynode_get(c, "name") && p_name(ctx, ynode_get(c, "name"), &ck->name, NULL) < 0)
                        r = -EINVAL;
                if (!ynode_get(c, "expr"))
                        r = ctx_err(ctx, c, "missing required key 'expr' in a rollout check");
                else if (p_expr_into(ctx, ynode_get(c, "expr"), &ck->expr, &ck->expr_mark) < 0)
                        r = -EINVAL;
                if (ynode_get(c, "min") && p_bound(ctx, ynode_get(c, "min"), &ck->min, &ck->min_mark) < 0)
                        r = -EINVAL;
                if (ynode_get(c, "max") && p_bound(ctx, ynode_get(c, "max"), &ck->max, &ck->max_mark) < 0)
                        r = -EINVAL;
                if (!ck->name && ck->expr) {
                        if (asprintf(&ck->name, "check%zu", i + 1) < 0)
                                return -ENOMEM;
                }
        }
        return r;
}

static const Item rollout_items[] = {
        {"interval", p_duration, offsetof(RolloutConfig, interval), &range_interval},
        {"iterations", p_unsigned, offsetof(RolloutConfig, iterations), &range_iterations},
        {"threshold", p_unsigned, offsetof(RolloutConfig, threshold), &range_iterations},
        {"on_no_data", p_enum, offsetof(RolloutConfig, on_no_data), &no_data_arg},
        {"min_samples", p_unsigned, offsetof(RolloutConfig, min_samples), &range_samples},
        {"checks", p_checks, 0},
        {},
};

static int p_rollout(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        RolloutConfig **ret = dst;

        if (!*ret) {
                *ret = calloc(1, sizeof(RolloutConfig));
                if (!*ret)
                        return -ENOMEM;
                **ret = (RolloutConfig){
                        .interval = 60 * USEC_PER_SEC,
                        .iterations = 5,
                        .threshold = 1,
                        .on_no_data = NO_DATA_INCONCLUSIVE,
                        .min_samples = 1,
                };
        }
        if (parse_mapping(ctx, n, rollout_items, *ret, "rollout") < 0)
                return -EINVAL;
        if ((*ret)->n_checks == 0)
                return ctx_err(ctx, n, "rollout needs at least one check");
        return 0;
}

static int action_lookup_simple(const char *s) {
        int a = action_type_lookup(s);
        return a == ACTION_RECOMPRESS || a == ACTION_EXEC ? -EINVAL : a;
}

/* action: rollback | update | hold | log | {recompress: PROFILE} | {exec: [argv]} */
static int p_action(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        Action *a = dst;

        if (n && n->type == YNODE_MAPPING) {
                const YNode *k, *v;

                if (n->n_items != 2)
                        return ctx_err(ctx, n, "an action mapping has exactly one key: recompress or exec");
                k = n->items[0];
                v = n->items[1];
                if (streq(k->value, "recompress")) {
                        a->type = ACTION_RECOMPRESS;
                        return p_name(ctx, v, &a->profile, NULL);
                }
                if (streq(k->value, "exec")) {
                        a->type = ACTION_EXEC;
                        return p_argv(ctx, v, &a->argv, NULL);
                }
                return ctx_err(ctx, k, "unknown action '%s' (expected recompress or exec)", k->value);
        }
        if (expect_scalar(ctx, n, "an action") < 0)
                return -EINVAL;
        if (action_lookup_simple(n->value) < 0)
                return ctx_err(ctx, n,
                               "invalid action '%s' (expected rollback, update, hold, log, {recompress: PROFILE} or "
                               "{exec: [PROGRAM, ARGS…]})",
                               n->value);
        a->type = (ActionType) action_lookup_simple(n->value);
        return 0;
}

static int p_when(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        RuleConfig *rule = dst;
        return p_expr_into(ctx, n, &rule->when, &rule->when_mark);
}

static const Item rule_items[] = {
        {"name", p_name, offsetof(RuleConfig, name), NULL, true},
        {"when", p_when, 0, NULL, true},
        {"for", p_duration, offsetof(RuleConfig, for_), &range_rule_dur},
        {"keep_firing_for", p_duration, offsetof(RuleConfig, keep_firing_for), &range_rule_dur},
        {"cooldown", p_duration, offsetof(RuleConfig, cooldown), &range_rule_dur},
        {"action", p_action, offsetof(RuleConfig, action), NULL, true},
        {},
};

static int p_rules(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        ModelConfig *m = dst;
        int r = 0;

        if (!n || n->type != YNODE_SEQUENCE)
                return ctx_err(ctx, n, "expected a list of rules");
        if (n->n_items > 256)
                return ctx_err(ctx, n, "too many rules (limit 256)");
        m->rules = calloc(n->n_items + 1, sizeof(RuleConfig));
        if (!m->rules)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_items; i++) {
                RuleConfig *rule = &m->rules[m->n_rules++];

                size_t saved = strlen(ctx->section);
                int k;

                *rule = (RuleConfig){.cooldown = 10 * 60 * USEC_PER_SEC, .action.type = ACTION_LOG};
                snprintf(ctx->section + saved, sizeof(ctx->section) - saved, "[%zu]", i);
                k = parse_mapping(ctx, n->items[i], rule_items, rule, "a rule");
                ctx->section[saved] = 0;
                if (k < 0) {
                        r = -EINVAL;
                        continue;
                }
                for (size_t j = 0; j + 1 < m->n_rules; j++)
                        if (rule->name && m->rules[j].name && streq(m->rules[j].name, rule->name))
                                r = ctx_err(ctx, n->items[i], "duplicate rule name '%s'", rule->name);
        }
        return r;
}

static int method_lookup_int(const char *s) {
        return recompress_method_lookup(s);
}
static const EnumArg method_arg = {method_lookup_int, "fp16, bf16, int8, prune, exec"};

static const Item profile_items[] = {
        {"method", p_enum, offsetof(RecompressProfile, method), &method_arg, true},
        {"skip", p_strv, offsetof(RecompressProfile, skip)},
        {"sparsity", p_fraction, offsetof(RecompressProfile, sparsity), &range_sparsity},
        {"command", p_argv, offsetof(RecompressProfile, command)},
        {"timeout", p_duration, offsetof(RecompressProfile, timeout), &range_timeout},
        {"memory_max", p_size, offsetof(RecompressProfile, memory_max), &range_big_size},
        {},
};

static int p_profiles(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        ModelConfig *m = dst;
        int r = 0;

        if (!n || n->type != YNODE_MAPPING)
                return ctx_err(ctx, n, "expected a mapping of profile names to profiles");
        if (n->n_items / 2 > 64)
                return ctx_err(ctx, n, "too many profiles (limit 64)");
        m->profiles = calloc(n->n_items / 2 + 1, sizeof(RecompressProfile));
        if (!m->profiles)
                return -ENOMEM;
        for (size_t i = 0; i + 1 < n->n_items; i += 2) {
                const YNode *k = n->items[i], *v = n->items[i + 1];
                RecompressProfile *p = &m->profiles[m->n_profiles++];

                *p = (RecompressProfile){.method = _RECOMPRESS_METHOD_INVALID, .timeout = 3600 * USEC_PER_SEC,
                                         .sparsity = -1};
                if (p_name(ctx, k, &p->name, NULL) < 0 || strchr(p->name ?: "", '~')) {
                        r = -EINVAL;
                        continue;
                }
                {
                        size_t saved = strlen(ctx->section);
                        int q;

                        snprintf(ctx->section + saved, sizeof(ctx->section) - saved, ".%s", p->name);
                        q = parse_mapping(ctx, v, profile_items, p, "a recompress profile");
                        ctx->section[saved] = 0;
                        if (q < 0) {
                                r = -EINVAL;
                                continue;
                        }
                }
                if (p->method == METHOD_PRUNE && p->sparsity < 0)
                        r = ctx_err(ctx, v, "method prune needs 'sparsity' (e.g. 0.5 or 50%%)");
                if (p->method != METHOD_PRUNE && p->sparsity >= 0)
                        r = ctx_err(ctx, ynode_get(v, "sparsity"), "'sparsity' applies to method prune only");
                if (p->method == METHOD_EXEC && !p->command)
                        r = ctx_err(ctx, v, "method exec needs 'command' (a list: program first)");
                if (p->method != METHOD_EXEC && p->command)
                        r = ctx_err(ctx, ynode_get(v, "command"), "'command' applies to method exec only");
                if (p->method == METHOD_INT8 && !p->skip) {
                        /* Norms, embeddings and output heads are sensitive to quantisation and small;
                         * leave them in their original precision unless asked otherwise. */
                        static const char *const defaults[] = {"*norm*", "*embed*", "lm_head*", "*head.weight", NULL};
                        p->skip = strv_copy((char *const *) defaults);
                        if (!p->skip)
                                return -ENOMEM;
                }
        }
        return r;
}

static const Item recompress_items[] = {
        {"profiles", p_profiles, 0},
        {},
};

static int p_source(Ctx *ctx, const YNode *n, void *dst, const void *arg) {
        SourceConfig **ret = dst;
        SourceConfig *s;
        bool jitter_set = ynode_get(n, "jitter") != NULL;

        s = calloc(1, sizeof(SourceConfig));
        if (!s)
                return -ENOMEM;
        *s = (SourceConfig){
                .check_every = 15 * 60 * USEC_PER_SEC,
                .auto_activate = true,
                .connect_timeout = 30 * USEC_PER_SEC,
                .low_speed_limit = 1024,
                .low_speed_time = 60 * USEC_PER_SEC,
                .retries = 5,
                .retry_backoff = 1 * USEC_PER_SEC,
                .retry_backoff_max = 60 * USEC_PER_SEC,
                .max_release_size = 1 * MIB,
                .max_file_size = 64 * GIB,
                .max_total_size = 256 * GIB,
                .max_files = MODEL_FILES_MAX,
        };
        *ret = s;
        if (parse_mapping(ctx, n, source_items, s, "source") < 0)
                return -EINVAL;
        if (!jitter_set)
                s->jitter = s->check_every / 10;
        if (s->jitter > s->check_every)
                return ctx_err(ctx, ynode_get(n, "jitter"), "jitter is longer than check_every");
        if (s->retry_backoff > s->retry_backoff_max)
                return ctx_err(ctx, ynode_get(n, "retry_backoff"), "retry_backoff is longer than retry_backoff_max");
        if (!!s->tls.client_cert != !!s->tls.client_key)
                return ctx_err(ctx, ynode_get(n, "tls"), "tls: client_cert and client_key go together");
        return 0;
}

static const Item model_items[] = {
        {"model", p_name, offsetof(ModelConfig, name), NULL, true},
        {"source", p_source, offsetof(ModelConfig, source)},
        {"storage", p_section, offsetof(ModelConfig, storage), storage_items},
        {"serve", p_section, offsetof(ModelConfig, serve), serve_items},
        {"metrics", p_section, offsetof(ModelConfig, metrics), metrics_items},
        {"rollout", p_rollout, offsetof(ModelConfig, rollout)},
        {"rules", p_rules, 0},
        {"recompress", p_section, 0, recompress_items},
        {},
};

/* ---------------------------------------------------------------------------------------------
 * Loading
 */

static int ctx_init(Ctx *ctx, const char *path, ConfigErrors *errors) {
        *ctx = (Ctx){.file = path, .errors = errors};
        ctx->base_dir = path_dirname(path);
        return ctx->base_dir ? 0 : -ENOMEM;
}

static int parse_document(Ctx *ctx, const char *text, size_t size, YNode **ret) {
        YError yerr;
        int r;

        if (size > CONFIG_FILE_MAX) {
                config_errors_add(ctx->errors, ctx->file, 0, 0, "file too large (%zu bytes, limit %d)", size,
                                  CONFIG_FILE_MAX);
                return -EFBIG;
        }
        if (!utf8_is_valid(text, size)) {
                config_errors_add(ctx->errors, ctx->file, 0, 0, "not valid UTF-8");
                return -EINVAL;
        }
        r = yaml_tree_parse(text, size, ret, &yerr);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                config_errors_add(ctx->errors, ctx->file, yerr.line, yerr.column, "%s", yerr.message);
                return r;
        }
        return 0;
}

int config_load_main(const char *path, const char *text, size_t size, Config **ret, ConfigErrors *errors) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(ynode_freep) YNode *root = NULL;
        Ctx ctx;
        int r;

        r = ctx_init(&ctx, path, errors);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(Config));
        if (!c)
                goto oom;
        c->daemon = (DaemonConfig){
                .job_timeout = 6 * 3600 * USEC_PER_SEC,
                .watch_models = true,
                .scrub_every = 7 * 86400 * USEC_PER_SEC,
        };
        c->trust.threshold = 1;
        c->path = strdup(path);
        c->text = memdup_or_null(text, size);
        c->text_size = size;
        if (!c->path || !c->text)
                goto oom;

        r = parse_document(&ctx, text, size, &root);
        if (r < 0)
                goto out;
        if (root && root->type != YNODE_MAPPING) {
                r = ctx_err(&ctx, root, "expected a mapping at the top level, got %s", ynode_type_name(root));
                goto out;
        }
        r = parse_mapping(&ctx, root, main_items, c, "modelkeeper.yaml");
        if (r == -ENOMEM)
                goto oom;

        if (!c->daemon.state_directory && !(c->daemon.state_directory = strdup(DEFAULT_STATE_DIRECTORY)))
                goto oom;
        if (!c->daemon.runtime_directory && !(c->daemon.runtime_directory = strdup(DEFAULT_RUNTIME_DIRECTORY)))
                goto oom;
        if (!c->daemon.models_directory && !(c->daemon.models_directory = path_join(ctx.base_dir, "models.d")))
                goto oom;
        if (!c->daemon.agent_path && !(c->daemon.agent_path = strdup(AGENT_PATH)))
                goto oom;
        if (!c->encryption.identity_credential && !(c->encryption.identity_credential = strdup("modelkeeper-age")))
                goto oom;
        if (c->trust.threshold > strv_length(c->trust.keys) && c->trust.keys)
                ctx_err(&ctx, ynode_get(ynode_get(root, "trust"), "threshold"),
                        "threshold %u is larger than the number of trusted keys (%zu)", c->trust.threshold,
                        strv_length(c->trust.keys));

        r = ctx.n_errors > 0 ? -EINVAL : 0;
        if (r >= 0)
                *ret = TAKE_PTR(c);
        goto out;
oom:
        r = -ENOMEM;
out:
        free(ctx.base_dir);
        return r;
}

static int validate_expr(Ctx *ctx, const char *kind, const char *text, const ConfigMark *mark, const ModelConfig *m) {
        char msg[256] = "";
        size_t off = 0;

        if (!expr_validator || !text)
                return 0;
        if (expr_validator(kind, text, &off, msg, sizeof(msg), m) >= 0)
                return 0;
        /* Point at the offending column when the expression sits on one line of the file. */
        config_errors_add(ctx->errors, ctx->file, mark->line,
                          mark->exact ? mark->column + (unsigned) off : mark->column, "in %s: %s", kind, msg);
        ctx->n_errors++;
        return -EINVAL;
}

static char *file_stem(const char *path) {
        const char *b = strrchr(path, '/');
        const char *e;

        b = b ? b + 1 : path;
        e = endswith(b, ".yaml") ?: endswith(b, ".yml") ?: b + strlen(b);
        return strndup(b, (size_t) (e - b));
}

int model_config_load(const char *path, const char *text, size_t size, const Config *main, ModelConfig **ret,
                      ConfigErrors *errors) {
        _cleanup_(model_config_freep) ModelConfig *m = NULL;
        _cleanup_(ynode_freep) YNode *root = NULL;
        _cleanup_free_ char *stem = NULL;
        Ctx ctx;
        int r;

        r = ctx_init(&ctx, path, errors);
        if (r < 0)
                return r;

        m = calloc(1, sizeof(ModelConfig));
        if (!m)
                goto oom;
        m->storage = (StorageConfig){
                .keep_versions = 3,
                .min_free = 512 * MIB,
                .max_version_size = 256 * GIB,
                .max_files = MODEL_FILES_MAX,
        };
        m->serve = (ServeConfig){
                .reload = RELOAD_NONE,
                .unit_action = UNIT_RESTART,
                .reload_timeout = 90 * USEC_PER_SEC,
                .ready_timeout = 120 * USEC_PER_SEC,
                .ready_interval = 1 * USEC_PER_SEC,
        };
        m->path = strdup(path);
        m->text = memdup_or_null(text, size);
        m->text_size = size;
        if (!m->path || !m->text)
                goto oom;

        r = parse_document(&ctx, text, size, &root);
        if (r < 0)
                goto out;
        if (!root || root->type != YNODE_MAPPING) {
                r = ctx_err(&ctx, root, "expected a mapping at the top level, got %s", ynode_type_name(root));
                goto out;
        }
        r = parse_mapping(&ctx, root, model_items, m, "a model file");
        if (r == -ENOMEM)
                goto oom;

        stem = file_stem(path);
        if (!stem)
                goto oom;
        if (m->name && !streq(m->name, stem))
                ctx_err(&ctx, ynode_get(root, "model"), "model '%s' must be defined in a file named %s.yaml", m->name,
                        stem);
        if (!m->serve.http_method && m->serve.http_url && !(m->serve.http_method = strdup("POST")))
                goto oom;
        if (m->storage.encrypt && main && !main->encryption.recipient)
                ctx_err(&ctx, ynode_get(ynode_get(root, "storage"), "encrypt"),
                        "storage.encrypt needs encryption.recipient in %s", main->path);
        if (m->source && main && !main->trust.keys)
                ctx_err(&ctx, ynode_get(root, "source"), "a source needs trust.keys in %s", main->path);

        /* Rules may only name profiles that exist. */
        for (size_t i = 0; i < m->n_rules; i++)
                if (m->rules[i].action.type == ACTION_RECOMPRESS && m->rules[i].action.profile &&
                    !model_config_find_profile(m, m->rules[i].action.profile))
                        ctx_err(&ctx, ynode_get(ynode_get(root, "rules")->items[i], "action"),
                                "rule '%s' names the unknown recompress profile '%s'", strna(m->rules[i].name),
                                m->rules[i].action.profile);

        /* Expressions, once every definition is known. */
        if (ctx.n_errors == 0) {
                for (size_t i = 0; i < m->metrics.n_defines; i++)
                        validate_expr(&ctx, "define", m->metrics.defines[i].expr, &m->metrics.defines[i].mark, m);
                for (size_t i = 0; i < m->n_rules; i++)
                        validate_expr(&ctx, "when", m->rules[i].when, &m->rules[i].when_mark, m);
                for (size_t i = 0; m->rollout && i < m->rollout->n_checks; i++) {
                        RolloutCheck *ck = &m->rollout->checks[i];
                        validate_expr(&ctx, ck->min || ck->max ? "check" : "condition", ck->expr, &ck->expr_mark, m);
                        validate_expr(&ctx, "min", ck->min, &ck->min_mark, m);
                        validate_expr(&ctx, "max", ck->max, &ck->max_mark, m);
                }
        }

        r = ctx.n_errors > 0 ? -EINVAL : 0;
        if (r >= 0)
                *ret = TAKE_PTR(m);
        goto out;
oom:
        r = -ENOMEM;
out:
        free(ctx.base_dir);
        return r;
}

int config_read_file(const char *path, char **ret, size_t *ret_size) {
        return read_full_file(path, CONFIG_FILE_MAX, ret, ret_size);
}

static int cmp_model(const void *a, const void *b) {
        const ModelConfig *const *x = a, *const *y = b;
        return strcmp((*x)->name, (*y)->name);
}

const ModelConfig *config_find_model(const Config *c, const char *name) {
        for (size_t i = 0; c && i < c->n_models; i++)
                if (streq(c->models[i]->name, name))
                        return c->models[i];
        return NULL;
}

int config_put_model(Config *c, ModelConfig *m) {
        ModelConfig **a;

        for (size_t i = 0; i < c->n_models; i++)
                if (streq(c->models[i]->name, m->name)) {
                        model_config_free(c->models[i]);
                        c->models[i] = m;
                        return 0;
                }
        a = reallocarray(c->models, c->n_models + 1, sizeof(ModelConfig *));
        if (!a) {
                model_config_free(m);
                return -ENOMEM;
        }
        c->models = a;
        c->models[c->n_models++] = m;
        qsort(c->models, c->n_models, sizeof(ModelConfig *), cmp_model);
        return 0;
}

ModelConfig *config_take_model(Config *c, const char *name) {
        for (size_t i = 0; i < c->n_models; i++)
                if (streq(c->models[i]->name, name)) {
                        ModelConfig *m = c->models[i];
                        memmove(c->models + i, c->models + i + 1, (c->n_models - i - 1) * sizeof(ModelConfig *));
                        c->n_models--;
                        return m;
                }
        return NULL;
}

const RecompressProfile *model_config_find_profile(const ModelConfig *m, const char *name) {
        for (size_t i = 0; m && i < m->n_profiles; i++)
                if (m->profiles[i].name && streq(m->profiles[i].name, name))
                        return &m->profiles[i];
        return NULL;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int config_load(const char *path, Config **ret, ConfigErrors *errors, char ***ret_refused) {
        _cleanup_(config_freep) Config *c = NULL;
        _cleanup_(strv_freep) char **files = NULL, **refused = NULL;
        _cleanup_free_ char *text = NULL;
        DIR *d;
        size_t size;
        int r;

        r = config_read_file(path, &text, &size);
        if (r < 0) {
                config_errors_add(errors, path, 0, 0, "cannot read: %s", strerror(-r));
                return r;
        }
        r = config_load_main(path, text, size, &c, errors);
        if (r < 0)
                return r;

        d = opendir(c->daemon.models_directory);
        if (!d) {
                if (errno != ENOENT) {
                        config_errors_add(errors, c->daemon.models_directory, 0, 0, "cannot read directory: %m");
                        return -errno;
                }
        } else {
                struct dirent *de;

                while ((de = readdir(d))) {
                        if (de->d_name[0] == '.' || !(endswith(de->d_name, ".yaml") || endswith(de->d_name, ".yml")))
                                continue;
                        if (strv_length(files) >= 10000)
                                break;
                        r = strv_consume(&files, path_join(c->daemon.models_directory, de->d_name));
                        if (r < 0) {
                                closedir(d);
                                return r;
                        }
                }
                closedir(d);
        }
        if (files)
                qsort(files, strv_length(files), sizeof(char *), cmp_str);

        STRV_FOREACH(f, files) {
                _cleanup_free_ char *t = NULL;
                ModelConfig *m = NULL;
                size_t n;

                r = config_read_file(*f, &t, &n);
                if (r < 0)
                        config_errors_add(errors, *f, 0, 0, "cannot read: %s", strerror(-r));
                else
                        r = model_config_load(*f, t, n, c, &m, errors);
                if (r == -ENOMEM)
                        return r;
                if (r >= 0 && config_find_model(c, m->name)) {
                        config_errors_add(errors, *f, 0, 0, "model '%s' is defined twice", m->name);
                        model_config_free(m);
                        r = -EEXIST;
                }
                if (r < 0) {
                        if (strv_extend(&refused, *f) < 0)
                                return -ENOMEM;
                        continue;
                }
                r = config_put_model(c, m);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        if (ret_refused)
                *ret_refused = TAKE_PTR(refused);
        return 0;
}

int config_override_directories(Config *c, const char *state, const char *runtime) {
        /* systemd's StateDirectory=/RuntimeDirectory= win over the options and the file: they are
         * what the sandbox lets us write, so anything else would fail later and less clearly. A
         * colon-separated list means several were configured; ours is the first. */
        const char *e;

        e = getenv("STATE_DIRECTORY");
        if (e && *e)
                state = e;
        e = getenv("RUNTIME_DIRECTORY");
        if (e && *e)
                runtime = e;

        if (state) {
                char *s = strndup(state, strcspn(state, ":"));
                if (!s)
                        return -ENOMEM;
                free(c->daemon.state_directory);
                c->daemon.state_directory = s;
        }
        if (runtime) {
                char *s = strndup(runtime, strcspn(runtime, ":"));
                if (!s)
                        return -ENOMEM;
                free(c->daemon.runtime_directory);
                c->daemon.runtime_directory = s;
        }
        return 0;
}
