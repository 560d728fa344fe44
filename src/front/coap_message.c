/* CoAP messaging layer (RFC 7252 section 4): decoding each datagram,
 * rejecting malformed ones as the codec suggests, Empty messages, matching
 * ACK and RST to our confirmable notifications, deduplication of requests,
 * the critical option check, and building and sending responses. */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "front/coap_internal.h"

/* Critical options the resources of this front end process. Proxy-Uri and
 * Proxy-Scheme are recognized so that they get 5.05 Proxying Not
 * Supported rather than 4.02. */
static const uint16_t known_critical[] = {
    COAP_OPT_IF_MATCH,  COAP_OPT_URI_HOST, COAP_OPT_IF_NONE_MATCH, COAP_OPT_URI_PORT,
    COAP_OPT_URI_PATH,  COAP_OPT_URI_QUERY, COAP_OPT_ACCEPT,       COAP_OPT_BLOCK2,
    COAP_OPT_BLOCK1,    COAP_OPT_PROXY_URI, COAP_OPT_PROXY_SCHEME,
};

uint16_t coap_next_mid(struct coap_peer *cp)
{
    return cp->next_mid++;
}

/* ---- responses ---- */

void coap_reply_init_raw(struct coap_reply *r, uint8_t type, uint16_t mid, const uint8_t *token,
                         uint8_t token_len, uint8_t code)
{
    memset(r, 0, sizeof *r);
    r->msg.type = type;
    r->msg.code = code;
    r->msg.message_id = mid;
    r->msg.token = token_len > 0 ? token : NULL;
    r->msg.token_len = token_len;
}

void coap_reply_init(struct coap_reply *r, struct coap_peer *cp, const struct coap_msg *req,
                     uint8_t code)
{
    if (req->type == COAP_CON)
        coap_reply_init_raw(r, COAP_ACK, req->message_id, req->token, req->token_len, code);
    else
        coap_reply_init_raw(r, COAP_NON, coap_next_mid(cp), req->token, req->token_len, code);
}

void coap_reply_bytes(struct coap_reply *r, uint16_t num, const uint8_t *v, uint32_t len)
{
    uint8_t *dst;

    if (len > sizeof r->optbuf - r->optlen)
        return;
    dst = r->optbuf + r->optlen;
    if (len > 0)
        memcpy(dst, v, len);
    r->optlen += len;
    coap_add_option(&r->msg, num, len > 0 ? dst : NULL, len);
}

void coap_reply_uint(struct coap_reply *r, uint16_t num, uint32_t v)
{
    uint8_t buf[4];
    uint32_t len = coap_uint_encode(v, buf);

    coap_reply_bytes(r, num, buf, len);
}

void coap_reply_block(struct coap_reply *r, uint16_t num, const struct coap_block *b)
{
    uint8_t buf[3];
    uint32_t len;

    if (!coap_block_valid(b))
        return;
    len = coap_block_encode(b, buf);
    coap_reply_bytes(r, num, buf, len);
}

void coap_reply_send(struct coap_peer *cp, struct coap_reply *r)
{
    uint8_t buf[1400];
    size_t n = coap_encode(&r->msg, buf, sizeof buf);

    if (n == 0) {
        log_warn("coap %s: response %u.%02u could not be encoded", cp->udp->name,
                 COAP_CODE_CLASS(r->msg.code), COAP_CODE_DETAIL(r->msg.code));
        return;
    }
    if (udp_send(cp->udp, buf, n) != VIGIL_OK)
        log_debug("coap %s: sending %zu bytes failed", cp->udp->name, n);
    /* A piggybacked response is what a retransmitted request gets again. */
    if (r->msg.type == COAP_ACK)
        coap_dedup_set_response(&cp->dedup, r->msg.message_id, buf, n);
}

/* Sends a response with a diagnostic payload (RFC 7252 section 5.5.2). */
void coap_reply_error(struct coap_peer *cp, const struct coap_msg *req, uint8_t code,
                      const char *diagnostic)
{
    struct coap_reply r;

    coap_reply_init(&r, cp, req, code);
    if (diagnostic != NULL) {
        r.msg.payload = (const uint8_t *)diagnostic;
        r.msg.payload_len = strlen(diagnostic);
    }
    coap_reply_send(cp, &r);
}

/* An Empty message of type type (RST, or ACK) with mid. */
static void send_empty(struct udp_peer *p, uint8_t type, uint16_t mid)
{
    uint8_t buf[4] = {(uint8_t)(COAP_VERSION << 6 | type << 4), COAP_EMPTY, (uint8_t)(mid >> 8),
                      (uint8_t)mid};

    udp_send(p, buf, sizeof buf);
}

/* ---- rejection ---- */

/* Rejects a message that failed decoding or a message-layer rule: a Reset
 * for a CON when the codec suggests it, silence otherwise, and an event. */
