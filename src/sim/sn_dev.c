/* MQTT-SN client of a simulated sensor: connection, registration,
 * publishing, keep-alive and sleep. */
#include "sim/sn_dev.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "sim/model.h"

vigil_err sn_dev_init(struct sn_dev *d, const struct sn_dev_config *cfg)
{
    size_t id_len = cfg->client_id ? strlen(cfg->client_id) : 0;
    struct model_rng rng;

    memset(d, 0, sizeof *d);
    d->will_topic = -1;
    if (id_len == 0 || id_len > SN_MAX_CLIENT_ID || cfg->n_topics == 0 ||
        cfg->n_topics > SN_DEV_MAX_TOPICS || cfg->will_topic >= (int)cfg->n_topics)
        return VIGIL_ERR_INVALID;
    memcpy(d->client_id, cfg->client_id, id_len + 1);
    d->cfg = *cfg;
    d->keep_alive_s = cfg->keep_alive_s;
    for (size_t i = 0; i < cfg->n_topics; i++) {
        if (strlen(cfg->topics[i]) == 0 || strlen(cfg->topics[i]) > SN_DEV_MAX_TOPIC_LEN)
            return VIGIL_ERR_INVALID;
        d->topics[i] = vigil_strdup(cfg->topics[i]);
        if (d->topics[i] == NULL)
            return VIGIL_ERR_NOMEM;
        d->n_topics++;
    }
    if (cfg->will_topic >= 0) {
        d->will_msg = vigil_strdup(cfg->will_msg ? cfg->will_msg : "");
        if (d->will_msg == NULL)
            return VIGIL_ERR_NOMEM;
        d->will_topic = cfg->will_topic;
    }
    model_rng_seed(&rng, cfg->seed);
    d->next_msg_id = (uint16_t)model_rng_next(&rng);
    return VIGIL_OK;
}

static void pop_head(struct sn_dev *d)
{
    vigil_free(d->queue[d->q_head].payload);
    memset(&d->queue[d->q_head], 0, sizeof d->queue[d->q_head]);
    d->q_head = (d->q_head + 1) % SN_DEV_QUEUE;
    d->q_len--;
}

void sn_dev_free(struct sn_dev *d)
{
    while (d->q_len > 0)
        pop_head(d);
    for (size_t i = 0; i < d->n_topics; i++)
        vigil_free(d->topics[i]);
    vigil_free(d->will_msg);
    d->n_topics = 0;
    d->will_msg = NULL;
}

enum sn_dev_state sn_dev_state(const struct sn_dev *d)
{
    return (enum sn_dev_state)d->state;
}

static uint16_t new_msg_id(struct sn_dev *d)
{
    if (d->next_msg_id == 0)
        d->next_msg_id = 1;
    return d->next_msg_id++;
}

static struct sn_str str_of(const char *s)
{
    return (struct sn_str){(const uint8_t *)s, (uint16_t)strlen(s)};
}

/* Encodes and sends m. With keep, the bytes stay in d->wire for
 * retransmission and the transaction timer starts. */
static void send_msg(struct sn_dev *d, const struct sn_msg *m, bool keep, uint64_t now_ms)
{
    uint8_t local[SN_DEV_MAX_PAYLOAD + SN_DEV_MAX_TOPIC_LEN + 16];
    uint8_t *out = keep ? d->wire : local;
    size_t n = sn_encode(m, out, keep ? sizeof d->wire : sizeof local);

    if (n == 0)
        return;
    if (keep) {
        d->wire_len = n;
        d->tries = 0;
        d->due_ms = now_ms + SN_DEV_RETRY_MS;
    }
    d->cfg.send(d->cfg.user, out, n);
}

static void send_short(struct sn_dev *d, uint8_t type, uint16_t msg_id, uint64_t now_ms)
{
    struct sn_msg m;

    memset(&m, 0, sizeof m);
    m.type = type;
    m.msg_id = msg_id;
    send_msg(d, &m, type == SN_PUBREL, now_ms);
}

static void forget_registrations(struct sn_dev *d)
{
    memset(d->topic_ids, 0, sizeof d->topic_ids);
    memset(d->topic_refused, 0, sizeof d->topic_refused);
}

void sn_dev_connect(struct sn_dev *d, uint64_t now_ms)
{
    bool resuming = d->state == SN_DEV_ASLEEP || d->state == SN_DEV_AWAKE;
    struct sn_msg m;

    memset(&m, 0, sizeof m);
    m.type = SN_CONNECT;
    m.flags.clean_session = !resuming;
    m.flags.will = !resuming && d->will_topic >= 0;
    m.protocol_id = SN_PROTOCOL_ID;
    m.duration = d->keep_alive_s;
    m.client_id = str_of(d->client_id);
    if (!resuming)
        forget_registrations(d);
    d->state = SN_DEV_CONNECTING;
    d->waiting = SN_CONNECT;
    d->ping_outstanding = false;
    d->last_rx_ms = now_ms;
    send_msg(d, &m, true, now_ms);
}

