/* Glue between broker state and the durable store: restoring at start and
 * the operations that keep the store in step. */
#include <string.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"

static void persist_submit(struct hub *hub, struct store_op *op, const char *client_id)
{
    if (client_id != NULL) {
        op->client_id = vigil_strdup(client_id);
        if (op->client_id == NULL) {
            log_error("store: out of memory; an update for client '%s' is lost", client_id);
            store_op_free(op);
            return;
        }
    }
    store_submit(hub->store, op);
}

static struct store_op *persist_op(enum store_op_kind kind)
{
    struct store_op *op = store_op_new(kind);

    if (op == NULL)
        log_error("store: out of memory; a store update is lost");
    return op;
}

/* d no longer has a queue row: its message row may go with the last. */
static void release_entry(struct delivery *d)
{
    if (d->seq == 0)
        return;
    d->seq = 0;
    if (d->msg->store_refs > 0 && --d->msg->store_refs == 0) {
        d->msg->id = 0;
        publish_ack_released(d->msg);
    }
}

void persist_session(struct session *s)
{
    struct store_op *op;
    bool first = !s->stored;

    if (!s->persistent) {
        if (s->stored)
            persist_delete_session(s);
        return;
    }
    op = persist_op(STORE_SESSION_PUT);
    if (op == NULL)
        return;
    op->version = s->version;
    op->session_expiry = s->expiry_interval;
    op->disconnected_at = s->conn == NULL ? hub_now_s() : 0;
    /* The owner is stored so that after a restart the device that owns
     * the session finds it again (connect_accept compares owners). */
    op->topic = vigil_strdup(session_device(s));
    if (op->topic == NULL) {
        log_error("store: out of memory; an update for client '%s' is lost", s->client_id);
        store_op_free(op);
        return;
    }
    persist_submit(s->hub, op, s->client_id);
    s->stored = true;
    if (first)
        for (size_t i = 0; i < s->n_subs; i++)
            persist_sub(s, s->subs[i].filter, s->subs[i].options, s->subs[i].sub_id, false);
}

void persist_delete_session(struct session *s)
{
    struct store_op *op = persist_op(STORE_SESSION_DEL);

    /* The session's removal takes its queue rows with it. */
    for (struct delivery *d = s->queue_head; d != NULL; d = d->next)
        release_entry(d);
    s->stored = false;
    if (op != NULL)
        persist_submit(s->hub, op, s->client_id);
}

uint64_t persist_msg(struct hub *hub, struct msg *m)
{
    struct store_op *op;

    if (m->id != 0)
        return m->id;
    m->id = hub->next_msg_id++;
    op = persist_op(STORE_MSG_PUT);
    if (op == NULL)
        return m->id;
    op->msg_id = m->id;
    op->topic = vigil_strdup(m->topic);
    op->payload = vigil_memdup(m->payload, m->payload_len);
    op->payload_len = m->payload_len;
    op->props = m->props_len ? vigil_memdup(m->props, m->props_len) : NULL;
    op->props_len = m->props_len;
    op->qos = m->qos;
    op->retain = m->retain;
    op->expiry_at = m->expiry_at;
    if (op->topic == NULL || op->payload == NULL || (m->props_len && op->props == NULL)) {
        log_error("store: out of memory; message on '%s' not stored", m->topic);
        store_op_free(op);
        return m->id;
    }
    store_submit(hub->store, op);
    return m->id;
}

void persist_sub(struct session *s, const char *filter, uint8_t options, uint32_t sub_id, bool del)
{
    struct store_op *op = persist_op(del ? STORE_SUB_DEL : STORE_SUB_PUT);

    if (op == NULL)
        return;
    op->topic = vigil_strdup(filter);
    op->options = options;
    op->sub_id = sub_id;
    if (op->topic == NULL) {
        store_op_free(op);
        return;
    }
    persist_submit(s->hub, op, s->client_id);
}

void persist_queue(struct session *s, struct delivery *d, enum store_op_kind kind)
{
    struct store_op *op;

    if (kind == STORE_QUEUE_PUT) {
        persist_msg(s->hub, d->msg);
        d->seq = s->hub->next_seq++;
        d->msg->store_refs++;
    } else if (d->seq == 0) {
        return;
    }
    op = persist_op(kind);
    if (op != NULL) {
        op->seq = d->seq;
        op->msg_id = d->msg->id;
        op->qos = d->qos;
        op->state = d->state;
        op->packet_id = d->packet_id;
        persist_submit(s->hub, op, s->client_id);
    }
    if (kind == STORE_QUEUE_DEL)
        release_entry(d);
}

void persist_restored(struct delivery *d)
{
    if (d != NULL && d->seq != 0)
        d->msg->store_refs++;
}

void persist_inqos2(struct session *s, uint16_t packet_id, bool del)
{
    struct store_op *op = persist_op(del ? STORE_INQOS2_DEL : STORE_INQOS2_PUT);

    if (op == NULL)
        return;
    op->packet_id = packet_id;
    persist_submit(s->hub, op, s->client_id);
}

