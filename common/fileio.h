/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "macros.h"

/* Read a whole regular file (not following a final symlink when nofollow), refusing one larger
 * than max bytes. The buffer is NUL-terminated. */
int read_full_file_at(int dirfd, const char *path, size_t max, bool nofollow, char **ret, size_t *ret_size);
static inline int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size) {
        return read_full_file_at(AT_FDCWD, path, max, false, ret, ret_size);
}
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);

/* write(2) until done. */
int loop_write(int fd, const void *buf, size_t n);
/* read(2) until n bytes or EOF; returns the number of bytes read. */
ssize_t loop_read(int fd, void *buf, size_t n);

/* The crash-safe way to replace a small file (STYLE.md §14): write a temporary file next to it,
 * fsync it, rename it over the target, fsync the directory. Readers see the old or the new
 * content, never a mix, also after a power cut. */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode);

/* Replace a symlink atomically: symlinkat() to a temporary name, renameat() over name, fsync
 * the directory. */
int symlink_atomic_at(const char *target, int dirfd, const char *name);

int fsync_directory_at(int dirfd, const char *path);
int mkdir_p(const char *path, mode_t mode);
/* Remove a directory tree below dirfd without ever following a symlink. Missing is fine. */
int rm_rf_at(int dirfd, const char *name);

/* Join two path components with one '/'. */
char *path_join(const char *a, const char *b);
bool path_is_absolute(const char *p) _pure_;
/* Directory part of a path ("." when there is none). */
char *path_dirname(const char *p);
