/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The safetensors header parser, and behind it the re-compression driver, on arbitrary bytes taken
 * as a whole file. Properties checked beyond "no crash, no leak, no UB":
 *   - a header that parses formats again, and that formatted header parses to the same tensors;
 *   - a file that passes the size check converts with every method without error (except int8 on
 *     NaN/Inf or out-of-range F64, or an int8 scale name already taken), and the output has exactly
 *     the size its header promises.
 */

#include <stdint.h>

#include "recompress.h"
#include "safetensors.h"

typedef struct Mem {
        const uint8_t *data;
        size_t size, pos;
} Mem;

static ssize_t mem_read(void *userdata, void *buf, size_t n) {
        Mem *m = userdata;
        size_t left = m->size - m->pos, k = n < left ? n : left;

        memcpy(buf, m->data + m->pos, k);
        m->pos += k;
        return (ssize_t) k;
}

static int mem_open(void *userdata, const char *name, StreamReader *ret) {
        Mem *m = userdata;
        m->pos = 0;
        *ret = (StreamReader) { .read = mem_read, .userdata = m };
        return 0;
}

static int count_write(void *userdata, const void *buf, size_t n) {
        *(uint64_t *) userdata += n;
        return 0;
}

static void check_same(const SafetensorsHeader *a, const SafetensorsHeader *b) {
        assert_se(a->n_tensors == b->n_tensors);
        assert_se(a->data_size == b->data_size);
        for (size_t i = 0; i < a->n_tensors; i++) {
                assert_se(streq(a->tensors[i].name, b->tensors[i].name));
                assert_se(a->tensors[i].dtype == b->tensors[i].dtype);
                assert_se(a->tensors[i].begin == b->tensors[i].begin);
                assert_se(a->tensors[i].end == b->tensors[i].end);
                assert_se(a->tensors[i].n_dims == b->tensors[i].n_dims);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL, *again = NULL;
        _cleanup_free_ char *err = NULL, *bytes = NULL;
        static const RecompressMethod methods[] = { METHOD_FP16, METHOD_BF16, METHOD_INT8, METHOD_PRUNE };
        uint64_t hs, hs2;
        size_t n;
        int r;

        if (size > 1 * MIB)
                return 0;
        r = safetensors_parse_header(data, size, &h, &hs, &err);
        if (r < 0) {
                assert_se(!h);
                return 0;
        }

        r = safetensors_header_format(h, &bytes, &n);
        if (r == -EFBIG)
                return 0;
        assert_se(r == 0);
        assert_se(safetensors_parse_header(bytes, n, &again, &hs2, NULL) == 0);
        assert_se(hs2 % 8 == 0);
        check_same(h, again);

        if (safetensors_header_check_size(h, hs, size, NULL) < 0)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                _cleanup_(safetensors_header_freep) SafetensorsHeader *out = NULL;
                _cleanup_free_ char *e = NULL, *ob = NULL;
                Mem m = { .data = data, .size = size };
                RecompressInput in = { .open = mem_open, .userdata = &m };
                RecompressProfile p = { .method = methods[i], .sparsity = 0.5 };
                uint64_t written = 0;
                StreamWriter w = { .write = count_write, .userdata = &written };
                size_t on;

                r = recompress_stream(&p, &in, "fuzz.safetensors", &w, NULL, &out, &e);
                if (methods[i] == METHOD_INT8 && (r == -EDOM || r == -ERANGE || r == -EEXIST))
                        continue;
                assert_se(r == 0);
                assert_se(safetensors_header_format(out, &ob, &on) == 0);
                assert_se(written == on + out->data_size);
        }
        return 0;
}
