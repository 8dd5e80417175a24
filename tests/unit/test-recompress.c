/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "fileio.h"
#include "recompress.h"

/* ---- an in-memory model: files by name, read through StreamReaders that can be opened again ---- */

typedef struct MemFile {
        char *name;
        uint8_t *data;
        size_t size;
} MemFile;

typedef struct MemModel {
        MemFile files[8];
        size_t n;
        unsigned opens;
        size_t chunk;       /* the most a read returns: short reads on purpose */
        size_t fail_after;  /* output: fail writes after this many bytes (0 = never) */
} MemModel;

typedef struct MemCursor {
        const MemFile *f;
        size_t pos, chunk;
} MemCursor;

static ssize_t mem_read(void *userdata, void *buf, size_t n) {
        MemCursor *c = userdata;
        size_t left = c->f->size - c->pos, lim = MIN(c->chunk, left), k = MIN(n, lim);

        memcpy(buf, c->f->data + c->pos, k);
        c->pos += k;
        return (ssize_t) k;
}

static MemFile *mem_find(MemModel *m, const char *name) {
        for (size_t i = 0; i < m->n; i++)
                if (streq(m->files[i].name, name))
                        return &m->files[i];
        return NULL;
}

static int mem_open(void *userdata, const char *name, StreamReader *ret) {
        MemModel *m = userdata;
        MemFile *f = mem_find(m, name);
        MemCursor *c;

        if (!f)
                return -ENOENT;
        c = calloc(1, sizeof(MemCursor));
        if (!c)
                return -ENOMEM;
        *c = (MemCursor) { .f = f, .chunk = m->chunk ?: SIZE_MAX };
        m->opens++;
        *ret = (StreamReader) { .read = mem_read, .userdata = c };
        return 0;
}

static void mem_close(void *userdata, const char *name, StreamReader *r) {
        free(r->userdata);
}

typedef struct MemOut {
        MemModel *m;
        MemFile f;
} MemOut;

static int mem_write(void *userdata, const void *buf, size_t n) {
        MemOut *o = userdata;
        uint8_t *d;

        if (o->m->fail_after && o->f.size + n > o->m->fail_after)
                return -ENOSPC;
        d = realloc(o->f.data, o->f.size + n + 1);
        if (!d)
                return -ENOMEM;
        memcpy(d + o->f.size, buf, n);
        o->f.data = d;
        o->f.size += n;
        return 0;
}

static int mem_out_open(void *userdata, const char *name, StreamWriter *ret) {
        MemOut *o = calloc(1, sizeof(MemOut));

        if (!o)
                return -ENOMEM;
        o->m = userdata;
        o->f.name = strdup(name);
        *ret = (StreamWriter) { .write = mem_write, .userdata = o };
        return 0;
}

static int mem_out_close(void *userdata, const char *name, StreamWriter *w, bool ok) {
        MemModel *m = userdata;
        MemOut *o = w->userdata;

        if (ok) {
                assert_true(m->n < ELEMENTSOF(m->files));
                m->files[m->n++] = o->f;
        } else {
                free(o->f.name);
                free(o->f.data);
        }
        free(o);
        return 0;
}

static void mem_model_done(MemModel *m) {
        for (size_t i = 0; i < m->n; i++) {
                free(m->files[i].name);
                free(m->files[i].data);
        }
        *m = (MemModel) {};
}

/* Build a safetensors file from a header (its layout) and the data bytes. */
static void mem_add(MemModel *m, const char *name, const SafetensorsHeader *h, const void *data) {
        char *hb = NULL;
        size_t hn;
        MemFile *f = &m->files[m->n++];

        assert_int_equal(safetensors_header_format(h, &hb, &hn), 0);
        f->name = strdup(name);
        f->size = hn + h->data_size;
        f->data = malloc(f->size + 1);
        assert_non_null(f->data);
        memcpy(f->data, hb, hn);
        memcpy(f->data + hn, data, h->data_size);
        free(hb);
}

static void mem_add_raw(MemModel *m, const char *name, const void *data, size_t size) {
        MemFile *f = &m->files[m->n++];
        f->name = strdup(name);
        f->data = malloc(size + 1);
        memcpy(f->data, data, size);
        f->size = size;
}

