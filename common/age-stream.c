/* SPDX-License-Identifier: Apache-2.0 */

/*
 * age v1 payload: STREAM over ChaCha20-Poly1305 in 64 KiB chunks (c2sp.org/age, "Payload").
 *
 * Chunks are independent given their counter, so we work in batches of BATCH_CHUNKS chunks and
 * let a few worker threads (plus the calling thread) process the chunks of a batch in parallel.
 * A batch buffer holds BATCH_CHUNKS slots of 64 KiB + 16 bytes: sealing encrypts each plaintext
 * slot in place and writes its tag right behind it, so a whole batch of ciphertext is one
 * contiguous write; opening reads a contiguous run of ciphertext and decrypts each chunk in place,
 * so the plaintext is handed out (or writev'd) straight from where it was decrypted. The only
 * copy is the one into or out of the caller's buffer in the push/pull APIs, and none in the
 * fd-to-fd functions. I/O callbacks are only ever called from the calling thread.
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
#include <signal.h>
#include <sys/uio.h>

#include "age-internal.h"
#include "fileio.h"

#define BATCH_CHUNKS     32U
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
        bool last_final; /* seal: the last chunk gets the last-chunk flag */
        bool at_eof;     /* open: the input ended right after this batch */
        uint32_t size[BATCH_CHUNKS]; /* seal: plaintext bytes; open: ciphertext bytes with the tag */
        int8_t result[BATCH_CHUNKS];
} Batch;

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
        if (r == -AGE_ERROR_NO_MATCH || r == -AGE_ERROR_HEADER || r == -AGE_ERROR_HMAC || r == -AGE_ERROR_PAYLOAD)
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

typedef struct Pool {
        pthread_mutex_t mutex;
        pthread_cond_t work, done;
        pthread_t threads[AGE_JOBS_MAX];
        unsigned n_threads;
        const uint8_t *key; /* the owner's payload key, outlives the pool */
        bool encrypt;
        Batch *batch; /* the batch being processed, or NULL */
        size_t next;  /* next chunk index to hand out */
        size_t pending;
        bool quit;
} Pool;

static void *pool_worker(void *userdata) {
        Pool *p = userdata;
        EVP_CIPHER_CTX *ctx = chunk_ctx_new(p->key, p->encrypt);

        pthread_mutex_lock(&p->mutex);
        for (;;) {
                Batch *b;
                size_t i;

                /* Without a context this worker just never takes work; the caller always does. */
                while (!p->quit && (!ctx || !p->batch || p->next >= p->batch->n_chunks))
                        pthread_cond_wait(&p->work, &p->mutex);
                if (p->quit)
                        break;
                b = p->batch;
                i = p->next++;
                pthread_mutex_unlock(&p->mutex);

                b->result[i] = process_chunk(ctx, b, i, p->encrypt);

                pthread_mutex_lock(&p->mutex);
                if (--p->pending == 0)
                        pthread_cond_signal(&p->done);
        }
        pthread_mutex_unlock(&p->mutex);
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
}

static Pool *pool_free(Pool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->mutex);
        p->quit = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->mutex);
        for (unsigned i = 0; i < p->n_threads; i++)
                (void) pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->work);
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->mutex);
        free(p);
        return NULL;
}

/* Start n_threads workers; fewer (or none: NULL) when threads cannot be had, which only costs speed. */
static Pool *pool_new(unsigned n_threads, const uint8_t *key, bool encrypt) {
        sigset_t all, old;
        Pool *p;

        if (n_threads == 0)
                return NULL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        pthread_mutex_init(&p->mutex, NULL);
        pthread_cond_init(&p->work, NULL);
        pthread_cond_init(&p->done, NULL);
        p->key = key;
        p->encrypt = encrypt;

        /* Workers must never receive process signals (the daemon and agent handle those in the
         * main thread); a new thread inherits the creating thread's mask. */
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        for (unsigned i = 0; i < MIN(n_threads, AGE_JOBS_MAX); i++) {
                if (pthread_create(&p->threads[p->n_threads], NULL, pool_worker, p) != 0)
                        break;
                p->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);

        if (p->n_threads == 0)
                return pool_free(p);
        return p;
}

