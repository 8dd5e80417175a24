/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The inner loops of quantize.c. This file is included twice, with KFN() naming the copy and KATTR
 * its target: once portable, once for AVX2 + F16C. The C is the same for both (so the results are);
 * only the half-precision conversions use F16C instructions directly where KAVX2 is set, and those
 * are IEEE round-to-nearest-even conversions identical to the scalar code in quantize.c.
 *
 * Loops are written for the vectoriser: no early exits, independent lanes, selects rather than
 * branches. Do not include this file anywhere else.
 */

KATTR static void KFN(k_f16_to_f32)(const uint16_t *in, float *out, size_t n) {
        size_t i = 0;
#if KAVX2
        for (; i + 8 <= n; i += 8)
                _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (in + i))));
#endif
        for (; i < n; i++)
                out[i] = quant_f16_to_f32(in[i]);
}

KATTR static void KFN(k_bf16_to_f32)(const uint16_t *in, float *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t) in[i] << 16;
                memcpy(out + i, &u, sizeof(u));
        }
}

KATTR static void KFN(k_f32_to_f16)(const float *in, uint16_t *out, size_t n) {
        size_t i = 0;
#if KAVX2
        for (; i + 8 <= n; i += 8)
                _mm_storeu_si128((__m128i *) (out + i),
                                 _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
        for (; i < n; i++)
                out[i] = quant_f32_to_f16(in[i]);
}

KATTR static void KFN(k_f32_to_bf16)(const float *in, uint16_t *out, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint32_t x;
                memcpy(&x, in + i, sizeof(x));
                uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
                uint32_t quiet = (x >> 16) | 0x40u;
                out[i] = (uint16_t) ((x & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
        }
}

KATTR static void KFN(k_stats_f32)(QuantStats *s, const float *x, const float *xh, size_t n) {
        double se[LANES] = {}, sr[LANES] = {}, me[LANES] = {};
        uint32_t ov[LANES] = {}, nf[LANES] = {}, zd[LANES] = {}, zs[LANES] = {};
        size_t i = 0;

#if KAVX2
        /* The same 8 lanes as the C loop below, lanes 0–3 in the first register of each pair and
         * 4–7 in the second; the same operations (no FMA) in the same order: the same sums. */
        {
                const __m256i absmask = _mm256_set1_epi32(0x7fffffff), infbits = _mm256_set1_epi32(0x7f800000),
                              zero = _mm256_setzero_si256();
                const __m256d signmask = _mm256_castsi256_pd(_mm256_set1_epi64x(INT64_MAX));
                __m256d se0 = _mm256_setzero_pd(), se1 = _mm256_setzero_pd(), sr0 = _mm256_setzero_pd(),
                        sr1 = _mm256_setzero_pd(), me0 = _mm256_setzero_pd(), me1 = _mm256_setzero_pd();
                __m256i ovv = zero, nfv = zero, zdv = zero, zsv = zero;

                for (; i + LANES <= n; i += LANES) {
                        __m256 xv = _mm256_loadu_ps(x + i), hv = _mm256_loadu_ps(xh + i);
                        __m256i a = _mm256_and_si256(_mm256_castps_si256(xv), absmask),
                                b = _mm256_and_si256(_mm256_castps_si256(hv), absmask);
                        __m256i fa = _mm256_cmpgt_epi32(infbits, a), fb = _mm256_cmpgt_epi32(infbits, b);
                        __m256i ok = _mm256_and_si256(fa, fb);
                        __m256i bz = _mm256_cmpeq_epi32(b, zero), az = _mm256_cmpeq_epi32(a, zero);

                        /* Masks are -1 where true: subtracting counts. */
                        ovv = _mm256_sub_epi32(ovv, _mm256_andnot_si256(fb, fa));
                        nfv = _mm256_sub_epi32(nfv, _mm256_andnot_si256(fa, _mm256_set1_epi32(-1)));
                        zdv = _mm256_sub_epi32(zdv, _mm256_andnot_si256(az, bz));
                        zsv = _mm256_sub_epi32(zsv, bz);

                        __m256d ok0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(ok))),
                                ok1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(ok, 1)));
                        __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xv)),
                                x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1)),
                                h0 = _mm256_cvtps_pd(_mm256_castps256_ps128(hv)),
                                h1 = _mm256_cvtps_pd(_mm256_extractf128_ps(hv, 1));
                        __m256d d0 = _mm256_and_pd(_mm256_sub_pd(x0, h0), ok0),
                                d1 = _mm256_and_pd(_mm256_sub_pd(x1, h1), ok1);
                        __m256d r0 = _mm256_and_pd(x0, ok0), r1 = _mm256_and_pd(x1, ok1);

                        se0 = _mm256_add_pd(se0, _mm256_mul_pd(d0, d0));
                        se1 = _mm256_add_pd(se1, _mm256_mul_pd(d1, d1));
                        sr0 = _mm256_add_pd(sr0, _mm256_mul_pd(r0, r0));
                        sr1 = _mm256_add_pd(sr1, _mm256_mul_pd(r1, r1));
                        me0 = _mm256_max_pd(me0, _mm256_and_pd(d0, signmask));
                        me1 = _mm256_max_pd(me1, _mm256_and_pd(d1, signmask));
                }
                _mm256_storeu_pd(se, se0);
                _mm256_storeu_pd(se + 4, se1);
                _mm256_storeu_pd(sr, sr0);
                _mm256_storeu_pd(sr + 4, sr1);
                _mm256_storeu_pd(me, me0);
                _mm256_storeu_pd(me + 4, me1);
                _mm256_storeu_si256((__m256i *) ov, ovv);
                _mm256_storeu_si256((__m256i *) nf, nfv);
                _mm256_storeu_si256((__m256i *) zd, zdv);
                _mm256_storeu_si256((__m256i *) zs, zsv);
        }
