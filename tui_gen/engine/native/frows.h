/* Float (float32 and bfloat16 weight) dot products and matrix products of M rows for the
 * decode step (decode.c).
 *
 * Why this file exists: `omp simd reduction` dot products compile (GCC 12) to one vector
 * accumulator, whose fused multiply-adds wait on each other, and a lane-by-lane scalar sum at
 * the end: fine while a step waits on memory for every weight, but a batched step reuses each
 * weight row for M rows of activations, and a small model's weights sit in the cache, so the
 * arithmetic is what counts. Here each weight row's vector is loaded once per block of
 * activation rows, several independent accumulators hide the multiply-add latency, and sums
 * are tree reductions (with AVX-512, sixteen dot products at a time reduced together: 1.3-1.6x
 * the one-block-of-rows loop on the cooking model's shapes, and 1.2x for a single row streamed
 * from memory). AVX-512 and AVX2 intrinsics; GCC vector extensions elsewhere.
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
 * loaded once for the MB rows. Without AVX-512 this is the whole kernel; with it, rows_16
 * below does the work and this takes the last N % 16 weight rows. */
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

#if defined(__AVX512F__)
/* Bytes ahead of the weights being read that rows_16 asks the cache for. The hardware
 * prefetcher alone left a batch-8 step of the cooking model waiting on its 16 MB of weights
 * (1.1-1.6 ms of matrix products); 2-8 KB ahead measured 0.92-0.98 ms, 4 KB the steadiest. */
#define PREFETCH_AHEAD 4096

/* The sixteen sums of v[0..15] as one vector (lane i = the sum of v[i]): a transpose-and-add
 * tree of 15 combines (~45 instructions) where sixteen separate reductions take ~130. */
