/* SPDX-License-Identifier: Apache-2.0 */

/*
 * age v1 payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks (c2sp.org/age, "Payload").
 *
 * Chunks are independent given their counter, so we work in batches of BATCH_CHUNKS chunks that
 * several threads can process in parallel (the streaming APIs: the calling thread plus jobs - 1
 * workers; the fd-to-fd functions: a reader/writer pipeline, see "fd pipeline" below). A batch
 * buffer holds BATCH_CHUNKS slots of 64 KiB + 16 bytes: sealing encrypts each plaintext
 * slot in place and writes its tag right behind it, so a whole batch of ciphertext is one
 * contiguous write; opening reads a contiguous run of ciphertext and decrypts each chunk in place,
 * so the plaintext is handed out (or writev'd) straight from where it was decrypted. The only
 * copy is the one into or out of the caller's buffer in the push/pull APIs, and none in the
 * fd-to-fd functions. Caller-supplied I/O callbacks are only ever called from the calling thread.
 *
 * Opening follows age's reference reader (filippo.io/age/internal/stream) at the edges, which the
 * C2SP testkit pins down: a full-size chunk is tried as non-final and then as final; a final
 * chunk may be full-size; a final chunk may be empty only when it is the first one; data after
 * the final chunk or EOF without a final chunk is a payload failure, reported after everything
 * that authenticated before it has been released.
 */

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/vfs.h>

#include "age-internal.h"
#include "fileio.h"

/* 512 KiB: small enough that a batch stays in a core's L2 cache between the read and the crypto
 * (which halves the memory traffic), large enough that syscalls and wakeups do not matter. */
#define BATCH_CHUNKS     AGE_BATCH_CHUNKS
#define BATCH_SIZE       ((size_t) BATCH_CHUNKS * AGE_ENC_CHUNK_SIZE)
#define BATCH_PLAIN_SIZE ((size_t) BATCH_CHUNKS * AGE_CHUNK_SIZE)
#define HEADER_READ_SIZE (16U * 1024U)

#define DIV_ROUND_UP(x, y) (((x) + (y) - 1) / (y))

/* Per-chunk outcome. */
enum {
        CHUNK_MORE = 0,       /* authenticated, not the last chunk */
        CHUNK_FINAL = 1,      /* authenticated with the last-chunk flag */
        CHUNK_BAD_TAG = -1,   /* does not authenticate with either flag */
        CHUNK_BAD_EMPTY = -2, /* an empty final chunk after other chunks */
        CHUNK_BAD_SHORT = -3, /* shorter than a tag */
        CHUNK_EIO = -4,       /* OpenSSL failed (not the data's fault) */
};

typedef struct Batch {
        uint8_t *buf; /* BATCH_CHUNKS slots of AGE_ENC_CHUNK_SIZE bytes */
        size_t fill;  /* seal: plaintext bytes (slot-wise); open: ciphertext bytes (contiguous) */
        size_t used;  /* high-water mark of bytes of buf ever written, wiped when freed */
        size_t n_chunks;
        uint64_t first_counter;
        bool last_final;             /* seal: the last chunk gets the last-chunk flag */
        bool at_eof;                 /* open: the input ended right after this batch */
        bool eof_seen;               /* filling it ended with a read that returned 0 */
        uint32_t size[BATCH_CHUNKS]; /* seal: plaintext bytes; open: ciphertext bytes with the tag */
        int8_t result[BATCH_CHUNKS];

        /* Worker pool bookkeeping, under Pool.mutex. */
        struct Batch *queue_next;
        size_t next_chunk; /* next chunk to hand out */
        size_t pending;    /* chunks not processed yet */

        /* fd pipeline (open): what follows this batch, NEXT_* or a negative errno from reading it. */
        int next;
        /* fd pipeline: instead of data, this batch carries this error to the writer, in order. */
        int error;
        const char *error_reason;
} Batch;

/* What follows a batch of ciphertext. */
#define NEXT_EOF     0
#define NEXT_UNKNOWN 1
#define NEXT_DATA    2

/* batch_verdict() results besides errors. */
#define VERDICT_DONE      0
#define VERDICT_CONTINUE  1
#define VERDICT_NEED_NEXT 2

static int batch_alloc(Batch *b) {
        if (b->buf)
                return 0;
        b->buf = malloc(BATCH_SIZE);
        return b->buf ? 0 : -ENOMEM;
}

static void batch_mark_used(Batch *b, size_t n) {
        if (n > BATCH_SIZE)
                n = BATCH_SIZE;
        if (n > b->used)
                b->used = n;
}

static void batch_done(Batch *b) {
        if (!b->buf)
                return;
        /* Opened batches hold plaintext (also beyond the last, smaller batch), sealed ones may
         * hold a not yet encrypted tail. */
        OPENSSL_cleanse(b->buf, b->used);
        free(b->buf);
        b->buf = NULL;
}

/* A class code from the caller's own reader/writer would be mistaken for a verdict on the file. */
static int stream_error(int r) {
        if (r == -AGE_ERROR_NO_MATCH || r == -AGE_ERROR_HEADER || r == -AGE_ERROR_HMAC ||
            r == -AGE_ERROR_PAYLOAD)
                return -EIO;
        return r < 0 ? r : -EIO;
}

/* ---- one chunk ----------------------------------------------------------------------------- */

/* 11-byte big-endian counter || last-chunk flag. */
static void chunk_nonce(uint64_t counter, bool final, uint8_t nonce[static 12]) {
        nonce[0] = nonce[1] = nonce[2] = 0;
        for (unsigned i = 0; i < 8; i++)
                nonce[3 + i] = (uint8_t) (counter >> (56 - 8 * i));
        nonce[11] = final ? 1 : 0;
}

static EVP_CIPHER_CTX *chunk_ctx_new(const uint8_t key[static AGE_KEY_SIZE], bool encrypt) {
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

        if (!ctx)
                return NULL;
        if (EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, NULL, encrypt ? 1 : 0) <= 0) {
                EVP_CIPHER_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

static int8_t seal_chunk(EVP_CIPHER_CTX *ctx, Batch *b, size_t i) {
        uint8_t *slot = b->buf + i * AGE_ENC_CHUNK_SIZE, nonce[12];
        int n = (int) b->size[i], len = 0, len2 = 0;

        chunk_nonce(b->first_counter + i, b->last_final && i + 1 == b->n_chunks, nonce);
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) <= 0)
                return CHUNK_EIO;
        /* In place: OpenSSL allows in == out exactly. */
        if (n > 0 && EVP_EncryptUpdate(ctx, slot, &len, slot, n) <= 0)
                return CHUNK_EIO;
        if (EVP_EncryptFinal_ex(ctx, slot + len, &len2) <= 0 || len + len2 != n)
                return CHUNK_EIO;
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AGE_TAG_SIZE, slot + n) <= 0)
                return CHUNK_EIO;
        return CHUNK_MORE;
}

/* Decrypt in place and verify: 1 ok, 0 tag mismatch (the slot then holds garbage), <0 error. */
static int open_try(EVP_CIPHER_CTX *ctx, uint8_t *slot, int n, uint64_t counter, bool final) {
        uint8_t nonce[12];
        int len = 0, len2 = 0;

        chunk_nonce(counter, final, nonce);
        if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) <= 0 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, AGE_TAG_SIZE, slot + n) <= 0)
                return -EIO;
        if (n > 0 && EVP_DecryptUpdate(ctx, slot, &len, slot, n) <= 0)
                return -EIO;
        return EVP_DecryptFinal_ex(ctx, slot + len, &len2) > 0 ? 1 : 0;
}

