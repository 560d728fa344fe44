/* MQTT decoding of reassembled streams and the events it produces, the same
 * events the broker emits for the same packets. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "passive/passive_internal.h"
#include "proto/mqtt/mqtt.h"
#include "secmon/value.h"

/* Packet types each direction may carry, as bits (1 << type). */
#define TYPES_TO_SERVER 0xD5FAu /* CONNECT PUBLISH PUBACK..PUBCOMP SUBSCRIBE UNSUBSCRIBE PINGREQ DISCONNECT AUTH */
#define TYPES_TO_CLIENT 0xEAFCu /* CONNACK PUBLISH PUBACK..PUBCOMP SUBACK UNSUBACK PINGRESP DISCONNECT AUTH */

static void format_peer(struct pflow *f)
{
    char host[INET6_ADDRSTRLEN] = "?";
    const struct passive_addr *a = &f->addr[0];

    inet_ntop(a->family == 6 ? AF_INET6 : AF_INET, a->ip, host, sizeof host);
    if (a->family == 6)
        snprintf(f->peer, sizeof f->peer, "[%s]:%u", host, f->port[0]);
    else
        snprintf(f->peer, sizeof f->peer, "%s:%u", host, f->port[0]);
}

void session_init(struct passive *p, struct pflow *f)
{
    format_peer(f);
    for (int d = 0; d < 2; d++)
        vigil_buf_init(&f->mqtt[d].partial, p->cfg.packet_cap);
}

/* Events held per flow while CONNACK is awaited, and over all flows. Past
 * either cap, events are emitted in capture order. */
#define SESSION_DEFER_MAX 16
#define SESSION_DEFER_TOTAL_MAX 8192

void session_flush_deferred(struct passive *p, struct pflow *f)
{
    uint8_t n = f->n_deferred;

    f->n_deferred = 0;
    for (uint8_t i = 0; i < n; i++) {
        f->deferred[i].ts_us = p->now_us;
        p->stats.events++;
        p->on_event(p->ctx, &f->deferred[i]);
    }
    p->deferred_total -= n;
    vigil_free(f->deferred);
    f->deferred = NULL;
}

/* Holds ev back when it follows a CONNECT whose CONNACK has not been seen. */
static bool defer(struct passive *p, struct pflow *f, const struct vigil_event *ev)
{
    if (!f->connect_seen || f->connack_seen || ev->type == VIGIL_EV_CONNECT_ATTEMPT ||
        ev->type == VIGIL_EV_AUTH_SUCCESS || ev->type == VIGIL_EV_AUTH_FAILURE ||
        ev->type == VIGIL_EV_DISCONNECT)
        return false;
    if (f->n_deferred == SESSION_DEFER_MAX || p->deferred_total >= SESSION_DEFER_TOTAL_MAX) {
        session_flush_deferred(p, f);
        return false;
    }
    if (f->deferred == NULL &&
        (f->deferred = vigil_calloc(SESSION_DEFER_MAX, sizeof *f->deferred)) == NULL)
        return false;
    f->deferred[f->n_deferred++] = *ev;
    p->deferred_total++;
    return true;
}

void session_free(struct passive *p, struct pflow *f)
{
    session_flush_deferred(p, f);
    for (int d = 0; d < 2; d++) {
        vigil_buf_release(&f->mqtt[d].partial);
        f->mqtt[d].skip = 0;
    }
}

static uint8_t event_proto(const struct pflow *f)
{
    if (f->version == MQTT_V5)
        return VIGIL_PROTO_MQTT5;
    return f->version != 0 ? VIGIL_PROTO_MQTT311 : VIGIL_PROTO_NONE;
}

void session_emit_ev(struct passive *p, struct pflow *f, struct vigil_event *ev)
{
    ev->ts_us = p->now_us;
    ev->conn_id = f->id;
    ev->proto = event_proto(f);
    VIGIL_EVENT_SET(ev, peer, f->peer, strlen(f->peer));
    VIGIL_EVENT_SET(ev, client_id, f->client_id, strlen(f->client_id));
    /* Without an inventory the client id is the only identity there is. */
    VIGIL_EVENT_SET(ev, device, f->client_id, strlen(f->client_id));
    if (ev->keep_alive == 0)
        ev->keep_alive = f->keep_alive;
    if (defer(p, f, ev))
        return;
    p->stats.events++;
    p->on_event(p->ctx, ev);
}

