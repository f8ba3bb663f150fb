/* Row kernels of the weight-only quantized matrix products with float32 activations, for the CPU decode step.
 *
 * Why this file exists: a decode step reads every weight once per token, so its speed is the
 * number of weight bytes. torch's CPU int8/int4 kernels are vectorized only for bfloat16
 * activations, and bfloat16 activations alone move SmolLM2's greedy choice on ~3% of positions.
 * These loops keep the activations in float32 and read 8- or 4-bit weights, dequantizing in
 * registers. Plain C with `omp simd` so the compiler vectorizes for whatever CPU builds it
 * (AVX-512, AVX2, NEON); rows are split across torch's own OpenMP threads.
 *
 * Weights (N, K) in groups of GS = 32 inputs, each group with a float16 (scale, min) pair:
 *   w[n, k] = q[n, k] * scale[n, k / GS] + min[n, k / GS]
 * q8: q is uint8 (N, K), q in [0, 255].
 * q4: q is uint8 (N, K / 2), q in [0, 15]; in each group's 16 bytes, byte j holds element j
 *     in its low nibble and element j + 16 in its high nibble (so both halves line up with
 *     16 consecutive activations).
 * sm: float16 (N, K / GS, 2) = (scale, min).
 * x: float32 (M, K) contiguous; y: float32 (M, N).
 */
#ifndef TUI_GEN_QROWS_H
#define TUI_GEN_QROWS_H

#include <stdint.h>
#include <stdlib.h>

#include "prefetch.h"

#define GS 32
#define MAX_M 8

typedef _Float16 half;

/* xsum[m * G + g] = sum of group g of row m: the `min` term of a group is min * xsum. */
static void group_sums(const float *x, int64_t M, int64_t K, float *xsum) {
    const int64_t G = K / GS;
    for (int64_t m = 0; m < M; m++)
        for (int64_t g = 0; g < G; g++) {
            float s = 0.f;
#pragma omp simd reduction(+ : s)
            for (int k = 0; k < GS; k++) s += x[m * K + g * GS + k];
            xsum[m * G + g] = s;
        }
}

#if defined(__AVX512F__)
#include <immintrin.h>

/* Groups become two 16-lane float vectors each; the products are accumulated per lane and
 * scaled per group. Two groups per iteration into two accumulators, so the fused multiply-adds
 * of neighbouring groups do not wait on each other. */
static inline __attribute__((always_inline)) __m512 q8_lo(const uint8_t *qg) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qg)));
}

/* A group's 32 weights (8 or 4 bits) as two 16-lane float vectors of q (elements j, j + 16). */
static inline __attribute__((always_inline)) void q_group(const uint8_t *qg, const int bits,
                                                          __m512 *w0, __m512 *w1) {
    if (bits == 8) {
        *w0 = q8_lo(qg), *w1 = q8_lo(qg + 16);
    } else {
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)qg));
        *w0 = _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(0x0F)));
        *w1 = _mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4));
    }
}

static inline __attribute__((always_inline)) void q_row(const float *x, const uint8_t *qr,
                                                        const half *smr, const float *xsum,
                                                        float *y, int64_t n, int64_t N,
                                                        int64_t K, const int M, const int bits) {
    const int64_t G = K / GS;
    const int64_t gbytes = bits == 8 ? GS : GS / 2;
    __m512 acc[2][MAX_M];
    float macc[MAX_M];
    for (int m = 0; m < M; m++) acc[0][m] = acc[1][m] = _mm512_setzero_ps(), macc[m] = 0.f;
    int64_t g = 0;
#define GROUP(j)                                                                               \
    {                                                                                          \
        const __m512 s = _mm512_set1_ps((float)smr[2 * (g + j)]);                              \
        const float mn = (float)smr[2 * (g + j) + 1];                                          \
        __m512 w0, w1;                                                                         \
        q_group(qr + (g + j) * gbytes, bits, &w0, &w1);                                        \
        for (int m = 0; m < M; m++) {                                                          \
            const float *xg = x + m * K + (g + j) * GS;                                        \
            const __m512 t = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xg),                          \
                                             _mm512_mul_ps(w1, _mm512_loadu_ps(xg + 16)));     \
            acc[j][m] = _mm512_fmadd_ps(t, s, acc[j][m]);                                      \
            macc[m] += mn * xsum[m * G + g + j];                                               \
        }                                                                                      \
    }
    for (; g + 2 <= G; g += 2) {
        GROUP(0)
        GROUP(1)
    }
    for (; g < G; g++) GROUP(0)
#undef GROUP
    for (int m = 0; m < M; m++)
        y[m * N + n] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][m], acc[1][m])) + macc[m];
}


