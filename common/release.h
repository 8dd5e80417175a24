/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Release documents (DESIGN.md §4.2; the exact format is in common/RELEASE-FORMAT.md): a DSSE
 * envelope (dsse.h) whose payload is an in-toto Statement v1 with predicateType
 * RELEASE_PREDICATE_TYPE.
 *
 * Verification, release_check(), is the one entry point the agent calls before it keeps a
 * single byte of weights. It applies every check of RELEASE-FORMAT.md §6 in order and either
 * returns a verdict (>= 0) with the parsed release, or refuses with a negative errno and one
 * REASON line naming the check that failed (and keyids where signatures are involved; after the
 * signatures verified, the keys that signed are handed out for the caller's REASON):
 *
 *   -EFBIG            document larger than its cap; files over a count or size limit
 *   -EBADMSG          malformed envelope or statement (JSON, base64, fields, names, URLs, digests)
 *   -EKEYREJECTED     signatures: unsigned, threshold not met, a trusted keyid with a bad signature
 *   -EPROTONOSUPPORT  payloadType, statement _type or predicateType is not ours
 *   -EXDEV            model or channel is not the one this host follows (mix-and-match)
 *   -ETIME            created too far in the future (beyond the allowed clock skew)
 *   -ESTALE           expired (freeze attack)
 *   -EPERM            a file URL points outside the repository and that is not allowed
 *   -ERANGE           version lower than the highest accepted (downgrade / rollback attack)
 *   -EEXIST           same version as the highest accepted, but different files
 *
 * release_parse_statement() is pure (no I/O, no logging) and fuzzed. Publishing functions
 * (release_create() and friends, release-publish.c) do file I/O and are for modelkeeperctl.
 */

#include <stdio.h>

#include "dsse.h"
#include "hash.h"
#include "keys.h"
#include "macros.h"

#define RELEASE_PAYLOAD_TYPE   "application/vnd.in-toto+json"
#define RELEASE_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define RELEASE_PREDICATE_TYPE "https://modelkeeper.dev/release/v1"

#define RELEASE_NAME_MAX          64 /* model and channel (name_is_valid()), as MODEL_NAME_MAX */
#define RELEASE_LABEL_MAX         128
#define RELEASE_URL_MAX           2048
#define RELEASE_FILES_HARD_MAX    4096       /* parser bound, before the host's own max_files */
#define RELEASE_DOCUMENT_HARD_MAX (16 * MIB) /* parser bound for tools (sign, verify) */
#define RELEASE_BLOB_PREFIX       "blobs/sha256/"
#define RELEASE_TIMESTAMP_MAX     32 /* "YYYY-MM-DDTHH:MM:SSZ" and NUL, with room */

typedef struct ReleaseFile {
        char *name;
        uint64_t size;
        uint8_t sha256[SHA256_DIGEST_SIZE];
        char sha256_hex[SHA256_HEX_SIZE];
        char *url; /* as written: "blobs/sha256/<hex>" (relative to the repository base) or https://… */
        bool external; /* url is an absolute https:// URL */
} ReleaseFile;

typedef struct Release {
        char *model;
        char *channel;
        uint64_t version;
        char *label;      /* "" when absent */
        uint64_t created; /* µs since the epoch (UTC) */
        uint64_t expires;
        ReleaseFile *files; /* in document order */
        size_t n_files;
        uint64_t total_size;
        unsigned rollout_percent; /* 100 when "rollout" is absent */
        /* SHA-256 over the sorted (name, size, sha256) list (RELEASE-FORMAT.md §5): what
         * "the same content" means for the same version. Persist it with the high-water mark. */
        char content_id[SHA256_HEX_SIZE];
} Release;

Release *release_free(Release *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Release *, release_free);

/* Parse and validate the payload (an in-toto Statement) on its own: schema, types, names,
 * digests, URLs, the subject ↔ files correspondence. Host policy (limits, time, versions) is
 * release_check_statement()'s. Errors: -EPROTONOSUPPORT (_type or predicateType), -EBADMSG. */
int release_parse_statement(const void *payload, size_t size, Release **ret, char **ret_reason);

/* Host limits; the defaults equal the configuration defaults of a model file's "source:" section. */
typedef struct ReleaseLimits {
        size_t max_document_size; /* bytes of the envelope as downloaded */
        uint64_t max_file_size;
        uint64_t max_total_size;
        size_t max_files;
        uint64_t max_clock_skew;  /* µs "created" may lie in the future of "now" */
        bool allow_external_urls; /* accept https:// file URLs on other hosts */
} ReleaseLimits;

#define RELEASE_CLOCK_SKEW_DEFAULT (3600 * USEC_PER_SEC)
#define RELEASE_LIMITS_DEFAULT                                \
        ((ReleaseLimits){                                     \
                .max_document_size = 1 * MIB,                 \
                .max_file_size = 64 * GIB,                    \
                .max_total_size = 256 * GIB,                  \
                .max_files = 1024,                            \
                .max_clock_skew = RELEASE_CLOCK_SKEW_DEFAULT, \
                .allow_external_urls = false,                 \
        })

/* What this host expects. */
typedef struct ReleaseExpect {
        const char *model;              /* NULL: not checked (only for `release verify`) */
        const char *channel;            /* NULL: not checked (only for `release verify`) */
        uint64_t high_water;            /* highest version ever accepted on this channel; 0: none */
        const char *high_water_content; /* content_id of that version; NULL: unknown */
        uint64_t now;                   /* µs, CLOCK_REALTIME */
        /* 32 lowercase hex (/etc/machine-id). NULL: this host's machine id is unknown, so it cannot
         * be placed in a partial rollout: a release with rollout.percent < 100 is not selected
         * (taking every release instead would make a phased rollout reach hosts it was not meant
         * for). */
        const char *machine_id;
        bool ignore_rollout;            /* no rollout decision at all (only for `release verify`) */
        ReleaseLimits limits;
} ReleaseExpect;

typedef enum ReleaseVerdict {
        RELEASE_VERDICT_NEW,          /* newer than the high-water mark and selected: take it */
        RELEASE_VERDICT_CURRENT,      /* the version and content already accepted: nothing to do */
        RELEASE_VERDICT_NOT_SELECTED, /* valid and new, but outside rollout.percent for this host (yet) */
        _RELEASE_VERDICT_MAX,
        _RELEASE_VERDICT_INVALID = -EINVAL,
} ReleaseVerdict;

const char *release_verdict_to_string(ReleaseVerdict v) _const_; /* "new", "current", "not-selected" */
ReleaseVerdict release_verdict_from_string(const char *s) _pure_;

/* The policy checks of RELEASE-FORMAT.md §6 steps 6–11 on a parsed release. */
int release_check_statement(const Release *r, const ReleaseExpect *e, char **ret_reason);

/*
 * The whole verification of a downloaded release document (RELEASE-FORMAT.md §6): size cap,
 * envelope, signatures against trust (threshold of distinct trusted keys), payloadType,
 * statement, then release_check_statement(). Returns a ReleaseVerdict (>= 0) and then, and only
 * then, writes ret_release (optional). On refusal: a negative errno from the table above and
 * *ret_reason.
 *
 * ret_keyids (optional; the trusted keys whose signatures verified) and ret_version (optional;
 * predicate.version) are diagnostics for the journal, not a verdict: each is written as soon as
 * its check has passed, on a later refusal too, so that a refusal can name the keys that signed
 * what was refused and its version. Neither hands out anything a caller could install. On a
 * refusal at or before the signature check both are left untouched.
 */
int release_check(const void *document, size_t size, const TrustSet *trust, const ReleaseExpect *e,
                  Release **ret_release, char ***ret_keyids, uint64_t *ret_version, char **ret_reason);

/* Phased rollouts (RELEASE-FORMAT.md §7): the bucket 0..99 of this host for this release is
 * the first 8 bytes, big-endian, of SHA-256(machine_id "\0" model "\0" decimal(version)),
 * modulo 100. The host takes the release when bucket < percent. Returns the bucket or -EINVAL
 * (machine_id not 32 lowercase hex characters). */
int release_rollout_bucket(const char *machine_id, const char *model, uint64_t version);

/* content_id of a file list (RELEASE-FORMAT.md §5). */
int release_content_id(const ReleaseFile *files, size_t n_files, char ret[static SHA256_HEX_SIZE]);

/* RFC 3339 timestamps as used in documents: "YYYY-MM-DDTHH:MM:SS[.fraction]Z", UTC only, years
 * 1970–9999, no leap seconds; µs since the epoch. */
int release_parse_timestamp(const char *s, uint64_t *ret);
/* Whole seconds: "YYYY-MM-DDTHH:MM:SSZ". */
char *release_format_timestamp(char buf[static RELEASE_TIMESTAMP_MAX], uint64_t usec);

/* ---- publishing (release-publish.c; file I/O) ----------------------------------------------- */

typedef struct ReleaseCreateParams {
        const char *model;
        const char *channel;
        uint64_t version;
        const char *label;        /* NULL or "": omitted */
        uint64_t created;         /* µs; 0: now */
        uint64_t expires;         /* µs, absolute */
        unsigned rollout_percent; /* 0..100 */
        const char *input_dir;    /* regular files only: no symlinks, no subdirectories, no hidden files */
        const char *repo_dir;     /* blobs go to REPO/blobs/sha256/<hex> */
        bool write_document;      /* also write REPO/models/<model>/<channel>.json (unsigned) */
} ReleaseCreateParams;

/* Hash every file of input_dir, copy each to REPO/blobs/sha256/<hex> (temporary file, fsync,
 * rename, fsync directory; skipped when present with that content, replaced when present but
 * corrupt), and build the unsigned envelope (files sorted by name). ret_document (optional)
 * gets its bytes. */
int release_create(const ReleaseCreateParams *p, char **ret_document, size_t *ret_size, char **ret_reason);

/* Add one signature by key (with a private part). The document must be a release document that
 * parses; signing twice with the same key is refused (-EEXIST). */
int release_sign(const void *document, size_t size, const Key *key, char **ret, size_t *ret_size,
                 char **ret_reason);
/* The same, in place: read (capped), sign, replace atomically. */
int release_sign_file(const char *path, const Key *key, char **ret_reason);

/* For `modelkeeperctl release verify --trust … RELEASE`: run the checks of release_check() and
 * print to out what was checked and with which result, one line each; returns what
 * release_check() returns. */
int release_verify_report(const void *document, size_t size, const TrustSet *trust, const ReleaseExpect *e,
                          FILE *out, char **ret_reason);
