/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Re-compression of a safetensors model (DESIGN.md §7), streamed tensor by tensor:
 *
 *   input file(s) → StreamReader (plain fd, or an age opener) → header → plan → row blocks →
 *   kernels (quantize.h) → safetensors writer → StreamWriter (plain fd, or an age sealer)
 *
 * The output header follows from the input header and the profile alone, so it is written first
 * and the data after it in one pass. Data moves in blocks of RECOMPRESS_BLOCK_MAX (whole int8 rows
 * where a row is larger); peak memory is 3 input + 3 output blocks plus the int8 scales of one
 * tensor — a few MiB, not the size of a tensor or of the model. Inputs are read front to back
 * without seeking.
 *
 * Threads: a reader thread calls the StreamReader's read callback, the calling thread runs the
 * kernels, a writer thread calls the StreamWriter's write callback, so that decryption, conversion
 * and encryption overlap. Each stream is used by one thread at a time (never concurrently); open
 * and close callbacks run in the calling thread. An age opener or sealer needs no locking, but must
 * not rely on thread-local state. Only `prune` reads a file more than once: it needs the k-th smallest |w|
 * of each tensor and finds it by radix selection, one histogram pass per 16-bit digit of the
 * float pattern (2 for F16/BF16 files, 3 for F32, 5 for F64, counting the writing pass), so the
 * input callbacks can re-open a file from its start.
 *
 * Methods (RecompressProfile.method; tensors whose names match a `skip` glob, fnmatch(3) without
 * flags, are copied unchanged):
 *   fp16, bf16  every F32/F64/F16/BF16 tensor to the target (one IEEE RNE rounding; F64 rounds
 *               directly, never through F32); other dtypes are copied.
 *   int8        every F32/F64/F16/BF16 tensor named "….weight" with ≥ 2 dimensions: an I8 tensor
 *               of the same name and shape plus "….weight_scale" (F32, [rows, 1]); the layout of
 *               compressed-tensors' "int-quantized" format, see agent/QUANTIZATION.md.
 *   prune       every float tensor with ≥ 2 dimensions: its round(sparsity × n) smallest |w| set
 *               to +0, same dtype.
 */

#include <jansson.h>

#include "config.h"
#include "macros.h"
#include "quantize.h"
#include "safetensors.h"
#include "stream.h"

/* Bytes of input held at once. A row larger than this is still read whole (one row is the unit
 * of int8), up to RECOMPRESS_ROW_MAX; a longer row leaves its tensor unquantised. */
#define RECOMPRESS_BLOCK_MAX (1 * MIB)
#define RECOMPRESS_ROW_MAX   (16 * MIB)
/* int8 keeps the F32 scales of one tensor until its data is written: at most 4 Mi rows. */
#define RECOMPRESS_SCALES_MAX (16 * MIB)

typedef struct RecompressInput {
        /* Start reading file `name` of the input model from its first byte. Called once per file,
         * and again for each further pass of `prune`. */
        int (*open)(void *userdata, const char *name, StreamReader *ret);
        /* Done with the reader returned by open() (also after a failure). */
        void (*close)(void *userdata, const char *name, StreamReader *r);
        /* Optional: how far the conversion of file `name` has come, in bytes of its tensor data
         * over every reading pass (total = passes × data size; prune reads more than once). Called
         * from the calling thread, every RECOMPRESS_PROGRESS_STEP bytes and when the file is done;
         * the callee rate-limits what it reports further. */
        void (*progress)(void *userdata, const char *name, uint64_t done, uint64_t total);
        void *userdata;
} RecompressInput;

#define RECOMPRESS_PROGRESS_STEP (8 * MIB)

typedef struct RecompressOutput {
        /* Create file `name` of the output model. */
        int (*open)(void *userdata, const char *name, StreamWriter *ret);
        /* Finish it: ok = every byte was written and checked (commit: fsync, rename); !ok = discard. */
        int (*close)(void *userdata, const char *name, StreamWriter *w, bool ok);
        void *userdata;
} RecompressOutput;

typedef enum TensorAction {
        TENSOR_COPY,
        TENSOR_HALF,
        TENSOR_INT8,
        TENSOR_PRUNE,
        _TENSOR_ACTION_MAX,
        _TENSOR_ACTION_INVALID = -EINVAL,
} TensorAction;

const char *tensor_action_to_string(TensorAction a) _const_;

