/* Sessions: subscriptions, the delivery queue with its inflight window,
 * incoming QoS 2 state, wills and expiry. */
#include <string.h>

#include "broker/broker.h"
#include "broker/gateway.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"

struct session *session_find(struct hub *hub, const char *client_id)
{
    return vigil_map_get(&hub->sessions, client_id, strlen(client_id));
}

/* Allocates a session with its client id and device in the same block. */
static struct session *session_alloc(struct hub *hub, const char *client_id, const char *device)
{
    size_t id_len = strlen(client_id), dev_len = strlen(device);
    struct session *s = vigil_calloc(1, sizeof *s + id_len + 1 + dev_len + 1);

    if (s == NULL)
        return NULL;
    s->hub = hub;
    s->refs = 1;
    memcpy(s->client_id, client_id, id_len + 1);
    memcpy(s->client_id + id_len + 1, device, dev_len + 1);
    return s;
}

const char *session_device(const struct session *s)
{
    return s->client_id + strlen(s->client_id) + 1;
}

struct session_cold *session_cold(struct session *s)
{
    if (s->cold == NULL)
        s->cold = vigil_calloc(1, sizeof *s->cold);
    return s->cold;
}

struct session *session_create(struct hub *hub, const char *client_id, const char *device,
                               uint8_t version)
{
    struct session *s = session_alloc(hub, client_id, device);

    if (s == NULL)
        return NULL;
    s->version = version;
    if (vigil_map_put(&hub->sessions, s->client_id, strlen(s->client_id), s) != VIGIL_OK) {
        vigil_free(s);
        return NULL;
    }
    return s;
}

struct session *session_new_detached(struct hub *hub, const char *name, const char *device)
{
    struct session *s = session_alloc(hub, name, device);

    if (s == NULL)
        return NULL;
    s->version = MQTT_V5;
    s->removed = true;
    return s;
}

void session_ref(struct session *s)
{
    s->refs++;
}

static void session_free_deliveries(struct session *s)
{
    while (s->queue_head != NULL) {
        struct delivery *d = s->queue_head;

        s->queue_head = d->next;
        msg_unref(d->msg);
        vigil_free(d);
    }
    s->queue_tail = NULL;
    s->n_queued = 0;
    s->n_inflight = 0;
}

void session_unref(struct session *s)
{
    if (--s->refs > 0)
        return;
    session_free_deliveries(s);
    for (size_t i = 0; i < s->n_subs; i++)
        vigil_free(s->subs[i].filter);
    vigil_free(s->subs);
    if (s->cold != NULL) {
        vigil_free(s->cold->inqos2);
        msg_unref(s->cold->will);
        vigil_free(s->cold);
    }
    vigil_free(s);
}

/* Adds s to the offline list (since now_ms) or takes it out. Adding fails
 * only when s has no cold part and memory runs out. */
static bool offline_link(struct session *s, bool add, uint64_t now_ms)
{
    struct hub *hub = s->hub;
    struct session_cold *x;

    if (add == s->in_offline_list)
        return true;
    x = add ? session_cold(s) : s->cold;
    if (x == NULL)
        return false;
    if (add) {
        x->offline_since_ms = now_ms;
        x->offline_prev = NULL;
        x->offline_next = hub->offline_head;
        if (hub->offline_head != NULL)
            hub->offline_head->cold->offline_prev = s;
        hub->offline_head = s;
    } else {
        if (x->offline_prev != NULL)
            x->offline_prev->cold->offline_next = x->offline_next;
        else
            hub->offline_head = x->offline_next;
        if (x->offline_next != NULL)
            x->offline_next->cold->offline_prev = x->offline_prev;
        x->offline_next = x->offline_prev = NULL;
    }
    s->in_offline_list = add;
    return true;
}

void session_mark_offline(struct session *s, uint64_t since_ms)
{
    /* NOTE: a session left out of the list keeps its state but does not
     * expire before a restart. */
    if (!offline_link(s, true, since_ms))
        log_error("client '%s': out of memory, the offline session will not expire",
                  s->client_id);
}

void session_publish_will(struct session *s)
{
    struct msg *w = session_will(s);

    if (w == NULL)
        return;
    s->cold->will = NULL;
    s->cold->will_due_ms = 0;
    log_debug("client '%s': publishing its will on '%s'", s->client_id, w->topic);
    if (w->retain)
        router_retain(s->hub, w, true);
    router_publish(s->hub, w, s);
    msg_unref(w);
}

