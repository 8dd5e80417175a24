/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <sys/mman.h>

#include "safetensors.h"

/* A file in memory: the 8-byte length, the JSON text padded to pad bytes (0 = as is), data bytes. */
static uint8_t *make_file(const char *json, size_t pad, size_t data, size_t *ret_size) {
        size_t n = strlen(json), hn = MAX(n, pad);
        uint8_t *b = calloc(1, 8 + hn + data + 1);

        assert_non_null(b);
        for (unsigned i = 0; i < 8; i++)
                b[i] = (uint8_t) ((uint64_t) hn >> (8 * i));
        memcpy(b + 8, json, n);
        memset(b + 8 + n, ' ', hn - n);
        for (size_t i = 0; i < data; i++)
                b[8 + hn + i] = (uint8_t) i;
        *ret_size = 8 + hn + data;
        return b;
}

/* Parse a header JSON; expect error r with a message containing msg (or success when r == 0). */
static void expect_json(const char *json, int r, const char *msg) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ char *err = NULL;
        int k = safetensors_parse_header_json(json, strlen(json), &h, &err);

        if (k != r || (msg && (!err || !strstr(err, msg))))
                fail_msg("header %s: got %d '%s', expected %d '%s'", json, k, strna(err), r, strna(msg));
        if (r == 0)
                assert_non_null(h);
        else
                assert_null(h);
}

static void test_dtypes(void **state) {
        assert_int_equal(_ST_DTYPE_MAX, 22);
        for (SafetensorsDtype d = 0; d < _ST_DTYPE_MAX; d++) {
                assert_int_equal(safetensors_dtype_from_string(safetensors_dtype_to_string(d)), d);
                unsigned b = safetensors_dtype_bits(d);
                assert_true(b == 4 || b == 6 || b == 8 || b == 16 || b == 32 || b == 64);
        }
        assert_int_equal(safetensors_dtype_bits(ST_F4), 4);
        assert_int_equal(safetensors_dtype_bits(ST_F6_E3M2), 6);
        assert_int_equal(safetensors_dtype_bits(ST_C64), 64);
        assert_int_equal(safetensors_dtype_bits(ST_BOOL), 8);
        assert_int_equal(safetensors_dtype_from_string("F8_E4M3FN"), -EINVAL);
        assert_int_equal(safetensors_dtype_from_string("f32"), -EINVAL);
        assert_null(safetensors_dtype_to_string(_ST_DTYPE_MAX));
        assert_true(safetensors_dtype_is_float(ST_BF16));
        assert_false(safetensors_dtype_is_float(ST_F8_E4M3));
}

static void test_valid(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        const char *j = "{\"__metadata__\":{\"format\":\"pt\"},"
                        "\"b\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[24,30]},"
                        "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                        "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]},"
                        "\"e\":{\"dtype\":\"U8\",\"shape\":[0,5],\"data_offsets\":[38,38]},"
                        "\"f4\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[38,41]},"
                        "\"f6\":{\"dtype\":\"F6_E2M3\",\"shape\":[4],\"data_offsets\":[41,44]}}";

        assert_int_equal(safetensors_parse_header_json(j, strlen(j), &h, NULL), 0);
        assert_int_equal(h->n_tensors, 6);
        /* Sorted by offsets, like the reference, whatever the JSON order. */
        assert_string_equal(h->tensors[0].name, "a");
        assert_string_equal(h->tensors[1].name, "b");
        assert_string_equal(h->tensors[2].name, "s");
        assert_int_equal(h->tensors[2].n_dims, 0);
        assert_int_equal(h->tensors[2].n_elements, 1);
        assert_int_equal(h->tensors[3].n_elements, 0);
        assert_int_equal(h->tensors[4].dtype, ST_F4);
        assert_int_equal(h->data_size, 44);
        assert_string_equal(json_string_value(json_object_get(h->metadata, "format")), "pt");
        assert_non_null(safetensors_header_find(h, "f6"));
        assert_null(safetensors_header_find(h, "nope"));

        expect_json("{}", 0, NULL);
        expect_json("{\"__metadata__\":{}}", 0, NULL);
        expect_json("{\"__metadata__\":null}", 0, NULL);
        /* Empty tensors may share an offset. */
        expect_json("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                    "\"y\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                    0, NULL);
}

