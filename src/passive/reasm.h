/* TCP stream reassembly of one direction of a flow: in-order delivery by
 * sequence number, a bounded out-of-order buffer, trimming of
 * retransmissions and overlaps, and gaps when data is lost or over a cap. */
#ifndef VIGIL_PASSIVE_REASM_H
#define VIGIL_PASSIVE_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits and counters shared by every direction of every flow. */
struct reasm_pool {
    size_t dir_cap;            /* out-of-order bytes (data and headers) per direction */
    size_t dir_segments;       /* out-of-order segments per direction */
    size_t total_cap;          /* out-of-order bytes over all directions */
    int64_t hold_us;           /* longest wait for a missing segment, capture time */
    size_t used;               /* bytes held now */
    size_t peak;
    uint64_t gaps, retransmissions, overlaps;
};

struct reasm_seg;

struct reasm_dir {
    bool synced;               /* next_seq is known */
    uint32_t next_seq;         /* sequence number of the next byte to deliver */
    struct reasm_seg *ooo;     /* owned list, sorted by sequence number */
    size_t ooo_bytes;
    size_t ooo_count;
};

/* Receives bytes in stream order. gap is true when bytes before these were
 * lost, or when they are the first seen of a stream joined in the middle. */
typedef void (*reasm_deliver_fn)(void *ctx, const uint8_t *data, size_t len, bool gap);

void reasm_init(struct reasm_dir *d);
/* Sets the next expected sequence number (ISN + 1 after a SYN). */
void reasm_sync(struct reasm_dir *d, uint32_t next_seq);
/* Takes one segment's payload: delivers what is in order (and what it
 * releases from the out-of-order buffer), buffers what is ahead, drops what
 * was delivered already. A direction not yet synced starts at this segment.
 * When the buffer would pass a cap, the hole before the buffered data is
 * skipped (a gap) until the segment fits or can be delivered. A hole whose
 * following data has waited longer than pool->hold_us is skipped too, at the
 * next push to this direction (len 0 only runs that check). */
void reasm_push(struct reasm_dir *d, struct reasm_pool *pool, int64_t now_us, uint32_t seq,
                const uint8_t *data, size_t len, reasm_deliver_fn fn, void *ctx);
/* Delivers everything still buffered, skipping holes (at the end of a flow). */
void reasm_flush(struct reasm_dir *d, struct reasm_pool *pool, reasm_deliver_fn fn, void *ctx);
/* Frees the buffered segments without delivering them. */
void reasm_clear(struct reasm_dir *d, struct reasm_pool *pool);

#endif
