/* SPDX-License-Identifier: Apache-2.0 */

#include <inttypes.h>
#include <stdarg.h>

#include "parse-util.h"
#include "safetensors.h"

static const char *const dtype_table[_ST_DTYPE_MAX] = {
        [ST_BOOL] = "BOOL",
        [ST_F4] = "F4",
        [ST_F6_E2M3] = "F6_E2M3",
        [ST_F6_E3M2] = "F6_E3M2",
        [ST_U8] = "U8",
        [ST_I8] = "I8",
        [ST_F8_E5M2] = "F8_E5M2",
        [ST_F8_E4M3] = "F8_E4M3",
        [ST_F8_E8M0] = "F8_E8M0",
        [ST_F8_E4M3FNUZ] = "F8_E4M3FNUZ",
        [ST_F8_E5M2FNUZ] = "F8_E5M2FNUZ",
        [ST_I16] = "I16",
        [ST_U16] = "U16",
        [ST_F16] = "F16",
        [ST_BF16] = "BF16",
        [ST_I32] = "I32",
        [ST_U32] = "U32",
        [ST_F32] = "F32",
        [ST_C64] = "C64",
        [ST_F64] = "F64",
        [ST_I64] = "I64",
        [ST_U64] = "U64",
};

const char *safetensors_dtype_to_string(SafetensorsDtype d) {
        if (d < 0 || d >= _ST_DTYPE_MAX)
                return NULL;
        return dtype_table[d];
}

SafetensorsDtype safetensors_dtype_from_string(const char *s) {
        if (!s)
                return _ST_DTYPE_INVALID;
        for (SafetensorsDtype d = 0; d < _ST_DTYPE_MAX; d++)
                if (streq(dtype_table[d], s))
                        return d;
        return _ST_DTYPE_INVALID;
}

unsigned safetensors_dtype_bits(SafetensorsDtype d) {
        switch (d) {
        case ST_F4:
                return 4;
        case ST_F6_E2M3:
        case ST_F6_E3M2:
                return 6;
        case ST_BOOL:
        case ST_U8:
        case ST_I8:
        case ST_F8_E5M2:
        case ST_F8_E4M3:
        case ST_F8_E8M0:
        case ST_F8_E4M3FNUZ:
        case ST_F8_E5M2FNUZ:
                return 8;
        case ST_I16:
        case ST_U16:
        case ST_F16:
        case ST_BF16:
                return 16;
        case ST_I32:
        case ST_U32:
        case ST_F32:
                return 32;
        case ST_C64:
        case ST_F64:
        case ST_I64:
        case ST_U64:
                return 64;
        default:
                return 0;
        }
}

bool safetensors_dtype_is_float(SafetensorsDtype d) {
        return d == ST_F16 || d == ST_BF16 || d == ST_F32 || d == ST_F64;
}