void session_emit(struct passive *p, struct pflow *f, enum vigil_event_type type,
                  const char *rule, const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    ev.rule = rule;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    session_emit_ev(p, f, &ev);
}

/* Checks the fixed header byte and the smallest remaining length of a
 * packet type, for resynchronizing on a packet boundary. */
static bool header_plausible(uint8_t b0, uint32_t remaining, int dir)
{
    unsigned type = b0 >> 4, flags = b0 & 0x0F;
    unsigned allowed = dir == DIR_TO_SERVER ? TYPES_TO_SERVER : TYPES_TO_CLIENT;

    if (!(allowed & (1u << type)))
        return false;
    if (type == MQTT_PUBLISH)
        return (flags & 0x06) != 0x06 && remaining >= 2;
    if (flags != ((type == MQTT_PUBREL || type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE) ? 2u : 0u))
        return false;
    switch (type) {
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return remaining == 0;
    case MQTT_CONNECT:
        return remaining >= 10;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return remaining >= 5;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return true;
    default:
        return remaining >= 2;
    }
}

/* True when data starts on a packet boundary: every complete packet in it
 * has a plausible fixed header, and the last one may continue beyond it. */
static bool frames_as_mqtt(const uint8_t *data, size_t len, int dir)
{
    size_t off = 0;

    while (off < len) {
        size_t header_len;
        uint32_t remaining;
        vigil_err rc = mqtt_frame(data + off, len - off, &header_len, &remaining, NULL);

        if (rc == VIGIL_ERR_AGAIN)
            return off > 0;
        if (rc != VIGIL_OK || !header_plausible(data[off], remaining, dir))
            return false;
        if (header_len + remaining > len - off)
            return true;
        off += header_len + remaining;
    }
    return true;
}

static void emit_auth(struct passive *p, struct pflow *f, const struct mqtt_packet *pkt)
{
    struct vigil_event ev;
    uint8_t code = pkt->reason_code;
    bool ok = f->version == MQTT_V5 ? code < 0x80 : code == 0;
    const char *detail = "connection accepted";
    char other[64];

    vigil_event_init(&ev, ok ? VIGIL_EV_AUTH_SUCCESS : VIGIL_EV_AUTH_FAILURE);
    ev.reason_code = code;
    if (code == MQTT_V311_BAD_USER_OR_PASSWORD || code == MQTT_RC_BAD_USER_OR_PASSWORD) {
        detail = "bad user name or password";
    } else if (code == MQTT_V311_NOT_AUTHORIZED || code == MQTT_RC_NOT_AUTHORIZED) {
        detail = "not authorized";
    } else if (!ok) {
        snprintf(other, sizeof other, "connection refused with code 0x%02x", code);
        detail = other;
    }
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    f->connack_seen = true;
    session_emit_ev(p, f, &ev);
    session_flush_deferred(p, f);
}

static void on_connect(struct passive *p, struct pflow *f, const struct mqtt_packet *pkt)
{
    const struct mqtt_connect *cn = &pkt->connect;

    f->version = cn->version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    f->connect_seen = true;
    f->connack_seen = false;
    f->keep_alive = cn->keep_alive;
    vigil_event_set(f->client_id, sizeof f->client_id, (const char *)cn->client_id.p,
                    cn->client_id.len);
    flows_mark_connected(p, f);
}

static void emit_topic(struct passive *p, struct pflow *f, enum vigil_event_type type,
                       struct mqtt_str topic, uint8_t qos)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    VIGIL_EVENT_SET(&ev, topic, (const char *)topic.p, topic.len);
    ev.qos = qos;
    session_emit_ev(p, f, &ev);
}

