/* The gateway between the UDP front ends and the broker: logins against
 * the inventory, access control, publishing, subscriptions with detached
 * sessions, retained lookups and events. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "broker/gateway.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"
#include "net/tls.h"
#include "secmon/value.h"

void gw_client_init(struct gw_client *c, struct hub *hub, const struct gw_client_ops *ops,
                    uint8_t proto, const char *peer)
{
    memset(c, 0, sizeof *c);
    c->hub = hub;
    c->ops = ops;
    c->proto = proto;
    c->id = hub->next_conn_id++;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
}

/* Events */

static void gw_emit_send(struct gw_client *c, struct vigil_event *ev)
{
    ev->conn_id = c->id;
    ev->proto = c->proto;
    VIGIL_EVENT_SET(ev, peer, c->peer, strlen(c->peer));
    VIGIL_EVENT_SET(ev, client_id, c->client_id, strlen(c->client_id));
    VIGIL_EVENT_SET(ev, device, c->device, strlen(c->device));
    VIGIL_EVENT_SET(ev, device_type, c->device_type, strlen(c->device_type));
    if (ev->keep_alive == 0)
        ev->keep_alive = c->keep_alive;
    vigil_event_sink_emit(c->hub->events, ev);
}

static void gw_emit_suppressed(struct gw_client *c)
{
    struct vigil_event ev;
    char detail[96];

    vigil_event_init(&ev, VIGIL_EV_LIMIT);
    snprintf(detail, sizeof detail, "%llu events of this client suppressed (event rate limit)",
             (unsigned long long)c->ev_suppressed);
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    c->ev_suppressed = 0;
    gw_emit_send(c, &ev);
}

void gw_emit_ev(struct gw_client *c, struct vigil_event *ev)
{
    /* secmon.enabled: false silences the UDP front ends as it does MQTT. */
    if (c->hub->events == NULL || !c->hub->cfg.secmon_enabled)
        return;
    if (!hub_event_always_kept(ev->type)) {
        if (!hub_event_budget_take(c->hub, &c->ev_tokens, &c->ev_last_ms)) {
            c->ev_suppressed++;
            return;
        }
        if (c->ev_suppressed > 0)
            gw_emit_suppressed(c);
    }
    gw_emit_send(c, ev);
}

void gw_emit(struct gw_client *c, enum vigil_event_type type, const char *topic, size_t len,
             const char *rule, const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    if (topic != NULL)
        VIGIL_EVENT_SET(&ev, topic, topic, len);
    ev.rule = rule;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    gw_emit_ev(c, &ev);
}

void gw_emit_peer(struct hub *hub, uint8_t proto, const char *peer, enum vigil_event_type type,
                  const char *rule, const char *detail, uint32_t size)
{
    struct vigil_event ev;

    if (hub->events == NULL || !hub->cfg.secmon_enabled)
        return;
    vigil_event_init(&ev, type);
    ev.proto = proto;
    ev.rule = rule;
    ev.size = size;
    VIGIL_EVENT_SET(&ev, peer, peer, strlen(peer));
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    vigil_event_sink_emit(hub->events, &ev);
}

/* Failed-login limits */

bool gw_peer_blocked(struct hub *hub, const char *peer)
{
    char host[64];

    hub_peer_host(peer, host, sizeof host);
    return hub->rl_peer != NULL && ratelimit_blocked(hub->rl_peer, host, uv_now(hub->loop));
}

void gw_login_failed(struct hub *hub, const char *peer, const char *identity)
{
    char host[64];
    uint64_t now = uv_now(hub->loop);

    hub_peer_host(peer, host, sizeof host);
    if (hub->rl_peer != NULL)
        ratelimit_fail(hub->rl_peer, host, now);
    if (identity != NULL && identity[0] != '\0' && hub->rl_identity != NULL)
        ratelimit_fail(hub->rl_identity, identity, now);
}

/* Logins */

