/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The configuration: modelkeeper.yaml (the daemon, trust, encryption, limits) and one
 * models.d/<model>.yaml per model. This file and config.c are the one place where the schema
 * lives; modelkeeper.yaml(5) documents every key with its type, default and range.
 *
 * Loading is strict: unknown keys, wrong node types, out-of-range values and duplicate keys are
 * errors "file:line:col: message". All errors of a file are collected, not only the first.
 */

#include "macros.h"
#include "strv.h"

typedef struct ConfigErrors {
        char **lines; /* "file:line:col: message" */
        size_t n;
} ConfigErrors;

void config_errors_done(ConfigErrors *e);
/* Append "file:line:col: message". */
void config_errors_add(ConfigErrors *e, const char *file, unsigned line, unsigned column, const char *fmt, ...)
        _printf_(5, 6);

/* Where a string came from, for errors found later (e.g. an expression parsed by policies/). */
typedef struct ConfigMark {
        unsigned line, column;
        bool exact; /* column + byte offset into the string is the true column */
} ConfigMark;

typedef struct TlsOptions {
        char *ca_file;        /* PEM bundle; default: the system's */
        char *pinned_pubkey;  /* "sha256//<base64>" (curl's CURLOPT_PINNEDPUBLICKEY) */
        char *client_cert;
        char *client_key;
} TlsOptions;

typedef struct SourceConfig {
        char *url;            /* https://… or file:///… base of the repository (DESIGN.md §4.1) */
        char *channel;
        uint64_t check_every; /* usec */
        uint64_t jitter;      /* usec, random delay added to each check */
        bool auto_activate;   /* activate a verified release without an operator */
        TlsOptions tls;
        uint64_t connect_timeout;
        uint64_t low_speed_limit; /* bytes/s */
        uint64_t low_speed_time;  /* usec */
        unsigned retries;
        uint64_t retry_backoff;     /* usec, first retry waits up to this (full jitter), doubling */
        uint64_t retry_backoff_max; /* usec */
        uint64_t max_release_size;
        uint64_t max_file_size;
        uint64_t max_total_size;
        unsigned max_files;
} SourceConfig;

typedef struct StorageConfig {
        bool encrypt;
        unsigned keep_versions;
        uint64_t min_free;
        bool keep_previous_plain;
        char *group;          /* the model server's group: may read what serve/<model> shows (store
                               * files, or the plaintext in /run/modelkeeper/plain) */
        uint64_t max_version_size;
        unsigned max_files;
} StorageConfig;

typedef enum ReloadKind {
        RELOAD_NONE,
        RELOAD_SYSTEMD,
        RELOAD_HTTP,
        RELOAD_EXEC,
        _RELOAD_KIND_MAX,
        _RELOAD_KIND_INVALID = -EINVAL,
} ReloadKind;

typedef enum UnitAction {
        UNIT_RESTART,
        UNIT_RELOAD,
        UNIT_TRY_RESTART,
        UNIT_RELOAD_OR_RESTART,
        _UNIT_ACTION_MAX,
        _UNIT_ACTION_INVALID = -EINVAL,
} UnitAction;

typedef struct ServeConfig {
        ReloadKind reload;
        char *unit;           /* RELOAD_SYSTEMD */
        UnitAction unit_action;
        char *http_url;       /* RELOAD_HTTP */
        char *http_method;
        char *http_body;
        char **exec;          /* RELOAD_EXEC: argv, no shell */
        uint64_t reload_timeout;
        char *ready_url;      /* NULL: ready when the reload step succeeded */
        uint64_t ready_timeout;
        uint64_t ready_interval;
        TlsOptions tls;
} ServeConfig;

typedef struct ScrapeTarget {
        char *url;            /* http(s)://…/metrics or file:///…prom */
        uint64_t every;
        uint64_t timeout;
        TlsOptions tls;
        uint64_t max_body;
        unsigned max_series;
} ScrapeTarget;

typedef struct Define {
        char *name;
        char *expr;
        ConfigMark mark;
} Define;

typedef struct MetricsConfig {
        ScrapeTarget *targets;
        size_t n_targets;
        Define *defines;
        size_t n_defines;
} MetricsConfig;

typedef enum ActionType {
        ACTION_ROLLBACK,
        ACTION_RECOMPRESS,
        ACTION_UPDATE,
        ACTION_HOLD,
        ACTION_EXEC,
        ACTION_LOG,           /* only log the state change */
        _ACTION_TYPE_MAX,
        _ACTION_TYPE_INVALID = -EINVAL,
} ActionType;

typedef struct Action {
        ActionType type;
        char *profile;        /* ACTION_RECOMPRESS */
        char **argv;          /* ACTION_EXEC */
} Action;

typedef struct RuleConfig {
        char *name;
        char *when;
        ConfigMark when_mark;
        uint64_t for_;
        uint64_t keep_firing_for;
        uint64_t cooldown;
        Action action;
} RuleConfig;

typedef enum NoDataPolicy {
        NO_DATA_FAIL,
        NO_DATA_PASS,
        NO_DATA_INCONCLUSIVE,
        _NO_DATA_POLICY_MAX,
        _NO_DATA_POLICY_INVALID = -EINVAL,
} NoDataPolicy;