void session_discard(struct session *s)
{
    struct hub *hub = s->hub;

    if (s->removed)
        return;
    if (s->cold != NULL && s->cold->will_due_ms != 0)
        session_publish_will(s);
    for (size_t i = 0; i < s->n_subs; i++)
        subtree_remove(hub->subs, s->subs[i].filter, strlen(s->subs[i].filter), s);
    if (s->stored)
        persist_delete_session(s);
    offline_link(s, false, 0);
    vigil_map_remove(&hub->sessions, s->client_id, strlen(s->client_id));
    s->removed = true;
    session_unref(s);
}

void session_attach(struct session *s, struct conn *c)
{
    offline_link(s, false, 0);
    s->conn = c;
    c->session = s;
    session_resend_inflight(s);
    session_pump(s);
}

void session_detach(struct session *s)
{
    struct conn *c = s->conn;
    uint64_t now = uv_now(s->hub->loop);

    if (c == NULL)
        return;
    c->session = NULL;
    s->conn = NULL;
    if (session_will(s) != NULL) {
        uint32_t delay = s->cold->will_delay < s->expiry_interval ? s->cold->will_delay
                                                                  : s->expiry_interval;

        if (delay == 0 || s->hub->stopping)
            session_publish_will(s);
        else
            s->cold->will_due_ms = now + (uint64_t)delay * 1000;
    }
    if (s->expiry_interval == 0) {
        session_discard(s);
        return;
    }
    session_mark_offline(s, now);
    persist_session(s);
}

void session_offline_sweep(struct hub *hub, uint64_t now_ms)
{
    struct session *s = hub->offline_head;

    while (s != NULL) {
        struct session *next = s->cold->offline_next;

        if (s->cold->will_due_ms != 0 && now_ms >= s->cold->will_due_ms)
            session_publish_will(s);
        if (s->expiry_interval != UINT32_MAX &&
            now_ms - s->cold->offline_since_ms >= (uint64_t)s->expiry_interval * 1000) {
            log_debug("client '%s': session expired", s->client_id);
            session_discard(s);
        }
        s = next;
    }
}

void session_free_all(struct hub *hub)
{
    size_t pos = 0;
    struct vigil_map_slot *slot;

    while ((slot = vigil_map_next(&hub->sessions, &pos)) != NULL) {
        struct session *s = slot->value;

        s->removed = true;
        session_unref(s);
    }
}

vigil_err session_add_sub(struct session *s, const char *filter, size_t len, uint8_t options,
                          uint32_t sub_id, bool *existed)
{
    struct session_sub *sub = NULL;
    vigil_err rc;

    for (size_t i = 0; i < s->n_subs; i++)
        if (strlen(s->subs[i].filter) == len && memcmp(s->subs[i].filter, filter, len) == 0)
            sub = &s->subs[i];
    if (sub == NULL) {
        if (s->n_subs == s->cap_subs) {
            size_t cap = s->cap_subs ? s->cap_subs * 2 : 4;
            struct session_sub *p = vigil_realloc(s->subs, cap * sizeof *p);

            if (p == NULL)
                return VIGIL_ERR_NOMEM;
            s->subs = p;
            s->cap_subs = cap;
        }
        sub = &s->subs[s->n_subs];
        sub->filter = vigil_strndup(filter, len);
        if (sub->filter == NULL)
            return VIGIL_ERR_NOMEM;
        rc = subtree_add(s->hub->subs, filter, len, s, options, sub_id, existed);
        if (rc != VIGIL_OK) {
            vigil_free(sub->filter);
            return rc;
        }
        s->n_subs++;
    } else {
        rc = subtree_add(s->hub->subs, filter, len, s, options, sub_id, existed);
        if (rc != VIGIL_OK)
            return rc;
    }
    sub->options = options;
    sub->sub_id = sub_id;
    if (s->stored)
        persist_sub(s, sub->filter, options, sub_id, false);
    return VIGIL_OK;
}

bool session_remove_sub(struct session *s, const char *filter, size_t len)
{
    for (size_t i = 0; i < s->n_subs; i++) {
        if (strlen(s->subs[i].filter) != len || memcmp(s->subs[i].filter, filter, len) != 0)
            continue;
        subtree_remove(s->hub->subs, filter, len, s);
        if (s->stored)
            persist_sub(s, s->subs[i].filter, 0, 0, true);
        vigil_free(s->subs[i].filter);
        s->subs[i] = s->subs[--s->n_subs];
        return true;
    }
    return false;
}

