/* TCP reassembly of one flow direction with a bounded out-of-order buffer. */
#include <string.h>

#include "core/alloc.h"
#include "passive/reasm.h"

struct reasm_seg {
    struct reasm_seg *next;
    int64_t ts_us;             /* capture time when buffered */
    uint32_t seq;
    uint32_t len;
    uint8_t data[];
};

/* Signed distance from b to a in sequence space (RFC 793 modular order). */
static int32_t seq_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

static size_t seg_cost(size_t len)
{
    return sizeof(struct reasm_seg) + len;
}

void reasm_init(struct reasm_dir *d)
{
    memset(d, 0, sizeof *d);
}

void reasm_sync(struct reasm_dir *d, uint32_t next_seq)
{
    d->synced = true;
    d->next_seq = next_seq;
}

static void seg_release(struct reasm_dir *d, struct reasm_pool *pool, struct reasm_seg *s)
{
    size_t cost = seg_cost(s->len);

    d->ooo_bytes -= cost;
    d->ooo_count--;
    pool->used -= cost;
    vigil_free(s);
}

/* Delivers the part of [seq, seq+len) at or after next_seq; returns false
 * when all of it was delivered before. */
static bool deliver_from(struct reasm_dir *d, uint32_t seq, const uint8_t *data, size_t len,
                         bool gap, reasm_deliver_fn fn, void *ctx)
{
    int32_t behind = seq_diff(d->next_seq, seq);

    if (behind < 0 || (size_t)behind >= len)
        return false;
    fn(ctx, data + behind, len - (size_t)behind, gap);
    d->next_seq = seq + (uint32_t)len;
    return true;
}

/* Delivers buffered segments that are now in order. */
static void drain(struct reasm_dir *d, struct reasm_pool *pool, bool gap, reasm_deliver_fn fn,
                  void *ctx)
{
    while (d->ooo != NULL && seq_diff(d->ooo->seq, d->next_seq) <= 0) {
        struct reasm_seg *s = d->ooo;

        d->ooo = s->next;
        if (deliver_from(d, s->seq, s->data, s->len, gap, fn, ctx))
            gap = false;
        else
            pool->retransmissions++;
        seg_release(d, pool, s);
    }
}

/* Skips the hole before the first buffered segment and delivers from there. */
static void skip_hole(struct reasm_dir *d, struct reasm_pool *pool, reasm_deliver_fn fn, void *ctx)
{
    pool->gaps++;
    d->next_seq = d->ooo->seq;
    drain(d, pool, true, fn, ctx);
}

static bool fits(const struct reasm_dir *d, const struct reasm_pool *pool, size_t len)
{
    size_t cost = seg_cost(len);

    return d->ooo_count < pool->dir_segments && d->ooo_bytes + cost <= pool->dir_cap &&
           pool->used + cost <= pool->total_cap;
}

/* Inserts a copy of the segment in sequence order. A segment that starts
 * where a buffered one does and is no longer than it is a retransmission. */
static void insert(struct reasm_dir *d, struct reasm_pool *pool, int64_t now_us, uint32_t seq,
                   const uint8_t *data, size_t len)
{
    struct reasm_seg **at = &d->ooo, *s;

    while (*at != NULL && seq_diff((*at)->seq, seq) < 0)
        at = &(*at)->next;
    if (*at != NULL && (*at)->seq == seq && (*at)->len >= len) {
        pool->retransmissions++;
        return;
    }
    s = vigil_malloc(seg_cost(len));
    if (s == NULL) {
        pool->gaps++; /* the bytes are lost; the stream resynchronizes later */
        return;
    }
    s->ts_us = now_us;
    s->seq = seq;
    s->len = (uint32_t)len;
    memcpy(s->data, data, len);
    s->next = *at;
    *at = s;
    d->ooo_bytes += seg_cost(len);
    d->ooo_count++;
    pool->used += seg_cost(len);
    if (pool->used > pool->peak)
        pool->peak = pool->used;
}

/* Skips holes whose data has been awaited longer than the pool allows. */
static void expire(struct reasm_dir *d, struct reasm_pool *pool, int64_t now_us,
                   reasm_deliver_fn fn, void *ctx)
{
    while (d->ooo != NULL && now_us - d->ooo->ts_us > pool->hold_us)
        skip_hole(d, pool, fn, ctx);
}

void reasm_push(struct reasm_dir *d, struct reasm_pool *pool, int64_t now_us, uint32_t seq,
                const uint8_t *data, size_t len, reasm_deliver_fn fn, void *ctx)
{
    expire(d, pool, now_us, fn, ctx);
    if (len == 0)
        return;
    if (!d->synced) {
        reasm_sync(d, seq);
        deliver_from(d, seq, data, len, true, fn, ctx);
        drain(d, pool, false, fn, ctx);
        return;
    }
    for (;;) {
        int32_t ahead = seq_diff(seq, d->next_seq);

        if (ahead <= 0) {
            if (deliver_from(d, seq, data, len, false, fn, ctx)) {
                if (ahead < 0)
                    pool->overlaps++;
                drain(d, pool, false, fn, ctx);
            } else {
                pool->retransmissions++;
            }
            return;
        }
        if (fits(d, pool, len)) {
            insert(d, pool, now_us, seq, data, len);
            return;
        }
        if (d->ooo == NULL || seq_diff(d->ooo->seq, seq) > 0) {
            /* Nothing buffered before this segment: it starts the stream again. */
            pool->gaps++;
            d->next_seq = seq;
            deliver_from(d, seq, data, len, true, fn, ctx);
            drain(d, pool, false, fn, ctx);
            return;
        }
        skip_hole(d, pool, fn, ctx);
    }
}

void reasm_flush(struct reasm_dir *d, struct reasm_pool *pool, reasm_deliver_fn fn, void *ctx)
{
    while (d->ooo != NULL)
        skip_hole(d, pool, fn, ctx);
}

void reasm_clear(struct reasm_dir *d, struct reasm_pool *pool)
{
    while (d->ooo != NULL) {
        struct reasm_seg *s = d->ooo;

        d->ooo = s->next;
        seg_release(d, pool, s);
    }
}
