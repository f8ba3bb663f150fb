/* Row kernels over GGUF (ggml) quantized blocks as the file stores them, with 8-bit activations.
 *
 * Why this file exists: the float32-activation kernels of qrows.h are bound by widening 4-bit
 * weights to float (~11-14 billion weights/s on two cores). llama.cpp instead quantizes the
 * activation vector once per matrix product to 8-bit blocks and multiplies bytes by bytes with
 * integer dot-product instructions (AVX512-VNNI / AVX-VNNI `vpdpbusd`, AVX2 `pmaddubsw`), 32
 * weights per instruction. This file does the same over the blocks mapped from the file, so a
 * Q4_K_M model runs with the exact weights its authors published and no float copy of them.
 *
 * Every weight block is read as unsigned values u with a per-16 or per-32 scale dw and offset
 * mn, w = dw * u + mn (Q4_0's `(q - 8) * d` is u = q, mn = -8 d; Q8_0 keeps its signed bytes and
 * uses the sign trick instead). The activation row x (K floats) becomes, per block of 32,
 * int8 q = round(x / dx), dx = max|x| / 127, and per 16 the float s = dx * sum(q); then
 *   sum_k w_k x_k ~= sum_blocks dx * dw * dot(u, q) + sum_16 mn * s.
 * The integer dot keeps 8 int32 lanes per block; they are scaled in float lanes, so nothing is
 * reduced horizontally until the row ends.
 *
 * Three builds of the same arithmetic, chosen at compile time (-march=native): VNNI, AVX2 and a
 * portable C loop; the test suite builds all three on this machine.
 */
#ifndef TUI_GEN_GGML_ROWS_H
#define TUI_GEN_GGML_ROWS_H

#include <stdint.h>
#include <string.h>

#include "prefetch.h"

typedef _Float16 gg_half;

/* ggml type ids (gguf_file.GGML_TYPES) */
enum { GG_F32 = 0, GG_F16 = 1, GG_Q4_0 = 2, GG_Q4_1 = 3, GG_Q5_0 = 6, GG_Q5_1 = 7, GG_Q8_0 = 8,
       GG_Q4_K = 12, GG_Q5_K = 13, GG_Q6_K = 14, GG_BF16 = 30 };

#define GG_MAX_M 8 /* activation rows per pass over a weight row */

/* The quantized activations of M rows of K: q (M, K) int8, d (M, K / 32), s (M, K / 16). */
typedef struct {
    const int8_t *q;
    const float *d;
    const float *s;
    int64_t K;
} gg_act_t;

static inline float gg_f16(const uint8_t *p) {
    gg_half h;
    memcpy(&h, p, 2);
    return (float)h;
}

/* Elements and bytes per block of each supported type; 0 for the others. */
static inline int gg_block_elems(int type) {
    switch (type) {
    case GG_Q4_0: case GG_Q4_1: case GG_Q5_0: case GG_Q5_1: case GG_Q8_0: return 32;
    case GG_Q4_K: case GG_Q5_K: case GG_Q6_K: return 256;
    default: return 0;
    }
}

static inline int gg_block_bytes(int type) {
    switch (type) {
    case GG_Q4_0: return 18;
    case GG_Q4_1: return 20;
    case GG_Q5_0: return 22;
    case GG_Q5_1: return 24;
    case GG_Q8_0: return 34;
    case GG_Q4_K: return 144;
    case GG_Q5_K: return 176;
    case GG_Q6_K: return 210;
    default: return 0;
    }
}

/* Q4_K / Q5_K: the 6-bit scale and min of sub-block j from the 12 packed bytes. */
static inline void gg_scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63, *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* --- the scalar view of one 32-element group: signed values v, w = dw[half] * v + mn ------
 * Used by the portable kernel and by dequantization (the float tile a long prompt multiplies).
 * `blk` is the block's first byte, `g` the 32-group inside it (0 for the 32-element types). */