static void reject(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                   enum coap_action action, const char *rule, const char *text, size_t len)
{
    coap_emit(f, p, VIGIL_EV_MALFORMED, rule, text, (uint32_t)len);
    log_debug("coap %s: message rejected (%s: %s)", p->name, rule, text);
    if (action == COAP_ACTION_RST)
        send_empty(p, COAP_RST, msg->message_id);
}


/* ---- message types ---- */

static void on_ack(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                   size_t len)
{
    struct coap_peer *cp = p->user;

    /* An ACK carries a response or nothing (section 4.2). */
    if (coap_is_request(msg)) {
        reject(f, p, msg, COAP_ACTION_DROP, "RFC7252-4.2",
               "Acknowledgement carries a request", len);
        return;
    }
    if (cp != NULL)
        coap_observe_ack(cp, msg->message_id);
}

static void on_rst(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                   size_t len)
{
    struct coap_peer *cp = p->user;

    if (msg->code != COAP_EMPTY) {
        reject(f, p, msg, COAP_ACTION_DROP, "RFC7252-4.2", "Reset message is not Empty", len);
        return;
    }
    if (cp != NULL)
        coap_observe_reset(cp, msg->message_id);
}

/* CON or NON with a code that is not a request. */
static void on_non_request(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                           size_t len)
{
    uint8_t cls = COAP_CODE_CLASS(msg->code);
    enum coap_action action = msg->type == COAP_CON ? COAP_ACTION_RST : COAP_ACTION_DROP;

    if (msg->code == COAP_EMPTY) {
        /* A CON Empty message is a ping and gets a Reset (section 4.3).
         * A NON must never be Empty. */
        if (msg->type == COAP_CON)
            send_empty(p, COAP_RST, msg->message_id);
        else
            reject(f, p, msg, COAP_ACTION_DROP, "RFC7252-4.3", "Non-confirmable message is Empty",
                   len);
        return;
    }
    if (cls == 2 || cls == 4 || cls == 5)
        reject(f, p, msg, action, "RFC7252-5.3.2", "response matches no request of this server",
               len);
    else
        reject(f, p, msg, action, "RFC7252-12.1", "code class 1, 6 or 7 is reserved", len);
}

/* Replays the cached response to a duplicate request; true when msg is a
 * duplicate (section 4.5). */
static bool duplicate(struct coap_peer *cp, const struct coap_msg *msg)
{
    uint64_t now = coap_now_ms(cp->front);
    struct coap_dedup_entry *e = coap_dedup_find(&cp->dedup, msg->message_id, now);

    if (e == NULL) {
        coap_dedup_add(&cp->dedup, msg->message_id, msg->type, now);
        return false;
    }
    if (msg->type == COAP_CON && e->type == COAP_CON && e->response != NULL)
        udp_send(cp->udp, e->response, e->response_len);
    log_debug("coap %s: duplicate message id %u", cp->udp->name, msg->message_id);
    return true;
}

static void on_request(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                       size_t len)
{
    struct coap_peer *cp = coap_peer_get(f, p);
    struct coap_error err;
    char detail[80];

    if (cp == NULL)
        return;
    if (duplicate(cp, msg))
        return;
    if (coap_check_critical(msg, known_critical, sizeof known_critical / sizeof known_critical[0],
                            &err) != VIGIL_OK) {
        snprintf(detail, sizeof detail, "%s %u", err.text, err.option);
        coap_emit(f, p, VIGIL_EV_MALFORMED, err.rule, detail, (uint32_t)len);
        if (err.action == COAP_ACTION_BAD_OPTION)
            coap_reply_error(cp, msg, COAP_BAD_OPTION, detail);
        else if (err.action == COAP_ACTION_RST)
            send_empty(p, COAP_RST, msg->message_id);
        return;
    }
    coap_handle_request(cp, msg);
}

static void on_message(struct coap_front *f, struct udp_peer *p, const struct coap_msg *msg,
                       size_t len)
{
    switch (msg->type) {
    case COAP_ACK:
        on_ack(f, p, msg, len);
        break;
    case COAP_RST:
        on_rst(f, p, msg, len);
        break;
    default:
        if (coap_is_request(msg))
            on_request(f, p, msg, len);
        else
            on_non_request(f, p, msg, len);
        break;
    }
}

void coap_datagram(void *ctx, struct udp_peer *p, const uint8_t *data, size_t len)
{
    struct coap_front *f = ctx;
    struct coap_msg msg;
    struct coap_error err;

    if (f->closing)
        return;
    if (coap_decode(data, len, &msg, &err) != VIGIL_OK)
        reject(f, p, &msg, err.action, err.rule, err.text, len);
    else
        on_message(f, p, &msg, len);
    /* A plaintext source gets state with its first request: a datagram
     * that is no CoAP, a ping, an ACK or a Reset from a source without
     * state leaves none behind. */
    if (p->user == NULL && !f->dtls)
        udp_peer_close(p, "no request");
}
