/* Routing: matching a message against the subscription tree, merging
 * overlapping subscriptions, and retained messages. */
#include <string.h>

#include "broker/broker.h"
#include "broker/gateway.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"

/* A session's merged view of every subscription that matched one message. */
struct route_match {
    struct session *session;
    uint8_t qos;
    bool rap;
    uint8_t n_sub_ids;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
};

struct route_ctx {
    struct hub *hub;
    const struct session *origin;
};

/* A share-group member takes the next message only while connected and
 * keeping up: one whose queue has reached its inflight window (it stopped
 * acknowledging) is passed over for the others. */
static bool route_eligible(void *ctx, void *subscriber)
{
    const struct session *s = subscriber;
    const struct conn *c = s->conn;
    uint32_t window;

    (void)ctx;
    if (s->gw != NULL)
        return s->gw->ops->online(s->gw);
    if (c == NULL || c->state != CONN_ACTIVE)
        return false;
    window = c->client_receive_max < c->hub->cfg.limits.max_inflight_out
                 ? c->client_receive_max : c->hub->cfg.limits.max_inflight_out;
    return s->n_queued < window;
}

static void route_collect(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id,
                          bool shared)
{
    struct route_ctx *rc = ctx;
    struct hub *hub = rc->hub;
    struct session *s = subscriber;
    struct route_match *m;

    if (!shared && (options & MQTT_SUBOPT_NO_LOCAL) && s == rc->origin)
        return;
    if (s->match_gen != hub->match_gen) {
        if (hub->scratch_n == hub->scratch_cap) {
            size_t cap = hub->scratch_cap ? hub->scratch_cap * 2 : 64;
            struct route_match *p = vigil_realloc(hub->scratch, cap * sizeof *p);

            if (p == NULL) {
                hub->stats.msgs_dropped++;
                return;
            }
            hub->scratch = p;
            hub->scratch_cap = cap;
        }
        s->match_gen = hub->match_gen;
        s->match_slot = hub->scratch_n++;
        m = &hub->scratch[s->match_slot];
        memset(m, 0, offsetof(struct route_match, sub_ids));
        m->session = s;
    }
    m = &hub->scratch[s->match_slot];
    if (MQTT_SUBOPT_QOS(options) > m->qos)
        m->qos = MQTT_SUBOPT_QOS(options);
    if (options & MQTT_SUBOPT_RAP)
        m->rap = true;
    if (sub_id != 0 && m->n_sub_ids < MQTT_MAX_SUB_IDS)
        m->sub_ids[m->n_sub_ids++] = sub_id;
}

void router_publish(struct hub *hub, struct msg *msg, const struct session *origin)
{
    struct route_ctx ctx = {hub, origin};

    hub->match_gen++;
    hub->scratch_n = 0;
    subtree_match(hub->subs, msg->topic, msg->topic_len, route_eligible, route_collect, &ctx);
    for (size_t i = 0; i < hub->scratch_n; i++) {
        struct route_match *m = &hub->scratch[i];
        uint8_t qos = msg->qos < m->qos ? msg->qos : m->qos;
        bool retain = m->rap && msg->retain && m->session->version == MQTT_V5;

        session_enqueue(m->session, msg, qos, retain, m->sub_ids, m->n_sub_ids);
    }
    hub->scratch_n = 0;
}

void router_retain(struct hub *hub, struct msg *msg, bool persist)
{
    struct msg *old;
    struct store_op *op;

    if (msg->payload_len == 0) {
        old = retain_set(hub->retained, msg->topic, msg->topic_len, NULL);
    } else {
        old = retain_set(hub->retained, msg->topic, msg->topic_len, msg_ref(msg));
        if (old == msg) {
            msg_unref(msg);
            log_warn("retained message on '%s' not stored: out of memory", msg->topic);
            return;
        }
    }
    msg_unref(old);
    if (!persist)
        return;
    op = store_op_new(msg->payload_len == 0 ? STORE_RETAIN_DEL : STORE_RETAIN_SET);
    if (op == NULL)
        return;
    op->topic = vigil_strdup(msg->topic);
    if (msg->payload_len > 0) {
        op->payload = vigil_memdup(msg->payload, msg->payload_len);
        op->payload_len = msg->payload_len;
        op->props = msg->props_len ? vigil_memdup(msg->props, msg->props_len) : NULL;
        op->props_len = msg->props_len;
    }
    op->qos = msg->qos;
    op->expiry_at = msg->expiry_at;
    if (op->topic == NULL || (msg->payload_len > 0 && op->payload == NULL)) {
        store_op_free(op);
        return;
    }
    store_submit(hub->store, op);
}

struct retained_ctx {
    struct session *session;
    uint8_t qos;
    uint32_t sub_id;
    int64_t now;
};

static void send_one_retained(void *ctx, const char *name, void *value)
{
    struct retained_ctx *rc = ctx;
    struct msg *m = value;
    uint8_t qos = m->qos < rc->qos ? m->qos : rc->qos;

    (void)name;
    if (msg_expired(m, rc->now))
        return;
    session_enqueue(rc->session, m, qos, true, rc->sub_id ? &rc->sub_id : NULL, rc->sub_id ? 1 : 0);
}

void router_send_retained(struct hub *hub, struct session *s, const char *filter, size_t len,
                          uint8_t options, uint32_t sub_id)
{
    struct retained_ctx ctx = {s, MQTT_SUBOPT_QOS(options), sub_id, hub_now_s()};

    retain_match(hub->retained, filter, len, send_one_retained, &ctx);
}

static void unref_retained(void *ctx, const char *name, void *value)
{
    (void)ctx;
    (void)name;
    msg_unref(value);
}

void router_free(struct hub *hub)
{
    if (hub->retained != NULL) {
        retain_foreach(hub->retained, unref_retained, NULL);
        retain_free(hub->retained);
        hub->retained = NULL;
    }
    vigil_free(hub->scratch);
    hub->scratch = NULL;
}
