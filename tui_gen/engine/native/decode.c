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
 * Only the embedding lookup stays in torch. `decode_rows` steps M rows of a batch at once (each
 * weight read once for all of them); prompts and other dtypes use torch.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "frows.h"
#include "qrows.h"
#include "vmath.h"

enum { MAT_QUANT = 0, MAT_F32_ROWS = 1, MAT_F32_COLS = 2, MAT_BF16_ROWS = 3, MAT_GGUF = 4 };

/* MAT_GGUF: `w` is a gg_mat_t (ggml_matmul.c): GGUF blocks, as the file stores them or x4 */
int gg_apply_rows(const void *mat, const float *x, int64_t M, float *y, int threads);

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
    const float *norm1_w, *norm1_b; /* b NULL for RMSNorm or a LayerNorm without bias; w NULL:
                                       no norm before attention / MLP (OLMo-2's post-norms) */
    const float *norm2_w, *norm2_b;
    qmat_t qkv, o, up, down; /* up: gate and up fused (gated MLP) or fc */
    void *k_cache, *v_cache; /* the layer's cache (rows, n_kv, max_seq, head_dim), float32 or
                                (kv_bf16) bfloat16: row r at r * n_kv * max_seq * head_dim */
    const float *q_norm_w, *k_norm_w; /* RMSNorm of q and k before RoPE, or NULL: per head
                                         (head_dim weights), or (qk_norm_whole) over the whole
                                         projection (H * head_dim, KV * head_dim: OLMo-2) */
    const float *post_attn_w, *post_mlp_w; /* RMSNorm of the attention / MLP output before its
                                              residual add (Gemma's sandwich norms, OLMo-2's
                                              post-norms), or NULL */
    int64_t window;     /* sliding window: attend to the last `window` positions; 0: to all */
    int32_t local_rope; /* 1: rotate with the second rotary table (Gemma 3's sliding layers) */
    int32_t no_rope;    /* 1: no rotary embedding in this layer (SmolLM3's NoPE layers) */
    int32_t qk_norm_whole;
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
    float residual_scale; /* multiplies each attention / MLP output before its residual add
                             (Granite's residual multiplier; 1 elsewhere) */
    float logits_div;     /* the logits are divided by it (Granite's logits scaling; 1) */
    int32_t rotary_dim;   /* RoPE on the first rotary_dim dims of each head (Phi-3's partial
                             rotary); the cos/sin rows are that long */
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
    OFF(layer_t, window), OFF(layer_t, local_rope), OFF(layer_t, no_rope),
    OFF(layer_t, qk_norm_whole),
    SIZE(model_t), OFF(model_t, n_layers), OFF(model_t, hidden), OFF(model_t, n_head),
    OFF(model_t, n_kv), OFF(model_t, head_dim), OFF(model_t, inter), OFF(model_t, max_seq),
    OFF(model_t, norm), OFF(model_t, act), OFF(model_t, rope), OFF(model_t, kv_bf16),
    OFF(model_t, eps), OFF(model_t, attn_scale), OFF(model_t, layers), OFF(model_t, normf_w),
    OFF(model_t, normf_b), OFF(model_t, head), OFF(model_t, attn_softcap),
    OFF(model_t, final_softcap), OFF(model_t, residual_scale), OFF(model_t, logits_div),
    OFF(model_t, rotary_dim),
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
    if (!w) {
        memcpy(out, x, sizeof(float) * C);
    } else if (m->norm == NORM_RMS) {
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

/* y (N) = W x (K) + bias, rows split across threads. */
static void qmat_apply(const qmat_t *w, const float *x, float *y, float *xsum, int threads) {
    const int64_t N = w->n, K = w->k;
    if (w->kind == MAT_F32_ROWS || w->kind == MAT_BF16_ROWS) {
        /* sixteen weight rows at a time even for one activation row: 20% faster than a row
         * at a time on SmolLM2's float32 weights read from memory (two threads or one) */
        float_rows_m(x, 1, w->w, y, N, K, w->kind == MAT_BF16_ROWS, threads);
    } else if (w->kind == MAT_F32_COLS) {
        f32_cols(x, (const float *)w->w, y, N, K, threads);
    } else if (w->kind == MAT_GGUF) {
        gg_apply_rows(w->w, x, 1, y, threads);
    } else {
        group_sums(x, 1, K, xsum);
        q_matvec(x, (const uint8_t *)w->w, w->sm, xsum, y, N, K, w->bits, threads);
    }
    if (w->bias)
        for (int64_t n = 0; n < N; n++) y[n] += w->bias[n];
}

/* y (M, N) = x (M, K) W^T + bias for M rows, reading every weight once for all of them (the
 * rows of a batched step): each weight row (or column block) is loaded from memory once and
 * reused from the cache for every x row. M = 1 is qmat_apply; a kind without a rows kernel
 * here runs qmat_apply row by row. */
static void qmat_apply_rows(const qmat_t *w, const float *x, int64_t M, float *y, float *xsum,
                            int threads) {
    if (M == 1) {
        qmat_apply(w, x, y, xsum, threads);
        return;
    }
    const int64_t N = w->n, K = w->k;
    if (w->kind == MAT_QUANT) {
        const int64_t rowbytes = w->bits == 8 ? K : K / 2, G = K / GS;
        const uint8_t *q = (const uint8_t *)w->w;
        group_sums(x, M, K, xsum);
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t n = 0; n < N; n++) {
            const uint8_t *qr = q + n * rowbytes;
            const half *smr = w->sm + n * G * 2;
            for (int64_t m0 = 0; m0 < M; m0 += MAX_M) {
                const int64_t mm = M - m0 < MAX_M ? M - m0 : MAX_M;
                const float *xm = x + m0 * K, *xs = xsum + m0 * G;
                float *ym = y + m0 * N;
#define Q_ROWS(MM)                                                                             \
    if (w->bits == 8)                                                                          \
        q_row(xm, qr, smr, xs, ym, n, N, K, MM, 8);                                            \
    else                                                                                       \
        q_row(xm, qr, smr, xs, ym, n, N, K, MM, 4);
                switch (mm) {
                case 8: Q_ROWS(8) break;
                case 4: Q_ROWS(4) break;
                case 2: Q_ROWS(2) break;
                default: Q_ROWS((int)mm) break;
                }
#undef Q_ROWS
            }
        }
    } else if (w->kind == MAT_F32_ROWS || w->kind == MAT_BF16_ROWS) {
        float_rows_m(x, M, w->w, y, N, K, w->kind == MAT_BF16_ROWS, threads);
    } else if (w->kind == MAT_GGUF) {
        /* each block of weights decoded once for up to 8 rows (ggml_rows.h's gg_row) */
        gg_apply_rows(w->w, x, M, y, threads);
    } else if (w->kind == MAT_F32_COLS) {
        const float *wt = (const float *)w->w;
#pragma omp parallel num_threads(threads)
        {
            int nt = 1, id = 0;
#ifdef _OPENMP
            nt = omp_get_num_threads(), id = omp_get_thread_num();
#endif
            int64_t per = ((N + nt - 1) / nt + 15) / 16 * 16;
            int64_t lo = id * per, hi = lo + per < N ? lo + per : N;
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = lo; n < hi; n++) y[m * N + n] = 0.f;
            for (int64_t k = 0; k < K && lo < hi; k++) {
                const float *wr = wt + k * N + lo;
                for (int64_t m = 0; m < M; m++) {
                    const float xk = x[m * K + k];
                    float *ys = y + m * N + lo;
#pragma omp simd
                    for (int64_t n = 0; n < hi - lo; n++) ys[n] += xk * wr[n];
                }
            }
        }
    } else {
        for (int64_t m = 0; m < M; m++) qmat_apply(w, x + m * K, y + m * N, xsum, threads);
        return; /* qmat_apply added the bias */
    }
    if (w->bias)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) y[m * N + n] += w->bias[n];
}

