/* CoAP front end: the UDP endpoint of one coap or coaps listener, the
 * state of each peer from its first datagram (or DTLS handshake) until it
 * goes idle, logins, the periodic tick and the struct gw_front operations. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "front/coap_internal.h"

uint64_t coap_now_ms(const struct coap_front *f)
{
    return uv_now(f->hub->loop);
}

/* xorshift64*: retransmission jitter and message IDs need no more. */
uint32_t coap_random(struct coap_front *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (uint32_t)((f->rng * UINT64_C(2685821657736338717)) >> 32);
}

/* Takes one event from the budget shared by peers without state. */
static bool peer_event_budget(struct coap_front *f)
{
    uint64_t now = coap_now_ms(f);

    if (now - f->peer_ev_window_ms >= 1000) {
        f->peer_ev_window_ms = now;
        f->peer_ev_count = 0;
    }
    return f->peer_ev_count++ < COAP_PEER_EVENTS_PER_S;
}

void coap_emit(struct coap_front *f, struct udp_peer *p, enum vigil_event_type type,
               const char *rule, const char *detail, uint32_t size)
{
    struct coap_peer *cp = p->user;
    struct vigil_event ev;

    if (cp == NULL) {
        if (peer_event_budget(f))
            gw_emit_peer(f->hub, VIGIL_PROTO_COAP, p->name, type, rule, detail, size);
        return;
    }
    vigil_event_init(&ev, type);
    ev.rule = rule;
    ev.size = size;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    gw_emit_ev(&cp->client, &ev);
}

/* Creates the state of p. The client is not logged in yet. */
static struct coap_peer *peer_create(struct coap_front *f, struct udp_peer *p)
{
    struct coap_peer *cp = vigil_calloc(1, sizeof *cp);

    if (cp == NULL) {
        log_warn("coap %s: no memory for peer state", p->name);
        return NULL;
    }
    cp->front = f;
    cp->udp = p;
    cp->next_mid = (uint16_t)coap_random(f);
    cp->next_sub_id = 1;
    gw_client_init(&cp->client, f->hub, &coap_client_ops, VIGIL_PROTO_COAP, p->name);
    p->user = cp;
    f->n_peers++;
    return cp;
}

struct coap_peer *coap_peer_get(struct coap_front *f, struct udp_peer *p)
{
    return p->user != NULL ? p->user : peer_create(f, p);
}

bool coap_peer_login(struct coap_peer *cp)
{
    struct coap_front *f = cp->front;
    struct udp_peer *p = cp->udp;
    vigil_err rc;

    if (cp->client.logged_in)
        return true;
    /* A peer blocked after failed logins gets 4.01 without another try and
     * one rate_limit event, so a flood of requests cannot flood the event
     * log. */
    if (gw_peer_blocked(f->hub, p->name)) {
        if (!cp->block_reported)
            gw_emit(&cp->client, VIGIL_EV_RATE_LIMIT, NULL, 0, "vigil-ratelimit",
                    "peer blocked after repeated failed logins");
        cp->block_reported = true;
        return false;
    }
    cp->block_reported = false;
    if (f->dtls)
        rc = gw_login_device(&cp->client, p->identity, "");
    else
        rc = gw_login_anonymous(&cp->client, f->listener, "");
    if (rc != VIGIL_OK)
        return false;
    f->n_logged_in++;
    return true;
}

static void front_secured(void *ctx, struct udp_peer *p)
{
    struct coap_front *f = ctx;
    struct coap_peer *cp = coap_peer_get(f, p);

    if (cp != NULL)
        coap_peer_login(cp);
}

static void durable_detach(struct coap_peer *cp)
{
    for (struct coap_durable *d = cp->durable; d != NULL; d = d->next)
        d->peer = NULL;
    cp->durable = NULL;
}

static void front_closing(void *ctx, struct udp_peer *p)
{
    struct coap_front *f = ctx;
    struct coap_peer *cp = p->user;

    if (cp == NULL)
        return;
    cp->closing = true;
    if (cp->client.logged_in)
        f->n_logged_in--;
    coap_observe_free_all(cp);
    gw_client_close(&cp->client, cp->close_why != NULL ? cp->close_why : "peer closed");
    durable_detach(cp);
    coap_dedup_free(&cp->dedup);
    coap_reassembly_reset(&cp->block1);
    vigil_free(cp->b2_path);
    vigil_free(cp->b2_body);
    p->user = NULL;
    f->n_peers--;
    vigil_free(cp);
}

void coap_peer_close(struct coap_peer *cp, const char *why)
{
    cp->close_why = why;
    udp_peer_close(cp->udp, why);
}

/* ---- tick ---- */

static bool peer_idle(const struct coap_peer *cp, uint64_t now, uint64_t idle_ms)
{
    return cp->n_obs == 0 && !cp->con.active && cp->q_len == 0 && cp->durable == NULL &&
           now - cp->udp->last_rx_ms >= idle_ms;
}

