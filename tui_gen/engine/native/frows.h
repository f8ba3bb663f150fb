/* Float (float32 and bfloat16 weight) dot products and matrix products of M rows for the
 * decode step (decode.c).
 *
 * Why this file exists: `omp simd reduction` dot products compile (GCC 12) to one vector
 * accumulator, whose fused multiply-adds wait on each other, and a lane-by-lane scalar sum at
 * the end: fine while a step waits on memory for every weight, but a batched step reuses each
 * weight row for M rows of activations, and a small model's weights sit in the cache, so the
 * arithmetic is what counts. Here each weight row's vector is loaded once per block of
 * activation rows, several independent accumulators hide the multiply-add latency, and sums
 * are tree reductions. AVX-512 and AVX2 intrinsics; GCC vector extensions elsewhere.
 */
#ifndef TUI_GEN_FROWS_H
#define TUI_GEN_FROWS_H

#include <stdint.h>
#include <string.h>

/* bfloat16 is the top half of a float32: widening is a shift, narrowing rounds to nearest
 * even (as torch does). */
typedef uint16_t bf16_t;

static inline float bf2f(bf16_t u) {
    union { uint32_t i; float f; } c = {(uint32_t)u << 16};
    return c.f;
}

static inline bf16_t f2bf(float f) {
    union { float f; uint32_t i; } c = {f};
    if (f != f) return 0x7FC0;
    return (bf16_t)((c.i + 0x7FFF + ((c.i >> 16) & 1)) >> 16);
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
typedef __m512 vf;
static inline __attribute__((always_inline)) vf vzero(void) { return _mm512_setzero_ps(); }
static inline __attribute__((always_inline)) vf vload(const float *p) { return _mm512_loadu_ps(p); }
static inline __attribute__((always_inline)) vf vload_bf(const bf16_t *p) {
    const __m256i u = _mm256_loadu_si256((const __m256i *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(u), 16));
}
static inline __attribute__((always_inline)) vf vfma(vf a, vf b, vf c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline __attribute__((always_inline)) vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline __attribute__((always_inline)) float vsum(vf a) { return _mm512_reduce_add_ps(a); }

#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 8
typedef __m256 vf;
static inline __attribute__((always_inline)) vf vzero(void) { return _mm256_setzero_ps(); }
static inline __attribute__((always_inline)) vf vload(const float *p) { return _mm256_loadu_ps(p); }
static inline __attribute__((always_inline)) vf vload_bf(const bf16_t *p) {
    const __m128i u = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(u), 16));
}
static inline __attribute__((always_inline)) vf vfma(vf a, vf b, vf c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline __attribute__((always_inline)) vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline __attribute__((always_inline)) float vsum(vf a) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
}

#else
#define VL 4 /* 16-byte vectors: SSE2 on any x86-64, NEON on arm64 */
typedef float vf __attribute__((vector_size(4 * VL)));
static inline __attribute__((always_inline)) vf vzero(void) { return (vf){0}; }
static inline __attribute__((always_inline)) vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) vf vload_bf(const bf16_t *p) {
    uint32_t t[VL];
    for (int i = 0; i < VL; i++) t[i] = (uint32_t)p[i] << 16;
    vf v;
    memcpy(&v, t, sizeof v);
    return v;
}
static inline __attribute__((always_inline)) vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline __attribute__((always_inline)) vf vadd(vf a, vf b) { return a + b; }
static inline __attribute__((always_inline)) float vsum(vf a) {
    float s = 0.f;
    for (int i = 0; i < VL; i++) s += a[i];
    return s;
}
#endif

/* sum a[i] * b[i] over n floats (two accumulators), b float32 or (bf) bfloat16. */
static inline __attribute__((always_inline)) float vdot(const float *a, const void *b, int64_t n,
                                                        const int bf) {
    const float *bf32 = (const float *)b;
    const bf16_t *bb = (const bf16_t *)b;
    vf s0 = vzero(), s1 = vzero();
    int64_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        s0 = vfma(vload(a + i), bf ? vload_bf(bb + i) : vload(bf32 + i), s0);
        s1 = vfma(vload(a + i + VL), bf ? vload_bf(bb + i + VL) : vload(bf32 + i + VL), s1);
    }
    if (i + VL <= n) {
        s0 = vfma(vload(a + i), bf ? vload_bf(bb + i) : vload(bf32 + i), s0);
        i += VL;
    }
    float d = vsum(vadd(s0, s1));
    for (; i < n; i++) d += a[i] * (bf ? bf2f(bb[i]) : bf32[i]);
    return d;
}

/* y[m * N + n] = x[m] . w[n] for MB activation rows: MB accumulators, each weight vector
 * loaded once for the MB rows, the weight rows read one after another (the hardware
 * prefetcher follows one stream; reading two rows at once measured 3x slower). */
static inline __attribute__((always_inline)) void
rows_block(const float *x, const void *w, float *y, int64_t n, int64_t N, int64_t K, const int MB,
           const int bf) {
    vf acc[8];
    for (int m = 0; m < MB; m++) acc[m] = vzero();
    const float *wf = (const float *)w + n * K;
    const bf16_t *wb = (const bf16_t *)w + n * K;
    int64_t k = 0;
    for (; k + VL <= K; k += VL) {
        const vf wv = bf ? vload_bf(wb + k) : vload(wf + k);
        for (int m = 0; m < MB; m++) acc[m] = vfma(wv, vload(x + m * K + k), acc[m]);
    }
    for (int m = 0; m < MB; m++) {
        float d = vsum(acc[m]);
        for (int64_t t = k; t < K; t++) d += x[m * K + t] * (bf ? bf2f(wb[t]) : wf[t]);
        y[m * N + n] = d;
    }
}

#define ROWS_BLOCK_MB(BF)                                                                      \
    switch (mb) {                                                                              \
    case 8: rows_block(xm, w, ym, n, N, K, 8, BF); break;                                      \
    case 7: rows_block(xm, w, ym, n, N, K, 7, BF); break;                                      \
    case 6: rows_block(xm, w, ym, n, N, K, 6, BF); break;                                      \
    case 5: rows_block(xm, w, ym, n, N, K, 5, BF); break;                                      \
    case 4: rows_block(xm, w, ym, n, N, K, 4, BF); break;                                      \
    case 3: rows_block(xm, w, ym, n, N, K, 3, BF); break;                                      \
    case 2: rows_block(xm, w, ym, n, N, K, 2, BF); break;                                      \
    default: rows_block(xm, w, ym, n, N, K, 1, BF); break;                                     \
    }

/* y (M, N) = x (M, K) W^T for W (N, K) float32 or (bf) bfloat16 rows: weight rows split
 * across threads, each read once from memory for blocks of 8 activation rows. */
static void float_rows_m(const float *x, int64_t M, const void *w, float *y, int64_t N, int64_t K,
                         const int bf, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t m0 = 0; m0 < M; m0 += 8) {
            const int mb = M - m0 < 8 ? (int)(M - m0) : 8;
            const float *xm = x + m0 * K;
            float *ym = y + m0 * N;
            if (bf) {
                ROWS_BLOCK_MB(1)
            } else {
                ROWS_BLOCK_MB(0)
            }
        }
    }
}
#undef ROWS_BLOCK_MB

#endif