void persist_barrier(struct hub *hub, void (*done)(void *arg, vigil_err rc), void *arg)
{
    struct store_op *op = store_op_new(STORE_BARRIER);

    if (op == NULL) {
        done(arg, VIGIL_ERR_NOMEM);
        return;
    }
    op->done = done;
    op->arg = arg;
    store_submit(hub->store, op);
}

/* Loading. Messages referenced by several queue rows are shared again by
 * id, through a map from the id's decimal form to the message. */
struct load_ctx {
    struct hub *hub;
    struct vigil_map msgs;
    size_t sessions, queued, retained;
};

static void load_session(void *ctx, const char *client_id, const char *device, uint8_t version,
                         uint32_t expiry, int64_t disconnected_at)
{
    struct load_ctx *lc = ctx;
    struct session *s = session_create(lc->hub, client_id, device, version);
    int64_t now = hub_now_s();
    uint64_t offline_ms = disconnected_at > 0 && now > disconnected_at
                              ? (uint64_t)(now - disconnected_at) * 1000 : 0;
    uint64_t mono = uv_now(lc->hub->loop);

    if (s == NULL)
        return;
    s->expiry_interval = expiry;
    s->persistent = true;
    s->stored = true;
    /* Time offline before the restart counts towards the expiry. */
    session_mark_offline(s, mono > offline_ms ? mono - offline_ms : 0);
    lc->sessions++;
}

static void load_sub(void *ctx, const char *client_id, const char *filter, uint8_t options,
                     uint32_t sub_id)
{
    struct load_ctx *lc = ctx;
    struct session *s = session_find(lc->hub, client_id);
    bool existed;

    if (s == NULL)
        return;
    s->stored = false; /* do not write back what was just read */
    session_add_sub(s, filter, strlen(filter), options, sub_id, &existed);
    s->stored = true;
}

static void load_retained(void *ctx, const char *topic, const uint8_t *payload, uint32_t payload_len,
                          const uint8_t *props, uint32_t props_len, uint8_t qos, int64_t expiry_at)
{
    struct load_ctx *lc = ctx;
    struct msg *m = msg_new(topic, strlen(topic), payload, payload_len, props, props_len);

    if (m == NULL)
        return;
    m->qos = qos;
    m->retain = true;
    m->expiry_at = expiry_at;
    router_retain(lc->hub, m, false);
    msg_unref(m);
    lc->retained++;
}

static void load_queued(void *ctx, const char *client_id, uint64_t seq, uint64_t msg_id,
                        const char *topic, const uint8_t *payload, uint32_t payload_len,
                        const uint8_t *props, uint32_t props_len, uint8_t msg_qos, uint8_t retain,
                        int64_t expiry_at, uint8_t qos, uint8_t state, uint16_t packet_id)
{
    struct load_ctx *lc = ctx;
    struct session *s = session_find(lc->hub, client_id);
    char key[24];
    struct msg *m;
    int n = snprintf(key, sizeof key, "%llu", (unsigned long long)msg_id);

    if (s == NULL)
        return;
    m = vigil_map_get(&lc->msgs, key, (size_t)n);
    if (m == NULL) {
        m = msg_new(topic, strlen(topic), payload, payload_len, props, props_len);
        if (m == NULL)
            return;
        m->id = msg_id;
        m->qos = msg_qos;
        m->retain = retain;
        m->expiry_at = expiry_at;
        if (vigil_map_put(&lc->msgs, key, (size_t)n, m) != VIGIL_OK) {
            msg_unref(m);
            return;
        }
    }
    persist_restored(session_restore_delivery(s, m, seq, qos, state, packet_id));
    if (packet_id > s->next_packet_id)
        s->next_packet_id = packet_id;
    lc->queued++;
}

static void load_inqos2(void *ctx, const char *client_id, uint16_t packet_id)
{
    struct load_ctx *lc = ctx;
    struct session *s = session_find(lc->hub, client_id);

    if (s == NULL)
        return;
    s->stored = false;
    session_add_inqos2(s, packet_id);
    s->stored = true;
}

vigil_err persist_load(struct hub *hub)
{
    static const struct store_load_cb cb = {
        .session = load_session,
        .sub = load_sub,
        .retained = load_retained,
        .queued = load_queued,
        .inqos2 = load_inqos2,
    };
    struct load_ctx lc = {.hub = hub};
    struct vigil_map_slot *slot;
    size_t pos = 0;
    uint64_t max_msg = 0, max_seq = 0;
    vigil_err rc;

    vigil_map_init(&lc.msgs);
    rc = store_load(hub->store, &cb, &lc, &max_msg, &max_seq);
    while ((slot = vigil_map_next(&lc.msgs, &pos)) != NULL)
        msg_unref(slot->value);
    vigil_map_free(&lc.msgs);
    if (rc != VIGIL_OK) {
        log_error("store: loading the saved state failed: %s", vigil_strerror(rc));
        return rc;
    }
    hub->next_msg_id = max_msg + 1;
    hub->next_seq = max_seq + 1;
    log_info("store: restored sessions: %zu, queued messages: %zu, retained messages: %zu",
             lc.sessions, lc.queued, lc.retained);
    return VIGIL_OK;
}
