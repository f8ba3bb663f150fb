/* Per-token probabilities of one decode step (engine/logprobs.py): for each row of logits, its
 * log-sum-exp and its n largest entries, in one pass over the row plus one vectorised sum.
 *
 * Why in C: torch does this as log_softmax + topk + two tolist calls, about 30 us of dispatch
 * on a 4k-vocabulary row that takes 2 us to read, and a small model's whole decode step is
 * ~2 ms; the C call keeps `logprobs=N` under 5% of a step (issue #16).
 *
 * Values match torch.log_softmax within 1e-6 relative (exp is vmath.h's eight-lane polynomial,
 * float32 accumulation in 8 lanes); ties keep the lowest id first, as
 * torch.argmax does, so the first id is the greedy token.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "vmath.h"

/* Put x[j] into the sorted top list (ids, vals) holding `have` of at most n entries. */
static inline void insert(float v, int64_t j, int n, int *have, int64_t *ids, float *vals) {
    if (v != v) return; /* NaN is never a top entry */
    int at = *have < n ? (*have)++ : n - 1;
    while (at > 0 && v > vals[at - 1]) { /* strict: an equal value keeps the lower id */
        vals[at] = vals[at - 1];
        ids[at] = ids[at - 1];
        at--;
    }
    vals[at] = v;
    ids[at] = j;
}

/* The n largest of x[0..V) (ids, values), sorted largest first. Once the list is full, eight
 * entries at a time are compared with its smallest: nearly every block has none larger. */
static void top_n(const float *x, int64_t V, int n, int64_t *ids, float *vals) {
    int have = 0;
    int64_t j = 0;
    for (; j < V && have < n; j++) insert(x[j], j, n, &have, ids, vals);
    for (; j + 8 <= V; j += 8) {
        f8 v, t;
        memcpy(&v, x + j, sizeof v);
        for (int l = 0; l < 8; l++) t[l] = vals[n - 1];
        i8 gt = v > t;
        i8 none = {0};
        if (memcmp(&gt, &none, sizeof gt) == 0) continue;
        for (int l = 0; l < 8; l++)
            if (x[j + l] > vals[n - 1]) insert(x[j + l], j + l, n, &have, ids, vals);
    }
    for (; j < V; j++)
        if (x[j] > vals[n - 1]) insert(x[j], j, n, &have, ids, vals);
    for (int i = have; i < n; i++) { /* fewer than n entries (a tiny vocabulary) */
        vals[i] = -INFINITY;
        ids[i] = -1;
    }
}

/* The largest of x[0..V) leaving NaN aside (-inf for none), and (*nan) whether one is there:
 * one `omp simd` pass (the library is built with -fopenmp). */
static float max_and_nan(const float *x, int64_t V, int *nan) {
    float mx = -INFINITY;
    int found = 0;
#pragma omp simd reduction(max : mx) reduction(| : found)
    for (int64_t j = 0; j < V; j++) {
        mx = x[j] > mx ? x[j] : mx;
        found |= x[j] != x[j];
    }
    *nan = found;
    return mx;
}

/* log(sum(exp(x))) of a row: NaN if it holds a NaN (as torch's log_softmax), -inf if every
 * entry is -inf. The sum goes eight lanes at a time: the lanes reorder the float sum, which
 * the 1e-6 above allows. */
static float log_sum_exp(const float *x, int64_t V) {
    int nan;
    const float mx = max_and_nan(x, V, &nan);
    if (nan) return NAN;
    if (!isfinite(mx)) return mx; /* all -inf: -inf; +inf: inf (values become NaN, as torch) */
    f8 acc = {0}, big = {0};
    const f8 m = {mx, mx, mx, mx, mx, mx, mx, mx};
    int64_t j = 0;
    for (; j + 8 <= V; j += 8) {
        f8 v;
        memcpy(&v, x + j, sizeof v);
        acc += exp8_nonpositive(v - m);
    }
    if (j < V) { /* the last partial vector, padded with -inf (exp gives ~0) */
        f8 v = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,
                -INFINITY, -INFINITY, -INFINITY, -INFINITY};
        memcpy(&v, x + j, (size_t)(V - j) * sizeof(float));
        big = exp8_nonpositive(v - m);
        for (int l = (int)(V - j); l < 8; l++) big[l] = 0.f;
    }
    acc += big;
    float sum = 0.f;
    for (int l = 0; l < 8; l++) sum += acc[l];
    return mx + logf(sum);
}

/* Rows of logits x (rows, V) with row stride `stride` floats. Writes, per row r, the n largest
 * log-probabilities vals[r*n..] (x - lse, largest first) and their ids, and lse[r]. */
int lp_top(const float *x, int64_t rows, int64_t V, int64_t stride, int32_t n, int64_t *ids,
           float *vals, float *lse) {
    if (rows < 0 || V < 1 || n < 1 || stride < V) return 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * stride;
        int64_t *ri = ids + r * n;
        float *rv = vals + r * n;
        top_n(row, V, n, ri, rv);
        float s = log_sum_exp(row, V);
        lse[r] = s;
        for (int i = 0; i < n; i++) rv[i] -= s;
    }
    return 0;
}

/* Per row of logits x (rows, V), `stride` floats apart: the index of its largest entry (the
 * first on ties) or of its first NaN, which is torch.argmax's answer: greedy decoding's token.
 *
 * Why: torch's CPU argmax is a scalar loop, ~230 us on Gemma 3's 262,144-entry row (2-3% of
 * its decode step); here one vectorised pass finds the maximum and a second the first index
 * holding it, sixteen entries at a time. */
int lp_argmax(const float *x, int64_t rows, int64_t V, int64_t stride, int64_t *out) {
    if (rows < 0 || V < 1 || stride < V) return 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * stride;
        int nan;
        const float mx = max_and_nan(row, V, &nan);
        int64_t j = 0;
        if (nan) {
            while (row[j] == row[j]) j++;
        } else {
            for (; j + 16 <= V; j += 16) {
                int hit = 0;
#pragma omp simd reduction(| : hit)
                for (int l = 0; l < 16; l++) hit |= row[j + l] == mx;
                if (hit) break;
            }
            while (row[j] != mx) j++; /* mx is one of the row's values: found by V */
        }
        out[r] = j;
    }
    return 0;
}
