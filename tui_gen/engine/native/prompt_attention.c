/* Causal attention of a prompt's queries with bfloat16 dot products (AVX512-BF16).
 *
 * Why: a long prompt's products already multiply in bfloat16 (gguf_linear.gemm_dtype) at
 * ~400 GFLOP/s on two Zen 4 cores, while torch's CPU flash attention works in float32 at ~80:
 * Gemma 3 270M's 512-token prefill spent 120 of its ~480 ms there (18 layers, 4 heads of 256
 * over one key head). Here the scores Q K^T and the weighted sum P V are `vdpbf16ps` products
 * (two bfloat16 multiplies per float32 lane, float32 sums); the scaling, the mask and the
 * softmax stay float32, so the rounding is that of the inputs to bfloat16 (8 significant
 * bits), as in the GEMMs around it. The KV cache itself stays float32.
 *
 * Layouts. q (H, T, D) with strides (q_sh, q_st) floats, keys and values (KV, S, D) with
 * strides (kv_sh, kv_st); out (T, H, D) contiguous, the layout the output projection reads.
 * Query t sits at position S - T + t and sees keys j <= S - T + t (and, with a window W, keys
 * j > S - T + t - W). Per key head the keys are packed once per call as bfloat16 pairs along
 * D for sixteen keys at a time (Kp[key / 16][d / 2][key % 16]: a query's pair broadcast
 * against one vector gives sixteen keys' partial sums, no horizontal reduction), the values
 * as pairs along the keys (Vp[key / 2][d][key % 2]: a pair of probabilities broadcast against
 * one vector gives sixteen output lanes). Tasks are (head, block of QB query rows).
 *
 * Returns 0, 1 when this build cannot (no AVX512-BF16, a head size that is not a multiple of
 * 64 or above 512: the caller uses torch), -1 on bad arguments, -2 when out of memory.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmath.h"

int prompt_attention_available(void) {
#if defined(__AVX512BF16__) && defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>

#define QB 16 /* query rows per task */
#define KB 64 /* keys per score tile: four vectors of sixteen */

/* float32 -> bfloat16, rounding to nearest even (NaN stays NaN). */
static inline uint16_t bf16_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static inline uint32_t pair_of(float lo, float hi) {
    return (uint32_t)bf16_of(lo) | ((uint32_t)bf16_of(hi) << 16);
}

