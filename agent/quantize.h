/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Numeric kernels of re-compression, on contiguous little-endian arrays in memory. The driver
 * (recompress.c) feeds them one row block at a time.
 *
 * Every kernel has a portable C version and, on x86-64 CPUs with AVX2 and F16C, a vectorised one
 * chosen at run time. Both give bit-identical outputs (the tests compare them on every input class
 * that matters); error statistics may differ in the last bits of a sum only if the summation order
 * differs, and it does not: both use the same lane structure.
 *
 * Rounding is IEEE 754 round-to-nearest-even everywhere; NaN stays NaN (made quiet, sign and the
 * top payload bits kept, exactly what F16C's VCVTPS2PH does); subnormal results are exact (no
 * flush to zero: the kernels never set FTZ/DAZ, and the bf16 path uses integer arithmetic rather
 * than VCVTNEPS2BF16, which flushes subnormals).
 */

#include "macros.h"
#include "safetensors.h"

/* Statistics of one tensor (or a sum of tensors). Error statistics cover the elements whose input
 * and output are both finite; the others are counted in overflow / nonfinite. */
typedef struct QuantStats {
        uint64_t elements;
        uint64_t overflow;    /* finite inputs that became ±Inf */
        uint64_t nonfinite;   /* NaN or ±Inf inputs (kept as they are where the format allows) */
        uint64_t zeroed;      /* non-zero inputs whose output is zero (underflow, int8 rounding, pruning) */
        uint64_t zeros;       /* outputs equal to ±0 */
        double sum_sq_err;    /* Σ (x − x̂)² */
        double sum_sq_ref;    /* Σ x² */
        double max_abs_err;   /* max |x − x̂| */
} QuantStats;

void quant_stats_merge(QuantStats *into, const QuantStats *from);
/* ||x − x̂||₂ / ||x||₂; 0 when both are 0, +Inf when only x is 0. */
double quant_stats_rel_rmse(const QuantStats *s) _pure_;

/* Use the portable kernels even where vectorised ones exist (tests compare the two). */
void quant_force_portable(bool b);
/* "avx2+f16c" or "portable": what the kernels run on now. */
const char *quant_kernel_name(void);

/* Scalars, for tests and for the slow paths. */
uint16_t quant_f32_to_f16(float f) _const_;
uint16_t quant_f32_to_bf16(float f) _const_;
uint16_t quant_f64_to_f16(double d) _const_;
uint16_t quant_f64_to_bf16(double d) _const_;
float quant_f16_to_f32(uint16_t h) _const_;
float quant_bf16_to_f32(uint16_t h) _const_;

/*
 * Convert n elements from `from` (F32, F64, F16 or BF16) to `to` (F16 or BF16) and add to *stats
 * (may be NULL). in and out must not overlap. -EINVAL for another pair.
 */
int quant_convert_half(SafetensorsDtype from, SafetensorsDtype to, const void *in, void *out, size_t n,
                       QuantStats *stats);

/* int8: the quantised range is [-127, 127]; the scale of an all-zero (or all-tiny) row is FLT_MIN. */
#define QUANT_INT8_MAX 127

/*
 * Quantise one row of n elements of a float dtype: scale = max|x| / 127 (in float32, clamped
 * below at FLT_MIN), q = round-half-even(x / scale) clamped to [-127, 127], rounding the exact
 * quotient (a rounded quotient can land on a half-way point that the exact one misses; those
 * cases are decided exactly). So |x − q·scale| ≤ scale/2 always. F64 rows compute in long double.
 * -EDOM when the row holds NaN or ±Inf: such a tensor cannot be quantised meaningfully; -ERANGE
 * when an F64 row's scale would not fit in float32 (|x| > 127 · FLT_MAX).
 */
int quant_int8_row(SafetensorsDtype from, const void *in, size_t n, int8_t *out, float *ret_scale,
                   QuantStats *stats);

/*
 * Magnitude pruning by radix selection over the bit patterns of |x| (the sign bit cleared), which
 * order like the magnitudes for every float format (NaN patterns sort above ±Inf, so NaN is never
 * pruned before a number). The patterns have quant_prune_bits() bits and are selected 16 bits at a
 * time from the top, one pass over the tensor per digit.
 */
#define QUANT_PRUNE_DIGIT_BITS 16
#define QUANT_PRUNE_BINS       (1U << QUANT_PRUNE_DIGIT_BITS)

unsigned quant_prune_bits(SafetensorsDtype d) _const_;   /* 15, 31 or 63; 0 for a non-float */
unsigned quant_prune_levels(SafetensorsDtype d) _const_; /* passes needed: ceil(bits / 16) */

/* Count into hist[QUANT_PRUNE_BINS] the digit of level `level` of the elements whose higher digits
 * equal `prefix` (PruneSelect.level and .prefix). */
void quant_prune_histogram(SafetensorsDtype d, const void *in, size_t n, unsigned level, uint64_t prefix,
                           uint64_t *hist);

/* The selection state of one tensor across passes. */
typedef struct PruneSelect {
        uint64_t k;       /* how many elements to zero in total */
        uint64_t rank;    /* 1-based rank of the threshold among the elements matching prefix */
        uint64_t prefix;  /* the pattern bits decided so far */
        unsigned level;   /* digits decided so far */
        uint64_t ties;    /* after the last level: how many elements equal to the threshold to zero */
} PruneSelect;

/* Set up the selection of the k smallest of n elements. */
void quant_prune_select_init(PruneSelect *s, uint64_t k);
/* After the histogram pass of the current level: fix one more digit. */
void quant_prune_select_step(PruneSelect *s, SafetensorsDtype d, const uint64_t *hist);
/* All digits known: the threshold is s->prefix. */
bool quant_prune_select_done(const PruneSelect *s, SafetensorsDtype d) _pure_;

/*
 * Write in → out with the elements whose |x| pattern is below the threshold set to +0, and the
 * first *ties_left (in stream order) of those equal to it as well; *ties_left is decreased. With
 * k == 0 nothing is zeroed (call with threshold 0 and ties 0).
 */
void quant_prune_apply(SafetensorsDtype d, const void *in, void *out, size_t n, uint64_t threshold,
                       uint64_t *ties_left, QuantStats *stats);
