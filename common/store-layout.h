/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The on-disk layout of a model's store (DESIGN.md §3), shared by the agent (which writes it) and
 * the daemon (which reads what the agent wrote about itself: meta.json and the links — never the
 * weights or a downloaded document):
 *
 *   $STATE/models/<model>/versions/<id>/{files/,meta.json,release.json}
 *   $STATE/models/<model>/{current,previous}  -> versions/<id>   (relative symlinks)
 *   $STATE/models/<model>/state.json          decisions (written by the daemon only)
 *   $STATE/models/<model>/staging/<job>/      work in progress, never activated
 *   $RUNTIME/plain/<model>/<id>/              plaintext of a sealed version (tmpfs)
 *   $RUNTIME/serve/<model>                    -> what the model server loads
 *
 * Version ids: "<version>" for a release (a decimal integer, no leading zeros) and
 * "<version>~<profile>" for a version derived by re-compression.
 */

#include <jansson.h>

#include "hash.h"
#include "macros.h"

#define VERSION_ID_MAX   64
/* A sealed file is stored as "<name>.age" (DESIGN.md §3): `age -d` recovers it by name. */
#define SEALED_SUFFIX    ".age"
#define META_JSON_MAX    (4 * 1024 * 1024)

bool version_id_is_valid(const char *id) _pure_;
bool version_id_is_derived(const char *id) _pure_;
/* The release number of an id ("42~int8" → 42). */
uint64_t version_id_release(const char *id) _pure_;
/* Order: by release number, the release before its derived versions, derived ones by name. */
int version_id_compare(const char *a, const char *b) _pure_;

typedef struct VersionFile {
        char *name;
        uint64_t size;           /* plaintext bytes */
        uint64_t stored_size;    /* bytes on disk (sealed files are larger) */
        uint8_t sha256[SHA256_DIGEST_SIZE]; /* of the plaintext */
} VersionFile;

typedef struct VersionMeta {
        char *model;
        char *id;
        char *origin;            /* "release", "import" or "derived" */
        char *parent;            /* derived: the release it was made from */
        char *profile;           /* derived: the profile */
        char *channel;           /* release: the channel it came from */
        char *label;             /* release: the human label */
        bool sealed;
        uint64_t installed;      /* realtime usec */
        uint64_t total_size;     /* plaintext bytes */
        VersionFile *files;
        size_t n_files;
        json_t *extra;           /* anything else (statistics, tool versions), kept as is */
} VersionMeta;

VersionMeta *version_meta_free(VersionMeta *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(VersionMeta *, version_meta_free);
/* Strict: -EBADMSG with no partial output on anything malformed. */
int version_meta_parse(const char *text, size_t size, VersionMeta **ret);
json_t *version_meta_to_json(const VersionMeta *m);
/* Read versions/<id>/meta.json below a model directory fd. */
int version_meta_load(int model_dirfd, const char *id, VersionMeta **ret);
const VersionFile *version_meta_find_file(const VersionMeta *m, const char *name) _pure_;

/* Read a "current"/"previous" link: the id it points at ("versions/<id>"), or -ENOENT. */
int store_read_link(int model_dirfd, const char *name, char **ret_id);

/* RFC 3339 UTC with seconds, e.g. 2026-11-28T10:00:00Z. */
#define TIMESTAMP_MAX 32
char *format_timestamp(char buf[static TIMESTAMP_MAX], uint64_t realtime_usec);
int parse_timestamp(const char *s, uint64_t *ret_usec);
uint64_t now_realtime_usec(void);
