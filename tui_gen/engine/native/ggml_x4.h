/* GGUF's 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) repacked four rows to a block ("x4"):
 * the layout the AVX-512 kernels read. The Q4_1 case explains why; the others differ only in
 * their fields (gg_x4_*_at).
 *
 * Why: Q4_1 was the one format whose products ran slower from cache than Q8_0's from memory:
 * ~21 billion weights/s a core whether the matrix sat in L2 or not (Q8_0: 26 hot, 13 cold),
 * so its kernel was bound by instructions, not bytes. A file's Q4_1 block keeps one row's
 * scale, min and 16 bytes of nibbles together, so the four-row kernel (ggml_rows.h's
 * gg_rows_m1) spends per row and block two float16 conversions, a scalar multiply, a broadcast,
 * a nibble unpack, a dot, a convert and two multiply-adds: ~13 instructions for 32 weights.
 *
 * Here the same 80 bytes of four rows' block b sit side by side:
 *   d[4] (float16), m[4] (float16), nibbles of row 0 (16 bytes), row 1, row 2, row 3
 * so one 512-bit load holds all four rows' nibbles, one conversion their four scales, and two
 * `vpdpbusd` (low nibbles against x[0..16), high against x[16..32), each x half broadcast to
 * the four 128-bit lanes) give the four rows' partial dots in one register. ~16 instructions
 * for the four rows' 128 weights (measured in gguf_bench / the README's table).
 *
 * Each thread's share is then one sequential stream, which the hardware prefetcher follows on
 * its own: no software prefetch (measured with 0, 512, 1,024 and 2,048 bytes ahead: none was
 * fastest), and a 71 MB Q8_0 matrix streams at ~41 GB/s on two cores against ~28 in the file's
 * layout (four row streams and prefetch.h's slices).
 *
 * The layout holds exactly the file's bytes, reordered (no larger, as the GGUF issue asks),
 * and the arithmetic per weight is the file layout's: w = d q + m, sum over the block of
 * d dx dot(q, xq) + m s. Rows must come in fours; other matrices keep the file layout.
 */
#ifndef TUI_GEN_GGML_X4_H
#define TUI_GEN_GGML_X4_H

#include "ggml_rows.h"

enum { GG_LAYOUT_FILE = 0, GG_LAYOUT_X4 = 1 };

#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) &&              \
    defined(__AVX512F__)
#define GG_X4 1
#else
#define GG_X4 0
#endif

/* Where the fields of an x4 block of `type` start (bytes): the four rows' d (float16) at 0,
 * then their m (Q4_1, Q5_1), then the fifth bits of their first 16 elements, four 16-bit masks,
 * and of their last 16 (Q5_0, Q5_1), then the values, row after row. A block of four rows is
 * 4 * gg_block_bytes(type). -1: the type has no such field. */
static inline int gg_x4_m_at(int type) { return type == GG_Q4_1 || type == GG_Q5_1 ? 8 : -1; }
static inline int gg_x4_bits_at(int type) {
    return type == GG_Q5_0 ? 8 : type == GG_Q5_1 ? 16 : -1;
}
static inline int gg_x4_values_at(int type) {
    switch (type) {
    case GG_Q4_0: case GG_Q8_0: return 8;
    case GG_Q4_1: return 16;
    case GG_Q5_0: return 24;
    default: return 32; /* Q5_1 */
    }
}

/* The types with an x4 layout. */
static inline int gg_x4_type(int type) {
    return type == GG_Q4_0 || type == GG_Q4_1 || type == GG_Q5_0 || type == GG_Q5_1 ||
           type == GG_Q8_0;
}

/* Where a file block's fields are: its m, its 32 fifth bits, its values (-1: none). */
static inline void gg_file_fields(int type, int *m, int *bits, int *values, int *nvalues) {
    const int one = type == GG_Q4_1 || type == GG_Q5_1, five = type == GG_Q5_0 || type == GG_Q5_1;
    *m = one ? 2 : -1;
    *bits = five ? 2 + 2 * one : -1;
    *values = 2 + 2 * one + 4 * five;
    *nvalues = type == GG_Q8_0 ? 32 : 16;
}

/* Rows (rows % 4 == 0) x (K / 32) blocks of an x4 type -> the x4 layout, as many bytes. */
static void gg_x4_pack_rows(int type, const uint8_t *src, int64_t rows, int64_t K, uint8_t *dst) {
    const int bytes = gg_block_bytes(type);
    int fm, fbits, fvalues, nvalues;
    gg_file_fields(type, &fm, &fbits, &fvalues, &nvalues);
    const int64_t NB = K / 32, rowbytes = NB * bytes;
    for (int64_t g = 0; g < rows / 4; g++)
        for (int64_t b = 0; b < NB; b++) {
            uint8_t *o = dst + (g * NB + b) * 4 * bytes;
            for (int r = 0; r < 4; r++) {
                const uint8_t *blk = src + (g * 4 + r) * rowbytes + b * bytes;
                memcpy(o + 2 * r, blk, 2);
                if (fm >= 0) memcpy(o + gg_x4_m_at(type) + 2 * r, blk + fm, 2);
                if (fbits >= 0) {
                    memcpy(o + gg_x4_bits_at(type) + 2 * r, blk + fbits, 2);
                    memcpy(o + gg_x4_bits_at(type) + 8 + 2 * r, blk + fbits + 2, 2);
                }
                memcpy(o + gg_x4_values_at(type) + nvalues * r, blk + fvalues, nvalues);
            }
        }
}