/* Errors name tensors from the file: keep the message one printable line of bounded length. */
char *safetensors_sanitize_name(const char *s) {
        size_t n = strnlen(s, 128);
        char *c = memdup_or_null(s, n);

        if (!c)
                return NULL;
        for (char *p = c; *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = '?';
        return c;
}

int safetensors_set_error(char **ret_error, int r, const char *fmt, ...) {
        va_list ap;

        if (ret_error) {
                char *m = NULL;

                va_start(ap, fmt);
                if (vasprintf(&m, fmt, ap) < 0)
                        m = NULL;
                va_end(ap);
                free(*ret_error);
                *ret_error = m;
        }
        return r;
}

static void tensor_done(SafetensorsTensor *t) {
        free(t->name);
        free(t->shape);
}

SafetensorsHeader *safetensors_header_free(SafetensorsHeader *h) {
        if (!h)
                return NULL;
        for (size_t i = 0; i < h->n_tensors; i++)
                tensor_done(&h->tensors[i]);
        free(h->tensors);
        json_decref(h->metadata);
        free(h);
        return NULL;
}

SafetensorsHeader *safetensors_header_new(void) {
        return calloc(1, sizeof(SafetensorsHeader));
}

static int uint64_from_json(const json_t *v, uint64_t *ret) {
        json_int_t i;

        if (!json_is_integer(v))
                return -EBADMSG;
        i = json_integer_value(v);
        if (i < 0)
                return -EBADMSG;
        *ret = (uint64_t) i;
        return 0;
}

static int parse_tensor(const char *name, json_t *o, SafetensorsTensor *t, char **ret_error) {
        _cleanup_free_ char *qname = safetensors_sanitize_name(name);
        _cleanup_free_ uint64_t *shape = NULL;
        json_t *dtype, *shape_j, *offsets;
        SafetensorsDtype d;
        uint64_t n = 1, bits, begin, end;
        const char *key;
        json_t *v;
        size_t n_dims;

        if (!qname)
                return -ENOMEM;
        if (!json_is_object(o))
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': entry is not an object", qname);

        json_object_foreach(o, key, v)
                if (!streq(key, "dtype") && !streq(key, "shape") && !streq(key, "data_offsets"))
                        return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': unknown key in entry", qname);

        dtype = json_object_get(o, "dtype");
        shape_j = json_object_get(o, "shape");
        offsets = json_object_get(o, "data_offsets");
        if (!dtype || !shape_j || !offsets)
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': entry needs dtype, shape and data_offsets",
                                 qname);
        if (!json_is_string(dtype))
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': dtype is not a string", qname);
        d = safetensors_dtype_from_string(json_string_value(dtype));
        if (d < 0) {
                _cleanup_free_ char *qd = safetensors_sanitize_name(json_string_value(dtype));
                return safetensors_set_error(ret_error, -EOPNOTSUPP, "tensor '%s': unknown dtype '%s'", qname, strna(qd));
        }

        if (!json_is_array(shape_j))
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': shape is not an array", qname);
        n_dims = json_array_size(shape_j);
        if (n_dims > SAFETENSORS_DIMS_MAX)
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': shape has more than %u dimensions", qname,
                                 SAFETENSORS_DIMS_MAX);
        shape = calloc(MAX(n_dims, (size_t) 1), sizeof(uint64_t));
        if (!shape)
                return -ENOMEM;
        for (size_t i = 0; i < n_dims; i++) {
                if (uint64_from_json(json_array_get(shape_j, i), &shape[i]) < 0)
                        return safetensors_set_error(ret_error, -EBADMSG,
                                         "tensor '%s': shape element %zu is not a non-negative integer", qname,
                                         i);
                if (MUL_OVERFLOW(n, shape[i], &n))
                        return safetensors_set_error(ret_error, -EOVERFLOW, "tensor '%s': number of elements overflows",
                                         qname);
        }

        if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
            uint64_from_json(json_array_get(offsets, 0), &begin) < 0 ||
            uint64_from_json(json_array_get(offsets, 1), &end) < 0)
                return safetensors_set_error(ret_error, -EBADMSG,
                                 "tensor '%s': data_offsets is not a pair of non-negative integers", qname);
        if (end < begin)
                return safetensors_set_error(ret_error, -EBADMSG, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                                 qname, begin, end);

        if (MUL_OVERFLOW(n, (uint64_t) safetensors_dtype_bits(d), &bits))
                return safetensors_set_error(ret_error, -EOVERFLOW, "tensor '%s': size in bits of %" PRIu64 " × %s overflows",
                                 qname, n, dtype_table[d]);
        if (bits % 8 != 0)
                return safetensors_set_error(ret_error, -EBADMSG,
                                 "tensor '%s': %" PRIu64 " elements of %s do not fill whole bytes", qname, n,
                                 dtype_table[d]);
        if (end - begin != bits / 8)
                return safetensors_set_error(ret_error, -EBADMSG,
                                 "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                                 " bytes, but %" PRIu64 " elements of %s need %" PRIu64,
                                 qname, begin, end, end - begin, n, dtype_table[d], bits / 8);

        t->name = strdup(name);
        if (!t->name)
                return -ENOMEM;
        t->dtype = d;
        t->shape = TAKE_PTR(shape);
        t->n_dims = n_dims;
        t->n_elements = n;
        t->begin = begin;
        t->end = end;
        return 0;
}