/* A small model: w.weight [rows, cols] F32, norm.weight [cols] F32, ids [3] I64. */
static SafetensorsHeader *small_model(size_t rows, size_t cols, uint8_t **ret_data) {
        SafetensorsHeader *h = safetensors_header_new();
        uint64_t s2[2] = { rows, cols }, s1[1] = { cols }, s3[1] = { 3 };
        uint8_t *d;
        float *w;

        assert_int_equal(safetensors_header_add(h, "w.weight", ST_F32, s2, 2), 0);
        assert_int_equal(safetensors_header_add(h, "norm.weight", ST_F32, s1, 1), 0);
        assert_int_equal(safetensors_header_add(h, "ids", ST_I64, s3, 1), 0);
        assert_int_equal(safetensors_header_set_metadata(h, "format", "pt"), 0);
        d = calloc(1, h->data_size);
        w = (float *) d;
        for (size_t i = 0; i < rows * cols + cols; i++)
                w[i] = sinf((float) i * 0.37f) * (float) (1 + i % 7);
        for (int64_t i = 0; i < 3; i++)
                memcpy(d + (rows * cols + cols) * 4 + 8 * i, &i, 8);
        *ret_data = d;
        return h;
}

static RecompressInput mem_input(MemModel *m) {
        return (RecompressInput) { .open = mem_open, .close = mem_close, .userdata = m };
}

static RecompressOutput mem_output(MemModel *m) {
        return (RecompressOutput) { .open = mem_out_open, .close = mem_out_close, .userdata = m };
}

static void test_plan(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_(recompress_plan_freep) RecompressPlan *p = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *err = NULL;
        char *skip[] = { (char *) "norm*", NULL };
        RecompressProfile prof = { .method = METHOD_INT8 };

        h = small_model(4, 6, &data);
        assert_int_equal(recompress_plan(&prof, h, &p, &err), 0);
        assert_int_equal(p->tensors[0].action, TENSOR_INT8);
        assert_string_equal(p->tensors[0].scale_name, "w.weight_scale");
        assert_int_equal(p->tensors[0].rows, 4);
        assert_int_equal(p->tensors[0].cols, 6);
        assert_int_equal(p->tensors[1].action, TENSOR_COPY); /* 1-D */
        assert_int_equal(p->tensors[2].action, TENSOR_COPY); /* not float */
        assert_int_equal(p->output->n_tensors, 4);
        assert_string_equal(p->output->tensors[1].name, "w.weight_scale");
        assert_int_equal(p->output->tensors[1].dtype, ST_F32);
        assert_int_equal(p->output->tensors[1].shape[0], 4);
        assert_int_equal(p->output->tensors[1].shape[1], 1);
        assert_int_equal(p->output->data_size, 24 + 16 + 24 + 24);
        assert_non_null(json_object_get(p->output->metadata, "quantization_config"));
        assert_non_null(json_object_get(p->output->metadata, "format"));
        assert_int_equal(p->passes, 1);
        {
                json_t *qc = recompress_quantization_config(p);
                json_t *t = json_object_get(json_object_get(json_object_get(qc, "config_groups"), "group_0"), "targets");
                assert_int_equal(json_array_size(t), 1);
                assert_string_equal(json_string_value(json_array_get(t, 0)), "w");
                json_decref(qc);
        }
        p = recompress_plan_free(p);

        /* fp16 with a skip glob */
        prof = (RecompressProfile) { .method = METHOD_FP16, .skip = skip };
        assert_int_equal(recompress_plan(&prof, h, &p, &err), 0);
        assert_int_equal(p->tensors[0].action, TENSOR_HALF);
        assert_int_equal(p->tensors[0].to, ST_F16);
        assert_int_equal(p->tensors[1].action, TENSOR_COPY);
        assert_string_equal(p->tensors[1].reason, "matches a skip pattern");
        assert_null(json_object_get(p->output->metadata, "quantization_config"));
        assert_null(recompress_quantization_config(p));
        p = recompress_plan_free(p);

        /* prune: passes = digits + 1 */
        prof = (RecompressProfile) { .method = METHOD_PRUNE, .sparsity = 0.5 };
        assert_int_equal(recompress_plan(&prof, h, &p, &err), 0);
        assert_int_equal(p->tensors[0].action, TENSOR_PRUNE);
        assert_int_equal(p->tensors[0].prune_k, 12);
        assert_int_equal(p->passes, 3);
        p = recompress_plan_free(p);
        prof.sparsity = 0;
        assert_int_equal(recompress_plan(&prof, h, &p, &err), 0);
        assert_int_equal(p->passes, 1);
        p = recompress_plan_free(p);
        prof.sparsity = 1.5;
        assert_int_equal(recompress_plan(&prof, h, &p, &err), -EINVAL);
        prof.sparsity = NAN;
        assert_int_equal(recompress_plan(&prof, h, &p, &err), -EINVAL);
        prof = (RecompressProfile) { .method = METHOD_EXEC };
        assert_int_equal(recompress_plan(&prof, h, &p, &err), -EOPNOTSUPP);
}