/* x * cos + rotate_half(x) * sin over the first R dims of a head (the rest pass through),
 * rotate_half(x) = (x2, x1), its minus folded into sin. */
static void rope(float *v, int R, const float *cos_, const float *sin_) {
    float t[512];
    memcpy(t, v, sizeof(float) * R);
    const int h = R / 2;
    for (int i = 0; i < R; i++) v[i] = t[i] * cos_[i] + t[i < h ? i + h : i - h] * sin_[i];
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

/* a (I) = act(u[0..I)), times u[I..2I) for a gated MLP: eight lanes at a time (vmath.h) for
 * the tanh GELU and SiLU, libm for the rest and the tails. */
static void activation(int act, const float *u, int64_t I, float *a) {
    const int g = gated(act);
    const int base = act == ACT_SILU_GATED ? ACT_SILU : act == ACT_GELU_TANH_GATED ? ACT_GELU_TANH : act;
    int64_t i = 0;
    if (base == ACT_GELU_TANH || base == ACT_SILU) {
        for (; i + 8 <= I; i += 8) {
            const f8 v = f8_load(u + i);
            f8 y = base == ACT_SILU ? silu8(v) : gelu_tanh8(v);
            if (g) y *= f8_load(u + I + i);
            f8_store(a + i, y);
        }
    }
    for (; i < I; i++) a[i] = activate(u[i], base) * (g ? u[I + i] : 1.f);
}

/* a (M, I) = act(u[m, 0..I)) * u[m, I..2I) for the M rows of a prompt's fused gate|up
 * product (models' gated MLPs outside the decode step): one pass over u where torch makes
 * three (the activation, a temporary, the product). act: ACT_SILU_GATED or
 * ACT_GELU_TANH_GATED. Returns 0, or -1 on bad arguments. */
int gated_activation_rows(int act, const float *u, int64_t M, int64_t I, float *a, int threads) {
    if (!gated(act) || !u || !a || M < 0 || I < 1 || threads < 1) return -1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < M; r++) activation(act, u + r * 2 * I, I, a + r * I);
    return 0;
}

