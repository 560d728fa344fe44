/* MQTT-SN gateway, client to gateway: REGISTER (section 6.5), PUBLISH at
 * QoS -1 to 2 (6.6 to 6.8) with acknowledgements that wait for the store,
 * and SUBSCRIBE and UNSUBSCRIBE (6.9). */
#include <string.h>

#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"
#include "front/mqttsn_internal.h"
#include "proto/mqtt/mqtt.h"

const char *sn_resolve_topic(struct sn_client *c, uint8_t type, uint16_t id, char *buf,
                             size_t cap, size_t *len)
{
    struct sn_topic *e;

    switch (type) {
    case SN_TOPIC_NORMAL:
        e = sn_topics_get(&c->topics, id);
        if (e == NULL)
            return NULL;
        *len = e->len;
        return e->name;
    case SN_TOPIC_PREDEFINED:
        *len = sn_predefined_topic(&c->f->hub->cfg.gateway, id, c->gw.device, buf, cap);
        return *len > 0 ? buf : NULL;
    case SN_TOPIC_SHORT:
        buf[0] = (char)(id >> 8);
        buf[1] = (char)id;
        buf[2] = '\0';
        *len = 2;
        return buf;
    default:
        return NULL;
    }
}

/* ---- acknowledgements that wait for the store ---- */

static void send_puback(struct sn_client *c, uint16_t topic_id, uint16_t msg_id, uint8_t code)
{
    struct sn_msg m = {.type = SN_PUBACK, .topic_id = topic_id, .msg_id = msg_id,
                       .return_code = code};

    sn_send(c, &m);
}

static void send_msg_id(struct sn_client *c, uint8_t type, uint16_t msg_id)
{
    struct sn_msg m = {.type = type, .msg_id = msg_id};

    sn_send(c, &m);
}

static void unlink_ack(struct sn_client *c, struct sn_ack *a)
{
    for (struct sn_ack **pp = &c->acks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            return;
        }
    }
}

static void on_durable(void *arg, vigil_err rc)
{
    struct sn_ack *a = arg;
    struct sn_client *c = a->c;

    if (c != NULL) {
        unlink_ack(c, a);
        c->in_pending--;
        if (rc != VIGIL_OK) {
            log_warn("mqttsn %s: store failed before acknowledging MsgId %u: %s", c->gw.peer,
                     a->msg_id, vigil_strerror(rc));
            sn_idset_remove(&c->inqos2, a->msg_id);
            send_puback(c, a->topic_id, a->msg_id, SN_RC_CONGESTION);
        } else if (a->type == SN_PUBACK) {
            send_puback(c, a->topic_id, a->msg_id, SN_RC_ACCEPTED);
        } else {
            send_msg_id(c, SN_PUBREC, a->msg_id);
        }
    }
    sn_front_unref(a->f);
    vigil_free(a);
}

/* Queues PUBACK or PUBREC for m until the published message is durable.
 * Returns false when out of memory. */
static bool ack_when_durable(struct sn_client *c, uint8_t type, const struct sn_msg *m)
{
    struct sn_ack *a = vigil_calloc(1, sizeof *a), **pp;

    if (a == NULL)
        return false;
    a->f = c->f;
    a->c = c;
    a->type = type;
    a->msg_id = m->msg_id;
    a->topic_id = m->topic_id;
    for (pp = &c->acks; *pp != NULL; pp = &(*pp)->next) {
    }
    *pp = a;
    c->in_pending++;
    c->f->refs++;
    gw_when_durable(c->f->hub, on_durable, a);
    return true;
}

void sn_acks_detach(struct sn_client *c)
{
    for (struct sn_ack *a = c->acks; a != NULL; a = a->next)
        a->c = NULL;
    c->acks = NULL;
    c->in_pending = 0;
}

static bool ack_pending(const struct sn_client *c, uint16_t msg_id)
{
    for (const struct sn_ack *a = c->acks; a != NULL; a = a->next) {
        if (a->type == SN_PUBREC && a->msg_id == msg_id)
            return true;
    }
    return false;
}

