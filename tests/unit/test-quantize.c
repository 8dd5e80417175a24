/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <float.h>
#include <math.h>

#include "quantize.h"

static float f32_of(uint32_t u) {
        float f;
        memcpy(&f, &u, 4);
        return f;
}

static uint32_t bits_of(float f) {
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
}

static void test_f16_scalar(void **state) {
        assert_int_equal(quant_f32_to_f16(1.0f), 0x3c00);
        assert_int_equal(quant_f32_to_f16(-2.0f), 0xc000);
        assert_int_equal(quant_f32_to_f16(0.0f), 0x0000);
        assert_int_equal(quant_f32_to_f16(-0.0f), 0x8000);
        assert_int_equal(quant_f32_to_f16(65504.0f), 0x7bff);
        assert_int_equal(quant_f32_to_f16(65519.996f), 0x7bff);
        assert_int_equal(quant_f32_to_f16(65520.0f), 0x7c00); /* the tie goes to even: Inf */
        assert_int_equal(quant_f32_to_f16(-INFINITY), 0xfc00);
        assert_int_equal(quant_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);              /* tie, even below */
        assert_int_equal(quant_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);          /* tie, even above */
        assert_int_equal(quant_f32_to_f16(nextafterf(1.0f + 0x1p-11f, 2)), 0x3c01); /* past the tie */
        /* subnormals */
        assert_int_equal(quant_f32_to_f16(0x1p-24f), 0x0001);
        assert_int_equal(quant_f32_to_f16(0x1p-25f), 0x0000);                     /* tie to even 0 */
        assert_int_equal(quant_f32_to_f16(nextafterf(0x1p-25f, 1)), 0x0001);
        assert_int_equal(quant_f32_to_f16(1.5f * 0x1p-24f), 0x0002);              /* tie to even 2 */
        assert_int_equal(quant_f32_to_f16(0x1p-14f - 0x1p-25f), 0x0400);          /* rounds up to the min normal */
        assert_int_equal(quant_f32_to_f16(FLT_MIN), 0x0000);
        /* NaN: quiet, sign and top payload kept */
        assert_int_equal(quant_f32_to_f16(f32_of(0x7f800001)), 0x7e00);
        assert_int_equal(quant_f32_to_f16(f32_of(0xffc02000)), 0xfe01);
        assert_int_equal(quant_f32_to_f16(f32_of(0x7fffffff)), 0x7fff);

        /* back: exact */
        for (uint32_t h = 0; h < 65536; h++) {
                float f = quant_f16_to_f32((uint16_t) h);
                if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
                        assert_true(isnan(f));
                        continue;
                }
                assert_int_equal(quant_f32_to_f16(f), h);
        }
        assert_true(quant_f16_to_f32(0x0001) == 0x1p-24f);
        assert_true(quant_f16_to_f32(0x7bff) == 65504.0f);
}

