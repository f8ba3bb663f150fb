/* One decode step (one token, batch 1) through every layer of a model, in C.
 *
 * Why: the matrix products of a SmolLM2 step take a few milliseconds once the weights are read
 * efficiently, but torch spent another ~6 ms on ~25 small operations per layer (norms, RoPE,
 * cache writes, attention on one query, activations, residuals), each a few microseconds of
 * dispatch for a few hundred floats of work. Here the whole step is one call: the same
 * arithmetic as the torch modules (models/llama.py, models/gpt2.py), computed in float32 on
 * float32, bfloat16 or quantized weights (the row kernels of qrows.h), on the same KV cache
 * tensors (float32 or bfloat16), ending with the final norm and the lm_head's logits.
 *
 * Only the embedding lookup stays in torch. Batches, prompts and other dtypes use torch.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qrows.h"

enum { MAT_QUANT = 0, MAT_F32_ROWS = 1, MAT_F32_COLS = 2, MAT_BF16_ROWS = 3, MAT_GGUF = 4 };

/* MAT_GGUF: `w` is a gg_mat_t (ggml_matmul.c): GGUF blocks as the file stores them */
int gg_apply(const void *mat, const float *x, float *y, int threads);

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

typedef struct {
    const void *w;      /* MAT_QUANT: q, (N, K) uint8 or (N, K / 2) for 4 bits;
                           MAT_F32_ROWS: float (N, K) (nn.Linear); MAT_F32_COLS: float (K, N);
                           MAT_BF16_ROWS: bfloat16 (N, K); MAT_GGUF: a gg_mat_t */
    const half *sm;     /* MAT_QUANT: (N, K / 32, 2) float16 (scale, min) */
    const float *bias;  /* (N,) or NULL */
    int64_t n, k;
    int32_t kind, bits;
} qmat_t;

typedef struct {
    const float *norm1_w, *norm1_b; /* b NULL for RMSNorm or a LayerNorm without bias */
    const float *norm2_w, *norm2_b;
    qmat_t qkv, o, up, down; /* up: gate and up fused (gated MLP) or fc */
    void *k_cache, *v_cache; /* (n_kv, max_seq, head_dim): batch row 0 of the layer's cache,
                                float32 or (kv_bf16) bfloat16 */
    const float *q_norm_w, *k_norm_w; /* RMSNorm of every q and k head before RoPE, or NULL */
    const float *post_attn_w, *post_mlp_w; /* RMSNorm of the attention / MLP output before its
                                              residual add (Gemma's sandwich norms), or NULL */
    int64_t window;     /* sliding window: attend to the last `window` positions; 0: to all */
    int32_t local_rope; /* 1: rotate with the second rotary table (Gemma 3's sliding layers) */
} layer_t;

enum { NORM_RMS = 0, NORM_LAYER = 1 };
enum { ACT_SILU_GATED = 0, ACT_GELU_TANH = 1, ACT_GELU = 2, ACT_RELU = 3, ACT_SILU = 4,
       ACT_GELU_TANH_GATED = 5 };

static inline int gated(int act) { return act == ACT_SILU_GATED || act == ACT_GELU_TANH_GATED; }

typedef struct {
    int32_t n_layers, hidden, n_head, n_kv, head_dim, inter, max_seq, norm, act, rope, kv_bf16;
    float eps, attn_scale;
    const layer_t *layers;
    const float *normf_w, *normf_b; /* the final norm */
    qmat_t head;                     /* lm_head: hidden -> vocab */
    float attn_softcap, final_softcap; /* tanh caps of the scores / logits (Gemma 2); 0: none */
} model_t;

/* Every struct's size and every field's offset, by name: decode.py compares them with its ctypes
 * mirrors when the library loads, so a field changed on one side only disables the native step
 * (with the reason) instead of being read as garbage. List a new field here too. */
typedef struct {
    const char *name;
    int64_t value;
} layout_entry_t;