/* Process every chunk of b, in parallel when there is a pool; returns when all are done. */
static void pool_run(Pool *p, EVP_CIPHER_CTX *ctx, Batch *b, bool encrypt) {
        if (!p || b->n_chunks < 2) {
                for (size_t i = 0; i < b->n_chunks; i++)
                        b->result[i] = process_chunk(ctx, b, i, encrypt);
                return;
        }

        pthread_mutex_lock(&p->mutex);
        p->batch = b;
        p->next = 0;
        p->pending = b->n_chunks;
        pthread_cond_broadcast(&p->work);
        while (p->next < b->n_chunks) {
                size_t i = p->next++;
                pthread_mutex_unlock(&p->mutex);
                b->result[i] = process_chunk(ctx, b, i, encrypt);
                pthread_mutex_lock(&p->mutex);
                p->pending--;
        }
        while (p->pending > 0)
                pthread_cond_wait(&p->done, &p->mutex);
        p->batch = NULL;
        pthread_mutex_unlock(&p->mutex);
}

static unsigned jobs_resolve(unsigned jobs) {
        if (jobs == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                jobs = n > 0 ? (unsigned) MIN(n, (long) AGE_JOBS_MAX) : 1;
        }
        return MIN(jobs, AGE_JOBS_MAX);
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

int age_sealer_new(const AgeRecipient *recipients, size_t n_recipients, const StreamWriter *out, unsigned jobs,
                   AgeSealer **ret) {
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

/* Encrypt a prepared batch and write it out. */
static int sealer_emit(AgeSealer *s, Batch *b) {
        size_t total = 0;
        int r;

        if (!s->pool && !s->pool_tried && s->jobs > 1 && b->n_chunks > 1) {
                s->pool_tried = true;
                s->pool = pool_new(s->jobs - 1, s->key, true);
        }
        b->first_counter = s->counter;
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
        s->counter += b->n_chunks;
        b->fill = 0;
        return 0;
}

/* A full batch, known not to hold the last chunk because more data follows. */
static int sealer_flush_full(AgeSealer *s, Batch *b) {
        assert_se(b->fill == BATCH_PLAIN_SIZE);
        b->n_chunks = BATCH_CHUNKS;
        b->last_final = false;
        for (size_t i = 0; i < BATCH_CHUNKS; i++)
                b->size[i] = AGE_CHUNK_SIZE;
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
        b->n_chunks = b->fill == 0 ? 1 : DIV_ROUND_UP(b->fill, AGE_CHUNK_SIZE);
        for (size_t i = 0; i < b->n_chunks; i++)
                b->size[i] = (uint32_t) MIN((size_t) AGE_CHUNK_SIZE, b->fill - i * AGE_CHUNK_SIZE);
        b->last_final = true;

        r = sealer_emit(s, b);
        if (r < 0)
                return (s->error = r);
        s->finished = true;
        return 0;
}

uint64_t age_sealer_plaintext_size(const AgeSealer *s) {
        return s ? s->size : 0;
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
                        iov[n_iov++] = (struct iovec){a->buf + slot * AGE_ENC_CHUNK_SIZE + off, AGE_CHUNK_SIZE - off};
                        pos += AGE_CHUNK_SIZE - off;
                }
                assert_se(b->fill == 0);
                iov[n_iov++] = (struct iovec){b->buf, AGE_CHUNK_SIZE};

                k = readv(in_fd, iov, (int) n_iov);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
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

/* Read the header and the nonce; the rest of what was read stays in o->pre. */
static int opener_read_header(AgeOpener *o, AgeIdentity *const *identities, size_t n_identities,
                              const char **ret_reason) {
        _cleanup_(age_header_freep) AgeHeader *h = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t file_key[AGE_FILE_KEY_SIZE];
        size_t size = 0, alloc = 0;
        bool eof = false;
        int r;

        for (;;) {
                ssize_t k;

                r = age_header_parse(buf, size, &h, ret_reason);
                if (r >= 0 && (size - h->size >= AGE_NONCE_SIZE || eof))
                        break;
                if (r < 0 && r != -EAGAIN)
                        return r;
                if (r == -EAGAIN && eof) {
                        age_set_reason(ret_reason, "file ends inside the header");
                        return -EBADMSG;
                }
                h = age_header_free(h);

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

int age_opener_new(AgeIdentity *const *identities, size_t n_identities, const StreamReader *in, unsigned jobs,
                   AgeOpener **ret, const char **ret_reason) {
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

/* Check that nothing follows the final chunk. */
static int opener_expect_eof(AgeOpener *o) {
        uint8_t x;
        ssize_t k;

        k = stream_read(&o->in, &x, 1);
        if (k < 0)
                return opener_fail(o, stream_error((int) k), "read error");
        if (k > 0)
                return opener_fail(o, -AGE_ERROR_PAYLOAD, "data after the final chunk");
        o->done = true;
        return 0;
}

/* Read, decrypt and verify the next batch; set the release window, and the error or end state
 * that follows it. */
static int opener_next_batch(AgeOpener *o) {
        Batch *b = &o->batch;
        bool eof = false;
        int r;

        r = batch_alloc(b);
        if (r < 0)
                return opener_fail(o, r, NULL);
        b->fill = 0;
        o->rel_chunk = o->rel_n = o->rel_off = 0;

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
                if (k < 0)
                        return opener_fail(o, stream_error((int) k), "read error");
                if ((size_t) k > BATCH_SIZE - b->fill)
                        return opener_fail(o, -EIO, "read error");
                if (k == 0) {
                        eof = true;
                        break;
                }
                b->fill += (size_t) k;
        }

        batch_mark_used(b, b->fill);
        if (b->fill == 0)
                return opener_fail(o, -AGE_ERROR_PAYLOAD,
                                   o->counter == 0 ? "payload has no chunks" : "payload truncated: no final chunk");

        b->at_eof = eof;
        b->first_counter = o->counter;
        b->n_chunks = DIV_ROUND_UP(b->fill, AGE_ENC_CHUNK_SIZE);
        for (size_t i = 0; i < b->n_chunks; i++)
                b->size[i] = (uint32_t) MIN((size_t) AGE_ENC_CHUNK_SIZE, b->fill - i * AGE_ENC_CHUNK_SIZE);

        if (!o->pool && !o->pool_tried && o->jobs > 1 && b->n_chunks > 1) {
                o->pool_tried = true;
                o->pool = pool_new(o->jobs - 1, o->key, false);
        }
        pool_run(o->pool, o->ctx, b, false);
        o->counter += b->n_chunks;

        /* Release, in order, everything up to the first chunk that does not authenticate. */
        for (size_t i = 0; i < b->n_chunks; i++) {
                switch (b->result[i]) {
                case CHUNK_MORE:
                        o->rel_n = i + 1;
                        if (i + 1 == b->n_chunks && eof)
                                return opener_fail(o, -AGE_ERROR_PAYLOAD, "payload truncated: no final chunk");
                        break;
                case CHUNK_FINAL:
                        o->rel_n = i + 1;
                        if (i + 1 < b->n_chunks)
                                return opener_fail(o, -AGE_ERROR_PAYLOAD, "data after the final chunk");
                        if (!eof)
                                return opener_expect_eof(o);
                        o->done = true;
                        return 0;
                case CHUNK_BAD_EMPTY:
                        return opener_fail(o, -AGE_ERROR_PAYLOAD, "empty final chunk after other chunks");
                case CHUNK_BAD_SHORT:
                        return opener_fail(o, -AGE_ERROR_PAYLOAD, "payload chunk shorter than its tag");
                case CHUNK_BAD_TAG:
                        return opener_fail(o, -AGE_ERROR_PAYLOAD, "payload chunk does not authenticate");
                default:
                        return opener_fail(o, -EIO, "decryption failed");
                }
        }
        return 0;
}

static size_t chunk_plain_size(const Batch *b, size_t i) {
        return b->size[i] - AGE_TAG_SIZE;
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
                        r = stream_write(out, o->batch.buf + o->rel_chunk * AGE_ENC_CHUNK_SIZE + o->rel_off, avail);
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

/* Push all released chunks to an fd with one writev per batch. */
static int opener_drain_fd(AgeOpener *o, int fd) {
        for (;;) {
                struct iovec iov[BATCH_CHUNKS];
                size_t n_iov = 0, total = 0;
                int r;

                for (size_t i = o->rel_chunk; i < o->rel_n; i++) {
                        size_t off = i == o->rel_chunk ? o->rel_off : 0, len = chunk_plain_size(&o->batch, i) - off;
                        if (len == 0)
                                continue;
                        iov[n_iov++] = (struct iovec){o->batch.buf + i * AGE_ENC_CHUNK_SIZE + off, len};
                        total += len;
                }
                r = writev_all(fd, iov, n_iov);
                if (r < 0)
                        return opener_fail(o, stream_error(r), "write error");
                o->released += total;
                o->rel_chunk = o->rel_n;
                o->rel_off = 0;

                if (o->error < 0)
                        return o->error;
                if (o->done)
                        return 0;
                (void) opener_next_batch(o);
        }
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

        r = age_opener_new(identities, n_identities, &rd, jobs, &o, ret_reason);
        if (r < 0)
                return r;
        r = opener_drain_fd(o, out_fd);
        if (r < 0)
                age_set_reason(ret_reason, o->reason);
        return r;
}