static void test_header_length(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ char *err = NULL;
        uint8_t small[7] = {};
        uint8_t big[16] = { 0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0, '{', '}' }; /* 100000001 */
        uint8_t past[16] = { 100, 0, 0, 0, 0, 0, 0, 0, '{', '}' };
        uint8_t huge[16] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}' };

        /* truncated header length */
        assert_int_equal(safetensors_parse_header(small, sizeof(small), &h, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err, "8-byte header length"));
        /* header too big */
        assert_int_equal(safetensors_parse_header(big, sizeof(big), &h, NULL, &err), -EFBIG);
        assert_non_null(strstr(err, "larger than the limit"));
        assert_int_equal(safetensors_parse_header(huge, sizeof(huge), &h, NULL, &err), -EFBIG);
        /* length past the end of the file */
        assert_int_equal(safetensors_parse_header(past, sizeof(past), &h, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err, "runs past the end"));
        assert_null(h);

        /* The stream reader agrees. */
        {
                _cleanup_close_ int fd = memfd_create("t", MFD_CLOEXEC);
                StreamReader r = STREAM_READER_FD(fd);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, past, sizeof(past)), (ssize_t) sizeof(past));
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                assert_int_equal(safetensors_read_header(&r, &h, NULL, &err), -EBADMSG);
                assert_non_null(strstr(err, "runs past the end"));
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                assert_int_equal(ftruncate(fd, 5), 0);
                assert_int_equal(safetensors_read_header(&r, &h, NULL, &err), -EBADMSG);
                assert_non_null(strstr(err, "8-byte header length"));
        }
        assert_int_equal(safetensors_parse_header_json("{}", SAFETENSORS_HEADER_MAX + 1, &h, &err), -EFBIG);
}

static void test_not_json(void **state) {
        expect_json("{\"a\":", -EBADMSG, "not valid JSON");
        expect_json("{\"a\":{}} x", -EBADMSG, "not valid JSON");
        expect_json("{'a':1}", -EBADMSG, "not valid JSON");
        expect_json("", -EBADMSG, "does not start with '{'");
        /* Not an object */
        expect_json("[]", -EBADMSG, "does not start with '{'");
        expect_json("\"x\"", -EBADMSG, "does not start with '{'");
        expect_json(" {}", -EBADMSG, "does not start with '{'");
        /* A NUL inside a string */
        expect_json("{\"a\\u0000\":{}}", -EBADMSG, "not valid JSON");
        /* Integers beyond 64 bits */
        expect_json("{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999999]}}", -EBADMSG,
                    "not valid JSON");
}

static void test_bad_utf8(void **state) {
        expect_json("{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", -EBADMSG, "UTF-8");
        expect_json("{\"\xc3\":1}", -EBADMSG, "UTF-8");
        expect_json("{\"\xed\xa0\x80\":1}", -EBADMSG, "UTF-8"); /* a surrogate */
}