static void emit_publish(struct passive *p, struct pflow *f, const struct mqtt_packet *pkt)
{
    struct vigil_event ev;
    const struct mqtt_publish *pub = &pkt->publish;

    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    /* NOTE: a v5 PUBLISH that uses a topic alias has an empty topic here;
     * aliases are not tracked. */
    VIGIL_EVENT_SET(&ev, topic, (const char *)pub->topic.p, pub->topic.len);
    ev.qos = pub->qos;
    ev.retain = pub->retain;
    ev.size = pub->payload.len;
    ev.has_value = secmon_extract_value((const char *)pub->topic.p, pub->topic.len,
                                        pub->payload.p, pub->payload.len, ev.metric,
                                        sizeof ev.metric, &ev.value);
    session_emit_ev(p, f, &ev);
}

static void client_packet(struct passive *p, struct pflow *f, const struct mqtt_packet *pkt)
{
    const uint8_t *cursor = pkt->entries.p;
    struct mqtt_sub_entry sub;
    struct mqtt_str filter;

    switch (pkt->type) {
    case MQTT_CONNECT:
        on_connect(p, f, pkt);
        break;
    case MQTT_PUBLISH:
        emit_publish(p, f, pkt);
        break;
    case MQTT_SUBSCRIBE:
        while (mqtt_sub_next(pkt, &cursor, &sub))
            emit_topic(p, f, VIGIL_EV_SUBSCRIBE, sub.filter, MQTT_SUBOPT_QOS(sub.options));
        break;
    case MQTT_UNSUBSCRIBE:
        while (mqtt_unsub_next(pkt, &cursor, &filter))
            emit_topic(p, f, VIGIL_EV_UNSUBSCRIBE, filter, 0);
        break;
    case MQTT_DISCONNECT:
        f->disconnect_seen = true;
        f->disconnect_reason = pkt->reason_code;
        break;
    default:
        break;
    }
}

static void emit_malformed(struct passive *p, struct pflow *f, const uint8_t *pkt, size_t len,
                           const struct mqtt_error *err)
{
    struct vigil_event ev;
    char detail[128];

    vigil_event_init(&ev, VIGIL_EV_MALFORMED);
    ev.rule = err->rule;
    ev.reason_code = err->reason_code;
    ev.size = (uint32_t)len;
    snprintf(detail, sizeof detail, "%s: %s", mqtt_type_name(pkt[0] >> 4),
             err->text != NULL ? err->text : "");
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    session_emit_ev(p, f, &ev);
}

/* Decodes with the flow's version; before it is known, as 3.1.1 and then
 * as 5.0, keeping 5.0 once only it fits. */
static vigil_err decode(struct pflow *f, const uint8_t *pkt, size_t len, int dir,
                        struct mqtt_packet *out, struct mqtt_error *err)
{
    bool is_server = dir == DIR_TO_SERVER;
    struct mqtt_error err5;
    vigil_err rc;

    if (f->version != 0 || (pkt[0] >> 4) == MQTT_CONNECT)
        return mqtt_decode(pkt, len, f->version ? f->version : MQTT_V311, is_server, out, err);
    rc = mqtt_decode(pkt, len, MQTT_V311, is_server, out, err);
    if (rc == VIGIL_OK)
        return rc;
    if (mqtt_decode(pkt, len, MQTT_V5, is_server, out, &err5) != VIGIL_OK)
        return rc;
    f->version = MQTT_V5;
    return VIGIL_OK;
}

static void handle_packet(struct passive *p, struct pflow *f, int dir, const uint8_t *pkt,
                          size_t len)
{
    struct mqtt_packet m;
    struct mqtt_error err = {0};

    p->stats.mqtt_packets++;
    if (decode(f, pkt, len, dir, &m, &err) != VIGIL_OK) {
        if (dir == DIR_TO_SERVER) {
            p->stats.malformed++;
            emit_malformed(p, f, pkt, len, &err);
        } else {
            p->stats.server_malformed++;
        }
        return;
    }
    if (dir == DIR_TO_SERVER)
        client_packet(p, f, &m);
    else if (m.type == MQTT_CONNACK)
        emit_auth(p, f, &m);
}