/* Undo a failed in-place attempt: the same keystream XORed again gives the ciphertext back. */
static int open_undo(EVP_CIPHER_CTX *ctx, uint8_t *slot, int n, uint64_t counter, bool final) {
        uint8_t nonce[12];
        int len = 0;

        chunk_nonce(counter, final, nonce);
        if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) <= 0)
                return -EIO;
        if (n > 0 && EVP_DecryptUpdate(ctx, slot, &len, slot, n) <= 0)
                return -EIO;
        return 0;
}

static int8_t open_chunk(EVP_CIPHER_CTX *ctx, Batch *b, size_t i) {
        uint8_t *slot = b->buf + i * AGE_ENC_CHUNK_SIZE;
        uint64_t counter = b->first_counter + i;
        size_t size = b->size[i];
        int n, r;
        bool first;

        if (size < AGE_TAG_SIZE)
                return CHUNK_BAD_SHORT;
        n = (int) (size - AGE_TAG_SIZE);

        if (size < AGE_ENC_CHUNK_SIZE) {
                /* A short chunk only ever comes right before EOF: it must be the final one, and it
                 * may be empty only when the whole payload is. */
                if (n == 0 && counter != 0)
                        return CHUNK_BAD_EMPTY;
                r = open_try(ctx, slot, n, counter, true);
                return r < 0 ? CHUNK_EIO : r > 0 ? CHUNK_FINAL : CHUNK_BAD_TAG;
        }

        /* A full chunk may be final too. Try the likely flag first: final only for the very last
         * chunk before EOF. The outcome does not depend on the order (a tag that verified under
         * both flags would be a forgery). */
        first = b->at_eof && i + 1 == b->n_chunks;
        r = open_try(ctx, slot, n, counter, first);
        if (r < 0)
                return CHUNK_EIO;
        if (r > 0)
                return first ? CHUNK_FINAL : CHUNK_MORE;
        if (open_undo(ctx, slot, n, counter, first) < 0)
                return CHUNK_EIO;
        r = open_try(ctx, slot, n, counter, !first);
        if (r < 0)
                return CHUNK_EIO;
        if (r > 0)
                return !first ? CHUNK_FINAL : CHUNK_MORE;
        return CHUNK_BAD_TAG;
}

static int8_t process_chunk(EVP_CIPHER_CTX *ctx, Batch *b, size_t i, bool encrypt) {
        return encrypt ? seal_chunk(ctx, b, i) : open_chunk(ctx, b, i);
}

/* ---- worker pool ----------------------------------------------------------------------------- */

/*
 * Batches are submitted in stream order; workers, and threads that "help" while they would
 * otherwise wait, take chunks from the oldest batch that still has some. Each worker has its own
 * cipher context, made up front so that a pool either fully works or is not made at all (then
 * everything runs in the calling thread, which is always correct, only slower).
 */

typedef struct Pool Pool;

typedef struct PoolWorker {
        Pool *pool;
        EVP_CIPHER_CTX *ctx;
        pthread_t thread;
        bool started;
} PoolWorker;

struct Pool {
        pthread_mutex_t mutex;
        pthread_cond_t work, done;
        PoolWorker workers[AGE_JOBS_MAX];
        unsigned n_workers;
        bool encrypt;
        Batch *head, *tail; /* submitted batches with chunks not handed out yet */
        bool quit;
};

/* Under the mutex: the next chunk to process, from the oldest batch (only from `only` if set). */
static bool pool_take_locked(Pool *p, const Batch *only, Batch **ret, size_t *ret_i) {
        Batch *b = p->head;

        if (!b || (only && b != only))
                return false;
        *ret = b;
        *ret_i = b->next_chunk++;
        if (b->next_chunk >= b->n_chunks) {
                p->head = b->queue_next;
                if (!p->head)
                        p->tail = NULL;
        }
        return true;
}

static void pool_chunk_done_locked(Pool *p, Batch *b) {
        if (--b->pending == 0)
                pthread_cond_broadcast(&p->done);
}

static void *pool_worker(void *userdata) {
        PoolWorker *w = userdata;
        Pool *p = w->pool;

        pthread_mutex_lock(&p->mutex);
        for (;;) {
                Batch *b;
                size_t i;

                while (!p->quit && !p->head)
                        pthread_cond_wait(&p->work, &p->mutex);
                if (p->quit)
                        break;
                (void) pool_take_locked(p, NULL, &b, &i);
                pthread_mutex_unlock(&p->mutex);

                b->result[i] = process_chunk(w->ctx, b, i, p->encrypt);

                pthread_mutex_lock(&p->mutex);
                pool_chunk_done_locked(p, b);
        }
        pthread_mutex_unlock(&p->mutex);
        return NULL;
}

/* Stops the workers (they finish the chunk in hand, queued work is dropped) and joins them. */
static Pool *pool_free(Pool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->mutex);
        p->quit = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);
        for (unsigned i = 0; i < p->n_workers; i++)
                if (p->workers[i].started)
                        (void) pthread_join(p->workers[i].thread, NULL);
        for (unsigned i = 0; i < p->n_workers; i++)
                EVP_CIPHER_CTX_free(p->workers[i].ctx);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->mutex);
        free(p);
        return NULL;
}

/* Workers must never receive process signals (the daemon and the agent handle those in their main
 * thread); a new thread inherits the mask of the thread that creates it. */
static int thread_create_nosignals(pthread_t *ret, void *(*fn)(void *), void *userdata) {
        sigset_t all, old;
        int r;

        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        r = pthread_create(ret, NULL, fn, userdata);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return -r;
}

/* n workers (0: just the queue, for threads that help), or NULL when that many cannot be had
 * (only speed is lost). */