static inline __attribute__((always_inline)) __m512 sum16(const __m512 *v) {
    __m512 u[8], w[4];
    for (int i = 0; i < 8; i++) /* per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3] */
        u[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                             _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int j = 0; j < 4; j++) /* per lane: the lane's partial sums of v[4j..4j+3] */
        w[j] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(u[2 * j], u[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 x0 =
        _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 x1 =
        _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(2, 0, 2, 0)),
                      _mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(x0, x1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* y[m * N + n0 + j] = x[m] . w[n0 + j] for NB weight rows and MB activation rows, NB * MB =
 * 16: sixteen accumulators (enough independent multiply-adds to fill both FMA ports), each
 * weight vector loaded once for the MB rows and each activation vector once for the NB rows,
 * then one sum16. */
static inline __attribute__((always_inline)) void
rows_16(const float *x, const void *w, float *y, int64_t n0, int64_t N, int64_t K, const int NB,
        const int MB, const int bf) {
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    const float *wf = (const float *)w + n0 * K;
    const bf16_t *wb = (const bf16_t *)w + n0 * K;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[16];
        for (int j = 0; j < NB; j++) { /* each row's line 4 KB ahead: the cache misses of the
                                          next rows overlap this block's arithmetic */
            const char *at = bf ? (const char *)(wb + j * K + k) : (const char *)(wf + j * K + k);
            _mm_prefetch(at + PREFETCH_AHEAD, _MM_HINT_T0);
        }
        for (int j = 0; j < NB; j++) wv[j] = bf ? vload_bf(wb + j * K + k) : vload(wf + j * K + k);
        for (int m = 0; m < MB; m++) {
            const __m512 xv = _mm512_loadu_ps(x + m * K + k);
            for (int j = 0; j < NB; j++) acc[m * NB + j] = _mm512_fmadd_ps(wv[j], xv, acc[m * NB + j]);
        }
    }
    float s[16];
    _mm512_storeu_ps(s, sum16(acc));
    for (int m = 0; m < MB; m++)
        for (int j = 0; j < NB; j++) {
            float d = s[m * NB + j];
            for (int64_t t = k; t < K; t++)
                d += x[m * K + t] * (bf ? bf2f(wb[j * K + t]) : wf[j * K + t]);
            y[m * N + n0 + j] = d;
        }
}

/* Sixteen weight rows from n0 for all M activation rows: blocks of 8, 4, 2 and 1 rows (the
 * weight rows, 16 K floats, stay in L1 across the blocks). */
static inline __attribute__((always_inline)) void rows_n16(const float *x, int64_t M, const void *w,
                                                           float *y, int64_t n0, int64_t N,
                                                           int64_t K, const int bf) {
    int64_t m0 = 0;
    for (; m0 + 8 <= M; m0 += 8)
        for (int j = 0; j < 16; j += 2) rows_16(x + m0 * K, w, y + m0 * N, n0 + j, N, K, 2, 8, bf);
    if (m0 + 4 <= M) {
        for (int j = 0; j < 16; j += 4) rows_16(x + m0 * K, w, y + m0 * N, n0 + j, N, K, 4, 4, bf);
        m0 += 4;
    }
    if (m0 + 2 <= M) {
        for (int j = 0; j < 16; j += 8) rows_16(x + m0 * K, w, y + m0 * N, n0 + j, N, K, 8, 2, bf);
        m0 += 2;
    }
    if (m0 < M) rows_16(x + m0 * K, w, y + m0 * N, n0, N, K, 16, 1, bf);
}

/* The attention scores of one query against 16 consecutive cached keys: out[i] =
 * q . key[t + i] for keys D = 16 C floats (or bf bfloat16) apart. Each query vector stays in
 * a register for the 16 keys and the 16 dot products are reduced together, where one vdot per
 * key ends in its own reduction. */
static inline __attribute__((always_inline)) void scores16_c(const float *q, const void *keys,
                                                             int64_t t, const int C, const int bf,
                                                             float *out) {
    __m512 qv[8], acc[16];
    const int64_t D = 16 * C;
    for (int c = 0; c < C; c++) qv[c] = _mm512_loadu_ps(q + 16 * c);
    const float *kf = (const float *)keys + t * D;
    const bf16_t *kb = (const bf16_t *)keys + t * D;
    for (int i = 0; i < 16; i++) {
        __m512 a = _mm512_setzero_ps();
        for (int c = 0; c < C; c++)
            a = _mm512_fmadd_ps(qv[c], bf ? vload_bf(kb + i * D + 16 * c) : vload(kf + i * D + 16 * c),
                                a);
        acc[i] = a;
    }
    _mm512_storeu_ps(out, sum16(acc));
}

/* out (D = 16 C) = sum of p[t] * value[t] for t in [t0, t1): the sum kept in C registers
 * (a loop adding into `out` in memory waits on its own stores, ~10 cycles a key). */
static inline __attribute__((always_inline)) void weighted_values_c(const float *p,
                                                                    const void *values, int64_t t0,
                                                                    int64_t t1, const int C,
                                                                    const int bf, float *out) {
    __m512 acc[8];
    const int64_t D = 16 * C;
    for (int c = 0; c < C; c++) acc[c] = _mm512_setzero_ps();
    const float *vf_ = (const float *)values;
    const bf16_t *vb = (const bf16_t *)values;
    for (int64_t t = t0; t < t1; t++) {
        if (p[t] == 0.f) continue; /* a padding column (its values may be stale) */
        const __m512 pv = _mm512_set1_ps(p[t]);
        for (int c = 0; c < C; c++)
            acc[c] = _mm512_fmadd_ps(pv, bf ? vload_bf(vb + t * D + 16 * c) : vload(vf_ + t * D + 16 * c),
                                     acc[c]);
    }
    for (int c = 0; c < C; c++) _mm512_storeu_ps(out + 16 * c, acc[c]);
}

/* The two above for a head size D of 32, 64 or 128 (the loops unrolled for it); 0 for other
 * sizes, which the caller then computes one key at a time. */
#define HEAD_SIZES(CALL)                                                                       \
    switch (D) {                                                                               \
    case 32: CALL(2) return 1;                                                                 \
    case 64: CALL(4) return 1;                                                                 \
    case 128: CALL(8) return 1;                                                                \
    default: return 0;                                                                         \
    }

static inline int scores16(const float *q, const void *keys, int64_t t, int D, int bf,
                           float *out) {
#define S16(C) if (bf) scores16_c(q, keys, t, C, 1, out); else scores16_c(q, keys, t, C, 0, out);
    HEAD_SIZES(S16)
#undef S16
}

static inline int weighted_values(const float *p, const void *values, int64_t t0, int64_t t1,
                                  int D, int bf, float *out) {
#define WV(C)                                                                                  \
    if (bf) weighted_values_c(p, values, t0, t1, C, 1, out);                                  \
    else weighted_values_c(p, values, t0, t1, C, 0, out);
    HEAD_SIZES(WV)
#undef WV
}
#undef HEAD_SIZES
#endif

/* y (M, N) = x (M, K) W^T for W (N, K) float32 or (bf) bfloat16 rows: weight rows split
 * across threads in blocks of 16, each read once from memory for all M activation rows. */
static void float_rows_m(const float *x, int64_t M, const void *w, float *y, int64_t N, int64_t K,
                         const int bf, int threads) {
#if defined(__AVX512F__)
    const int64_t NB16 = N / 16;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t b = 0; b < NB16; b++) {
        if (bf)
            rows_n16(x, M, w, y, b * 16, N, K, 1);
        else
            rows_n16(x, M, w, y, b * 16, N, K, 0);
    }
    const int64_t n_lo = NB16 * 16; /* the last N % 16 rows, one at a time */
#else
    const int64_t n_lo = 0;
#endif
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = n_lo; n < N; n++) {
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
