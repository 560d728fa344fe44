/* Observe (RFC 7641) over the broker's subscriptions: registration and
 * deregistration, notifications as messages are routed (non-confirmable
 * for QoS 0, confirmable for QoS 1 and 2 and at least every
 * COAP_CON_EVERY-th), one confirmable message in flight per peer (NSTART
 * 1) with retransmission, and the end of an observation by a Reset or an
 * unacknowledged confirmable notification. */
#include <stddef.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "front/coap_internal.h"

static struct coap_peer *peer_of(struct gw_client *c)
{
    return (struct coap_peer *)((char *)c - offsetof(struct coap_peer, client));
}

/* ---- the retransmission list of the front end ---- */

static void retx_add(struct coap_peer *cp)
{
    struct coap_front *f = cp->front;

    if (cp->in_retx)
        return;
    cp->retx_prev = NULL;
    cp->retx_next = f->retx_head;
    if (f->retx_head != NULL)
        f->retx_head->retx_prev = cp;
    f->retx_head = cp;
    cp->in_retx = true;
    coap_retx_arm(f);
}

static void retx_remove(struct coap_peer *cp)
{
    struct coap_front *f = cp->front;

    if (!cp->in_retx)
        return;
    if (cp->retx_prev != NULL)
        cp->retx_prev->retx_next = cp->retx_next;
    else
        f->retx_head = cp->retx_next;
    if (cp->retx_next != NULL)
        cp->retx_next->retx_prev = cp->retx_prev;
    cp->retx_next = cp->retx_prev = NULL;
    cp->in_retx = false;
}

static void con_clear(struct coap_peer *cp)
{
    vigil_free(cp->con.bytes);
    memset(&cp->con, 0, sizeof cp->con);
    retx_remove(cp);
}

/* ---- observations ---- */

static bool is_filter(const char *s, size_t len)
{
    return memchr(s, '+', len) != NULL || memchr(s, '#', len) != NULL;
}

static struct coap_observation *find_by_token(struct coap_peer *cp, const uint8_t *token,
                                              uint8_t len)
{
    for (size_t i = 0; i < cp->n_obs; i++) {
        struct coap_observation *o = cp->obs[i];

        if (o->token_len == len && (len == 0 || memcmp(o->token, token, len) == 0))
            return o;
    }
    return NULL;
}

static struct coap_observation *find_by_filter(struct coap_peer *cp, const char *filter,
                                               size_t len, const struct coap_observation *not)
{
    for (size_t i = 0; i < cp->n_obs; i++) {
        struct coap_observation *o = cp->obs[i];

        if (o != not && strlen(o->filter) == len && memcmp(o->filter, filter, len) == 0)
            return o;
    }
    return NULL;
}

/* Forgets every queued or in-flight reference to o. */
static void unlink_notifications(struct coap_peer *cp, const struct coap_observation *o)
{
    for (size_t i = 0; i < cp->q_len; i++) {
        struct coap_notify *n = &cp->queue[(cp->q_head + i) % COAP_NOTIFY_QUEUE];

        if (n->obs == o)
            n->obs = NULL;
    }
    if (cp->con.obs == o)
        cp->con.obs = NULL;
    for (size_t i = 0; i < COAP_RECENT_NON; i++)
        if (cp->recent[i].obs == o)
            cp->recent[i].obs = NULL;
}

/* Ends observation o: unsubscribes its filter unless another observation
 * of the peer shares it. */
static void obs_remove(struct coap_peer *cp, struct coap_observation *o, const char *why)
{
    bool shared = find_by_filter(cp, o->filter, strlen(o->filter), o) != NULL;

    for (size_t i = 0; i < cp->n_obs; i++) {
        if (cp->obs[i] == o) {
            cp->obs[i] = cp->obs[--cp->n_obs];
            break;
        }
    }
    unlink_notifications(cp, o);
    /* sub_id 0: the subscription was rejected, so there is none to end. */
    if (!shared && !cp->closing && o->sub_id != 0)
        gw_unsubscribe(&cp->client, o->filter, strlen(o->filter));
    log_debug("coap %s: observation of '%s' ended: %s", cp->udp->name, o->filter, why);
    vigil_free(o->filter);
    vigil_free(o->path);
    vigil_free(o);
}

