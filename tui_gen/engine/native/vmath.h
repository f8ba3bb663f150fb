/* Eight-lane exp and the activations built on it (sigmoid, SiLU, tanh GELU), for the decode step
 * (decode.c) and the per-token probabilities (logprobs.c).
 *
 * Why: libm's tanhf / expf are scalar calls; GPT-2's tanh GELU over a batch of 8 rows spent
 * 12% of a cooking-model step in them. These are GCC/clang vector extensions (AVX2 or AVX-512
 * registers where the CPU has them, two SSE halves or scalar code elsewhere), so they are
 * vector code everywhere rather than left to the auto-vectoriser, which gives up on them.
 *
 * Accuracy: exp within 2e-7 relative (x = k ln2 + r, |r| <= ln2/2, degree-6 Taylor polynomial
 * of exp(r)); the activations within a few float32 ulps, without libm's cancellation in
 * 1 + tanh for the GELU of negative inputs.
 */
#ifndef TUI_GEN_VMATH_H
#define TUI_GEN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi" /* f8 passed between inlined helpers only */
#endif

typedef float f8 __attribute__((vector_size(32)));
typedef int32_t i8 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) f8 f8_set(float v) {
    return (f8){v, v, v, v, v, v, v, v};
}

static inline __attribute__((always_inline)) f8 f8_load(const float *p) {
    f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) void f8_store(float *p, f8 v) {
    memcpy(p, &v, sizeof v);
}

/* x clamped below at -87 (exp(-87) ~ 1.6e-38), split as k ln2 + r; returns r, sets *two = 2^k. */
static inline __attribute__((always_inline)) f8 reduce_ln2(f8 x, f8 *two) {
    const f8 lo = f8_set(-87.f);
    const i8 below = x < lo;
    x = (f8)(((i8)x & ~below) | ((i8)lo & below));
    const float shift = 12582912.f; /* 1.5 * 2^23: adding it rounds to an integer */
    const f8 k = (x * 1.44269504088896341f + shift) - shift;
    *two = (f8)((__builtin_convertvector(k, i8) + 127) << 23);
    return x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
}

/* exp(x) for x <= 0 (below -87: ~0): exp(r) by its degree-6 Taylor polynomial (relative error
 * < 2e-7 for |r| <= ln2/2), times 2^k. */
static inline __attribute__((always_inline)) f8 exp8_nonpositive(f8 x) {
    f8 two;
    const f8 r = reduce_ln2(x, &two);
    const f8 p = 1.f + r * (1.f + r * (0.5f + r * (1.6666667e-1f + r * (4.1666668e-2f +
                 r * (8.3333338e-3f + r * 1.3888889e-3f)))));
    return p * two;
}

/* sigmoid(t) = 1 / (1 + exp(-t)), from e = exp(-|t|) so it never overflows: 1 / (1 + e) for
 * t >= 0, e / (1 + e) below. */
static inline __attribute__((always_inline)) f8 sigmoid8(f8 t) {
    const f8 e = exp8_nonpositive((f8)((i8)t | (int32_t)0x80000000u)); /* -|t| */
    const i8 neg = t < 0.f;
    const f8 num = (f8)(((i8)e & neg) | ((i8)f8_set(1.f) & ~neg));
    return num / (1.f + e);
}

/* s[i] = exp(s[i] - mx) for n scores (eight lanes at a time), exactly 0 where s[i] is -inf
 * (a padding column); returns their sum. The decode step's attention (decode.c) and a
 * prompt's (prompt_attention.c) both normalise with it. */
static inline float softmax_numerators(float *s, int64_t n, float mx) {
    const f8 m8 = f8_set(mx), ninf = f8_set(-INFINITY);
    f8 acc = f8_set(0.f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const f8 v = f8_load(s + i);
        const i8 masked = v == ninf;
        const f8 e = (f8)((i8)exp8_nonpositive(v - m8) & ~masked);
        f8_store(s + i, e);
        acc += e;
    }
    float sum = 0.f;
    for (int l = 0; l < 8; l++) sum += acc[l];
    for (; i < n; i++) sum += (s[i] = expf(s[i] - mx));
    return sum;
}

/* silu(u) = u * sigmoid(u). */
static inline __attribute__((always_inline)) f8 silu8(f8 u) { return u * sigmoid8(u); }

/* GPT-2's gelu_new (torch's gelu(approximate="tanh")): 0.5 u (1 + tanh(z)) with
 * z = sqrt(2/pi) (u + 0.044715 u^3), computed as u * sigmoid(2z), the same function without
 * the cancellation of 1 + tanh(z) for negative u. */
static inline __attribute__((always_inline)) f8 gelu_tanh8(f8 u) {
    return u * sigmoid8(1.5957691216057308f * (u + 0.044715f * u * u * u));
}

#endif