#define SIZE(s) {#s, (int64_t)sizeof(s)}
#define OFF(s, f) {#s "." #f, (int64_t)offsetof(s, f)}
static const layout_entry_t LAYOUT[] = {
    SIZE(qmat_t), OFF(qmat_t, w), OFF(qmat_t, sm), OFF(qmat_t, bias), OFF(qmat_t, n),
    OFF(qmat_t, k), OFF(qmat_t, kind), OFF(qmat_t, bits),
    SIZE(layer_t), OFF(layer_t, norm1_w), OFF(layer_t, norm1_b), OFF(layer_t, norm2_w),
    OFF(layer_t, norm2_b), OFF(layer_t, qkv), OFF(layer_t, o), OFF(layer_t, up),
    OFF(layer_t, down), OFF(layer_t, k_cache), OFF(layer_t, v_cache), OFF(layer_t, q_norm_w),
    OFF(layer_t, k_norm_w), OFF(layer_t, post_attn_w), OFF(layer_t, post_mlp_w),
    OFF(layer_t, window), OFF(layer_t, local_rope),
    SIZE(model_t), OFF(model_t, n_layers), OFF(model_t, hidden), OFF(model_t, n_head),
    OFF(model_t, n_kv), OFF(model_t, head_dim), OFF(model_t, inter), OFF(model_t, max_seq),
    OFF(model_t, norm), OFF(model_t, act), OFF(model_t, rope), OFF(model_t, kv_bf16),
    OFF(model_t, eps), OFF(model_t, attn_scale), OFF(model_t, layers), OFF(model_t, normf_w),
    OFF(model_t, normf_b), OFF(model_t, head), OFF(model_t, attn_softcap),
    OFF(model_t, final_softcap),
};
#undef SIZE
#undef OFF

int64_t decode_layout_count(void) { return (int64_t)(sizeof LAYOUT / sizeof LAYOUT[0]); }

/* Entry i: its name ("qmat_t" for a size, "qmat_t.bits" for an offset) and value; NULL / -1
 * past the end. */
const char *decode_layout_name(int64_t i) {
    return i >= 0 && i < decode_layout_count() ? LAYOUT[i].name : NULL;
}

int64_t decode_layout_value(int64_t i) {
    return i >= 0 && i < decode_layout_count() ? LAYOUT[i].value : -1;
}

/* RMSNorm of n floats in place: v / rms(v) * w. */
static void rms_inplace(float *v, int n, const float *w, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    const float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) v[i] = w[i] * (v[i] * r);
}

static void norm(const model_t *m, const float *x, const float *w, const float *b, float *out) {
    const int C = m->hidden;
    if (m->norm == NORM_RMS) {
        double ss = 0.0;
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        const float r = (float)(1.0 / sqrt(ss / C + m->eps));
        for (int i = 0; i < C; i++) out[i] = w[i] * (x[i] * r);
    } else {
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < C; i++) mean += x[i];
        mean /= C;
        for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
        const float r = (float)(1.0 / sqrt(var / C + m->eps)), mu = (float)mean;
        for (int i = 0; i < C; i++) out[i] = (x[i] - mu) * r * w[i] + (b ? b[i] : 0.f);
    }
}

/* float32 y (N) = x (K) @ Wt (K, N): each thread owns a slice of y, kept in L1, and adds
 * x[k] * Wt[k, slice] for every k, so every weight row is read once, front to back. */
static void f32_cols(const float *x, const float *wt, float *y, int64_t N, int64_t K, int threads) {
#pragma omp parallel num_threads(threads)
    {
        int nt = 1, id = 0;
#ifdef _OPENMP
        nt = omp_get_num_threads(), id = omp_get_thread_num();
#endif
        int64_t per = ((N + nt - 1) / nt + 15) / 16 * 16;
        int64_t lo = id * per, hi = lo + per < N ? lo + per : N;
        if (lo < hi) {
            float *ys = y + lo;
            for (int64_t n = 0; n < hi - lo; n++) ys[n] = 0.f;
            for (int64_t k = 0; k < K; k++) {
                const float xk = x[k], *wr = wt + k * N + lo;
#pragma omp simd
                for (int64_t n = 0; n < hi - lo; n++) ys[n] += xk * wr[n];
            }
        }
    }
}

/* float32 y (N) = W (N, K) x: one dot product per row. */
static void f32_rows(const float *x, const float *w, float *y, int64_t N, int64_t K, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++) {
        const float *wr = w + n * K;
        float d = 0.f;
#pragma omp simd reduction(+ : d)
        for (int64_t k = 0; k < K; k++) d += x[k] * wr[k];
        y[n] = d;
    }
}

/* float32 y (N) = W (N, K) x with bfloat16 weights, widened in registers. */
static void bf16_rows(const float *x, const bf16_t *w, float *y, int64_t N, int64_t K, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < N; n++) {
        const bf16_t *wr = w + n * K;
        float d = 0.f;
        int64_t k = 0;
#if defined(__AVX512F__)
        __m512 acc = _mm512_setzero_ps();
        for (; k + 16 <= K; k += 16) {
            const __m256i u = _mm256_loadu_si256((const __m256i *)(wr + k));
            const __m512 wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(u), 16));
            acc = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + k), acc);
        }
        d = _mm512_reduce_add_ps(acc);