static int tensor_cmp(const void *a, const void *b) {
        const SafetensorsTensor *x = a, *y = b;

        /* The reference sorts by (begin, end). Ties (several empty tensors at one offset) are broken
         * by name so that the order, and so the output, does not depend on qsort. */
        if (x->begin != y->begin)
                return x->begin < y->begin ? -1 : 1;
        if (x->end != y->end)
                return x->end < y->end ? -1 : 1;
        return strcmp(x->name, y->name);
}

int safetensors_parse_header_json(const void *json, size_t size, SafetensorsHeader **ret, char **ret_error) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        json_t *root = NULL, *v;
        json_error_t err;
        const char *key;
        uint64_t pos = 0;
        size_t n;
        int r;

        assert_return(json || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (size > SAFETENSORS_HEADER_MAX)
                return safetensors_set_error(ret_error, -EFBIG, "header of %zu bytes is larger than the limit of %" PRIu64,
                                 size, SAFETENSORS_HEADER_MAX);
        if (!utf8_is_valid(json, size))
                return safetensors_set_error(ret_error, -EBADMSG, "header is not valid UTF-8");
        if (size == 0 || ((const char *) json)[0] != '{')
                return safetensors_set_error(ret_error, -EBADMSG, "header does not start with '{'");

        root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return safetensors_set_error(ret_error, -EBADMSG, "header is not valid JSON: %s (at byte %d)", err.text,
                                 err.position);
        /* From here on root is released on every path. */
        h = safetensors_header_new();
        if (!h) {
                json_decref(root);
                return -ENOMEM;
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return safetensors_set_error(ret_error, -EBADMSG, "header is not a JSON object");
        }

        n = json_object_size(root);
        v = json_object_get(root, "__metadata__");
        if (v && !json_is_null(v)) {
                const char *k;
                json_t *s;

                if (!json_is_object(v)) {
                        json_decref(root);
                        return safetensors_set_error(ret_error, -EBADMSG, "__metadata__ is not an object");
                }
                json_object_foreach(v, k, s)
                        if (!json_is_string(s)) {
                                _cleanup_free_ char *qk = safetensors_sanitize_name(k);
                                json_decref(root);
                                return safetensors_set_error(ret_error, -EBADMSG, "__metadata__ value of '%s' is not a string",
                                                 strna(qk));
                        }
                h->metadata = json_incref(v);
        }
        if (v)
                n--;

        h->tensors = calloc(MAX(n, (size_t) 1), sizeof(SafetensorsTensor));
        if (!h->tensors) {
                json_decref(root);
                return -ENOMEM;
        }
        json_object_foreach(root, key, v) {
                if (streq(key, "__metadata__"))
                        continue;
                r = parse_tensor(key, v, &h->tensors[h->n_tensors], ret_error);
                if (r < 0) {
                        json_decref(root);
                        return r;
                }
                h->n_tensors++;
        }
        json_decref(root);

        qsort(h->tensors, h->n_tensors, sizeof(SafetensorsTensor), tensor_cmp);
        for (size_t i = 0; i < h->n_tensors; i++) {
                const SafetensorsTensor *t = &h->tensors[i];

                if (t->begin != pos) {
                        _cleanup_free_ char *qname = safetensors_sanitize_name(t->name);
                        if (i == 0)
                                return safetensors_set_error(ret_error, -EBADMSG,
                                                 "tensor '%s': data starts at %" PRIu64 ", not at 0", strna(qname),
                                                 t->begin);
                        return safetensors_set_error(ret_error, -EBADMSG,
                                         "tensor '%s': data_offsets begin at %" PRIu64 " but the previous tensor ends at %" PRIu64
                                         " (%s)",
                                         strna(qname), t->begin, pos, t->begin > pos ? "gap" : "overlap");
                }
                pos = t->end;
        }
        h->data_size = pos;

        *ret = TAKE_PTR(h);
        return 0;
}