/* Row r's block b of an x4 group back as the file's bytes (for dequantizing). */
static inline void gg_x4_block(int type, const uint8_t *group, int64_t b, int r,
                               uint8_t out[34]) {
    const int bytes = gg_block_bytes(type);
    int fm, fbits, fvalues, nvalues;
    gg_file_fields(type, &fm, &fbits, &fvalues, &nvalues);
    const uint8_t *o = group + b * 4 * bytes;
    memcpy(out, o + 2 * r, 2);
    if (fm >= 0) memcpy(out + fm, o + gg_x4_m_at(type) + 2 * r, 2);
    if (fbits >= 0) {
        memcpy(out + fbits, o + gg_x4_bits_at(type) + 2 * r, 2);
        memcpy(out + fbits + 2, o + gg_x4_bits_at(type) + 8 + 2 * r, 2);
    }
    memcpy(out + fvalues, o + gg_x4_values_at(type) + nvalues * r, nvalues);
}

#if GG_X4
#include <immintrin.h>

/* out[m * 4 + r] = row r of the x4 group at `group` . activation row m, for M rows of `a`,
 * for the 4- and 5-bit types (`type` a compile-time constant). Two accumulator sets by block
 * parity, as the file-layout kernels, so neighbouring blocks' multiply-adds do not wait on
 * each other. Each activation row's arithmetic is the same for any M (M only says how many
 * are done per pass), so a row's result is bit-identical alone and in a batch. */
static inline __attribute__((always_inline)) void gg_x4_rows(const int type,
                                                             const uint8_t *group,
                                                             const gg_act_t *a, const int M,
                                                             float *out) {
    const int64_t K = a->K, NB = K / 32, size = 4 * gg_block_bytes(type);
    const int one = type == GG_Q4_1 || type == GG_Q5_1, five = type == GG_Q5_0 || type == GG_Q5_1;
    const __m512i low = _mm512_set1_epi8(0x0F);
    /* lane l takes row l / 4's scale */
    const __m512i spread = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    __m512 acc[2][GG_MAX_M];
    __m128 macc[2][GG_MAX_M];
    for (int m = 0; m < M; m++) {
        acc[0][m] = acc[1][m] = _mm512_setzero_ps();
        macc[0][m] = macc[1][m] = _mm_setzero_ps();
    }
#define GG_X4_BLOCK_STEP(b, j)                                                                 \
    {                                                                                          \
        const uint8_t *blk = group + (b) * size;                                               \
        const __m512i qv = _mm512_loadu_si512((const void *)(blk + gg_x4_values_at(type)));   \
        __m512i lo = _mm512_and_si512(qv, low);                                                \
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(qv, 4), low);                          \
        if (five) {                                                                            \
            uint64_t bl, bh;                                                                   \
            memcpy(&bl, blk + gg_x4_bits_at(type), 8);                                         \
            memcpy(&bh, blk + gg_x4_bits_at(type) + 8, 8);                                     \
            lo = _mm512_or_si512(lo, _mm512_maskz_set1_epi8((__mmask64)bl, 0x10));             \
            hi = _mm512_or_si512(hi, _mm512_maskz_set1_epi8((__mmask64)bh, 0x10));             \
        }                                                                                      \
        const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)blk));                \
        const __m512 d16 = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(d4));          \
        const __m128 m4 = one ? _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(blk + 8)))     \
                              : _mm_mul_ps(d4, _mm_set1_ps(five ? -16.f : -8.f));              \
        for (int m = 0; m < M; m++) {                                                          \
            const int8_t *xq = a->q + m * K + (b) * 32;                                        \
            const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xq)); \
            const __m512i xhi =                                                                \
                _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xq + 16)));           \
            const __m512i dot =                                                                \
                _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi); \
            const __m512 sc = _mm512_mul_ps(d16, _mm512_set1_ps(a->d[m * NB + (b)]));          \
            acc[j][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), sc, acc[j][m]);              \
            const float sx = a->s[m * 2 * NB + 2 * (b)] + a->s[m * 2 * NB + 2 * (b) + 1];      \
            macc[j][m] = _mm_fmadd_ps(m4, _mm_set1_ps(sx), macc[j][m]);                        \
        }                                                                                      \
    }
    int64_t b = 0;
    for (; b + 2 <= NB; b += 2) {
        GG_X4_BLOCK_STEP(b, 0)
        GG_X4_BLOCK_STEP(b + 1, 1)
    }
    for (; b < NB; b++) GG_X4_BLOCK_STEP(b, 0)
