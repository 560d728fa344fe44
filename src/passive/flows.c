/* The flow table of passive analysis: TCP flows keyed by their 4-tuple,
 * SYN/FIN/RST handling, connect timeouts and eviction of idle flows. */
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "passive/passive_internal.h"

static struct flow_link *link_of(struct pflow *f, bool pending)
{
    return pending ? &f->pending : &f->age;
}

static void list_append(struct flow_list *l, struct pflow *f, bool pending)
{
    struct flow_link *k = link_of(f, pending);

    k->prev = l->tail;
    k->next = NULL;
    if (l->tail != NULL)
        link_of(l->tail, pending)->next = f;
    else
        l->head = f;
    l->tail = f;
}

static void list_unlink(struct flow_list *l, struct pflow *f, bool pending)
{
    struct flow_link *k = link_of(f, pending);

    if (k->prev != NULL)
        link_of(k->prev, pending)->next = k->next;
    else
        l->head = k->next;
    if (k->next != NULL)
        link_of(k->next, pending)->prev = k->prev;
    else
        l->tail = k->prev;
    k->prev = k->next = NULL;
}

static bool port_watched(const struct passive *p, uint16_t port)
{
    for (size_t i = 0; i < p->cfg.n_ports; i++)
        if (p->cfg.ports[i] == port)
            return true;
    return false;
}

/* Writes the direction-independent key: family, then the smaller endpoint
 * (address, port), then the larger one. */
static void flow_key(const struct passive_segment *s, uint8_t key[FLOW_KEY_LEN])
{
    uint8_t a[18], b[18];

    memcpy(a, s->src.ip, 16);
    a[16] = (uint8_t)(s->sport >> 8);
    a[17] = (uint8_t)s->sport;
    memcpy(b, s->dst.ip, 16);
    b[16] = (uint8_t)(s->dport >> 8);
    b[17] = (uint8_t)s->dport;
    key[0] = s->src.family;
    if (memcmp(a, b, sizeof a) <= 0) {
        memcpy(key + 1, a, 18);
        memcpy(key + 19, b, 18);
    } else {
        memcpy(key + 1, b, 18);
        memcpy(key + 19, a, 18);
    }
}

/* True when the sender of s is the client of the flow it opens. */
static bool sender_is_client(const struct passive *p, const struct passive_segment *s)
{
    bool src_server = port_watched(p, s->sport), dst_server = port_watched(p, s->dport);

    if (s->flags & PASSIVE_TCP_SYN)
        return !(s->flags & PASSIVE_TCP_ACK);
    if (src_server != dst_server)
        return dst_server;
    return s->dport <= s->sport;
}

/* Removes f from every list and the table and frees it. */
static void flow_remove(struct passive *p, struct pflow *f)
{
    list_unlink(f->closed ? &p->closed : &p->open, f, false);
    if (f->in_pending)
        list_unlink(&p->pending, f, true);
    vigil_map_remove(&p->flows, (const char *)f->key, FLOW_KEY_LEN);
    p->n_flows--;
    for (int d = 0; d < 2; d++)
        reasm_clear(&f->stream[d], &p->pool);
    session_free(p, f);
    vigil_free(f);
}

static void on_bytes(void *ctx, const uint8_t *data, size_t len, bool gap)
{
    struct passive *p = ctx;

    session_deliver(p, p->cur_flow, p->cur_dir, data, len, gap);
}

static void flow_flush(struct passive *p, struct pflow *f)
{
    for (int d = 0; d < 2; d++) {
        p->cur_flow = f;
        p->cur_dir = d;
        reasm_flush(&f->stream[d], &p->pool, on_bytes, p);
    }
    p->cur_flow = NULL;
}

/* Ends a flow: delivers what is buffered, emits the disconnect event and
 * keeps the flow, closed, to absorb late segments. */
static void flow_close(struct passive *p, struct pflow *f, const char *why)
{
    struct vigil_event ev;

    flow_flush(p, f);
    session_flush_deferred(p, f);
    if (f->in_pending) {
        list_unlink(&p->pending, f, true);
        f->in_pending = false;
    }
    vigil_event_init(&ev, VIGIL_EV_DISCONNECT);
    ev.reason_code = f->disconnect_seen ? f->disconnect_reason : 0;
    if (f->disconnect_seen)
        why = "client sent DISCONNECT";
    VIGIL_EVENT_SET(&ev, detail, why, strlen(why));
    session_emit_ev(p, f, &ev);
    list_unlink(&p->open, f, false);
    f->closed = true;
    list_append(&p->closed, f, false);
    session_free(p, f);
}

static void evict_one(struct passive *p)
{
    struct pflow *victim = p->closed.head != NULL ? p->closed.head : p->open.head;

    if (victim == NULL)
        return;
    if (!victim->closed) {
        p->stats.flows_evicted++;
        log_debug("passive: flow %llu %s evicted: flow table full", (unsigned long long)victim->id,
                  victim->peer);
    }
    flow_remove(p, victim);
}

static void flow_set_endpoints(struct pflow *f, const struct passive_segment *s, bool client)
{
    int c = client ? 0 : 1;

    f->addr[c] = s->src;
    f->port[c] = s->sport;
    f->addr[1 - c] = s->dst;
    f->port[1 - c] = s->dport;
}

