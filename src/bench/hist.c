/* Log-linear latency histogram (see hist.h). */
#include "bench/hist.h"

#include <math.h>
#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    unsigned e;

    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    return BENCH_HIST_SUB + (e - BENCH_HIST_SUB_BITS) * BENCH_HIST_SUB +
           (unsigned)((v >> (e - BENCH_HIST_SUB_BITS)) & (BENCH_HIST_SUB - 1));
}

/* Midpoint of bucket i, the inverse of bucket_of(). */
static uint64_t bucket_value(unsigned i)
{
    unsigned e, mantissa;
    uint64_t low, width;

    if (i < BENCH_HIST_SUB)
        return i;
    e = (i - BENCH_HIST_SUB) / BENCH_HIST_SUB + BENCH_HIST_SUB_BITS;
    mantissa = (i - BENCH_HIST_SUB) % BENCH_HIST_SUB;
    width = UINT64_C(1) << (e - BENCH_HIST_SUB_BITS);
    low = (UINT64_C(1) << e) + (uint64_t)mantissa * width;
    return low + width / 2;
}

void bench_hist_reset(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void bench_hist_record(struct bench_hist *h, uint64_t ns)
{
    h->buckets[bucket_of(ns)]++;
    h->count++;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
    uint64_t rank, seen = 0;
    uint64_t v;

    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* The small subtraction keeps 99.9% of 1000 at rank 999 despite
     * rounding in the product. */
    rank = (uint64_t)ceil(p / 100.0 * (double)h->count - 1e-6);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            v = bucket_value(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}