/* What happens to one input tensor. */
typedef struct TensorPlan {
        TensorAction action;
        const char *reason;       /* static text, why a tensor is copied */
        SafetensorsDtype to;      /* the output dtype of the tensor */
        uint64_t rows, cols;      /* int8 / prune: shape[0] × prod(shape[1:]) */
        char *scale_name;         /* int8: "<name>_scale" */
        uint64_t prune_k;         /* prune: elements to zero */
} TensorPlan;

typedef struct RecompressPlan {
        RecompressMethod method;
        TensorPlan *tensors;      /* one per input tensor, in input (offset) order */
        size_t n_tensors;
        SafetensorsHeader *output;
        unsigned passes;          /* reading passes over the input: 1, or more for prune */
} RecompressPlan;

RecompressPlan *recompress_plan_free(RecompressPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(RecompressPlan *, recompress_plan_free);

/*
 * Decide, from the input header alone, what happens to each tensor and what the output header is.
 * Pure. -EOPNOTSUPP for METHOD_EXEC (not ours), -EINVAL for a sparsity outside [0, 1], -EEXIST
 * when an int8 scale name is already taken by an input tensor (e.g. an already quantised model).
 */
int recompress_plan(const RecompressProfile *profile, const SafetensorsHeader *in, RecompressPlan **ret,
                    char **ret_error);

/* The compressed-tensors quantization_config (for config.json) of an int8 plan, or NULL. */
json_t *recompress_quantization_config(const RecompressPlan *plan);

/*
 * Re-compress one safetensors file read through `in` as `name` into `out` (a writer the caller
 * opened; nothing is closed here). Statistics (see recompress_stats_*) go to *ret_stats: per tensor
 * {"action", "from", "to", "elements", "max_abs_error", "rel_rmse", "overflow", "zeroed",
 * "sparsity", …} and totals. When ret_output is not NULL the output header is returned there (for
 * an index).
 */
int recompress_stream(const RecompressProfile *profile, const RecompressInput *in, const char *name,
                      const StreamWriter *out, json_t **ret_stats, SafetensorsHeader **ret_output,
                      char **ret_error);

/*
 * Re-compress a whole model: `name` is either one ".safetensors" file or a sharded model's
 * index (".safetensors.index.json"): then every shard is checked against the index, converted
 * one by one under its own name, and a new index is written. Output files are opened through
 * `out` under the input names. *ret_stats holds the totals, "files": {name: per-file stats} and,
 * for int8, "quantization_config" (for the model's config.json). On failure, output files already
 * completed stay where `out` put them: write into a staging directory and drop it.
 */
int recompress_model(const RecompressProfile *profile, const RecompressInput *in, const RecompressOutput *out,
                     const char *name, json_t **ret_stats, char **ret_error);

/*
 * The model's config.json (Hugging Face layout) updated for a re-compressed version: int8 adds
 * "quantization_config" (from the statistics of recompress_model()); fp16/bf16 set the dtype
 * ("torch_dtype", or "dtype" where the file uses that newer key) to "float16"/"bfloat16"; prune
 * changes nothing. Pure: bytes in, bytes out. -EBADMSG when the input is not a JSON object.
 */
int recompress_update_config(const void *config, size_t size, RecompressMethod method, const json_t *stats,
                             char **ret, size_t *ret_size);

/* RecompressInput/RecompressOutput on plain files in two directories: inputs opened with
 * O_NOFOLLOW and checked to be regular files; each output written to "<name>.tmp", fsync'd and
 * renamed into place when complete, removed otherwise. userdata = RecompressDirs*. */
typedef struct RecompressDirs {
        int in_dirfd;
        int out_dirfd;
} RecompressDirs;

int recompress_dir_open_input(void *userdata, const char *name, StreamReader *ret);
void recompress_dir_close_input(void *userdata, const char *name, StreamReader *r);
int recompress_dir_open_output(void *userdata, const char *name, StreamWriter *ret);
int recompress_dir_close_output(void *userdata, const char *name, StreamWriter *w, bool ok);

#define RECOMPRESS_INPUT_DIRS(d)                                                                           \
        ((RecompressInput) {                                                                               \
                .open = recompress_dir_open_input, .close = recompress_dir_close_input, .userdata = (d)    \
        })
#define RECOMPRESS_OUTPUT_DIRS(d)                                                                          \
        ((RecompressOutput) {                                                                              \
                .open = recompress_dir_open_output, .close = recompress_dir_close_output, .userdata = (d)  \
        })