/* Encodes and sends one PUBLISH for d (or for a QoS 0 message when d has no
 * queue entry). Returns false when the client's maximum packet size rules
 * the message out. */
static bool session_send_publish(struct session *s, struct msg *m, uint8_t qos, bool retain,
                                 bool dup, uint16_t packet_id, const uint32_t *sub_ids,
                                 uint8_t n_sub_ids)
{
    struct conn *c = s->conn;
    struct mqtt_packet p = {.type = MQTT_PUBLISH, .packet_id = packet_id};
    struct mqtt_props *pr = &p.props;
    struct conn_extra *x;
    int64_t now = hub_now_s();

    p.publish.qos = qos;
    p.publish.retain = retain;
    p.publish.dup = dup;
    p.publish.topic = (struct mqtt_str){(const uint8_t *)m->topic, m->topic_len};
    p.publish.payload = (struct mqtt_str){m->payload, m->payload_len};
    if (c->version == MQTT_V5) {
        pr->verbatim = (struct mqtt_str){m->props, m->props_len};
        if (m->expiry_at != 0) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
            pr->message_expiry = m->expiry_at > now ? (uint32_t)(m->expiry_at - now) : 0;
        }
        if (n_sub_ids > 0) {
            pr->present |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
            memcpy(pr->sub_ids, sub_ids, n_sub_ids * sizeof *sub_ids);
            pr->n_sub_ids = n_sub_ids;
        }
        if (c->client_alias_max > 0 && (x = conn_extra(c)) != NULL) {
            uintptr_t alias = (uintptr_t)vigil_map_get(&x->alias_out, m->topic, m->topic_len);

            if (alias == 0 && x->alias_out_next < c->client_alias_max &&
                vigil_map_put(&x->alias_out, m->topic, m->topic_len,
                              (void *)(uintptr_t)(x->alias_out_next + 1)) == VIGIL_OK) {
                pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
                pr->topic_alias = ++x->alias_out_next;
            } else if (alias != 0) {
                pr->present |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
                pr->topic_alias = (uint16_t)alias;
                p.publish.topic.len = 0;
            }
        }
    }
    if (!conn_send(c, &p)) {
        if (p.props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS) && p.publish.topic.len > 0) {
            vigil_map_remove(&c->extra->alias_out, m->topic, m->topic_len);
            c->extra->alias_out_next--;
        }
        return false;
    }
    s->hub->stats.msgs_sent++;
    return true;
}

void session_send_qos0(struct session *s, struct msg *msg, bool retain, const uint32_t *sub_ids,
                       uint8_t n_sub_ids)
{
    struct conn *c = s->conn;
    enum out_verdict verdict;

    if (c == NULL || c->state != CONN_ACTIVE) {
        s->hub->stats.msgs_dropped++;
        return;
    }
    verdict = outbudget_check(&s->hub->output, conn_backlog(c));
    if (verdict != OUT_SEND) {
        outbudget_dropped(c, verdict);
        return;
    }
    if (!session_send_publish(s, msg, 0, retain, false, 0, sub_ids, n_sub_ids))
        s->hub->stats.msgs_dropped++;
}

static struct delivery *delivery_new(struct msg *msg, uint8_t qos, bool retain,
                                     const uint32_t *sub_ids, uint8_t n_sub_ids)
{
    struct delivery *d = vigil_malloc(sizeof *d + n_sub_ids * sizeof(uint32_t));

    if (d == NULL)
        return NULL;
    memset(d, 0, sizeof *d);
    d->msg = msg_ref(msg);
    d->qos = qos;
    d->retain = retain;
    d->n_sub_ids = n_sub_ids;
    if (n_sub_ids > 0)
        memcpy(d->sub_ids, sub_ids, n_sub_ids * sizeof *sub_ids);
    return d;
}

static void session_append(struct session *s, struct delivery *d)
{
    if (s->queue_tail != NULL)
        s->queue_tail->next = d;
    else
        s->queue_head = d;
    s->queue_tail = d;
    s->n_queued++;
}

static void session_drop(struct session *s, struct delivery *d);