/* Scratch floats a step of M rows needs (the caller allocates them once per M). */
int64_t decode_rows_scratch_floats(const model_t *m, int64_t M) {
    const int64_t qkv = (int64_t)(m->n_head + 2 * m->n_kv) * m->head_dim;
    const int64_t up = (gated(m->act) ? 2 : 1) * (int64_t)m->inter;
    const int64_t hd = (int64_t)m->n_head * m->head_dim;
    int64_t widest = m->inter > m->hidden ? m->inter : m->hidden;
    widest = hd > widest ? hd : widest;
    const int64_t row = 3 * (int64_t)m->hidden + qkv + hd + up + m->inter +
                        (int64_t)m->n_head * m->max_seq + widest / GS;
    return M * row + 64;
}

/* Scratch floats the one-row step needs. */
int64_t decode_scratch_floats(const model_t *m) { return decode_rows_scratch_floats(m, 1); }

/* One decode step for M rows of a batch: the token of every row at cache column `col`.
 *
 * x (M, hidden): the rows' embeddings in, the last layer's outputs out.
 * logits (M, vocab): the next-token logits out.
 * The layers' caches are (M, n_kv, max_seq, head_dim): row r's keys and values start at
 * r * n_kv * max_seq * head_dim, and every row writes column `col`.
 * cos/sin (M, R) (and cos2/sin2 for local_rope layers): each row's rotary row for its own
 * position, which may differ from `col` (left-padded rows count from their first real token).
 * key_padding (M, kp_stride) bytes or NULL: 0 marks a padding column a row does not attend to
 * (its own new column is always attended, as in models/common.py's masks).
 * Every weight matrix is read once for all M rows (qmat_apply_rows): the point of batching.
 * Returns 0, or -1 on bad arguments. */
