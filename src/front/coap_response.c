/* Representations sent by the CoAP front end: Content-Format, Accept
 * (with SenML JSON converted to CBOR), ETag, Max-Age, and Block2 (RFC
 * 7959) for anything larger than one block. The last large representation
 * is kept per peer for the requests of its later blocks. */
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "front/coap_internal.h"

static void put_etag(struct coap_reply *r, uint32_t etag)
{
    uint8_t tag[4] = {(uint8_t)(etag >> 24), (uint8_t)(etag >> 16), (uint8_t)(etag >> 8),
                      (uint8_t)etag};

    coap_reply_bytes(r, COAP_OPT_ETAG, tag, sizeof tag);
}

/* Keeps a copy of a representation larger than one block. */
static void cache_representation(struct coap_peer *cp, const char *path,
                                 const struct coap_repr *rep)
{
    char *p;
    uint8_t *b;

    if (cp->b2_path != NULL && strcmp(cp->b2_path, path) == 0 && cp->b2_etag == rep->etag &&
        cp->b2_len == rep->len)
        return;
    p = vigil_strdup(path);
    b = vigil_memdup(rep->body, rep->len);
    if (p == NULL || b == NULL) {
        vigil_free(p);
        vigil_free(b);
        return;
    }
    vigil_free(cp->b2_path);
    vigil_free(cp->b2_body);
    cp->b2_path = p;
    cp->b2_body = b;
    cp->b2_len = rep->len;
    cp->b2_format = rep->format;
    cp->b2_etag = rep->etag;
}

bool coap_fill_representation(struct coap_peer *cp, struct coap_reply *r, const char *path,
                              const struct coap_repr *rep, const struct coap_block *req_b2)
{
    struct coap_block out;
    size_t off, n;

    if (rep->has_observe)
        coap_reply_uint(r, COAP_OPT_OBSERVE, rep->observe);
    if (rep->format != COAP_FORMAT_NONE)
        coap_reply_uint(r, COAP_OPT_CONTENT_FORMAT, rep->format);
    if (rep->has_max_age)
        coap_reply_uint(r, COAP_OPT_MAX_AGE, rep->max_age);
    if (rep->has_etag)
        put_etag(r, rep->etag);
    if (req_b2 == NULL && rep->len <= coap_block_size(COAP_BLOCK_SZX_MAX)) {
        r->msg.payload = rep->len > 0 ? rep->body : NULL;
        r->msg.payload_len = rep->len;
        return true;
    }
    if (!coap_block2_slice(rep->len, req_b2, &out, &off, &n))
        return false;
    coap_reply_block(r, COAP_OPT_BLOCK2, &out);
    if (out.num == 0)
        coap_reply_uint(r, COAP_OPT_SIZE2, (uint32_t)rep->len);
    r->msg.payload = n > 0 ? rep->body + off : NULL;
    r->msg.payload_len = n;
    if (out.more || out.num > 0)
        cache_representation(cp, path, rep);
    return true;
}

/* Sends rep as the response to req (2.05), or 4.02 for a block past its
 * end. */
static void send_repr(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                      const struct coap_repr *rep)
{
    struct coap_block b2;
    const struct coap_block *want = NULL;
    struct coap_reply r;

    if (coap_get_block(req, COAP_OPT_BLOCK2, &b2) == VIGIL_OK)
        want = &b2;
    coap_reply_init(&r, cp, req, COAP_CONTENT);
    if (!coap_fill_representation(cp, &r, path, rep, want)) {
        coap_reply_error(cp, req, COAP_BAD_OPTION, "block number past the end");
        return;
    }
    coap_reply_send(cp, &r);
}

void coap_send_body(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                    const uint8_t *body, size_t len, uint16_t format)
{
    struct coap_repr rep = {.body = body, .len = len, .format = format, .has_etag = true,
                            .etag = coap_etag(body, len)};

    send_repr(cp, req, path, &rep);
}

void coap_send_cached_block(struct coap_peer *cp, const struct coap_msg *req,
                            const struct coap_block *b2)
{
    struct coap_repr rep = {.body = cp->b2_body, .len = cp->b2_len, .format = cp->b2_format,
                            .has_etag = true, .etag = cp->b2_etag};
    struct coap_reply r;

    coap_reply_init(&r, cp, req, COAP_CONTENT);
    if (!coap_fill_representation(cp, &r, cp->b2_path, &rep, b2)) {
        coap_reply_error(cp, req, COAP_BAD_OPTION, "block number past the end");
        return;
    }
    coap_reply_send(cp, &r);
}