static void session_queue_full(struct session *s, const struct msg *msg)
{
    struct vigil_event ev;

    s->hub->stats.msgs_dropped++;
    vigil_event_init(&ev, VIGIL_EV_LIMIT);
    VIGIL_EVENT_SET(&ev, topic, msg->topic, msg->topic_len);
    VIGIL_EVENT_SET(&ev, client_id, s->client_id, strlen(s->client_id));
    VIGIL_EVENT_SET(&ev, device, session_device(s), strlen(session_device(s)));
    VIGIL_EVENT_SET(&ev, detail, "session queue full: oldest queued message dropped", 49);
    hub_emit_ev(s->hub, NULL, &ev);
}

/* Makes room in a full queue by dropping the oldest delivery not yet sent,
 * because the newest data (an alarm, the latest vital sign) matters most.
 * Returns false when every queued delivery is in flight. */
static bool session_drop_oldest(struct session *s)
{
    for (struct delivery *d = s->queue_head; d != NULL; d = d->next) {
        if (d->sent)
            continue;
        session_queue_full(s, d->msg);
        session_drop(s, d);
        return true;
    }
    return false;
}

void session_enqueue(struct session *s, struct msg *msg, uint8_t qos, bool retain,
                     const uint32_t *sub_ids, uint8_t n_sub_ids)
{
    struct delivery *d;

    if (s->gw != NULL) {
        /* A UDP front end keeps its own delivery state. */
        static const uint32_t no_id = 0;

        if (n_sub_ids == 0)
            s->gw->ops->deliver(s->gw, msg, qos, retain, &no_id, 1);
        else
            s->gw->ops->deliver(s->gw, msg, qos, retain, sub_ids, n_sub_ids);
        return;
    }
    if (qos == 0) {
        session_send_qos0(s, msg, retain, sub_ids, n_sub_ids);
        return;
    }
    if (s->n_queued >= s->hub->cfg.limits.max_queued_messages && !session_drop_oldest(s)) {
        session_queue_full(s, msg);
        return;
    }
    d = delivery_new(msg, qos, retain, sub_ids, n_sub_ids);
    if (d == NULL) {
        s->hub->stats.msgs_dropped++;
        return;
    }
    if (s->stored)
        persist_queue(s, d, STORE_QUEUE_PUT);
    session_append(s, d);
    if (s->conn != NULL)
        session_pump(s);
}

struct delivery *session_restore_delivery(struct session *s, struct msg *msg, uint64_t seq,
                                          uint8_t qos, uint8_t state, uint16_t packet_id)
{
    struct delivery *d = delivery_new(msg, qos, msg->retain, NULL, 0);

    if (d == NULL)
        return NULL;
    d->seq = seq;
    d->state = state;
    d->packet_id = packet_id;
    d->sent = packet_id != 0;
    if (d->sent)
        s->n_inflight++;
    session_append(s, d);
    return d;
}

static bool packet_id_in_use(const struct session *s, uint16_t id)
{
    for (const struct delivery *d = s->queue_head; d != NULL && d->sent; d = d->next)
        if (d->packet_id == id)
            return true;
    return false;
}

static uint16_t session_next_packet_id(struct session *s)
{
    for (;;) {
        if (++s->next_packet_id == 0)
            s->next_packet_id = 1;
        if (!packet_id_in_use(s, s->next_packet_id))
            return s->next_packet_id;
    }
}

static void session_unlink(struct session *s, struct delivery *d)
{
    struct delivery **pp = &s->queue_head;
    struct delivery *prev = NULL;

    while (*pp != NULL && *pp != d) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = d->next;
    if (s->queue_tail == d)
        s->queue_tail = prev;
    s->n_queued--;
    if (d->sent)
        s->n_inflight--;
}

static void session_drop(struct session *s, struct delivery *d)
{
    session_unlink(s, d);
    if (d->seq != 0 && s->stored)
        persist_queue(s, d, STORE_QUEUE_DEL);
    msg_unref(d->msg);
    vigil_free(d);
}

/* Ends publish_hold(): sends what waited, then the next PUBLISHes. */
static void publish_durable(void *arg, vigil_err rc)
{
    struct conn *c = arg;
    bool failed = rc != VIGIL_OK && !c->closing_handles;

    c->publish_wait = false;
    /* The output that waited leaves before the next QoS 2 PUBLISHes hold
     * it again. */
    conn_hold_end(c, rc);
    if (!failed && c->session != NULL)
        session_pump(c->session);
    conn_unref(c);
}