/* Checks that topic, a name or filter from the client, is well-formed
 * UTF-8 without U+0000, as MQTT requires of every topic, and emits a
 * malformed event naming the message type when it is not. */
static bool topic_utf8_valid(struct sn_client *c, const char *type, const char *topic, size_t len)
{
    char detail[96];

    if (mqtt_utf8_valid((const uint8_t *)topic, len))
        return true;
    snprintf(detail, sizeof detail, "%s topic is not well-formed UTF-8 or contains U+0000",
             type);
    sn_malformed(c, "MQTT-SN-1.2:5.3.12", detail, len);
    return false;
}

/* ---- PUBLISH ---- */

static void unknown_topic_id(struct sn_client *c, const struct sn_msg *m)
{
    bool predefined = m->flags.topic_id_type == SN_TOPIC_PREDEFINED;
    char detail[96];

    snprintf(detail, sizeof detail, "PUBLISH to unknown %s topic id %u",
             predefined ? "predefined" : "normal", m->topic_id);
    sn_malformed(c, predefined ? "MQTT-SN-1.2:6.7" : "MQTT-SN-1.2:6.6", detail, m->data.len);
    if (m->flags.qos >= 0)
        send_puback(c, m->topic_id, m->msg_id, SN_RC_INVALID_TOPIC_ID);
}

static uint8_t publish_code(enum gw_pub_result r)
{
    switch (r) {
    case GW_PUB_OK: return SN_RC_ACCEPTED;
    case GW_PUB_DENIED: return SN_RC_NOT_SUPPORTED;
    case GW_PUB_BAD_TOPIC: return SN_RC_INVALID_TOPIC_ID;
    default: return SN_RC_CONGESTION;
    }
}

/* QoS 1 and 2 take one of receive_maximum slots until acknowledged, and a
 * QoS 2 MsgId is remembered until PUBREL. Returns the rejection code, or
 * SN_RC_ACCEPTED. */
static uint8_t admit(struct sn_client *c, const struct sn_msg *m)
{
    const struct config_limits *lim = &c->f->hub->cfg.limits;
    vigil_err rc;

    if (m->flags.qos <= 0)
        return SN_RC_ACCEPTED;
    if (c->in_pending >= lim->receive_maximum) {
        sn_event(c, VIGIL_EV_LIMIT, NULL, 0, "QoS 1/2 PUBLISH over receive_maximum");
        return SN_RC_CONGESTION;
    }
    if (m->flags.qos < 2)
        return SN_RC_ACCEPTED;
    rc = sn_idset_add(&c->inqos2, m->msg_id, lim->receive_maximum);
    if (rc == VIGIL_ERR_LIMIT)
        sn_event(c, VIGIL_EV_LIMIT, NULL, 0, "QoS 2 PUBLISH awaiting PUBREL over receive_maximum");
    return rc == VIGIL_OK ? SN_RC_ACCEPTED : SN_RC_CONGESTION;
}

static void publish(struct sn_client *c, const struct sn_msg *m, const char *topic, size_t len)
{
    uint8_t qos = m->flags.qos < 0 ? 0 : (uint8_t)m->flags.qos;
    uint8_t code = admit(c, m);
    enum gw_pub_result r;

    if (code == SN_RC_ACCEPTED) {
        r = gw_publish(&c->gw, topic, len, m->data.p, m->data.len, qos, m->flags.retain);
        code = publish_code(r);
    }
    if (m->flags.qos < 0)
        return;
    if (code == SN_RC_ACCEPTED && qos > 0 &&
        !ack_when_durable(c, qos == 1 ? SN_PUBACK : SN_PUBREC, m))
        code = SN_RC_CONGESTION;
    if (code != SN_RC_ACCEPTED) {
        if (qos == 2)
            sn_idset_remove(&c->inqos2, m->msg_id);
        send_puback(c, m->topic_id, m->msg_id, code);
    }
}

/* QoS -1 needs no connection: on a listener that allows anonymous
 * clients the sender publishes anonymously, on DTLS as the device its
 * handshake proved. Nothing is ever sent back. */
