/* MQTT-SN gateway, gateway to client (section 6.10). The router's
 * deliveries are queued per client and sent one at a time. Each is
 * preceded by a REGISTER when the client has no topic id for its topic and
 * sent again after T_retry (section 6.13). Messages for a sleeping client
 * wait in the same queue, capped by gateway.mqttsn_sleep_queue. */
#include <string.h>

#include "core/log.h"
#include "front/mqttsn_internal.h"

/* Plaintext that fits one DTLS record on the path (udp_send's limit). */
#define SN_DTLS_MAX 1152u

static uint32_t queue_cap(const struct sn_client *c)
{
    const struct vigil_config *cfg = &c->f->hub->cfg;

    if (c->state == SN_ST_ASLEEP || c->state == SN_ST_AWAKE)
        return cfg->gateway.mqttsn_sleep_queue;
    return cfg->limits.max_queued_messages;
}

static bool fits(const struct sn_client *c, const struct sn_msg *m)
{
    size_t n = sn_encoded_size(m);

    return n > 0 && (!c->f->dtls || n <= SN_DTLS_MAX);
}

/* Checks that a PUBLISH of m fits one datagram. Its size depends only
 * on the payload, because the topic id field and MsgId are fixed size. */
static bool publish_fits(const struct sn_client *c, const struct msg *m)
{
    struct sn_msg p = {.type = SN_PUBLISH};

    if (m->payload_len > SN_MAX_LENGTH)
        return false;
    p.data = (struct sn_str){.p = m->payload, .len = (uint16_t)m->payload_len};
    return fits(c, &p);
}

static void on_deliver(struct gw_client *gc, struct msg *m, uint8_t qos, bool retain,
                       const uint32_t *sub_ids, uint8_t n_sub_ids)
{
    struct sn_client *c = (struct sn_client *)gc;
    bool asleep = c->state == SN_ST_ASLEEP, dropped = false;
    vigil_err rc;

    if (c->peer == NULL || !c->gw.logged_in)
        return;
    /* Dropped here rather than when sent, so that a message that can never
     * be delivered does not push deliverable ones out of a full queue. */
    if (!publish_fits(c, m)) {
        sn_event(c, VIGIL_EV_LIMIT, m->topic, m->topic_len,
                 "message too large for one MQTT-SN datagram");
        return;
    }
    rc = sn_outq_push(&c->out, m, qos, retain, queue_cap(c), c->out_state != SN_OUT_NONE,
                      &dropped);
    if (dropped) {
        sn_event(c, VIGIL_EV_LIMIT, m->topic, m->topic_len,
                 asleep ? "mqttsn_sleep_queue full, oldest message dropped"
                        : "max_queued_messages reached, oldest message dropped");
    }
    if (rc != VIGIL_OK)
        log_warn("mqttsn %s: out of memory queueing a message", c->gw.peer);
    if (!c->holding)
        sn_pump(c);
}

static bool on_online(const struct gw_client *gc)
{
    const struct sn_client *c = (const struct sn_client *)gc;

    return c->state == SN_ST_ACTIVE && c->out.n < queue_cap(c);
}

const struct gw_client_ops sn_client_ops = {.deliver = on_deliver, .online = on_online};

void sn_out_reset(struct sn_client *c)
{
    sn_outq_clear(&c->out);
    c->out_state = SN_OUT_NONE;
    c->out_tries = 0;
    c->out_reregistered = false;
}

static uint16_t next_msg_id(struct sn_client *c)
{
    uint16_t id = c->next_msg_id++;

    if (c->next_msg_id == 0)
        c->next_msg_id = 1;
    return id;
}

/* ---- sending the head of the queue ---- */

static void build_publish(const struct sn_client *c, struct sn_msg *p, bool dup)
{
    const struct sn_out *o = c->out.head;

    memset(p, 0, sizeof *p);
    p->type = SN_PUBLISH;
    p->flags.dup = dup;
    p->flags.qos = (int8_t)o->qos;
    p->flags.retain = o->retain;
    p->flags.topic_id_type = c->out_topic_type;
    p->topic_id = c->out_topic_id;
    p->msg_id = o->qos > 0 ? c->out_msg_id : 0;
    p->data = (struct sn_str){.p = o->msg->payload, .len = (uint16_t)o->msg->payload_len};
}