static vigil_err gw_refuse(struct gw_client *c, const char *identity, const char *rule,
                           const char *why)
{
    gw_emit(c, VIGIL_EV_AUTH_FAILURE, NULL, 0, rule, why);
    gw_login_failed(c->hub, c->peer, identity);
    log_info("%s client %s: login as '%s' rejected: %s", vigil_proto_name(c->proto), c->peer,
             identity != NULL ? identity : "", why);
    return VIGIL_ERR_AUTH;
}

static void gw_set_client_id(struct gw_client *c, const char *client_id, const char *fallback)
{
    snprintf(c->client_id, sizeof c->client_id, "%s",
             client_id != NULL && client_id[0] != '\0' ? client_id : fallback);
}

vigil_err gw_login_device(struct gw_client *c, const char *device, const char *client_id)
{
    struct hub *hub = c->hub;
    const struct device_info *info;

    gw_set_client_id(c, client_id, device);
    if (device == NULL || device[0] == '\0')
        return gw_refuse(c, NULL, "vigil-identity", "no device identity");
    if (hub->rl_identity != NULL && ratelimit_blocked(hub->rl_identity, device, uv_now(hub->loop))) {
        gw_emit(c, VIGIL_EV_RATE_LIMIT, NULL, 0, "vigil-ratelimit",
                "identity blocked after repeated failed logins");
        return VIGIL_ERR_AUTH;
    }
    info = hub->snap != NULL ? device_snapshot_find(hub->snap, device) : NULL;
    if (info == NULL)
        return gw_refuse(c, device, "vigil-identity", "device is not in the inventory");
    /* As on MQTT, the client id is the device id or "<device id>:<suffix>". */
    if (strcmp(c->client_id, device) != 0 &&
        !(strncmp(c->client_id, device, strlen(device)) == 0 &&
          c->client_id[strlen(device)] == ':'))
        return gw_refuse(c, device, "vigil-identity",
                         "client id must be the device id or start with '<device id>:'");
    c->role = config_find_role(&hub->cfg, info->role);
    if (c->role == NULL)
        return gw_refuse(c, device, "vigil-acl-role", "device role is not configured");
    snprintf(c->device, sizeof c->device, "%s", info->id);
    snprintf(c->device_type, sizeof c->device_type, "%s", info->type);
    snprintf(c->device_unit, sizeof c->device_unit, "%s", info->unit);
    c->logged_in = true;
    c->full_access = false;
    if (hub->rl_identity != NULL)
        ratelimit_reset(hub->rl_identity, device);
    gw_emit(c, VIGIL_EV_AUTH_SUCCESS, NULL, 0, NULL, c->role->name);
    log_debug("%s client %s: device '%s' logged in (role %s)", vigil_proto_name(c->proto),
              c->peer, c->device, c->role->name);
    return VIGIL_OK;
}

vigil_err gw_login_anonymous(struct gw_client *c, const struct config_listener *l,
                             const char *client_id)
{
    gw_set_client_id(c, client_id, c->peer);
    if (!l->allow_anonymous)
        return gw_refuse(c, NULL, "vigil-anonymous",
                         "credentials required: use the DTLS listener with a certificate or PSK");
    /* As on MQTT, an anonymous client may not pose as a provisioned device. */
    if (acl_client_id_names_device(c->hub, c->client_id))
        return gw_refuse(c, NULL, "vigil-identity",
                         "client id names a provisioned device; the device must use DTLS");
    c->logged_in = true;
    c->full_access = true;
    c->role = NULL;
    gw_emit(c, VIGIL_EV_AUTH_SUCCESS, NULL, 0, NULL, "anonymous");
    return VIGIL_OK;
}

