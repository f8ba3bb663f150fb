/* Exported matrix products and dequantization over the row kernels of qrows.h (and frows.h's
 * float rows, which the decode step uses; exported for the tests). */
#include "frows.h"
#include "qrows.h"

/* y (M, N) = x (M, K) @ dequant(q)^T for 1 <= M <= MAX_M, q of `bits` (8 or 4) per weight.
 * Returns 0, or -1 on bad arguments. */
int q_matmul(const float *x, const uint8_t *q, const half *sm, float *y, int64_t M, int64_t N,
             int64_t K, int bits, int threads) {
    if (M < 1 || M > MAX_M || K % GS || threads < 1 || (bits != 8 && bits != 4)) return -1;
    float stack[MAX_M * 1024];
    float *xsum = (M * (K / GS) > MAX_M * 1024) ? malloc(sizeof(float) * M * (K / GS)) : stack;
    if (!xsum) return -1;
    group_sums(x, M, K, xsum);
    const int64_t rowbytes = bits == 8 ? K : K / 2, G = K / GS;
    if (M == 1) { /* a decode step's product, as decode.c's qmat_apply runs it */
        q_matvec(x, q, sm, xsum, y, N, K, bits, threads);
    } else {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t n = 0; n < N; n++) {
            const uint8_t *qr = q + n * rowbytes;
            const half *smr = sm + n * G * 2;
            if (bits == 8) {
                ROW_SWITCH(8)
            } else {
                ROW_SWITCH(4)
            }
        }
    }
    if (xsum != stack) free(xsum);
    return 0;
}

/* w (N, K) float32 = dequant(q): for long prompts, where one float GEMM beats M row passes. */
int q_dequantize(const uint8_t *q, const half *sm, float *w, int64_t N, int64_t K, int bits,
                 int threads) {
    if (K % GS || threads < 1 || (bits != 8 && bits != 4)) return -1;
    const int64_t G = K / GS, rowbytes = bits == 8 ? K : K / 2;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            const float s = (float)sm[(n * G + g) * 2], mn = (float)sm[(n * G + g) * 2 + 1];
            const uint8_t *qg = q + n * rowbytes + g * (bits == 8 ? GS : GS / 2);
            float *wg = w + n * K + g * GS;
            if (bits == 8) {
#pragma omp simd
                for (int k = 0; k < GS; k++) wg[k] = (float)qg[k] * s + mn;
            } else {
#pragma omp simd
                for (int k = 0; k < 16; k++) {
                    wg[k] = (float)(qg[k] & 0x0F) * s + mn;
                    wg[k + 16] = (float)(qg[k] >> 4) * s + mn;
                }
            }
        }
    return 0;
}

/* y (M, N) = x (M, K) W^T for W (N, K) float32 or (bf) bfloat16: the batched decode step's
 * float kernel (frows.h). Returns 0, or -1 on bad arguments. */
int f_matmul(const float *x, const void *w, float *y, int64_t M, int64_t N, int64_t K, int bf,
             int threads) {
    if (M < 1 || N < 1 || K < 1 || threads < 1) return -1;
    float_rows_m(x, M, w, y, N, K, bf != 0, threads);
    return 0;
}

/* Which row loops this build compiled: 512 (AVX-512), 256 (AVX2 + FMA) or 0 (portable). */
int kernel_isa(void) {
#if defined(__AVX512F__)
    return 512;
#elif defined(__AVX2__) && defined(__FMA__)
    return 256;
#else
    return 0;
#endif
}