static void build_register(const struct sn_client *c, struct sn_msg *r)
{
    const struct sn_topic *e = sn_topics_get(&c->topics, c->out_topic_id);

    memset(r, 0, sizeof *r);
    r->type = SN_REGISTER;
    r->topic_id = c->out_topic_id;
    r->msg_id = c->out_msg_id;
    r->topic_name = (struct sn_str){.p = (const uint8_t *)e->name, .len = e->len};
}

/* Drops the head, which can never be sent, with a limit event. */
static void drop_head(struct sn_client *c, const char *why)
{
    const struct msg *m = c->out.head->msg;

    sn_event(c, VIGIL_EV_LIMIT, m->topic, m->topic_len, why);
    sn_outq_pop(&c->out);
    c->out_state = SN_OUT_NONE;
    c->out_reregistered = false;
}

/* Sends the head as PUBLISH; QoS 0 is done at once. */
static void send_publish(struct sn_client *c)
{
    const struct sn_out *o = c->out.head;
    struct sn_msg p;

    c->out_msg_id = o->qos > 0 ? next_msg_id(c) : 0;
    build_publish(c, &p, false);
    if (o->msg->payload_len > SN_MAX_LENGTH || !fits(c, &p)) {
        drop_head(c, "message too large for one MQTT-SN datagram");
        return;
    }
    sn_send(c, &p);
    if (o->qos == 0) {
        sn_outq_pop(&c->out);
        c->out_state = SN_OUT_NONE;
        c->out_reregistered = false;
        return;
    }
    c->out_state = o->qos == 1 ? SN_OUT_PUBACK : SN_OUT_PUBREC;
    c->out_sent_ms = sn_now(c->f);
    c->out_tries = 1;
}

static void send_register(struct sn_client *c, uint16_t id)
{
    struct sn_msg r;

    c->out_topic_type = SN_TOPIC_NORMAL;
    c->out_topic_id = id;
    c->out_msg_id = next_msg_id(c);
    build_register(c, &r);
    if (!fits(c, &r)) {
        drop_head(c, "topic too long for one MQTT-SN datagram");
        return;
    }
    sn_send(c, &r);
    c->out_state = SN_OUT_REGACK;
    c->out_sent_ms = sn_now(c->f);
    c->out_tries = 1;
}

/* Picks the topic id for the head: predefined, then a normal id the client
 * has, then a short name; otherwise the topic is registered first. */
static void start_head(struct sn_client *c)
{
    const struct msg *m = c->out.head->msg;
    const struct sn_topic *e;
    uint16_t id = 0;
    vigil_err rc;

    if (sn_predefined_find(&c->f->hub->cfg.gateway, c->gw.device, m->topic, m->topic_len, &id)) {
        c->out_topic_type = SN_TOPIC_PREDEFINED;
        c->out_topic_id = id;
        send_publish(c);
        return;
    }
    id = sn_topics_find(&c->topics, m->topic, m->topic_len);
    e = sn_topics_get(&c->topics, id);
    if (e != NULL && e->known) {
        c->out_topic_type = SN_TOPIC_NORMAL;
        c->out_topic_id = id;
        send_publish(c);
        return;
    }
    if (m->topic_len == 2) {
        c->out_topic_type = SN_TOPIC_SHORT;
        c->out_topic_id = (uint16_t)((uint8_t)m->topic[0] << 8 | (uint8_t)m->topic[1]);
        send_publish(c);
        return;
    }
    rc = sn_topics_add(&c->topics, m->topic, m->topic_len, &id);
    if (rc != VIGIL_OK) {
        drop_head(c, rc == VIGIL_ERR_LIMIT ? "topic ids per client exceeded"
                                           : "out of memory registering a topic");
        return;
    }
    send_register(c, id);
}