static bool login_for_qos_minus_one(struct sn_client *c)
{
    vigil_err rc;

    if (c->gw.logged_in)
        return true;
    if (c->peer->identity[0] != '\0')
        rc = gw_login_device(&c->gw, c->peer->identity, "");
    else
        rc = gw_login_anonymous(&c->gw, c->f->l, "");
    return rc == VIGIL_OK;
}

void sn_on_publish(struct sn_client *c, const struct sn_msg *m)
{
    char buf[512];
    size_t len = 0;
    const char *topic;

    if (m->flags.qos < 0 && !sn_connected(c) && c->state == SN_ST_IDLE) {
        if (!login_for_qos_minus_one(c))
            return;
    } else if (!sn_connected(c)) {
        sn_malformed(c, "MQTT-SN-1.2:6.2", "PUBLISH without a connection", 0);
        sn_send_simple(c, SN_DISCONNECT);
        return;
    }
    topic = sn_resolve_topic(c, m->flags.topic_id_type, m->topic_id, buf, sizeof buf, &len);
    if (topic == NULL) {
        unknown_topic_id(c, m);
        return;
    }
    if (m->flags.qos == 2 && sn_idset_has(&c->inqos2, m->msg_id)) {
        /* A retransmission of a message already published: acknowledge it
         * again unless its first PUBREC still waits for the store. */
        if (!ack_pending(c, m->msg_id))
            send_msg_id(c, SN_PUBREC, m->msg_id);
        return;
    }
    if (m->flags.topic_id_type == SN_TOPIC_SHORT && !topic_utf8_valid(c, "PUBLISH", topic, len)) {
        if (m->flags.qos >= 0)
            send_puback(c, m->topic_id, m->msg_id, SN_RC_INVALID_TOPIC_ID);
        return;
    }
    publish(c, m, topic, len);
}

void sn_on_pubrel(struct sn_client *c, const struct sn_msg *m)
{
    if (ack_pending(c, m->msg_id))
        return;
    sn_idset_remove(&c->inqos2, m->msg_id);
    send_msg_id(c, SN_PUBCOMP, m->msg_id);
}

/* ---- REGISTER ---- */

static void send_regack(struct sn_client *c, uint16_t topic_id, uint16_t msg_id, uint8_t code)
{
    struct sn_msg m = {.type = SN_REGACK, .topic_id = topic_id, .msg_id = msg_id,
                       .return_code = code};

    sn_send(c, &m);
}

static bool name_acceptable(struct sn_client *c, const char *name, size_t len)
{
    return len <= c->f->hub->cfg.limits.max_topic_length && topic_name_valid(name, len) &&
           memchr(name, '\0', len) == NULL;
}

void sn_on_register(struct sn_client *c, const struct sn_msg *m)
{
    const char *name = (const char *)m->topic_name.p;
    uint16_t id = 0;
    vigil_err rc;

    /* 0x03 "not supported", as for any other invalid name: 0x02 "invalid
     * topic id" is about an id, and this client has none for the name. */
    if (!topic_utf8_valid(c, "REGISTER", name, m->topic_name.len)) {
        send_regack(c, 0, m->msg_id, SN_RC_NOT_SUPPORTED);
        return;
    }
    if (!name_acceptable(c, name, m->topic_name.len)) {
        sn_malformed(c, "MQTT-SN-1.2:5.3.12", "REGISTER TopicName is not a valid topic name",
                     m->topic_name.len);
        send_regack(c, 0, m->msg_id, SN_RC_NOT_SUPPORTED);
        return;
    }
    rc = sn_topics_add(&c->topics, name, m->topic_name.len, &id);
    if (rc != VIGIL_OK) {
        if (rc == VIGIL_ERR_LIMIT)
            sn_event(c, VIGIL_EV_LIMIT, name, m->topic_name.len, "topic ids per client exceeded");
        send_regack(c, 0, m->msg_id, SN_RC_CONGESTION);
        return;
    }
    sn_topics_get(&c->topics, id)->known = true;
    send_regack(c, id, m->msg_id, SN_RC_ACCEPTED);
}