static Pool *pool_new(unsigned n, const uint8_t *key, bool encrypt) {
        Pool *p;

        if (n > AGE_JOBS_MAX)
                return NULL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        pthread_mutex_init(&p->mutex, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        p->encrypt = encrypt;

        for (unsigned i = 0; i < n; i++) {
                p->workers[i] = (PoolWorker){.pool = p, .ctx = chunk_ctx_new(key, encrypt)};
                p->n_workers++;
                if (!p->workers[i].ctx ||
                    thread_create_nosignals(&p->workers[i].thread, pool_worker, &p->workers[i]) < 0)
                        return pool_free(p);
                p->workers[i].started = true;
        }
        return p;
}

static void pool_submit_locked(Pool *p, Batch *b) {
        assert_se(b->n_chunks > 0);
        b->next_chunk = 0;
        b->pending = b->n_chunks;
        b->queue_next = NULL;
        if (p->tail)
                p->tail->queue_next = b;
        else
                p->head = b;
        p->tail = b;
        pthread_cond_broadcast(&p->work);
}

static void pool_submit(Pool *p, Batch *b) {
        pthread_mutex_lock(&p->mutex);
        pool_submit_locked(p, b);
        pthread_mutex_unlock(&p->mutex);
}

/* Process one chunk of whatever is queued, oldest first. False when nothing is queued. */
static bool pool_help_one(Pool *p, EVP_CIPHER_CTX *ctx) {
        Batch *b;
        size_t i;

        pthread_mutex_lock(&p->mutex);
        if (!pool_take_locked(p, NULL, &b, &i)) {
                pthread_mutex_unlock(&p->mutex);
                return false;
        }
        pthread_mutex_unlock(&p->mutex);
        b->result[i] = process_chunk(ctx, b, i, p->encrypt);
        pthread_mutex_lock(&p->mutex);
        pool_chunk_done_locked(p, b);
        pthread_mutex_unlock(&p->mutex);
        return true;
}

/* Take chunks (oldest batch first, which is b or older) until all of b is done. */
static void pool_help_until(Pool *p, EVP_CIPHER_CTX *ctx, Batch *b) {
        pthread_mutex_lock(&p->mutex);
        while (b->pending > 0) {
                Batch *got;
                size_t i;

                if (!pool_take_locked(p, NULL, &got, &i)) {
                        /* The rest of b is in other threads' hands. */
                        pthread_cond_wait(&p->done, &p->mutex);
                        continue;
                }
                pthread_mutex_unlock(&p->mutex);
                got->result[i] = process_chunk(ctx, got, i, p->encrypt);
                pthread_mutex_lock(&p->mutex);
                pool_chunk_done_locked(p, got);
        }
        pthread_mutex_unlock(&p->mutex);
}

/* Process every chunk of b and return when all are done: in parallel when there is a pool, with
 * the calling thread taking chunks too. */
static void pool_run(Pool *p, EVP_CIPHER_CTX *ctx, Batch *b, bool encrypt) {
        Batch *got;
        size_t i;

        if (!p || b->n_chunks < 2) {
                for (i = 0; i < b->n_chunks; i++)
                        b->result[i] = process_chunk(ctx, b, i, encrypt);
                return;
        }

        pthread_mutex_lock(&p->mutex);
        pool_submit_locked(p, b);
        while (pool_take_locked(p, b, &got, &i)) {
                pthread_mutex_unlock(&p->mutex);
                b->result[i] = process_chunk(ctx, b, i, encrypt);
                pthread_mutex_lock(&p->mutex);
                pool_chunk_done_locked(p, b);
        }
        while (b->pending > 0)
                pthread_cond_wait(&p->done, &p->mutex);
        pthread_mutex_unlock(&p->mutex);
}

static unsigned jobs_resolve(unsigned jobs) {
        if (jobs == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                jobs = n > 0 ? (unsigned) MIN(n, (long) AGE_JOBS_MAX) : 1;
        }
        return MIN(jobs, AGE_JOBS_MAX);
}

/* ---- deciding what to release --------------------------------------------------------------- */

/*
 * What of an opened batch may be released, and what comes next. *ret_n is the number of chunks
 * to release, in order, from the start of the batch: everything before the first chunk that did
 * not authenticate. `next` says what follows the batch: NEXT_EOF, NEXT_DATA, NEXT_UNKNOWN, or a
 * negative errno from reading it. Returns VERDICT_CONTINUE (go on with the next batch),
 * VERDICT_DONE (authenticated end: a final chunk, then EOF), VERDICT_NEED_NEXT (can only tell with
 * `next` known), or a negative errno, to be reported after the release.
 */
static int batch_verdict(const Batch *b, int next, size_t *ret_n, const char **ret_reason) {
        for (size_t i = 0; i < b->n_chunks; i++) {
                bool last = i + 1 == b->n_chunks;

                switch (b->result[i]) {
                case CHUNK_MORE:
                        if (!last)
                                continue;
                        *ret_n = i + 1;
                        if (next == NEXT_EOF) {
                                *ret_reason = "payload truncated: no final chunk";
                                return -AGE_ERROR_PAYLOAD;
                        }
                        if (next < 0) {
                                *ret_reason = "read error";
                                return next;
                        }
                        return VERDICT_CONTINUE;
                case CHUNK_FINAL:
                        *ret_n = i + 1;
                        if (!last || next == NEXT_DATA) {
                                *ret_reason = "data after the final chunk";
                                return -AGE_ERROR_PAYLOAD;
                        }
                        if (next == NEXT_UNKNOWN)
                                return VERDICT_NEED_NEXT;
                        if (next < 0) {
                                *ret_reason = "read error";
                                return next;
                        }
                        return VERDICT_DONE;
                case CHUNK_BAD_EMPTY:
                        *ret_n = i;
                        *ret_reason = "empty final chunk after other chunks";
                        return -AGE_ERROR_PAYLOAD;
                case CHUNK_BAD_SHORT:
                        *ret_n = i;
                        *ret_reason = "payload chunk shorter than its tag";
                        return -AGE_ERROR_PAYLOAD;
                case CHUNK_BAD_TAG:
                        *ret_n = i;
                        *ret_reason = "payload chunk does not authenticate";
                        return -AGE_ERROR_PAYLOAD;
                default:
                        *ret_n = i;
                        *ret_reason = "decryption failed";
                        return -EIO;
                }
        }
        assert_not_reached();
}

static size_t chunk_plain_size(const Batch *b, size_t i) {
        return b->size[i] - AGE_TAG_SIZE;
}

/* Read plaintext from an fd into the free part of the slots, until the batch is full or EOF. */
static int fill_plain_fd(int fd, Batch *b) {
        b->eof_seen = false;
        while (b->fill < BATCH_PLAIN_SIZE) {
                struct iovec iov[BATCH_CHUNKS];
                size_t n_iov = 0;
                ssize_t k;

                for (size_t pos = b->fill; pos < BATCH_PLAIN_SIZE;) {
                        size_t slot = pos / AGE_CHUNK_SIZE, off = pos % AGE_CHUNK_SIZE;
                        iov[n_iov++] = (struct iovec){b->buf + slot * AGE_ENC_CHUNK_SIZE + off,
                                                      AGE_CHUNK_SIZE - off};
                        pos += AGE_CHUNK_SIZE - off;
                }
                k = readv(fd, iov, (int) n_iov);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0) {
                        b->eof_seen = true;
                        break;
                }
                b->fill += (size_t) k;
        }
        batch_mark_used(b, DIV_ROUND_UP(b->fill, AGE_CHUNK_SIZE) * AGE_ENC_CHUNK_SIZE);
        return 0;
}

/* Number the chunks of a batch of plaintext; every chunk but the last is full. */
static void batch_prepare_plain(Batch *b, uint64_t *counter, bool last_final) {
        b->n_chunks = b->fill == 0 ? 1 : DIV_ROUND_UP(b->fill, AGE_CHUNK_SIZE);
        for (size_t i = 0; i < b->n_chunks; i++)
                b->size[i] = (uint32_t) MIN((size_t) AGE_CHUNK_SIZE, b->fill - i * AGE_CHUNK_SIZE);
        b->last_final = last_final;
        b->first_counter = *counter;
        *counter += b->n_chunks;
}

/* Cut a batch of ciphertext into chunks; only the last may be short (it is at EOF). */
static void batch_prepare_cipher(Batch *b, uint64_t *counter) {
        b->n_chunks = DIV_ROUND_UP(b->fill, AGE_ENC_CHUNK_SIZE);
        for (size_t i = 0; i < b->n_chunks; i++)
                b->size[i] = (uint32_t) MIN((size_t) AGE_ENC_CHUNK_SIZE, b->fill - i * AGE_ENC_CHUNK_SIZE);
        b->at_eof = b->eof_seen;
        b->first_counter = *counter;
        *counter += b->n_chunks;
}

static int writev_all(int fd, struct iovec *iov, size_t n) {
        while (n > 0) {
                ssize_t k = writev(fd, iov, (int) n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                while (n > 0 && (size_t) k >= iov->iov_len) {
                        k -= (ssize_t) iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *) iov->iov_base + k;
                        iov->iov_len -= (size_t) k;
                }
        }
        return 0;
}

/* Write the plaintext of chunks [first, n) of an opened batch (skipping `skip` bytes of the first). */
static int write_released_fd(int fd, const Batch *b, size_t first, size_t skip, size_t n,
                             uint64_t *written) {
        struct iovec iov[BATCH_CHUNKS];
        size_t n_iov = 0, total = 0;
        int r;

        for (size_t i = first; i < n; i++) {
                size_t off = i == first ? skip : 0, len = chunk_plain_size(b, i) - off;
                if (len == 0)
                        continue;
                iov[n_iov++] = (struct iovec){b->buf + i * AGE_ENC_CHUNK_SIZE + off, len};
                total += len;
        }
        r = writev_all(fd, iov, n_iov);
        if (r < 0)
                return r;
        *written += total;
        return 0;
}

/* ---- writeback behind the writer ---------------------------------------------------------- */

