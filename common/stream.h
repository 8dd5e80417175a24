/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Byte streams as two small callback pairs, so that stages compose in one pass without knowing
 * each other: HTTP body → SHA-256 → age seal → staging file (install), or sealed file → age
 * open → safetensors reader → quantiser → safetensors writer → age seal → file (re-compression).
 */

#include <sys/types.h>

#include "macros.h"

/* Consume n bytes. Returns 0 or a negative errno. */
typedef int (*StreamWriteFn)(void *userdata, const void *buf, size_t n);
/* Produce up to n bytes. Returns the number produced, 0 at the end, or a negative errno. */
typedef ssize_t (*StreamReadFn)(void *userdata, void *buf, size_t n);

typedef struct StreamWriter {
        StreamWriteFn write;
        void *userdata;
} StreamWriter;

typedef struct StreamReader {
        StreamReadFn read;
        void *userdata;
} StreamReader;

static inline int stream_write(const StreamWriter *w, const void *buf, size_t n) {
        return w->write(w->userdata, buf, n);
}

static inline ssize_t stream_read(const StreamReader *r, void *buf, size_t n) {
        return r->read(r->userdata, buf, n);
}

/* Adapters for plain file descriptors; userdata is the fd cast with (void *) (intptr_t). */
int stream_fd_write(void *userdata, const void *buf, size_t n);
ssize_t stream_fd_read(void *userdata, void *buf, size_t n);
#define STREAM_WRITER_FD(fd) ((StreamWriter){.write = stream_fd_write, .userdata = (void *) (intptr_t) (fd)})
#define STREAM_READER_FD(fd) ((StreamReader){.read = stream_fd_read, .userdata = (void *) (intptr_t) (fd)})

/* Read exactly n bytes: 0 on success, -EPIPE when the stream ends early. */
int stream_read_exact(const StreamReader *r, void *buf, size_t n);