#endif
        for (; k < K; k++) d += x[k] * bf2f(wr[k]);
        y[n] = d;
    }
}

/* y (N) = W x (K) + bias, rows split across threads. */
static void qmat_apply(const qmat_t *w, const float *x, float *y, float *xsum, int threads) {
    const int64_t N = w->n, K = w->k;
    if (w->kind == MAT_F32_ROWS) {
        f32_rows(x, (const float *)w->w, y, N, K, threads);
    } else if (w->kind == MAT_F32_COLS) {
        f32_cols(x, (const float *)w->w, y, N, K, threads);
    } else if (w->kind == MAT_BF16_ROWS) {
        bf16_rows(x, (const bf16_t *)w->w, y, N, K, threads);
    } else if (w->kind == MAT_GGUF) {
        gg_apply(w->w, x, y, threads);
    } else {
        const int64_t rowbytes = w->bits == 8 ? K : K / 2, G = K / GS;
        const uint8_t *q = (const uint8_t *)w->w;
        group_sums(x, 1, K, xsum);
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t n = 0; n < N; n++) {
            if (w->bits == 8)
                q_row(x, q + n * rowbytes, w->sm + n * G * 2, xsum, y, n, N, K, 1, 8);
            else
                q_row(x, q + n * rowbytes, w->sm + n * G * 2, xsum, y, n, N, K, 1, 4);
        }
    }
    if (w->bias)
        for (int64_t n = 0; n < N; n++) y[n] += w->bias[n];
}

/* x * cos + rotate_half(x) * sin, rotate_half(x) = (x2, x1), its minus folded into sin. */
static void rope(float *v, int D, const float *cos_, const float *sin_) {
    float t[512];
    memcpy(t, v, sizeof(float) * D);
    const int h = D / 2;
    for (int i = 0; i < D; i++) v[i] = t[i] * cos_[i] + t[i < h ? i + h : i - h] * sin_[i];
}

static float activate(float u, int act) {
    switch (act) {
    case ACT_GELU_TANH:
        return 0.5f * u * (1.f + tanhf(0.7978845608028654f * (u + 0.044715f * u * u * u)));
    case ACT_GELU: return 0.5f * u * (1.f + erff(u * 0.7071067811865476f));
    case ACT_RELU: return u > 0.f ? u : 0.f;
    default: return u / (1.f + expf(-u)); /* silu */
    }
}

/* Scratch floats the step needs (the caller allocates them once). */
int64_t decode_scratch_floats(const model_t *m) {
    const int64_t qkv = (int64_t)(m->n_head + 2 * m->n_kv) * m->head_dim;
    const int64_t up = (gated(m->act) ? 2 : 1) * (int64_t)m->inter;
    const int64_t widest = m->inter > m->hidden ? m->inter : m->hidden;
    return 4 * (int64_t)m->hidden + qkv + (int64_t)m->n_head * m->head_dim + up + m->inter +
           (int64_t)m->n_head * m->max_seq + widest / GS + 64;
}

/* x (hidden): the token's embedding in, the last layer's output out (before the final norm).
 * logits (vocab): the next-token logits out (the final norm and lm_head applied to x).
 * pos: the cache position written; cos/sin: the rotary rows for pos (ignored without rope).
 * Returns 0, or -1 on bad arguments. */