int decode_rows(const model_t *m, int64_t M, float *x, int64_t col, const float *cos_,
                const float *sin_, const float *cos2, const float *sin2,
                const uint8_t *key_padding, int64_t kp_stride, float *scratch, float *logits,
                int threads) {
    const int C = m->hidden, H = m->n_head, KV = m->n_kv, D = m->head_dim, S = m->max_seq;
    const int R = m->rotary_dim > 0 ? m->rotary_dim : D;
    if (M < 1 || col < 0 || col >= S || D > 512 || R > D || R % 2 || H % KV || threads < 1)
        return -1;
    if (key_padding && kp_stride <= col) return -1;
    const int64_t QKV = (int64_t)(H + 2 * KV) * D, HD = (int64_t)H * D, I = m->inter;
    const int64_t UP = (gated(m->act) ? 2 : 1) * I;
    const int64_t rowcache = (int64_t)KV * S * D; /* one batch row of one layer's cache */
    float *h = scratch, *o = h + M * C, *dn = o + M * C;
    float *qkv = dn + M * C, *att = qkv + M * QKV;
    float *up = att + M * HD, *a = up + M * UP;
    float *scores = a + M * I, *xsum = scores + M * H * S;
    const int rep = H / KV;
    const float scale = m->attn_scale, rs = m->residual_scale, cap = m->attn_softcap;

    for (int l = 0; l < m->n_layers; l++) {
        const layer_t *L = &m->layers[l];
        /* attention */
        for (int64_t r = 0; r < M; r++) norm(m, x + r * C, L->norm1_w, L->norm1_b, h + r * C);
        qmat_apply_rows(&L->qkv, h, M, qkv, xsum, threads);
        for (int64_t r = 0; r < M; r++) {
            float *qr = qkv + r * QKV;
            if (L->qk_norm_whole) {
                if (L->q_norm_w) rms_inplace(qr, H * D, L->q_norm_w, m->eps);
                if (L->k_norm_w) rms_inplace(qr + HD, KV * D, L->k_norm_w, m->eps);
            } else {
                if (L->q_norm_w)
                    for (int j = 0; j < H; j++)
                        rms_inplace(qr + (int64_t)j * D, D, L->q_norm_w, m->eps);
                if (L->k_norm_w)
                    for (int j = H; j < H + KV; j++)
                        rms_inplace(qr + (int64_t)j * D, D, L->k_norm_w, m->eps);
            }
            if (m->rope && !L->no_rope) {
                const float *c = (L->local_rope ? cos2 : cos_) + r * R;
                const float *sn = (L->local_rope ? sin2 : sin_) + r * R;
                for (int j = 0; j < H + KV; j++) rope(qr + (int64_t)j * D, R, c, sn);
            }
            for (int j = 0; j < KV; j++) {
                const int64_t at = r * rowcache + ((int64_t)j * S + col) * D;
                const float *kn = qr + (int64_t)(H + j) * D, *vn = qr + (int64_t)(H + KV + j) * D;
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
        }
        const int64_t t0 = L->window > 0 && col >= L->window ? col - L->window + 1 : 0;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t rh = 0; rh < M * H; rh++) {
            const int64_t r = rh / H;
            const int hd = (int)(rh % H);
            const float *q = qkv + r * QKV + (int64_t)hd * D;
            const uint8_t *kp = key_padding ? key_padding + r * kp_stride : NULL;
            const int64_t base = r * rowcache + (int64_t)(hd / rep) * S * D;
            const float *K = (const float *)L->k_cache + base, *V = (const float *)L->v_cache + base;
            const bf16_t *Kb = (const bf16_t *)L->k_cache + base;
            const bf16_t *Vb = (const bf16_t *)L->v_cache + base;
            float *s = scores + rh * S, mx = -INFINITY;
            int64_t t = t0;
#if defined(__AVX512F__)
            const void *keys = m->kv_bf16 ? (const void *)Kb : (const void *)K;
            const void *values = m->kv_bf16 ? (const void *)Vb : (const void *)V;
            while (t + 16 <= col + 1 && scores16(q, keys, t, D, m->kv_bf16, s + t))
                t += 16; /* sixteen keys at a time (frows.h) */
#endif
            for (; t <= col; t++)
                s[t] = m->kv_bf16 ? vdot(q, Kb + t * D, D, 1) : vdot(q, K + t * D, D, 0);
            for (t = t0; t <= col; t++) {
                if (kp && !kp[t] && t != col) {
                    s[t] = -INFINITY; /* a padding column: exp gives 0 */
                    continue;
                }
                const float d = s[t];
                s[t] = cap > 0.f ? tanhf(d * scale / cap) * cap : d * scale;
                mx = s[t] > mx ? s[t] : mx;
            }
            float sum = softmax_numerators(s + t0, col + 1 - t0, mx);
            float *out = att + r * HD + (int64_t)hd * D;
            const float inv = 1.f / sum;
            for (t = t0; t <= col; t++) s[t] *= inv;
#if defined(__AVX512F__)
            if (weighted_values(s, values, t0, col + 1, D, m->kv_bf16, out)) continue;
#endif
            for (int i = 0; i < D; i++) out[i] = 0.f;
            for (t = t0; t <= col; t++) {
                const float p = s[t];
                if (p == 0.f) continue;
                if (m->kv_bf16) {
#pragma omp simd
                    for (int i = 0; i < D; i++) out[i] += p * bf2f(Vb[t * D + i]);
                } else {
#pragma omp simd
                    for (int i = 0; i < D; i++) out[i] += p * V[t * D + i];
                }
            }
        }
        qmat_apply_rows(&L->o, att, M, o, xsum, threads);
        for (int64_t r = 0; r < M; r++) {
            float *orow = o + r * C, *xr = x + r * C;
            if (L->post_attn_w) rms_inplace(orow, C, L->post_attn_w, m->eps);
            for (int i = 0; i < C; i++) xr[i] += orow[i] * rs;
        }
        /* MLP */
        for (int64_t r = 0; r < M; r++) norm(m, x + r * C, L->norm2_w, L->norm2_b, h + r * C);
        qmat_apply_rows(&L->up, h, M, up, xsum, threads);
        for (int64_t r = 0; r < M; r++) activation(m->act, up + r * UP, I, a + r * I);
        qmat_apply_rows(&L->down, a, M, dn, xsum, threads);
        for (int64_t r = 0; r < M; r++) {
            float *d = dn + r * C, *xr = x + r * C;
            if (L->post_mlp_w) rms_inplace(d, C, L->post_mlp_w, m->eps);
            for (int i = 0; i < C; i++) xr[i] += d[i] * rs;
        }
    }
    for (int64_t r = 0; r < M; r++) norm(m, x + r * C, m->normf_w, m->normf_b, h + r * C);
    qmat_apply_rows(&m->head, h, M, logits, xsum, threads);
    const int64_t NV = M * m->head.n;
    if (m->logits_div != 1.f)
        for (int64_t i = 0; i < NV; i++) logits[i] /= m->logits_div;
    if (m->final_softcap > 0.f) {
        const float fc = m->final_softcap;
        for (int64_t i = 0; i < NV; i++) logits[i] = tanhf(logits[i] / fc) * fc;
    }
    return 0;
}