static void test_plan_name_taken(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = safetensors_header_new();
        _cleanup_(recompress_plan_freep) RecompressPlan *p = NULL;
        _cleanup_free_ char *err = NULL;
        RecompressProfile prof = { .method = METHOD_INT8 };
        uint64_t s[2] = { 2, 2 }, one[2] = { 2, 1 };

        assert_int_equal(safetensors_header_add(h, "a.weight", ST_BF16, s, 2), 0);
        assert_int_equal(safetensors_header_add(h, "a.weight_scale", ST_F32, one, 2), 0);
        assert_int_equal(recompress_plan(&prof, h, &p, &err), -EEXIST);
        assert_non_null(strstr(err, "'a.weight_scale' already exists"));
}

static void test_stream(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        MemModel m = { .chunk = 7 }; /* short reads everywhere */
        RecompressInput in = mem_input(&m);
        static const RecompressMethod methods[] = { METHOD_FP16, METHOD_BF16, METHOD_INT8, METHOD_PRUNE };

        h = small_model(33, 65, &data);
        mem_add(&m, "in.safetensors", h, data);

        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                RecompressProfile prof = { .method = methods[i], .sparsity = 0.25 };
                _cleanup_(safetensors_header_freep) SafetensorsHeader *oh = NULL, *back = NULL;
                _cleanup_free_ char *err = NULL;
                StreamWriter w;
                json_t *stats = NULL;
                MemFile *f;
                uint64_t hs;
                unsigned opens = m.opens;

                assert_int_equal(mem_out_open(&m, "out.safetensors", &w), 0);
                assert_int_equal(recompress_stream(&prof, &in, "in.safetensors", &w, &stats, &oh, &err), 0);
                assert_int_equal(mem_out_close(&m, "out.safetensors", &w, true), 0);
                assert_int_equal(m.opens - opens, methods[i] == METHOD_PRUNE ? 3 : 1);
                f = &m.files[m.n - 1];
                assert_int_equal(safetensors_parse_header(f->data, f->size, &back, &hs, &err), 0);
                assert_int_equal(safetensors_header_check_size(back, hs, f->size, &err), 0);
                assert_int_equal(back->n_tensors, oh->n_tensors);
                assert_int_equal(json_integer_value(json_object_get(stats, "output_bytes")), (json_int_t) f->size);
                assert_int_equal(json_integer_value(json_object_get(stats, "tensors_converted")),
                                 methods[i] == METHOD_FP16 || methods[i] == METHOD_BF16 ? 2 : 1);
                /* the copied tensor is bit for bit the same */
                {
                        const SafetensorsTensor *t = safetensors_header_find(back, "ids");
                        assert_non_null(t);
                        assert_memory_equal(f->data + 8 + hs + t->begin, data + h->tensors[2].begin, 24);
                }
                if (methods[i] == METHOD_PRUNE) {
                        json_t *tw = json_object_get(json_object_get(stats, "tensors"), "w.weight");
                        /* k = round(.25 × 2145) = 536, one of which was 0 already */
                        assert_int_equal(json_integer_value(json_object_get(tw, "zeroed")), 535);
                        assert_true(json_real_value(json_object_get(tw, "sparsity")) == 536.0 / 2145.0);
                }
                json_decref(stats);
                /* drop the output again */
                m.n--;
                free(m.files[m.n].name);
                free(m.files[m.n].data);
        }
        mem_model_done(&m);
}