void coap_observe_free_all(struct coap_peer *cp)
{
    while (cp->n_obs > 0)
        obs_remove(cp, cp->obs[cp->n_obs - 1], "peer closed");
    for (; cp->q_len > 0; cp->q_len--) {
        msg_unref(cp->queue[cp->q_head].msg);
        cp->q_head = (cp->q_head + 1) % COAP_NOTIFY_QUEUE;
    }
    con_clear(cp);
}

static uint32_t next_sub_id(struct coap_peer *cp)
{
    uint32_t id = cp->next_sub_id;

    cp->next_sub_id = id >= (UINT32_C(1) << 28) - 1 ? 1 : id + 1;
    return id;
}

static struct coap_observation *obs_new(struct coap_peer *cp, const struct coap_msg *req,
                                        const char *path, const char *filter, size_t flen)
{
    struct coap_observation *o = vigil_calloc(1, sizeof *o);
    struct coap_block b2;
    uint32_t accept = COAP_FORMAT_NONE;

    if (o == NULL)
        return NULL;
    o->filter = vigil_strndup(filter, flen);
    o->path = vigil_strdup(path);
    if (o->filter == NULL || o->path == NULL) {
        vigil_free(o->filter);
        vigil_free(o->path);
        vigil_free(o);
        return NULL;
    }
    o->token_len = req->token_len;
    if (req->token_len > 0)
        memcpy(o->token, req->token, req->token_len);
    coap_get_uint(req, COAP_OPT_ACCEPT, 2, &accept);
    o->accept = (uint16_t)(accept == COAP_FORMAT_NONE ? 0xFFFF : accept);
    o->szx = coap_get_block(req, COAP_OPT_BLOCK2, &b2) == VIGIL_OK && b2.szx < COAP_BLOCK_SZX_MAX
                 ? b2.szx
                 : COAP_BLOCK_SZX_MAX;
    return o;
}

static uint8_t subscribe_result(vigil_err rc, const char **diag)
{
    switch (rc) {
    case VIGIL_ERR_AUTH:
        *diag = "observe not allowed";
        return COAP_FORBIDDEN;
    case VIGIL_ERR_INVALID:
        *diag = "invalid topic filter";
        return COAP_BAD_REQUEST;
    case VIGIL_ERR_LIMIT:
        *diag = "too many subscriptions";
        return COAP_SERVICE_UNAVAILABLE;
    default:
        *diag = "no memory";
        return COAP_SERVICE_UNAVAILABLE;
    }
}

/* Subscribes for o unless another observation of the peer has the same
 * filter. Retained messages of a filter arrive as notifications after
 * the registration response; an exact topic's retained message is the
 * registration response itself. */
static vigil_err obs_subscribe(struct coap_peer *cp, struct coap_observation *o)
{
    const struct coap_observation *same = find_by_filter(cp, o->filter, strlen(o->filter), o);
    size_t flen = strlen(o->filter);

    if (same != NULL) {
        o->sub_id = same->sub_id;
        return VIGIL_OK;
    }
    o->sub_id = next_sub_id(cp);
    return gw_subscribe(&cp->client, o->filter, flen, 1, o->sub_id, is_filter(o->filter, flen));
}