/*
 * The fd functions' output, when it is a regular file on a filesystem with writeback (not tmpfs):
 * left to itself, the page cache takes gigabytes of dirty pages until background writeback starts
 * (vm.dirty_background_ratio); from then on the writer crawled on the machines measured, burning
 * CPU in the copy into the page cache (perf: copy_folio_from_iter_atomic, 72 % of all samples; 4 GiB
 * unsealed to ext4 in 12-14 s with 13 s of system time, against 2.5 s with this). So, as dd-like
 * tools do, we start writeback of each WRITEBACK_WINDOW of output as soon as it is written
 * (SYNC_FILE_RANGE_WRITE, asynchronous), and once the window after it is on its way too, wait for
 * it and drop it from the page cache (POSIX_FADV_DONTNEED): at most about two windows are dirty or
 * in flight, the writer is paced by the disk instead of by dirty throttling, and the freed pages are
 * reused while cache-hot. This is not a durability promise (no fsync, no device cache flush): that
 * stays with the caller. An error from waiting is a write error: the kernel reports a failed
 * writeback to one waiter of this open file only, so swallowing it would hide it from a later fsync.
 * Only the thread that writes calls these.
 */

#define WRITEBACK_WINDOW ((uint64_t) 8U * 1024U * 1024U)

typedef struct Writeback {
        bool on;          /* false (also zero-initialized): not managed (pipe, tmpfs, O_APPEND, …) */
        int fd;
        off_t base;       /* file offset of the first byte counted */
        uint64_t written; /* bytes written since base */
        uint64_t started; /* [0, started): writeback started */
        uint64_t dropped; /* [0, dropped): written back and dropped from the page cache */
        uint64_t page;    /* the page size: windows end on page boundaries of the file */
} Writeback;

static void writeback_init(Writeback *w, int fd) {
        struct statfs sfs;
        struct stat st;
        off_t pos;
        int flags;

        *w = (Writeback){.fd = -EBADF};
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return;
        flags = fcntl(fd, F_GETFL);
        /* With O_APPEND we would not know where our bytes land; O_DIRECT has no page cache. */
        if (flags < 0 || (flags & (O_APPEND | O_DIRECT)) != 0)
                return;
        if (fstatfs(fd, &sfs) < 0 || sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC)
                return;
        pos = lseek(fd, 0, SEEK_CUR);
        if (pos < 0)
                return;
        w->on = true;
        w->fd = fd;
        w->base = pos;
        w->page = sysconf(_SC_PAGESIZE) > 0 ? (uint64_t) sysconf(_SC_PAGESIZE) : 4096;
}

/* sync_file_range() on [from, to) of our output: 0, or a negative errno that is a write error. An
 * fd or filesystem that does not support it just stops being managed. */
static int writeback_range(Writeback *w, uint64_t from, uint64_t to, unsigned flags) {
        while (sync_file_range(w->fd, w->base + (off_t) from, (off_t) (to - from), flags) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno == EINVAL || errno == ESPIPE || errno == ENOSYS || errno == EOPNOTSUPP || errno == EPERM) {
                        w->on = false;
                        return 0;
                }
                return -errno;
        }
        return 0;
}

/* n more bytes were written. */
static int writeback_account(Writeback *w, size_t n) {
        uint64_t upto;
        int r;

        w->written += n;
        if (!w->on)
                return 0;
        /* Up to a page boundary only: a sealed file's chunks (64 KiB + 16) end mid-page, and the
         * next write into a page that is under writeback waits for it where the device wants
         * stable pages (virtio-blk here: sealing to disk ran at half the speed of opening). */
        upto = ((uint64_t) w->base + w->written) / w->page * w->page - (uint64_t) w->base;
        if (upto <= w->started || upto - w->started < WRITEBACK_WINDOW)
                return 0;
        r = writeback_range(w, w->started, upto, SYNC_FILE_RANGE_WRITE);
        if (r < 0 || !w->on)
                return r;
        w->started = upto;

        if (w->started - w->dropped >= 2 * WRITEBACK_WINDOW) {
                uint64_t end = w->started - WRITEBACK_WINDOW;

                r = writeback_range(w, w->dropped, end,
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                            SYNC_FILE_RANGE_WAIT_AFTER);
                if (r < 0 || !w->on)
                        return r;
                (void) posix_fadvise(w->fd, w->base + (off_t) w->dropped, (off_t) (end - w->dropped),
                                     POSIX_FADV_DONTNEED);
                w->dropped = end;
        }
        return 0;
}

/* All is written: start writeback of the rest too, if we were managing it (not for small files,
 * which are left to the page cache as before). */
static int writeback_finish(Writeback *w) {
        if (!w->on || w->started == 0 || w->written == w->started)
                return 0;
        return writeback_range(w, w->started, w->written, SYNC_FILE_RANGE_WRITE);
}

/* Read-ahead for an input that is read once from start to end (ignored where meaningless). */
static void input_advise_sequential(int fd) {
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
}

/* ---- fd pipeline ------------------------------------------------------------------------------ */

/*
 * age_seal_fd() and age_open_fd() with two or more jobs: the calling thread reads batches and
 * submits them to the pool's queue; a writer thread takes them in stream order, decides what may
 * be released (batch_verdict(), the same rules as everywhere) and writes. The crypto is done by
 * whoever has time: the writer works on the batch it has to write next, the reader works on queued
 * chunks while it waits for a free buffer, and with more than two jobs jobs - 2 workers help. The
 * kernel's read and write work (copies, page allocation) is about as large as the crypto, so on two
 * cores this keeps both busy whichever side is slower on a given machine. The streaming APIs
 * (AgeSealer, AgeOpener) do not use this: their callbacks belong to the caller's thread.
 */

#define PIPE_BATCHES 4

typedef struct Pipe {
        pthread_mutex_t mutex;
        pthread_cond_t cond;
        Batch batch[PIPE_BATCHES];
        Batch *free_batches[PIPE_BATCHES];
        size_t n_free;
        Batch *queue[PIPE_BATCHES]; /* ring, in stream order, for the writer */
        size_t q_head, q_len;
        bool closed; /* the reader enqueues nothing more */
        bool stop;   /* the writer reached a verdict: the reader stops */
        int result;  /* the verdict: 0 (authenticated end) or a negative errno */
        const char *reason;
        Pool *pool;          /* the queue, and jobs - 2 workers */
        EVP_CIPHER_CTX *ctx; /* the reader's */
        EVP_CIPHER_CTX *writer_ctx;
        bool encrypt;
        int fd;
        pthread_t writer;
        bool writer_started;
        uint64_t written; /* plaintext written (open) */
        Writeback wb;     /* the writer's */
} Pipe;

static Pipe *pipe_free(Pipe *p) {
        if (!p)
                return NULL;
        if (p->writer_started) {
                pthread_mutex_lock(&p->mutex);
                p->closed = true;
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->mutex);
                (void) pthread_join(p->writer, NULL);
        }
        pool_free(p->pool);
        EVP_CIPHER_CTX_free(p->ctx);
        EVP_CIPHER_CTX_free(p->writer_ctx);
        for (size_t i = 0; i < PIPE_BATCHES; i++)
                batch_done(&p->batch[i]);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->mutex);
        free(p);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Pipe *, pipe_free);

/* Sealed batch: all chunks must have been encrypted; the ciphertext is contiguous. */
static int pipe_write_sealed(Pipe *p, Batch *b, const char **ret_reason) {
        size_t total = 0;
        int r;

        for (size_t i = 0; i < b->n_chunks; i++) {
                if (b->result[i] != CHUNK_MORE) {
                        *ret_reason = "encryption failed";
                        return -EIO;
                }
                total += b->size[i] + AGE_TAG_SIZE;
        }
        batch_mark_used(b, total);
        r = loop_write(p->fd, b->buf, total);
        if (r >= 0)
                r = writeback_account(&p->wb, total);
        if (r >= 0 && b->last_final)
                r = writeback_finish(&p->wb);
        if (r < 0) {
                *ret_reason = "write error";
                return stream_error(r);
        }
        return b->last_final ? VERDICT_DONE : VERDICT_CONTINUE;
}

