/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The safetensors format (https://github.com/huggingface/safetensors), read and written as a stream:
 *
 *   8 bytes   N, little-endian unsigned
 *   N bytes   a JSON object (UTF-8, may end in spaces):
 *             {"__metadata__": {string: string}, "<name>": {"dtype": "F32", "shape": [..],
 *              "data_offsets": [begin, end]}, …}
 *   the data  every tensor's bytes, little-endian, C order, at [begin, end) of this buffer
 *
 * Weights are untrusted: the parser is as strict as the reference library (Rust crate `safetensors`)
 * and a little stricter where that costs nothing (see safetensors_parse_header_json()). It is pure
 * — no I/O, no logging — so it is unit-tested and fuzzed alone. Streams are read front to back
 * without seeking, so the input may be an age-decrypted pipe.
 */

#include <jansson.h>

#include "macros.h"
#include "stream.h"

/* A name from a file, for an error message: at most 128 bytes, control characters as '?'. */
char *safetensors_sanitize_name(const char *s);
/* Replace *ret_error (when ret_error is not NULL) with the formatted message; returns r. */
int safetensors_set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

/* The reference library's cap (MAX_HEADER_SIZE = 100_000_000). */
#define SAFETENSORS_HEADER_MAX ((uint64_t) 100000000ULL)
/* An index file lists names only: a cap well above real ones (a few MB for the largest models). */
#define SAFETENSORS_INDEX_MAX (64 * MIB)
/* Shape rank cap; real models use ≤ 5, the reference has none. */
#define SAFETENSORS_DIMS_MAX 64

/* Every dtype of the reference's Dtype enum, in its order (the order is its alignment rank). */
typedef enum SafetensorsDtype {
        ST_BOOL,
        ST_F4,
        ST_F6_E2M3,
        ST_F6_E3M2,
        ST_U8,
        ST_I8,
        ST_F8_E5M2,
        ST_F8_E4M3,
        ST_F8_E8M0,
        ST_F8_E4M3FNUZ,
        ST_F8_E5M2FNUZ,
        ST_I16,
        ST_U16,
        ST_F16,
        ST_BF16,
        ST_I32,
        ST_U32,
        ST_F32,
        ST_C64,
        ST_F64,
        ST_I64,
        ST_U64,
        _ST_DTYPE_MAX,
        _ST_DTYPE_INVALID = -EINVAL,
} SafetensorsDtype;

const char *safetensors_dtype_to_string(SafetensorsDtype d) _const_;
SafetensorsDtype safetensors_dtype_from_string(const char *s) _pure_;
/* Bits per element: 4 (F4), 6 (F6_*), 8, 16, 32 or 64. */
unsigned safetensors_dtype_bits(SafetensorsDtype d) _const_;
/* F16, BF16, F32, F64: the dtypes the re-compression methods convert. */
bool safetensors_dtype_is_float(SafetensorsDtype d) _const_;

typedef struct SafetensorsTensor {
        char *name;
        SafetensorsDtype dtype;
        uint64_t *shape;
        size_t n_dims;
        uint64_t n_elements; /* product of shape; 1 for a scalar (shape []) */
        uint64_t begin, end; /* offsets into the data buffer */
} SafetensorsTensor;

typedef struct SafetensorsHeader {
        json_t *metadata;            /* "__metadata__": an object of strings, or NULL */
        SafetensorsTensor *tensors;  /* sorted by data offsets: contiguous from 0 */
        size_t n_tensors;
        uint64_t data_size;          /* end of the last tensor: the size of the data buffer */
} SafetensorsHeader;

SafetensorsHeader *safetensors_header_free(SafetensorsHeader *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(SafetensorsHeader *, safetensors_header_free);

/*
 * Parse the JSON part of a header (the N bytes after the length). Checks, each failing with a message
 * in *ret_error (when ret_error is not NULL) and:
 *   -EFBIG      size above SAFETENSORS_HEADER_MAX
 *   -EBADMSG    not UTF-8; not JSON; not an object; anything but spaces after it; a duplicate key;
 *               "__metadata__" not an object of strings; a tensor entry that is not exactly
 *               {"dtype": string, "shape": [non-negative integers], "data_offsets": [b, e]};
 *               offsets that, sorted, do not start at 0 and follow each other without gap or
 *               overlap; e - b not equal to the tensor's byte size; a sub-byte tensor whose bits
 *               do not fill whole bytes
 *   -EOPNOTSUPP an unknown dtype
 *   -EOVERFLOW  elements × bits overflowing 64 bits
 * Stricter than the reference (which ignores them): unknown keys in a tensor entry, a header that
 * does not start with '{', NUL bytes in strings, more than SAFETENSORS_DIMS_MAX dimensions.
 */
int safetensors_parse_header_json(const void *json, size_t size, SafetensorsHeader **ret, char **ret_error);

/*
 * Parse a header from the start of a file held in memory: the length prefix, then the JSON. buf may
 * be a prefix of the file or all of it; it must hold at least 8 + N bytes. The caller checks that
 * the file is exactly 8 + N + data_size bytes long with safetensors_header_check_size().
 * *ret_header_size is N.
 */
int safetensors_parse_header(const void *buf, size_t size, SafetensorsHeader **ret, uint64_t *ret_header_size,
                             char **ret_error);
/* The data buffer must end exactly where the file does: -EBADMSG when shorter or longer. */
int safetensors_header_check_size(const SafetensorsHeader *h, uint64_t header_size, uint64_t file_size,
                                  char **ret_error);

const SafetensorsTensor *safetensors_header_find(const SafetensorsHeader *h, const char *name) _pure_;

/*
 * Read the length and the header from the start of a stream, leaving the stream at the first data
 * byte. -EPIPE when the stream ends inside them. Then the caller reads the data in offset order
 * (the tensors are contiguous from offset 0) and calls safetensors_read_eof().
 */
int safetensors_read_header(const StreamReader *r, SafetensorsHeader **ret, uint64_t *ret_header_size,
                            char **ret_error);
/* After the last data byte: -EBADMSG when the stream has more (trailing bytes). */
int safetensors_read_eof(const StreamReader *r, char **ret_error);

/*
 * Building a header for writing: tensors are laid out in the order they are added, offsets assigned
 * one after the other.
 */
SafetensorsHeader *safetensors_header_new(void);
int safetensors_header_add(SafetensorsHeader *h, const char *name, SafetensorsDtype dtype, const uint64_t *shape,
                           size_t n_dims);
/* Set one "__metadata__" key (copied). */
int safetensors_header_set_metadata(SafetensorsHeader *h, const char *key, const char *value);

/*
 * The bytes of a header as the reference writes it: 8-byte length, compact JSON with
 * "__metadata__" first and the tensors in offset order, padded with spaces to a multiple of 8 so
 * that the data starts 8-byte aligned. -EFBIG when above SAFETENSORS_HEADER_MAX.
 */
int safetensors_header_format(const SafetensorsHeader *h, char **ret, size_t *ret_size);

/*
 * A writer that takes the header first and then exactly data_size bytes, and refuses more or
 * (at finish) fewer: a bug in a producer cannot make a file whose header lies about its data.
 */
typedef struct SafetensorsWriter SafetensorsWriter;
int safetensors_writer_new(const StreamWriter *out, const SafetensorsHeader *h, SafetensorsWriter **ret);
int safetensors_writer_write(SafetensorsWriter *w, const void *buf, size_t n);
/* 0 when all data was written; -EBADMSG when some is missing. Frees nothing. */
int safetensors_writer_finish(SafetensorsWriter *w);
uint64_t safetensors_writer_written(const SafetensorsWriter *w) _pure_;
SafetensorsWriter *safetensors_writer_free(SafetensorsWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(SafetensorsWriter *, safetensors_writer_free);

/*
 * Sharded models: "model.safetensors.index.json" = {"metadata": {...}, "weight_map": {tensor: shard}}.
 * The parser checks the structure, that every shard name is a safe file name ending in
 * ".safetensors" (no '/', no "..", no control characters) and that each tensor is listed once.
 * Whether the shards exist and hold exactly the tensors mapped to them is checked against their
 * headers with safetensors_index_check_shard() and safetensors_index_check_complete().
 */
typedef struct SafetensorsIndex {
        json_t *metadata;   /* the "metadata" object as it is, or NULL */
        char **shards;      /* distinct shard names, in order of first appearance */
        size_t n_shards;
        char **tensors;     /* tensor names, in file order */
        size_t *tensor_shard; /* index into shards for each tensor */
        size_t n_tensors;
} SafetensorsIndex;

#define SAFETENSORS_INDEX_SHARDS_MAX 100000U

SafetensorsIndex *safetensors_index_free(SafetensorsIndex *idx);
DEFINE_TRIVIAL_CLEANUP_FUNC(SafetensorsIndex *, safetensors_index_free);

int safetensors_index_parse(const void *json, size_t size, SafetensorsIndex **ret, char **ret_error);
/* Shard number i holds exactly the tensors the index maps to it: -EBADMSG otherwise. */
int safetensors_index_check_shard(const SafetensorsIndex *idx, size_t shard, const SafetensorsHeader *h,
                                  char **ret_error);
/* Lookup: the shard of a tensor, or -ENOENT. */
int safetensors_index_find(const SafetensorsIndex *idx, const char *tensor, size_t *ret_shard);
/* Format an index for a converted model: weight_map from the shard headers, metadata copied from
 * idx (when not NULL) with "total_size" set to the sum of the shards' data sizes. */
int safetensors_index_format(const json_t *metadata, char *const *shard_names,
                             const SafetensorsHeader *const *shard_headers, size_t n_shards, char **ret,
                             size_t *ret_size);
