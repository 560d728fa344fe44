/* Growable byte buffer with a cap. */
#include "core/buf.h"

#include <string.h>

#include "core/alloc.h"

void vigil_buf_init(struct vigil_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit < UINT32_MAX ? (uint32_t)limit : UINT32_MAX;
}

vigil_err vigil_buf_reserve(struct vigil_buf *b, size_t n)
{
    size_t want = (size_t)b->len + n;
    size_t cap;
    uint8_t *p;

    if (n > b->limit || want > b->limit)
        return VIGIL_ERR_LIMIT;
    if (want <= b->cap)
        return VIGIL_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    if (cap > b->limit)
        cap = b->limit;
    p = vigil_realloc(b->data, cap);
    if (p == NULL)
        return VIGIL_ERR_NOMEM;
    b->data = p;
    b->cap = (uint32_t)cap;
    return VIGIL_OK;
}

vigil_err vigil_buf_append(struct vigil_buf *b, const void *p, size_t n)
{
    vigil_err rc = vigil_buf_reserve(b, n);

    if (rc != VIGIL_OK)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
    return VIGIL_OK;
}

void vigil_buf_consume(struct vigil_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= (uint32_t)n;
}

void vigil_buf_release(struct vigil_buf *b)
{
    vigil_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