static inline __m512 dot2(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

/* The softmax numerators of row s[lo..hi) (scores already scaled and capped), in place;
 * returns their sum. */
static float row_softmax(float *s, int64_t lo, int64_t hi) {
    float mx = -INFINITY;
    for (int64_t j = lo; j < hi; j++) mx = s[j] > mx ? s[j] : mx;
    return softmax_numerators(s + lo, hi - lo, mx);
}

int prompt_attention_bf16(const float *q, int64_t q_sh, int64_t q_st, const float *k,
                          const float *v, int64_t kv_sh, int64_t kv_st, float *out, int64_t T,
                          int64_t S, int H, int KV, int D, float scale, float softcap,
                          int64_t window, int threads) {
    if (!q || !k || !v || !out || T < 1 || S < T || H < 1 || KV < 1 || H % KV || D < 1 ||
        threads < 1 || window < 0)
        return -1;
    if (D % 64 || D > 512) return 1;
    const int P = D / 2;                          /* bfloat16 pairs per row */
    const int64_t SP = (S + KB - 1) / KB * KB;   /* keys padded to whole tiles */
    const int64_t off = S - T, rep = H / KV;
    uint32_t *Kp = (uint32_t *)aligned_alloc(64, (size_t)KV * SP * P * 4);
    uint32_t *Vp = (uint32_t *)aligned_alloc(64, (size_t)KV * (SP / 2) * D * 4);
    if (!Kp || !Vp) {
        free(Kp);
        free(Vp);
        return -2;
    }
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        /* pack the keys and values: sixteen keys (eight value pairs) per unit of work */
#pragma omp for schedule(static)
        for (int64_t u = 0; u < KV * (SP / 16); u++) {
            const int64_t g = u / (SP / 16), j0 = (u % (SP / 16)) * 16;
            uint32_t *kb = Kp + (g * (SP / 16) + j0 / 16) * (int64_t)P * 16;
            uint32_t *vb = Vp + (g * (SP / 2) + j0 / 2) * (int64_t)D;
            for (int64_t jj = 0; jj < 16; jj++) { /* keys past S are zeros */
                const int64_t j = j0 + jj;
                const float *kr = j < S ? k + g * kv_sh + j * kv_st : NULL;
                for (int p = 0; p < P; p++)
                    kb[p * 16 + jj] = kr ? pair_of(kr[2 * p], kr[2 * p + 1]) : 0u;
            }
            for (int64_t jp = 0; jp < 8; jp++) {
                const int64_t j = j0 + 2 * jp;
                const float *v0 = j < S ? v + g * kv_sh + j * kv_st : NULL;
                const float *v1 = j + 1 < S ? v + g * kv_sh + (j + 1) * kv_st : NULL;
                uint32_t *dst = vb + jp * D;
                for (int d = 0; d < D; d++) dst[d] = pair_of(v0 ? v0[d] : 0.f, v1 ? v1[d] : 0.f);
            }
        }
        float *sc = (float *)aligned_alloc(64, (size_t)QB * SP * 4);
        uint32_t *pb = (uint32_t *)aligned_alloc(64, (size_t)QB * (SP / 2) * 4);
        uint32_t *qb = (uint32_t *)aligned_alloc(64, (size_t)QB * P * 4);
        float sums[QB];
        int64_t lo_of[QB], hi_of[QB];
        if (!sc || !pb || !qb) {
#pragma omp atomic write
            failed = 1;
        }
        const int64_t blocks = (T + QB - 1) / QB;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < H * blocks; task++) {
            if (!sc || !pb || !qb) continue;
            /* the last blocks of queries see the most keys: hand them out first */
            const int64_t bt = blocks - 1 - task / H;
            const int h = (int)(task % H), g = h / (int)rep;
            const int64_t t0 = bt * QB, rows = T - t0 < QB ? T - t0 : QB;
            const int64_t rows4 = (rows + 3) / 4 * 4;
            for (int64_t i = 0; i < rows4; i++) {
                const float *qr = q + h * q_sh + (t0 + i) * q_st;
                for (int p = 0; p < P; p++)
                    qb[i * P + p] = i < rows ? pair_of(qr[2 * p], qr[2 * p + 1]) : 0u;
                const int64_t pos = off + t0 + (i < rows ? i : rows - 1);
                lo_of[i] = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
                hi_of[i] = pos + 1;
            }
            const int64_t klo = lo_of[0] / KB * KB;
            const int64_t khi = (hi_of[rows - 1] + KB - 1) / KB * KB;
            const uint32_t *kg = Kp + g * (SP / 16) * (int64_t)P * 16;
            /* scores: four query rows by sixty-four keys per tile, sixteen accumulators */
            for (int64_t i0 = 0; i0 < rows4; i0 += 4)
                for (int64_t j0 = klo; j0 < khi; j0 += KB) {
                    __m512 acc[4][4];
                    for (int r = 0; r < 4; r++)
                        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
                    const uint32_t *kt = kg + (j0 / 16) * (int64_t)P * 16;
                    const uint32_t *q0 = qb + i0 * P;
                    for (int p = 0; p < P; p++) {
                        __m512i kv4[4];
                        for (int c = 0; c < 4; c++)
                            kv4[c] = _mm512_load_si512((const void *)(kt + ((int64_t)c * P + p) * 16));
                        for (int r = 0; r < 4; r++) {
                            const __m512i qv = _mm512_set1_epi32((int)q0[r * P + p]);
                            for (int c = 0; c < 4; c++) acc[r][c] = dot2(acc[r][c], qv, kv4[c]);
                        }
                    }
                    for (int r = 0; r < 4; r++)
                        for (int c = 0; c < 4; c++)
                            _mm512_store_ps(sc + (i0 + r) * SP + j0 + 16 * c, acc[r][c]);
                }
            /* scale, cap, mask and softmax each row; probabilities as bfloat16 pairs */
            const int64_t plo = klo / 2, phi = khi / 2;
            for (int64_t i = 0; i < rows4; i++) {
                float *s = sc + i * SP;
                const int64_t lo = lo_of[i], hi = hi_of[i];
                for (int64_t j = lo; j < hi; j++) {
                    float x = s[j] * scale;
                    if (softcap > 0.f) x = tanhf(x / softcap) * softcap;
                    s[j] = x;
                }
                sums[i] = row_softmax(s, lo, hi);
                uint32_t *pr = pb + i * (SP / 2);
                for (int64_t jp = plo; jp < phi; jp++) {
                    const int64_t j = 2 * jp;
                    const float a = j >= lo && j < hi ? s[j] : 0.f;
                    const float b = j + 1 >= lo && j + 1 < hi ? s[j + 1] : 0.f;
                    pr[jp] = pair_of(a, b);
                }
            }
            /* out = P V / sum: four rows by sixty-four output lanes per tile */
            const uint32_t *vg = Vp + g * (SP / 2) * (int64_t)D;
            for (int64_t i0 = 0; i0 < rows4; i0 += 4)
                for (int d0 = 0; d0 < D; d0 += 64) {
                    __m512 acc[4][4];
                    for (int r = 0; r < 4; r++)
                        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
                    for (int64_t jp = plo; jp < phi; jp++) {
                        __m512i vv[4];
                        const uint32_t *vr = vg + jp * D + d0;
                        for (int c = 0; c < 4; c++)
                            vv[c] = _mm512_load_si512((const void *)(vr + 16 * c));
                        for (int r = 0; r < 4; r++) {
                            const __m512i pv =
                                _mm512_set1_epi32((int)pb[(i0 + r) * (SP / 2) + jp]);
                            for (int c = 0; c < 4; c++) acc[r][c] = dot2(acc[r][c], pv, vv[c]);
                        }
                    }
                    for (int r = 0; r < 4 && i0 + r < rows; r++) {
                        const __m512 inv = _mm512_set1_ps(1.f / sums[i0 + r]);
                        float *o = out + ((t0 + i0 + r) * H + h) * (int64_t)D + d0;
                        for (int c = 0; c < 4; c++)
                            _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(acc[r][c], inv));
                    }
                }
        }
        free(sc);
        free(pb);
        free(qb);
    }
    free(Kp);
    free(Vp);
    return failed ? -2 : 0;
}

#else
int prompt_attention_bf16(const float *q, int64_t q_sh, int64_t q_st, const float *k,
                          const float *v, int64_t kv_sh, int64_t kv_st, float *out, int64_t T,
                          int64_t S, int H, int KV, int D, float scale, float softcap,
                          int64_t window, int threads) {
    (void)q, (void)q_sh, (void)q_st, (void)k, (void)v, (void)kv_sh, (void)kv_st, (void)out;
    (void)T, (void)S, (void)H, (void)KV, (void)D, (void)scale, (void)softcap, (void)window;
    (void)threads;
    return 1;
}
#endif
