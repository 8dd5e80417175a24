/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * A model's versioned store (DESIGN.md §3), as the agent manipulates it. Every change is made of
 * steps that leave the store valid if the process dies between any two of them:
 *
 *   import/commit  files are written and fsync'd under staging/, meta.json last, then the whole
 *                  directory is renamed into versions/<id> and versions/ fsync'd — a version
 *                  exists completely or not at all;
 *   activate       previous, current and serve/<model> are each replaced by symlink-to-temporary
 *                  + renameat + fsync of the directory — each link always points somewhere valid;
 *                  the daemon records the decision (from, to) in state.json first, so after a
 *                  crash it re-runs the same, idempotent activation;
 *   gc             never removes the current, previous or a protected version; a directory is
 *                  first renamed out of versions/ (atomic), then deleted.
 *
 * Nothing installed is ever overwritten or truncated in place: a model server may have it mmap'd.
 */

#include <jansson.h>

#include "install.h"
#include "macros.h"
#include "store-layout.h"

typedef struct Store {
        char *model;
        char *path;              /* $STATE/models/<model> */
        char *runtime;           /* $RUNTIME */
        int dirfd;
        int versions_fd;
        int staging_fd;
        int serve_fd;            /* $RUNTIME/serve */
        int plain_fd;            /* $RUNTIME/plain/<model> */
        gid_t gid;               /* storage.group, or (gid_t) -1 */
} Store;

typedef struct StoreLimits {
        uint64_t max_version_size;
        uint64_t max_file_size;
        unsigned max_files;
        uint64_t min_free;
} StoreLimits;

typedef void (*StoreProgressFn)(void *userdata, const char *phase, uint64_t done, uint64_t total);

int store_open(const char *state_directory, const char *runtime_directory, const char *model, Store **ret);
/* Give the model server's group read access to what it serves (storage.group): the model's
 * directories become traversable by it and every installed file readable. The agent's user must
 * be a member of the group (chgrp needs no privilege then). */
int store_set_group(Store *s, const char *group, char *reason, size_t reason_size);
/* Make dirfd/name (a file or a directory tree) readable for the store's group, if any. */
int store_share_at(Store *s, int dirfd, const char *name);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

/* Free bytes of the store's file system (test builds honour $MODELKEEPER_TEST_FREE_BYTES). */
int store_free_space(Store *s, uint64_t *ret);
/* -ENOSPC with a reason when need + reserve bytes are not free. */
int store_check_space(Store *s, uint64_t need, uint64_t reserve, char *reason, size_t reason_size);

/* Before writing need bytes of plaintext under $RUNTIME/plain (what: "version 3", for the reason):
 * with memory_only, -EMEDIUMTYPE unless that is a tmpfs or ramfs (plaintext of sealed weights
 * never touches a disk); -ENOSPC unless need bytes plus a margin are free there (1/64 of need,
 * plus the larger of 16 MiB and 1/20 of the file system: /run is shared with every other service). Test
 * builds honour $MODELKEEPER_TEST_PLAIN_FREE_BYTES (an empty file system of that size). */
int store_plain_check(Store *s, uint64_t need, bool memory_only, const char *what, char *reason,
                      size_t reason_size);

/* staging/<name>/files/, created fresh (an old one is removed first) or reused (resume). */
int store_staging_open(Store *s, const char *name, bool fresh, int *ret_dirfd, int *ret_files_fd);
int store_staging_remove(Store *s, const char *name);
/* Write meta.json (and release.json when given) into staging/<name>, make everything durable,
 * rename it to versions/<meta->id>. -EEXIST when that version exists. */
int store_commit(Store *s, const char *staging_name, const VersionMeta *meta, const char *release_json,
                 size_t release_size);

/* Import the regular files of a local directory as version id. */
int store_import(Store *s, const char *source_dir, const char *id, const StoreLimits *limits,
                 const InstallSealHook *seal, StoreProgressFn progress, void *userdata, VersionMeta **ret_meta,
                 char *reason, size_t reason_size);

/* Sorted ids of the complete versions. */
int store_list(Store *s, char ***ret_ids);
/* Check that a version is complete: meta.json parses, every file exists with its stored size;
 * with full, also re-hash every (unsealed) file against its digest. */
int store_verify(Store *s, const char *id, bool full, StoreProgressFn progress, void *userdata, char *reason,
                 size_t reason_size);
/* The next release number for a local import: one more than the highest in the store. */
int store_next_id(Store *s, char **ret);

/* The path serve/<model> should point at for a version (its files/, or the plaintext of a
 * sealed one under $RUNTIME/plain). */
int store_serve_target(Store *s, const char *id, bool sealed, char **ret);
/* Point previous at from (when from is set and differs), current at to, serve/<model> at
 * serve_target. Idempotent. */
int store_activate(Store *s, const char *to, const char *from, const char *serve_target);

/* Remove versions beyond keep (newest first), never current, previous or one in protect;
 * also plaintext directories of versions that are neither current nor (keep_previous_plain)
 * previous. Reports the removed ids and the bytes freed. */
int store_gc(Store *s, unsigned keep, char *const *protect, bool keep_previous_plain, json_t **ret_removed,
             uint64_t *ret_freed);

/* Start-up repair: remove abandoned staging (keeping the resumable fetch-* ones), stray
 * temporaries, make serve/<model> agree with current. Reports what it found and did. */
int store_reconcile(Store *s, json_t **ret_report);