static struct pflow *flow_create(struct passive *p, const struct passive_segment *s,
                                 const uint8_t key[FLOW_KEY_LEN])
{
    struct pflow *f;

    if (p->n_flows >= p->cfg.max_flows)
        evict_one(p);
    f = vigil_calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    memcpy(f->key, key, FLOW_KEY_LEN);
    if (vigil_map_put(&p->flows, (const char *)key, FLOW_KEY_LEN, f) != VIGIL_OK) {
        vigil_free(f);
        return NULL;
    }
    p->n_flows++;
    p->stats.flows++;
    f->id = ++p->next_id;
    f->first_us = f->last_us = p->now_us;
    flow_set_endpoints(f, s, sender_is_client(p, s));
    for (int d = 0; d < 2; d++)
        reasm_init(&f->stream[d]);
    session_init(p, f);
    list_append(&p->open, f, false);
    session_emit(p, f, VIGIL_EV_CONNECT_ATTEMPT, NULL, NULL);
    if ((s->flags & (PASSIVE_TCP_SYN | PASSIVE_TCP_ACK)) == PASSIVE_TCP_SYN) {
        f->in_pending = true;
        list_append(&p->pending, f, true);
    }
    return f;
}

/* A client SYN on a flow that already carried data is a new connection
 * reusing the same ports. */
static bool is_new_connection(const struct pflow *f, const struct passive_segment *s, int dir)
{
    if ((s->flags & (PASSIVE_TCP_SYN | PASSIVE_TCP_ACK)) != PASSIVE_TCP_SYN || dir != DIR_TO_SERVER)
        return false;
    return f->closed || (f->stream[0].synced && f->stream[0].next_seq != s->seq + 1);
}

static int segment_dir(const struct pflow *f, const struct passive_segment *s)
{
    bool from_client = s->sport == f->port[0] && memcmp(&s->src, &f->addr[0], sizeof s->src) == 0;

    return from_client ? DIR_TO_SERVER : DIR_TO_CLIENT;
}

static struct pflow *flow_find(struct passive *p, const struct passive_segment *s)
{
    uint8_t key[FLOW_KEY_LEN];
    struct pflow *f;

    flow_key(s, key);
    f = vigil_map_get(&p->flows, (const char *)key, FLOW_KEY_LEN);
    if (f != NULL && is_new_connection(f, s, segment_dir(f, s))) {
        if (!f->closed)
            flow_close(p, f, "connection replaced by a new SYN");
        flow_remove(p, f);
        f = NULL;
    }
    if (f != NULL)
        return f;
    /* Only a SYN or data opens a flow; a lone ACK, FIN or RST does not. */
    if ((s->flags & PASSIVE_TCP_RST) || (!(s->flags & PASSIVE_TCP_SYN) && s->len == 0))
        return NULL;
    return flow_create(p, s, key);
}

static void flow_touch(struct passive *p, struct pflow *f)
{
    struct flow_list *l = f->closed ? &p->closed : &p->open;

    f->last_us = p->now_us;
    list_unlink(l, f, false);
    list_append(l, f, false);
}

void flows_segment(struct passive *p, const struct passive_segment *s)
{
    struct pflow *f;
    uint32_t seq = s->seq;
    int dir;

    if (!port_watched(p, s->sport) && !port_watched(p, s->dport))
        return;
    p->stats.segments++;
    f = flow_find(p, s);
    if (f == NULL)
        return;
    flow_touch(p, f);
    if (f->closed)
        return;
    dir = segment_dir(f, s);
    if (s->flags & PASSIVE_TCP_SYN) {
        seq++;
        if (!f->stream[dir].synced)
            reasm_sync(&f->stream[dir], seq);
    }
    p->cur_flow = f;
    p->cur_dir = dir;
    reasm_push(&f->stream[dir], &p->pool, p->now_us, seq, s->payload, s->len, on_bytes, p);
    p->cur_flow = NULL;
    if (s->flags & PASSIVE_TCP_RST) {
        flow_close(p, f, "connection reset");
    } else if (s->flags & PASSIVE_TCP_FIN) {
        f->fin |= (uint8_t)(1u << dir);
        if (f->fin == 3)
            flow_close(p, f, "connection closed");
    }
}

static void connect_timeout(struct passive *p, struct pflow *f)
{
    char detail[96];

    list_unlink(&p->pending, f, true);
    f->in_pending = false;
    snprintf(detail, sizeof detail, "no CONNECT within %u s of the TCP handshake",
             p->cfg.connect_timeout_s);
    session_emit(p, f, VIGIL_EV_LIMIT, "MQTT-3.1.4", detail);
}

void flows_mark_connected(struct passive *p, struct pflow *f)
{
    if (f->in_pending) {
        list_unlink(&p->pending, f, true);
        f->in_pending = false;
    }
}

void flows_expire(struct passive *p)
{
    int64_t connect_us = (int64_t)p->cfg.connect_timeout_s * 1000000;
    int64_t idle_us = (int64_t)p->cfg.idle_timeout_s * 1000000;
    int64_t linger_us = (int64_t)p->cfg.closed_linger_s * 1000000;

    while (p->pending.head != NULL && p->now_us - p->pending.head->first_us >= connect_us)
        connect_timeout(p, p->pending.head);
    while (p->open.head != NULL && p->now_us - p->open.head->last_us >= idle_us) {
        p->stats.flows_evicted++;
        flow_remove(p, p->open.head);
    }
    while (p->closed.head != NULL && p->now_us - p->closed.head->last_us >= linger_us)
        flow_remove(p, p->closed.head);
}

void flows_flush_all(struct passive *p)
{
    struct pflow *f = p->open.head;

    while (f != NULL) {
        struct pflow *next = f->age.next;

        if (f->fin != 0) {
            flow_close(p, f, "connection closed");
        } else {
            flow_flush(p, f);
            session_flush_deferred(p, f);
        }
        f = next;
    }
}

void flows_free_all(struct passive *p)
{
    while (p->open.head != NULL)
        flow_remove(p, p->open.head);
    while (p->closed.head != NULL)
        flow_remove(p, p->closed.head);
}