static void packet_too_large(struct passive *p, struct pflow *f, int dir, size_t total)
{
    char detail[96];

    if (dir != DIR_TO_SERVER)
        return;
    snprintf(detail, sizeof detail, "MQTT packet of %zu bytes exceeds the analysis cap of %zu",
             total, p->cfg.packet_cap);
    session_emit(p, f, VIGIL_EV_LIMIT, NULL, detail);
}

/* Returns the packet length framed at data, 0 when more bytes are needed
 * to know it, or SIZE_MAX on an invalid remaining length. */
static size_t frame_total(const uint8_t *data, size_t len)
{
    size_t header_len;
    uint32_t remaining;
    vigil_err rc = mqtt_frame(data, len, &header_len, &remaining, NULL);

    if (rc == VIGIL_ERR_AGAIN)
        return 0;
    if (rc != VIGIL_OK)
        return SIZE_MAX;
    return header_len + remaining;
}

/* Marks the direction lost after bytes that cannot be framed. */
static void lose_sync(struct passive *p, struct pflow *f, int dir)
{
    struct mqtt_dir *m = &f->mqtt[dir];

    p->stats.gaps++;
    m->lost = true;
    m->skip = 0;
    m->partial.len = 0;
}

/* Takes bytes into the partial packet buffer until one packet is complete;
 * returns the bytes used. */
static size_t fill_partial(struct passive *p, struct pflow *f, int dir, const uint8_t *data,
                           size_t len)
{
    struct vigil_buf *b = &f->mqtt[dir].partial;
    size_t total = frame_total(b->data, b->len);
    /* While the header is incomplete, one byte at a time: the packet may be
     * shorter than the longest fixed header. */
    size_t want = total == 0 ? 1 : total - b->len;
    size_t take = want < len ? want : len;

    if (total == SIZE_MAX || vigil_buf_append(b, data, take) != VIGIL_OK) {
        lose_sync(p, f, dir);
        return len;
    }
    total = frame_total(b->data, b->len);
    if (total == SIZE_MAX) {
        lose_sync(p, f, dir);
        return len;
    }
    if (total != 0 && total > p->cfg.packet_cap) {
        packet_too_large(p, f, dir, total);
        f->mqtt[dir].skip = (uint32_t)(total - b->len);
        b->len = 0;
    } else if (total != 0 && b->len == total) {
        handle_packet(p, f, dir, b->data, b->len);
        b->len = 0;
    }
    return take;
}

/* Handles the complete packets at the start of data directly from it;
 * returns the bytes used. The rest goes to the partial buffer. */
static size_t take_complete(struct passive *p, struct pflow *f, int dir, const uint8_t *data,
                            size_t len)
{
    size_t off = 0;

    while (off < len) {
        size_t total = frame_total(data + off, len - off);

        if (total == SIZE_MAX) {
            lose_sync(p, f, dir);
            return len;
        }
        if (total == 0 || total > len - off)
            break;
        handle_packet(p, f, dir, data + off, total);
        off += total;
    }
    return off;
}

void session_deliver(struct passive *p, struct pflow *f, int dir, const uint8_t *data, size_t len,
                     bool gap)
{
    struct mqtt_dir *m = &f->mqtt[dir];

    if (gap) {
        m->lost = true;
        m->skip = 0;
        m->partial.len = 0;
    }
    if (m->lost) {
        if (!frames_as_mqtt(data, len, dir)) {
            p->stats.skipped_bytes += len;
            return;
        }
        m->lost = false;
    }
    while (len > 0 && !m->lost) {
        size_t used;

        if (m->skip > 0) {
            used = m->skip < len ? m->skip : len;
            m->skip -= (uint32_t)used;
        } else if (m->partial.len > 0) {
            used = fill_partial(p, f, dir, data, len);
        } else {
            used = take_complete(p, f, dir, data, len);
            if (used == 0)
                used = fill_partial(p, f, dir, data, len);
        }
        data += used;
        len -= used;
    }
}