int safetensors_parse_header(const void *buf, size_t size, SafetensorsHeader **ret, uint64_t *ret_header_size,
                             char **ret_error) {
        const uint8_t *p = buf;
        uint64_t n = 0;
        int r;

        assert_return(buf || size == 0, -EINVAL);

        if (size < 8)
                return safetensors_set_error(ret_error, -EBADMSG, "file is shorter than the 8-byte header length");
        for (unsigned i = 0; i < 8; i++)
                n |= (uint64_t) p[i] << (8 * i);
        if (n > SAFETENSORS_HEADER_MAX)
                return safetensors_set_error(ret_error, -EFBIG, "header length %" PRIu64 " is larger than the limit of %" PRIu64,
                                 n, SAFETENSORS_HEADER_MAX);
        if (n > size - 8)
                return safetensors_set_error(ret_error, -EBADMSG, "header length %" PRIu64 " runs past the end of the file", n);

        r = safetensors_parse_header_json(p + 8, (size_t) n, ret, ret_error);
        if (r < 0)
                return r;
        if (ret_header_size)
                *ret_header_size = n;
        return 0;
}

int safetensors_header_check_size(const SafetensorsHeader *h, uint64_t header_size, uint64_t file_size,
                                  char **ret_error) {
        uint64_t total;

        assert_return(h, -EINVAL);

        if (ADD_OVERFLOW(header_size, (uint64_t) 8, &total) || ADD_OVERFLOW(total, h->data_size, &total))
                return safetensors_set_error(ret_error, -EOVERFLOW, "header and data size overflow");
        if (file_size < total)
                return safetensors_set_error(ret_error, -EBADMSG,
                                 "file is %" PRIu64 " bytes, but its header needs %" PRIu64 " (data truncated)",
                                 file_size, total);
        if (file_size > total)
                return safetensors_set_error(ret_error, -EBADMSG,
                                 "file is %" PRIu64 " bytes, %" PRIu64 " more than its header covers (trailing bytes)",
                                 file_size, file_size - total);
        return 0;
}

const SafetensorsTensor *safetensors_header_find(const SafetensorsHeader *h, const char *name) {
        if (!h || !name)
                return NULL;
        for (size_t i = 0; i < h->n_tensors; i++)
                if (streq(h->tensors[i].name, name))
                        return &h->tensors[i];
        return NULL;
}

int safetensors_read_header(const StreamReader *r, SafetensorsHeader **ret, uint64_t *ret_header_size,
                            char **ret_error) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t len[8];
        uint64_t n = 0;
        int k;

        assert_return(r, -EINVAL);
        assert_return(ret, -EINVAL);

        k = stream_read_exact(r, len, sizeof(len));
        if (k == -EPIPE)
                return safetensors_set_error(ret_error, -EBADMSG, "file is shorter than the 8-byte header length");
        if (k < 0)
                return k;
        for (unsigned i = 0; i < 8; i++)
                n |= (uint64_t) len[i] << (8 * i);
        if (n > SAFETENSORS_HEADER_MAX)
                return safetensors_set_error(ret_error, -EFBIG, "header length %" PRIu64 " is larger than the limit of %" PRIu64,
                                 n, SAFETENSORS_HEADER_MAX);

        /* Read the header in pieces so that a lying length on a short file does not make us allocate
         * 100 MB up front: grow the buffer as the bytes actually arrive. */
        size_t have = 0, alloc = 0;
        while (have < n) {
                size_t want = (size_t) MIN(n - have, (uint64_t) (1 * MIB));
                if (have + want > alloc) {
                        size_t grow = MAX(alloc * 2, have + want);
                        size_t na = MIN((size_t) n, grow);
                        uint8_t *nb = realloc(buf, na);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                        alloc = na;
                }
                k = stream_read_exact(r, buf + have, want);
                if (k == -EPIPE)
                        return safetensors_set_error(ret_error, -EBADMSG,
                                         "header length %" PRIu64 " runs past the end of the file", n);
                if (k < 0)
                        return k;
                have += want;
        }

        k = safetensors_parse_header_json(buf, (size_t) n, ret, ret_error);
        if (k < 0)
                return k;
        if (ret_header_size)
                *ret_header_size = n;
        return 0;
}

int safetensors_read_eof(const StreamReader *r, char **ret_error) {
        uint8_t b;
        ssize_t k;

        k = stream_read(r, &b, 1);
        if (k < 0)
                return (int) k;
        if (k > 0)
                return safetensors_set_error(ret_error, -EBADMSG, "file has trailing bytes after the last tensor");
        return 0;
}

