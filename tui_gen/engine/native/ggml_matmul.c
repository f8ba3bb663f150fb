/* Matrix products over GGUF blocks (ggml_rows.h): the exported entry points.
 *
 * A matrix is one or more row blocks side by side (gg_mat_t): a fused q/k/v projection of a
 * Q4_K_M file holds q and k in one type and v in another, and the parts are never copied
 * together. The activations are quantized once per product and shared by every part.
 */
#include <stddef.h>
#include <stdlib.h>

#include "ggml_rows.h"
#include "ggml_x4.h"
#include "ggml_dequant.h"

#define GG_MAX_PARTS 4

#ifndef GG_PREFETCH_ROWS
#define GG_PREFETCH_ROWS 4
#endif

typedef struct {
    const uint8_t *w; /* rows x (K / block elements) blocks, as the file stores them or x4 */
    int64_t rows;
    int32_t type;
    int32_t layout; /* GG_LAYOUT_FILE, or GG_LAYOUT_X4 (ggml_x4.h: four rows a block) */
} gg_part_t;

typedef struct {
    int64_t k;
    int32_t n_parts;
    int32_t planes; /* activation planes: 1 (8 bits, as llama.cpp) or 2 (see gg_matmul) */
    gg_part_t parts[GG_MAX_PARTS];
} gg_mat_t;

/* struct sizes and offsets, compared with gguf_linear.py's ctypes mirrors at load */
typedef struct {
    const char *name;
    int64_t value;
} gg_layout_entry_t;

#define SIZE(s) {#s, (int64_t)sizeof(s)}
#define OFF(s, f) {#s "." #f, (int64_t)offsetof(s, f)}
static const gg_layout_entry_t GG_LAYOUT[] = {
    SIZE(gg_part_t), OFF(gg_part_t, w), OFF(gg_part_t, rows), OFF(gg_part_t, type),
    OFF(gg_part_t, layout), SIZE(gg_mat_t), OFF(gg_mat_t, k), OFF(gg_mat_t, n_parts),
    OFF(gg_mat_t, planes), OFF(gg_mat_t, parts),
};
#undef SIZE
#undef OFF

int64_t gg_layout_count(void) { return (int64_t)(sizeof GG_LAYOUT / sizeof GG_LAYOUT[0]); }

const char *gg_layout_name(int64_t i) {
    return i >= 0 && i < gg_layout_count() ? GG_LAYOUT[i].name : NULL;
}

int64_t gg_layout_value(int64_t i) {
    return i >= 0 && i < gg_layout_count() ? GG_LAYOUT[i].value : -1;
}

/* Which integer dot product this build uses: 3 VNNI, 2 AVX2, 0 portable. */
int gg_isa(void) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    return 3;
#elif defined(__AVXVNNI__)
    return 3;
#elif defined(__AVX2__)
    return 2;
#else
    return 0;
#endif
}

static int gg_supported(int type) { return gg_block_elems(type) != 0; }

/* 1 when this build has the x4 kernel (AVX-512 VNNI): only then may a part use GG_LAYOUT_X4. */
int gg_x4_available(void) { return GG_X4; }

/* Repack Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0 blocks (rows, K / 32 block bytes) into the x4 layout
 * at dst (as many bytes). Returns 0, or -1 when this build has no x4 kernel or type / rows /
 * K do not fit. */
int gg_x4_pack(int type, const uint8_t *src, int64_t rows, int64_t K, uint8_t *dst) {
    if (!GG_X4 || !gg_x4_type(type) || rows < 4 || rows % 4 || K < 32 || K % 32)
        return -1;
    gg_x4_pack_rows(type, src, rows, K, dst);
    return 0;
}

/* Whether a part's layout is one this build reads for its type and rows. */
static int gg_layout_ok(const gg_part_t *part) {
    if (part->layout == GG_LAYOUT_FILE) return 1;
    return part->layout == GG_LAYOUT_X4 && GG_X4 && gg_x4_type(part->type) &&
           part->rows % 4 == 0;
}

/* The row kernel with the type and the row count as compile-time constants. */
#define GG_M(T)                                                                                \
    switch (M) {                                                                               \
    case 1: gg_row(T, row, a, 1, out); break;                                                  \
    case 8: gg_row(T, row, a, 8, out); break;                                                  \
    default: gg_row(T, row, a, M, out); break;                                                 \
    }