void sn_pump(struct sn_client *c)
{
    while (c->out_state == SN_OUT_NONE && c->out.head != NULL && !c->holding &&
           (c->state == SN_ST_ACTIVE || c->state == SN_ST_AWAKE))
        start_head(c);
    if (c->state == SN_ST_AWAKE && c->out_state == SN_OUT_NONE && c->out.head == NULL)
        sn_awake_done(c);
}

/* The head was delivered (or given up): the next one goes. */
static void head_done(struct sn_client *c)
{
    sn_outq_pop(&c->out);
    c->out_state = SN_OUT_NONE;
    c->out_reregistered = false;
    sn_pump(c);
}

bool sn_retry(struct sn_client *c, uint64_t now)
{
    struct sn_msg m;

    if (c->out_state == SN_OUT_NONE || c->out.head == NULL)
        return true;
    if (c->out_sent_ms != 0 && now - c->out_sent_ms < SN_RETRY_MS)
        return true;
    if (c->out_tries >= SN_RETRY_MAX) {
        sn_lose(c, "no acknowledgement after retransmissions");
        return false;
    }
    if (c->out_state == SN_OUT_REGACK) {
        build_register(c, &m);
    } else if (c->out_state == SN_OUT_PUBCOMP) {
        memset(&m, 0, sizeof m);
        m.type = SN_PUBREL;
        m.msg_id = c->out_msg_id;
    } else {
        build_publish(c, &m, true);
    }
    sn_send(c, &m);
    c->out_tries++;
    c->out_sent_ms = now;
    return true;
}

/* ---- acknowledgements from the client ---- */

static bool in_flight(const struct sn_client *c, uint8_t state, uint16_t msg_id)
{
    return c->out_state == state && c->out_msg_id == msg_id && c->out.head != NULL;
}

void sn_on_regack(struct sn_client *c, const struct sn_msg *m)
{
    struct sn_topic *e;

    if (!in_flight(c, SN_OUT_REGACK, m->msg_id))
        return;
    if (m->return_code == SN_RC_CONGESTION)
        return; /* resent after SN_RETRY_MS */
    if (m->return_code != SN_RC_ACCEPTED) {
        log_debug("mqttsn %s: client rejected REGISTER of topic id %u with 0x%02x", c->gw.peer,
                  c->out_topic_id, m->return_code);
        head_done(c);
        return;
    }
    e = sn_topics_get(&c->topics, c->out_topic_id);
    e->known = true;
    send_publish(c);
    sn_pump(c);
}

void sn_on_puback(struct sn_client *c, const struct sn_msg *m)
{
    struct sn_topic *e;

    /* A rejected topic id is registered again before its next use; a
     * client may send this for QoS 0 PUBLISHes too. */
    if (m->return_code == SN_RC_INVALID_TOPIC_ID && (e = sn_topics_get(&c->topics, m->topic_id)))
        e->known = false;
    if (!in_flight(c, SN_OUT_PUBACK, m->msg_id))
        return;
    if (m->return_code == SN_RC_CONGESTION)
        return; /* resent after SN_RETRY_MS */
    if (m->return_code == SN_RC_INVALID_TOPIC_ID && c->out_topic_type == SN_TOPIC_NORMAL &&
        !c->out_reregistered) {
        c->out_state = SN_OUT_NONE;
        c->out_reregistered = true;
        sn_pump(c);
        return;
    }
    head_done(c);
}

void sn_on_pubrec(struct sn_client *c, const struct sn_msg *m)
{
    struct sn_msg rel = {.type = SN_PUBREL, .msg_id = m->msg_id};

    if (in_flight(c, SN_OUT_PUBREC, m->msg_id)) {
        c->out_state = SN_OUT_PUBCOMP;
        c->out_sent_ms = sn_now(c->f);
        c->out_tries = 1;
    } else if (!in_flight(c, SN_OUT_PUBCOMP, m->msg_id)) {
        return;
    }
    sn_send(c, &rel);
}

void sn_on_pubcomp(struct sn_client *c, const struct sn_msg *m)
{
    if (in_flight(c, SN_OUT_PUBCOMP, m->msg_id))
        head_done(c);
}