void sn_dev_link_down(struct sn_dev *d)
{
    d->state = SN_DEV_OFFLINE;
    d->waiting = 0;
    d->sleeping = false;
    d->ping_outstanding = false;
    forget_registrations(d);
}

static void fail(struct sn_dev *d, const char *why)
{
    sn_dev_link_down(d);
    if (d->cfg.lost)
        d->cfg.lost(d->cfg.user, why);
}

/* Starts the next transaction while ACTIVE: registrations first, then the
 * queued QoS 1/2 messages in order. */
static void pump(struct sn_dev *d, uint64_t now_ms)
{
    struct sn_msg m;

    while (d->state == SN_DEV_ACTIVE && d->waiting == 0) {
        memset(&m, 0, sizeof m);
        for (size_t i = 0; i < d->n_topics; i++) {
            if (d->topic_ids[i] != 0 || d->topic_refused[i])
                continue;
            m.type = SN_REGISTER;
            m.msg_id = d->msg_id = new_msg_id(d);
            m.topic_name = str_of(d->topics[i]);
            d->topic_index = (uint8_t)i;
            d->waiting = SN_REGISTER;
            send_msg(d, &m, true, now_ms);
            return;
        }
        if (d->q_len == 0)
            return;
        if (d->topic_refused[d->queue[d->q_head].topic]) {
            d->counters.lost++;
            pop_head(d);
            continue;
        }
        m.type = SN_PUBLISH;
        m.flags.qos = (int8_t)d->queue[d->q_head].qos;
        m.flags.topic_id_type = SN_TOPIC_NORMAL;
        m.topic_id = d->topic_ids[d->queue[d->q_head].topic];
        m.msg_id = d->msg_id = new_msg_id(d);
        m.data = (struct sn_str){d->queue[d->q_head].payload, d->queue[d->q_head].len};
        d->waiting = SN_PUBLISH;
        d->counters.published[m.flags.qos]++;
        send_msg(d, &m, true, now_ms);
        return;
    }
}

static vigil_err publish_qos0(struct sn_dev *d, size_t topic, const uint8_t *payload, size_t len,
                              uint64_t now_ms)
{
    struct sn_msg m;

    if (d->state != SN_DEV_ACTIVE)
        return VIGIL_ERR_CLOSED;
    if (d->topic_ids[topic] == 0) {
        d->counters.unregistered++;
        return VIGIL_ERR_CLOSED;
    }
    memset(&m, 0, sizeof m);
    m.type = SN_PUBLISH;
    m.flags.topic_id_type = SN_TOPIC_NORMAL;
    m.topic_id = d->topic_ids[topic];
    m.data = (struct sn_str){payload, (uint16_t)len};
    d->counters.published[0]++;
    send_msg(d, &m, false, now_ms);
    return VIGIL_OK;
}

vigil_err sn_dev_publish(struct sn_dev *d, size_t topic, uint8_t qos, const uint8_t *payload,
                         size_t len, uint64_t now_ms)
{
    struct sn_dev_out *o;

    if (topic >= d->n_topics || qos > 2 || len > SN_DEV_MAX_PAYLOAD)
        return VIGIL_ERR_INVALID;
    if (qos == 0)
        return publish_qos0(d, topic, payload, len, now_ms);
    if (d->q_len == SN_DEV_QUEUE) {
        d->counters.lost++;
        return VIGIL_ERR_LIMIT;
    }
    o = &d->queue[(d->q_head + d->q_len) % SN_DEV_QUEUE];
    o->payload = len > 0 ? vigil_memdup(payload, len) : NULL;
    if (len > 0 && o->payload == NULL)
        return VIGIL_ERR_NOMEM;
    o->topic = (uint8_t)topic;
    o->qos = qos;
    o->len = (uint16_t)len;
    d->q_len++;
    pump(d, now_ms);
    return VIGIL_OK;
}

/* ---- Input ------------------------------------------------------------- */

static void on_connack(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    char why[64];

    if (d->waiting != SN_CONNECT)
        return;
    d->waiting = 0;
    if (m->return_code != SN_RC_ACCEPTED) {
        d->counters.refused++;
        snprintf(why, sizeof why, "connection refused with return code 0x%02x",
                 m->return_code);
        fail(d, why);
        return;
    }
    d->counters.connects++;
    d->state = SN_DEV_ACTIVE;
    if (d->cfg.connected)
        d->cfg.connected(d->cfg.user);
    pump(d, now_ms);
}