static void expect_stream_error(MemModel *m, RecompressMethod method, int r, const char *msg) {
        RecompressInput in = mem_input(m);
        RecompressProfile prof = { .method = method, .sparsity = 0.5 };
        _cleanup_free_ char *err = NULL;
        StreamWriter w;
        int k;

        assert_int_equal(mem_out_open(m, "out.safetensors", &w), 0);
        k = recompress_stream(&prof, &in, "in.safetensors", &w, NULL, NULL, &err);
        assert_int_equal(mem_out_close(m, "out.safetensors", &w, false), 0);
        if (k != r || !err || !strstr(err, msg))
                fail_msg("got %d '%s', expected %d '%s'", k, strna(err), r, msg);
}

static void test_stream_errors(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        MemModel m = {};
        MemFile *f;

        h = small_model(8, 16, &data);
        mem_add(&m, "in.safetensors", h, data);
        f = &m.files[0];

        /* truncated data */
        f->size -= 5;
        expect_stream_error(&m, METHOD_FP16, -EBADMSG, "data ends inside tensor 'ids' (file truncated)");
        expect_stream_error(&m, METHOD_PRUNE, -EBADMSG, "truncated");
        /* trailing bytes */
        f->size += 6;
        expect_stream_error(&m, METHOD_INT8, -EBADMSG, "trailing bytes");
        f->size -= 1;
        /* a bad header */
        f->data[9] = ',';
        expect_stream_error(&m, METHOD_FP16, -EBADMSG, "not valid JSON");
        f->data[9] = '"';
        /* NaN in a weight for int8 */
        {
                float nan = NAN;
                size_t hdr = f->size - h->data_size;
                memcpy(f->data + hdr + 4 * (3 * 16 + 2), &nan, 4);
                expect_stream_error(&m, METHOD_INT8, -EDOM, "row 3 holds NaN or Inf");
        }
        /* the writer fails */
        m.fail_after = 1;
        expect_stream_error(&m, METHOD_FP16, -ENOSPC, "cannot write the output header");
        m.fail_after = f->size - h->data_size + 10;
        expect_stream_error(&m, METHOD_FP16, -ENOSPC, "write error");
        m.fail_after = 0;
        /* a missing file */
        {
                RecompressInput in = mem_input(&m);
                RecompressProfile prof = { .method = METHOD_FP16 };
                _cleanup_free_ char *err = NULL;
                StreamWriter w;
                assert_int_equal(mem_out_open(&m, "x", &w), 0);
                assert_int_equal(recompress_stream(&prof, &in, "nope.safetensors", &w, NULL, NULL, &err), -ENOENT);
                assert_int_equal(mem_out_close(&m, "x", &w, false), 0);
        }
        mem_model_done(&m);
}

/* prune re-reads the file: one that changes between passes is noticed */
static unsigned flip_after;
static int flip_open(void *userdata, const char *name, StreamReader *ret) {
        MemModel *m = userdata;
        if (m->opens == flip_after) {
                /* grow one dimension in the header text: "[8,16]" → "[8,17]" would break sizes;
                 * instead swap the dtype of ids, I64 → U64, same size */
                uint8_t *p = memmem(m->files[0].data, m->files[0].size, "\"I64\"", 5);
                assert_non_null(p);
                p[1] = 'U';
        }
        return mem_open(userdata, name, ret);
}

static void test_stream_changed(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *err = NULL;
        MemModel m = {};
        RecompressInput in = { .open = flip_open, .close = mem_close, .userdata = &m };
        RecompressProfile prof = { .method = METHOD_PRUNE, .sparsity = 0.5 };
        StreamWriter w;

        h = small_model(8, 16, &data);
        mem_add(&m, "in.safetensors", h, data);
        flip_after = 1;
        assert_int_equal(mem_out_open(&m, "o", &w), 0);
        assert_int_equal(recompress_stream(&prof, &in, "in.safetensors", &w, NULL, NULL, &err), -ESTALE);
        assert_int_equal(mem_out_close(&m, "o", &w, false), 0);
        assert_non_null(strstr(err, "changed between passes"));
        mem_model_done(&m);
}

