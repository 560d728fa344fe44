/* MQTT-SN gateway front end: one per mqttsn or mqttsn-dtls listener. Owns
 * the UDP endpoint, one struct sn_client per peer, the dispatch of decoded
 * messages and the timer for keep-alive, sleep, retransmission and
 * ADVERTISE. */
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "front/mqttsn_internal.h"

uint64_t sn_now(const struct sn_front *f)
{
    return uv_now(f->hub->loop);
}

bool sn_send(struct sn_client *c, const struct sn_msg *m)
{
    size_t n;
    vigil_err rc;

    if (c->peer == NULL)
        return false;
    n = sn_encode(m, c->f->scratch, SN_MAX_LENGTH);
    if (n == 0) {
        log_warn("mqttsn %s: cannot encode %s", c->gw.peer, sn_type_name(m->type));
        return false;
    }
    rc = udp_send(c->peer, c->f->scratch, n);
    if (rc != VIGIL_OK) {
        log_debug("mqttsn %s: sending %s failed: %s", c->gw.peer, sn_type_name(m->type),
                  vigil_strerror(rc));
        return false;
    }
    return true;
}

bool sn_send_simple(struct sn_client *c, uint8_t type)
{
    struct sn_msg m = {.type = type};

    return sn_send(c, &m);
}

void sn_malformed(struct sn_client *c, const char *rule, const char *detail, size_t size)
{
    struct vigil_event ev;

    vigil_event_init(&ev, VIGIL_EV_MALFORMED);
    ev.rule = rule;
    ev.size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    gw_emit_ev(&c->gw, &ev);
}

void sn_event(struct sn_client *c, enum vigil_event_type type, const char *topic, size_t len,
              const char *detail)
{
    gw_emit(&c->gw, type, topic, len, NULL, detail);
}

bool sn_connected(const struct sn_client *c)
{
    return c->state == SN_ST_ACTIVE || c->state == SN_ST_ASLEEP || c->state == SN_ST_AWAKE;
}

void sn_front_unref(struct sn_front *f)
{
    if (--f->refs > 0)
        return;
    vigil_free(f->scratch);
    vigil_free(f);
}

/* ---- clients ---- */

static struct sn_client *client_new(struct sn_front *f, struct udp_peer *p)
{
    struct sn_client *c = vigil_calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    gw_client_init(&c->gw, f->hub, &sn_client_ops, VIGIL_PROTO_MQTTSN, p->name);
    c->f = f;
    c->peer = p;
    c->next_msg_id = 1;
    sn_topics_init(&c->topics, SN_MAX_TOPICS);
    p->user = c;
    return c;
}

/* Frees c once its peer is closing. The front end ends a client itself
 * before it closes the peer, so a client still connected here lost its
 * peer in the UDP layer. A DTLS close_notify, a fatal alert or a new
 * handshake from the same address does that. Such a client is lost, as
 * over MQTT without DISCONNECT, and its will is published. A gateway that
 * stops publishes no will. */
static void client_free(struct sn_client *c)
{
    const char *why = "peer closed";
    bool lost = !c->f->closing && sn_connected(c);

    if (c->f->closing) {
        why = "gateway stopping";
    } else if (lost) {
        why = c->f->dtls ? "DTLS session ended without DISCONNECT"
                         : "peer closed without DISCONNECT";
        log_info("mqttsn %s: client '%s' lost: %s", c->gw.peer, c->client_id, why);
    }
    sn_end(c, why, lost);
    sn_acks_detach(c);
    sn_topics_free(&c->topics);
    vigil_free(c);
}

/* ---- dispatch ---- */

typedef void (*sn_handler)(struct sn_client *c, const struct sn_msg *m);

static void on_searchgw(struct sn_client *c, const struct sn_msg *m)
{
    struct sn_msg gwinfo = {.type = SN_GWINFO, .gw_id = c->f->hub->cfg.gateway.mqttsn_gateway_id};

    sn_send(c, &gwinfo);
}

/* ADVERTISE from another gateway and GWINFO a client sends on behalf of a
 * gateway are part of discovery (section 6.1); a gateway ignores them. */
static void on_ignored(struct sn_client *c, const struct sn_msg *m)
{
}

static void on_gateway_only(struct sn_client *c, const struct sn_msg *m)
{
    char detail[96];

    snprintf(detail, sizeof detail, "%s is sent only by a gateway", sn_type_name(m->type));
    sn_malformed(c, sn_type_rule(m->type), detail, 0);
}

static void on_encapsulated(struct sn_client *c, const struct sn_msg *m)
{
    sn_malformed(c, "MQTT-SN-1.2:5.5", "forwarder encapsulation is not supported", 0);
}

