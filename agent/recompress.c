/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "fileio.h"
#include "parse-util.h"
#include "recompress.h"

static const char *const tensor_action_table[_TENSOR_ACTION_MAX] = {
        [TENSOR_COPY] = "copy",
        [TENSOR_HALF] = "convert",
        [TENSOR_INT8] = "int8",
        [TENSOR_PRUNE] = "prune",
};

const char *tensor_action_to_string(TensorAction a) {
        if (a < 0 || a >= _TENSOR_ACTION_MAX)
                return NULL;
        return tensor_action_table[a];
}


/* Prefix an error already set by a lower layer with the file it is about. */
static int prefix_error(char **ret_error, int r, const char *name) {
        _cleanup_free_ char *q = safetensors_sanitize_name(name);

        if (ret_error && *ret_error) {
                _cleanup_free_ char *m = TAKE_PTR(*ret_error);
                return safetensors_set_error(ret_error, r, "%s: %s", strna(q), m);
        }
        return safetensors_set_error(ret_error, r, "%s: %s", strna(q), strerror(-r));
}

/* ---- planning ---- */

RecompressPlan *recompress_plan_free(RecompressPlan *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_tensors; i++)
                free(p->tensors[i].scale_name);
        free(p->tensors);
        safetensors_header_free(p->output);
        free(p);
        return NULL;
}

#define IN_SET_METHOD(m) ((m) == METHOD_FP16 || (m) == METHOD_BF16 || (m) == METHOD_INT8 || (m) == METHOD_PRUNE)

static bool name_skipped(const RecompressProfile *profile, const char *name) {
        STRV_FOREACH(g, profile->skip)
                if (fnmatch(*g, name, 0) == 0)
                        return true;
        return false;
}

static uint64_t prune_count(double sparsity, uint64_t n) {
        long double k = floorl((long double) sparsity * (long double) n + 0.5L);

        if (k <= 0)
                return 0;
        if (k >= (long double) n)
                return n;
        return (uint64_t) k;
}