static void test_padding(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ uint8_t *f = NULL;
        uint64_t hs;
        size_t n;

        f = make_file("{\"a\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 80, 3, &n);
        assert_int_equal(safetensors_parse_header(f, n, &h, &hs, NULL), 0);
        assert_int_equal(hs, 80);
        assert_int_equal(safetensors_header_check_size(h, hs, n, NULL), 0);
        expect_json("{}\n\t\r ", 0, NULL);
        expect_json("{}  x", -EBADMSG, "not valid JSON");
}

static void test_metadata(void **state) {
        expect_json("{\"__metadata__\":{\"a\":1}}", -EBADMSG, "__metadata__ value of 'a' is not a string");
        expect_json("{\"__metadata__\":{\"a\":{}}}", -EBADMSG, "not a string");
        expect_json("{\"__metadata__\":{\"a\":null}}", -EBADMSG, "not a string");
        expect_json("{\"__metadata__\":[]}", -EBADMSG, "__metadata__ is not an object");
        expect_json("{\"__metadata__\":\"x\"}", -EBADMSG, "__metadata__ is not an object");
}

static void test_unknown_dtype(void **state) {
        expect_json("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", -EOPNOTSUPP,
                    "unknown dtype 'F128'");
        expect_json("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", -EOPNOTSUPP, "unknown dtype");
        expect_json("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", -EBADMSG, "dtype is not a string");
}

static void test_bad_shape(void **state) {
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", -EBADMSG,
                    "shape element 0 is not a non-negative integer");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", -EBADMSG, "shape element 0");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}}", -EBADMSG,
                    "shape element 1");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", -EBADMSG, "shape is not an array");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
                    "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
                    -EBADMSG, "more than 64 dimensions");
        /* Entries must be exactly {dtype, shape, data_offsets} */
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", -EBADMSG, "needs dtype, shape and data_offsets");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", -EBADMSG, "unknown key");
        expect_json("{\"a\":[]}", -EBADMSG, "entry is not an object");
}

static void test_offsets(void **state) {
        /* not starting at 0 */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}", -EBADMSG, "not at 0");
        /* gap */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]}}",
                    -EBADMSG, "(gap)");
        /* overlap */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                    "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
                    -EBADMSG, "(overlap)");
        /* unsorted in the JSON but contiguous: fine (the reference sorts) */
        expect_json("{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]},"
                    "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}",
                    0, NULL);
        /* end before begin */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,1]}}", -EBADMSG, "end before begin");
        /* not a pair */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2,4]}}", -EBADMSG, "not a pair");
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0]}}", -EBADMSG, "not a pair");
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[-1,1]}}", -EBADMSG, "not a pair");
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":{}}}", -EBADMSG, "not a pair");
}

static void test_size_mismatch(void **state) {
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", -EBADMSG,
                    "hold 12 bytes, but 4 elements of F32 need 16");
        expect_json("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", -EBADMSG, "need 4");
        /* sub-byte types must fill whole bytes */
        expect_json("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", -EBADMSG, "whole bytes");
        expect_json("{\"a\":{\"dtype\":\"F6_E3M2\",\"shape\":[2],\"data_offsets\":[0,2]}}", -EBADMSG, "whole bytes");
}

static void test_overflow(void **state) {
        /* elements overflow */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", -EOVERFLOW,
                    "number of elements overflows");
        /* elements × bits overflow (but elements fit) */
        expect_json("{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", -EOVERFLOW,
                    "overflows");
        /* a leading zero dimension makes the product 0 whatever follows, as in the reference */
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
                    NULL);
}

static void test_duplicates(void **state) {
        expect_json("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                    -EBADMSG, "duplicate");
        expect_json("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", -EBADMSG, "duplicate");
        expect_json("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", -EBADMSG,
                    "duplicate");
}

static void test_file_size(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = NULL;
        _cleanup_free_ char *err = NULL;
        _cleanup_free_ uint8_t *f = NULL;
        uint64_t hs;
        size_t n;

        f = make_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 16, &n);
        assert_int_equal(safetensors_parse_header(f, n, &h, &hs, &err), 0);
        assert_int_equal(safetensors_header_check_size(h, hs, n, &err), 0);
        /* short buffer */
        assert_int_equal(safetensors_header_check_size(h, hs, n - 1, &err), -EBADMSG);
        assert_non_null(strstr(err, "truncated"));
        /* trailing bytes */
        assert_int_equal(safetensors_header_check_size(h, hs, n + 3, &err), -EBADMSG);
        assert_non_null(strstr(err, "trailing"));

        /* The stream form: trailing bytes after the data. */
        {
                _cleanup_close_ int fd = memfd_create("t", MFD_CLOEXEC);
                StreamReader r = STREAM_READER_FD(fd);
                _cleanup_(safetensors_header_freep) SafetensorsHeader *h2 = NULL;
                uint8_t buf[16];

                assert_int_equal(write(fd, f, n), (ssize_t) n);
                assert_int_equal(write(fd, "x", 1), 1);
                assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
                assert_int_equal(safetensors_read_header(&r, &h2, &hs, &err), 0);
                assert_int_equal(stream_read_exact(&r, buf, 16), 0);
                assert_int_equal(safetensors_read_eof(&r, &err), -EBADMSG);
                assert_non_null(strstr(err, "trailing"));
                assert_int_equal(safetensors_read_eof(&r, &err), 0);
        }
}