static int pipe_write_opened(Pipe *p, Batch *b, const char **ret_reason) {
        uint64_t before = p->written;
        size_t n = 0;
        int v, r;

        v = batch_verdict(b, b->next, &n, ret_reason);
        assert_se(v != VERDICT_NEED_NEXT); /* the reader always says what follows */
        r = write_released_fd(p->fd, b, 0, 0, n, &p->written);
        if (r >= 0)
                r = writeback_account(&p->wb, p->written - before);
        if (r >= 0 && v == VERDICT_DONE)
                r = writeback_finish(&p->wb);
        if (r < 0) {
                *ret_reason = "write error";
                return stream_error(r);
        }
        return v;
}

static void *pipe_writer(void *userdata) {
        Pipe *p = userdata;

        for (;;) {
                const char *reason = NULL;
                Batch *b;
                int v;

                pthread_mutex_lock(&p->mutex);
                while (p->q_len == 0 && !p->closed)
                        pthread_cond_wait(&p->cond, &p->mutex);
                if (p->q_len == 0) {
                        /* Closed without a last batch: only when the reader gave up. */
                        if (!p->stop) {
                                p->stop = true;
                                p->result = -EIO;
                                p->reason = "internal error";
                        }
                        pthread_mutex_unlock(&p->mutex);
                        break;
                }
                b = p->queue[p->q_head];
                pthread_mutex_unlock(&p->mutex);

                if (b->error < 0) {
                        v = b->error;
                        reason = b->error_reason;
                } else {
                        pool_help_until(p->pool, p->writer_ctx, b);
                        v = p->encrypt ? pipe_write_sealed(p, b, &reason) : pipe_write_opened(p, b, &reason);
                }

                pthread_mutex_lock(&p->mutex);
                p->q_head = (p->q_head + 1) % PIPE_BATCHES;
                p->q_len--;
                p->free_batches[p->n_free++] = b;
                if (v != VERDICT_CONTINUE) {
                        p->stop = true;
                        p->result = v;
                        p->reason = reason;
                }
                pthread_cond_broadcast(&p->cond);
                pthread_mutex_unlock(&p->mutex);
                if (v != VERDICT_CONTINUE)
                        break;
        }
        return NULL;
}

/* -EAGAIN when threads or memory cannot be had: the caller then does the work itself. */
static int pipe_new(const uint8_t *key, bool encrypt, unsigned jobs, int fd, Pipe **ret) {
        _cleanup_(pipe_freep) Pipe *p = NULL;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->mutex, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->encrypt = encrypt;
        p->fd = fd;
        writeback_init(&p->wb, fd);
        for (size_t i = 0; i < PIPE_BATCHES; i++) {
                if (batch_alloc(&p->batch[i]) < 0)
                        return -EAGAIN;
                p->free_batches[p->n_free++] = &p->batch[i];
        }
        p->ctx = chunk_ctx_new(key, encrypt);
        p->writer_ctx = chunk_ctx_new(key, encrypt);
        if (!p->ctx || !p->writer_ctx)
                return -ENOMEM;
        p->pool = pool_new(jobs - 2, key, encrypt);
        if (!p->pool)
                return -EAGAIN;
        if (thread_create_nosignals(&p->writer, pipe_writer, p) < 0)
                return -EAGAIN;
        p->writer_started = true;

        *ret = TAKE_PTR(p);
        return 0;
}

/* A free batch, or NULL once the writer has stopped. While there is none, help with the crypto. */
static Batch *pipe_acquire(Pipe *p) {
        Batch *b = NULL;

        pthread_mutex_lock(&p->mutex);
        while (p->n_free == 0 && !p->stop) {
                bool helped;

                pthread_mutex_unlock(&p->mutex);
                helped = pool_help_one(p->pool, p->ctx);
                pthread_mutex_lock(&p->mutex);
                /* Only this thread submits, so nothing new can be queued while it waits here. */
                if (!helped && p->n_free == 0 && !p->stop)
                        pthread_cond_wait(&p->cond, &p->mutex);
        }
        if (!p->stop) {
                b = p->free_batches[--p->n_free];
                b->fill = 0;
                b->n_chunks = 0;
                b->error = 0;
                b->error_reason = NULL;
                b->next = NEXT_UNKNOWN;
                b->last_final = false;
                b->at_eof = false;
        }
        pthread_mutex_unlock(&p->mutex);
        return b;
}

static void pipe_release(Pipe *p, Batch *b) {
        pthread_mutex_lock(&p->mutex);
        p->free_batches[p->n_free++] = b;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
}

static void pipe_enqueue(Pipe *p, Batch *b) {
        pthread_mutex_lock(&p->mutex);
        assert_se(p->q_len < PIPE_BATCHES);
        p->queue[(p->q_head + p->q_len) % PIPE_BATCHES] = b;
        p->q_len++;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
}

static void pipe_enqueue_error(Pipe *p, Batch *b, int error, const char *reason) {
        b->error = error;
        b->error_reason = reason;
        pipe_enqueue(p, b);
}

static void pipe_submit(Pipe *p, Batch *b) {
        pool_submit(p->pool, b);
}

/* Close the queue, wait for the writer's verdict. */
static int pipe_finish(Pipe *p, const char **ret_reason) {
        pthread_mutex_lock(&p->mutex);
        p->closed = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mutex);
        (void) pthread_join(p->writer, NULL);
        p->writer_started = false;
        if (ret_reason)
                *ret_reason = p->reason;
        return p->result;
}

/* Does an fd have more than one batch of data left? Pipes and the like: maybe, so yes. */
static bool fd_worth_pipelining(int fd, size_t batch) {
        struct stat st;
        off_t pos;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return true;
        pos = lseek(fd, 0, SEEK_CUR);
        return pos < 0 || st.st_size - pos > (off_t) batch;
}

/* ---- sealing ------------------------------------------------------------------------------- */

struct AgeSealer {
        StreamWriter out;
        uint8_t key[AGE_KEY_SIZE];
        EVP_CIPHER_CTX *ctx;
        Pool *pool;
        unsigned jobs;
        bool pool_tried;
        Batch batch[2]; /* the second one only for age_seal_fd()'s read-ahead */
        unsigned cur;
        uint64_t counter; /* counter of the first chunk of the next batch written */
        uint64_t size;
        int error;
        bool finished;
        Writeback wb; /* age_seal_fd() without threads; off for the streaming API */
};

AgeSealer *age_sealer_free(AgeSealer *s) {
        if (!s)
                return NULL;
        pool_free(s->pool);
        EVP_CIPHER_CTX_free(s->ctx);
        for (unsigned i = 0; i < 2; i++)
                batch_done(&s->batch[i]);
        OPENSSL_cleanse(s->key, sizeof(s->key));
        free(s);
        return NULL;
}

int age_sealer_new(const AgeRecipient *recipients, size_t n_recipients, const StreamWriter *out,
                   unsigned jobs, AgeSealer **ret) {
        _cleanup_(age_sealer_freep) AgeSealer *s = NULL;
        uint8_t file_key[AGE_FILE_KEY_SIZE], nonce[AGE_NONCE_SIZE];
        _cleanup_free_ char *header = NULL;
        size_t header_size = 0;
        int r;

        assert_return(recipients, -EINVAL);
        assert_return(n_recipients > 0 && n_recipients <= AGE_STANZAS_MAX, -EINVAL);
        assert_return(out && out->write, -EINVAL);
        assert_return(ret, -EINVAL);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->out = *out;
        s->jobs = jobs_resolve(jobs);

        /* The file key is fresh CSPRNG output per file and never leaves this function. */
        if (RAND_priv_bytes(file_key, sizeof(file_key)) <= 0 || RAND_bytes(nonce, sizeof(nonce)) <= 0)
                return -EIO;
        r = age_header_build(recipients, n_recipients, file_key, &header, &header_size);
        if (r >= 0)
                r = age_payload_key(file_key, nonce, s->key);
        OPENSSL_cleanse(file_key, sizeof(file_key));
        if (r < 0)
                return r;

        s->ctx = chunk_ctx_new(s->key, true);
        if (!s->ctx)
                return -ENOMEM;

        r = stream_write(&s->out, header, header_size);
        if (r >= 0)
                r = stream_write(&s->out, nonce, sizeof(nonce));
        if (r < 0)
                return stream_error(r);

        *ret = TAKE_PTR(s);
        return 0;
}