enum sn_need {
    NEED_NOTHING = 0,
    NEED_CONNECTION,   /* active, asleep or awake */
};

struct sn_route {
    sn_handler fn;
    uint8_t need;
};

static struct sn_route route_of(uint8_t type)
{
    switch (type) {
    case SN_SEARCHGW: return (struct sn_route){on_searchgw, NEED_NOTHING};
    case SN_ADVERTISE:
    case SN_GWINFO: return (struct sn_route){on_ignored, NEED_NOTHING};
    case SN_CONNECT: return (struct sn_route){sn_on_connect, NEED_NOTHING};
    case SN_WILLTOPIC: return (struct sn_route){sn_on_willtopic, NEED_NOTHING};
    case SN_WILLMSG: return (struct sn_route){sn_on_willmsg, NEED_NOTHING};
    case SN_REGISTER: return (struct sn_route){sn_on_register, NEED_CONNECTION};
    case SN_REGACK: return (struct sn_route){sn_on_regack, NEED_CONNECTION};
    case SN_PUBLISH: return (struct sn_route){sn_on_publish, NEED_NOTHING};
    case SN_PUBACK: return (struct sn_route){sn_on_puback, NEED_CONNECTION};
    case SN_PUBREC: return (struct sn_route){sn_on_pubrec, NEED_CONNECTION};
    case SN_PUBREL: return (struct sn_route){sn_on_pubrel, NEED_CONNECTION};
    case SN_PUBCOMP: return (struct sn_route){sn_on_pubcomp, NEED_CONNECTION};
    case SN_SUBSCRIBE: return (struct sn_route){sn_on_subscribe, NEED_CONNECTION};
    case SN_UNSUBSCRIBE: return (struct sn_route){sn_on_unsubscribe, NEED_CONNECTION};
    case SN_PINGREQ: return (struct sn_route){sn_on_pingreq, NEED_NOTHING};
    case SN_DISCONNECT: return (struct sn_route){sn_on_disconnect, NEED_NOTHING};
    case SN_WILLTOPICUPD: return (struct sn_route){sn_on_willtopicupd, NEED_CONNECTION};
    case SN_WILLMSGUPD: return (struct sn_route){sn_on_willmsgupd, NEED_CONNECTION};
    case SN_ENCAPSULATED: return (struct sn_route){on_encapsulated, NEED_NOTHING};
    default: return (struct sn_route){on_gateway_only, NEED_NOTHING};
    }
}

/* A message that needs a connection from a client without one gets
 * DISCONNECT, so that the client connects again. */
static void not_connected(struct sn_client *c, const struct sn_msg *m)
{
    char detail[96];

    snprintf(detail, sizeof detail, "%s without a connection", sn_type_name(m->type));
    sn_malformed(c, "MQTT-SN-1.2:6.2", detail, 0);
    sn_send_simple(c, SN_DISCONNECT);
}

static void on_datagram(void *ctx, struct udp_peer *p, const uint8_t *data, size_t len)
{
    struct sn_front *f = ctx;
    struct sn_client *c = p->user;
    struct sn_msg m;
    struct sn_error err = {0};
    struct sn_route r;

    if (f->closing)
        return;
    if (c == NULL && (c = client_new(f, p)) == NULL) {
        log_warn("mqttsn %s: out of memory for a new peer", p->name);
        udp_peer_close(p, "out of memory");
        return;
    }
    if (sn_decode(data, len, &m, &err) != VIGIL_OK) {
        sn_malformed(c, err.rule, err.text, len);
        return;
    }
    c->last_rx_ms = sn_now(f);
    r = route_of(m.type);
    if (r.need == NEED_CONNECTION && !sn_connected(c)) {
        not_connected(c, &m);
        return;
    }
    r.fn(c, &m);
}

static void on_secured(void *ctx, struct udp_peer *p)
{
    log_debug("mqttsn %s: DTLS session established for '%s'", p->name, p->identity);
}

static void on_closing(void *ctx, struct udp_peer *p)
{
    struct sn_client *c = p->user;

    if (c == NULL)
        return;
    p->user = NULL;
    c->peer = NULL;
    client_free(c);
}

static const struct udp_handler handler = {
    .datagram = on_datagram,
    .secured = on_secured,
    .closing = on_closing,
};

/* ---- timer ---- */

struct tick_ctx {
    struct sn_front *f;
    uint64_t now;
    bool advertise;
};

static void advertise_to(struct sn_client *c)
{
    struct sn_msg m = {.type = SN_ADVERTISE,
                       .gw_id = c->f->hub->cfg.gateway.mqttsn_gateway_id,
                       .duration = (uint16_t)c->f->hub->cfg.gateway.mqttsn_advertise_s};

    if (c->f->hub->cfg.gateway.mqttsn_advertise_s > UINT16_MAX)
        m.duration = UINT16_MAX;
    sn_send(c, &m);
}