int safetensors_header_add(SafetensorsHeader *h, const char *name, SafetensorsDtype dtype, const uint64_t *shape,
                           size_t n_dims) {
        _cleanup_free_ uint64_t *s = NULL;
        _cleanup_free_ char *nm = NULL;
        SafetensorsTensor *nt;
        uint64_t n = 1, bits, end;

        assert_return(h, -EINVAL);
        assert_return(name, -EINVAL);
        assert_return(dtype >= 0 && dtype < _ST_DTYPE_MAX, -EINVAL);
        assert_return(shape || n_dims == 0, -EINVAL);
        assert_return(n_dims <= SAFETENSORS_DIMS_MAX, -EINVAL);

        if (streq(name, "__metadata__"))
                return -EINVAL;
        for (size_t i = 0; i < n_dims; i++)
                if (MUL_OVERFLOW(n, shape[i], &n))
                        return -EOVERFLOW;
        if (MUL_OVERFLOW(n, (uint64_t) safetensors_dtype_bits(dtype), &bits))
                return -EOVERFLOW;
        if (bits % 8 != 0)
                return -EINVAL;
        if (ADD_OVERFLOW(h->data_size, bits / 8, &end))
                return -EOVERFLOW;

        s = calloc(MAX(n_dims, (size_t) 1), sizeof(uint64_t));
        nm = strdup(name);
        if (!s || !nm)
                return -ENOMEM;
        if (n_dims > 0)
                memcpy(s, shape, n_dims * sizeof(uint64_t));

        nt = reallocarray(h->tensors, h->n_tensors + 1, sizeof(SafetensorsTensor));
        if (!nt)
                return -ENOMEM;
        h->tensors = nt;
        h->tensors[h->n_tensors++] = (SafetensorsTensor) {
                .name = TAKE_PTR(nm),
                .dtype = dtype,
                .shape = TAKE_PTR(s),
                .n_dims = n_dims,
                .n_elements = n,
                .begin = h->data_size,
                .end = end,
        };
        h->data_size = end;
        return 0;
}

int safetensors_header_set_metadata(SafetensorsHeader *h, const char *key, const char *value) {
        assert_return(h, -EINVAL);
        assert_return(key && value, -EINVAL);

        if (!h->metadata) {
                h->metadata = json_object();
                if (!h->metadata)
                        return -ENOMEM;
        }
        if (json_object_set_new(h->metadata, key, json_string(value)) < 0)
                return -EINVAL; /* not UTF-8, or out of memory */
        return 0;
}