static void test_model_sharded(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h1 = safetensors_header_new(),
                                                              *h2 = safetensors_header_new();
        _cleanup_free_ char *err = NULL;
        MemModel m = {};
        RecompressInput in = mem_input(&m);
        RecompressOutput out = mem_output(&m);
        RecompressProfile prof = { .method = METHOD_INT8 };
        uint64_t s[2] = { 4, 8 };
        float d[64];
        const char *index = "{\"metadata\":{\"total_size\":256},\"weight_map\":{"
                            "\"a.weight\":\"s1.safetensors\",\"b.weight\":\"s2.safetensors\",\"c.weight\":\"s1.safetensors\"}}";
        json_t *stats = NULL;
        MemFile *idx;

        for (size_t i = 0; i < 64; i++)
                d[i] = (float) i - 20.5f;
        assert_int_equal(safetensors_header_add(h1, "a.weight", ST_F32, s, 2), 0);
        assert_int_equal(safetensors_header_add(h1, "c.weight", ST_F32, s, 2), 0);
        assert_int_equal(safetensors_header_add(h2, "b.weight", ST_F32, s, 2), 0);
        mem_add(&m, "s1.safetensors", h1, d);
        mem_add(&m, "s2.safetensors", h2, d);
        mem_add_raw(&m, "model.safetensors.index.json", index, strlen(index));

        assert_int_equal(recompress_model(&prof, &in, &out, "model.safetensors.index.json", &stats, &err), 0);
        assert_int_equal(m.n, 6);
        idx = mem_find(&m, "model.safetensors.index.json");
        assert_true(idx == &m.files[2]); /* the first one found is the input; the output is last */
        idx = &m.files[5];
        assert_string_equal(idx->name, "model.safetensors.index.json");
        {
                json_t *o = json_loadb((const char *) idx->data, idx->size, 0, NULL);
                json_t *wm = json_object_get(o, "weight_map");
                assert_string_equal(json_string_value(json_object_get(wm, "c.weight_scale")), "s1.safetensors");
                assert_string_equal(json_string_value(json_object_get(wm, "b.weight_scale")), "s2.safetensors");
                assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "metadata"), "total_size")),
                                 3 * (32 + 16));
                json_decref(o);
        }
        assert_int_equal(json_array_size(json_object_get(
                                 json_object_get(json_object_get(json_object_get(stats, "quantization_config"), "config_groups"),
                                                 "group_0"),
                                 "targets")),
                         3);
        assert_int_equal(json_integer_value(json_object_get(stats, "tensors_converted")), 3);
        assert_non_null(json_object_get(json_object_get(stats, "files"), "s2.safetensors"));
        json_decref(stats);

        /* a shard that is not there */
        {
                const char *bad = "{\"weight_map\":{\"a.weight\":\"s9.safetensors\"}}";
                mem_add_raw(&m, "bad.index.json", bad, strlen(bad));
                assert_int_equal(recompress_model(&prof, &in, &out, "bad.index.json", NULL, &err), -ENOENT);
                assert_non_null(strstr(err, "shard 's9.safetensors' cannot be opened"));
        }
        /* an unsafe name */
        assert_int_equal(recompress_model(&prof, &in, &out, "../x.safetensors", NULL, &err), -EINVAL);
        mem_model_done(&m);
}