static void tick_peer(void *ctx, struct udp_peer *p)
{
    struct tick_ctx *t = ctx;
    struct sn_client *c = p->user;

    if (c == NULL) {
        if (t->now - p->last_rx_ms > SN_IDLE_MS)
            udp_peer_close(p, "idle");
        return;
    }
    if (t->advertise && (!t->f->dtls || p->secure))
        advertise_to(c);
    sn_check_timers(c, t->now);
}

static void on_timer(uv_timer_t *timer)
{
    struct sn_front *f = timer->data;
    uint32_t period = f->hub->cfg.gateway.mqttsn_advertise_s;
    struct tick_ctx t = {.f = f, .now = sn_now(f)};

    if (period > 0 && t.now >= f->next_advertise_ms) {
        t.advertise = true;
        f->next_advertise_ms = t.now + (uint64_t)period * 1000;
    }
    udp_endpoint_foreach(f->ep, tick_peer, &t);
}

/* ---- struct gw_front ---- */

static void on_timer_closed(uv_handle_t *h)
{
    sn_front_unref(h->data);
}

static void front_close(struct gw_front *base)
{
    struct sn_front *f = (struct sn_front *)base;

    if (f->closing)
        return;
    f->closing = true;
    uv_timer_stop(&f->timer);
    udp_endpoint_close(f->ep);
    f->ep = NULL;
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void front_reload(struct gw_front *base)
{
    struct sn_front *f = (struct sn_front *)base;

    if (!f->closing)
        udp_endpoint_reload(f->ep);
}

/* Ends the connection of a device client whose identity the inventory or
 * the CRL no longer accepts. */
static void revoke_peer(void *ctx, struct udp_peer *p)
{
    struct sn_front *f = ctx;
    struct sn_client *c = p->user;

    if (c == NULL || !c->gw.logged_in || c->gw.device[0] == '\0')
        return;
    if (!gw_identity_revoked(f->hub, c->gw.device, p->cert_serial))
        return;
    log_info("mqttsn %s: identity '%s' revoked; connection closed", p->name, c->gw.device);
    sn_event(c, VIGIL_EV_CERT, NULL, 0, "identity revoked; connection closed");
    sn_send_simple(c, SN_DISCONNECT);
    sn_end(c, "identity revoked", false);
    udp_peer_close(p, "identity revoked");
}

/* device and serial name the change when known; every client is checked
 * either way. */
static void front_revoked(struct gw_front *base, const char *device, const char *serial)
{
    struct sn_front *f = (struct sn_front *)base;

    if (f->closing)
        return;
    udp_endpoint_foreach(f->ep, revoke_peer, f);
    /* A revoked or removed identity must not resume a cached session. */
    if (f->dtls)
        udp_endpoint_revoke(f->ep, NULL, NULL);
}

static uint32_t front_n_clients(const struct gw_front *base)
{
    return ((const struct sn_front *)base)->n_clients;
}

vigil_err mqttsn_front_open(struct hub *hub, const struct config_listener *l,
                            struct gw_front **out)
{
    struct sn_front *f;
    vigil_err rc;

    f = vigil_calloc(1, sizeof *f);
    if (f == NULL)
        return VIGIL_ERR_NOMEM;
    f->scratch = vigil_malloc(SN_MAX_LENGTH);
    if (f->scratch == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto fail;
    }
    f->base = (struct gw_front){.close = front_close, .reload = front_reload,
                                .revoked = front_revoked, .n_clients = front_n_clients};
    f->hub = hub;
    f->l = l;
    f->dtls = l->transport == CONFIG_TRANSPORT_MQTTSN_DTLS;
    f->handler = handler;
    f->handler.ctx = f;
    rc = udp_endpoint_open(hub, l, VIGIL_PROTO_MQTTSN, &f->handler, &f->ep);
    if (rc != VIGIL_OK)
        goto fail;

    uv_timer_init(hub->loop, &f->timer);
    f->timer.data = f;
    f->refs = 1;
    f->next_advertise_ms = sn_now(f);
    uv_timer_start(&f->timer, on_timer, SN_TICK_MS, SN_TICK_MS);
    log_info(strchr(l->host, ':') != NULL ? "mqttsn: gateway %u on [%s]:%u (%s)"
                                           : "mqttsn: gateway %u on %s:%u (%s)",
             hub->cfg.gateway.mqttsn_gateway_id, l->host, l->port, f->dtls ? "DTLS" : "plain UDP");
    *out = &f->base;
    return VIGIL_OK;

fail:
    vigil_free(f->scratch);
    vigil_free(f);
    return rc;
}