static void test_format(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = safetensors_header_new();
        _cleanup_free_ char *b = NULL;
        size_t n;
        uint64_t shape[3] = { 1, 2, 3 };
        /* The reference's own test vectors (safetensors/src/tensor.rs, test_serialization and
         * test_empty): our bytes must be the same. */
        static const uint8_t expected[] = {
                64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112,
                101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51,
                93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52,
                93, 125, 125,
        };
        static const uint8_t empty[] = { 8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32 };
        static const uint8_t with_meta[] = { 40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97,
                                             116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111,
                                             114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32 };

        assert_non_null(h);
        assert_int_equal(safetensors_header_add(h, "attn.0", ST_F32, shape, 3), 0);
        assert_int_equal(safetensors_header_format(h, &b, &n), 0);
        assert_int_equal(n, sizeof(expected));
        assert_memory_equal(b, expected, n);
        free(b);
        b = NULL;

        safetensors_header_free(h);
        h = safetensors_header_new();
        assert_int_equal(safetensors_header_format(h, &b, &n), 0);
        assert_int_equal(n, sizeof(empty));
        assert_memory_equal(b, empty, n);
        free(b);
        b = NULL;

        assert_int_equal(safetensors_header_set_metadata(h, "framework", "pt"), 0);
        assert_int_equal(safetensors_header_format(h, &b, &n), 0);
        assert_int_equal(n, sizeof(with_meta));
        assert_memory_equal(b, with_meta, n);
}

static int mem_write(void *userdata, const void *buf, size_t n) {
        FILE *f = userdata;
        return fwrite(buf, 1, n, f) == n ? 0 : -EIO;
}