static void test_bf16_scalar(void **state) {
        assert_int_equal(quant_f32_to_bf16(1.0f), 0x3f80);
        assert_int_equal(quant_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);     /* tie, even below */
        assert_int_equal(quant_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82); /* tie, even above */
        assert_int_equal(quant_f32_to_bf16(f32_of(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to Inf */
        assert_int_equal(quant_f32_to_bf16(f32_of(0x7f7f7fff)), 0x7f7f);
        assert_int_equal(quant_f32_to_bf16(f32_of(0x00000001)), 0x0000); /* subnormal, below half */
        assert_int_equal(quant_f32_to_bf16(f32_of(0x00008000)), 0x0000); /* tie to even */
        assert_int_equal(quant_f32_to_bf16(f32_of(0x00018000)), 0x0002); /* tie to even */
        assert_int_equal(quant_f32_to_bf16(f32_of(0x7f800001)), 0x7fc0);
        assert_int_equal(quant_f32_to_bf16(f32_of(0xff812345)), 0xffc1);
        for (uint32_t h = 0; h < 65536; h++) {
                float f = quant_bf16_to_f32((uint16_t) h);
                if (!isnan(f))
                        assert_int_equal(quant_f32_to_bf16(f), h);
        }
}

static void test_f64_scalar(void **state) {
        /* Directly rounded once: through F32 the first two would become ties and go to even. */
        assert_int_equal(quant_f64_to_f16(1.0 + 0x1p-11 + 0x1p-40), 0x3c01);
        assert_int_equal(quant_f64_to_f16(1.0 + 0x1p-11 - 0x1p-40), 0x3c00);
        assert_int_equal(quant_f64_to_f16(1.0 + 0x1p-11), 0x3c00);
        assert_int_equal(quant_f64_to_bf16(1.0 + 0x1p-8 + 0x1p-40), 0x3f81);
        assert_int_equal(quant_f64_to_bf16(1.0 + 0x1p-8), 0x3f80);
        assert_int_equal(quant_f64_to_f16(65520.0), 0x7c00);
        assert_int_equal(quant_f64_to_f16(65519.99999999), 0x7bff);
        assert_int_equal(quant_f64_to_f16(1e300), 0x7c00);
        assert_int_equal(quant_f64_to_f16(-1e-300), 0x8000);
        assert_int_equal(quant_f64_to_f16(0x1p-24 * 1.5), 0x0002);
        assert_int_equal(quant_f64_to_f16(0x1p-25), 0x0000);
        assert_int_equal(quant_f64_to_f16(0x1p-25 + 0x1p-60), 0x0001);
        assert_int_equal(quant_f64_to_bf16(1e300), 0x7f80);
        assert_int_equal(quant_f64_to_bf16(0x1p-133), 0x0001);
        assert_int_equal(quant_f64_to_bf16(0x1p-134), 0x0000);
        assert_int_equal(quant_f64_to_bf16(0x1p-134 + 0x1p-160), 0x0001);
        assert_int_equal(quant_f64_to_f16(NAN) & 0x7e00, 0x7e00);
        assert_int_equal(quant_f64_to_bf16(-INFINITY), 0xff80);
        /* agrees with the F32 path wherever the double is a float */
        for (uint32_t i = 0; i < 200000; i++) {
                uint32_t u = i * 21473u + 12345u;
                float f = f32_of(u);
                if (isnan(f))
                        continue;
                assert_int_equal(quant_f64_to_f16(f), quant_f32_to_f16(f));
                assert_int_equal(quant_f64_to_bf16(f), quant_f32_to_bf16(f));
        }
}

/* The vectorised kernels against the portable ones over a wide sample of all 2^32 float patterns. */
static void test_paths_agree(void **state) {
        enum { N = 1 << 16 };
        float *in = malloc(N * sizeof(float));
        uint16_t *a = malloc(N * 2), *b = malloc(N * 2);
        QuantStats sa = {}, sb = {};

        assert_non_null(in);
        assert_non_null(a);
        assert_non_null(b);
        for (uint64_t base = 0; base < (UINT64_C(1) << 32); base += UINT64_C(1) << 21) {
                for (uint32_t i = 0; i < N; i++)
                        in[i] = f32_of((uint32_t) (base + i * 31u));
                for (SafetensorsDtype to = ST_F16; to <= ST_BF16; to++) {
                        quant_force_portable(false);
                        assert_int_equal(quant_convert_half(ST_F32, to, in, a, N, &sa), 0);
                        quant_force_portable(true);
                        assert_int_equal(quant_convert_half(ST_F32, to, in, b, N, &sb), 0);
                        assert_memory_equal(a, b, N * 2);
                        for (uint32_t i = 0; i < N; i += 97)
                                assert_int_equal(a[i], to == ST_F16 ? quant_f32_to_f16(in[i]) : quant_f32_to_bf16(in[i]));
                }
        }
        /* the same statistics, to the bit */
        assert_memory_equal(&sa, &sb, sizeof(sa));
        assert_true(sa.overflow > 0);
        assert_true(sa.nonfinite > 0);
        assert_true(sa.zeroed > 0);

        /* every half pattern through the other half format */
        for (uint32_t i = 0; i < N; i++)
                ((uint16_t *) in)[i] = (uint16_t) i;
        for (SafetensorsDtype from = ST_F16; from <= ST_BF16; from++) {
                SafetensorsDtype to = from == ST_F16 ? ST_BF16 : ST_F16;
                quant_force_portable(false);
                assert_int_equal(quant_convert_half(from, to, in, a, N, NULL), 0);
                quant_force_portable(true);
                assert_int_equal(quant_convert_half(from, to, in, b, N, NULL), 0);
                assert_memory_equal(a, b, N * 2);
        }
        quant_force_portable(false);
        assert_int_equal(quant_convert_half(ST_I32, ST_F16, in, a, 1, NULL), -EINVAL);
        assert_int_equal(quant_convert_half(ST_F32, ST_F32, in, a, 1, NULL), -EINVAL);
        free(in);
        free(a);
        free(b);
}

static void test_int8(void **state) {
        enum { N = 1000 };
        float x[N];
        int8_t qa[N], qb[N];
        float sa, sb;
        QuantStats st = {};

        /* a zero row: scale FLT_MIN, all zeros, no NaN */
        memset(x, 0, sizeof(x));
        assert_int_equal(quant_int8_row(ST_F32, x, N, qa, &sa, &st), 0);
        assert_true(sa == FLT_MIN);
        for (size_t i = 0; i < N; i++)
                assert_int_equal(qa[i], 0);
        assert_true(st.max_abs_err == 0 && quant_stats_rel_rmse(&st) == 0);

        /* random rows, both paths, and the bound */
        for (unsigned t = 0; t < 50; t++) {
                uint32_t seed = 12345u + t;
                for (size_t i = 0; i < N; i++) {
                        seed = seed * 1664525u + 1013904223u;
                        x[i] = ((float) (seed >> 8) / (float) (1u << 24) - 0.5f) * (t + 1) * 0.01f;
                }
                if (t == 7)
                        x[3] = 1e30f;
                quant_force_portable(false);
                assert_int_equal(quant_int8_row(ST_F32, x, N, qa, &sa, NULL), 0);
                quant_force_portable(true);
                assert_int_equal(quant_int8_row(ST_F32, x, N, qb, &sb, NULL), 0);
                quant_force_portable(false);
                assert_true(sa == sb);
                assert_memory_equal(qa, qb, N);
                for (size_t i = 0; i < N; i++)
                        assert_true(fabs((double) x[i] - (double) qa[i] * sa) <= (double) sa / 2);
        }

        /* non-finite inputs are refused */
        x[10] = NAN;
        assert_int_equal(quant_int8_row(ST_F32, x, N, qa, &sa, NULL), -EDOM);
        x[10] = -INFINITY;
        assert_int_equal(quant_int8_row(ST_F32, x, N, qa, &sa, NULL), -EDOM);
        {
                uint16_t h[4] = { 0x3c00, 0x7c00, 0, 0 };
                int8_t q[4];
                assert_int_equal(quant_int8_row(ST_F16, h, 4, q, &sa, NULL), -EDOM);
                h[1] = 0x7f81;
                assert_int_equal(quant_int8_row(ST_BF16, h, 4, q, &sa, NULL), -EDOM);
                h[1] = 0xc000; /* -2.0 in F16 */
                assert_int_equal(quant_int8_row(ST_F16, h, 4, q, &sa, NULL), 0);
                assert_int_equal(q[1], -127);
                assert_int_equal(q[0], 64); /* 1.0 / (2/127) = 63.5 → 64 (even) */
        }
        {
                double d[3] = { 1.0, -0.5, 1e-300 };
                int8_t q[3];
                assert_int_equal(quant_int8_row(ST_F64, d, 3, q, &sa, NULL), 0);
                assert_int_equal(q[0], 127);
                assert_int_equal(q[1], -64); /* -63.5 → -64 */
                assert_int_equal(q[2], 0);
                d[1] = NAN;
                assert_int_equal(quant_int8_row(ST_F64, d, 3, q, &sa, NULL), -EDOM);
                d[1] = 1e300;
                assert_int_equal(quant_int8_row(ST_F64, d, 3, q, &sa, NULL), -ERANGE);
                d[1] = 1e38; /* the scale fits */
                assert_int_equal(quant_int8_row(ST_F64, d, 3, q, &sa, NULL), 0);
                assert_int_equal(q[1], 127);
        }
}

/* Select the k smallest of a small array through the API, the way the driver does. */
static void prune_array(SafetensorsDtype d, const void *in, void *out, size_t n, uint64_t k) {
        uint64_t *hist = malloc(QUANT_PRUNE_BINS * sizeof(uint64_t)), ties;
        PruneSelect s;

        assert_non_null(hist);
        quant_prune_select_init(&s, k);
        while (!quant_prune_select_done(&s, d)) {
                memset(hist, 0, QUANT_PRUNE_BINS * sizeof(uint64_t));
                quant_prune_histogram(d, in, n, s.level, s.prefix, hist);
                quant_prune_select_step(&s, d, hist);
        }
        ties = k > 0 ? s.ties : 0;
        quant_prune_apply(d, in, out, n, k > 0 ? s.prefix : 0, &ties, NULL);
        assert_int_equal(ties, 0);
        free(hist);
}

static void test_prune(void **state) {
        float x[12] = { 3, -1, 0.5f, -0.5f, 2, 0.5f, -0.0f, 7, -3, 0.5f, 1e-40f, INFINITY }, y[12];
        double d[6] = { 1, -1, 1, 0.25, -2, 1 }, dy[6];
        uint16_t h[5] = { 0x3c00, 0xbc00, 0x3800, 0x0001, 0x7c00 }, hy[5];

        assert_int_equal(quant_prune_levels(ST_F32), 2);
        assert_int_equal(quant_prune_levels(ST_F16), 1);
        assert_int_equal(quant_prune_levels(ST_F64), 4);
        assert_int_equal(quant_prune_levels(ST_I8), 0);

        /* k = 5: -0, 1e-40, then the first three 0.5-magnitudes in order: 0.5, -0.5, 0.5 */
        prune_array(ST_F32, x, y, 12, 5);
        assert_true(bits_of(y[6]) == 0 && bits_of(y[10]) == 0 && bits_of(y[2]) == 0 && bits_of(y[3]) == 0 &&
                    bits_of(y[5]) == 0);
        assert_true(y[9] == 0.5f && y[1] == -1 && y[0] == 3 && isinf(y[11]));
        /* k = 0 and k = n */
        prune_array(ST_F32, x, y, 12, 0);
        assert_memory_equal(x, y, sizeof(x));
        prune_array(ST_F32, x, y, 12, 12);
        for (size_t i = 0; i < 12; i++)
                assert_int_equal(bits_of(y[i]), 0);
        /* F64: four levels; ties of 1.0 in order */
        prune_array(ST_F64, d, dy, 6, 3);
        assert_true(dy[3] == 0 && dy[0] == 0 && dy[1] == 0 && dy[2] == 1 && dy[4] == -2 && dy[5] == 1);
        /* F16 */
        prune_array(ST_F16, h, hy, 5, 2);
        assert_true(hy[3] == 0 && hy[2] == 0 && hy[0] == 0x3c00 && hy[1] == 0xbc00 && hy[4] == 0x7c00);
}

static void test_stats(void **state) {
        QuantStats a = { .elements = 2, .sum_sq_err = 1, .sum_sq_ref = 4, .max_abs_err = 0.5 },
                   b = { .elements = 3, .sum_sq_err = 3, .sum_sq_ref = 12, .max_abs_err = 2, .overflow = 1 };

        quant_stats_merge(&a, &b);
        assert_int_equal(a.elements, 5);
        assert_int_equal(a.overflow, 1);
        assert_true(a.max_abs_err == 2);
        assert_true(fabs(quant_stats_rel_rmse(&a) - 0.5) < 1e-15);
        a = (QuantStats) {};
        assert_true(quant_stats_rel_rmse(&a) == 0);
        a.sum_sq_err = 1;
        assert_true(isinf(quant_stats_rel_rmse(&a)));
        assert_non_null(quant_kernel_name());
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_f16_scalar),
                cmocka_unit_test(test_bf16_scalar),
                cmocka_unit_test(test_f64_scalar),
                cmocka_unit_test(test_paths_agree),
                cmocka_unit_test(test_int8),
                cmocka_unit_test(test_prune),
                cmocka_unit_test(test_stats),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