static inline void gg_group(int type, const uint8_t *blk, int g, int32_t v[32], float dw[2],
                            float *mn) {
    *mn = 0.f, dw[0] = dw[1] = 0.f;
    switch (type) {
    case GG_Q4_0:
    case GG_Q4_1: {
        const int q1 = type == GG_Q4_1;
        const uint8_t *qs = blk + (q1 ? 4 : 2);
        const float d = gg_f16(blk);
        for (int j = 0; j < 16; j++) v[j] = qs[j] & 0x0F, v[j + 16] = qs[j] >> 4;
        if (!q1)
            for (int j = 0; j < 32; j++) v[j] -= 8;
        dw[0] = dw[1] = d;
        if (q1) *mn = gg_f16(blk + 2);
        break;
    }
    case GG_Q5_0:
    case GG_Q5_1: {
        const int q1 = type == GG_Q5_1;
        const uint8_t *qhp = blk + (q1 ? 4 : 2), *qs = qhp + 4;
        uint32_t qh;
        memcpy(&qh, qhp, 4);
        for (int j = 0; j < 16; j++) {
            v[j] = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
            v[j + 16] = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
        }
        if (!q1)
            for (int j = 0; j < 32; j++) v[j] -= 16;
        dw[0] = dw[1] = gg_f16(blk);
        if (q1) *mn = gg_f16(blk + 2);
        break;
    }
    case GG_Q8_0: {
        const int8_t *qs = (const int8_t *)(blk + 2);
        for (int j = 0; j < 32; j++) v[j] = qs[j];
        dw[0] = dw[1] = gg_f16(blk);
        break;
    }
    case GG_Q4_K:
    case GG_Q5_K: {
        const int k5 = type == GG_Q5_K;
        const uint8_t *qs = blk + (k5 ? 48 : 16) + 32 * (g / 2);
        int sc, m;
        gg_scale_min_k4(g, blk + 4, &sc, &m);
        const int shift = (g & 1) * 4;
        for (int j = 0; j < 32; j++) v[j] = (qs[j] >> shift) & 0x0F;
        if (k5)
            for (int j = 0; j < 32; j++) v[j] |= ((blk[16 + j] >> g) & 1) << 4;
        dw[0] = dw[1] = gg_f16(blk) * (float)sc;
        *mn = -gg_f16(blk + 2) * (float)m;
        break;
    }
    case GG_Q6_K: {
        const int half = g / 4, s = g % 4; /* 128-element half, then which 32 of it */
        const uint8_t *ql = blk + 64 * half + 32 * (s & 1), *qh = blk + 128 + 32 * half;
        const int8_t *scales = (const int8_t *)(blk + 192);
        const float d = gg_f16(blk + 208);
        for (int j = 0; j < 32; j++)
            v[j] = (((ql[j] >> (4 * (s >> 1))) & 0x0F) | (((qh[j] >> (2 * s)) & 3) << 4)) - 32;
        dw[0] = d * (float)scales[2 * g], dw[1] = d * (float)scales[2 * g + 1];
        break;
    }
    default: break;
    }
}

/* w (32 floats) of group g of a block: the reference the kernels are tested against, and the
 * dequantized tile of a long prompt. */
static inline void gg_dequant_group(int type, const uint8_t *blk, int g, float *w) {
    int32_t v[32];
    float dw[2], mn;
    gg_group(type, blk, g, v, dw, &mn);
    for (int j = 0; j < 32; j++) w[j] = dw[j >> 4] * (float)v[j] + mn;
}

/* --- activations --------------------------------------------------------------------------- */

/* One row of K floats -> q, d (per 32), s (per 16: dx * sum of q). K % 32 == 0. */
static void gg_quantize_row(const float *x, int64_t K, int8_t *q, float *d, float *s) {
    for (int64_t b = 0; b < K / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.f;
        for (int j = 0; j < 32; j++) {
            const float a = xb[j] < 0 ? -xb[j] : xb[j];
            amax = a > amax ? a : amax;
        }
        const float dx = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
        int32_t s0 = 0, s1 = 0;
        for (int j = 0; j < 32; j++) {
            const float t = xb[j] * inv;
            const int v = (int)(t + (t >= 0 ? 0.5f : -0.5f)); /* round half away from zero */
            q[b * 32 + j] = (int8_t)v;
            if (j < 16) s0 += v; else s1 += v;
        }
        d[b] = dx;
        s[2 * b] = dx * (float)s0, s[2 * b + 1] = dx * (float)s1;
    }
}

/* --- the row kernels ---------------------------------------------------------------------- */

#if (defined(__AVX512VNNI__) && defined(__AVX512VL__)) || defined(__AVXVNNI__) ||              \
    defined(__AVX2__)
#include <immintrin.h>
#define GG_SIMD 1

/* 8 int32 lanes, lane i = sum of bytes 4i..4i+3 of u (unsigned) times x (signed). */
static inline __attribute__((always_inline)) __m256i gg_dot(__m256i u, __m256i x) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, x);
#elif defined(__AVXVNNI__)
    return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, x);