static void test_round_trip(void **state) {
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h = safetensors_header_new(), *back = NULL;
        _cleanup_(safetensors_writer_freep) SafetensorsWriter *w = NULL;
        _cleanup_free_ char *data = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&data, &size);
        StreamWriter sw = { .write = mem_write, .userdata = f };
        uint64_t s1[2] = { 3, 5 }, s2[1] = { 7 }, s0[1] = { 0 };
        uint8_t buf[64];
        uint64_t hs;

        assert_non_null(f);
        assert_int_equal(safetensors_header_add(h, "w", ST_BF16, s1, 2), 0);
        assert_int_equal(safetensors_header_add(h, "b\"quote\\", ST_I8, s2, 1), 0);
        assert_int_equal(safetensors_header_add(h, "empty", ST_F64, s0, 1), 0);
        assert_int_equal(safetensors_header_add(h, "scalar", ST_U16, NULL, 0), 0);
        assert_int_equal(safetensors_header_add(h, "f4", ST_F4, s2, 1), -EINVAL); /* 3.5 bytes */
        assert_int_equal(safetensors_header_add(h, "__metadata__", ST_U8, s2, 1), -EINVAL);
        assert_int_equal(safetensors_header_set_metadata(h, "k", "v"), 0);
        assert_int_equal(h->data_size, 30 + 7 + 0 + 2);

        assert_int_equal(safetensors_writer_new(&sw, h, &w), 0);
        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) i;
        assert_int_equal(safetensors_writer_write(w, buf, 30), 0);
        assert_int_equal(safetensors_writer_finish(w), -EBADMSG); /* not all there yet */
        assert_int_equal(safetensors_writer_write(w, buf, 10), -EBADMSG); /* one too many */
        assert_int_equal(safetensors_writer_write(w, buf, 9), 0);
        assert_int_equal(safetensors_writer_finish(w), 0);
        assert_int_equal(safetensors_writer_written(w), 39);
        assert_int_equal(fclose(f), 0);

        /* the data starts 8-byte aligned, the header is padded with spaces */
        assert_int_equal((size - 39) % 8, 0);
        assert_true(data[size - 39 - 1] == ' ' || data[size - 39 - 1] == '}');
        assert_int_equal(safetensors_parse_header(data, size, &back, &hs, NULL), 0);
        assert_int_equal(safetensors_header_check_size(back, hs, size, NULL), 0);
        assert_int_equal(back->n_tensors, 4);
        for (size_t i = 0; i < 4; i++) {
                assert_string_equal(back->tensors[i].name, h->tensors[i].name);
                assert_int_equal(back->tensors[i].dtype, h->tensors[i].dtype);
                assert_int_equal(back->tensors[i].begin, h->tensors[i].begin);
                assert_int_equal(back->tensors[i].end, h->tensors[i].end);
                assert_int_equal(back->tensors[i].n_dims, h->tensors[i].n_dims);
        }
        assert_string_equal(json_string_value(json_object_get(back->metadata, "k")), "v");
        assert_memory_equal(data + size - 39, buf, 30);

        /* A header whose layout is not contiguous is refused by the formatter. */
        h->tensors[1].begin++;
        {
                _cleanup_free_ char *b = NULL;
                size_t n;
                assert_int_equal(safetensors_header_format(h, &b, &n), -EINVAL);
        }
}

static void test_index(void **state) {
        _cleanup_(safetensors_index_freep) SafetensorsIndex *idx = NULL;
        _cleanup_(safetensors_header_freep) SafetensorsHeader *h1 = NULL, *h2 = NULL, *h3 = NULL;
        _cleanup_free_ char *err = NULL, *out = NULL;
        const char *j = "{\"metadata\":{\"total_size\":12,\"x\":\"y\"},\"weight_map\":{"
                        "\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\","
                        "\"c\":\"model-00001-of-00002.safetensors\"}}";
        const char *s1 = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                         "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}";
        const char *s2 = "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
        const char *s3 = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}";
        size_t shard, n;

        assert_int_equal(safetensors_index_parse(j, strlen(j), &idx, &err), 0);
        assert_int_equal(idx->n_shards, 2);
        assert_int_equal(idx->n_tensors, 3);
        assert_int_equal(safetensors_index_find(idx, "c", &shard), 0);
        assert_int_equal(shard, 0);
        assert_int_equal(safetensors_index_find(idx, "zz", &shard), -ENOENT);

        assert_int_equal(safetensors_parse_header_json(s1, strlen(s1), &h1, NULL), 0);
        assert_int_equal(safetensors_parse_header_json(s2, strlen(s2), &h2, NULL), 0);
        assert_int_equal(safetensors_parse_header_json(s3, strlen(s3), &h3, NULL), 0);
        assert_int_equal(safetensors_index_check_shard(idx, 0, h1, &err), 0);
        assert_int_equal(safetensors_index_check_shard(idx, 1, h2, &err), 0);
        /* a shard holding a tensor mapped elsewhere */
        assert_int_equal(safetensors_index_check_shard(idx, 0, h3, &err), -EBADMSG);
        assert_non_null(strstr(err, "holds tensor 'b', which the index maps to 'model-00002-of-00002.safetensors'"));
        /* a shard missing a tensor mapped to it */
        assert_int_equal(safetensors_index_check_shard(idx, 0, h2, &err), -EBADMSG);
        /* h2 holds b, mapped to shard 1: the first problem reported */
        assert_int_equal(safetensors_index_check_shard(idx, 1, h1, &err), -EBADMSG);
        {
                _cleanup_(safetensors_header_freep) SafetensorsHeader *h4 = NULL;
                const char *s4 = "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
                assert_int_equal(safetensors_parse_header_json(s4, strlen(s4), &h4, NULL), 0);
                assert_int_equal(safetensors_index_check_shard(idx, 0, h4, &err), -EBADMSG);
                assert_non_null(strstr(err, "maps tensor 'c' to shard 'model-00001-of-00002.safetensors', which does not hold it"));
        }
        /* a tensor the index does not list */
        {
                _cleanup_(safetensors_header_freep) SafetensorsHeader *h5 = NULL;
                const char *s5 = "{\"q\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}";
                assert_int_equal(safetensors_parse_header_json(s5, strlen(s5), &h5, NULL), 0);
                assert_int_equal(safetensors_index_check_shard(idx, 1, h5, &err), -EBADMSG);
                assert_non_null(strstr(err, "does not list"));
        }

        /* A new index: metadata kept, total_size recomputed, every tensor mapped. */
        {
                const SafetensorsHeader *hs[2] = { h1, h2 };
                json_t *o;
                assert_int_equal(safetensors_index_format(idx->metadata, idx->shards, hs, 2, &out, &n), 0);
                o = json_loadb(out, n, 0, NULL);
                assert_non_null(o);
                assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "metadata"), "total_size")), 12);
                assert_string_equal(json_string_value(json_object_get(json_object_get(o, "metadata"), "x")), "y");
                assert_string_equal(json_string_value(json_object_get(json_object_get(o, "weight_map"), "b")),
                                    "model-00002-of-00002.safetensors");
                json_decref(o);
        }
}

