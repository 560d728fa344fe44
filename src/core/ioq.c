/* Record queues between two threads (see ioq.h). */
#include "core/ioq.h"

#include <string.h>

#define IOQ_ALIGN 8u

static size_t ioq_padded(size_t n)
{
    return (n + IOQ_ALIGN - 1) & ~(size_t)(IOQ_ALIGN - 1);
}

vigil_err ioq_init(struct ioq *q, size_t limit)
{
    vigil_buf_init(&q->queued, limit);
    q->flags = 0;
    return uv_mutex_init(&q->lock) == 0 ? VIGIL_OK : VIGIL_ERR_NOMEM;
}

void ioq_free(struct ioq *q)
{
    vigil_buf_release(&q->queued);
    uv_mutex_destroy(&q->lock);
}

vigil_err ioq_put(struct vigil_buf *stage, uint8_t kind, void *ref, uint64_t arg,
                  const void *data, size_t len)
{
    struct ioq_rec rec = {.ref = ref, .arg = arg, .len = (uint32_t)len, .kind = kind};
    size_t need = sizeof rec + ioq_padded(len);
    vigil_err rc;

    if (len > UINT32_MAX)
        return VIGIL_ERR_LIMIT;
    rc = vigil_buf_reserve(stage, need);
    if (rc != VIGIL_OK)
        return rc;
    memcpy(stage->data + stage->len, &rec, sizeof rec);
    if (len > 0)
        memcpy(stage->data + stage->len + sizeof rec, data, len);
    stage->len += need;
    return VIGIL_OK;
}

bool ioq_next(const struct vigil_buf *batch, size_t *off, struct ioq_rec *rec,
              const uint8_t **data)
{
    if (*off + sizeof *rec > batch->len)
        return false;
    memcpy(rec, batch->data + *off, sizeof *rec);
    *data = batch->data + *off + sizeof *rec;
    *off += sizeof *rec + ioq_padded(rec->len);
    return true;
}

size_t ioq_push(struct ioq *q, struct vigil_buf *stage, uint32_t flags)
{
    size_t queued;

    uv_mutex_lock(&q->lock);
    q->flags |= flags;
    if (q->queued.len == 0) {
        /* Nothing waits: the staged storage becomes the queue, and the
         * queue's empty storage goes back to the producer. */
        struct vigil_buf tmp = q->queued;

        q->queued = *stage;
        *stage = tmp;
    } else if (vigil_buf_append(&q->queued, stage->data, stage->len) == VIGIL_OK) {
        stage->len = 0;
    } else {
        uv_mutex_unlock(&q->lock);
        return 0;
    }
    queued = q->queued.len;
    uv_mutex_unlock(&q->lock);
    return queued;
}

uint32_t ioq_take(struct ioq *q, struct vigil_buf *work)
{
    struct vigil_buf tmp;
    uint32_t flags;

    uv_mutex_lock(&q->lock);
    tmp = q->queued;
    q->queued = *work;
    q->queued.len = 0;
    *work = tmp;
    flags = q->flags;
    q->flags = 0;
    uv_mutex_unlock(&q->lock);
    return flags;
}

size_t ioq_queued(struct ioq *q)
{
    size_t n;

    uv_mutex_lock(&q->lock);
    n = q->queued.len;
    uv_mutex_unlock(&q->lock);
    return n;
}