static void test_dirs(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp(), *ind = path_join(dir, "in"), *outd = path_join(dir, "out");
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *hb = NULL, *err = NULL;
        _cleanup_close_ int ifd = -EBADF, ofd = -EBADF, fd = -EBADF;
        RecompressDirs dirs;
        RecompressInput in;
        RecompressOutput out;
        RecompressProfile prof = { .method = METHOD_BF16 };
        json_t *stats = NULL;
        size_t hn;

        assert_int_equal(mkdir(ind, 0755), 0);
        assert_int_equal(mkdir(outd, 0755), 0);
        ifd = open(ind, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ofd = open(outd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(ifd >= 0 && ofd >= 0);
        dirs = (RecompressDirs) { .in_dirfd = ifd, .out_dirfd = ofd };
        in = RECOMPRESS_INPUT_DIRS(&dirs);
        out = RECOMPRESS_OUTPUT_DIRS(&dirs);

        h = small_model(5, 7, &data);
        assert_int_equal(safetensors_header_format(h, &hb, &hn), 0);
        fd = openat(ifd, "model.safetensors", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, hb, hn), 0);
        assert_int_equal(loop_write(fd, data, h->data_size - 1), 0); /* one byte short */
        assert_int_equal(recompress_model(&prof, &in, &out, "model.safetensors", &stats, &err), -EBADMSG);
        /* nothing left behind */
        assert_int_equal(faccessat(ofd, "model.safetensors", F_OK, 0), -1);
        assert_int_equal(faccessat(ofd, "model.safetensors.tmp", F_OK, 0), -1);

        assert_int_equal(loop_write(fd, data + h->data_size - 1, 1), 0);
        assert_int_equal(recompress_model(&prof, &in, &out, "model.safetensors", &stats, &err), 0);
        assert_int_equal(faccessat(ofd, "model.safetensors", F_OK, 0), 0);
        assert_int_equal(faccessat(ofd, "model.safetensors.tmp", F_OK, 0), -1);
        assert_string_equal(json_string_value(json_object_get(stats, "method")), "bf16");
        json_decref(stats);

        /* symlinks are not followed */
        assert_int_equal(symlinkat("model.safetensors", ifd, "link.safetensors"), 0);
        assert_int_equal(recompress_model(&prof, &in, &out, "link.safetensors", NULL, &err), -ELOOP);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

/* Reading and writing overlap: a source and a sink that each take 20 ms per MiB block (waiting,
 * not computing, so a loaded machine does not matter) take about the time of one of them, not of
 * both. */
static ssize_t slow_read(void *userdata, void *buf, size_t n) {
        ssize_t k = mem_read(userdata, buf, n);
        if (k > 0)
                (void) usleep(20000);
        return k;
}

static int slow_open(void *userdata, const char *name, StreamReader *ret) {
        int r = mem_open(userdata, name, ret);
        if (r >= 0)
                ret->read = slow_read;
        return r;
}

static int slow_write(void *userdata, const void *buf, size_t n) {
        (void) usleep(20000);
        return 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void test_pipeline_overlap(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = safetensors_header_new();
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *err = NULL;
        MemModel m = { .chunk = RECOMPRESS_BLOCK_MAX };
        RecompressInput in = { .open = slow_open, .close = mem_close, .userdata = &m };
        RecompressProfile prof = { .method = METHOD_PRUNE, .sparsity = 0 }; /* one pass, same size out */
        StreamWriter w = { .write = slow_write };
        uint64_t shape[2] = { 40, RECOMPRESS_BLOCK_MAX / 4 }, t;

        assert_int_equal(safetensors_header_add(h, "w.weight", ST_F32, shape, 2), 0);
        data = calloc(1, h->data_size);
        assert_non_null(data);
        mem_add(&m, "in.safetensors", h, data);

        t = now_usec();
        assert_int_equal(recompress_stream(&prof, &in, "in.safetensors", &w, NULL, NULL, &err), 0);
        t = now_usec() - t;
        /* 40 blocks: 0.8 s to read, 0.8 s to write; 1.6 s one after the other. */
        printf("# 40 slow reads + 40 slow writes took %.2f s\n", (double) t / USEC_PER_SEC);
        assert_true(t < 1300 * USEC_PER_MSEC);
        mem_model_done(&m);
}

/* Progress: from the calling thread, in bytes of tensor data over every pass, growing, at least
 * every RECOMPRESS_PROGRESS_STEP, the last call at done == total. */
typedef struct ProgressLog {
        MemModel *m;
        uint64_t done[64], total[64];
        size_t n;
        pthread_t thread;
        bool other_thread, other_name;
} ProgressLog;

static int log_open(void *userdata, const char *name, StreamReader *ret) {
        return mem_open(((ProgressLog *) userdata)->m, name, ret);
}

static void log_progress(void *userdata, const char *name, uint64_t done, uint64_t total) {
        ProgressLog *l = userdata;

        if (!pthread_equal(pthread_self(), l->thread))
                l->other_thread = true;
        if (!streq(name, "model.safetensors"))
                l->other_name = true;
        assert_true(l->n < ELEMENTSOF(l->done));
        l->done[l->n] = done;
        l->total[l->n++] = total;
}

static void test_progress(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        const RecompressProfile profiles[] = {
                { .method = METHOD_FP16 },
                { .method = METHOD_PRUNE, .sparsity = 0.5 }, /* F32: 2 histogram passes + the writing one */
        };
        const unsigned passes[] = { 1, 3 };

        h = small_model(1024, 2048, &data); /* 8 MiB of weights: more than one step */
        for (size_t k = 0; k < ELEMENTSOF(profiles); k++) {
                MemModel m = {};
                ProgressLog l = { .m = &m, .thread = pthread_self() };
                RecompressInput in = {
                        .open = log_open, .close = mem_close, .progress = log_progress, .userdata = &l
                };
                RecompressOutput out = mem_output(&m);
                _cleanup_free_ char *err = NULL;
                json_t *stats = NULL;
                uint64_t total = passes[k] * h->data_size;

                mem_add(&m, "model.safetensors", h, data);
                assert_int_equal(recompress_model(&profiles[k], &in, &out, "model.safetensors", &stats, &err),
                                 0);
                json_decref(stats);
                assert_false(l.other_thread);
                assert_false(l.other_name);
                assert_true(l.n >= (size_t) (total / RECOMPRESS_PROGRESS_STEP));
                for (size_t i = 0; i < l.n; i++) {
                        assert_int_equal(l.total[i], total);
                        assert_true(l.done[i] <= total);
                        if (i > 0) {
                                assert_true(l.done[i] > l.done[i - 1]);
                                /* no gap wider than a step plus one block */
                                assert_true(l.done[i] - l.done[i - 1] <=
                                            RECOMPRESS_PROGRESS_STEP + RECOMPRESS_BLOCK_MAX);
                        }
                }
                assert_int_equal(l.done[l.n - 1], total);
                mem_model_done(&m);
        }
}

static void test_update_config(void **state) {
        _cleanup_free_ char *out = NULL;
        const char *cfg = "{\"model_type\":\"llama\",\"torch_dtype\":\"float32\",\"hidden_size\":8}";
        json_t *stats = json_pack("{s:{s:s}}", "quantization_config", "format", "int-quantized"), *o;
        size_t n;

        assert_int_equal(recompress_update_config(cfg, strlen(cfg), METHOD_INT8, stats, &out, &n), 0);
        o = json_loadb(out, n, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(json_object_get(o, "quantization_config"), "format")),
                            "int-quantized");
        assert_string_equal(json_string_value(json_object_get(o, "torch_dtype")), "float32");
        json_decref(o);
        free(out);

        assert_int_equal(recompress_update_config(cfg, strlen(cfg), METHOD_BF16, NULL, &out, &n), 0);
        o = json_loadb(out, n, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "torch_dtype")), "bfloat16");
        assert_null(json_object_get(o, "quantization_config"));
        assert_int_equal(json_integer_value(json_object_get(o, "hidden_size")), 8);
        json_decref(o);
        free(out);

        /* the newer key is kept where the file uses it */
        assert_int_equal(recompress_update_config("{\"dtype\":\"float32\"}", 19, METHOD_FP16, NULL, &out, &n), 0);
        o = json_loadb(out, n, 0, NULL);
        assert_string_equal(json_string_value(json_object_get(o, "dtype")), "float16");
        assert_null(json_object_get(o, "torch_dtype"));
        json_decref(o);

        assert_int_equal(recompress_update_config("[1]", 3, METHOD_FP16, NULL, &out, &n), -EBADMSG);
        assert_int_equal(recompress_update_config("{\"a\":1,\"a\":2}", 13, METHOD_FP16, NULL, &out, &n), -EBADMSG);
        json_decref(stats);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plan),
                cmocka_unit_test(test_plan_name_taken),
                cmocka_unit_test(test_stream),
                cmocka_unit_test(test_stream_errors),
                cmocka_unit_test(test_stream_changed),
                cmocka_unit_test(test_model_sharded),
                cmocka_unit_test(test_dirs),
                cmocka_unit_test(test_update_config),
                cmocka_unit_test(test_pipeline_overlap),
                cmocka_unit_test(test_progress),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