#undef GG_X4_BLOCK_STEP
    for (int m = 0; m < M; m++) {
        float t[16], mn[4];
        _mm512_storeu_ps(t, _mm512_add_ps(acc[0][m], acc[1][m]));
        _mm_storeu_ps(mn, _mm_add_ps(macc[0][m], macc[1][m]));
        for (int r = 0; r < 4; r++)
            out[m * 4 + r] = ((t[4 * r] + t[4 * r + 1]) + (t[4 * r + 2] + t[4 * r + 3])) + mn[r];
    }
}

/* The Q8_0 kernel: rows 0-1 of a block in one register, rows 2-3 in another (32 bytes each),
 * against x's 32 bytes broadcast to both halves. vpdpbusd multiplies unsigned by signed bytes,
 * so the weights are offset to unsigned (w ^ 0x80 = w + 128) and 128 * sum(x) (one more
 * vpdpbusd per activation block, shared by the four rows) taken off again: exact in int32. */
static inline __attribute__((always_inline)) void gg_x4q8_rows(const uint8_t *group,
                                                               const gg_act_t *a, const int M,
                                                               float *out) {
    const int64_t K = a->K, NB = K / 32;
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    const __m512i spread01 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i spread23 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    __m512 acc[2][GG_MAX_M]; /* acc[0]: rows 0 and 1, acc[1]: rows 2 and 3 */
    for (int m = 0; m < M; m++) acc[0][m] = acc[1][m] = _mm512_setzero_ps();
    for (int64_t b = 0; b < NB; b++) {
        const uint8_t *blk = group + b * 4 * 34;
        const __m512i w01 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(blk + 8)), flip);
        const __m512i w23 = _mm512_xor_si512(_mm512_loadu_si512((const void *)(blk + 72)), flip);
        const __m512 d4 = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)blk)));
        const __m512 d01 = _mm512_permutexvar_ps(spread01, d4);
        const __m512 d23 = _mm512_permutexvar_ps(spread23, d4);
        for (int m = 0; m < M; m++) {
            const __m512i xv = _mm512_broadcast_i64x4(
                _mm256_loadu_si256((const __m256i *)(a->q + m * K + b * 32)));
            const __m512i corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, xv);
            const __m512i t01 = _mm512_sub_epi32(
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), w01, xv), corr);
            const __m512i t23 = _mm512_sub_epi32(
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), w23, xv), corr);
            const __m512 dx = _mm512_set1_ps(a->d[m * NB + b]);
            acc[0][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t01), _mm512_mul_ps(d01, dx), acc[0][m]);
            acc[1][m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t23), _mm512_mul_ps(d23, dx), acc[1][m]);
        }
    }
    for (int m = 0; m < M; m++) {
        float t[32];
        _mm512_storeu_ps(t, acc[0][m]);
        _mm512_storeu_ps(t + 16, acc[1][m]);
        for (int r = 0; r < 4; r++) {
            const float *v = t + 8 * r;
            out[m * 4 + r] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
        }
    }
}

/* gg_x4_rows / gg_x4q8_rows with the type and M compile-time constants for the usual M. */
#define GG_X4_M(CALL)                                                                          \
    switch (M) {                                                                               \
    case 1: CALL(1); break;                                                                    \
    case 2: CALL(2); break;                                                                    \
    case 8: CALL(8); break;                                                                    \
    default: CALL(M); break;                                                                   \
    }
#define GG_X4_Q8(MM) gg_x4q8_rows(group, a, MM, out)
#define GG_X4_Q4_0(MM) gg_x4_rows(GG_Q4_0, group, a, MM, out)
#define GG_X4_Q4_1(MM) gg_x4_rows(GG_Q4_1, group, a, MM, out)
#define GG_X4_Q5_0(MM) gg_x4_rows(GG_Q5_0, group, a, MM, out)
#define GG_X4_Q5_1(MM) gg_x4_rows(GG_Q5_1, group, a, MM, out)
static void gg_x4_rows_any(int type, const uint8_t *group, const gg_act_t *a, int M,
                           float *out) {
    switch (type) {
    case GG_Q8_0: GG_X4_M(GG_X4_Q8) break;
    case GG_Q4_0: GG_X4_M(GG_X4_Q4_0) break;
    case GG_Q4_1: GG_X4_M(GG_X4_Q4_1) break;
    case GG_Q5_0: GG_X4_M(GG_X4_Q5_0) break;
    default: GG_X4_M(GG_X4_Q5_1) break;
    }
}
#undef GG_X4_M
#undef GG_X4_Q8
#undef GG_X4_Q4_0
#undef GG_X4_Q4_1
#undef GG_X4_Q5_0
#undef GG_X4_Q5_1
#endif

#endif
