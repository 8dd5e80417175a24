/* SPDX-License-Identifier: Apache-2.0 */

#include <float.h>
#include <math.h>

#include "quantize.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "safetensors data is little-endian; the kernels read it in place"
#endif

#if defined(__x86_64__) || defined(__i386__)
#  define HAVE_X86_KERNELS 1
#  include <cpuid.h>
#  include <immintrin.h>
#else
#  define HAVE_X86_KERNELS 0
#endif

/* Elements per inner chunk: the scratch arrays of a chunk stay in L1. */
#define CHUNK 2048
/* Independent accumulators of the statistics: the vectorised and the portable code sum in the
 * same order, so they give the same figures. */
#define LANES 8

static inline uint32_t f32_bits(float f) {
        uint32_t u;
        memcpy(&u, &f, sizeof(u));
        return u;
}

static inline float bits_f32(uint32_t u) {
        float f;
        memcpy(&f, &u, sizeof(f));
        return f;
}

static inline uint64_t f64_bits(double d) {
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        return u;
}

/* ---- statistics ---- */

void quant_stats_merge(QuantStats *into, const QuantStats *from) {
        into->elements += from->elements;
        into->overflow += from->overflow;
        into->nonfinite += from->nonfinite;
        into->zeroed += from->zeroed;
        into->zeros += from->zeros;
        into->sum_sq_err += from->sum_sq_err;
        into->sum_sq_ref += from->sum_sq_ref;
        if (from->max_abs_err > into->max_abs_err)
                into->max_abs_err = from->max_abs_err;
}

double quant_stats_rel_rmse(const QuantStats *s) {
        if (s->sum_sq_ref > 0)
                return sqrt(s->sum_sq_err) / sqrt(s->sum_sq_ref);
        return s->sum_sq_err > 0 ? INFINITY : 0.0;
}

/* ---- scalar conversions (the portable path, and the reference for the vectorised one) ---- */

uint16_t quant_f32_to_f16(float f) {
        uint32_t x = f32_bits(f), ax = x & 0x7fffffffu;
        uint16_t sign = (uint16_t) ((x >> 16) & 0x8000u);

        if (ax > 0x7f800000u) /* NaN: quiet it, keep the top 9 payload bits (as VCVTPS2PH does) */
                return sign | 0x7e00u | (uint16_t) ((ax >> 13) & 0x1ffu);
        if (ax >= 0x477ff000u) /* ≥ 65520 = 65504 + ulp/2 rounds (to even) to Inf; also Inf itself */
                return sign | 0x7c00u;
        if (ax >= 0x38800000u) { /* ≥ 2^-14: a normal half; round the 13 dropped bits to even */
                uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
                return sign | (uint16_t) ((r >> 13) - (112u << 10));
        }
        if (ax < 0x33000000u) /* < 2^-25 = half the smallest subnormal: zero */
                return sign;
        /* A subnormal half: q units of 2^-24 with value = m · 2^(e-150). */
        uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u;
        unsigned shift = 126u - e; /* 14 … 24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u)))
                q++; /* may carry into the smallest normal, whose encoding follows on */
        return sign | (uint16_t) q;
}

