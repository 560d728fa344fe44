/* Growable byte buffer with a cap fixed at creation. */
#ifndef VIGIL_CORE_BUF_H
#define VIGIL_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* 32-bit sizes keep the struct at 24 bytes, and every connection has four. */
struct vigil_buf {
    uint8_t *data;   /* owned; NULL until the first byte is written */
    uint32_t len;
    uint32_t cap;    /* bytes allocated */
    uint32_t limit;  /* the buffer never grows past this many bytes */
};

/* A limit above UINT32_MAX is lowered to it. */
void vigil_buf_init(struct vigil_buf *b, size_t limit);
/* Makes room for n more bytes; VIGIL_ERR_LIMIT past the limit, VIGIL_ERR_NOMEM. */
vigil_err vigil_buf_reserve(struct vigil_buf *b, size_t n);
vigil_err vigil_buf_append(struct vigil_buf *b, const void *p, size_t n);
/* Removes the first n bytes. */
void vigil_buf_consume(struct vigil_buf *b, size_t n);
/* Releases the storage; the buffer stays usable. */
void vigil_buf_release(struct vigil_buf *b);

#endif
