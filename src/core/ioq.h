/* Record queues between two threads: a producer fills a private staging
 * buffer, moves it into the queue under a mutex, and the consumer swaps the
 * whole queue into its own working buffer. Buffers change hands instead of
 * being allocated, so a steady flow of records allocates nothing. */
#ifndef VIGIL_CORE_IOQ_H
#define VIGIL_CORE_IOQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/error.h"

/* The header in front of each record's bytes; records start 8-byte aligned. */
struct ioq_rec {
    void *ref;          /* the object the record is about; not owned */
    uint64_t arg;       /* a number whose meaning depends on kind */
    uint32_t len;       /* bytes of data after the header */
    uint8_t kind;
};

struct ioq {
    uv_mutex_t lock;
    struct vigil_buf queued;  /* records moved in and not yet taken; owned */
    uint32_t flags;           /* set by ioq_push, returned and cleared by ioq_take */
};

vigil_err ioq_init(struct ioq *q, size_t limit);
void ioq_free(struct ioq *q);

/* Appends one record to stage (a private buffer of the producer). Fails with
 * VIGIL_ERR_LIMIT past the buffer's limit and leaves stage unchanged. */
vigil_err ioq_put(struct vigil_buf *stage, uint8_t kind, void *ref, uint64_t arg,
                  const void *data, size_t len);
/* Reads the record at *off of batch into rec and *data and advances *off;
 * false after the last record. */
bool ioq_next(const struct vigil_buf *batch, size_t *off, struct ioq_rec *rec,
              const uint8_t **data);

/* Moves every record of stage to the end of q and ORs flags into q's
 * flags. Stage is left empty, possibly holding the queue's old storage.
 * Returns the bytes queued afterwards, or 0 when they did not fit (stage
 * keeps its records then). */
size_t ioq_push(struct ioq *q, struct vigil_buf *stage, uint32_t flags);
/* Swaps the queued records into work, which must be empty, and returns the
 * flags pushed since the last take (clearing them). */
uint32_t ioq_take(struct ioq *q, struct vigil_buf *work);
/* Bytes queued now. */
size_t ioq_queued(struct ioq *q);

#endif