int recompress_plan(const RecompressProfile *profile, const SafetensorsHeader *in, RecompressPlan **ret,
                    char **ret_error) {
        _cleanup_(recompress_plan_freep) RecompressPlan *p = NULL;
        json_t *names = NULL;
        int r = 0;

        assert_return(profile && in && ret, -EINVAL);

        if (!IN_SET_METHOD(profile->method))
                return safetensors_set_error(ret_error, -EOPNOTSUPP, "method '%s' is not a built-in re-compression method",
                                 strna(recompress_method_to_string(profile->method)));
        if (profile->method == METHOD_PRUNE && !(profile->sparsity >= 0.0 && profile->sparsity <= 1.0))
                return safetensors_set_error(ret_error, -EINVAL, "sparsity %g is not within [0, 1]", profile->sparsity);

        p = calloc(1, sizeof(RecompressPlan));
        if (!p)
                return -ENOMEM;
        p->method = profile->method;
        p->passes = 1;
        p->tensors = calloc(MAX(in->n_tensors, (size_t) 1), sizeof(TensorPlan));
        p->output = safetensors_header_new();
        if (!p->tensors || !p->output)
                return -ENOMEM;
        p->n_tensors = in->n_tensors;
        if (in->metadata) {
                p->output->metadata = json_deep_copy(in->metadata);
                if (!p->output->metadata)
                        return -ENOMEM;
        }

        /* The input names as a set, to refuse a scale name that is already taken. */
        if (profile->method == METHOD_INT8) {
                names = json_object();
                if (!names)
                        return -ENOMEM;
                for (size_t i = 0; i < in->n_tensors; i++)
                        if (json_object_set_new(names, in->tensors[i].name, json_true()) < 0) {
                                json_decref(names);
                                return -ENOMEM;
                        }
        }

        for (size_t i = 0; i < in->n_tensors; i++) {
                const SafetensorsTensor *t = &in->tensors[i];
                TensorPlan *tp = &p->tensors[i];
                size_t esize = safetensors_dtype_bits(t->dtype) / 8;
                uint64_t cols = 1, row_bytes;

                *tp = (TensorPlan) {
                        .action = TENSOR_COPY,
                        .to = t->dtype,
                };
                for (size_t d = 1; d < t->n_dims; d++)
                        cols *= t->shape[d]; /* cannot overflow: the whole product was checked */

                if (name_skipped(profile, t->name))
                        tp->reason = "matches a skip pattern";
                else if (!safetensors_dtype_is_float(t->dtype))
                        tp->reason = "not a floating-point tensor";
                else
                        switch (profile->method) {
                        case METHOD_FP16:
                        case METHOD_BF16: {
                                SafetensorsDtype to = profile->method == METHOD_FP16 ? ST_F16 : ST_BF16;
                                if (t->dtype == to)
                                        tp->reason = "already in the target dtype";
                                else {
                                        tp->action = TENSOR_HALF;
                                        tp->to = to;
                                }
                                break;
                        }
                        case METHOD_INT8: {
                                const char *e = endswith(t->name, ".weight");
                                if (!e || e == t->name)
                                        tp->reason = "not a weight (name does not end in .weight)";
                                else if (t->n_dims < 2)
                                        tp->reason = "fewer than 2 dimensions";
                                else if (t->n_elements == 0)
                                        tp->reason = "empty tensor";
                                else if (MUL_OVERFLOW(cols, (uint64_t) esize, &row_bytes) ||
                                         row_bytes > RECOMPRESS_ROW_MAX)
                                        tp->reason = "a row is larger than 16 MiB";
                                else if (t->shape[0] > RECOMPRESS_SCALES_MAX / sizeof(float))
                                        tp->reason = "more than 4 Mi rows";
                                else {
                                        tp->action = TENSOR_INT8;
                                        tp->to = ST_I8;
                                        tp->rows = t->shape[0];
                                        tp->cols = cols;
                                        if (asprintf(&tp->scale_name, "%s_scale", t->name) < 0) {
                                                tp->scale_name = NULL;
                                                r = -ENOMEM;
                                                goto finish;
                                        }
                                        if (json_object_get(names, tp->scale_name)) {
                                                _cleanup_free_ char *q = safetensors_sanitize_name(tp->scale_name);
                                                r = safetensors_set_error(ret_error, -EEXIST,
                                                              "tensor '%s' already exists: is the model quantised already?",
                                                              strna(q));
                                                goto finish;
                                        }
                                }
                                break;
                        }
                        case METHOD_PRUNE:
                                if (t->n_dims < 2)
                                        tp->reason = "fewer than 2 dimensions";
                                else if (t->n_elements == 0)
                                        tp->reason = "empty tensor";
                                else {
                                        tp->action = TENSOR_PRUNE;
                                        tp->rows = t->shape[0];
                                        tp->cols = cols;
                                        tp->prune_k = prune_count(profile->sparsity, t->n_elements);
                                        if (tp->prune_k > 0)
                                                p->passes = MAX(p->passes, quant_prune_levels(t->dtype) + 1);
                                }
                                break;
                        default:
                                assert_not_reached();
                        }

                r = safetensors_header_add(p->output, t->name, tp->to, t->shape, t->n_dims);
                if (r < 0)
                        goto finish;
                if (tp->action == TENSOR_INT8) {
                        uint64_t shape[2] = { tp->rows, 1 };
                        r = safetensors_header_add(p->output, tp->scale_name, ST_F32, shape, 2);
                        if (r < 0)
                                goto finish;
                }
        }

        if (profile->method == METHOD_INT8) {
                json_t *qc = recompress_quantization_config(p);
                _cleanup_free_ char *s = NULL;

                if (!qc) {
                        r = -ENOMEM;
                        goto finish;
                }
                s = json_dumps(qc, JSON_COMPACT | JSON_PRESERVE_ORDER);
                json_decref(qc);
                if (!s) {
                        r = -ENOMEM;
                        goto finish;
                }
                r = safetensors_header_set_metadata(p->output, "quantization_config", s);
                if (r < 0)
                        goto finish;
        }

finish:
        json_decref(names);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

json_t *recompress_quantization_config(const RecompressPlan *plan) {
        json_t *targets, *qc;

        if (!plan || plan->method != METHOD_INT8)
                return NULL;
        targets = json_array();
        if (!targets)
                return NULL;
        for (size_t i = 0; i < plan->n_tensors; i++) {
                if (plan->tensors[i].action != TENSOR_INT8)
                        continue;
                /* The module name: the scale name without ".weight_scale". */
                const char *s = plan->tensors[i].scale_name;
                size_t n = strlen(s) - strlen(".weight_scale");
                if (json_array_append_new(targets, json_stringn(s, n)) < 0) {
                        json_decref(targets);
                        return NULL;
                }
        }

        /* compressed-tensors' QuantizationConfig for weight-only, symmetric, per-channel int8 in
         * the "int-quantized" format (the weight stored as int8 of its own shape, the scale as
         * "<module>.weight_scale" [rows, 1], no zero point since it is symmetric). */
        qc = json_pack("{s:s, s:s, s:s, s:{s:{s:o, s:{s:i, s:s, s:b, s:s, s:n, s:n, s:b, s:n, s:s, s:{}},"
                       " s:n, s:n}}, s:[], s:n, s:n}",
                       "quant_method", "compressed-tensors",
                       "format", "int-quantized",
                       "quantization_status", "compressed",
                       "config_groups",
                       "group_0",
                       "targets", targets,
                       "weights",
                       "num_bits", 8,
                       "type", "int",
                       "symmetric", 1,
                       "strategy", "channel",
                       "group_size",
                       "block_structure",
                       "dynamic", 0,
                       "actorder",
                       "observer", "minmax",
                       "observer_kwargs",
                       "input_activations",
                       "output_activations",
                       "ignore",
                       "kv_cache_scheme",
                       "global_compression_ratio");
        return qc;
}

/* ---- streaming ---- */

/*
 * Three stages in three threads, so that reading (and an age opener's decryption), the kernels and
 * writing (and an age sealer's encryption) overlap on a multi-core host:
 *
 *   reader thread ──ring of input blocks──▶ main thread (kernels) ──ring of output blocks──▶ writer thread
 *
 * The block sizes follow from the header and the plan alone (tensor_block()), so the reader cuts
 * the stream exactly where the main thread expects it, and the kernels work in place in the input
 * block: no copy. Memory: RING input and RING output blocks of buf_size bytes each.
 */
#define RING 3

typedef struct Ring {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint8_t *buf[RING];
        size_t len[RING];
        unsigned head, count; /* next slot to fill; filled slots */
        int error;            /* set by the producer (reader) or the consumer (writer) */
        size_t error_tensor;  /* reader: the tensor whose data it was reading */
        bool done;            /* the producer has nothing more */
        bool stop;            /* the other side gave up: stop as soon as possible */
        bool inited;
} Ring;

typedef struct Ctx {
        const RecompressProfile *profile;
        const RecompressInput *in;
        const char *name;
        const SafetensorsHeader *h;
        RecompressPlan *plan;
        StreamReader r;
        bool r_open;
        SafetensorsWriter *w;
        size_t buf_size;
        float *scales;
        uint64_t *hist;
        PruneSelect *select;
        QuantStats *stats;
        char **ret_error;

        uint64_t progress_done, progress_total, progress_reported; /* input bytes, every pass */

        bool final_pass;      /* the writing pass (else a prune histogram pass) */
        Ring rin, rout;
        bool reader_running, writer_running;
        pthread_t reader, writer;
} Ctx;

static void ring_done(Ring *g) {
        for (unsigned i = 0; i < RING; i++) {
                free(g->buf[i]);
                g->buf[i] = NULL;
        }
        if (g->inited) {
                pthread_cond_destroy(&g->cond);
                pthread_mutex_destroy(&g->lock);
                g->inited = false;
        }
}

static int ring_init(Ring *g, size_t size) {
        *g = (Ring) {};
        if (pthread_mutex_init(&g->lock, NULL) != 0)
                return -ENOMEM;
        if (pthread_cond_init(&g->cond, NULL) != 0) {
                pthread_mutex_destroy(&g->lock);
                return -ENOMEM;
        }
        g->inited = true;
        for (unsigned i = 0; i < RING; i++) {
                g->buf[i] = malloc(size);
                if (!g->buf[i]) {
                        ring_done(g);
                        return -ENOMEM;
                }
        }
        return 0;
}

static void ring_reset(Ring *g) {
        pthread_mutex_lock(&g->lock);
        g->head = g->count = 0;
        g->error = 0;
        g->done = g->stop = false;
        pthread_mutex_unlock(&g->lock);
}

/* Producer: a free slot to fill, or NULL when the consumer stopped. */
static uint8_t *ring_acquire(Ring *g) {
        uint8_t *b = NULL;

        pthread_mutex_lock(&g->lock);
        while (g->count == RING && !g->stop && g->error == 0)
                pthread_cond_wait(&g->cond, &g->lock);
        if (!g->stop && g->error == 0)
                b = g->buf[g->head];
        pthread_mutex_unlock(&g->lock);
        return b;
}

static void ring_push(Ring *g, size_t n) {
        pthread_mutex_lock(&g->lock);
        g->len[g->head] = n;
        g->head = (g->head + 1) % RING;
        g->count++;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

/* Consumer: the oldest filled slot; NULL at the end (done), when stopped, or on an error of the
 * producer (*ret_error) once the slots it filled before the error are consumed. */
static const uint8_t *ring_peek(Ring *g, size_t *ret_len, int *ret_error) {
        const uint8_t *b = NULL;

        pthread_mutex_lock(&g->lock);
        while (g->count == 0 && !g->done && g->error == 0 && !g->stop)
                pthread_cond_wait(&g->cond, &g->lock);
        *ret_error = g->count > 0 ? 0 : g->error;
        if (g->count > 0 && !g->stop) {
                unsigned tail = (g->head + RING - g->count) % RING;
                b = g->buf[tail];
                *ret_len = g->len[tail];
        }
        pthread_mutex_unlock(&g->lock);
        return b;
}

static void ring_release(Ring *g) {
        pthread_mutex_lock(&g->lock);
        g->count--;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

static void ring_set(Ring *g, int error, size_t tensor, bool done, bool stop) {
        pthread_mutex_lock(&g->lock);
        if (error < 0 && g->error == 0) {
                g->error = error;
                g->error_tensor = tensor;
        }
        g->done = g->done || done;
        g->stop = g->stop || stop;
        pthread_cond_broadcast(&g->cond);
        pthread_mutex_unlock(&g->lock);
}

/* Wait until the consumer took everything (writer ring), or an error. */
static int ring_drain(Ring *g) {
        int r;

        pthread_mutex_lock(&g->lock);
        while (g->count > 0 && g->error == 0)
                pthread_cond_wait(&g->cond, &g->lock);
        r = g->error;
        pthread_mutex_unlock(&g->lock);
        return r;
}

static size_t elem_size(SafetensorsDtype d) {
        return safetensors_dtype_bits(d) / 8;
}

/* Does this pass compute on tensor i (rather than skip or copy its bytes)? */
static bool tensor_active(const Ctx *c, size_t i) {
        const TensorPlan *tp = &c->plan->tensors[i];

        if (c->final_pass)
                return tp->action != TENSOR_COPY;
        return tp->action == TENSOR_PRUNE && !quant_prune_select_done(&c->select[i], c->h->tensors[i].dtype);
}

/* The largest block of tensor i: whole elements, and whole rows for int8. Reader and main thread
 * cut the data with it identically. */
static size_t tensor_block(const Ctx *c, size_t i) {
        const SafetensorsTensor *t = &c->h->tensors[i];
        const TensorPlan *tp = &c->plan->tensors[i];
        size_t es = elem_size(t->dtype);

        if (!tensor_active(c, i))
                return c->buf_size;
        if (tp->action == TENSOR_INT8) {
                size_t row = (size_t) tp->cols * es;
                return MAX((size_t) 1, c->buf_size / row) * row;
        }
        return c->buf_size / es * es;
}

static void *reader_thread(void *userdata) {
        Ctx *c = userdata;
        int r = 0;

        for (size_t i = 0; i < c->h->n_tensors; i++) {
                const SafetensorsTensor *t = &c->h->tensors[i];
                size_t block = tensor_block(c, i);

                for (uint64_t off = t->begin; off < t->end;) {
                        size_t m = (size_t) MIN(t->end - off, (uint64_t) block);
                        uint8_t *b = ring_acquire(&c->rin);

                        if (!b)
                                return NULL;
                        r = stream_read_exact(&c->r, b, m);
                        if (r < 0) {
                                ring_set(&c->rin, r, i, false, false);
                                return NULL;
                        }
                        ring_push(&c->rin, m);
                        off += m;
                }
        }
        if (c->final_pass) {
                uint8_t b;
                ssize_t k = stream_read(&c->r, &b, 1);
                if (k != 0) {
                        ring_set(&c->rin, k < 0 ? (int) k : -EXFULL, c->h->n_tensors, false, false);
                        return NULL;
                }
        }
        ring_set(&c->rin, 0, 0, true, false);
        return NULL;
}

static void *writer_thread(void *userdata) {
        Ctx *c = userdata;

        for (;;) {
                const uint8_t *b;
                size_t n;
                int e, r;

                b = ring_peek(&c->rout, &n, &e);
                if (!b)
                        return NULL;
                r = safetensors_writer_write(c->w, b, n);
                if (r < 0) {
                        ring_set(&c->rout, r, 0, false, false);
                        return NULL;
                }
                ring_release(&c->rout);
        }
}

/* Small stacks: the threads only call the stream callbacks. Less address space under RLIMIT_AS. */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *userdata) {
        pthread_attr_t a;
        int r;

        if (pthread_attr_init(&a) != 0)
                return -ENOMEM;
        (void) pthread_attr_setstacksize(&a, 1 * MIB);
        r = pthread_create(t, &a, fn, userdata);
        pthread_attr_destroy(&a);
        return -r;
}

static void stop_reader(Ctx *c) {
        if (c->reader_running) {
                ring_set(&c->rin, 0, 0, false, true);
                pthread_join(c->reader, NULL);
                c->reader_running = false;
        }
}

static void stop_writer(Ctx *c) {
        if (c->writer_running) {
                ring_set(&c->rout, 0, 0, false, true);
                pthread_join(c->writer, NULL);
                c->writer_running = false;
        }
}

static void ctx_close_input(Ctx *c) {
        stop_reader(c);
        if (c->r_open) {
                if (c->in->close)
                        c->in->close(c->in->userdata, c->name, &c->r);
                c->r_open = false;
        }
}

static bool headers_equal(const SafetensorsHeader *a, const SafetensorsHeader *b) {
        if (a->n_tensors != b->n_tensors || a->data_size != b->data_size)
                return false;
        for (size_t i = 0; i < a->n_tensors; i++) {
                const SafetensorsTensor *x = &a->tensors[i], *y = &b->tensors[i];
                if (!streq(x->name, y->name) || x->dtype != y->dtype || x->begin != y->begin || x->end != y->end ||
                    x->n_dims != y->n_dims || memcmp(x->shape, y->shape, x->n_dims * sizeof(uint64_t)) != 0)
                        return false;
        }
        return true;
}

/* Open the input for one more pass and check that it is the file of the first one. */
static int ctx_reopen(Ctx *c) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        int r;

        ctx_close_input(c);
        r = c->in->open(c->in->userdata, c->name, &c->r);
        if (r < 0)
                return safetensors_set_error(c->ret_error, r, "cannot open again for the next pass: %s", strerror(-r));
        c->r_open = true;
        r = safetensors_read_header(&c->r, &h, NULL, c->ret_error);
        if (r < 0)
                return r;
        if (!headers_equal(h, c->h))
                return safetensors_set_error(c->ret_error, -ESTALE, "the file changed between passes");
        return 0;
}

static int ctx_start_pass(Ctx *c, bool final) {
        int r;

        c->final_pass = final;
        ring_reset(&c->rin);
        r = start_thread(&c->reader, reader_thread, c);
        if (r < 0)
                return safetensors_set_error(c->ret_error, r, "cannot start the reader thread: %s", strerror(-r));
        c->reader_running = true;
        return 0;
}

/* The next input block, of the size the main thread expects. */
static const uint8_t *ctx_next(Ctx *c, size_t expected, int *ret) {
        const uint8_t *b;
        size_t n = 0;
        int e;

        b = ring_peek(&c->rin, &n, &e);
        if (b) {
                assert_se(n == expected);
                return b;
        }
        if (e == -EPIPE && c->rin.error_tensor < c->h->n_tensors) {
                _cleanup_free_ char *q = safetensors_sanitize_name(c->h->tensors[c->rin.error_tensor].name);
                *ret = safetensors_set_error(c->ret_error, -EBADMSG, "data ends inside tensor '%s' (file truncated)", strna(q));
        } else if (e < 0)
                *ret = safetensors_set_error(c->ret_error, e, "read error in tensor data: %s", strerror(-e));
        else
                *ret = safetensors_set_error(c->ret_error, -EIO, "internal error: input ended early");
        return NULL;
}

/* A free output block; NULL when the writer failed. */
static uint8_t *ctx_out(Ctx *c, int *ret) {
        uint8_t *b = ring_acquire(&c->rout);

        if (!b) {
                int e = c->rout.error;
                *ret = safetensors_set_error(c->ret_error, e < 0 ? e : -EIO, "write error: %s", strerror(e < 0 ? -e : EIO));
        }
        return b;
}

static int ctx_emit(Ctx *c, const void *data, size_t n) {
        while (n > 0) {
                size_t m = MIN(n, c->buf_size);
                int r = 0;
                uint8_t *b = ctx_out(c, &r);
                if (!b)
                        return r;
                memcpy(b, data, m);
                ring_push(&c->rout, m);
                data = (const uint8_t *) data + m;
                n -= m;
        }
        return 0;
}

/* One block of tensor i at byte offset off (from the tensor's start). */
static int process_block(Ctx *c, size_t i, uint64_t off, const uint8_t *in, size_t m) {
        const SafetensorsTensor *t = &c->h->tensors[i];
        const TensorPlan *tp = &c->plan->tensors[i];
        size_t es = elem_size(t->dtype);
        uint8_t *out;
        int r = 0;

        if (!c->final_pass) {
                if (tensor_active(c, i))
                        quant_prune_histogram(t->dtype, in, m / es, c->select[i].level, c->select[i].prefix, c->hist);
                return 0;
        }

        out = ctx_out(c, &r);
        if (!out)
                return r;
        switch (tp->action) {
        case TENSOR_COPY:
                memcpy(out, in, m);
                break;
        case TENSOR_HALF:
                r = quant_convert_half(t->dtype, tp->to, in, out, m / es, &c->stats[i]);
                m = m / es * 2;
                break;
        case TENSOR_INT8: {
                size_t row_bytes = (size_t) tp->cols * es, rows = m / row_bytes;
                uint64_t row0 = off / row_bytes;

                for (size_t j = 0; j < rows; j++) {
                        r = quant_int8_row(t->dtype, in + j * row_bytes, (size_t) tp->cols, (int8_t *) out + j * tp->cols,
                                           &c->scales[row0 + j], &c->stats[i]);
                        if (r == -EDOM || r == -ERANGE) {
                                _cleanup_free_ char *q = safetensors_sanitize_name(t->name);
                                return safetensors_set_error(c->ret_error, r,
                                                 "tensor '%s' row %" PRIu64 " holds %s: it cannot be quantised to int8",
                                                 strna(q), row0 + j,
                                                 r == -EDOM ? "NaN or Inf" : "values beyond the float32 range");
                        }
                        if (r < 0)
                                return r;
                }
                m = rows * (size_t) tp->cols;
                break;
        }
        case TENSOR_PRUNE: {
                PruneSelect *s = &c->select[i];
                quant_prune_apply(t->dtype, in, out, m / es, s->k > 0 ? s->prefix : 0, &s->ties, &c->stats[i]);
                break;
        }
        default:
                assert_not_reached();
        }
        if (r < 0)
                return r;
        ring_push(&c->rout, m);
        return 0;
}

/* One pass over the data: every tensor, block by block, as the reader delivers them. */
static int run_pass(Ctx *c) {
        int r = 0;

        for (size_t i = 0; i < c->h->n_tensors; i++) {
                const SafetensorsTensor *t = &c->h->tensors[i];
                const TensorPlan *tp = &c->plan->tensors[i];
                size_t block = tensor_block(c, i);
                bool hist = !c->final_pass && tensor_active(c, i);

                if (hist)
                        memset(c->hist, 0, QUANT_PRUNE_BINS * sizeof(uint64_t));
                for (uint64_t off = 0; off < t->end - t->begin;) {
                        size_t m = (size_t) MIN(t->end - t->begin - off, (uint64_t) block);
                        const uint8_t *in = ctx_next(c, m, &r);
                        if (!in)
                                return r;
                        r = process_block(c, i, off, in, m);
                        ring_release(&c->rin);
                        if (r < 0)
                                return r;
                        off += m;
                        c->progress_done += m;
                        if (c->in->progress &&
                            (c->progress_done - c->progress_reported >= RECOMPRESS_PROGRESS_STEP ||
                             c->progress_done == c->progress_total)) {
                                c->in->progress(c->in->userdata, c->name, c->progress_done,
                                                c->progress_total);
                                c->progress_reported = c->progress_done;
                        }
                }
                if (hist)
                        quant_prune_select_step(&c->select[i], t->dtype, c->hist);
                /* The scale tensor follows its weight in the output. */
                if (c->final_pass && tp->action == TENSOR_INT8) {
                        r = ctx_emit(c, c->scales, (size_t) tp->rows * sizeof(float));
                        if (r < 0)
                                return r;
                }
        }

        /* The reader's verdict on the end of the file. */
        {
                size_t n;
                int e;
                const uint8_t *b = ring_peek(&c->rin, &n, &e);
                if (b || e == -EXFULL)
                        return safetensors_set_error(c->ret_error, -EBADMSG, "file has trailing bytes after the last tensor");
                if (e < 0)
                        return safetensors_set_error(c->ret_error, e, "read error: %s", strerror(-e));
        }
        stop_reader(c);
        return 0;
}

static json_t *json_real_or_null(double d) {
        return isfinite(d) ? json_real(d) : json_null();
}

static json_t *tensor_stats_json(const SafetensorsTensor *t, const TensorPlan *tp, const QuantStats *st) {
        if (tp->action == TENSOR_COPY)
                return json_pack("{s:s, s:s, s:s}", "action", "copy", "dtype", safetensors_dtype_to_string(t->dtype),
                                 "reason", tp->reason);
        return json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I, s:o}",
                         "action", tensor_action_to_string(tp->action),
                         "from", safetensors_dtype_to_string(t->dtype),
                         "to", safetensors_dtype_to_string(tp->to),
                         "elements", (json_int_t) st->elements,
                         "max_abs_error", json_real_or_null(st->max_abs_err),
                         "rel_rmse", json_real_or_null(quant_stats_rel_rmse(st)),
                         "overflow", (json_int_t) st->overflow,
                         "nonfinite", (json_int_t) st->nonfinite,
                         "zeroed", (json_int_t) st->zeroed,
                         "sparsity", json_real(st->elements > 0 ? (double) st->zeros / (double) st->elements : 0.0));
}

