/* Latency histogram with log-linear buckets over nanoseconds: exact below
 * 128 ns, then 128 buckets per power of two, so a reported percentile is
 * within 0.8% of the recorded value. */
#ifndef VIGIL_BENCH_HIST_H
#define VIGIL_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_BUCKETS ((64u - BENCH_HIST_SUB_BITS + 1u) * BENCH_HIST_SUB)

/* About 59 KiB: embed one per thread or step, not one per connection. */
struct bench_hist {
    uint64_t count;
    uint64_t min;
    uint64_t max;
    uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);
/* Returns the value at percentile p (0 to 100) as the midpoint of its
 * bucket, the exact maximum for p >= 100, and 0 for an empty histogram. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);

#endif
