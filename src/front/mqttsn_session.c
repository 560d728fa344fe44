/* MQTT-SN gateway connections: CONNECT with the will exchange (section
 * 6.2), will updates (6.4), PINGREQ and keep-alive (6.11), DISCONNECT
 * (6.12) and sleeping clients (6.14). */
#include <string.h>

#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"
#include "front/mqttsn_internal.h"
#include "proto/mqtt/mqtt.h"

void sn_will_clear(struct sn_will *w)
{
    vigil_free(w->topic);
    vigil_free(w->payload);
    memset(w, 0, sizeof *w);
}

void sn_end(struct sn_client *c, const char *why, bool lost)
{
    char peer[sizeof c->gw.peer];

    if (lost && c->gw.logged_in && c->will.topic != NULL) {
        gw_publish_will(&c->gw, c->will.topic, c->will.topic_len, c->will.payload,
                        c->will.payload_len, c->will.qos, c->will.retain);
    }
    sn_will_clear(&c->will);
    if (c->gw.logged_in)
        gw_client_close(&c->gw, why);
    if (c->counted) {
        c->counted = false;
        c->f->n_clients--;
    }
    sn_out_reset(c);
    sn_acks_detach(c);
    sn_idset_free(&c->inqos2);
    sn_topics_free(&c->topics);
    sn_topics_init(&c->topics, SN_MAX_TOPICS);

    memcpy(peer, c->gw.peer, sizeof peer);
    gw_client_init(&c->gw, c->f->hub, &sn_client_ops, VIGIL_PROTO_MQTTSN, peer);
    c->state = SN_ST_IDLE;
    c->client_id[0] = '\0';
    c->duration = 0;
    c->deadline_ms = 0;
    c->clean_session = false;
    c->holding = false;
}

/* ---- login ---- */

/* Logs c in: as the device a DTLS handshake proved, or anonymously where
 * the listener allows it. Returns the CONNACK return code. */
static uint8_t login(struct sn_client *c, const char *client_id)
{
    struct udp_peer *p = c->peer;
    vigil_err rc;

    if (gw_peer_blocked(c->f->hub, c->gw.peer)) {
        sn_event(c, VIGIL_EV_RATE_LIMIT, NULL, 0, "address blocked after repeated failed logins");
        return SN_RC_NOT_SUPPORTED;
    }
    if (p->identity[0] != '\0')
        rc = gw_login_device(&c->gw, p->identity, client_id);
    else
        rc = gw_login_anonymous(&c->gw, c->f->l, client_id);
    if (rc == VIGIL_OK) {
        c->counted = true;
        c->f->n_clients++;
        return SN_RC_ACCEPTED;
    }
    log_info("mqttsn %s: CONNECT of '%s' rejected: %s", c->gw.peer, client_id,
             vigil_strerror(rc));
    return rc == VIGIL_ERR_AUTH || rc == VIGIL_ERR_DENIED ? SN_RC_NOT_SUPPORTED
                                                          : SN_RC_CONGESTION;
}

static void send_connack(struct sn_client *c, uint8_t code)
{
    struct sn_msg m = {.type = SN_CONNACK, .return_code = code};

    sn_send(c, &m);
}

/* The connection is set up: CONNACK, then whatever waited for it. */
static void accept_connection(struct sn_client *c)
{
    c->state = SN_ST_ACTIVE;
    c->deadline_ms = 0;
    send_connack(c, SN_RC_ACCEPTED);
    log_debug("mqttsn %s: client '%s' connected, keep-alive %u s", c->gw.peer, c->client_id,
              c->duration);
    c->out_sent_ms = 0;
    c->out_tries = 0;
    if (c->out_state != SN_OUT_NONE && !sn_retry(c, sn_now(c->f)))
        return;
    sn_pump(c);
}

static void request_will(struct sn_client *c)
{
    c->state = SN_ST_WILLTOPIC;
    c->deadline_ms = sn_now(c->f) + c->f->hub->cfg.limits.connect_timeout_ms;
    sn_send_simple(c, SN_WILLTOPICREQ);
}

/* A CONNECT with CleanSession 0 from the client already connected on this
 * address under the same ClientId keeps subscriptions, topic ids, queued
 * messages and, without the Will flag, the will. Section 6.3 of the 1.2
 * specification defines these rules. */
static bool resumes(const struct sn_client *c, const struct sn_msg *m, const char *client_id)
{
    return sn_connected(c) && c->gw.logged_in && !m->flags.clean_session &&
           strcmp(c->client_id, client_id) == 0;
}

/* The keep-alive the gateway supervises: Duration, or limits.max_keep_alive
 * when Duration is 0 or above it, as for MQTT 5 connections. MQTT-SN has no
 * way to tell the client, but without a bound a client that vanished
 * would hold its peer state until vigil stops. */
static uint16_t supervised_keep_alive(const struct sn_client *c, uint16_t duration)
{
    uint16_t max = c->f->hub->cfg.limits.max_keep_alive;

    if (duration == 0 || duration > max)
        return max;
    return duration;
}