static json_t *build_stats(const Ctx *c, uint64_t in_bytes, uint64_t out_bytes) {
        json_t *tensors = json_object(), *root;
        QuantStats total = {};
        size_t converted = 0, copied = 0;

        if (!tensors)
                return NULL;
        for (size_t i = 0; i < c->h->n_tensors; i++) {
                const TensorPlan *tp = &c->plan->tensors[i];
                json_t *e = tensor_stats_json(&c->h->tensors[i], tp, &c->stats[i]);
                if (!e || json_object_set_new(tensors, c->h->tensors[i].name, e) < 0) {
                        json_decref(tensors);
                        return NULL;
                }
                if (tp->action == TENSOR_COPY)
                        copied++;
                else {
                        converted++;
                        quant_stats_merge(&total, &c->stats[i]);
                }
        }
        root = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:o}",
                         "method", recompress_method_to_string(c->plan->method),
                         "kernels", quant_kernel_name(),
                         "input_bytes", (json_int_t) in_bytes,
                         "output_bytes", (json_int_t) out_bytes,
                         "tensors_converted", (json_int_t) converted,
                         "tensors_copied", (json_int_t) copied,
                         "elements_converted", (json_int_t) total.elements,
                         "max_abs_error", json_real_or_null(total.max_abs_err),
                         "rel_rmse", json_real_or_null(quant_stats_rel_rmse(&total)),
                         "overflow", (json_int_t) total.overflow,
                         "nonfinite", (json_int_t) total.nonfinite,
                         "tensors", tensors);
        if (root && c->plan->method == METHOD_PRUNE && json_object_set_new(root, "sparsity", json_real(c->profile->sparsity)) < 0) {
                json_decref(root);
                return NULL;
        }
        return root;
}