#endif
        for (; i + LANES <= n; i += LANES)
                for (unsigned j = 0; j < LANES; j++) {
                        uint32_t a, b;
                        memcpy(&a, x + i + j, 4);
                        memcpy(&b, xh + i + j, 4);
                        a &= 0x7fffffffu;
                        b &= 0x7fffffffu;
                        uint32_t fa = a < 0x7f800000u, fb = b < 0x7f800000u, ok = fa & fb;
                        /* The difference of two floats is exact in double. */
                        double d = ok ? (double) x[i + j] - (double) xh[i + j] : 0.0;
                        double r = ok ? (double) x[i + j] : 0.0;
                        double ad = d < 0 ? -d : d;
                        se[j] += d * d;
                        sr[j] += r * r;
                        me[j] = ad > me[j] ? ad : me[j];
                        ov[j] += fa & (fb ^ 1u);
                        nf[j] += fa ^ 1u;
                        zd[j] += (a != 0) & (b == 0);
                        zs[j] += b == 0;
                }
        for (unsigned j = 0; i < n; i++, j++) {
                uint32_t a, b;
                memcpy(&a, x + i, 4);
                memcpy(&b, xh + i, 4);
                a &= 0x7fffffffu;
                b &= 0x7fffffffu;
                uint32_t fa = a < 0x7f800000u, fb = b < 0x7f800000u, ok = fa & fb;
                double d = ok ? (double) x[i] - (double) xh[i] : 0.0;
                double r = ok ? (double) x[i] : 0.0;
                double ad = d < 0 ? -d : d;
                se[j] += d * d;
                sr[j] += r * r;
                me[j] = ad > me[j] ? ad : me[j];
                ov[j] += fa & (fb ^ 1u);
                nf[j] += fa ^ 1u;
                zd[j] += (a != 0) & (b == 0);
                zs[j] += b == 0;
        }

        for (unsigned j = 0; j < LANES; j++) {
                s->sum_sq_err += se[j];
                s->sum_sq_ref += sr[j];
                if (me[j] > s->max_abs_err)
                        s->max_abs_err = me[j];
                s->overflow += ov[j];
                s->nonfinite += nf[j];
                s->zeroed += zd[j];
                s->zeros += zs[j];
        }
        s->elements += n;
}

KATTR static uint32_t KFN(k_absmax_f32)(const float *in, size_t n) {
        uint32_t m[LANES] = {};
        size_t i = 0;

        for (; i + LANES <= n; i += LANES)
                for (unsigned j = 0; j < LANES; j++) {
                        uint32_t a;
                        memcpy(&a, in + i + j, 4);
                        a &= 0x7fffffffu;
                        m[j] = a > m[j] ? a : m[j];
                }
        for (; i < n; i++) {
                uint32_t a;
                memcpy(&a, in + i, 4);
                a &= 0x7fffffffu;
                m[0] = a > m[0] ? a : m[0];
        }
        uint32_t r = 0;
        for (unsigned j = 0; j < LANES; j++)
                r = m[j] > r ? m[j] : r;
        return r;
}