/* Holds c's output until the packet ids of the QoS 2 PUBLISHes just sent
 * are durable. The receiver keeps such an id until the PUBREL (MQTT
 * 4.3.3). A restart that lost it could give it to another message, which
 * the receiver would take for a retransmission and drop. Later QoS 2
 * PUBLISHes stay queued meanwhile (publish_wait), so that with one wait
 * at a time the output leaves after each commit. */
static void publish_hold(struct conn *c)
{
    c->publish_wait = true;
    c->holds++;
    conn_ref(c);
    persist_barrier(c->hub, publish_durable, c);
}

void session_pump(struct session *s)
{
    struct conn *c = s->conn;
    uint32_t window;
    int64_t now = hub_now_s();
    struct delivery *d, *next;
    bool hold = false;

    if (c == NULL || c->state != CONN_ACTIVE)
        return;
    window = c->client_receive_max;
    if (window > c->hub->cfg.limits.max_inflight_out)
        window = c->hub->cfg.limits.max_inflight_out;
    for (d = s->queue_head; d != NULL && s->n_inflight < window; d = next) {
        next = d->next;
        if (d->sent)
            continue;
        if (d->qos == 2 && s->stored && c->publish_wait)
            break;
        /* Over either output bound, the rest wait in the queue until this
         * connection's writes complete (on_write pumps again). */
        if (outbudget_check(&s->hub->output, conn_backlog(c)) != OUT_SEND)
            break;
        if (msg_expired(d->msg, now)) {
            session_drop(s, d);
            continue;
        }
        d->packet_id = session_next_packet_id(s);
        if (!session_send_publish(s, d->msg, d->qos, d->retain, false, d->packet_id, d->sub_ids,
                                  d->n_sub_ids)) {
            /* Larger than the client accepts: discarded as if delivered. */
            session_drop(s, d);
            continue;
        }
        d->sent = true;
        s->n_inflight++;
        if (d->seq != 0 && s->stored) {
            persist_queue(s, d, STORE_QUEUE_UPDATE);
            hold = hold || d->qos == 2;
        }
    }
    if (hold)
        publish_hold(c);
}

void session_resend_inflight(struct session *s)
{
    for (struct delivery *d = s->queue_head; d != NULL && d->sent; d = d->next) {
        if (d->state == STORE_Q_PUBREL) {
            struct mqtt_packet p = {.type = MQTT_PUBREL, .packet_id = d->packet_id};

            conn_send(s->conn, &p);
        } else {
            session_send_publish(s, d->msg, d->qos, d->retain, true, d->packet_id, d->sub_ids,
                                 d->n_sub_ids);
        }
    }
}

struct delivery *session_find_inflight(struct session *s, uint16_t packet_id)
{
    for (struct delivery *d = s->queue_head; d != NULL && d->sent; d = d->next)
        if (d->packet_id == packet_id)
            return d;
    return NULL;
}

void session_complete(struct session *s, struct delivery *d)
{
    session_drop(s, d);
    session_pump(s);
}

bool session_has_inqos2(const struct session *s, uint16_t packet_id)
{
    const struct session_cold *x = s->cold;

    for (size_t i = 0; x != NULL && i < x->n_inqos2; i++)
        if (x->inqos2[i] == packet_id)
            return true;
    return false;
}

bool session_add_inqos2(struct session *s, uint16_t packet_id)
{
    struct session_cold *x = session_cold(s);

    if (x == NULL)
        return false;
    if (x->n_inqos2 == x->cap_inqos2) {
        size_t cap = x->cap_inqos2 ? x->cap_inqos2 * 2 : 8;
        uint16_t *p = vigil_realloc(x->inqos2, cap * sizeof *p);

        if (p == NULL)
            return false;
        x->inqos2 = p;
        x->cap_inqos2 = cap;
    }
    x->inqos2[x->n_inqos2++] = packet_id;
    if (s->stored)
        persist_inqos2(s, packet_id, false);
    return true;
}

bool session_remove_inqos2(struct session *s, uint16_t packet_id)
{
    struct session_cold *x = s->cold;

    for (size_t i = 0; x != NULL && i < x->n_inqos2; i++) {
        if (x->inqos2[i] != packet_id)
            continue;
        x->inqos2[i] = x->inqos2[--x->n_inqos2];
        if (s->stored)
            persist_inqos2(s, packet_id, true);
        return true;
    }
    return false;
}