#else
    /* u <= 63 here (or |w| <= 128 with |x| <= 127 for Q8_0): the int16 pair sums never
     * saturate */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), _mm256_set1_epi16(1));
#endif
}

/* 32 fifth bits (bit j of `bits` for element j) as bytes of 0x10. */
static inline __attribute__((always_inline)) __m256i gg_bits_x16(uint32_t bits) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm256_maskz_set1_epi8((__mmask32)bits, 0x10);
#else
    const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), shuf);
    const __m256i bitmask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
    b = _mm256_or_si256(b, bitmask);
    b = _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
#endif
}

/* 16 packed bytes -> 32 bytes: the low nibbles, then the high nibbles. */
static inline __attribute__((always_inline)) __m256i gg_nibbles16(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

/* acc[j][m] += dot(u, x of rows m, block b) * dw * dx[m, b] for every activation row; dwhi is
 * the scale of the second 16 (Q6_K; GG_ACC1 when both halves share dw). Two accumulator sets
 * (j = block parity), so the multiply-adds of neighbouring blocks do not wait on each other. */
#define GG_ACC(u, b, dw, dwhi, j)                                                              \
    for (int m = 0; m < M; m++) {                                                              \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(a->q + m * K + (b) * 32));     \
        const float dx = a->d[m * (K / 32) + (b)];                                             \
        const __m256 scv = _mm256_set_m128(_mm_set1_ps((dwhi) * dx), _mm_set1_ps((dw) * dx));  \
        acc[j][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gg_dot(u, xv)), scv, acc[j][m]);        \
    }

#define GG_ACC1(u, b, dw, j)                                                                   \
    for (int m = 0; m < M; m++) {                                                              \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(a->q + m * K + (b) * 32));     \
        const __m256 scv = _mm256_set1_ps((dw) * a->d[m * (K / 32) + (b)]);                    \
        acc[j][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gg_dot(u, xv)), scv, acc[j][m]);        \
    }

/* The Q8_0 variant: signed weights through the sign trick, |w| * sign(x, w) = w * x. */
#define GG_ACC_SIGNED(wv, b, dw, j)                                                            \
    for (int m = 0; m < M; m++) {                                                              \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(a->q + m * K + (b) * 32));     \
        const float dx = a->d[m * (K / 32) + (b)];                                             \
        const __m256i d = gg_dot(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));          \
        acc[j][m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps((dw) * dx), acc[j][m]); \
    }

/* macc[j][m] += mn * (s of the 32 elements of block b) */
#define GG_MIN32(b, mn, j)                                                                     \
    for (int m = 0; m < M; m++)                                                                \
        macc[j][m] += (mn) * (a->s[m * (K / 16) + 2 * (b)] + a->s[m * (K / 16) + 2 * (b) + 1]);

#define GG_MIN16(i, mn, j)                                                                     \
    for (int m = 0; m < M; m++) macc[j][m] += (mn) * a->s[m * (K / 16) + (i)];

/* One block of the 32-element types, into accumulator set j. */
#define GG_BLOCK32(b, j)                                                                       \
    switch (type) {                                                                            \
    case GG_Q4_0:                                                                              \
    case GG_Q4_1: {                                                                            \
        const uint8_t *blk = row + (b) * (type == GG_Q4_1 ? 20 : 18);                          \
        const float d = gg_f16(blk);                                                           \
        const float mn = type == GG_Q4_1 ? gg_f16(blk + 2) : -8.f * d;                         \
        const __m256i u = gg_nibbles16(blk + (type == GG_Q4_1 ? 4 : 2));                       \
        GG_ACC1(u, b, d, j)                                                                    \
        GG_MIN32(b, mn, j)                                                                     \
        break;                                                                                 \
    }                                                                                          \
    case GG_Q5_0:                                                                              \
    case GG_Q5_1: {                                                                            \
        const int q1 = type == GG_Q5_1;                                                        \
        const uint8_t *blk = row + (b) * (q1 ? 24 : 22);                                       \
        const float d = gg_f16(blk);                                                           \
        const float mn = q1 ? gg_f16(blk + 2) : -16.f * d;                                     \
        uint32_t qh;                                                                           \
        memcpy(&qh, blk + (q1 ? 4 : 2), 4);                                                    \
        const __m256i u = _mm256_or_si256(gg_nibbles16(blk + (q1 ? 8 : 6)), gg_bits_x16(qh));  \
        GG_ACC1(u, b, d, j)                                                                    \
        GG_MIN32(b, mn, j)                                                                     \
        break;                                                                                 \
    }                                                                                          \
    default: { /* GG_Q8_0 */                                                                   \
        const uint8_t *blk = row + (b) * 34;                                                   \
        const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));                     \
        GG_ACC_SIGNED(wv, b, gg_f16(blk), j)                                                   \
        break;                                                                                 \
    }                                                                                          \
    }

