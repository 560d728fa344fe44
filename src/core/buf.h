/* Growable byte buffer with a cap fixed at creation. */
#ifndef VIGIL_CORE_BUF_H
#define VIGIL_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct vigil_buf {
    uint8_t *data; /* owned; NULL until the first byte is written */
    size_t len;
    size_t cap;    /* bytes allocated */
    size_t limit;  /* the buffer never grows past this many bytes */
};

void vigil_buf_init(struct vigil_buf *b, size_t limit);
/* Makes room for n more bytes; VIGIL_ERR_LIMIT past the limit, VIGIL_ERR_NOMEM. */
vigil_err vigil_buf_reserve(struct vigil_buf *b, size_t n);
vigil_err vigil_buf_append(struct vigil_buf *b, const void *p, size_t n);
/* Removes the first n bytes. */
void vigil_buf_consume(struct vigil_buf *b, size_t n);
/* Releases the storage; the buffer stays usable. */
void vigil_buf_release(struct vigil_buf *b);

#endif