void sn_on_connect(struct sn_client *c, const struct sn_msg *m)
{
    char client_id[SN_MAX_CLIENT_ID + 1];
    uint8_t code;

    /* ClientIds appear in events and logs, so they are held to MQTT's rule
     * for strings: well-formed UTF-8 without U+0000. */
    if (!mqtt_utf8_valid(m->client_id.p, m->client_id.len)) {
        sn_malformed(c, "MQTT-SN-1.2:5.3.1",
                     "ClientId is not well-formed UTF-8 or contains U+0000", m->client_id.len);
        return;
    }
    memcpy(client_id, m->client_id.p, m->client_id.len);
    client_id[m->client_id.len] = '\0';
    c->gw.keep_alive = supervised_keep_alive(c, m->duration);
    if (resumes(c, m, client_id)) {
        c->duration = c->gw.keep_alive;
        if (m->flags.will)
            request_will(c);
        else
            accept_connection(c);
        return;
    }
    if (c->state != SN_ST_IDLE || c->gw.logged_in)
        sn_end(c, "new CONNECT from the same address", false);

    c->gw.keep_alive = supervised_keep_alive(c, m->duration);
    code = login(c, client_id);
    if (code != SN_RC_ACCEPTED) {
        send_connack(c, code);
        sn_end(c, "login rejected", false);
        return;
    }
    memcpy(c->client_id, client_id, sizeof client_id);
    c->duration = c->gw.keep_alive;
    c->clean_session = m->flags.clean_session;
    if (m->flags.will)
        request_will(c);
    else
        accept_connection(c);
}

/* ---- will ---- */

/* Checks a will topic: a valid topic name within the limits that the
 * client may publish to. Returns the return code to send. */
static uint8_t check_will_topic(struct sn_client *c, const struct sn_str *t)
{
    const char *name = (const char *)t->p;

    if (t->len == 0 || t->len > c->f->hub->cfg.limits.max_topic_length ||
        !topic_name_valid(name, t->len) || !mqtt_utf8_valid(t->p, t->len)) {
        sn_malformed(c, "MQTT-SN-1.2:5.3.14", "WillTopic is not a valid topic name", t->len);
        return SN_RC_NOT_SUPPORTED;
    }
    if (!gw_can_publish(&c->gw, name, t->len)) {
        sn_event(c, VIGIL_EV_ACL_DENY, name, t->len, "will topic not allowed");
        return SN_RC_NOT_SUPPORTED;
    }
    return SN_RC_ACCEPTED;
}

static vigil_err set_will_topic(struct sn_will *w, const struct sn_msg *m)
{
    char *topic = vigil_strndup((const char *)m->topic_name.p, m->topic_name.len);

    if (topic == NULL)
        return VIGIL_ERR_NOMEM;
    vigil_free(w->topic);
    w->topic = topic;
    w->topic_len = m->topic_name.len;
    w->qos = (uint8_t)m->flags.qos;
    w->retain = m->flags.retain;
    return VIGIL_OK;
}

static vigil_err set_will_payload(struct sn_will *w, const struct sn_str *data)
{
    uint8_t *payload = NULL;

    if (data->len > 0 && (payload = vigil_memdup(data->p, data->len)) == NULL)
        return VIGIL_ERR_NOMEM;
    vigil_free(w->payload);
    w->payload = payload;
    w->payload_len = data->len;
    return VIGIL_OK;
}

/* A WILLTOPIC or WILLMSG that the gateway did not request. */
static void will_out_of_order(struct sn_client *c, const struct sn_msg *m)
{
    char detail[96];

    snprintf(detail, sizeof detail, "%s without %s", sn_type_name(m->type),
             m->type == SN_WILLTOPIC ? "WILLTOPICREQ" : "WILLMSGREQ");
    sn_malformed(c, "MQTT-SN-1.2:6.2", detail, 0);
}

static void reject_will(struct sn_client *c, uint8_t code)
{
    send_connack(c, code);
    sn_end(c, "will rejected", false);
}

void sn_on_willtopic(struct sn_client *c, const struct sn_msg *m)
{
    uint8_t code;

    if (c->state != SN_ST_WILLTOPIC) {
        will_out_of_order(c, m);
        return;
    }
    if (m->empty_will) {
        sn_will_clear(&c->will);
        accept_connection(c);
        return;
    }
    code = check_will_topic(c, &m->topic_name);
    if (code != SN_RC_ACCEPTED) {
        reject_will(c, code);
        return;
    }
    if (set_will_topic(&c->will, m) != VIGIL_OK) {
        reject_will(c, SN_RC_CONGESTION);
        return;
    }
    c->state = SN_ST_WILLMSG;
    sn_send_simple(c, SN_WILLMSGREQ);
}

void sn_on_willmsg(struct sn_client *c, const struct sn_msg *m)
{
    if (c->state != SN_ST_WILLMSG) {
        will_out_of_order(c, m);
        return;
    }
    if (m->data.len > c->f->hub->cfg.limits.max_packet_size) {
        sn_event(c, VIGIL_EV_LIMIT, NULL, 0, "will message over max_packet_size");
        reject_will(c, SN_RC_NOT_SUPPORTED);
        return;
    }
    if (set_will_payload(&c->will, &m->data) != VIGIL_OK) {
        reject_will(c, SN_RC_CONGESTION);
        return;
    }
    accept_connection(c);
}

