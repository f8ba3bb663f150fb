/* Prefetching for the one-row products that read four weight rows at a time (ggml_rows.h's
 * gg_rows_m1, qrows.h's q_rows4_m1).
 *
 * Why: four rows read block by block are four short streams one row apart, which the hardware
 * prefetcher follows poorly, and prefetching a whole group of rows at once stalls on the line
 * fill buffers (Gemma 3's 178 MB Q8_0 head on one thread: 9.0 ms with a per-row prefetch,
 * 12.6 ms four rows at a time without this, 6.8-7.5 ms with it). So the group ROWS_AHEAD rows
 * ahead is prefetched a slice per block, spread over the group's work.
 */
#ifndef TUI_GEN_PREFETCH_H
#define TUI_GEN_PREFETCH_H

#include <stdint.h>

#ifndef ROWS_AHEAD
#define ROWS_AHEAD 8 /* measured against 16 and 32 on Gemma 3's step: 8 was the fastest */
#endif

/* What to prefetch while group g (of `per` rows of `rowbytes`, `groups` in all, starting at
 * w) computes: the group ROWS_AHEAD rows further on, the last group at the end. */
static inline const uint8_t *group_ahead(const uint8_t *w, int64_t g, int per, int64_t groups,
                                         int64_t rowbytes) {
    const int64_t ahead = g * per + ROWS_AHEAD, last = (groups - 1) * per;
    return w + (ahead < last ? ahead : last) * rowbytes;
}

/* Slice i of n of the `span` bytes at pf, into the cache: called once per block i of n. */
static inline __attribute__((always_inline)) void prefetch_slice(const uint8_t *pf, int64_t i,
                                                                 int64_t n, int64_t span) {
    for (int64_t at = i * span / n & ~(int64_t)63; at < (i + 1) * span / n; at += 64)
        __builtin_prefetch(pf + at, 0, 3);
}

#endif