static int stream_convert(const RecompressProfile *profile, const RecompressInput *in, const char *name,
                          const StreamWriter *out, json_t **ret_stats, SafetensorsHeader **ret_output,
                          QuantStats *ret_total, char **ret_error) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_(recompress_plan_freep) RecompressPlan *plan = NULL;
        _cleanup_(safetensors_writer_freep) SafetensorsWriter *w = NULL;
        _cleanup_free_ float *scales = NULL;
        _cleanup_free_ uint64_t *hist = NULL;
        _cleanup_free_ PruneSelect *select = NULL;
        _cleanup_free_ QuantStats *stats = NULL;
        uint64_t header_size, buf_size = RECOMPRESS_BLOCK_MAX, scales_max = 0;
        bool rings = false;
        Ctx c = {
                .profile = profile,
                .in = in,
                .name = name,
                .ret_error = ret_error,
        };
        json_t *js;
        int r;

        assert_return(profile && in && in->open && name && out, -EINVAL);

        r = in->open(in->userdata, name, &c.r);
        if (r < 0)
                return safetensors_set_error(ret_error, r, "cannot open: %s", strerror(-r));
        c.r_open = true;

        r = safetensors_read_header(&c.r, &h, &header_size, ret_error);
        if (r < 0)
                goto finish;
        c.h = h;
        r = recompress_plan(profile, h, &plan, ret_error);
        if (r < 0)
                goto finish;
        c.plan = plan;
        if (MUL_OVERFLOW((uint64_t) plan->passes, h->data_size, &c.progress_total))
                c.progress_total = UINT64_MAX;

        /* Blocks: RECOMPRESS_BLOCK_MAX, or one row where an int8 row is larger. */
        for (size_t i = 0; i < h->n_tensors; i++) {
                const TensorPlan *tp = &plan->tensors[i];
                if (tp->action == TENSOR_INT8) {
                        buf_size = MAX(buf_size, tp->cols * elem_size(h->tensors[i].dtype));
                        scales_max = MAX(scales_max, tp->rows * sizeof(float));
                }
        }
        c.buf_size = buf_size;
        stats = calloc(MAX(h->n_tensors, (size_t) 1), sizeof(QuantStats));
        select = calloc(MAX(h->n_tensors, (size_t) 1), sizeof(PruneSelect));
        if (!stats || !select) {
                r = -ENOMEM;
                goto finish;
        }
        if (scales_max > 0) {
                scales = malloc(scales_max);
                if (!scales) {
                        r = -ENOMEM;
                        goto finish;
                }
        }
        r = ring_init(&c.rin, buf_size);
        if (r >= 0) {
                r = ring_init(&c.rout, buf_size);
                if (r < 0)
                        ring_done(&c.rin);
        }
        if (r < 0)
                goto finish;
        rings = true;
        c.scales = scales;
        c.stats = stats;
        c.select = select;

        /* prune: the selection passes, all tensors of the file at once, one digit per pass. */
        for (size_t i = 0; i < h->n_tensors; i++)
                quant_prune_select_init(&select[i], plan->tensors[i].prune_k);
        if (plan->passes > 1) {
                hist = malloc(QUANT_PRUNE_BINS * sizeof(uint64_t));
                if (!hist) {
                        r = -ENOMEM;
                        goto finish;
                }
                c.hist = hist;
        }
        for (unsigned pass = 0; pass + 1 < plan->passes; pass++) {
                if (pass > 0) {
                        r = ctx_reopen(&c);
                        if (r < 0)
                                goto finish;
                }
                r = ctx_start_pass(&c, false);
                if (r < 0)
                        goto finish;
                r = run_pass(&c);
                if (r < 0)
                        goto finish;
        }
        if (plan->passes > 1) {
                r = ctx_reopen(&c);
                if (r < 0)
                        goto finish;
        }

        /* The writing pass: the header, then the data through the writer thread. */
        r = safetensors_writer_new(out, plan->output, &w);
        if (r < 0) {
                safetensors_set_error(ret_error, r, "cannot write the output header: %s", strerror(-r));
                goto finish;
        }
        c.w = w;
        r = start_thread(&c.writer, writer_thread, &c);
        if (r < 0) {
                safetensors_set_error(ret_error, r, "cannot start the writer thread: %s", strerror(-r));
                goto finish;
        }
        c.writer_running = true;
        r = ctx_start_pass(&c, true);
        if (r < 0)
                goto finish;
        r = run_pass(&c);
        if (r < 0)
                goto finish;
        r = ring_drain(&c.rout);
        stop_writer(&c);
        if (r < 0) {
                safetensors_set_error(ret_error, r, "write error: %s", strerror(-r));
                goto finish;
        }
        r = safetensors_writer_finish(w);
        if (r < 0) {
                safetensors_set_error(ret_error, r, "output incomplete");
                goto finish;
        }

        if (ret_stats) {
                _cleanup_free_ char *hb = NULL;
                size_t hn;

                r = safetensors_header_format(plan->output, &hb, &hn);
                if (r < 0)
                        goto finish;
                js = build_stats(&c, 8 + header_size + h->data_size, hn + plan->output->data_size);
                if (!js) {
                        r = -ENOMEM;
                        goto finish;
                }
                *ret_stats = js;
        }
        if (ret_total)
                for (size_t i = 0; i < h->n_tensors; i++)
                        if (plan->tensors[i].action != TENSOR_COPY)
                                quant_stats_merge(ret_total, &stats[i]);
        if (ret_output)
                *ret_output = TAKE_PTR(plan->output);
        r = 0;