/* ---- SUBSCRIBE and UNSUBSCRIBE ---- */

/* The filter a SUBSCRIBE or UNSUBSCRIBE names, into buf when it must be
 * built. Returns NULL for an unknown predefined id. */
static const char *filter_of(struct sn_client *c, const struct sn_msg *m, char *buf, size_t cap,
                             size_t *len)
{
    if (m->flags.topic_id_type == SN_TOPIC_NORMAL) {
        *len = m->topic_name.len;
        return (const char *)m->topic_name.p;
    }
    return sn_resolve_topic(c, m->flags.topic_id_type, m->topic_id, buf, cap, len);
}

static void send_suback(struct sn_client *c, const struct sn_msg *m, uint8_t qos,
                        uint16_t topic_id, uint8_t code)
{
    struct sn_msg r = {.type = SN_SUBACK, .msg_id = m->msg_id, .topic_id = topic_id,
                       .return_code = code};

    r.flags.qos = (int8_t)qos;
    sn_send(c, &r);
}

static uint8_t subscribe_code(vigil_err rc)
{
    switch (rc) {
    case VIGIL_OK: return SN_RC_ACCEPTED;
    case VIGIL_ERR_AUTH:
    case VIGIL_ERR_DENIED: return SN_RC_NOT_SUPPORTED;
    case VIGIL_ERR_INVALID: return SN_RC_INVALID_TOPIC_ID;
    default: return SN_RC_CONGESTION;
    }
}

/* The topic id SUBACK returns: the predefined id, or for a topic name
 * without wildcards its normal id (assigned now), else 0x0000. */
static uint16_t suback_topic_id(struct sn_client *c, const struct sn_msg *m, const char *filter,
                                size_t len)
{
    uint16_t id = 0;

    if (m->flags.topic_id_type == SN_TOPIC_PREDEFINED)
        return m->topic_id;
    if (m->flags.topic_id_type != SN_TOPIC_NORMAL || memchr(filter, '+', len) != NULL ||
        memchr(filter, '#', len) != NULL)
        return 0;
    if (sn_topics_add(&c->topics, filter, len, &id) != VIGIL_OK)
        return 0;
    sn_topics_get(&c->topics, id)->known = true;
    return id;
}

void sn_on_subscribe(struct sn_client *c, const struct sn_msg *m)
{
    char buf[512];
    size_t len = 0;
    const char *filter = filter_of(c, m, buf, sizeof buf, &len);
    uint8_t qos = (uint8_t)m->flags.qos, code;
    uint16_t id = 0;

    if (filter == NULL) {
        sn_malformed(c, "MQTT-SN-1.2:6.7", "SUBSCRIBE to an unknown predefined topic id", 0);
        send_suback(c, m, 0, m->topic_id, SN_RC_INVALID_TOPIC_ID);
        return;
    }
    if (!topic_utf8_valid(c, "SUBSCRIBE", filter, len)) {
        send_suback(c, m, 0, 0, SN_RC_INVALID_TOPIC_ID);
        return;
    }
    /* Retained messages delivered during gw_subscribe() wait for SUBACK. */
    c->holding = true;
    code = subscribe_code(gw_subscribe(&c->gw, filter, len, qos, SN_SUB_ID, true));
    if (code == SN_RC_ACCEPTED)
        id = suback_topic_id(c, m, filter, len);
    send_suback(c, m, code == SN_RC_ACCEPTED ? qos : 0, id, code);
    c->holding = false;
    sn_pump(c);
}

void sn_on_unsubscribe(struct sn_client *c, const struct sn_msg *m)
{
    char buf[512];
    size_t len = 0;
    const char *filter = filter_of(c, m, buf, sizeof buf, &len);
    struct sn_msg r = {.type = SN_UNSUBACK, .msg_id = m->msg_id};

    if (filter != NULL)
        gw_unsubscribe(&c->gw, filter, len);
    sn_send(c, &r);
}