/* Encrypt a batch numbered by batch_prepare_plain() and write it out. */
static int sealer_emit(AgeSealer *s, Batch *b) {
        size_t total = 0;
        int r;

        if (!s->pool && !s->pool_tried && s->jobs > 1 && b->n_chunks > 1) {
                s->pool_tried = true;
                s->pool = pool_new(s->jobs - 1, s->key, true);
        }
        pool_run(s->pool, s->ctx, b, true);
        for (size_t i = 0; i < b->n_chunks; i++) {
                if (b->result[i] != CHUNK_MORE)
                        return -EIO;
                total += b->size[i] + AGE_TAG_SIZE;
        }
        /* Every chunk but the last is full, so the ciphertext is contiguous in the slots. */
        batch_mark_used(b, total);
        r = stream_write(&s->out, b->buf, total);
        if (r < 0)
                return stream_error(r);
        b->fill = 0;
        return writeback_account(&s->wb, total);
}

/* A full batch, known not to hold the last chunk because more data follows. */
static int sealer_flush_full(AgeSealer *s, Batch *b) {
        assert_se(b->fill == BATCH_PLAIN_SIZE);
        batch_prepare_plain(b, &s->counter, false);
        return sealer_emit(s, b);
}

int age_sealer_write(AgeSealer *s, const void *buf, size_t n) {
        const uint8_t *p = buf;
        int r;

        assert_return(s, -EINVAL);
        assert_return(buf || n == 0, -EINVAL);

        if (s->error < 0)
                return s->error;
        if (s->finished)
                return -ESTALE;

        while (n > 0) {
                Batch *b = &s->batch[s->cur];
                size_t slot, off, k;

                r = batch_alloc(b);
                if (r < 0)
                        return (s->error = r);
                /* Only now that more data is here do we know the full batch is not the end. */
                if (b->fill == BATCH_PLAIN_SIZE) {
                        r = sealer_flush_full(s, b);
                        if (r < 0)
                                return (s->error = r);
                }
                slot = b->fill / AGE_CHUNK_SIZE;
                off = b->fill % AGE_CHUNK_SIZE;
                k = MIN(n, AGE_CHUNK_SIZE - off);
                memcpy(b->buf + slot * AGE_ENC_CHUNK_SIZE + off, p, k);
                batch_mark_used(b, slot * AGE_ENC_CHUNK_SIZE + off + k);
                b->fill += k;
                s->size += k;
                p += k;
                n -= k;
        }
        return 0;
}

int age_sealer_stream_write(void *userdata, const void *buf, size_t n) {
        return age_sealer_write(userdata, buf, n);
}

int age_sealer_finish(AgeSealer *s) {
        Batch *b;
        int r;

        assert_return(s, -EINVAL);

        if (s->error < 0)
                return s->error;
        if (s->finished)
                return -ESTALE;

        b = &s->batch[s->cur];
        r = batch_alloc(b);
        if (r < 0)
                return (s->error = r);

        /* The final chunk is never empty unless the whole payload is (c2sp.org/age): a batch is
         * only flushed once more data has arrived, so this one is empty only for empty input. */
        assert_se(b->fill > 0 || s->counter == 0);
        batch_prepare_plain(b, &s->counter, true);
        r = sealer_emit(s, b);
        if (r >= 0)
                r = writeback_finish(&s->wb);
        if (r < 0)
                return (s->error = r);
        s->finished = true;
        return 0;
}

uint64_t age_sealer_plaintext_size(const AgeSealer *s) {
        return s ? s->size : 0;
}

/* The calling thread reads; a batch is numbered and encrypted once the next read tells whether it
 * holds the final chunk. */
static int seal_fd_pipelined(AgeSealer *s, int in_fd, int out_fd, bool *ret_ran) {
        _cleanup_(pipe_freep) Pipe *p = NULL;
        Batch *prev = NULL;
        int r;

        r = pipe_new(s->key, true, s->jobs, out_fd, &p);
        if (r < 0)
                return r;
        *ret_ran = true;

        for (;;) {
                Batch *b = pipe_acquire(p);
                if (!b)
                        break; /* the writer failed */

                r = fill_plain_fd(in_fd, b);
                if (r < 0) {
                        pipe_enqueue_error(p, prev ?: b, stream_error(r), "read error");
                        if (prev)
                                pipe_release(p, b);
                        break;
                }
                s->size += b->fill;

                if (prev) {
                        /* prev is full; it holds the final chunk only if nothing follows. */
                        batch_prepare_plain(prev, &s->counter, b->fill == 0);
                        pipe_submit(p, prev);
                        pipe_enqueue(p, prev);
                        prev = NULL;
                        if (b->fill == 0) {
                                pipe_release(p, b);
                                break;
                        }
                }
                if (b->eof_seen) {
                        /* A short batch ended at EOF (or the input is empty: one empty final chunk).
                         * Never read again after EOF: a terminal could give more, and a short
                         * chunk in the middle would make an invalid file. */
                        batch_prepare_plain(b, &s->counter, true);
                        pipe_submit(p, b);
                        pipe_enqueue(p, b);
                        break;
                }
                prev = b;
        }

        r = pipe_finish(p, NULL);
        if (r < 0)
                return r;
        s->finished = true;
        return 0;
}

int age_seal_fd(const AgeRecipient *recipients, size_t n_recipients, int in_fd, int out_fd, unsigned jobs) {
        _cleanup_(age_sealer_freep) AgeSealer *s = NULL;
        StreamWriter w = STREAM_WRITER_FD(out_fd);
        int r;

        assert_return(in_fd >= 0, -EBADF);
        assert_return(out_fd >= 0, -EBADF);

        r = age_sealer_new(recipients, n_recipients, &w, jobs, &s);
        if (r < 0)
                return r;
        input_advise_sequential(in_fd);

        if (s->jobs > 1 && fd_worth_pipelining(in_fd, BATCH_PLAIN_SIZE)) {
                bool ran = false;

                r = seal_fd_pipelined(s, in_fd, out_fd, &ran);
                if (ran || r != -EAGAIN)
                        return r;
                /* No threads to be had: nothing was read or written yet, do it here. */
        }
        writeback_init(&s->wb, out_fd);

        if (batch_alloc(&s->batch[0]) < 0 || batch_alloc(&s->batch[1]) < 0)
                return -ENOMEM;
        for (;;) {
                Batch *a = &s->batch[s->cur], *b = &s->batch[s->cur ^ 1];
                struct iovec iov[BATCH_CHUNKS + 1];
                size_t n_iov = 0, room;
                ssize_t k;

                /* Read straight into the free part of the slots, plus the first slot of the other
                 * batch: data arriving there is what tells us that this batch is not the last. */
                for (size_t pos = a->fill; pos < BATCH_PLAIN_SIZE;) {
                        size_t slot = pos / AGE_CHUNK_SIZE, off = pos % AGE_CHUNK_SIZE;
                        iov[n_iov++] = (struct iovec){a->buf + slot * AGE_ENC_CHUNK_SIZE + off,
                                                      AGE_CHUNK_SIZE - off};
                        pos += AGE_CHUNK_SIZE - off;
                }
                assert_se(b->fill == 0);
                iov[n_iov++] = (struct iovec){b->buf, AGE_CHUNK_SIZE};

                k = readv(in_fd, iov, (int) n_iov);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return stream_error(-errno);
                }
                if (k == 0)
                        break;

                room = BATCH_PLAIN_SIZE - a->fill;
                if ((size_t) k <= room)
                        a->fill += (size_t) k;
                else {
                        a->fill = BATCH_PLAIN_SIZE;
                        b->fill = (size_t) k - room;
                        batch_mark_used(b, b->fill);
                }
                batch_mark_used(a, DIV_ROUND_UP(a->fill, AGE_CHUNK_SIZE) * AGE_ENC_CHUNK_SIZE);
                s->size += (uint64_t) k;

                if (b->fill > 0) {
                        r = sealer_flush_full(s, a);
                        if (r < 0)
                                return r;
                        s->cur ^= 1;
                }
        }

        return age_sealer_finish(s);
}