static inline __attribute__((always_inline)) float gg_hsum(__m256 v) {
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
}

/* out[m] = row . x[m] for the M activation rows of `a`; one weight row of `type`. */
static inline __attribute__((always_inline)) void gg_row(int type, const uint8_t *row,
                                                         const gg_act_t *a, const int M,
                                                         float *out) {
    const int64_t K = a->K;
    __m256 acc[2][GG_MAX_M];
    float macc[2][GG_MAX_M];
    for (int m = 0; m < M; m++) {
        acc[0][m] = acc[1][m] = _mm256_setzero_ps();
        macc[0][m] = macc[1][m] = 0.f;
    }
    switch (type) {
    case GG_Q4_0:
    case GG_Q4_1:
    case GG_Q5_0:
    case GG_Q5_1:
    case GG_Q8_0: {
        int64_t b = 0;
        for (; b + 2 <= K / 32; b += 2) {
            GG_BLOCK32(b, 0)
            GG_BLOCK32(b + 1, 1)
        }
        for (; b < K / 32; b++) GG_BLOCK32(b, 0)
        break;
    }
    case GG_Q4_K:
    case GG_Q5_K: {
        const int k5 = type == GG_Q5_K;
        const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
        for (int64_t sb = 0; sb < K / 256; sb++) {
            const uint8_t *blk = row + sb * (k5 ? 176 : 144);
            const float d = gg_f16(blk), dmin = gg_f16(blk + 2);
            const uint8_t *qs = blk + (k5 ? 48 : 16);
            const __m256i qh = k5 ? _mm256_loadu_si256((const __m256i *)(blk + 16))
                                  : _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
#define GG_K4_HALF(h)                                                                          \
    {                                                                                          \
        const int g = 2 * c + h;                                                               \
        int sc, mi;                                                                            \
        gg_scale_min_k4(g, blk + 4, &sc, &mi);                                                 \
        __m256i u = h ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4); \
        if (k5) {                                                                              \
            const __m256i hb = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(g)), one); \
            u = _mm256_or_si256(u, _mm256_slli_epi16(hb, 4));                                  \
        }                                                                                      \
        const int64_t b = sb * 8 + g;                                                          \
        GG_ACC1(u, b, d * (float)sc, h)                                                        \
        GG_MIN32(b, -dmin * (float)mi, h)                                                      \
    }
                GG_K4_HALF(0)
                GG_K4_HALF(1)
#undef GG_K4_HALF
            }
        }
        break;
    }
    case GG_Q6_K: {
        const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
        for (int64_t sb = 0; sb < K / 256; sb++) {
            const uint8_t *blk = row + sb * 210;
            const int8_t *scales = (const int8_t *)(blk + 192);
            const float d = gg_f16(blk + 208);
            for (int half = 0; half < 2; half++) {
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk + 64 * half));
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk + 64 * half + 32));
                const __m256i hh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * half));
#define GG_Q6_PART(s)                                                                          \
    {                                                                                          \
        const __m256i l = (s & 1) ? l1 : l0;                                                   \
        const __m256i lo = (s >> 1) ? _mm256_and_si256(_mm256_srli_epi16(l, 4), m4)            \
                                    : _mm256_and_si256(l, m4);                                 \
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hh, 2 * s), m2);                 \
        const __m256i u = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));                       \
        const int g = 4 * half + s;                                                            \
        const int64_t b = sb * 8 + g;                                                          \
        const float d0 = d * (float)scales[2 * g], d1 = d * (float)scales[2 * g + 1];          \
        GG_ACC(u, b, d0, d1, (s & 1))                                                          \
        GG_MIN16(2 * b, -32.f * d0, (s & 1))                                                   \
        GG_MIN16(2 * b + 1, -32.f * d1, (s & 1))                                               \
    }
                GG_Q6_PART(0)
                GG_Q6_PART(1)
                GG_Q6_PART(2)
                GG_Q6_PART(3)