static json_t *shape_to_json(const SafetensorsTensor *t) {
        json_t *a = json_array();

        if (!a)
                return NULL;
        for (size_t i = 0; i < t->n_dims; i++)
                if (json_array_append_new(a, json_integer((json_int_t) t->shape[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

int safetensors_header_format(const SafetensorsHeader *h, char **ret, size_t *ret_size) {
        _cleanup_free_ char *text = NULL, *out = NULL;
        json_t *root;
        uint64_t pos = 0;
        size_t n, padded;

        assert_return(h, -EINVAL);
        assert_return(ret && ret_size, -EINVAL);

        root = json_object();
        if (!root)
                return -ENOMEM;
        if (h->metadata && json_object_size(h->metadata) > 0 &&
            json_object_set(root, "__metadata__", h->metadata) < 0)
                goto fail_nomem;

        for (size_t i = 0; i < h->n_tensors; i++) {
                const SafetensorsTensor *t = &h->tensors[i];
                json_t *e;

                /* The layout is what we promise: contiguous, in order, sizes matching. */
                if (t->begin != pos || t->end < t->begin || t->dtype < 0 || t->dtype >= _ST_DTYPE_MAX ||
                    t->end > (uint64_t) INT64_MAX || streq(t->name, "__metadata__") ||
                    json_object_get(root, t->name)) {
                        json_decref(root);
                        return -EINVAL;
                }
                pos = t->end;

                e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", dtype_table[t->dtype], "shape", shape_to_json(t),
                              "data_offsets", (json_int_t) t->begin, (json_int_t) t->end);
                if (!e)
                        goto fail_nomem;
                if (json_object_set_new(root, t->name, e) < 0)
                        goto fail_nomem;
        }

        /* jansson keeps insertion order; compact like the reference's serde_json::to_string. */
        text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return -ENOMEM;

        n = strlen(text);
        padded = (n + 7) & ~(size_t) 7;
        if (padded > SAFETENSORS_HEADER_MAX)
                return -EFBIG;
        out = malloc(8 + padded);
        if (!out)
                return -ENOMEM;
        for (unsigned i = 0; i < 8; i++)
                out[i] = (char) (((uint64_t) padded >> (8 * i)) & 0xff);
        memcpy(out + 8, text, n);
        memset(out + 8 + n, ' ', padded - n);

        *ret = TAKE_PTR(out);
        *ret_size = 8 + padded;
        return 0;

fail_nomem:
        json_decref(root);
        return -ENOMEM;
}

struct SafetensorsWriter {
        StreamWriter out;
        uint64_t data_size;
        uint64_t written;
};

int safetensors_writer_new(const StreamWriter *out, const SafetensorsHeader *h, SafetensorsWriter **ret) {
        _cleanup_free_ SafetensorsWriter *w = NULL;
        _cleanup_free_ char *bytes = NULL;
        size_t n;
        int r;

        assert_return(out && h && ret, -EINVAL);

        r = safetensors_header_format(h, &bytes, &n);
        if (r < 0)
                return r;
        w = calloc(1, sizeof(SafetensorsWriter));
        if (!w)
                return -ENOMEM;
        w->out = *out;
        w->data_size = h->data_size;

        r = stream_write(out, bytes, n);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(w);
        return 0;
}

int safetensors_writer_write(SafetensorsWriter *w, const void *buf, size_t n) {
        int r;

        assert_return(w, -EINVAL);

        if (n > w->data_size - w->written)
                return -EBADMSG;
        if (n == 0)
                return 0;
        r = stream_write(&w->out, buf, n);
        if (r < 0)
                return r;
        w->written += n;
        return 0;
}

int safetensors_writer_finish(SafetensorsWriter *w) {
        assert_return(w, -EINVAL);
        return w->written == w->data_size ? 0 : -EBADMSG;
}

uint64_t safetensors_writer_written(const SafetensorsWriter *w) {
        return w ? w->written : 0;
}

SafetensorsWriter *safetensors_writer_free(SafetensorsWriter *w) {
        free(w);
        return NULL;
}

/* ---- sharded models ---- */

SafetensorsIndex *safetensors_index_free(SafetensorsIndex *idx) {
        if (!idx)
                return NULL;
        json_decref(idx->metadata);
        for (size_t i = 0; i < idx->n_shards; i++)
                free(idx->shards[i]);
        free(idx->shards);
        for (size_t i = 0; i < idx->n_tensors; i++)
                free(idx->tensors[i]);
        free(idx->tensors);
        free(idx->tensor_shard);
        free(idx);
        return NULL;
}

int safetensors_index_parse(const void *json, size_t size, SafetensorsIndex **ret, char **ret_error) {
        _cleanup_(safetensors_index_freep) SafetensorsIndex *idx = NULL;
        json_t *root, *map, *meta, *v;
        json_error_t err;
        const char *key;
        size_t n;

        assert_return(json || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);

        if (size > SAFETENSORS_INDEX_MAX)
                return safetensors_set_error(ret_error, -EFBIG, "index of %zu bytes is larger than the limit of %" PRIu64,
                                 size, (uint64_t) SAFETENSORS_INDEX_MAX);
        if (!utf8_is_valid(json, size))
                return safetensors_set_error(ret_error, -EBADMSG, "index is not valid UTF-8");
        root = json_loadb(json, size, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return safetensors_set_error(ret_error, -EBADMSG, "index is not valid JSON: %s (at byte %d)", err.text,
                                 err.position);

        idx = calloc(1, sizeof(SafetensorsIndex));
        if (!idx) {
                json_decref(root);
                return -ENOMEM;
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return safetensors_set_error(ret_error, -EBADMSG, "index is not a JSON object");
        }
        json_object_foreach(root, key, v)
                if (!streq(key, "metadata") && !streq(key, "weight_map")) {
                        _cleanup_free_ char *qk = safetensors_sanitize_name(key);
                        json_decref(root);
                        return safetensors_set_error(ret_error, -EBADMSG, "index has an unknown key '%s'", strna(qk));
                }
        meta = json_object_get(root, "metadata");
        if (meta && !json_is_null(meta)) {
                if (!json_is_object(meta)) {
                        json_decref(root);
                        return safetensors_set_error(ret_error, -EBADMSG, "index metadata is not an object");
                }
                idx->metadata = json_incref(meta);
        }
        map = json_object_get(root, "weight_map");
        if (!json_is_object(map)) {
                json_decref(root);
                return safetensors_set_error(ret_error, -EBADMSG, "index has no weight_map object");
        }

        n = json_object_size(map);
        idx->tensors = calloc(MAX(n, (size_t) 1), sizeof(char *));
        idx->tensor_shard = calloc(MAX(n, (size_t) 1), sizeof(size_t));
        if (!idx->tensors || !idx->tensor_shard) {
                json_decref(root);
                return -ENOMEM;
        }
        json_object_foreach(map, key, v) {
                const char *shard;
                size_t s;

                if (!json_is_string(v)) {
                        _cleanup_free_ char *qk = safetensors_sanitize_name(key);
                        json_decref(root);
                        return safetensors_set_error(ret_error, -EBADMSG, "index: shard of tensor '%s' is not a string",
                                         strna(qk));
                }
                shard = json_string_value(v);
                if (!filename_is_safe(shard) || !endswith(shard, ".safetensors") || shard[0] == '.') {
                        _cleanup_free_ char *qs = safetensors_sanitize_name(shard);
                        json_decref(root);
                        return safetensors_set_error(ret_error, -EBADMSG,
                                         "index: shard name '%s' is not a safe file name ending in .safetensors",
                                         strna(qs));
                }
                /* Shards are few (tens to hundreds) and mostly consecutive: check the last first. */
                for (s = idx->n_shards; s > 0; s--)
                        if (streq(idx->shards[s - 1], shard))
                                break;
                if (s == 0) {
                        char **ns;

                        if (idx->n_shards >= SAFETENSORS_INDEX_SHARDS_MAX) {
                                json_decref(root);
                                return safetensors_set_error(ret_error, -EBADMSG, "index names more than %u shards",
                                                 SAFETENSORS_INDEX_SHARDS_MAX);
                        }
                        ns = reallocarray(idx->shards, idx->n_shards + 1, sizeof(char *));
                        if (!ns) {
                                json_decref(root);
                                return -ENOMEM;
                        }
                        idx->shards = ns;
                        idx->shards[idx->n_shards] = strdup(shard);
                        if (!idx->shards[idx->n_shards]) {
                                json_decref(root);
                                return -ENOMEM;
                        }
                        s = ++idx->n_shards;
                }
                idx->tensors[idx->n_tensors] = strdup(key);
                if (!idx->tensors[idx->n_tensors]) {
                        json_decref(root);
                        return -ENOMEM;
                }
                idx->tensor_shard[idx->n_tensors++] = s - 1;
        }
        json_decref(root);

        if (idx->n_shards == 0)
                return safetensors_set_error(ret_error, -EBADMSG, "index weight_map is empty");

        *ret = TAKE_PTR(idx);
        return 0;
}

int safetensors_index_find(const SafetensorsIndex *idx, const char *tensor, size_t *ret_shard) {
        assert_return(idx && tensor, -EINVAL);

        for (size_t i = 0; i < idx->n_tensors; i++)
                if (streq(idx->tensors[i], tensor)) {
                        if (ret_shard)
                                *ret_shard = idx->tensor_shard[i];
                        return 0;
                }
        return -ENOENT;
}

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int safetensors_index_check_shard(const SafetensorsIndex *idx, size_t shard, const SafetensorsHeader *h,
                                  char **ret_error) {
        _cleanup_free_ const char **mapped = NULL;
        size_t n = 0;

        assert_return(idx && h, -EINVAL);
        assert_return(shard < idx->n_shards, -EINVAL);

        /* Sort the names the index maps to this shard, then look each header tensor up: both sets
         * have unique members, so equal sizes and inclusion make them equal. */
        mapped = calloc(MAX(idx->n_tensors, (size_t) 1), sizeof(const char *));
        if (!mapped)
                return -ENOMEM;
        for (size_t i = 0; i < idx->n_tensors; i++)
                if (idx->tensor_shard[i] == shard)
                        mapped[n++] = idx->tensors[i];
        qsort(mapped, n, sizeof(char *), strcmp_ptr);

        for (size_t i = 0; i < h->n_tensors; i++) {
                const char *name = h->tensors[i].name;
                if (!bsearch(&name, mapped, n, sizeof(char *), strcmp_ptr)) {
                        _cleanup_free_ char *qn = safetensors_sanitize_name(name), *qs = safetensors_sanitize_name(idx->shards[shard]);
                        size_t other;

                        if (safetensors_index_find(idx, name, &other) >= 0) {
                                _cleanup_free_ char *qo = safetensors_sanitize_name(idx->shards[other]);
                                return safetensors_set_error(ret_error, -EBADMSG,
                                                 "shard '%s' holds tensor '%s', which the index maps to '%s'",
                                                 strna(qs), strna(qn), strna(qo));
                        }
                        return safetensors_set_error(ret_error, -EBADMSG, "shard '%s' holds tensor '%s', which the index does not list",
                                         strna(qs), strna(qn));
                }
        }
        if (h->n_tensors != n) {
                /* Name one tensor the index maps here that the shard does not hold. */
                _cleanup_free_ const char **held = calloc(MAX(h->n_tensors, (size_t) 1), sizeof(const char *));
                _cleanup_free_ char *qs = safetensors_sanitize_name(idx->shards[shard]);

                if (!held)
                        return -ENOMEM;
                for (size_t i = 0; i < h->n_tensors; i++)
                        held[i] = h->tensors[i].name;
                qsort(held, h->n_tensors, sizeof(char *), strcmp_ptr);
                for (size_t i = 0; i < n; i++)
                        if (!bsearch(&mapped[i], held, h->n_tensors, sizeof(char *), strcmp_ptr)) {
                                _cleanup_free_ char *qn = safetensors_sanitize_name(mapped[i]);
                                return safetensors_set_error(ret_error, -EBADMSG,
                                                 "the index maps tensor '%s' to shard '%s', which does not hold it",
                                                 strna(qn), strna(qs));
                        }
                return safetensors_set_error(ret_error, -EBADMSG, "index maps %zu tensors to shard '%s', but it holds %zu", n,
                                 strna(qs), h->n_tensors);
        }
        return 0;
}

int safetensors_index_format(const json_t *metadata, char *const *shard_names,
                             const SafetensorsHeader *const *shard_headers, size_t n_shards, char **ret,
                             size_t *ret_size) {
        json_t *root = NULL, *meta = NULL, *map = NULL;
        uint64_t total = 0;
        char *text;

        assert_return(shard_names && shard_headers, -EINVAL);
        assert_return(ret && ret_size, -EINVAL);

        meta = metadata ? json_deep_copy(metadata) : json_object();
        map = json_object();
        root = json_object();
        if (!meta || !map || !root)
                goto fail_nomem;

        for (size_t s = 0; s < n_shards; s++) {
                const SafetensorsHeader *h = shard_headers[s];

                if (!filename_is_safe(shard_names[s]))
                        goto fail_inval;
                if (ADD_OVERFLOW(total, h->data_size, &total))
                        goto fail_inval;
                for (size_t i = 0; i < h->n_tensors; i++) {
                        if (json_object_get(map, h->tensors[i].name))
                                goto fail_inval;
                        if (json_object_set_new(map, h->tensors[i].name, json_string(shard_names[s])) < 0)
                                goto fail_nomem;
                }
        }
        if (total > (uint64_t) INT64_MAX)
                goto fail_inval;
        if (json_object_set_new(meta, "total_size", json_integer((json_int_t) total)) < 0 ||
            json_object_set_new(root, "metadata", TAKE_PTR(meta)) < 0 ||
            json_object_set_new(root, "weight_map", TAKE_PTR(map)) < 0)
                goto fail_nomem;

        text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(root);
        if (!text)
                return -ENOMEM;
        *ret_size = strlen(text);
        *ret = text;
        return 0;

fail_nomem:
        json_decref(root);
        json_decref(meta);
        json_decref(map);
        return -ENOMEM;
fail_inval:
        json_decref(root);
        json_decref(meta);
        json_decref(map);
        return -EINVAL;
}
