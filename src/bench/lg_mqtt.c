/* MQTT packets of the load generator: CONNECT, SUBSCRIBE, the scheduled
 * PUBLISHes and the QoS 1/2 exchanges, all through the project's codec. */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "bench/lg_internal.h"
#include "core/alloc.h"
#include "proto/mqtt/mqtt.h"

/* Upper bound of the fixed header plus packet identifier. */
#define LG_HEADER_SLACK 16

static struct mqtt_str mstr(const char *s, size_t len)
{
    return (struct mqtt_str){(const uint8_t *)s, (uint32_t)len};
}

/* Encodes pkt at the end of c->tx. Returns false when the tx limit is hit. */
static bool queue_packet(struct lg_thread *t, struct lg_conn *c, const struct mqtt_packet *pkt,
                         size_t bound)
{
    size_t n;

    if (vigil_buf_reserve(&c->tx, bound) != VIGIL_OK)
        return false;
    n = mqtt_encode(pkt, MQTT_V311, c->tx.data + c->tx.len, c->tx.cap - c->tx.len);
    if (n == 0)
        return false;
    c->tx.len += n;
    lg_mark_dirty(t, c);
    return true;
}

/* Subscribers are named like central stations ("station-..."), the
 * monitoring clients vigil's engine expects to subscribe with wildcards. */
bool lg_send_connect(struct lg_thread *t, struct lg_conn *c)
{
    static const char kinds[] = {'p', 's', 'i'};
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    char id[64];
    int n = snprintf(id, sizeof id, "%s%s-%c%u", c->role == LG_SUB ? "station-" : "",
                     t->lg->opt.client_prefix, kinds[c->role], c->index);

    pkt.connect.version = MQTT_V311;
    /* A persistent subscriber session makes the broker keep every QoS 1/2
     * message until the subscriber acknowledges it. The connection lasts
     * the whole sweep, so what one step leaves arrives in the next and
     * is not counted there. */
    pkt.connect.clean_start = !(c->role == LG_SUB && t->lg->wl.sub_persistent);
    pkt.connect.keep_alive = t->lg->opt.keep_alive;
    pkt.connect.client_id = mstr(id, (size_t)n);
    return queue_packet(t, c, &pkt, 64 + (size_t)n);
}

static bool send_subscribe(struct lg_thread *t, struct lg_conn *c)
{
    struct mqtt_packet pkt = {.type = MQTT_SUBSCRIBE, .packet_id = 1};
    uint8_t entry[300];
    size_t n = mqtt_encode_sub_entry(c->topics[0], t->lg->wl.sub_qos, entry, sizeof entry);

    if (n == 0)
        return false;
    pkt.entries = (struct mqtt_str){entry, (uint32_t)n};
    return queue_packet(t, c, &pkt, n + LG_HEADER_SLACK);
}

static bool send_ack(struct lg_thread *t, struct lg_conn *c, uint8_t type, uint16_t id)
{
    struct mqtt_packet pkt = {.type = type, .packet_id = id};

    return queue_packet(t, c, &pkt, 4);
}

bool lg_send_disconnect(struct lg_conn *c)
{
    static const uint8_t disconnect[2] = {MQTT_DISCONNECT << 4, 0};

    return c->fd >= 0 && send(c->fd, disconnect, sizeof disconnect, MSG_NOSIGNAL) == 2;
}