static void tick_peer(void *ctx, struct udp_peer *p)
{
    struct coap_front *f = ctx;
    struct coap_peer *cp = p->user;
    uint64_t now = coap_now_ms(f);
    uint64_t idle_ms = (uint64_t)f->hub->cfg.gateway.coap_idle_s * 1000;

    if (cp == NULL) {
        if (now - p->last_rx_ms >= idle_ms)
            udp_peer_close(p, "idle");
        return;
    }
    coap_dedup_expire(&cp->dedup, now);
    if (coap_reassembly_expired(&cp->block1, now))
        coap_reassembly_reset(&cp->block1);
    /* An observer quiet for the idle time gets a confirmable notification
     * once per idle time, so one that went away is noticed. */
    if (cp->n_obs > 0 && now - p->last_rx_ms >= idle_ms && now - cp->checked_ms >= idle_ms) {
        cp->checked_ms = now;
        coap_observe_check(cp);
    }
    if (peer_idle(cp, now, idle_ms)) {
        log_debug("coap %s: released after %u s without traffic", p->name,
                  f->hub->cfg.gateway.coap_idle_s);
        coap_peer_close(cp, "idle");
    }
}

static void on_tick(uv_timer_t *t)
{
    struct coap_front *f = t->data;

    if (!f->closing)
        udp_endpoint_foreach(f->ep, tick_peer, f);
}

static void on_retx(uv_timer_t *t)
{
    struct coap_front *f = t->data;

    coap_observe_retx(f, coap_now_ms(f));
    if (f->retx_head == NULL && f->retx_running) {
        uv_timer_stop(&f->retx);
        f->retx_running = false;
    }
}

void coap_retx_arm(struct coap_front *f)
{
    if (f->retx_running || f->closing)
        return;
    uv_timer_start(&f->retx, on_retx, COAP_RETX_TICK_MS, COAP_RETX_TICK_MS);
    f->retx_running = true;
}

/* ---- struct gw_front ---- */

void coap_front_release(struct coap_front *f)
{
    if (f->closing && f->handles_open == 0 && f->n_durable == 0)
        vigil_free(f);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct coap_front *f = h->data;

    f->handles_open--;
    coap_front_release(f);
}

static void front_close(struct gw_front *base)
{
    struct coap_front *f = (struct coap_front *)base;

    if (f->closing)
        return;
    f->closing = true;
    udp_endpoint_close(f->ep);
    f->ep = NULL;
    uv_close((uv_handle_t *)&f->tick, on_handle_closed);
    uv_close((uv_handle_t *)&f->retx, on_handle_closed);
}

static void front_reload(struct gw_front *base)
{
    struct coap_front *f = (struct coap_front *)base;

    if (!f->closing)
        udp_endpoint_reload(f->ep);
}

/* Ends the session of a device whose identity the inventory or the CRL
 * no longer accepts. */
static void revoke_peer(void *ctx, struct udp_peer *p)
{
    struct coap_front *f = ctx;
    struct coap_peer *cp = p->user;

    if (cp == NULL || !cp->client.logged_in || cp->client.device[0] == '\0')
        return;
    if (!gw_identity_revoked(f->hub, cp->client.device, p->cert_serial))
        return;
    log_info("coap %s: identity '%s' revoked; session closed", p->name, cp->client.device);
    gw_emit(&cp->client, VIGIL_EV_CERT, NULL, 0, NULL, "identity revoked; session closed");
    coap_peer_close(cp, "identity revoked");
}

/* device and serial name the change when known; every client is checked
 * either way, which is always correct. */
static void front_revoked(struct gw_front *base, const char *device, const char *serial)
{
    struct coap_front *f = (struct coap_front *)base;

    (void)device;
    (void)serial;
    if (f->closing || !f->dtls)
        return;
    udp_endpoint_foreach(f->ep, revoke_peer, f);
    /* A revoked or removed identity must not resume a cached session. */
    udp_endpoint_revoke(f->ep, NULL, NULL);
}

static uint32_t front_n_clients(const struct gw_front *base)
{
    const struct coap_front *f = (const struct coap_front *)base;

    return f->n_logged_in;
}

vigil_err coap_front_open(struct hub *hub, const struct config_listener *l, struct gw_front **out)
{
    struct coap_front *f = vigil_calloc(1, sizeof *f);
    vigil_err rc;

    *out = NULL;
    if (f == NULL)
        return VIGIL_ERR_NOMEM;
    f->base.close = front_close;
    f->base.reload = front_reload;
    f->base.revoked = front_revoked;
    f->base.n_clients = front_n_clients;
    f->hub = hub;
    f->listener = l;
    f->rng = (uint64_t)vigil_time_now_us() ^ (uint64_t)(uintptr_t)f ^ 0x9E3779B97F4A7C15u;
    f->handler = (struct udp_handler){.datagram = coap_datagram, .secured = front_secured,
                                      .closing = front_closing, .ctx = f};
    rc = udp_endpoint_open(hub, l, VIGIL_PROTO_COAP, &f->handler, &f->ep);
    if (rc != VIGIL_OK) {
        vigil_free(f);
        return rc;
    }
    f->dtls = udp_endpoint_is_dtls(f->ep);
    udp_endpoint_set_idle_ms(f->ep, (uint64_t)hub->cfg.gateway.coap_idle_s * 1000);
    uv_timer_init(hub->loop, &f->tick);
    uv_timer_init(hub->loop, &f->retx);
    f->tick.data = f;
    f->retx.data = f;
    f->handles_open = 2;
    uv_timer_start(&f->tick, on_tick, COAP_TICK_MS, COAP_TICK_MS);
    log_debug("coap front end on listener %s port %u ready", l->host, l->port);
    *out = &f->base;
    return VIGIL_OK;
}
