/* PUBLISH from a client: topic aliases, limits, access control, Receive
 * Maximum, QoS 2 duplicate detection, routing, and acknowledgements that
 * wait for the store. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"
#include "secmon/value.h"

static bool publish_fail(struct conn *c, uint8_t reason, const char *rule, const char *text)
{
    struct mqtt_error err = {reason, rule, text};

    conn_protocol_error(c, &err, MQTT_PUBLISH);
    return false;
}

/* Resolves the topic of a PUBLISH, applying and updating topic aliases.
 * Returns false after closing the connection. */
static bool publish_topic(struct conn *c, const struct mqtt_packet *pkt, const char **topic,
                          size_t *len)
{
    const struct mqtt_publish *pub = &pkt->publish;
    struct conn_extra *x;
    uint16_t alias;

    *topic = (const char *)pub->topic.p;
    *len = pub->topic.len;
    if (!(pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        if (*len == 0)
            return publish_fail(c, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.2-1", "empty topic without a topic alias");
        return true;
    }
    alias = pkt->props.topic_alias;
    if (alias == 0 || alias > c->hub->cfg.limits.topic_alias_maximum)
        return publish_fail(c, MQTT_RC_TOPIC_ALIAS_INVALID, "MQTT-3.3.2-9", "topic alias out of range");
    x = conn_extra(c);
    if (x == NULL)
        return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
    if (x->alias_in == NULL) {
        x->alias_in = vigil_calloc(c->hub->cfg.limits.topic_alias_maximum, sizeof *x->alias_in);
        if (x->alias_in == NULL)
            return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
        x->alias_in_cap = c->hub->cfg.limits.topic_alias_maximum;
    }
    if (*len > 0) {
        char *copy = vigil_strndup(*topic, *len);

        if (copy == NULL)
            return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
        vigil_free(x->alias_in[alias - 1]);
        x->alias_in[alias - 1] = copy;
        return true;
    }
    if (x->alias_in[alias - 1] == NULL)
        return publish_fail(c, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.4-?", "unknown topic alias");
    *topic = x->alias_in[alias - 1];
    *len = strlen(*topic);
    return true;
}

struct conn_extra *conn_extra(struct conn *c)
{
    if (c->extra == NULL) {
        c->extra = vigil_calloc(1, sizeof *c->extra);
        if (c->extra != NULL)
            vigil_map_init(&c->extra->alias_out);
    }
    return c->extra;
}

void conn_extra_free(struct conn *c)
{
    struct conn_extra *x = c->extra;

    if (x == NULL)
        return;
    for (uint16_t i = 0; i < x->alias_in_cap; i++)
        vigil_free(x->alias_in[i]);
    vigil_free(x->alias_in);
    vigil_map_free(&x->alias_out);
    while (x->acks_head != NULL) {
        struct pending_ack *a = x->acks_head;

        x->acks_head = a->next;
        vigil_free(a);
    }
    vigil_free(x);
    c->extra = NULL;
}

/* Called only once c->extra exists: a queued acknowledgement needs it. */
static void acks_flush(struct conn *c);

/* The publisher's acknowledgement (PUBACK, or PUBREC for QoS 2) of a
 * message routed to persistent sessions waits first for those sessions.
 * When each has acknowledged the message (or dropped it) before the store
 * wrote it, the store writes nothing and the acknowledgement needs no
 * fsync. After the commit window it waits for the store instead, as every
 * other acknowledgement does. */

static void wait_unlink(struct hub *hub, struct pending_ack *a)
{
    if (a->wprev != NULL)
        a->wprev->wnext = a->wnext;
    else
        hub->ack_wait_head = a->wnext;
    if (a->wnext != NULL)
        a->wnext->wprev = a->wprev;
    else
        hub->ack_wait_tail = a->wprev;
    a->wprev = a->wnext = NULL;
}

/* Ends a's wait for its message's subscribers. */
static void wait_end(struct hub *hub, struct pending_ack *a)
{
    wait_unlink(hub, a);
    a->msg->ack_waiter = NULL;
    msg_unref(a->msg);
    a->msg = NULL;
}

static void ack_durable(void *arg, vigil_err rc);

/* Moves a from waiting for subscribers to waiting for the store. The
 * connection reference passes to the barrier. */
static void wait_to_store(struct hub *hub, struct pending_ack *a)
{
    wait_end(hub, a);
    persist_barrier(hub, ack_durable, a);
}

static void on_ack_timer(uv_timer_t *t)
{
    struct hub *hub = t->data;
    uint64_t now = uv_now(hub->loop);

    while (hub->ack_wait_head != NULL && hub->ack_wait_head->due_ms <= now)
        wait_to_store(hub, hub->ack_wait_head);
    if (hub->ack_wait_head != NULL)
        uv_timer_start(&hub->ack_timer, on_ack_timer, hub->ack_wait_head->due_ms - now, 0);
}

void publish_ack_wait_init(struct hub *hub)
{
    uv_timer_init(hub->loop, &hub->ack_timer);
    hub->ack_timer.data = hub;
    hub->ack_timer_open = true;
}

void publish_ack_wait_close(struct hub *hub)
{
    while (hub->ack_wait_head != NULL)
        wait_to_store(hub, hub->ack_wait_head);
    publish_acks_ready(hub);
    if (hub->ack_timer_open) {
        uv_timer_stop(&hub->ack_timer);
        uv_close((uv_handle_t *)&hub->ack_timer, NULL);
        hub->ack_timer_open = false;
    }
}

/* Starts a's wait for the persistent sessions m was queued for. Returns
 * false when the store must be waited for at once. */
static bool wait_for_subscribers(struct conn *c, struct pending_ack *a, struct msg *m)
{
    struct hub *hub = c->hub;
    uint32_t window_ms = hub->cfg.store_commit_interval_us / 1000;

    if (m->ack_waiter != NULL || window_ms == 0 || !hub->ack_timer_open)
        return false;
    a->msg = msg_ref(m);
    m->ack_waiter = a;
    a->due_ms = uv_now(hub->loop) + window_ms;
    a->wprev = hub->ack_wait_tail;
    if (hub->ack_wait_tail != NULL)
        hub->ack_wait_tail->wnext = a;
    else
        hub->ack_wait_head = a;
    hub->ack_wait_tail = a;
    conn_ref(c);
    if (a == hub->ack_wait_head)
        uv_timer_start(&hub->ack_timer, on_ack_timer, window_ms, 0);
    return true;
}

void publish_ack_released(struct msg *m)
{
    struct pending_ack *a = m->ack_waiter;
    struct hub *hub;

    if (a == NULL)
        return;
    hub = a->conn->hub;
    wait_end(hub, a);
    /* Sent from publish_acks_ready(): this runs inside another client's
     * handler, where writing to the publisher could close it. a is marked
     * ready only there, so that no flush of an earlier acknowledgement
     * frees it while it is on the list. */
    a->wnext = NULL;
    if (hub->ack_ready_tail != NULL)
        hub->ack_ready_tail->wnext = a;
    else
        hub->ack_ready_head = a;
    hub->ack_ready_tail = a;
    uv_idle_start(&hub->flush_idle, hub_keep_polling);
}

void publish_acks_ready(struct hub *hub)
{
    struct pending_ack *a = hub->ack_ready_head;

    hub->ack_ready_head = hub->ack_ready_tail = NULL;
    while (a != NULL) {
        struct pending_ack *next = a->wnext;
        struct conn *c = a->conn;

        a->wnext = NULL;
        a->ready = true;
        acks_flush(c); /* which may free a */
        conn_unref(c);
        a = next;
    }
}

static void acks_flush(struct conn *c)
{
    struct conn_extra *x = c->extra;

    while (x->acks_head != NULL && x->acks_head->ready) {
        struct pending_ack *a = x->acks_head;
        struct mqtt_packet p = {.type = a->type, .packet_id = a->packet_id,
                                .reason_code = a->reason};

        x->acks_head = a->next;
        if (x->acks_head == NULL)
            x->acks_tail = NULL;
        if (!c->closing_handles) {
            conn_send(c, &p);
            if (a->type == MQTT_PUBACK && x->in_qos_pending > 0)
                x->in_qos_pending--;
        }
        vigil_free(a);
    }
    conn_flush(c);
}

static void ack_durable(void *arg, vigil_err rc)
{
    struct pending_ack *a = arg;
    struct conn *c = a->conn;

    if (rc != VIGIL_OK)
        log_error("conn %llu: store write failed; acknowledging PUBLISH %u anyway is unsafe, closing",
                  (unsigned long long)c->id, a->packet_id);
    a->ready = true;
    if (rc != VIGIL_OK && !c->closing_handles)
        conn_close(c, MQTT_RC_UNSPECIFIED, "store write failed");
    else
        acks_flush(c);
    conn_unref(c);
}

/* Queues a PUBACK or PUBREC (or a PUBREL, from conn_send_when_durable());
 * it goes out once everything written to the store before it is durable,
 * and after every earlier acknowledgement.
 * A non-NULL routed is a message that was routed and not retained (for QoS
 * 2, from a publisher without a stored session). If persistent sessions
 * have it, the acknowledgement may go out once each has acknowledged it. */
static void publish_ack(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason,
                        struct msg *routed)
{
    struct conn_extra *x = conn_extra(c);
    struct pending_ack *a = x != NULL ? vigil_calloc(1, sizeof *a) : NULL;

    if (a == NULL) {
        conn_close(c, MQTT_RC_UNSPECIFIED, "out of memory");
        return;
    }
    a->type = type;
    a->packet_id = packet_id;
    a->reason = c->version == MQTT_V5 ? reason : 0;
    a->conn = c;
    if (x->acks_tail != NULL)
        x->acks_tail->next = a;
    else
        x->acks_head = a;
    x->acks_tail = a;
    if (store_pending(c->hub->store) == 0) {
        a->ready = true;
        if (a == x->acks_head)
            acks_flush(c);
        return;
    }
    if (routed != NULL && routed->store_refs > 0 && wait_for_subscribers(c, a, routed))
        return;
    conn_ref(c);
    persist_barrier(c->hub, ack_durable, a);
}

void conn_send_when_durable(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason)
{
    publish_ack(c, type, packet_id, reason, NULL);
}

static struct msg *publish_msg(struct conn *c, const struct mqtt_packet *pkt, const char *topic,
                               size_t len)
{
    uint8_t small[1024];
    uint8_t *props = small;
    size_t plen = 0;
    struct msg *m;

    if (c->version == MQTT_V5 && pkt->props.raw.len > 0) {
        if (pkt->props.raw.len > sizeof small)
            props = vigil_malloc(pkt->props.raw.len);
        if (props == NULL)
            return NULL;
        plen = mqtt_encode_forward_props(&pkt->props, props, pkt->props.raw.len);
    }
    m = msg_new(topic, len, pkt->publish.payload.p, pkt->publish.payload.len, props, plen);
    if (props != small)
        vigil_free(props);
    if (m == NULL)
        return NULL;
    m->qos = pkt->publish.qos;
    m->retain = pkt->publish.retain;
    m->origin = c->session;
    if (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
        m->expiry_at = hub_now_s() + pkt->props.message_expiry;
    return m;
}

static void publish_event(struct conn *c, const struct mqtt_packet *pkt, const char *topic,
                          size_t len, enum vigil_event_type type, const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    VIGIL_EVENT_SET(&ev, topic, topic, len);
    ev.qos = pkt->publish.qos;
    ev.retain = pkt->publish.retain;
    ev.size = pkt->publish.payload.len;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    /* Measurements go to the engine for its physiological checks only; the
     * event log never shows them. */
    if (type == VIGIL_EV_PUBLISH)
        ev.has_value = secmon_extract_value(topic, len, pkt->publish.payload.p,
                                            pkt->publish.payload.len, ev.metric, sizeof ev.metric,
                                            &ev.value);
    hub_emit_ev(c->hub, c, &ev);
}

/* Answers a PUBLISH that is not routed (denied or invalid payload). For
 * QoS 1/2, handle_publish() made sure c->extra exists. */
static bool publish_reject(struct conn *c, const struct mqtt_packet *pkt, uint8_t reason)
{
    uint8_t qos = pkt->publish.qos;

    if (qos == 1) {
        c->extra->in_qos_pending++;
        publish_ack(c, MQTT_PUBACK, pkt->packet_id, reason, NULL);
    } else if (qos == 2) {
        c->extra->in_qos_pending++;
        /* MQTT 3.1.1 has no negative PUBREC: the exchange completes normally. */
        if (c->version != MQTT_V5 && !session_add_inqos2(c->session, pkt->packet_id))
            return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
        if (c->version == MQTT_V5)
            c->extra->in_qos_pending--;
        publish_ack(c, MQTT_PUBREC, pkt->packet_id, reason, NULL);
    }
    return !c->closing_handles;
}

bool handle_publish(struct conn *c, const struct mqtt_packet *pkt)
{
    struct hub *hub = c->hub;
    const struct config_limits *lim = &hub->cfg.limits;
    uint8_t qos = pkt->publish.qos;
    const char *topic;
    size_t len;
    struct msg *m;

    /* QoS 1/2 state is in c->extra, and every path below may need it. */
    if (qos > 0 && conn_extra(c) == NULL)
        return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
    if (!publish_topic(c, pkt, &topic, &len))
        return false;
    if (len > lim->max_topic_length || topic_levels(topic, len) > lim->max_topic_levels) {
        hub_emit(hub, c, VIGIL_EV_LIMIT, topic, len, NULL, "topic exceeds the length or level limit");
        return publish_fail(c, MQTT_RC_TOPIC_NAME_INVALID, "vigil-topic-limit",
                            "topic exceeds the length or level limit");
    }
    if (qos == 2 && session_has_inqos2(c->session, pkt->packet_id)) {
        /* A retransmission of a QoS 2 message already received. */
        publish_ack(c, MQTT_PUBREC, pkt->packet_id, 0, NULL);
        return !c->closing_handles;
    }
    /* MQTT 3.1.1 cannot announce a Receive Maximum, so its clients are held
     * only to the packet-id space. */
    if (qos > 0 && c->extra->in_qos_pending >= (c->version == MQTT_V5 ? lim->receive_maximum : 65535u))
        return publish_fail(c, MQTT_RC_RECEIVE_MAX_EXCEEDED, "MQTT-3.3.4-9",
                            "more unacknowledged QoS 1/2 PUBLISHes than Receive Maximum");
    hub->stats.msgs_received++;
    if (!acl_can_publish(c, topic, len)) {
        hub->stats.publish_denied++;
        publish_event(c, pkt, topic, len, VIGIL_EV_ACL_DENY, "publish not allowed");
        return publish_reject(c, pkt, MQTT_RC_NOT_AUTHORIZED);
    }
    if (c->version == MQTT_V5 && (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT)) &&
        pkt->props.payload_format == 1 &&
        !mqtt_utf8_valid(pkt->publish.payload.p, pkt->publish.payload.len)) {
        struct vigil_event ev;

        vigil_event_init(&ev, VIGIL_EV_MALFORMED);
        VIGIL_EVENT_SET(&ev, topic, topic, len);
        ev.rule = "MQTT-3.3.2.3.2";
        ev.size = pkt->publish.payload.len;
        VIGIL_EVENT_SET(&ev, detail, "payload is not UTF-8 as its format indicator claims", 51);
        hub_emit_ev(hub, c, &ev);
        return publish_reject(c, pkt, MQTT_RC_PAYLOAD_FORMAT_INVALID);
    }
    publish_event(c, pkt, topic, len, VIGIL_EV_PUBLISH, NULL);
    m = publish_msg(c, pkt, topic, len);
    if (m == NULL)
        return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
    if (m->retain)
        router_retain(hub, m, true);
    router_publish(hub, m, c->session);
    if (qos == 1) {
        c->extra->in_qos_pending++;
        publish_ack(c, MQTT_PUBACK, pkt->packet_id, 0, m->retain ? NULL : m);
    } else if (qos == 2) {
        c->extra->in_qos_pending++;
        if (!session_add_inqos2(c->session, pkt->packet_id)) {
            msg_unref(m);
            return publish_fail(c, MQTT_RC_UNSPECIFIED, NULL, "out of memory");
        }
        /* A stored publisher session's packet id must be durable before
         * PUBREC, so that a resent PUBLISH is known after a restart. */
        publish_ack(c, MQTT_PUBREC, pkt->packet_id, 0,
                    m->retain || c->session->stored ? NULL : m);
    }
    msg_unref(m);
    return !c->closing_handles;
}

bool handle_pubrel(struct conn *c, const struct mqtt_packet *pkt)
{
    struct mqtt_packet p = {.type = MQTT_PUBCOMP, .packet_id = pkt->packet_id};

    if (session_remove_inqos2(c->session, pkt->packet_id)) {
        /* An id restored with a persistent session can arrive before
         * c->extra exists, and then nothing is pending on this connection. */
        if (c->extra != NULL && c->extra->in_qos_pending > 0)
            c->extra->in_qos_pending--;
    } else {
        p.reason_code = MQTT_RC_PACKET_ID_NOT_FOUND;
    }
    conn_send(c, &p);
    return true;
}