bool gw_identity_revoked(struct hub *hub, const char *device, const char *serial)
{
    uint8_t key[64];
    size_t key_len;

    if (device == NULL || device[0] == '\0')
        return false;
    if (hub->snap == NULL || device_snapshot_find(hub->snap, device) == NULL)
        return true;
    if (serial != NULL && serial[0] != '\0')
        return hub->tls_crl[0] != '\0' && tls_crl_contains(hub->tls_crl, serial) == VIGIL_OK;
    /* No certificate: the session was keyed by the device's PSK, which
     * `vigil device revoke` deletes. */
    key_len = device_snapshot_psk(hub->snap, device, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return key_len == 0;
}

void gw_client_close(struct gw_client *c, const char *why)
{
    struct session *s = c->session;

    if (s != NULL) {
        for (size_t i = 0; i < s->n_subs; i++)
            subtree_remove(c->hub->subs, s->subs[i].filter, strlen(s->subs[i].filter), s);
        s->gw = NULL;
        c->session = NULL;
        session_unref(s);
    }
    if (c->logged_in) {
        if (c->ev_suppressed > 0)
            gw_emit_suppressed(c);
        gw_emit(c, VIGIL_EV_DISCONNECT, NULL, 0, NULL, why);
    }
    c->logged_in = false;
}

/* Access control and publishing */

bool gw_can_publish(const struct gw_client *c, const char *topic, size_t len)
{
    if (!c->logged_in)
        return false;
    return acl_check_publish(c->hub, c->full_access ? NULL : c->role, c->device, topic, len);
}

bool gw_can_subscribe(const struct gw_client *c, const char *filter, size_t len)
{
    if (!c->logged_in)
        return false;
    return acl_check_subscribe(c->hub, c->full_access ? NULL : c->role, c->device, filter, len);
}

static void gw_publish_event(struct gw_client *c, enum vigil_event_type type, const char *topic,
                             size_t len, const uint8_t *payload, size_t payload_len, uint8_t qos,
                             bool retain, const char *rule, const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    VIGIL_EVENT_SET(&ev, topic, topic, len);
    ev.qos = qos;
    ev.retain = retain;
    ev.size = (uint32_t)payload_len;
    ev.rule = rule;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    /* The measurement goes to the engine only, never to the event log. */
    if (type == VIGIL_EV_PUBLISH)
        ev.has_value = secmon_extract_value(topic, len, payload, payload_len, ev.metric,
                                            sizeof ev.metric, &ev.value);
    gw_emit_ev(c, &ev);
}

static enum gw_pub_result gw_route(struct gw_client *c, const char *topic, size_t len,
                                   const uint8_t *payload, size_t payload_len, uint8_t qos,
                                   bool retain, const char *what)
{
    struct hub *hub = c->hub;
    const struct config_limits *lim = &hub->cfg.limits;
    struct msg *m;

    if (len == 0 || !topic_name_valid(topic, len)) {
        gw_publish_event(c, VIGIL_EV_MALFORMED, topic, len, payload, payload_len, qos, retain,
                         "vigil-topic", "topic name is empty or contains a wildcard");
        return GW_PUB_BAD_TOPIC;
    }
    /* MQTT subscribers reject a topic that is not UTF-8 (MQTT-1.5.4-1). */
    if (!mqtt_utf8_valid((const uint8_t *)topic, len)) {
        gw_publish_event(c, VIGIL_EV_MALFORMED, "", 0, payload, payload_len, qos, retain,
                         "MQTT-1.5.4-1", "topic name is not well-formed UTF-8");
        return GW_PUB_BAD_TOPIC;
    }
    if (len > lim->max_topic_length || topic_levels(topic, len) > lim->max_topic_levels) {
        gw_publish_event(c, VIGIL_EV_LIMIT, topic, len, payload, payload_len, qos, retain,
                         "vigil-topic-limit", "topic exceeds the length or level limit");
        return GW_PUB_BAD_TOPIC;
    }
    hub->stats.msgs_received++;
    if (!gw_can_publish(c, topic, len)) {
        hub->stats.publish_denied++;
        gw_publish_event(c, VIGIL_EV_ACL_DENY, topic, len, payload, payload_len, qos, retain, NULL,
                         "publish not allowed");
        return GW_PUB_DENIED;
    }
    gw_publish_event(c, VIGIL_EV_PUBLISH, topic, len, payload, payload_len, qos, retain, NULL,
                     what);
    m = msg_new(topic, len, payload, payload_len, NULL, 0);
    if (m == NULL)
        return GW_PUB_NO_MEMORY;
    m->qos = qos > 2 ? 2 : qos;
    m->retain = retain;
    m->origin = c->session;
    if (retain)
        router_retain(hub, m, true);
    router_publish(hub, m, c->session);
    msg_unref(m);
    return GW_PUB_OK;
}

enum gw_pub_result gw_publish(struct gw_client *c, const char *topic, size_t len,
                              const uint8_t *payload, size_t payload_len, uint8_t qos,
                              bool retain)
{
    return gw_route(c, topic, len, payload, payload_len, qos, retain, NULL);
}

enum gw_pub_result gw_publish_will(struct gw_client *c, const char *topic, size_t len,
                                   const uint8_t *payload, size_t payload_len, uint8_t qos,
                                   bool retain)
{
    return gw_route(c, topic, len, payload, payload_len, qos, retain, "will");
}

/* A store barrier, or the next loop iteration when nothing is pending, so
 * the callback never runs inside the caller. */
struct gw_durable {
    uv_idle_t idle;
    void (*done)(void *arg, vigil_err rc);
    void *arg;
};

static void gw_durable_free(uv_handle_t *h)
{
    vigil_free(h->data);
}

static void gw_durable_now(uv_idle_t *h)
{
    struct gw_durable *d = h->data;

    uv_idle_stop(h);
    d->done(d->arg, VIGIL_OK);
    uv_close((uv_handle_t *)h, gw_durable_free);
}

void gw_when_durable(struct hub *hub, void (*done)(void *arg, vigil_err rc), void *arg)
{
    struct gw_durable *d;

    if (store_pending(hub->store) > 0) {
        persist_barrier(hub, done, arg);
        return;
    }
    d = vigil_calloc(1, sizeof *d);
    if (d == NULL) {
        /* Without memory for the deferral, the barrier still calls back later. */
        persist_barrier(hub, done, arg);
        return;
    }
    d->done = done;
    d->arg = arg;
    uv_idle_init(hub->loop, &d->idle);
    d->idle.data = d;
    uv_idle_start(&d->idle, gw_durable_now);
}

/* Subscriptions */

static vigil_err gw_session(struct gw_client *c)
{
    char name[96];

    if (c->session != NULL)
        return VIGIL_OK;
    snprintf(name, sizeof name, "%s:%s", vigil_proto_name(c->proto), c->client_id);
    c->session = session_new_detached(c->hub, name, c->device);
    if (c->session == NULL)
        return VIGIL_ERR_NOMEM;
    c->session->gw = c;
    return VIGIL_OK;
}

vigil_err gw_subscribe(struct gw_client *c, const char *filter, size_t len, uint8_t qos,
                       uint32_t sub_id, bool send_retained)
{
    struct hub *hub = c->hub;
    uint8_t options = qos > 2 ? 2 : qos;
    bool existed = false;
    vigil_err rc;

    /* Shared subscriptions are an MQTT 5 feature the UDP protocols lack. */
    if (len == 0 || !topic_filter_valid(filter, len) ||
        (len >= 7 && memcmp(filter, "$share/", 7) == 0)) {
        gw_emit(c, VIGIL_EV_MALFORMED, filter, len, "vigil-topic-filter",
                "invalid topic filter");
        return VIGIL_ERR_INVALID;
    }
    if (!mqtt_utf8_valid((const uint8_t *)filter, len)) {
        gw_emit(c, VIGIL_EV_MALFORMED, NULL, 0, "MQTT-1.5.4-1",
                "topic filter is not well-formed UTF-8");
        return VIGIL_ERR_INVALID;
    }
    if (len > hub->cfg.limits.max_topic_length ||
        topic_levels(filter, len) > hub->cfg.limits.max_topic_levels) {
        gw_emit(c, VIGIL_EV_LIMIT, filter, len, "vigil-topic-limit",
                "filter exceeds the length or level limit");
        return VIGIL_ERR_INVALID;
    }
    if (!gw_can_subscribe(c, filter, len)) {
        gw_emit(c, VIGIL_EV_ACL_DENY, filter, len, NULL, "subscribe not allowed");
        return VIGIL_ERR_AUTH;
    }
    rc = gw_session(c);
    if (rc != VIGIL_OK)
        return rc;
    if (c->session->n_subs >= hub->cfg.limits.max_subscriptions) {
        bool known = false;

        for (size_t i = 0; i < c->session->n_subs; i++)
            if (strlen(c->session->subs[i].filter) == len &&
                memcmp(c->session->subs[i].filter, filter, len) == 0)
                known = true;
        if (!known) {
            gw_emit(c, VIGIL_EV_LIMIT, filter, len, "vigil-subscriptions",
                    "too many subscriptions");
            return VIGIL_ERR_LIMIT;
        }
    }
    rc = session_add_sub(c->session, filter, len, options, sub_id, &existed);
    if (rc != VIGIL_OK)
        return rc;
    {
        struct vigil_event ev;

        vigil_event_init(&ev, VIGIL_EV_SUBSCRIBE);
        VIGIL_EVENT_SET(&ev, topic, filter, len);
        ev.qos = options;
        gw_emit_ev(c, &ev);
    }
    if (send_retained)
        router_send_retained(hub, c->session, filter, len, options, sub_id);
    return VIGIL_OK;
}

bool gw_unsubscribe(struct gw_client *c, const char *filter, size_t len)
{
    bool had = c->session != NULL && session_remove_sub(c->session, filter, len);

    gw_emit(c, VIGIL_EV_UNSUBSCRIBE, filter, len, NULL, had ? NULL : "no such subscription");
    return had;
}

struct msg *gw_retained(struct hub *hub, const char *topic, size_t len)
{
    struct msg *m = retain_get(hub->retained, topic, len);

    if (m == NULL || msg_expired(m, hub_now_s()))
        return NULL;
    return m;
}

/* Topics */

/* Appends s (or fallback when s is empty) to out at *n; false when it does
 * not fit. */
static bool gw_append(char *out, size_t cap, size_t *n, const char *s, const char *fallback)
{
    size_t len;

    if (s[0] == '\0')
        s = fallback;
    len = strlen(s);
    if (*n + len >= cap)
        return false;
    memcpy(out + *n, s, len);
    *n += len;
    return true;
}

/* True when s can be one topic level: no '/', '+', '#' or NUL. */
static bool gw_level_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || s[i] == '+' || s[i] == '#' || s[i] == '\0')
            return false;
    return true;
}