static void gg_rows(int type, const uint8_t *row, const gg_act_t *a, int M, float *out) {
    switch (type) {
    case GG_Q4_0: GG_M(GG_Q4_0) break;
    case GG_Q4_1: GG_M(GG_Q4_1) break;
    case GG_Q5_0: GG_M(GG_Q5_0) break;
    case GG_Q5_1: GG_M(GG_Q5_1) break;
    case GG_Q8_0: GG_M(GG_Q8_0) break;
    case GG_Q4_K: GG_M(GG_Q4_K) break;
    case GG_Q5_K: GG_M(GG_Q5_K) break;
    case GG_Q6_K: GG_M(GG_Q6_K) break;
    default: break;
    }
}
#undef GG_M

#if GG_SIMD
/* gg_rows_m1 with the type as a compile-time constant. */
static void gg_rows_m1_typed(int type, const uint8_t *row, int64_t rowbytes, const gg_act_t *a,
                             float *out, const uint8_t *pf) {
    switch (type) {
    case GG_Q4_0: gg_rows_m1(GG_Q4_0, row, rowbytes, a, out, pf); break;
    case GG_Q4_1: gg_rows_m1(GG_Q4_1, row, rowbytes, a, out, pf); break;
    case GG_Q5_0: gg_rows_m1(GG_Q5_0, row, rowbytes, a, out, pf); break;
    case GG_Q5_1: gg_rows_m1(GG_Q5_1, row, rowbytes, a, out, pf); break;
    case GG_Q8_0: gg_rows_m1(GG_Q8_0, row, rowbytes, a, out, pf); break;
    default: break;
    }
}
/* gg_rows_m1_2 with the type as a compile-time constant. */
static void gg_rows_m1_2_typed(int type, const uint8_t *row, int64_t rowbytes,
                               const gg_act_t *a, const gg_act_t *a2, float *out,
                               const uint8_t *pf) {
    switch (type) {
    case GG_Q4_0: gg_rows_m1_2(GG_Q4_0, row, rowbytes, a, a2, out, pf); break;
    case GG_Q4_1: gg_rows_m1_2(GG_Q4_1, row, rowbytes, a, a2, out, pf); break;
    case GG_Q5_0: gg_rows_m1_2(GG_Q5_0, row, rowbytes, a, a2, out, pf); break;
    case GG_Q5_1: gg_rows_m1_2(GG_Q5_1, row, rowbytes, a, a2, out, pf); break;
    case GG_Q8_0: gg_rows_m1_2(GG_Q8_0, row, rowbytes, a, a2, out, pf); break;
    default: break;
    }
}
#endif

/* Quantize M activation rows into one buffer: q (M, K), d (M, K / 32), s (M, K / 16). */
int gg_quantize_act(const float *x, int64_t M, int64_t K, int8_t *q, float *d, float *s) {
    if (M < 1 || K < 32 || K % 32) return -1;
    for (int64_t m = 0; m < M; m++)
        gg_quantize_row(x + m * K, K, q + m * K, d + m * (K / 32), s + m * (K / 16));
    return 0;
}

/* Two planes per activation row, in chunks of GG_MAX_M / 2 rows laid out as the chunk's x rows
 * quantized, then their residuals quantized: q/d/s hold 2M rows. r is K floats of scratch. */
#define GG_CHUNK2 (GG_MAX_M / 2)
static void gg_quantize_act2(const float *x, int64_t M, int64_t K, int8_t *q, float *d, float *s,
                             float *r) {
    for (int64_t m0 = 0; m0 < M; m0 += GG_CHUNK2) {
        const int64_t mm = M - m0 < GG_CHUNK2 ? M - m0 : GG_CHUNK2;
        for (int64_t i = 0; i < mm; i++) {
            const int64_t slot = 2 * m0 + i, slot2 = 2 * m0 + mm + i;
            const float *xr = x + (m0 + i) * K;
            int8_t *q1 = q + slot * K;
            float *d1 = d + slot * (K / 32);
            gg_quantize_row(xr, K, q1, d1, s + slot * (K / 16));
            for (int64_t k = 0; k < K; k++) r[k] = xr[k] - d1[k / 32] * (float)q1[k];
            gg_quantize_row(r, K, q + slot2 * K, d + slot2 * (K / 32), s + slot2 * (K / 16));
        }
    }
}