#undef GG_Q6_PART
            }
        }
        break;
    }
    default: break;
    }
    for (int m = 0; m < M; m++)
        out[m] = gg_hsum(_mm256_add_ps(acc[0][m], acc[1][m])) + macc[0][m] + macc[1][m];
}

/* out[r] = row r . x for GG_R consecutive weight rows `rowbytes` apart and ONE activation row
 * (a decode step's product), for the 32-element types. (The K types keep gg_row: a row of
 * them is 4+ superblocks of 256 whose tail matters less, and a four-row version measured
 * 1.2-1.3x slower.)
 *
 * Why: with one activation row, gg_row's work per weight row ends in a reduction, a scale and
 * a store every K / 32 blocks (18-20 for SmolLM2's and Gemma 3's widths), and that tail cost
 * about as much as the blocks themselves (~90 cycles a row against ~4.4 a block, from the
 * per-weight speed of SmolLM2's K = 576 and K = 1,536 products). Here GG_R rows share each
 * block's activation load, scale and sum, and their GG_R independent chains overlap.
 *
 * `pf` (prefetch.h's group_ahead) is prefetched a slice per block (prefetch_slice).
 *
 * Each row's arithmetic is gg_row's operation for operation (the same two accumulator sets by
 * block parity, the same expressions), so a row's result is bit-identical to the batched
 * kernel's: greedy decoding stays the same alone or in a batch. */
#define GG_R 4

#define GG_M1_ROW(b, j, r, xv, dx, sx, acc, macc)                                               \
    {                                                                                          \
        const uint8_t *blk = row + (r) * rowbytes + (b) * (int64_t)gg_block_bytes(type);       \
        if (type == GG_Q8_0) {                                                                 \
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));                 \
            const __m256i dt = gg_dot(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));     \
            acc[j][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dt), _mm256_set1_ps(gg_f16(blk) * (dx)), \
                                        acc[j][r]);                                            \
        } else {                                                                               \
            const int one = type == GG_Q4_1 || type == GG_Q5_1, five = type == GG_Q5_0 || type == GG_Q5_1; \
            const float d = gg_f16(blk);                                                       \
            const float mn = one ? gg_f16(blk + 2) : (five ? -16.f : -8.f) * d;                \
            __m256i u;                                                                         \
            if (five) {                                                                        \
                uint32_t qh;                                                                   \
                memcpy(&qh, blk + (one ? 4 : 2), 4);                                           \
                u = _mm256_or_si256(gg_nibbles16(blk + (one ? 8 : 6)), gg_bits_x16(qh));       \
            } else {                                                                           \
                u = gg_nibbles16(blk + (one ? 4 : 2));                                         \
            }                                                                                  \
            acc[j][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(gg_dot(u, xv)), _mm256_set1_ps(d * (dx)), \
                                        acc[j][r]);                                            \
            macc[j][r] += mn * (sx);                                                           \
        }                                                                                      \
    }

#define GG_M1_BLOCK(b, j)                                                                      \
    {                                                                                          \
        prefetch_slice(pf, b, NB, span);                                                       \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(a->q + (b) * 32));             \
        const float dx = a->d[b];                                                              \
        const float sx = a->s[2 * (b)] + a->s[2 * (b) + 1];                                    \
        for (int r = 0; r < GG_R; r++) GG_M1_ROW(b, j, r, xv, dx, sx, acc, macc)              \
    }

/* The same block against two activation planes (a: x quantized, a2: what that left over,
 * quantized again; see gg_matmul), each plane in its own accumulators: every weight block is
 * decoded once and dotted twice. */
#define GG_M1_BLOCK2(b, j)                                                                     \
    {                                                                                          \
        prefetch_slice(pf, b, NB, span);                                                       \
        const __m256i xv = _mm256_loadu_si256((const __m256i *)(a->q + (b) * 32));             \
        const __m256i xv2 = _mm256_loadu_si256((const __m256i *)(a2->q + (b) * 32));           \
        const float dx = a->d[b], dx2 = a2->d[b];                                              \
        const float sx = a->s[2 * (b)] + a->s[2 * (b) + 1];                                    \
        const float sx2 = a2->s[2 * (b)] + a2->s[2 * (b) + 1];                                 \
        for (int r = 0; r < GG_R; r++) {                                                       \
            GG_M1_ROW(b, j, r, xv, dx, sx, acc, macc)                                          \
            GG_M1_ROW(b, j, r, xv2, dx2, sx2, acc2, macc2)                                     \
        }                                                                                      \
    }