/* ---- opening ------------------------------------------------------------------------------- */

struct AgeOpener {
        StreamReader in;
        uint8_t key[AGE_KEY_SIZE];
        EVP_CIPHER_CTX *ctx;
        Pool *pool;
        unsigned jobs;
        bool pool_tried;
        Batch batch;
        uint8_t *pre; /* ciphertext read along with the header, not yet in a batch */
        size_t pre_off, pre_size;
        uint64_t counter;
        /* Authenticated chunks of the batch not yet handed out: [rel_chunk, rel_n), rel_off bytes
         * of rel_chunk already gone. */
        size_t rel_chunk, rel_n, rel_off;
        int error; /* returned, sticky, once the released chunks are drained */
        bool done; /* the final chunk authenticated and EOF followed */
        const char *reason;
        uint64_t released;
        Writeback wb; /* age_open_fd() without threads; off for the streaming API */
};

AgeOpener *age_opener_free(AgeOpener *o) {
        if (!o)
                return NULL;
        pool_free(o->pool);
        EVP_CIPHER_CTX_free(o->ctx);
        batch_done(&o->batch);
        free(o->pre);
        OPENSSL_cleanse(o->key, sizeof(o->key));
        free(o);
        return NULL;
}

static int opener_fail(AgeOpener *o, int error, const char *reason) {
        o->error = error;
        o->reason = reason;
        return error;
}

/* Has the line that ends a header ("---…", the first line starting with three dashes, since no
 * stanza line can) arrived completely? *scan remembers how far we looked. */
static bool header_end_seen(const uint8_t *buf, size_t size, size_t *scan) {
        while (*scan + 4 <= size) {
                const uint8_t *q = memmem(buf + *scan, size - *scan, "\n---", 4);

                if (!q) {
                        *scan = size - 3;
                        return false;
                }
                if (memchr(q + 4, '\n', size - (size_t) (q + 4 - buf)))
                        return true;
                *scan = (size_t) (q - buf);
                return false;
        }
        return false;
}

/* Read the header and the nonce; the rest of what was read stays in o->pre. */
static int opener_read_header(AgeOpener *o, AgeIdentity *const *identities, size_t n_identities,
                              const char **ret_reason) {
        _cleanup_(age_header_freep) AgeHeader *h = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t file_key[AGE_FILE_KEY_SIZE];
        size_t size = 0, alloc = 0, scan = 0;
        bool eof = false, parsed_once = false;
        int r;

        for (;;) {
                ssize_t k;

                /* Parse only when the answer can be final: the end line is complete, EOF, the size
                 * limit, or the first bytes (to refuse what is not age at once). Parsing after every
                 * read would be quadratic in the header size for a reader that trickles. */
                if (!h && (eof || size >= AGE_HEADER_SIZE_MAX || (!parsed_once && size > 0) ||
                           header_end_seen(buf, size, &scan))) {
                        parsed_once = true;
                        r = age_header_parse(buf, size, &h, ret_reason);
                        if (r < 0 && r != -EAGAIN)
                                return r;
                        if (r == -EAGAIN && eof) {
                                age_set_reason(ret_reason, "file ends inside the header");
                                return -EBADMSG;
                        }
                }
                if (h && (size - h->size >= AGE_NONCE_SIZE || eof))
                        break;

                if (size == alloc) {
                        size_t n = alloc == 0 ? HEADER_READ_SIZE : alloc * 2;
                        uint8_t *b;

                        /* The parser fails past AGE_HEADER_SIZE_MAX; leave room for the nonce. */
                        if (alloc >= AGE_HEADER_SIZE_MAX + HEADER_READ_SIZE)
                                return -EBADMSG;
                        b = realloc(buf, n);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        alloc = n;
                }
                k = stream_read(&o->in, buf + size, alloc - size);
                if (k < 0)
                        return stream_error((int) k);
                if ((size_t) k > alloc - size)
                        return -EIO;
                if (k == 0)
                        eof = true;
                size += (size_t) k;
        }

        /* Same order as age: unwrap, then the MAC, and only then the nonce. */
        r = age_header_unwrap(h, buf, identities, n_identities, file_key, ret_reason);
        if (r < 0)
                return r;
        if (size - h->size < AGE_NONCE_SIZE) {
                OPENSSL_cleanse(file_key, sizeof(file_key));
                age_set_reason(ret_reason, "file ends before the payload nonce");
                return -EBADMSG;
        }
        r = age_payload_key(file_key, buf + h->size, o->key);
        OPENSSL_cleanse(file_key, sizeof(file_key));
        if (r < 0)
                return r;

        o->pre_off = h->size + AGE_NONCE_SIZE;
        o->pre_size = size;
        o->pre = TAKE_PTR(buf);
        return 0;
}

int age_opener_new(AgeIdentity *const *identities, size_t n_identities, const StreamReader *in,
                   unsigned jobs, AgeOpener **ret, const char **ret_reason) {
        _cleanup_(age_opener_freep) AgeOpener *o = NULL;
        int r;

        assert_return(identities || n_identities == 0, -EINVAL);
        assert_return(in && in->read, -EINVAL);
        assert_return(ret, -EINVAL);

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        o->in = *in;
        o->jobs = jobs_resolve(jobs);

        r = opener_read_header(o, identities, n_identities, ret_reason);
        if (r < 0)
                return r;
        o->ctx = chunk_ctx_new(o->key, false);
        if (!o->ctx)
                return -ENOMEM;

        *ret = TAKE_PTR(o);
        return 0;
}

/* Read a batch of ciphertext: what came with the header first, then until full or EOF. */
static int opener_fill(AgeOpener *o, Batch *b) {
        b->fill = 0;
        b->eof_seen = false;
        if (o->pre) {
                size_t n = o->pre_size - o->pre_off;
                /* At most the header read-ahead, which is far less than a batch. */
                assert_se(n <= BATCH_SIZE);
                memcpy(b->buf, o->pre + o->pre_off, n);
                b->fill = n;
                free(o->pre);
                o->pre = NULL;
        }
        while (b->fill < BATCH_SIZE) {
                ssize_t k = stream_read(&o->in, b->buf + b->fill, BATCH_SIZE - b->fill);
                if (k < 0) {
                        batch_mark_used(b, b->fill);
                        return stream_error((int) k);
                }
                if ((size_t) k > BATCH_SIZE - b->fill)
                        return -EIO;
                if (k == 0) {
                        b->eof_seen = true;
                        break;
                }
                b->fill += (size_t) k;
        }
        batch_mark_used(b, b->fill);
        return 0;
}

/* Read, decrypt and verify the next batch; set the release window, and the error or end state
 * that follows it. */