static void on_will_request(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    struct sn_msg r;

    if (d->waiting != SN_CONNECT || d->will_topic < 0)
        return;
    memset(&r, 0, sizeof r);
    if (m->type == SN_WILLTOPICREQ) {
        r.type = SN_WILLTOPIC;
        r.flags.qos = 1;
        r.topic_name = str_of(d->topics[d->will_topic]);
    } else {
        r.type = SN_WILLMSG;
        r.data = str_of(d->will_msg);
    }
    send_msg(d, &r, false, now_ms);
    d->due_ms = now_ms + SN_DEV_RETRY_MS;
}

static void on_regack(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    if (d->waiting != SN_REGISTER || m->msg_id != d->msg_id)
        return;
    d->waiting = 0;
    if (m->return_code == SN_RC_ACCEPTED && m->topic_id != 0 && m->topic_id != 0xFFFF) {
        d->topic_ids[d->topic_index] = m->topic_id;
    } else {
        d->topic_refused[d->topic_index] = true;
        d->counters.rejected++;
    }
    pump(d, now_ms);
}

/* Forgets the registration of topic id, to be registered again. */
static void invalidate_topic_id(struct sn_dev *d, uint16_t topic_id)
{
    for (size_t i = 0; i < d->n_topics; i++)
        if (d->topic_ids[i] == topic_id)
            d->topic_ids[i] = 0;
}

static void on_puback(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    bool ours = d->waiting == SN_PUBLISH && m->msg_id == d->msg_id && m->msg_id != 0;

    if (m->return_code == SN_RC_INVALID_TOPIC_ID)
        invalidate_topic_id(d, m->topic_id);
    if (!ours) {
        pump(d, now_ms);
        return;
    }
    d->waiting = 0;
    if (m->return_code == SN_RC_ACCEPTED) {
        d->counters.delivered[d->queue[d->q_head].qos]++;
        pop_head(d);
    } else if (m->return_code != SN_RC_INVALID_TOPIC_ID) {
        /* Congestion or not supported: the message is not sent again. */
        d->counters.rejected++;
        pop_head(d);
    }
    pump(d, now_ms);
}

static void on_pubrec(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    if (m->msg_id != d->msg_id)
        return;
    if (d->waiting == SN_PUBLISH && d->queue[d->q_head].qos == 2) {
        d->waiting = SN_PUBREL;
        send_short(d, SN_PUBREL, m->msg_id, now_ms);
    } else if (d->waiting == SN_PUBREL) {
        send_short(d, SN_PUBREL, m->msg_id, now_ms);
    }
}

static void on_pubcomp(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    if (d->waiting != SN_PUBREL || m->msg_id != d->msg_id)
        return;
    d->waiting = 0;
    d->counters.delivered[2]++;
    pop_head(d);
    pump(d, now_ms);
}

static void on_disconnect(struct sn_dev *d)
{
    if (d->waiting != SN_DISCONNECT) {
        fail(d, "disconnected by the gateway");
        return;
    }
    d->waiting = 0;
    if (d->sleeping) {
        d->state = SN_DEV_ASLEEP;
        d->counters.sleeps++;
    } else {
        d->state = SN_DEV_OFFLINE;
    }
}

static void on_pingresp(struct sn_dev *d)
{
    d->ping_outstanding = false;
    if (d->waiting == SN_PINGREQ) {
        d->waiting = 0;
        d->state = SN_DEV_ASLEEP;
        d->counters.wakes++;
    }
}

/* Messages the gateway sends on its own: REGISTER and PUBLISH for
 * subscriptions this sensor does not make, acknowledged all the same. */
static void on_gateway_message(struct sn_dev *d, const struct sn_msg *m, uint64_t now_ms)
{
    struct sn_msg r;

    memset(&r, 0, sizeof r);
    r.topic_id = m->topic_id;
    r.msg_id = m->msg_id;
    if (m->type == SN_REGISTER) {
        r.type = SN_REGACK;
    } else if (m->type == SN_PUBREL) {
        r.type = SN_PUBCOMP;
    } else if (m->flags.qos == 1) {
        r.type = SN_PUBACK;
    } else if (m->flags.qos == 2) {
        r.type = SN_PUBREC;
    } else {
        return;
    }
    send_msg(d, &r, false, now_ms);
}