KATTR static uint32_t KFN(k_absmax_u16)(const uint16_t *in, size_t n) {
        uint16_t m[2 * LANES] = {};
        size_t i = 0;

        for (; i + 2 * LANES <= n; i += 2 * LANES)
                for (unsigned j = 0; j < 2 * LANES; j++) {
                        uint16_t a = in[i + j] & 0x7fffu;
                        m[j] = a > m[j] ? a : m[j];
                }
        for (; i < n; i++) {
                uint16_t a = in[i] & 0x7fffu;
                m[0] = a > m[0] ? a : m[0];
        }
        uint32_t r = 0;
        for (unsigned j = 0; j < 2 * LANES; j++)
                r = m[j] > r ? m[j] : r;
        return r;
}

/* round-half-even(x / scale), of the exact quotient. The float quotient qf = fl(x / scale) rounds
 * like the exact one except when qf lands exactly on a half-way point k + 0.5 that the exact
 * quotient misses (rounding is monotonic and k + 0.5 is a float, so only then can the two be on
 * different sides of it). There the sign of x − qf·scale, exact in double, decides. */
KATTR static inline float KFN(int8_round_exact)(float x, float scale) {
        float qf = x / scale, r = __builtin_rintf(qf), f = qf - r;

        if (f == 0.5f || f == -0.5f) {
                double d = (double) x - (double) qf * (double) scale;
                if (d > 0)
                        r = qf + 0.5f;
                else if (d < 0)
                        r = qf - 0.5f;
        }
        return r;
}

KATTR static void KFN(k_quantize_i8)(const float *in, size_t n, float scale, int8_t *out) {
        size_t i = 0;

#if KAVX2
        const __m256 s = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f),
                     half = _mm256_set1_ps(0.5f), signbit = _mm256_set1_ps(-0.0f);
        const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);

        for (; i + 32 <= n; i += 32) {
                __m256i v[4];
                for (unsigned j = 0; j < 4; j++) {
                        __m256 x = _mm256_loadu_ps(in + i + 8 * j);
                        __m256 qf = _mm256_div_ps(x, s);
                        __m256 r = _mm256_round_ps(qf, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                        __m256 f = _mm256_andnot_ps(signbit, _mm256_sub_ps(qf, r));
                        if (_mm256_movemask_ps(_mm256_cmp_ps(f, half, _CMP_EQ_OQ))) {
                                /* Rare: a possible false tie. Decide these lanes one by one. */
                                float tmp[8];
                                for (unsigned l = 0; l < 8; l++)
                                        tmp[l] = KFN(int8_round_exact)(in[i + 8 * j + l], scale);
                                r = _mm256_loadu_ps(tmp);
                        }
                        r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
                        v[j] = _mm256_cvtps_epi32(r);
                }
                /* 4 × 8 int32 → 32 int8 in order (the packs work per 128-bit half). */
                __m256i ab = _mm256_packs_epi32(v[0], v[1]), cd = _mm256_packs_epi32(v[2], v[3]);
                __m256i b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), order);
                _mm256_storeu_si256((__m256i *) (out + i), b);
        }
#endif
        for (; i < n; i++) {
                float q = KFN(int8_round_exact)(in[i], scale);
                q = q < -127.0f ? -127.0f : q;
                q = q > 127.0f ? 127.0f : q;
                out[i] = (int8_t) (int32_t) q;
        }
}

KATTR static void KFN(k_dequantize_i8)(const int8_t *in, size_t n, float scale, float *out) {
        for (size_t i = 0; i < n; i++)
                out[i] = (float) in[i] * scale;
}

KATTR static void KFN(k_hist_f32_top)(const void *in, size_t n, uint64_t *hist) {
        const uint8_t *p = in;

        for (size_t i = 0; i < n; i++) {
                uint32_t a;
                memcpy(&a, p + 4 * i, 4);
                hist[(a & 0x7fffffffu) >> 15]++;
        }
}

KATTR static void KFN(k_prune_f32)(const void *in, void *out, size_t n, uint32_t threshold) {
        const uint8_t *p = in;
        uint8_t *o = out;

        for (size_t i = 0; i < n; i++) {
                uint32_t a;
                memcpy(&a, p + 4 * i, 4);
                uint32_t v = (a & 0x7fffffffu) < threshold ? 0 : a;
                memcpy(o + 4 * i, &v, 4);
        }
}