static uint16_t next_packet_id(struct lg_conn *c)
{
    if (++c->next_pid == 0)
        c->next_pid = 1;
    return c->next_pid;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Queues one PUBLISH carrying its due time. Returns false when the
 * connection's output is over its limit. */
static bool send_publish(struct lg_thread *t, struct lg_conn *c, uint8_t qos, uint64_t seq,
                         uint64_t due_ns)
{
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    uint32_t size = t->lg->wl.payload;
    uint8_t q = c->mixed_topics ? qos : 0;

    put_le64(t->payload, due_ns);
    put_le32(t->payload + 8, c->index);
    put_le32(t->payload + 12, (uint32_t)seq);
    pkt.publish.qos = qos;
    pkt.publish.topic = mstr(c->topics[q], c->topic_len[q]);
    pkt.publish.payload = (struct mqtt_str){t->payload, size};
    if (qos > 0)
        pkt.packet_id = next_packet_id(c);
    if (!queue_packet(t, c, &pkt, (size_t)size + c->topic_len[q] + LG_HEADER_SLACK))
        return false;
    if (qos > 0) {
        c->inflight++;
        t->outstanding++;
    }
    return true;
}

static bool backlog_push(struct lg_conn *c, uint64_t due_ns, uint64_t seq, uint8_t qos)
{
    struct lg_backlog *b = c->backlog;

    if (b == NULL) {
        b = c->backlog = vigil_calloc(1, sizeof *b);
        if (b == NULL)
            return false;
    }
    if (b->count == LG_BACKLOG_MAX)
        return false;
    b->items[(b->head + b->count) % LG_BACKLOG_MAX] = (struct lg_pending){due_ns, seq, qos};
    b->count++;
    return true;
}

/* Sends the oldest backlog entry once the window has room. */
static void backlog_pop(struct lg_thread *t, struct lg_conn *c)
{
    struct lg_backlog *b = c->backlog;
    struct lg_pending p;

    if (b == NULL || b->count == 0 || c->inflight >= t->lg->opt.max_inflight)
        return;
    p = b->items[b->head];
    b->head = (b->head + 1) % LG_BACKLOG_MAX;
    b->count--;
    t->outstanding--;
    if (!send_publish(t, c, p.qos, p.seq, p.due_ns) && p.due_ns >= t->from_ns &&
        p.due_ns < t->to_ns) {
        /* Counted as sent when it entered the backlog. */
        atomic_fetch_sub_explicit(&t->sh.sent, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&t->sh.dropped, 1, memory_order_relaxed);
    }
}

void lg_emit(struct lg_thread *t, uint64_t j, uint64_t due_ns)
{
    struct lg_conn *c = t->pubs[j % t->n_pubs];
    uint64_t seq = j / t->n_pubs;
    const struct lg_workload *wl = &t->lg->wl;
    uint8_t qos = wl->msg_qos != NULL ? wl->msg_qos(wl->ctx, c->index, seq) : wl->pub_qos;
    bool in_window = due_ns >= t->from_ns && due_ns < t->to_ns;
    bool ok;

    if (c->state != LG_READY) {
        ok = false;
    } else if (qos > 0 && (c->inflight >= t->lg->opt.max_inflight ||
                           (c->backlog != NULL && c->backlog->count > 0))) {
        ok = backlog_push(c, due_ns, seq, qos);
        if (ok)
            t->outstanding++;
    } else {
        ok = send_publish(t, c, qos, seq, due_ns);
    }
    if (in_window)
        atomic_fetch_add_explicit(ok ? &t->sh.sent : &t->sh.dropped, 1, memory_order_relaxed);
}

static void on_delivery(struct lg_thread *t, const struct mqtt_packet *pkt)
{
    uint64_t due;

    if (!t->recording || pkt->publish.payload.len < LG_PAYLOAD_MIN)
        return;
    due = get_le64(pkt->publish.payload.p);
    if (due < t->from_ns || due >= t->to_ns)
        return;
    atomic_fetch_add_explicit(&t->sh.received, 1, memory_order_relaxed);
    bench_hist_record(&t->hist, t->now_ns > due ? t->now_ns - due : 0);
}

static void on_acked(struct lg_thread *t, struct lg_conn *c)
{
    if (c->inflight > 0) {
        c->inflight--;
        t->outstanding--;
    }
    backlog_pop(t, c);
}

static bool on_connack(struct lg_thread *t, struct lg_conn *c, const struct mqtt_packet *pkt)
{
    if (c->state != LG_WAIT_CONNACK || pkt->reason_code != 0) {
        snprintf(t->last_error, sizeof t->last_error, "CONNACK with return code %u",
                 pkt->reason_code);
        return false;
    }
    if (c->role != LG_SUB) {
        lg_conn_ready(t, c);
        return true;
    }
    c->state = LG_WAIT_SUBACK;
    return send_subscribe(t, c);
}

static bool on_suback(struct lg_thread *t, struct lg_conn *c, const struct mqtt_packet *pkt)
{
    if (c->state != LG_WAIT_SUBACK || pkt->n_entries != 1 || pkt->entries.p[0] >= 0x80) {
        snprintf(t->last_error, sizeof t->last_error, "SUBSCRIBE to '%s' refused",
                 c->topics[0]);
        return false;
    }
    lg_conn_ready(t, c);
    return true;
}

/* Returns false when the connection must be closed. */
static bool handle_packet(struct lg_thread *t, struct lg_conn *c, const struct mqtt_packet *pkt)
{
    switch (pkt->type) {
    case MQTT_CONNACK:
        return on_connack(t, c, pkt);
    case MQTT_SUBACK:
        return on_suback(t, c, pkt);
    case MQTT_PUBLISH:
        on_delivery(t, pkt);
        if (pkt->publish.qos == 1)
            return send_ack(t, c, MQTT_PUBACK, pkt->packet_id);
        if (pkt->publish.qos == 2)
            return send_ack(t, c, MQTT_PUBREC, pkt->packet_id);
        return true;
    case MQTT_PUBREL:
        return send_ack(t, c, MQTT_PUBCOMP, pkt->packet_id);
    case MQTT_PUBREC:
        return send_ack(t, c, MQTT_PUBREL, pkt->packet_id);
    case MQTT_PUBACK:
    case MQTT_PUBCOMP:
        on_acked(t, c);
        return true;
    default:
        return true;
    }
}

size_t lg_handle_input(struct lg_thread *t, struct lg_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0, header;
    uint32_t remaining;
    struct mqtt_packet pkt;
    struct mqtt_error err;
    vigil_err rc;

    while (off < len) {
        rc = mqtt_frame(buf + off, len - off, &header, &remaining, &err);
        if (rc == VIGIL_ERR_AGAIN)
            break;
        if (rc != VIGIL_OK || header + remaining > LG_PACKET_MAX) {
            lg_conn_lost(t, c, rc != VIGIL_OK ? err.text : "packet too large");
            return SIZE_MAX;
        }
        if (header + remaining > len - off)
            break;
        rc = mqtt_decode(buf + off, header + remaining, MQTT_V311, false, &pkt, &err);
        if (rc != VIGIL_OK) {
            lg_conn_lost(t, c, err.text);
            return SIZE_MAX;
        }
        if (!handle_packet(t, c, &pkt)) {
            lg_conn_lost(t, c, t->last_error[0] ? t->last_error : "output limit reached");
            return SIZE_MAX;
        }
        off += header + remaining;
    }
    return off;
}
