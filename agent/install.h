/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * One file being installed into a staging directory, in one pass over its bytes (DESIGN.md §4.3):
 *
 *     bytes in → SHA-256 of the plaintext → [seal hook] → staging file (fsync'd at the end)
 *
 * Import feeds it from a local file, fetch from an HTTP body; both get the same hashing, the same
 * size cap and the same durability. The seal hook is where encryption at rest plugs in: a
 * StreamWriter that transforms plaintext and writes to the next stage.
 */

#include <openssl/evp.h>

#include "hash.h"
#include "macros.h"
#include "stream.h"

/* A transformation stage between hashing and the file (e.g. an age sealer). */
typedef struct InstallSealHook {
        /* Create the stage writing to `next`; returns an opaque object and its writer. */
        int (*open)(void *hook_userdata, const StreamWriter *next, void **ret_stage, StreamWriter *ret_writer);
        /* Flush the stage (e.g. the last chunk); then free it. */
        int (*finish)(void *stage);
        void (*free)(void *stage);
        void *userdata;
        const char *suffix;      /* appended to stored file names (".age"), may be NULL */
} InstallSealHook;

typedef struct InstallFile {
        char *name;                 /* as stored: with the seal hook's suffix */
        int fd;
        EVP_MD_CTX *sha;
        uint64_t max_size;          /* plaintext cap; more is an error (endless data) */
        uint64_t plain_bytes;
        uint64_t stored_bytes;
        StreamWriter file_writer;   /* counts and writes to fd */
        InstallSealHook hook;       /* copied; valid when stage != NULL */
        void *stage;                /* the seal stage, NULL when not sealing */
        StreamWriter stage_writer;
        StreamWriter writer;        /* what producers call: hashes, then stage or file */
} InstallFile;

/* Create dirfd/name (O_EXCL, mode 0640; name + hook->suffix when sealing) and set up the chain.
 * hook may be NULL. */
int install_file_open(InstallFile *f, int dirfd, const char *name, uint64_t max_size, const InstallSealHook *hook);
/* Reopen a partial file left in staging by an interrupted download: the bytes already there are
 * hashed again (one read) so the chain continues where it stopped; *ret_offset says how many.
 * With a seal hook the stream cannot continue mid-file: the file is emptied and *ret_offset is 0.
 * A missing file is created. */
int install_file_open_resume(InstallFile *f, int dirfd, const char *name, uint64_t max_size,
                             const InstallSealHook *hook, uint64_t *ret_offset);
/* Reset to empty (a server that ignored Range: start again from byte 0). Not when sealing with
 * a stage that cannot restart; then the caller re-opens. */
int install_file_truncate(InstallFile *f);
/* Finish the chain, fsync, return the plaintext digest. The file stays open until done(). */
int install_file_finish(InstallFile *f, uint8_t ret_sha256[static SHA256_DIGEST_SIZE]);
void install_file_done(InstallFile *f);

/* Copy a local regular file through an InstallFile. */
int install_copy_fd(InstallFile *f, int src_fd, void (*progress)(void *userdata, uint64_t n), void *userdata);