static int opener_next_batch(AgeOpener *o) {
        Batch *b = &o->batch;
        size_t n = 0;
        const char *reason = NULL;
        int r, v, next;

        r = batch_alloc(b);
        if (r < 0)
                return opener_fail(o, r, NULL);
        o->rel_chunk = o->rel_n = o->rel_off = 0;

        r = opener_fill(o, b);
        if (r < 0)
                return opener_fail(o, r, "read error");
        if (b->fill == 0)
                return opener_fail(o, -AGE_ERROR_PAYLOAD,
                                   o->counter == 0 ? "payload has no chunks"
                                                   : "payload truncated: no final chunk");
        batch_prepare_cipher(b, &o->counter);

        if (!o->pool && !o->pool_tried && o->jobs > 1 && b->n_chunks > 1) {
                o->pool_tried = true;
                o->pool = pool_new(o->jobs - 1, o->key, false);
        }
        pool_run(o->pool, o->ctx, b, false);

        /* Release, in order, everything up to the first chunk that does not authenticate. */
        next = b->eof_seen ? NEXT_EOF : NEXT_UNKNOWN;
        v = batch_verdict(b, next, &n, &reason);
        if (v == VERDICT_NEED_NEXT) {
                /* A final chunk ended a full batch: anything after it is an error. */
                uint8_t x;
                ssize_t k = stream_read(&o->in, &x, 1);

                next = k < 0 ? stream_error((int) k) : k > 0 ? NEXT_DATA : NEXT_EOF;
                v = batch_verdict(b, next, &n, &reason);
        }
        o->rel_n = n;
        if (v < 0)
                return opener_fail(o, v, reason);
        if (v == VERDICT_DONE)
                o->done = true;
        return 0;
}

ssize_t age_opener_read(AgeOpener *o, void *buf, size_t n) {
        assert_return(o, -EINVAL);
        assert_return(buf || n == 0, -EINVAL);

        if (n == 0)
                return 0;
        for (;;) {
                while (o->rel_chunk < o->rel_n) {
                        size_t avail = chunk_plain_size(&o->batch, o->rel_chunk) - o->rel_off, k;

                        if (avail == 0) {
                                o->rel_chunk++;
                                o->rel_off = 0;
                                continue;
                        }
                        k = MIN(n, avail);
                        memcpy(buf, o->batch.buf + o->rel_chunk * AGE_ENC_CHUNK_SIZE + o->rel_off, k);
                        o->rel_off += k;
                        o->released += k;
                        return (ssize_t) k;
                }
                if (o->error < 0)
                        return o->error;
                if (o->done)
                        return 0;
                (void) opener_next_batch(o);
        }
}

ssize_t age_opener_stream_read(void *userdata, void *buf, size_t n) {
        return age_opener_read(userdata, buf, n);
}

int age_opener_copy_to(AgeOpener *o, const StreamWriter *out) {
        int r;

        assert_return(o, -EINVAL);
        assert_return(out && out->write, -EINVAL);

        for (;;) {
                for (; o->rel_chunk < o->rel_n; o->rel_chunk++, o->rel_off = 0) {
                        size_t avail = chunk_plain_size(&o->batch, o->rel_chunk) - o->rel_off;

                        if (avail == 0)
                                continue;
                        r = stream_write(out, o->batch.buf + o->rel_chunk * AGE_ENC_CHUNK_SIZE + o->rel_off,
                                         avail);
                        if (r < 0)
                                return opener_fail(o, stream_error(r), "write error");
                        o->released += avail;
                }
                if (o->error < 0)
                        return o->error;
                if (o->done)
                        return 0;
                (void) opener_next_batch(o);
        }
}

/* Push all released chunks to an fd with one writev per batch. */
static int opener_drain_fd(AgeOpener *o, int fd) {
        writeback_init(&o->wb, fd);
        for (;;) {
                uint64_t before = o->released;
                int r;

                r = write_released_fd(fd, &o->batch, o->rel_chunk, o->rel_off, o->rel_n, &o->released);
                if (r >= 0)
                        r = writeback_account(&o->wb, o->released - before);
                if (r >= 0 && o->done)
                        r = writeback_finish(&o->wb);
                if (r < 0)
                        return opener_fail(o, stream_error(r), "write error");
                o->rel_chunk = o->rel_n;
                o->rel_off = 0;

                if (o->error < 0)
                        return o->error;
                if (o->done)
                        return 0;
                (void) opener_next_batch(o);
        }
}

/* The calling thread reads and decrypts each batch at once; the writer needs to know what follows
 * a batch before it judges it, so a batch is handed over once the next read has returned. */
static int opener_drain_fd_pipelined(AgeOpener *o, int fd, bool *ret_ran) {
        _cleanup_(pipe_freep) Pipe *p = NULL;
        Batch *prev = NULL;
        bool first = true;
        int r;

        r = pipe_new(o->key, false, o->jobs, fd, &p);
        if (r < 0)
                return r;
        *ret_ran = true;

        for (;;) {
                Batch *b = pipe_acquire(p);
                if (!b)
                        break; /* the writer reached a verdict */

                r = opener_fill(o, b);
                if (r < 0) {
                        if (prev) {
                                prev->next = r;
                                pipe_enqueue(p, prev);
                                pipe_release(p, b);
                        } else
                                pipe_enqueue_error(p, b, r, "read error");
                        break;
                }
                if (prev) {
                        prev->next = b->fill > 0 ? NEXT_DATA : NEXT_EOF;
                        pipe_enqueue(p, prev);
                        prev = NULL;
                }
                if (b->fill == 0) {
                        if (first)
                                pipe_enqueue_error(p, b, -AGE_ERROR_PAYLOAD, "payload has no chunks");
                        else
                                pipe_release(p, b);
                        break;
                }
                first = false;
                batch_prepare_cipher(b, &o->counter);
                pipe_submit(p, b);
                if (b->eof_seen) {
                        b->next = NEXT_EOF;
                        pipe_enqueue(p, b);
                        break;
                }
                prev = b;
        }

        r = pipe_finish(p, &o->reason);
        o->released += p->written;
        if (r < 0)
                return opener_fail(o, r, o->reason);
        o->done = true;
        return 0;
}

const char *age_opener_reason(const AgeOpener *o) {
        return o ? o->reason : NULL;
}

uint64_t age_opener_plaintext_size(const AgeOpener *o) {
        return o ? o->released : 0;
}

int age_open_stream(AgeIdentity *const *identities, size_t n_identities, const StreamReader *in,
                    const StreamWriter *out, unsigned jobs, const char **ret_reason) {
        _cleanup_(age_opener_freep) AgeOpener *o = NULL;
        int r;

        r = age_opener_new(identities, n_identities, in, jobs, &o, ret_reason);
        if (r < 0)
                return r;
        r = age_opener_copy_to(o, out);
        if (r < 0)
                age_set_reason(ret_reason, o->reason);
        return r;
}

int age_open_fd(AgeIdentity *const *identities, size_t n_identities, int in_fd, int out_fd, unsigned jobs,
                const char **ret_reason) {
        _cleanup_(age_opener_freep) AgeOpener *o = NULL;
        StreamReader rd = STREAM_READER_FD(in_fd);
        int r;

        assert_return(in_fd >= 0, -EBADF);
        assert_return(out_fd >= 0, -EBADF);

        input_advise_sequential(in_fd);
        r = age_opener_new(identities, n_identities, &rd, jobs, &o, ret_reason);
        if (r < 0)
                return r;

        if (o->jobs > 1 && fd_worth_pipelining(in_fd, BATCH_SIZE)) {
                bool ran = false;

                r = opener_drain_fd_pipelined(o, out_fd, &ran);
                /* Without threads nothing was read yet: then do it all here. */
                if (!ran && r == -EAGAIN)
                        r = opener_drain_fd(o, out_fd);
        } else
                r = opener_drain_fd(o, out_fd);
        if (r < 0)
                age_set_reason(ret_reason, o->reason);
        return r;
}