static inline __attribute__((always_inline)) void gg_rows_m1(const int type, const uint8_t *row,
                                                             const int64_t rowbytes,
                                                             const gg_act_t *a, float *out,
                                                             const uint8_t *pf) {
    const int64_t NB = a->K / 32, span = GG_R * rowbytes;
    __m256 acc[2][GG_R];
    float macc[2][GG_R];
    for (int r = 0; r < GG_R; r++) {
        acc[0][r] = acc[1][r] = _mm256_setzero_ps();
        macc[0][r] = macc[1][r] = 0.f;
    }
    int64_t b = 0;
    for (; b + 2 <= NB; b += 2) {
        GG_M1_BLOCK(b, 0)
        GG_M1_BLOCK(b + 1, 1)
    }
    for (; b < NB; b++) GG_M1_BLOCK(b, 0)
    for (int r = 0; r < GG_R; r++)
        out[r] = gg_hsum(_mm256_add_ps(acc[0][r], acc[1][r])) + macc[0][r] + macc[1][r];
}
/* gg_rows_m1 over two activation planes: out[r] = row r . plane 1 + row r . plane 2, each
 * term gg_row's arithmetic for that plane's row (so bit-identical to gg_row over the two
 * planes as two rows, then added, as gg_matmul's rows path does). */
static inline __attribute__((always_inline)) void gg_rows_m1_2(const int type, const uint8_t *row,
                                                               const int64_t rowbytes,
                                                               const gg_act_t *a,
                                                               const gg_act_t *a2, float *out,
                                                               const uint8_t *pf) {
    const int64_t NB = a->K / 32, span = GG_R * rowbytes;
    __m256 acc[2][GG_R], acc2[2][GG_R];
    float macc[2][GG_R], macc2[2][GG_R];
    for (int r = 0; r < GG_R; r++) {
        acc[0][r] = acc[1][r] = acc2[0][r] = acc2[1][r] = _mm256_setzero_ps();
        macc[0][r] = macc[1][r] = macc2[0][r] = macc2[1][r] = 0.f;
    }
    int64_t b = 0;
    for (; b + 2 <= NB; b += 2) {
        GG_M1_BLOCK2(b, 0)
        GG_M1_BLOCK2(b + 1, 1)
    }
    for (; b < NB; b++) GG_M1_BLOCK2(b, 0)
    for (int r = 0; r < GG_R; r++)
        out[r] = (gg_hsum(_mm256_add_ps(acc[0][r], acc[1][r])) + macc[0][r] + macc[1][r]) +
                 (gg_hsum(_mm256_add_ps(acc2[0][r], acc2[1][r])) + macc2[0][r] + macc2[1][r]);
}
#undef GG_M1_BLOCK
#undef GG_M1_BLOCK2
#undef GG_M1_ROW

#undef GG_ACC
#undef GG_ACC1
#undef GG_ACC_SIGNED
#undef GG_MIN32
#undef GG_MIN16
#undef GG_BLOCK32

#else
#define GG_SIMD 0

/* Portable rows: the scalar view of each group, integer dot products per 16. */
static inline __attribute__((always_inline)) void gg_row(int type, const uint8_t *row,
                                                         const gg_act_t *a, const int M,
                                                         float *out) {
    const int64_t K = a->K;
    const int per = gg_block_elems(type), bytes = gg_block_bytes(type);
    double acc[GG_MAX_M] = {0};
    for (int64_t b = 0; b < K / 32; b++) {
        const uint8_t *blk = row + (b * 32 / per) * bytes;
        int32_t v[32];
        float dw[2], mn;
        gg_group(type, blk, (int)(b % (per / 32)), v, dw, &mn);
        for (int m = 0; m < M; m++) {
            const int8_t *xq = a->q + m * K + b * 32;
            int32_t d0 = 0, d1 = 0;
            for (int j = 0; j < 16; j++) d0 += v[j] * xq[j], d1 += v[j + 16] * xq[j + 16];
            const float dx = a->d[m * (K / 32) + b];
            const float *s = a->s + m * (K / 16) + 2 * b;
            acc[m] += dx * (dw[0] * (float)d0 + dw[1] * (float)d1) + mn * (s[0] + s[1]);
        }
    }
    for (int m = 0; m < M; m++) out[m] = (float)acc[m];
}
#endif

#endif
