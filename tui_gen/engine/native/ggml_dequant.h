/* Dequantizing GGUF blocks 32 weights at a time with AVX-512: the tile a long prompt's GEMM
 * multiplies (gguf_linear's GEMM path), in float32 or rounded to bfloat16.
 *
 * Why: a 512-token prompt on Gemma 3 270M Q4_K_M spent ~110 ms of its ~650 ms turning the
 * layers' blocks into bfloat16 tiles through the scalar view (gg_group: ~1 billion weights/s
 * on two cores for Q5_0, ~2 for the rest). Here the unpacking, the scale and the rounding are
 * vector code. Each value is computed as the scalar view does, w = dw * v + mn with the product
 * and the sum rounded separately, and rounded to bfloat16 to nearest even (NaN stays a NaN), so
 * the tiles are bit-identical to gg_dequant_group's (the tests compare both with the gguf
 * package's decoder).
 */
#ifndef TUI_GEN_GGML_DEQUANT_H
#define TUI_GEN_GGML_DEQUANT_H

#include "ggml_rows.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define GG_DEQUANT_SIMD 1

/* 32 unsigned byte values -> (dw_lo * v + mn, dw_hi * v + mn) for elements 0-15 and 16-31,
 * v = value - off. */
static inline __attribute__((always_inline)) void gg_dq_bytes(__m256i u, int off, float dw_lo,
                                                              float dw_hi, float mn,
                                                              __m512 *lo, __m512 *hi) {
    const __m512i o = _mm512_set1_epi32(off);
    const __m512 v0 = _mm512_cvtepi32_ps(
        _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(u)), o));
    const __m512 v1 = _mm512_cvtepi32_ps(
        _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(u, 1)), o));
    const __m512 m = _mm512_set1_ps(mn);
    *lo = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(dw_lo), v0), m);
    *hi = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(dw_hi), v1), m);
}

/* Group g of the block at blk as 32 floats (lo: elements 0-15, hi: 16-31), as gg_group and
 * gg_dequant_group compute them. */
static inline __attribute__((always_inline)) void gg_dq_group(int type, const uint8_t *blk,
                                                              int g, __m512 *lo, __m512 *hi) {
    const __m256i low = _mm256_set1_epi8(0x0F);
    switch (type) {
    case GG_Q4_0:
    case GG_Q4_1:
    case GG_Q5_0:
    case GG_Q5_1: {
        const int one = type == GG_Q4_1 || type == GG_Q5_1;
        const int five = type == GG_Q5_0 || type == GG_Q5_1;
        const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 2 + 2 * one + 4 * five));
        __m128i l = _mm_and_si128(b, _mm_set1_epi8(0x0F));
        __m128i h = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0F));
        if (five) {
            uint32_t qh;
            memcpy(&qh, blk + 2 + 2 * one, 4);
            l = _mm_or_si128(l, _mm_maskz_set1_epi8((__mmask16)(qh & 0xFFFF), 0x10));
            h = _mm_or_si128(h, _mm_maskz_set1_epi8((__mmask16)(qh >> 16), 0x10));
        }
        const float d = gg_f16(blk);
        gg_dq_bytes(_mm256_set_m128i(h, l), one ? 0 : (five ? 16 : 8), d, d,
                    one ? gg_f16(blk + 2) : 0.f, lo, hi);
        return;
    }
    case GG_Q8_0: {
        const __m512 d = _mm512_set1_ps(gg_f16(blk)), z = _mm512_setzero_ps();
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2));
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
        *lo = _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0))), z);
        *hi = _mm512_add_ps(_mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1))), z);
        return;
    }
    case GG_Q4_K:
    case GG_Q5_K: {
        const int k5 = type == GG_Q5_K;
        const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + (k5 ? 48 : 16) + 32 * (g / 2)));
        __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, (g & 1) * 4), low);
        if (k5) {
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
            const __m256i bit = _mm256_and_si256(_mm256_srli_epi16(qh, g), _mm256_set1_epi8(1));
            v = _mm256_or_si256(v, _mm256_slli_epi16(bit, 4));
        }
        int sc, m;
        gg_scale_min_k4(g, blk + 4, &sc, &m);
        const float dw = gg_f16(blk) * (float)sc;
        gg_dq_bytes(v, 0, dw, dw, -gg_f16(blk + 2) * (float)m, lo, hi);
        return;
    }
    default: { /* GG_Q6_K */
        const int half = g / 4, s = g % 4;
        const __m256i ql = _mm256_loadu_si256((const __m256i *)(blk + 64 * half + 32 * (s & 1)));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * half));
        const __m256i l = _mm256_and_si256(_mm256_srli_epi16(ql, 4 * (s >> 1)), low);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), _mm256_set1_epi8(3));
        const int8_t *scales = (const int8_t *)(blk + 192);
        const float d = gg_f16(blk + 208);
        gg_dq_bytes(_mm256_or_si256(l, _mm256_slli_epi16(h, 4)), 32, d * (float)scales[2 * g],
                    d * (float)scales[2 * g + 1], 0.f, lo, hi);
        return;
    }
    }
}

/* 16 floats -> bfloat16 bits, to nearest even as torch's .to(torch.bfloat16); NaN -> 0x7FC0. */
static inline __attribute__((always_inline)) __m256i gg_dq_bf16(__m512 w) {
    const __m512i u = _mm512_castps_si512(w);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(w, w, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
    return _mm512_cvtepi32_epi16(r);
}

/* Group g of blk into 32 floats at out, or (bf) 32 bfloat16 values. */
static inline void gg_dq_store(int type, const uint8_t *blk, int g, void *out, int bf) {
    __m512 lo, hi;
    gg_dq_group(type, blk, g, &lo, &hi);
    if (bf) {
        _mm256_storeu_si256((__m256i *)out, gg_dq_bf16(lo));
        _mm256_storeu_si256((__m256i *)out + 1, gg_dq_bf16(hi));
    } else {
        _mm512_storeu_ps((float *)out, lo);
        _mm512_storeu_ps((float *)out + 16, hi);
    }
}
#else
#define GG_DEQUANT_SIMD 0
#endif

#endif