/* y (M, N) = x (M, K) @ W^T, N the parts' rows together; rows of y are `ldy` floats apart.
 * Returns 0, or -1 on bad arguments or no memory.
 *
 * mat->planes == 2: each activation row is quantized to 8 bits, and what that rounding left
 * over is quantized again, x ~= dx q + dx2 q2 (~15 significant bits instead of 8); every weight
 * block is decoded once and dotted with both. Why: 8-bit activations are what keeps llama.cpp
 * and us at ~96-97% top-1 agreement with the float32 model on the same weights; two planes
 * reach float32's next tokens (SmolLM2 Q4_1: 100% of 3,616 positions, mean KL 1e-7), for
 * integer work only. */
int gg_matmul(const gg_mat_t *mat, const float *x, int64_t M, float *y, int64_t ldy,
              int threads) {
    const int64_t K = mat->k;
    const int two = mat->planes == 2;
    if (M < 1 || K < 32 || K % 32 || threads < 1 || mat->n_parts < 1 ||
        mat->n_parts > GG_MAX_PARTS || mat->planes < 0 || mat->planes > 2)
        return -1;
    int64_t N = 0;
    for (int p = 0; p < mat->n_parts; p++) {
        const int type = mat->parts[p].type;
        if (!gg_supported(type) || K % gg_block_elems(type) || !gg_layout_ok(&mat->parts[p]))
            return -1;
        N += mat->parts[p].rows;
    }
    if (ldy < N) return -1;
    /* the activations: one byte per element and three floats per 32 (per plane), and a row
     * of scratch for the residual (K % 32 == 0, so the floats after the bytes are aligned) */
    const int64_t QM = two ? 2 * M : M;
    const size_t bytes = (size_t)(QM * K) + sizeof(float) * (size_t)(QM * (K / 32) + QM * (K / 16)) +
                         (two ? sizeof(float) * (size_t)K : 0);
    _Alignas(64) uint8_t stack[32768];
    uint8_t *buf = bytes <= sizeof stack ? stack : malloc(bytes);
    if (!buf) return -1;
    int8_t *q = (int8_t *)buf;
    float *d = (float *)(buf + QM * K), *s = d + QM * (K / 32);
    if (two)
        gg_quantize_act2(x, M, K, q, d, s, s + QM * (K / 16));
    else
        gg_quantize_act(x, M, K, q, d, s);
    /* activation rows per pass over a weight row, and the x rows they stand for */
    const int step = two ? GG_CHUNK2 : GG_MAX_M;
#pragma omp parallel num_threads(threads)
    {
        int64_t off = 0;
        for (int p = 0; p < mat->n_parts; p++) {
            const gg_part_t *part = &mat->parts[p];
            const int type = part->type;
            const int64_t rowbytes = K / gg_block_elems(type) * gg_block_bytes(type);
            int64_t n_lo = 0; /* rows before n_lo went GG_R at a time */
#if GG_X4
            if (part->layout == GG_LAYOUT_X4) {
                /* four rows per group, every activation row (and plane) in one pass of M */
                const int64_t groups = part->rows / 4, gbytes = 4 * rowbytes;
#pragma omp for schedule(static) nowait
                for (int64_t g = 0; g < groups; g++) {
                    const uint8_t *grp = part->w + g * gbytes;
                    for (int64_t m0 = 0; m0 < M; m0 += step) {
                        const int mm = M - m0 < step ? (int)(M - m0) : step;
                        const int64_t at = two ? 2 * m0 : m0;
                        const gg_act_t a = {q + at * K, d + at * (K / 32), s + at * (K / 16), K};
                        float out[GG_MAX_M * 4];
                        gg_x4_rows_any(type, grp, &a, two ? 2 * mm : mm, out);
                        float *yg = y + m0 * ldy + off + g * 4;
                        for (int m = 0; m < mm; m++)
                            for (int r = 0; r < 4; r++)
                                yg[m * ldy + r] = two ? out[m * 4 + r] + out[(mm + m) * 4 + r]
                                                      : out[m * 4 + r];
                    }
                }
                off += part->rows;
                continue;
            }
#endif
#if GG_SIMD
            if (M == 1 && gg_block_elems(type) == 32) {
                const int64_t groups = part->rows / GG_R;
                const gg_act_t a = {q, d, s, K};
                const gg_act_t a2 = {q + K, d + K / 32, s + K / 16, K};
#pragma omp for schedule(static) nowait
                for (int64_t g = 0; g < groups; g++) {
                    const uint8_t *row = part->w + g * GG_R * rowbytes;
                    const uint8_t *pf = group_ahead(part->w, g, GG_R, groups, rowbytes);
                    float out[GG_R];
                    if (two)
                        gg_rows_m1_2_typed(type, row, rowbytes, &a, &a2, out, pf);
                    else
                        gg_rows_m1_typed(type, row, rowbytes, &a, out, pf);
                    for (int r = 0; r < GG_R; r++) y[off + g * GG_R + r] = out[r];
                }
                n_lo = groups * GG_R;
            }
#endif
#pragma omp for schedule(static) nowait
            for (int64_t n = n_lo; n < part->rows; n++) {
                const uint8_t *row = part->w + n * rowbytes;
                /* the row GG_PREFETCH_ROWS ahead into the cache while this one is computed */
                for (int64_t at = 0; at < rowbytes; at += 64)
                    __builtin_prefetch(row + GG_PREFETCH_ROWS * rowbytes + at, 0, 3);
                for (int64_t m0 = 0; m0 < M; m0 += step) {
                    const int mm = M - m0 < step ? (int)(M - m0) : step;
                    const int64_t at = two ? 2 * m0 : m0; /* first activation row of the pass */
                    const gg_act_t a = {q + at * K, d + at * (K / 32), s + at * (K / 16), K};
                    float out[GG_MAX_M];
                    gg_rows(type, row, &a, two ? 2 * mm : mm, out);
                    for (int m = 0; m < mm; m++)
                        y[(m0 + m) * ldy + off + n] = two ? out[m] + out[mm + m] : out[m];
                }
            }
            off += part->rows;
        }
    }
    if (buf != stack) free(buf);
    return 0;
}