static void obs_register(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                         const char *filter, size_t flen)
{
    struct coap_observation *old = find_by_token(cp, req->token, req->token_len);
    struct coap_observation *o;
    const char *diag = NULL;
    vigil_err rc;

    /* A registration with a token already in use replaces that one
     * (RFC 7641 section 4.1). */
    if (old != NULL)
        obs_remove(cp, old, "registered again");
    if (cp->n_obs >= COAP_MAX_OBSERVATIONS) {
        coap_reply_error(cp, req, COAP_SERVICE_UNAVAILABLE, "too many observations");
        return;
    }
    o = obs_new(cp, req, path, filter, flen);
    if (o == NULL) {
        coap_reply_error(cp, req, COAP_SERVICE_UNAVAILABLE, "no memory");
        return;
    }
    cp->obs[cp->n_obs++] = o;
    cp->hold_notify = true;
    rc = obs_subscribe(cp, o);
    cp->hold_notify = false;
    if (rc != VIGIL_OK) {
        uint8_t code = subscribe_result(rc, &diag);

        o->sub_id = 0;
        obs_remove(cp, o, "subscription rejected");
        coap_reply_error(cp, req, code, diag);
        return;
    }
    cp->observe_seq = coap_observe_next(cp->observe_seq);
    if (is_filter(filter, flen))
        coap_send_message(cp, req, path, NULL, true, cp->observe_seq);
    else
        coap_send_message(cp, req, path, gw_retained(cp->front->hub, filter, flen), true,
                          cp->observe_seq);
    coap_notify_pump(cp);
}

void coap_observe_request(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                          const char *filter, size_t flen, uint32_t observe)
{
    struct coap_observation *o;

    if (observe == 0) {
        obs_register(cp, req, path, filter, flen);
        return;
    }
    /* Deregistration (RFC 7641 section 3.6): the observation of this
     * token, else the one of this filter; then a plain GET. */
    o = find_by_token(cp, req->token, req->token_len);
    if (o == NULL)
        o = find_by_filter(cp, filter, flen, NULL);
    if (o != NULL)
        obs_remove(cp, o, "deregistered");
    if (is_filter(filter, flen)) {
        coap_send_message(cp, req, path, NULL, false, 0);
        return;
    }
    if (!gw_can_subscribe(&cp->client, filter, flen)) {
        gw_emit(&cp->client, VIGIL_EV_ACL_DENY, filter, flen, NULL, "read not allowed");
        coap_reply_error(cp, req, COAP_FORBIDDEN, "read not allowed");
        return;
    }
    if (gw_retained(cp->front->hub, filter, flen) == NULL)
        coap_reply_error(cp, req, COAP_NOT_FOUND, "no retained message");
    else
        coap_send_message(cp, req, path, gw_retained(cp->front->hub, filter, flen), false, 0);
}

/* ---- notifications ---- */

static void queue_push(struct coap_peer *cp, struct coap_observation *o, struct msg *m,
                       uint8_t qos)
{
    struct coap_notify *n;

    /* A newer message of the same topic for the same observation replaces
     * one not sent yet: an observer wants the current state (RFC 7641
     * section 4.5.2). */
    for (size_t i = 0; i < cp->q_len; i++) {
        n = &cp->queue[(cp->q_head + i) % COAP_NOTIFY_QUEUE];
        if (n->obs == o && n->msg->topic_len == m->topic_len &&
            memcmp(n->msg->topic, m->topic, m->topic_len) == 0) {
            msg_unref(n->msg);
            n->msg = msg_ref(m);
            n->qos = qos > n->qos ? qos : n->qos;
            return;
        }
    }
    if (cp->q_len == COAP_NOTIFY_QUEUE) {
        log_debug("coap %s: notification queue full; oldest dropped", cp->udp->name);
        msg_unref(cp->queue[cp->q_head].msg);
        cp->q_head = (cp->q_head + 1) % COAP_NOTIFY_QUEUE;
        cp->q_len--;
    }
    n = &cp->queue[(cp->q_head + cp->q_len) % COAP_NOTIFY_QUEUE];
    n->obs = o;
    n->msg = msg_ref(m);
    n->qos = qos;
    cp->q_len++;
}

static void remember_non(struct coap_peer *cp, uint16_t mid, struct coap_observation *o)
{
    cp->recent[cp->recent_next].mid = mid;
    cp->recent[cp->recent_next].obs = o;
    cp->recent_next = (cp->recent_next + 1) % COAP_RECENT_NON;
}

/* Encodes one notification of m (NULL: an empty representation); returns
 * its length or 0. */