int decode_step(const model_t *m, float *x, int64_t pos, const float *cos_, const float *sin_,
                const float *cos2, const float *sin2, float *scratch, float *logits,
                int threads) {
    const int C = m->hidden, H = m->n_head, KV = m->n_kv, D = m->head_dim, S = m->max_seq;
    if (pos < 0 || pos >= S || D > 512 || H % KV || threads < 1) return -1;
    float *h = scratch, *o = h + C, *dn = o + C;
    float *qkv = dn + C, *att = qkv + (int64_t)(H + 2 * KV) * D;
    float *up = att + (int64_t)H * D;
    float *a = up + (gated(m->act) ? 2 : 1) * (int64_t)m->inter;
    float *scores = a + m->inter, *xsum = scores + (int64_t)H * S;
    const int rep = H / KV;
    const float scale = m->attn_scale;

    for (int l = 0; l < m->n_layers; l++) {
        const layer_t *L = &m->layers[l];
        /* attention */
        norm(m, x, L->norm1_w, L->norm1_b, h);
        qmat_apply(&L->qkv, h, qkv, xsum, threads);
        if (L->q_norm_w)
            for (int j = 0; j < H; j++) rms_inplace(qkv + (int64_t)j * D, D, L->q_norm_w, m->eps);
        if (L->k_norm_w)
            for (int j = H; j < H + KV; j++)
                rms_inplace(qkv + (int64_t)j * D, D, L->k_norm_w, m->eps);
        if (m->rope) {
            const float *c = L->local_rope ? cos2 : cos_, *sn = L->local_rope ? sin2 : sin_;
            for (int j = 0; j < H + KV; j++) rope(qkv + (int64_t)j * D, D, c, sn);
        }
        const int64_t t0 = L->window > 0 && pos >= L->window ? pos - L->window + 1 : 0;
        const float cap = m->attn_softcap;
        for (int j = 0; j < KV; j++) {
            const int64_t at = ((int64_t)j * S + pos) * D;
            const float *kn = qkv + (int64_t)(H + j) * D, *vn = qkv + (int64_t)(H + KV + j) * D;
            if (m->kv_bf16) {
                for (int i = 0; i < D; i++) {
                    ((bf16_t *)L->k_cache)[at + i] = f2bf(kn[i]);
                    ((bf16_t *)L->v_cache)[at + i] = f2bf(vn[i]);
                }
            } else {
                memcpy((float *)L->k_cache + at, kn, sizeof(float) * D);
                memcpy((float *)L->v_cache + at, vn, sizeof(float) * D);
            }
        }
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int hd = 0; hd < H; hd++) {
            const float *q = qkv + (int64_t)hd * D;
            const int64_t base = (int64_t)(hd / rep) * S * D;
            const float *K = (const float *)L->k_cache + base, *V = (const float *)L->v_cache + base;
            const bf16_t *Kb = (const bf16_t *)L->k_cache + base;
            const bf16_t *Vb = (const bf16_t *)L->v_cache + base;
            float *s = scores + (int64_t)hd * S, mx = -INFINITY;
            for (int64_t t = t0; t <= pos; t++) {
                float d = 0.f;
                if (m->kv_bf16) {
#pragma omp simd reduction(+ : d)
                    for (int i = 0; i < D; i++) d += q[i] * bf2f(Kb[t * D + i]);
                } else {
#pragma omp simd reduction(+ : d)
                    for (int i = 0; i < D; i++) d += q[i] * K[t * D + i];
                }
                s[t] = cap > 0.f ? tanhf(d * scale / cap) * cap : d * scale;
                mx = s[t] > mx ? s[t] : mx;
            }
            float sum = 0.f;
            for (int64_t t = t0; t <= pos; t++) sum += (s[t] = expf(s[t] - mx));
            float *out = att + (int64_t)hd * D;
            for (int i = 0; i < D; i++) out[i] = 0.f;
            for (int64_t t = t0; t <= pos; t++) {
                const float p = s[t] / sum;
                if (m->kv_bf16) {
#pragma omp simd
                    for (int i = 0; i < D; i++) out[i] += p * bf2f(Vb[t * D + i]);
                } else {
#pragma omp simd
                    for (int i = 0; i < D; i++) out[i] += p * V[t * D + i];
                }
            }
        }
        qmat_apply(&L->o, att, o, xsum, threads);
        if (L->post_attn_w) rms_inplace(o, C, L->post_attn_w, m->eps);
        for (int i = 0; i < C; i++) x[i] += o[i];
        /* MLP */
        norm(m, x, L->norm2_w, L->norm2_b, h);
        qmat_apply(&L->up, h, up, xsum, threads);
        const int I = m->inter;
        if (m->act == ACT_SILU_GATED)
            for (int i = 0; i < I; i++) a[i] = activate(up[i], ACT_SILU) * up[I + i];
        else if (m->act == ACT_GELU_TANH_GATED)
            for (int i = 0; i < I; i++) a[i] = activate(up[i], ACT_GELU_TANH) * up[I + i];
        else
            for (int i = 0; i < I; i++) a[i] = activate(up[i], m->act);
        qmat_apply(&L->down, a, dn, xsum, threads);
        if (L->post_mlp_w) rms_inplace(dn, C, L->post_mlp_w, m->eps);
        for (int i = 0; i < C; i++) x[i] += dn[i];
    }
    norm(m, x, m->normf_w, m->normf_b, h);
    qmat_apply(&m->head, h, logits, xsum, threads);
    if (m->final_softcap > 0.f) {
        const float fc = m->final_softcap;
        for (int64_t i = 0; i < m->head.n; i++) logits[i] = tanhf(logits[i] / fc) * fc;
    }
    return 0;
}