size_t gw_device_topic(const struct gw_client *c, const char *metric, size_t metric_len,
                       char *out, size_t cap)
{
    const char *base = c->hub->cfg.gateway.topic_base;
    size_t n = 0;

    if (c->device[0] == '\0' || metric_len == 0 || !gw_level_ok(metric, metric_len) || cap == 0)
        return 0;
    if (!gw_level_ok(c->device_unit, strlen(c->device_unit)) ||
        !gw_level_ok(c->device_type, strlen(c->device_type)))
        return 0;
    for (const char *p = base; *p != '\0'; p++) {
        bool ok = true;

        if (p[0] == '%' && (p[1] == 'd' || p[1] == 't' || p[1] == 'u')) {
            if (p[1] == 'd')
                ok = gw_append(out, cap, &n, c->device, "");
            else if (p[1] == 't')
                ok = gw_append(out, cap, &n, c->device_type, "device");
            else
                ok = gw_append(out, cap, &n, c->device_unit, "unassigned");
            p++;
        } else if (n + 1 < cap) {
            out[n++] = *p;
        } else {
            ok = false;
        }
        if (!ok)
            return 0;
    }
    if (n + metric_len >= cap)
        return 0;
    memcpy(out + n, metric, metric_len);
    n += metric_len;
    out[n] = '\0';
    return n;
}