/* y[n0 + r] = row n0 + r . x for four weight rows and ONE activation row (a decode step):
 * the group's activation vectors and sum are loaded once for the four rows and their four
 * chains overlap, where q_row's one row ends in a reduction every K / 32 groups (18 for
 * SmolLM2's width). Each row's arithmetic is q_row's operation for operation (the same two
 * accumulator sets by group parity), so it is bit-identical to the batched product. `pf`: the
 * quantized bytes to prefetch meanwhile, a slice per group (prefetch.h). */
#define Q_R 4
static inline __attribute__((always_inline)) void q_rows4_m1(const float *x, const uint8_t *q,
                                                             const half *sm, const float *xsum,
                                                             float *y, int64_t n0, int64_t K,
                                                             const int bits, const uint8_t *pf) {
    const int64_t G = K / GS;
    const int64_t gbytes = bits == 8 ? GS : GS / 2, rowbytes = G * gbytes, span = Q_R * rowbytes;
    __m512 acc[2][Q_R];
    float macc[Q_R];
    for (int r = 0; r < Q_R; r++) acc[0][r] = acc[1][r] = _mm512_setzero_ps(), macc[r] = 0.f;
#define GROUP4(gi, j)                                                                          \
    {                                                                                          \
        prefetch_slice(pf, gi, G, span);                                                       \
        const __m512 x0 = _mm512_loadu_ps(x + (gi) * GS), x1 = _mm512_loadu_ps(x + (gi) * GS + 16); \
        const float xs = xsum[gi];                                                             \
        for (int r = 0; r < Q_R; r++) {                                                        \
            const half *smr = sm + (n0 + r) * G * 2;                                           \
            const __m512 s = _mm512_set1_ps((float)smr[2 * (gi)]);                             \
            const float mn = (float)smr[2 * (gi) + 1];                                         \
            __m512 w0, w1;                                                                     \
            q_group(q + (n0 + r) * rowbytes + (gi) * gbytes, bits, &w0, &w1);                  \
            const __m512 t = _mm512_fmadd_ps(w0, x0, _mm512_mul_ps(w1, x1));                   \
            acc[j][r] = _mm512_fmadd_ps(t, s, acc[j][r]);                                      \
            macc[r] += mn * xs;                                                                \
        }                                                                                      \
    }
    int64_t g = 0;
    for (; g + 2 <= G; g += 2) {
        GROUP4(g, 0)
        GROUP4(g + 1, 1)
    }
    for (; g < G; g++) GROUP4(g, 0)
#undef GROUP4
    for (int r = 0; r < Q_R; r++)
        y[n0 + r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][r], acc[1][r])) + macc[r];
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* The same as the AVX-512 rows with 8-lane vectors: a group is four vectors. */
static inline __attribute__((always_inline)) __m256 q8x8(__m128i b) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
}

static inline __attribute__((always_inline)) void q_row(const float *x, const uint8_t *qr,
                                                        const half *smr, const float *xsum,
                                                        float *y, int64_t n, int64_t N,
                                                        int64_t K, const int M, const int bits) {
    const int64_t G = K / GS;
    const int64_t gbytes = bits == 8 ? GS : GS / 2;
    const __m128i low = _mm_set1_epi8(0x0F);
    __m256 acc[MAX_M];
    float macc[MAX_M];
    for (int m = 0; m < M; m++) acc[m] = _mm256_setzero_ps(), macc[m] = 0.f;
    for (int64_t g = 0; g < G; g++) {
        const __m256 s = _mm256_set1_ps((float)smr[2 * g]);
        const float mn = (float)smr[2 * g + 1];
        const uint8_t *qg = qr + g * gbytes;
        __m256 w[4];
        if (bits == 8) {
            const __m128i b0 = _mm_loadu_si128((const __m128i *)qg);
            const __m128i b1 = _mm_loadu_si128((const __m128i *)(qg + 16));
            w[0] = q8x8(b0), w[1] = q8x8(_mm_srli_si128(b0, 8));
            w[2] = q8x8(b1), w[3] = q8x8(_mm_srli_si128(b1, 8));
        } else {
            const __m128i b = _mm_loadu_si128((const __m128i *)qg);
            const __m128i lo = _mm_and_si128(b, low);
            const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), low);
            w[0] = q8x8(lo), w[1] = q8x8(_mm_srli_si128(lo, 8));
            w[2] = q8x8(hi), w[3] = q8x8(_mm_srli_si128(hi, 8));
        }
        for (int m = 0; m < M; m++) {
            const float *xg = x + m * K + g * GS;
            __m256 t = _mm256_mul_ps(w[0], _mm256_loadu_ps(xg));
            t = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xg + 8), t);
            t = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xg + 16), t);
            t = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xg + 24), t);
            acc[m] = _mm256_fmadd_ps(t, s, acc[m]);
            macc[m] += mn * xsum[m * G + g];
        }
    }
    for (int m = 0; m < M; m++) {
        const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1));
        const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
        y[m * N + n] = _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1))) + macc[m];
    }
}