static size_t build_notification(struct coap_peer *cp, struct coap_observation *o,
                                 const struct msg *m, bool con, uint16_t mid, uint8_t *buf,
                                 size_t cap)
{
    const uint8_t *body = m != NULL ? m->payload : NULL;
    size_t len = m != NULL ? m->payload_len : 0;
    struct coap_repr rep = {.body = body, .len = len,
                            .format = m != NULL ? coap_guess_format(body, len) : COAP_FORMAT_NONE,
                            .has_max_age = true, .max_age = coap_max_age(m), .has_observe = true,
                            .observe = cp->observe_seq, .has_etag = m != NULL,
                            .etag = coap_etag(body, len)};
    struct coap_block want = {.num = 0, .szx = o->szx};
    struct coap_reply r;
    uint8_t *converted = NULL;
    size_t n = 0;

    if (m != NULL &&
        !coap_negotiate(o->accept == 0xFFFF ? COAP_FORMAT_NONE : o->accept, &rep, &converted))
        return 0;
    coap_reply_init_raw(&r, con ? COAP_CON : COAP_NON, mid, o->token, o->token_len,
                        COAP_CONTENT);
    if (coap_fill_representation(cp, &r, o->path, &rep,
                                 rep.len > coap_block_size(o->szx) ? &want : NULL))
        n = coap_encode(&r.msg, buf, cap);
    vigil_free(converted);
    return n;
}

/* Makes the confirmable notification in buf the one in flight, for
 * retransmission until it is acknowledged. */
static void con_start(struct coap_peer *cp, struct coap_observation *o, uint16_t mid,
                      const uint8_t *buf, size_t n)
{
    o->since_con = 0;
    cp->con.bytes = vigil_memdup(buf, n);
    if (cp->con.bytes == NULL)
        return; /* sent once, without retransmission */
    cp->con.active = true;
    cp->con.mid = mid;
    cp->con.len = n;
    cp->con.obs = o;
    cp->con.retries = 0;
    cp->con.timeout_ms = coap_initial_timeout_ms(coap_random(cp->front));
    cp->con.due_ms = coap_now_ms(cp->front) + cp->con.timeout_ms;
    retx_add(cp);
}

static void send_notification(struct coap_peer *cp, const struct coap_notify *nt)
{
    struct coap_observation *o = nt->obs;
    bool con = nt->qos > 0 || o->since_con + 1 >= COAP_CON_EVERY;
    uint16_t mid = coap_next_mid(cp);
    uint8_t buf[1400];
    size_t n;

    if (nt->msg->payload_len > cp->front->hub->cfg.gateway.coap_max_body) {
        gw_emit(&cp->client, VIGIL_EV_LIMIT, nt->msg->topic, nt->msg->topic_len,
                "vigil-coap-max-body", "notification larger than gateway.coap_max_body dropped");
        return;
    }
    cp->observe_seq = coap_observe_next(cp->observe_seq);
    n = build_notification(cp, o, nt->msg, con, mid, buf, sizeof buf);
    if (n == 0) {
        log_debug("coap %s: notification of '%s' not encodable in the requested format",
                  cp->udp->name, o->filter);
        return;
    }
    udp_send(cp->udp, buf, n);
    if (!con) {
        o->since_con++;
        remember_non(cp, mid, o);
        return;
    }
    con_start(cp, o, mid, buf, n);
}

/* Checks that a quiet observer is still there (RFC 7641 section 4.5): a
 * confirmable notification of the current state of its first observation
 * (an empty representation for a filter or a topic without a retained
 * message). When it is not acknowledged, the observer is taken as gone
 * and every observation of the peer ends. */
void coap_observe_check(struct coap_peer *cp)
{
    struct coap_observation *o;
    const struct msg *m = NULL;
    uint16_t mid;
    uint8_t buf[1400];
    size_t n, flen;

    if (cp->n_obs == 0 || cp->con.active || cp->closing)
        return;
    o = cp->obs[0];
    flen = strlen(o->filter);
    if (!is_filter(o->filter, flen))
        m = gw_retained(cp->front->hub, o->filter, flen);
    mid = coap_next_mid(cp);
    cp->observe_seq = coap_observe_next(cp->observe_seq);
    n = build_notification(cp, o, m, true, mid, buf, sizeof buf);
    if (n == 0)
        return; /* not in the observer's format; the peer table evicts it when full */
    udp_send(cp->udp, buf, n);
    con_start(cp, o, mid, buf, n);
    cp->con.check = cp->con.active;
}