void sn_dev_input(struct sn_dev *d, const uint8_t *data, size_t len, uint64_t now_ms)
{
    struct sn_error err;
    struct sn_msg m;

    if (sn_decode(data, len, &m, &err) != VIGIL_OK || d->state == SN_DEV_OFFLINE)
        return;
    d->last_rx_ms = now_ms;
    switch (m.type) {
    case SN_CONNACK: on_connack(d, &m, now_ms); break;
    case SN_WILLTOPICREQ:
    case SN_WILLMSGREQ: on_will_request(d, &m, now_ms); break;
    case SN_REGACK: on_regack(d, &m, now_ms); break;
    case SN_PUBACK: on_puback(d, &m, now_ms); break;
    case SN_PUBREC: on_pubrec(d, &m, now_ms); break;
    case SN_PUBCOMP: on_pubcomp(d, &m, now_ms); break;
    case SN_PINGRESP: on_pingresp(d); break;
    case SN_DISCONNECT: on_disconnect(d); break;
    case SN_REGISTER:
    case SN_PUBLISH:
    case SN_PUBREL: on_gateway_message(d, &m, now_ms); break;
    default: break;
    }
}

/* ---- Timers, sleep, disconnect ----------------------------------------- */

static void retransmit(struct sn_dev *d, uint64_t now_ms)
{
    /* The DUP flag of a PUBLISH: the Flags byte follows the MsgType. */
    if (d->waiting == SN_PUBLISH)
        d->wire[d->wire[0] == 0x01 ? 4 : 2] |= 0x80;
    d->tries++;
    d->counters.retries++;
    d->due_ms = now_ms + SN_DEV_RETRY_MS;
    d->cfg.send(d->cfg.user, d->wire, d->wire_len);
}

static void transaction_timeout(struct sn_dev *d, uint64_t now_ms)
{
    if (d->tries < SN_DEV_RETRIES) {
        retransmit(d, now_ms);
        return;
    }
    if (d->waiting == SN_DISCONNECT) {
        /* The gateway will notice the silence; the device moves on. */
        d->waiting = 0;
        d->state = d->sleeping ? SN_DEV_ASLEEP : SN_DEV_OFFLINE;
        return;
    }
    fail(d, d->waiting == SN_CONNECT ? "no CONNACK from the gateway"
                                     : "no answer from the gateway");
}

static void keep_alive(struct sn_dev *d, uint64_t now_ms)
{
    struct sn_msg m;

    if (d->state != SN_DEV_ACTIVE || d->keep_alive_s == 0)
        return;
    if (d->ping_outstanding && now_ms >= d->ping_due_ms) {
        if (d->ping_tries >= SN_DEV_RETRIES) {
            fail(d, "no PINGRESP from the gateway");
            return;
        }
        d->ping_tries++;
        d->counters.retries++;
    } else if (d->ping_outstanding ||
               now_ms - d->last_rx_ms < (uint64_t)d->keep_alive_s * 1000) {
        return;
    } else {
        d->ping_outstanding = true;
        d->ping_tries = 0;
        d->counters.pings++;
    }
    memset(&m, 0, sizeof m);
    m.type = SN_PINGREQ;
    d->ping_due_ms = now_ms + SN_DEV_RETRY_MS;
    send_msg(d, &m, false, now_ms);
}

void sn_dev_tick(struct sn_dev *d, uint64_t now_ms)
{
    if (d->waiting != 0 && now_ms >= d->due_ms)
        transaction_timeout(d, now_ms);
    keep_alive(d, now_ms);
}

void sn_dev_disconnect(struct sn_dev *d, uint16_t sleep_s, uint64_t now_ms)
{
    struct sn_msg m;

    if (d->state != SN_DEV_ACTIVE)
        return;
    memset(&m, 0, sizeof m);
    m.type = SN_DISCONNECT;
    m.has_duration = sleep_s > 0;
    m.duration = sleep_s;
    /* A QoS 1/2 message in flight stays at the head of the queue. */
    d->waiting = SN_DISCONNECT;
    d->sleeping = sleep_s > 0;
    d->ping_outstanding = false;
    d->state = SN_DEV_DISCONNECTING;
    send_msg(d, &m, true, now_ms);
}

void sn_dev_wake(struct sn_dev *d, uint64_t now_ms)
{
    struct sn_msg m;

    if (d->state != SN_DEV_ASLEEP)
        return;
    memset(&m, 0, sizeof m);
    m.type = SN_PINGREQ;
    m.client_id = str_of(d->client_id);
    d->waiting = SN_PINGREQ;
    d->state = SN_DEV_AWAKE;
    send_msg(d, &m, true, now_ms);
}

bool sn_dev_idle(const struct sn_dev *d)
{
    if (d->waiting != 0 || d->q_len > 0)
        return false;
    for (size_t i = 0; i < d->n_topics; i++)
        if (d->topic_ids[i] == 0 && !d->topic_refused[i])
            return false;
    return true;
}