uint16_t quant_f32_to_bf16(float f) {
        uint32_t x = f32_bits(f);

        if ((x & 0x7fffffffu) > 0x7f800000u)
                return (uint16_t) ((x >> 16) | 0x40u);
        /* Round the 16 dropped bits to even; a carry moves into the exponent as it should (up to Inf). */
        return (uint16_t) ((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* A double to a 16-bit float with 1 sign, 15-mbits exponent and mbits mantissa bits, rounded once. */
static uint16_t f64_to_small(double d, unsigned mbits, int bias) {
        uint64_t x = f64_bits(d), ax = x & ~(UINT64_C(1) << 63);
        uint16_t sign = (x >> 63) ? 0x8000u : 0;
        uint16_t inf = (uint16_t) (((1u << (15 - mbits)) - 1u) << mbits);
        unsigned drop = 52 - mbits;
        int e = (int) (ax >> 52) - 1023;

        if (ax > UINT64_C(0x7ff0000000000000))
                return sign | inf | (uint16_t) (1u << (mbits - 1)) |
                       (uint16_t) ((ax >> drop) & ((1u << mbits) - 1u));
        if (ax == UINT64_C(0x7ff0000000000000))
                return sign | inf;
        if (e >= 1 - bias) {
                uint64_t r = ax + ((UINT64_C(1) << (drop - 1)) - 1) + ((ax >> drop) & 1);
                uint64_t v = (r >> drop) - ((uint64_t) (1023 - bias) << mbits);
                return v >= inf ? (uint16_t) (sign | inf) : (uint16_t) (sign | v);
        }
        /* Below half the smallest subnormal (and all double subnormals): zero. */
        if (e < -bias - (int) mbits)
                return sign;
        uint64_t m = (ax & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1) << 52);
        unsigned shift = (unsigned) (53 - bias - (int) mbits - e); /* value / 2^(1-bias-mbits) = m >> shift */
        uint64_t q = m >> shift, rem = m & ((UINT64_C(1) << shift) - 1), half = UINT64_C(1) << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
                q++;
        return sign | (uint16_t) q;
}

uint16_t quant_f64_to_f16(double d) {
        return f64_to_small(d, 10, 15);
}

uint16_t quant_f64_to_bf16(double d) {
        return f64_to_small(d, 7, 127);
}

float quant_f16_to_f32(uint16_t h) {
        uint32_t sign = (uint32_t) (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;

        if (e == 0x1f) /* Inf, NaN (payload kept; a signalling NaN stays as it is, as VCVTPH2PS does) */
                return bits_f32(sign | 0x7f800000u | (m << 13));
        if (e != 0)
                return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
        if (m == 0)
                return bits_f32(sign);
        /* Subnormal half: normalise. */
        e = 113;
        while (!(m & 0x400u)) {
                m <<= 1;
                e--;
        }
        return bits_f32(sign | (e << 23) | ((m & 0x3ffu) << 13));
}

float quant_bf16_to_f32(uint16_t h) {
        return bits_f32((uint32_t) h << 16);
}

/* ---- kernels, compiled twice: portable, and for AVX2 + F16C ---- */

#define KFN(name) name##_portable
#define KATTR
#define KAVX2 0
#include "quantize-kernels.h"
#undef KFN
#undef KATTR
#undef KAVX2

#if HAVE_X86_KERNELS
#  define KFN(name) name##_avx2
#  define KATTR __attribute__((target("avx2,f16c")))
#  define KAVX2 1
#  include "quantize-kernels.h"
#  undef KFN
#  undef KATTR
#  undef KAVX2
#endif

static int force_portable = -1;

void quant_force_portable(bool b) {
        force_portable = b;
}

static bool use_avx2(void) {
#if HAVE_X86_KERNELS
        static int have = -1;

        if (force_portable > 0)
                return false;
        if (have < 0) {
                unsigned a, b, c, d;

                /* AVX2 as the compiler sees it (it also checks that the OS saves the YMM state);
                 * F16C from CPUID leaf 1 ECX bit 29 (not every compiler's builtin knows "f16c"). */
                __builtin_cpu_init();
                have = __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        }
        return have;
#else
        return false;
#endif
}

const char *quant_kernel_name(void) {
        return use_avx2() ? "avx2+f16c" : "portable";
}

#if HAVE_X86_KERNELS
#  define DISPATCH(name, ...) (use_avx2() ? name##_avx2(__VA_ARGS__) : name##_portable(__VA_ARGS__))
#else
#  define DISPATCH(name, ...) name##_portable(__VA_ARGS__)
#endif

/* The statistics of F64 inputs are rare enough for one plain loop. */
static void stats_f64(QuantStats *s, const double *x, const double *xh, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint64_t a = f64_bits(x[i]) & ~(UINT64_C(1) << 63), b = f64_bits(xh[i]) & ~(UINT64_C(1) << 63);
                bool fa = a < UINT64_C(0x7ff0000000000000), fb = b < UINT64_C(0x7ff0000000000000);

                if (fa && fb) {
                        /* x − x̂ in long double: exact for the differences of doubles that occur here. */
                        double d = (double) ((long double) x[i] - (long double) xh[i]);
                        s->sum_sq_err += d * d;
                        s->sum_sq_ref += x[i] * x[i];
                        if (fabs(d) > s->max_abs_err)
                                s->max_abs_err = fabs(d);
                }
                s->overflow += fa && !fb;
                s->nonfinite += !fa;
                s->zeroed += a != 0 && b == 0;
                s->zeros += b == 0;
        }
        s->elements += n;
}

int quant_convert_half(SafetensorsDtype from, SafetensorsDtype to, const void *in, void *out, size_t n,
                       QuantStats *stats) {
        float xs[CHUNK], hs[CHUNK];
        uint16_t *o = out;

        assert_return(to == ST_F16 || to == ST_BF16, -EINVAL);
        assert_return(safetensors_dtype_is_float(from), -EINVAL);
        assert_return(in || n == 0, -EINVAL);
        assert_return(out || n == 0, -EINVAL);

        if (from == ST_F64) {
                const double *x = in;
                double xh[CHUNK];

                for (size_t i = 0; i < n; i += CHUNK) {
                        size_t m = MIN((size_t) CHUNK, n - i);
                        for (size_t j = 0; j < m; j++) {
                                o[i + j] = to == ST_F16 ? quant_f64_to_f16(x[i + j]) : quant_f64_to_bf16(x[i + j]);
                                xh[j] = to == ST_F16 ? quant_f16_to_f32(o[i + j]) : quant_bf16_to_f32(o[i + j]);
                        }
                        if (stats)
                                stats_f64(stats, x + i, xh, m);
                }
                return 0;
        }

        for (size_t i = 0; i < n; i += CHUNK) {
                size_t m = MIN((size_t) CHUNK, n - i);
                const float *x;

                /* Widen a half input first (exact), then round once to the target. */
                switch (from) {
                case ST_F32:
                        x = (const float *) in + i;
                        break;
                case ST_F16:
                        DISPATCH(k_f16_to_f32, (const uint16_t *) in + i, xs, m);
                        x = xs;
                        break;
                case ST_BF16:
                        DISPATCH(k_bf16_to_f32, (const uint16_t *) in + i, xs, m);
                        x = xs;
                        break;
                default:
                        assert_not_reached();
                }

                if (to == ST_F16) {
                        DISPATCH(k_f32_to_f16, x, o + i, m);
                        if (stats)
                                DISPATCH(k_f16_to_f32, o + i, hs, m);
                } else {
                        DISPATCH(k_f32_to_bf16, x, o + i, m);
                        if (stats)
                                DISPATCH(k_bf16_to_f32, o + i, hs, m);
                }
                if (stats)
                        DISPATCH(k_stats_f32, stats, x, hs, m);
        }
        return 0;
}

int quant_int8_row(SafetensorsDtype from, const void *in, size_t n, int8_t *out, float *ret_scale,
                   QuantStats *stats) {
        float xs[CHUNK], hs[CHUNK];
        uint32_t amax = 0;
        float scale;

        assert_return(safetensors_dtype_is_float(from), -EINVAL);
        assert_return(in || n == 0, -EINVAL);
        assert_return(out || n == 0, -EINVAL);
        assert_return(ret_scale, -EINVAL);

        if (from == ST_F64) {
                const double *x = in;
                double dmax = 0, xh[CHUNK];

                for (size_t i = 0; i < n; i++) {
                        if (!isfinite(x[i]))
                                return -EDOM;
                        dmax = MAX(dmax, fabs(x[i]));
                }
                /* A scale beyond float32 cannot be stored: refuse rather than break the bound. */
                if (dmax / 127.0 > (double) FLT_MAX)
                        return -ERANGE;
                scale = (float) (dmax / 127.0);
                if (scale < FLT_MIN)
                        scale = FLT_MIN;
                for (size_t i = 0; i < n; i += CHUNK) {
                        size_t m = MIN((size_t) CHUNK, n - i);
                        for (size_t j = 0; j < m; j++) {
                                /* long double: the quotient of a double by a float rounds like the
                                 * exact one (see k_quantize_i8). */
                                double q = (double) rintl((long double) x[i + j] / (long double) scale);
                                q = CLAMP(q, -127.0, 127.0);
                                out[i + j] = (int8_t) q;
                                xh[j] = (double) ((float) out[i + j] * scale);
                        }
                        if (stats)
                                stats_f64(stats, x + i, xh, m);
                }
                *ret_scale = scale;
                return 0;
        }

        /* First the maximum over the row, in the bit patterns of |x| (they order like the values;
         * NaN and Inf are ≥ 0x7f800000). */
        for (size_t i = 0; i < n; i += CHUNK) {
                size_t m = MIN((size_t) CHUNK, n - i);
                uint32_t a;

                switch (from) {
                case ST_F32:
                        a = DISPATCH(k_absmax_f32, (const float *) in + i, m);
                        break;
                case ST_F16:
                case ST_BF16:
                        a = DISPATCH(k_absmax_u16, (const uint16_t *) in + i, m);
                        /* Widen the half pattern: F16 Inf/NaN are ≥ 0x7c00, BF16 ones ≥ 0x7f80. */
                        if (a >= (from == ST_F16 ? 0x7c00u : 0x7f80u))
                                return -EDOM;
                        a = f32_bits(from == ST_F16 ? quant_f16_to_f32((uint16_t) a) : quant_bf16_to_f32((uint16_t) a));
                        break;
                default:
                        assert_not_reached();
                }
                if (a >= 0x7f800000u)
                        return -EDOM;
                amax = MAX(amax, a);
        }

        scale = bits_f32(amax) / 127.0f;
        if (scale < FLT_MIN)
                scale = FLT_MIN;

        for (size_t i = 0; i < n; i += CHUNK) {
                size_t m = MIN((size_t) CHUNK, n - i);
                const float *x;

                switch (from) {
                case ST_F32:
                        x = (const float *) in + i;
                        break;
                case ST_F16:
                        DISPATCH(k_f16_to_f32, (const uint16_t *) in + i, xs, m);
                        x = xs;
                        break;
                case ST_BF16:
                        DISPATCH(k_bf16_to_f32, (const uint16_t *) in + i, xs, m);
                        x = xs;
                        break;
                default:
                        assert_not_reached();
                }
                DISPATCH(k_quantize_i8, x, m, scale, out + i);
                if (stats) {
                        DISPATCH(k_dequantize_i8, out + i, m, scale, hs);
                        DISPATCH(k_stats_f32, stats, x, hs, m);
                }
        }

        *ret_scale = scale;
        return 0;
}

/* ---- pruning ---- */

unsigned quant_prune_bits(SafetensorsDtype d) {
        switch (d) {
        case ST_F16:
        case ST_BF16:
                return 15;
        case ST_F32:
                return 31;
        case ST_F64:
                return 63;
        default:
                return 0;
        }
}

unsigned quant_prune_levels(SafetensorsDtype d) {
        return (quant_prune_bits(d) + QUANT_PRUNE_DIGIT_BITS - 1) / QUANT_PRUNE_DIGIT_BITS;
}

/* The digit of level l sits at bits [shift(l), shift(l-1)). */
static unsigned level_shift(unsigned bits, unsigned level) {
        unsigned top = QUANT_PRUNE_DIGIT_BITS * (level + 1);
        return top >= bits ? 0 : bits - top;
}

static unsigned level_width(unsigned bits, unsigned level) {
        unsigned hi = level == 0 ? bits : level_shift(bits, level - 1);
        return hi - level_shift(bits, level);
}

static inline uint64_t abs_pattern(SafetensorsDtype d, const void *in, size_t i) {
        switch (d) {
        case ST_F16:
        case ST_BF16:
                return ((const uint16_t *) in)[i] & 0x7fffu;
        case ST_F32: {
                uint32_t u;
                memcpy(&u, (const uint8_t *) in + 4 * i, 4);
                return u & 0x7fffffffu;
        }
        case ST_F64: {
                uint64_t u;
                memcpy(&u, (const uint8_t *) in + 8 * i, 8);
                return u & ~(UINT64_C(1) << 63);
        }
        default:
                return 0;
        }
}

void quant_prune_select_init(PruneSelect *s, uint64_t k) {
        *s = (PruneSelect) {
                .k = k,
                .rank = k,
        };
}

bool quant_prune_select_done(const PruneSelect *s, SafetensorsDtype d) {
        return s->k == 0 || s->level >= quant_prune_levels(d);
}

void quant_prune_histogram(SafetensorsDtype d, const void *in, size_t n, unsigned level, uint64_t prefix,
                           uint64_t *hist) {
        unsigned bits = quant_prune_bits(d), shift = level_shift(bits, level);
        unsigned above = level == 0 ? 64 : level_shift(bits, level - 1);
        uint64_t mask = (UINT64_C(1) << level_width(bits, level)) - 1;

        if (bits == 0)
                return;
        if (level == 0 && d == ST_F32) {
                DISPATCH(k_hist_f32_top, in, n, hist);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                uint64_t a = abs_pattern(d, in, i);
                if (above < 64 && (a >> above) != prefix)
                        continue;
                hist[(a >> shift) & mask]++;
        }
}

void quant_prune_select_step(PruneSelect *s, SafetensorsDtype d, const uint64_t *hist) {
        unsigned bits = quant_prune_bits(d), width = level_width(bits, s->level);
        uint64_t below = 0;
        size_t digit;

        if (quant_prune_select_done(s, d))
                return;
        for (digit = 0; digit < ((size_t) 1 << width); digit++) {
                if (below + hist[digit] >= s->rank)
                        break;
                below += hist[digit];
        }
        /* The rank is ≤ the number of matching elements, so a digit is always found; if the data
         * changed between passes it may not be: then select the last one (all below are zeroed). */
        if (digit >= ((size_t) 1 << width))
                digit = ((size_t) 1 << width) - 1;
        s->rank -= MIN(below, s->rank - 1);
        s->prefix = (s->prefix << width) | digit;
        s->level++;
        if (quant_prune_select_done(s, d))
                s->ties = s->rank;
}

void quant_prune_apply(SafetensorsDtype d, const void *in, void *out, size_t n, uint64_t threshold,
                       uint64_t *ties_left, QuantStats *stats) {
        float xs[CHUNK], hs[CHUNK];
        uint64_t ties = ties_left ? *ties_left : 0;

        if (d == ST_F32)
                DISPATCH(k_prune_f32, in, out, n, (uint32_t) threshold);
        else
                for (size_t i = 0; i < n; i++) {
                        size_t sz = quant_prune_bits(d) == 15 ? 2 : 8;
                        if (abs_pattern(d, in, i) < threshold)
                                memset((uint8_t *) out + i * sz, 0, sz);
                        else
                                memcpy((uint8_t *) out + i * sz, (const uint8_t *) in + i * sz, sz);
                }

        /* Ties at the threshold: the first ones in row-major order go, until k are gone. */
        if (ties > 0) {
                size_t sz = d == ST_F32 ? 4 : quant_prune_bits(d) == 15 ? 2 : 8;
                for (size_t i = 0; i < n && ties > 0; i++)
                        if (abs_pattern(d, in, i) == threshold) {
                                memset((uint8_t *) out + i * sz, 0, sz);
                                ties--;
                        }
        }
        if (ties_left)
                *ties_left = ties;

        if (!stats)
                return;
        if (d == ST_F64) {
                stats_f64(stats, in, out, n);
                return;
        }
        for (size_t i = 0; i < n; i += CHUNK) {
                size_t m = MIN((size_t) CHUNK, n - i);
                const float *x, *xh;

                switch (d) {
                case ST_F32:
                        x = (const float *) in + i;
                        xh = (const float *) out + i;
                        break;
                case ST_F16:
                        DISPATCH(k_f16_to_f32, (const uint16_t *) in + i, xs, m);
                        DISPATCH(k_f16_to_f32, (const uint16_t *) out + i, hs, m);
                        x = xs;
                        xh = hs;
                        break;
                case ST_BF16:
                        DISPATCH(k_bf16_to_f32, (const uint16_t *) in + i, xs, m);
                        DISPATCH(k_bf16_to_f32, (const uint16_t *) out + i, hs, m);
                        x = xs;
                        xh = hs;
                        break;
                default:
                        return;
                }
                DISPATCH(k_stats_f32, stats, x, xh, m);
        }
}