typedef struct RolloutCheck {
        char *name;
        char *expr;           /* a value expression with min/max, or a condition without them */
        ConfigMark expr_mark;
        char *min, *max;      /* expressions, may be NULL */
        ConfigMark min_mark, max_mark;
} RolloutCheck;

typedef struct RolloutConfig {
        uint64_t interval;
        unsigned iterations;
        unsigned threshold;
        NoDataPolicy on_no_data;
        unsigned min_samples;
        RolloutCheck *checks;
        size_t n_checks;
} RolloutConfig;

typedef enum RecompressMethod {
        METHOD_FP16,
        METHOD_BF16,
        METHOD_INT8,
        METHOD_PRUNE,
        METHOD_EXEC,
        _RECOMPRESS_METHOD_MAX,
        _RECOMPRESS_METHOD_INVALID = -EINVAL,
} RecompressMethod;

typedef struct RecompressProfile {
        char *name;
        RecompressMethod method;
        char **skip;          /* fnmatch globs of tensor names left as they are */
        double sparsity;      /* METHOD_PRUNE, 0..1 */
        char **command;       /* METHOD_EXEC argv; {input} and {output} are substituted */
        uint64_t timeout;
        uint64_t memory_max;
} RecompressProfile;

typedef struct ModelConfig {
        char *name;
        char *path;           /* the file it came from */
        char *text;           /* its bytes, to notice changes and to hand to the agent */
        size_t text_size;
        SourceConfig *source; /* NULL: no remote source (import only) */
        StorageConfig storage;
        ServeConfig serve;
        MetricsConfig metrics;
        RolloutConfig *rollout; /* NULL: activations are promoted at once */
        RuleConfig *rules;
        size_t n_rules;
        RecompressProfile *profiles;
        size_t n_profiles;
} ModelConfig;

typedef struct TrustConfig {
        char **keys;          /* PEM SubjectPublicKeyInfo files */
        unsigned threshold;
} TrustConfig;

typedef struct EncryptionConfig {
        char *recipient;      /* age1… */
        char *identity_credential; /* name in $CREDENTIALS_DIRECTORY */
        char *identity_file;  /* root-only file, used when no credential is set */
} EncryptionConfig;

typedef struct DaemonConfig {
        char *state_directory;
        char *runtime_directory;
        char *models_directory;
        unsigned max_jobs;     /* 0: number of CPUs */
        uint64_t job_timeout;
        char *admin_group;
        char *socket_group;
        char *metrics_textfile;
        char *agent_path;
        char *agent_user;
        bool watch_models;
        uint64_t scrub_every;   /* usec; 0: no scheduled scrub */
        uint64_t watchdog_min;  /* not a key: filled in from $WATCHDOG_USEC by the daemon */
} DaemonConfig;

typedef struct Config {
        char *path;
        char *text;
        size_t text_size;
        DaemonConfig daemon;
        TrustConfig trust;
        EncryptionConfig encryption;
        ModelConfig **models;  /* sorted by name */
        size_t n_models;
} Config;

#define CONFIG_FILE_MAX      (1024 * 1024)
#define MODEL_NAME_MAX       64
#define MODEL_FILES_MAX      1024

/* Optional validator for expressions (policies/ installs one): returns the byte offset of the
 * error in *ret_offset and a message, or 0. Kept as a hook so config/ does not depend on the
 * policy language. */
typedef int (*ConfigExprValidator)(const char *kind, const char *text, size_t *ret_offset, char *msg,
                                   size_t msg_size, const ModelConfig *m);
void config_set_expr_validator(ConfigExprValidator v);

Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);
ModelConfig *model_config_free(ModelConfig *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(ModelConfig *, model_config_free);

/* Load modelkeeper.yaml only (no models). */
int config_load_main(const char *path, const char *text, size_t size, Config **ret, ConfigErrors *errors);
/* Load one model file from its bytes; path is used for errors and the name check. */
int model_config_load(const char *path, const char *text, size_t size, const Config *main, ModelConfig **ret,
                      ConfigErrors *errors);
/* Read the main file and every models.d/NAME.yaml. A broken model file is reported in errors and
 * left out (its name in *ret_refused); a broken main file fails the whole load. */
int config_load(const char *path, Config **ret, ConfigErrors *errors, char ***ret_refused);
int config_read_file(const char *path, char **ret, size_t *ret_size);
/* What the configuration points at outside its text: trust keys that must parse, TLS files and
 * programs that must exist. Appends "file: key: message" lines; returns how many. */
size_t config_check_references(const Config *c, ConfigErrors *e);

const ModelConfig *config_find_model(const Config *c, const char *name) _pure_;
/* Insert or replace (by name) a model; takes ownership. Keeps models sorted. */
int config_put_model(Config *c, ModelConfig *m);
ModelConfig *config_take_model(Config *c, const char *name);

/* Apply $STATE_DIRECTORY / $RUNTIME_DIRECTORY (systemd's) and command-line overrides. */
int config_override_directories(Config *c, const char *state, const char *runtime);

const RecompressProfile *model_config_find_profile(const ModelConfig *m, const char *name) _pure_;

const char *reload_kind_to_string(ReloadKind k) _const_;
const char *unit_action_to_string(UnitAction a) _const_;
const char *action_type_to_string(ActionType t) _const_;
const char *no_data_policy_to_string(NoDataPolicy p) _const_;
const char *recompress_method_to_string(RecompressMethod m) _const_;
RecompressMethod recompress_method_from_string(const char *s) _pure_;