static void expect_index(const char *j, const char *msg) {
        _cleanup_(safetensors_index_freep) SafetensorsIndex *idx = NULL;
        _cleanup_free_ char *err = NULL;
        int r = safetensors_index_parse(j, strlen(j), &idx, &err);

        if (r >= 0 || !err || !strstr(err, msg))
                fail_msg("index %s: got %d '%s', expected '%s'", j, r, strna(err), msg);
}

static void test_index_invalid(void **state) {
        expect_index("{\"weight_map\":{\"a\":\"../x.safetensors\"}}", "not a safe file name");
        expect_index("{\"weight_map\":{\"a\":\"sub/x.safetensors\"}}", "not a safe file name");
        expect_index("{\"weight_map\":{\"a\":\"x.bin\"}}", "not a safe file name");
        expect_index("{\"weight_map\":{\"a\":\".safetensors\"}}", "not a safe file name");
        expect_index("{\"weight_map\":{\"a\":\"x\\u0001.safetensors\"}}", "not a safe file name");
        expect_index("{\"weight_map\":{\"a\":1}}", "not a string");
        expect_index("{\"weight_map\":{}}", "empty");
        expect_index("{\"metadata\":{}}", "no weight_map");
        expect_index("{\"metadata\":[],\"weight_map\":{\"a\":\"x.safetensors\"}}", "metadata is not an object");
        expect_index("{\"weight_map\":{\"a\":\"x.safetensors\"},\"extra\":1}", "unknown key");
        expect_index("{\"weight_map\":{\"a\":\"x.safetensors\",\"a\":\"y.safetensors\"}}", "duplicate");
        expect_index("[]", "not a JSON object");
        expect_index("{\"weight_map\":", "not valid JSON");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dtypes),
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_header_length),
                cmocka_unit_test(test_not_json),
                cmocka_unit_test(test_bad_utf8),
                cmocka_unit_test(test_padding),
                cmocka_unit_test(test_metadata),
                cmocka_unit_test(test_unknown_dtype),
                cmocka_unit_test(test_bad_shape),
                cmocka_unit_test(test_offsets),
                cmocka_unit_test(test_size_mismatch),
                cmocka_unit_test(test_overflow),
                cmocka_unit_test(test_duplicates),
                cmocka_unit_test(test_file_size),
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_index),
                cmocka_unit_test(test_index_invalid),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