#else
/* Portable rows: the same arithmetic in 16-lane loops the compiler may vectorize. */
static inline __attribute__((always_inline)) void q_row(const float *x, const uint8_t *qr,
                                                        const half *smr, const float *xsum,
                                                        float *y, int64_t n, int64_t N,
                                                        int64_t K, const int M, const int bits) {
    const int64_t G = K / GS;
    float acc[MAX_M][16] = {{0}};
    float macc[MAX_M] = {0};
    for (int64_t g = 0; g < G; g++) {
        const float s = (float)smr[2 * g], mn = (float)smr[2 * g + 1];
        int32_t v[GS]; /* widened first: compilers vectorize int -> float, not nibbles */
        if (bits == 8) {
            const uint8_t *qg = qr + g * GS;
#pragma omp simd
            for (int k = 0; k < GS; k++) v[k] = qg[k];
        } else {
            const uint8_t *qg = qr + g * (GS / 2);
#pragma omp simd
            for (int k = 0; k < 16; k++) v[k] = qg[k] & 0x0F;
#pragma omp simd
            for (int k = 0; k < 16; k++) v[k + 16] = qg[k] >> 4;
        }
        float w[GS];
#pragma omp simd
        for (int k = 0; k < GS; k++) w[k] = s * (float)v[k];
        for (int m = 0; m < M; m++) {
            const float *xg = x + m * K + g * GS;
#pragma omp simd
            for (int k = 0; k < 16; k++) acc[m][k] += w[k] * xg[k] + w[k + 16] * xg[k + 16];
            macc[m] += mn * xsum[m * G + g];
        }
    }
    for (int m = 0; m < M; m++) {
        float t = macc[m];
        for (int k = 0; k < 16; k++) t += acc[m][k];
        y[m * N + n] = t;
    }
}

#endif

/* y (N) = dequant(q) x for ONE activation row (xsum: its group_sums): four weight rows at a
 * time where AVX-512 has q_rows4_m1, q_row for the rest; rows split across threads. Both the
 * decode step and q_matmul take it, so a layer's one-row product is the step's. */
static void q_matvec(const float *x, const uint8_t *q, const half *sm, const float *xsum,
                     float *y, int64_t N, int64_t K, int bits, int threads) {
    const int64_t rowbytes = bits == 8 ? K : K / 2, G = K / GS;
    int64_t n_lo = 0; /* rows before n_lo go four at a time */
#if defined(__AVX512F__)
    const int64_t groups = N / Q_R;
    n_lo = groups * Q_R;
#endif
#pragma omp parallel num_threads(threads)
    {
#if defined(__AVX512F__)
#pragma omp for schedule(static) nowait
        for (int64_t gi = 0; gi < groups; gi++) {
            const uint8_t *pf = group_ahead(q, gi, Q_R, groups, rowbytes);
            if (bits == 8)
                q_rows4_m1(x, q, sm, xsum, y, gi * Q_R, K, 8, pf);
            else
                q_rows4_m1(x, q, sm, xsum, y, gi * Q_R, K, 4, pf);
        }
#endif
#pragma omp for schedule(static) nowait
        for (int64_t n = n_lo; n < N; n++) {
            if (bits == 8)
                q_row(x, q + n * rowbytes, sm + n * G * 2, xsum, y, n, N, K, 1, 8);
            else
                q_row(x, q + n * rowbytes, sm + n * G * 2, xsum, y, n, N, K, 1, 4);
        }
    }
}

/* The row loop with M (rows of x) and the width as compile-time constants for the usual M. */
#define ROW_SWITCH(BITS)                                                                       \
    switch (M) {                                                                               \
    case 1: q_row(x, qr, smr, xsum, y, n, N, K, 1, BITS); break;                               \
    case 2: q_row(x, qr, smr, xsum, y, n, N, K, 2, BITS); break;                               \
    case 3: q_row(x, qr, smr, xsum, y, n, N, K, 3, BITS); break;                               \
    case 4: q_row(x, qr, smr, xsum, y, n, N, K, 4, BITS); break;                               \
    default: q_row(x, qr, smr, xsum, y, n, N, K, (int)M, BITS); break;                         \
    }

#endif