/* `rounds` empty parallel regions on `threads` threads: what one fork/join costs right now.
 * The thread governor (engine/threads.py) times this before it tries steps on more threads:
 * with another process holding a core, each region waits milliseconds for a time slice, and a
 * step runs about 7 per layer, so a probe step can take a second; this costs `rounds` regions.
 * Returns threads * rounds (each thread counts itself once per region). */
int decode_region_probe(int threads, int rounds) {
    int sum = 0;
    for (int r = 0; r < rounds; r++) {
#pragma omp parallel num_threads(threads) reduction(+ : sum)
        sum += 1;
    }
    return sum;
}

/* Free the calling thread's OpenMP thread pool: its worker threads exit.
 *
 * Why: libgomp counts the threads of every pool in the process, and once they outnumber the
 * CPUs, each waiting thread spins ~100 times instead of ~300,000 before it sleeps in the
 * kernel, so every parallel region pays a futex wake-up. A pool stays alive, docked, after the
 * regions that made it, so the thread that loaded a model (the main thread, a loader thread)
 * keeps one while another thread (the server's scheduler, the app's worker) decodes with its
 * own: on 2 CPUs that is 3 managed threads, and a 2-thread step measured 3.2-3.6 ms against
 * 0.42-0.62 ms once the loader's pool was freed. The thread that loaded calls this when it is
 * done; if it decodes later, its next region makes a new pool. Returns 0, or -1 when the
 * runtime has no omp_pause_resource_all (OpenMP 5.0; GCC's libgomp has it since GCC 9). */
#pragma weak omp_pause_resource_all /* OpenMP 5.0: absent from older runtimes */
int release_thread_pool(void) {
    if (!omp_pause_resource_all) return -1;
    return omp_pause_resource_all(omp_pause_soft);
}

/* The one-row step (batch 1): x (hidden), the cache's row 0 at position pos, cos/sin the
 * rotary rows of pos (ignored without rope), logits (vocab). Returns 0, or -1 on bad
 * arguments. */
int decode_step(const model_t *m, float *x, int64_t pos, const float *cos_, const float *sin_,
                const float *cos2, const float *sin2, float *scratch, float *logits,
                int threads) {
    return decode_rows(m, 1, x, pos, cos_, sin_, cos2, sin2, NULL, 0, scratch, logits, threads);
}