static void send_will_resp(struct sn_client *c, uint8_t type, uint8_t code)
{
    struct sn_msg r = {.type = type, .return_code = code};

    sn_send(c, &r);
}

void sn_on_willtopicupd(struct sn_client *c, const struct sn_msg *m)
{
    uint8_t code;

    if (m->empty_will) {
        sn_will_clear(&c->will);
        send_will_resp(c, SN_WILLTOPICRESP, SN_RC_ACCEPTED);
        return;
    }
    code = check_will_topic(c, &m->topic_name);
    if (code == SN_RC_ACCEPTED && set_will_topic(&c->will, m) != VIGIL_OK)
        code = SN_RC_CONGESTION;
    send_will_resp(c, SN_WILLTOPICRESP, code);
}

void sn_on_willmsgupd(struct sn_client *c, const struct sn_msg *m)
{
    uint8_t code = SN_RC_ACCEPTED;

    if (m->data.len > c->f->hub->cfg.limits.max_packet_size) {
        sn_event(c, VIGIL_EV_LIMIT, NULL, 0, "will message over max_packet_size");
        code = SN_RC_NOT_SUPPORTED;
    } else if (set_will_payload(&c->will, &m->data) != VIGIL_OK) {
        code = SN_RC_CONGESTION;
    }
    send_will_resp(c, SN_WILLMSGRESP, code);
}

/* ---- PINGREQ, DISCONNECT, sleep ---- */

void sn_awake_done(struct sn_client *c)
{
    c->state = SN_ST_ASLEEP;
    sn_send_simple(c, SN_PINGRESP);
}

/* PINGREQ with the ClientId of an asleep client: it is awake until its
 * buffered messages are delivered, then PINGRESP sends it back to sleep. */
static void wake(struct sn_client *c, const struct sn_msg *m)
{
    if (m->client_id.len != strlen(c->client_id) ||
        memcmp(m->client_id.p, c->client_id, m->client_id.len) != 0) {
        sn_malformed(c, "MQTT-SN-1.2:6.14", "PINGREQ ClientId is not the sleeping client's", 0);
        return;
    }
    c->state = SN_ST_AWAKE;
    c->out_sent_ms = 0;
    c->out_tries = 0;
    if (c->out_state != SN_OUT_NONE && !sn_retry(c, sn_now(c->f)))
        return;
    sn_pump(c); /* ends with PINGRESP once the queue is empty */
}

void sn_on_pingreq(struct sn_client *c, const struct sn_msg *m)
{
    if (c->state == SN_ST_ASLEEP && m->client_id.len > 0) {
        wake(c, m);
        return;
    }
    if (!sn_connected(c)) {
        sn_malformed(c, "MQTT-SN-1.2:6.2", "PINGREQ without a connection", 0);
        sn_send_simple(c, SN_DISCONNECT);
        return;
    }
    sn_send_simple(c, SN_PINGRESP);
}

void sn_on_disconnect(struct sn_client *c, const struct sn_msg *m)
{
    if (!sn_connected(c)) {
        if (c->state != SN_ST_IDLE)
            sn_end(c, "DISCONNECT during the will exchange", false);
        sn_send_simple(c, SN_DISCONNECT);
        return;
    }
    if (m->has_duration && m->duration > 0) {
        c->state = SN_ST_ASLEEP;
        c->duration = m->duration;
        sn_send_simple(c, SN_DISCONNECT);
        log_debug("mqttsn %s: client '%s' asleep for %u s", c->gw.peer, c->client_id,
                  m->duration);
        return;
    }
    sn_send_simple(c, SN_DISCONNECT);
    sn_end(c, "client disconnected", false);
}

void sn_lose(struct sn_client *c, const char *why)
{
    struct udp_peer *p = c->peer;

    log_info("mqttsn %s: client '%s' lost: %s", c->gw.peer, c->client_id, why);
    sn_end(c, why, true);
    if (p != NULL)
        udp_peer_close(p, why);
}

void sn_check_timers(struct sn_client *c, uint64_t now)
{
    uint64_t supervised = (uint64_t)c->duration * 1500;

    switch (c->state) {
    case SN_ST_IDLE:
        if (c->peer != NULL && now - c->peer->last_rx_ms > SN_IDLE_MS) {
            sn_end(c, "idle", false);
            udp_peer_close(c->peer, "idle");
        }
        return;
    case SN_ST_WILLTOPIC:
    case SN_ST_WILLMSG:
        if (now >= c->deadline_ms)
            sn_end(c, "will exchange timed out", false);
        return;
    default:
        break;
    }
    if (supervised > 0 && now - c->last_rx_ms > supervised) {
        sn_lose(c, c->state == SN_ST_ACTIVE ? "keep-alive timeout" : "sleep duration exceeded");
        return;
    }
    if (c->out_state != SN_OUT_NONE && c->state != SN_ST_ASLEEP)
        sn_retry(c, now);
}