/* The decode step's product (decode.c's MAT_GGUF) for M activation rows, y (M, N) packed. */
int gg_apply_rows(const void *mat, const float *x, int64_t M, float *y, int threads) {
    const gg_mat_t *m = (const gg_mat_t *)mat;
    int64_t n = 0;
    for (int p = 0; p < m->n_parts && p < GG_MAX_PARTS; p++) n += m->parts[p].rows;
    return gg_matmul(m, x, M, y, n, threads);
}

/* The weights of `rows` rows of `type` starting at w into out (rows, K): float32, or (bf)
 * bfloat16 bits rounded to nearest even as torch's .to(torch.bfloat16) does (a NaN stays a NaN,
 * though not necessarily torch's NaN bits), for the bfloat16 GEMM of a long prompt: one pass
 * instead of float32 and then a copy. */
static int dequantize_to(const uint8_t *w, int type, int layout, int64_t rows, int64_t K,
                         void *out, const int bf, int threads) {
    if (!gg_supported(type) || K % gg_block_elems(type) || rows < 0 || threads < 1) return -1;
    const gg_part_t part = {w, rows, type, layout};
    if (!gg_layout_ok(&part)) return -1;
    const int per = gg_block_elems(type), bytes = gg_block_bytes(type);
    const int64_t rowbytes = K / per * bytes;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < rows; n++)
        for (int64_t b = 0; b < K / 32; b++) {
            uint8_t file_block[34]; /* an x4 row's block as the file stores it */
            const uint8_t *blk = w + n * rowbytes + (b * 32 / per) * bytes;
            const int g = (int)(b % (per / 32));
            if (layout == GG_LAYOUT_X4) {
                gg_x4_block(type, w + (n / 4) * 4 * rowbytes, b, (int)(n % 4), file_block);
                blk = file_block;
            }
#if GG_DEQUANT_SIMD
            gg_dq_store(type, blk, g,
                        bf ? (void *)((uint16_t *)out + n * K + b * 32)
                           : (void *)((float *)out + n * K + b * 32),
                        bf);
#else
            float f[32];
            gg_dequant_group(type, blk, g, bf ? f : (float *)out + n * K + b * 32);
            if (!bf) continue;
            uint16_t *o = (uint16_t *)out + n * K + b * 32;
            for (int j = 0; j < 32; j++) {
                uint32_t u;
                memcpy(&u, &f[j], 4);
                o[j] = f[j] != f[j] ? (uint16_t)0x7FC0
                                    : (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
            }
#endif
        }
    return 0;
}

int gg_dequantize(const uint8_t *w, int type, int layout, int64_t rows, int64_t K, float *out,
                  int threads) {
    return dequantize_to(w, type, layout, rows, K, out, 0, threads);
}

int gg_dequantize_bf16(const uint8_t *w, int type, int layout, int64_t rows, int64_t K,
                       uint16_t *out, int threads) {
    return dequantize_to(w, type, layout, rows, K, out, 1, threads);
}