void coap_notify_pump(struct coap_peer *cp)
{
    while (cp->q_len > 0 && !cp->hold_notify && !cp->closing) {
        struct coap_notify nt = cp->queue[cp->q_head];
        bool con;

        if (nt.obs != NULL) {
            con = nt.qos > 0 || nt.obs->since_con + 1 >= COAP_CON_EVERY;
            if (con && cp->con.active)
                return; /* NSTART 1: wait for the acknowledgement */
        }
        cp->q_head = (cp->q_head + 1) % COAP_NOTIFY_QUEUE;
        cp->q_len--;
        if (nt.obs != NULL)
            send_notification(cp, &nt);
        msg_unref(nt.msg);
    }
}

static void client_deliver(struct gw_client *c, struct msg *m, uint8_t qos, bool retain,
                           const uint32_t *sub_ids, uint8_t n_sub_ids)
{
    struct coap_peer *cp = peer_of(c);

    (void)retain;
    if (cp->closing)
        return;
    for (size_t i = 0; i < cp->n_obs; i++) {
        for (uint8_t k = 0; k < n_sub_ids; k++) {
            if (cp->obs[i]->sub_id == sub_ids[k]) {
                queue_push(cp, cp->obs[i], m, qos);
                break;
            }
        }
    }
    coap_notify_pump(cp);
}

static bool client_online(const struct gw_client *c)
{
    const struct coap_peer *cp =
        (const struct coap_peer *)((const char *)c - offsetof(struct coap_peer, client));

    return !cp->closing;
}

const struct gw_client_ops coap_client_ops = {.deliver = client_deliver, .online = client_online};

/* ---- acknowledgements, resets, retransmission ---- */

void coap_observe_ack(struct coap_peer *cp, uint16_t mid)
{
    if (!cp->con.active || cp->con.mid != mid)
        return;
    con_clear(cp);
    coap_notify_pump(cp);
}

void coap_observe_reset(struct coap_peer *cp, uint16_t mid)
{
    struct coap_observation *o = NULL;

    if (cp->con.active && cp->con.mid == mid) {
        o = cp->con.obs;
        con_clear(cp);
    } else {
        for (size_t i = 0; i < COAP_RECENT_NON; i++)
            if (cp->recent[i].obs != NULL && cp->recent[i].mid == mid)
                o = cp->recent[i].obs;
    }
    /* A Reset to a notification ends the observation (RFC 7641 section
     * 3.6). */
    if (o != NULL)
        obs_remove(cp, o, "notification reset by the client");
    coap_notify_pump(cp);
}

static void retx_peer(struct coap_peer *cp, uint64_t now_ms)
{
    struct coap_outstanding *con = &cp->con;

    if (now_ms < con->due_ms)
        return;
    if (con->retries >= COAP_MAX_RETRANSMIT) {
        struct coap_observation *o = con->obs;
        bool check = con->check;

        /* The client is gone or no longer interested (RFC 7641 section
         * 4.5). */
        con_clear(cp);
        if (o != NULL)
            obs_remove(cp, o, "confirmable notification not acknowledged");
        /* A quiet observer that does not answer is gone: the idle tick
         * releases the peer once no observation is left. */
        while (check && cp->n_obs > 0)
            obs_remove(cp, cp->obs[cp->n_obs - 1], "observer does not answer");
        coap_notify_pump(cp);
        return;
    }
    con->retries++;
    con->timeout_ms *= 2;
    con->due_ms = now_ms + con->timeout_ms;
    udp_send(cp->udp, con->bytes, con->len);
}

void coap_observe_retx(struct coap_front *f, uint64_t now_ms)
{
    struct coap_peer *cp = f->retx_head;

    while (cp != NULL) {
        struct coap_peer *next = cp->retx_next;

        retx_peer(cp, now_ms);
        cp = next;
    }
}