finish:
        stop_writer(&c);
        ctx_close_input(&c);
        if (rings) {
                ring_done(&c.rin);
                ring_done(&c.rout);
        }
        return r;
}

int recompress_stream(const RecompressProfile *profile, const RecompressInput *in, const char *name,
                      const StreamWriter *out, json_t **ret_stats, SafetensorsHeader **ret_output,
                      char **ret_error) {
        return stream_convert(profile, in, name, out, ret_stats, ret_output, NULL, ret_error);
}

/* ---- whole models ---- */

static int read_small_file(const RecompressInput *in, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, alloc = 0;
        StreamReader r;
        int k;

        k = in->open(in->userdata, name, &r);
        if (k < 0)
                return k;
        for (;;) {
                ssize_t got;
                if (n == alloc) {
                        size_t na = alloc == 0 ? 64 * KIB : alloc * 2;
                        char *nb;
                        if (alloc > max) {
                                k = -EFBIG;
                                break;
                        }
                        nb = realloc(buf, na + 1);
                        if (!nb) {
                                k = -ENOMEM;
                                break;
                        }
                        buf = nb;
                        alloc = na;
                }
                got = stream_read(&r, buf + n, alloc - n);
                if (got < 0) {
                        k = (int) got;
                        break;
                }
                if (got == 0) {
                        k = 0;
                        break;
                }
                n += (size_t) got;
                if (n > max) {
                        k = -EFBIG;
                        break;
                }
        }
        if (in->close)
                in->close(in->userdata, name, &r);
        if (k < 0)
                return k;
        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

static int convert_one(const RecompressProfile *profile, const RecompressInput *in, const RecompressOutput *out,
                       const char *name, json_t **ret_stats, SafetensorsHeader **ret_output, QuantStats *total,
                       char **ret_error) {
        StreamWriter w;
        int r, k;

        r = out->open(out->userdata, name, &w);
        if (r < 0)
                return safetensors_set_error(ret_error, r, "%s: cannot create the output: %s", name, strerror(-r));
        r = stream_convert(profile, in, name, &w, ret_stats, ret_output, total, ret_error);
        k = out->close ? out->close(out->userdata, name, &w, r >= 0) : 0;
        if (r < 0)
                return prefix_error(ret_error, r, name);
        if (k < 0)
                return safetensors_set_error(ret_error, k, "%s: cannot finish the output: %s", name, strerror(-k));
        return 0;
}

static int add_file_totals(json_t *root, json_t *file) {
        static const char *const sums[] = { "input_bytes", "output_bytes", "tensors_converted", "tensors_copied" };

        for (size_t i = 0; i < ELEMENTSOF(sums); i++) {
                json_int_t a = json_integer_value(json_object_get(root, sums[i])),
                           b = json_integer_value(json_object_get(file, sums[i]));
                if (json_object_set_new(root, sums[i], json_integer(a + b)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The int8 quantization_config of a converted file, from its header metadata. */
static json_t *file_quantization_config(const SafetensorsHeader *h) {
        const char *s = json_string_value(json_object_get(h->metadata, "quantization_config"));
        return s ? json_loads(s, 0, NULL) : NULL;
}

static json_t *qc_targets(json_t *qc) {
        return json_object_get(json_object_get(json_object_get(qc, "config_groups"), "group_0"), "targets");
}

static int write_small_file(const RecompressOutput *out, const char *name, const char *data, size_t size) {
        StreamWriter w;
        int r, k;

        r = out->open(out->userdata, name, &w);
        if (r < 0)
                return r;
        r = stream_write(&w, data, size);
        k = out->close ? out->close(out->userdata, name, &w, r >= 0) : 0;
        return r < 0 ? r : k;
}

int recompress_model(const RecompressProfile *profile, const RecompressInput *in, const RecompressOutput *out,
                     const char *name, json_t **ret_stats, char **ret_error) {
        _cleanup_(safetensors_index_freep) SafetensorsIndex *idx = NULL;
        _cleanup_free_ SafetensorsHeader **outs = NULL;
        _cleanup_free_ char *text = NULL, *index_out = NULL;
        json_t *root = NULL, *files = NULL, *qc = NULL;
        QuantStats total = {};
        size_t size, n_outs = 0;
        int r;

        assert_return(profile && in && in->open && out && out->open && name, -EINVAL);

        if (!filename_is_safe(name))
                return safetensors_set_error(ret_error, -EINVAL, "'%s' is not a safe file name", name);

        files = json_object();
        root = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}",
                         "method", strna(recompress_method_to_string(profile->method)),
                         "tool", "modelkeeper " PACKAGE_VERSION,
                         "kernels", quant_kernel_name(),
                         "input_bytes", (json_int_t) 0, "output_bytes", (json_int_t) 0,
                         "tensors_converted", (json_int_t) 0, "tensors_copied", (json_int_t) 0);
        if (!files || !root) {
                r = -ENOMEM;
                goto finish;
        }

        if (!endswith(name, ".index.json")) {
                _cleanup_(safetensors_header_freep) SafetensorsHeader *oh = NULL;
                json_t *fs = NULL;

                r = convert_one(profile, in, out, name, &fs, &oh, &total, ret_error);
                if (r < 0)
                        goto finish;
                if (json_object_set_new(files, name, fs) < 0 || add_file_totals(root, fs) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                qc = file_quantization_config(oh);
        } else {
                r = read_small_file(in, name, SAFETENSORS_INDEX_MAX, &text, &size);
                if (r < 0) {
                        safetensors_set_error(ret_error, r, "%s: cannot read: %s", name, strerror(-r));
                        goto finish;
                }
                r = safetensors_index_parse(text, size, &idx, ret_error);
                if (r < 0) {
                        prefix_error(ret_error, r, name);
                        goto finish;
                }

                /* Check every shard against the index before anything is converted: one header is
                 * cheap to read, and a mismatch found after an hour of work would waste it. */
                for (size_t s = 0; s < idx->n_shards; s++) {
                        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
                        StreamReader sr;

                        r = in->open(in->userdata, idx->shards[s], &sr);
                        if (r < 0) {
                                safetensors_set_error(ret_error, r, "%s: shard '%s' cannot be opened: %s", name, idx->shards[s],
                                          strerror(-r));
                                goto finish;
                        }
                        r = safetensors_read_header(&sr, &h, NULL, ret_error);
                        if (in->close)
                                in->close(in->userdata, idx->shards[s], &sr);
                        if (r < 0) {
                                prefix_error(ret_error, r, idx->shards[s]);
                                goto finish;
                        }
                        r = safetensors_index_check_shard(idx, s, h, ret_error);
                        if (r < 0) {
                                prefix_error(ret_error, r, name);
                                goto finish;
                        }
                }

                outs = calloc(idx->n_shards, sizeof(SafetensorsHeader *));
                if (!outs) {
                        r = -ENOMEM;
                        goto finish;
                }
                for (size_t s = 0; s < idx->n_shards; s++) {
                        json_t *fs = NULL, *one;

                        r = convert_one(profile, in, out, idx->shards[s], &fs, &outs[s], &total, ret_error);
                        if (r < 0)
                                goto finish;
                        n_outs++;
                        if (json_object_set_new(files, idx->shards[s], fs) < 0 || add_file_totals(root, fs) < 0) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        /* One quantization_config for the model: the targets of all shards. */
                        one = file_quantization_config(outs[s]);
                        if (one && !qc)
                                qc = json_incref(one);
                        else if (one && json_array_extend(qc_targets(qc), qc_targets(one)) < 0) {
                                json_decref(one);
                                r = -ENOMEM;
                                goto finish;
                        }
                        json_decref(one);
                }

                r = safetensors_index_format(idx->metadata, idx->shards, (const SafetensorsHeader *const *) outs,
                                             idx->n_shards, &index_out, &size);
                if (r < 0)
                        goto finish;
                r = write_small_file(out, name, index_out, size);
                if (r < 0) {
                        safetensors_set_error(ret_error, r, "%s: cannot write the index: %s", name, strerror(-r));
                        goto finish;
                }
        }

        if (json_object_set_new(root, "elements_converted", json_integer((json_int_t) total.elements)) < 0 ||
            json_object_set_new(root, "max_abs_error", json_real_or_null(total.max_abs_err)) < 0 ||
            json_object_set_new(root, "rel_rmse", json_real_or_null(quant_stats_rel_rmse(&total))) < 0 ||
            json_object_set_new(root, "overflow", json_integer((json_int_t) total.overflow)) < 0 ||
            json_object_set_new(root, "nonfinite", json_integer((json_int_t) total.nonfinite)) < 0 ||
            (profile->method == METHOD_PRUNE &&
             json_object_set_new(root, "sparsity", json_real(profile->sparsity)) < 0) ||
            json_object_set_new(root, "files", TAKE_PTR(files)) < 0 ||
            (qc && json_object_set_new(root, "quantization_config", TAKE_PTR(qc)) < 0)) {
                r = -ENOMEM;
                goto finish;
        }
        if (ret_stats)
                *ret_stats = TAKE_PTR(root);
        r = 0;

finish:
        for (size_t s = 0; s < n_outs; s++)
                safetensors_header_free(outs[s]);
        json_decref(qc);
        json_decref(files);
        json_decref(root);
        return r;
}

int recompress_update_config(const void *config, size_t size, RecompressMethod method, const json_t *stats,
                             char **ret, size_t *ret_size) {
        json_t *root, *qc = json_object_get(stats, "quantization_config");
        const char *key = "torch_dtype";
        char *text;
        int r = 0;

        assert_return(config || size == 0, -EINVAL);
        assert_return(ret && ret_size, -EINVAL);

        root = json_loadb(config, size, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root)) {
                json_decref(root);
                return -EBADMSG;
        }
        switch (method) {
        case METHOD_INT8:
                if (qc)
                        r = json_object_set(root, "quantization_config", qc);
                break;
        case METHOD_FP16:
        case METHOD_BF16:
                if (!json_object_get(root, key) && json_object_get(root, "dtype"))
                        key = "dtype";
                r = json_object_set_new(root, key, json_string(method == METHOD_FP16 ? "float16" : "bfloat16"));
                break;
        default:
                break;
        }
        if (r < 0) {
                json_decref(root);
                return -ENOMEM;
        }
        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        *ret_size = strlen(text);
        *ret = text;
        return 0;
}

/* ---- plain directories ---- */

int recompress_dir_open_input(void *userdata, const char *name, StreamReader *ret) {
        RecompressDirs *d = userdata;
        struct stat st;
        int fd;

        if (!filename_is_safe(name))
                return -EINVAL;
        fd = openat(d->in_dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                safe_close(fd);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                safe_close(fd);
                return -EBADFD;
        }
        *ret = STREAM_READER_FD(fd);
        return 0;
}

void recompress_dir_close_input(void *userdata, const char *name, StreamReader *r) {
        safe_close((int) (intptr_t) r->userdata);
}

static char *tmp_name(const char *name) {
        char *t = NULL;
        if (asprintf(&t, "%s.tmp", name) < 0)
                return NULL;
        return t;
}

int recompress_dir_open_output(void *userdata, const char *name, StreamWriter *ret) {
        RecompressDirs *d = userdata;
        _cleanup_free_ char *t = NULL;
        int fd;

        if (!filename_is_safe(name))
                return -EINVAL;
        t = tmp_name(name);
        if (!t)
                return -ENOMEM;
        fd = openat(d->out_dirfd, t, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0)
                return -errno;
        *ret = STREAM_WRITER_FD(fd);
        return 0;
}

int recompress_dir_close_output(void *userdata, const char *name, StreamWriter *w, bool ok) {
        RecompressDirs *d = userdata;
        _cleanup_free_ char *t = tmp_name(name);
        int fd = (int) (intptr_t) w->userdata, r = 0;

        if (!t) {
                safe_close(fd);
                return -ENOMEM;
        }
        if (ok && fsync(fd) < 0)
                r = -errno;
        safe_close(fd);
        if (ok && r >= 0 && renameat(d->out_dirfd, t, d->out_dirfd, name) < 0)
                r = -errno;
        if (!ok || r < 0)
                (void) unlinkat(d->out_dirfd, t, 0);
        else
                r = fsync_directory_at(d->out_dirfd, ".");
        return r;
}
