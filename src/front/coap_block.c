/* Block-wise transfers (RFC 7959): reassembly of a request body from
 * Block1 blocks and the choice of the Block2 block of a response. */
#include <string.h>

#include "front/coap_internal.h"

void coap_reassembly_reset(struct coap_reassembly *r)
{
    vigil_buf_release(&r->body);
    r->active = false;
    r->path[0] = '\0';
    r->code = 0;
}

bool coap_reassembly_expired(const struct coap_reassembly *r, uint64_t now_ms)
{
    return r->active && now_ms - r->last_ms >= COAP_BLOCK1_TIMEOUT_MS;
}

static enum coap_block1_status reassembly_drop(struct coap_reassembly *r,
                                               enum coap_block1_status status)
{
    coap_reassembly_reset(r);
    return status;
}

/* Starts a new sequence with block 0. */
static enum coap_block1_status reassembly_start(struct coap_reassembly *r, const char *path,
                                               uint8_t code, uint32_t max_body, uint32_t size1)
{
    size_t plen = strlen(path);

    coap_reassembly_reset(r);
    if (size1 > max_body)
        return COAP_B1_TOO_LARGE;
    if (plen >= sizeof r->path)
        return COAP_B1_BAD;
    memcpy(r->path, path, plen + 1);
    r->code = code;
    r->active = true;
    vigil_buf_init(&r->body, max_body);
    return COAP_B1_CONTINUE;
}

enum coap_block1_status coap_reassembly_feed(struct coap_reassembly *r, const char *path,
                                             uint8_t code, const struct coap_block *b,
                                             const uint8_t *payload, size_t len,
                                             uint32_t max_body, uint32_t size1, uint64_t now_ms)
{
    uint64_t offset = (uint64_t)b->num * coap_block_size(b->szx);
    uint32_t size = coap_block_size(b->szx);
    vigil_err rc;

    if (coap_reassembly_expired(r, now_ms))
        coap_reassembly_reset(r);
    /* A block with M set fills its size; the last one may be shorter. */
    if ((b->more && len != size) || len > size)
        return reassembly_drop(r, COAP_B1_BAD);
    if (b->num == 0) {
        enum coap_block1_status st = reassembly_start(r, path, code, max_body, size1);

        if (st != COAP_B1_CONTINUE)
            return reassembly_drop(r, st);
    } else if (!r->active || r->code != code || strcmp(r->path, path) != 0) {
        return reassembly_drop(r, COAP_B1_INCOMPLETE);
    }
    /* The same block again (its acknowledgement was lost and the cached
     * response is gone): accepted without being added twice. */
    if (b->num > 0 && offset + len == r->body.len && offset < r->body.len) {
        r->last_ms = now_ms;
        return b->more ? COAP_B1_CONTINUE : COAP_B1_DONE;
    }
    /* Offsets, not numbers, are compared: a client that switched to the
     * smaller size this server asked for continues at a larger number. */
    if (offset != r->body.len)
        return reassembly_drop(r, COAP_B1_INCOMPLETE);
    if (offset + len > max_body)
        return reassembly_drop(r, COAP_B1_TOO_LARGE);
    rc = vigil_buf_append(&r->body, payload, len);
    if (rc == VIGIL_ERR_LIMIT)
        return reassembly_drop(r, COAP_B1_TOO_LARGE);
    if (rc != VIGIL_OK)
        return reassembly_drop(r, COAP_B1_NOMEM);
    r->last_ms = now_ms;
    return b->more ? COAP_B1_CONTINUE : COAP_B1_DONE;
}

bool coap_block2_slice(size_t len, const struct coap_block *req, struct coap_block *out,
                       size_t *off, size_t *n)
{
    uint8_t szx = COAP_BLOCK_SZX_MAX;
    uint32_t num = 0;
    uint64_t start;
    uint32_t size;

    if (req != NULL) {
        szx = req->szx < szx ? req->szx : szx;
        num = req->num;
        /* A client that asked with a larger size than this server sends
         * keeps its byte offset: the block number scales up. */
        if (req->szx > szx)
            num = (uint32_t)(((uint64_t)num << req->szx) >> szx);
    }
    size = coap_block_size(szx);
    start = (uint64_t)num * size;
    if (start > len || (start == len && len > 0))
        return false;
    *off = (size_t)start;
    *n = len - *off < size ? len - *off : size;
    out->num = num;
    out->szx = szx;
    out->more = *off + *n < len;
    return true;
}