uint32_t coap_max_age(const struct msg *m)
{
    int64_t now = hub_now_s();

    if (m == NULL || m->expiry_at == 0)
        return COAP_MAX_AGE_DEFAULT;
    return m->expiry_at > now ? (uint32_t)(m->expiry_at - now) : 0;
}

bool coap_negotiate(uint32_t accept, struct coap_repr *rep, uint8_t **converted)
{
    size_t n, cap;

    *converted = NULL;
    if (accept == COAP_FORMAT_NONE || accept == rep->format)
        return true;
    if (accept == COAP_FORMAT_OCTETS) {
        rep->format = COAP_FORMAT_OCTETS;
        return true;
    }
    if (accept != COAP_FORMAT_SENML_CBOR || rep->format != COAP_FORMAT_SENML_JSON)
        return false;
    /* Every number becomes a float64 (9 bytes) with a 1-byte label, and
     * takes at least 6 JSON bytes (`,"v":1`); a string or boolean field
     * grows by at most 3 bytes over its 7 or more JSON bytes. Twice the
     * JSON length, plus the array head, bounds the CBOR pack. */
    cap = 2 * rep->len + 16;
    *converted = vigil_malloc(cap);
    if (*converted == NULL)
        return false;
    n = senml_json_to_cbor(rep->body, rep->len, *converted, cap);
    if (n == 0) {
        vigil_free(*converted);
        *converted = NULL;
        return false;
    }
    rep->body = *converted;
    rep->len = n;
    rep->format = COAP_FORMAT_SENML_CBOR;
    rep->etag = coap_etag(rep->body, rep->len);
    return true;
}

/* True when the request names the current ETag: 2.03 Valid is enough. */
static bool etag_matches(const struct coap_msg *req, uint32_t etag)
{
    uint8_t tag[4] = {(uint8_t)(etag >> 24), (uint8_t)(etag >> 16), (uint8_t)(etag >> 8),
                      (uint8_t)etag};
    const struct coap_option *o;

    for (unsigned i = 0; (o = coap_find_option(req, COAP_OPT_ETAG, i)) != NULL; i++)
        if (o->len == sizeof tag && memcmp(o->value, tag, sizeof tag) == 0)
            return true;
    return false;
}

void coap_send_message(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                       const struct msg *m, bool observe, uint32_t seq)
{
    const uint8_t *body = m != NULL ? m->payload : NULL;
    size_t len = m != NULL ? m->payload_len : 0;
    struct coap_repr rep = {.body = body, .len = len,
                            .format = m != NULL ? coap_guess_format(body, len) : COAP_FORMAT_NONE,
                            .has_max_age = true, .max_age = coap_max_age(m),
                            .has_observe = observe, .observe = seq,
                            .has_etag = m != NULL, .etag = coap_etag(body, len)};
    uint32_t accept = COAP_FORMAT_NONE, max_body = cp->front->hub->cfg.gateway.coap_max_body;
    uint8_t *converted = NULL;
    struct coap_reply r;

    if (len > max_body) {
        coap_reply_error(cp, req, COAP_INTERNAL_SERVER_ERROR,
                         "representation exceeds gateway.coap_max_body");
        return;
    }
    coap_get_uint(req, COAP_OPT_ACCEPT, 2, &accept);
    if (m != NULL && !coap_negotiate(accept, &rep, &converted)) {
        coap_emit(cp->front, cp->udp, VIGIL_EV_MALFORMED, "RFC7252-5.9.2.7",
                  "Accept names a format not available", 0);
        coap_reply_error(cp, req, COAP_NOT_ACCEPTABLE, "Accept names a format not available");
        return;
    }
    if (m != NULL && !observe && etag_matches(req, rep.etag)) {
        coap_reply_init(&r, cp, req, COAP_VALID);
        put_etag(&r, rep.etag);
        coap_reply_uint(&r, COAP_OPT_MAX_AGE, rep.max_age);
        coap_reply_send(cp, &r);
    } else {
        send_repr(cp, req, path, &rep);
    }
    vigil_free(converted);
}
