/* DTLS on UDP endpoints: the context built from the hub's TLS files, the
 * admission of a verified ClientHello (handshake rate per address, failed
 * logins, peer limit), handshake timers and deadlines, failure events,
 * reload and revocation. */
#include <stdio.h>
#include <string.h>

#include "broker/gateway.h"
#include "broker/udp_internal.h"
#include "core/log.h"

/* Source addresses whose handshake budget is tracked; the least recently
 * used is forgotten past this, as for the failed-login limits. */
#define UDP_HANDSHAKE_KEYS 65536
/* Handshake timers of many peers are served together within this slack,
 * so the timer does not fire for each one. */
#define UDP_TIMER_SLACK_MS 10
#define UDP_HANDSHAKE_TIMEOUT_DEFAULT_MS 10000

static size_t lookup_psk(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    struct hub *hub = ctx;

    return hub->snap != NULL ? device_snapshot_psk(hub->snap, identity, key, cap) : 0;
}

/* Builds a context from the files zerotrust.c resolved for every TLS
 * listener: the configured ones or the local CA's. */
static vigil_err build_server(struct udp_endpoint *ep, struct dtls_server **out)
{
    struct hub *hub = ep->hub;
    const struct config_listener *l = ep->l;
    struct dtls_server_opts o = {0};
    char err[512];
    vigil_err rc;

    if (hub->tls_cert[0] == '\0' || hub->tls_key[0] == '\0') {
        log_error("DTLS listener %s:%u: no server certificate and key were set up", l->host,
                  l->port);
        return VIGIL_ERR_CONFIG;
    }
    o.tls.cert_file = hub->tls_cert;
    o.tls.key_file = hub->tls_key;
    o.tls.ca_file = hub->tls_ca[0] != '\0' ? hub->tls_ca : NULL;
    o.tls.crl_file = hub->tls_crl[0] != '\0' ? hub->tls_crl : NULL;
    /* allow_password has no meaning here: DTLS carries no password. */
    o.tls.require_client_cert = l->require_client_cert;
    o.tls.identity = hub->cfg.tls.identity == 1 ? TLS_IDENTITY_CN : TLS_IDENTITY_URI;
    o.tls.psk_lookup = l->allow_psk ? lookup_psk : NULL;
    o.tls.psk_ctx = hub;
    o.mtu = DTLS_MTU_DEFAULT;
    o.session_cache_size = hub->cfg.gateway.max_peers;
    rc = dtls_server_new(&o, out, err, sizeof err);
    if (rc != VIGIL_OK)
        log_error("DTLS listener %s:%u: %s", l->host, l->port, err);
    return rc;
}

vigil_err udp_dtls_open(struct udp_endpoint *ep)
{
    const struct config_gateway *g = &ep->hub->cfg.gateway;
    vigil_err rc;

    if (g->handshake_burst == 0) {
        log_error("DTLS listener %s:%u: gateway.handshake_burst must be at least 1", ep->l->host,
                  ep->l->port);
        return VIGIL_ERR_CONFIG;
    }
    rc = build_server(ep, &ep->dtls);
    if (rc != VIGIL_OK)
        return rc;
    rc = dtls_listener_new(ep->dtls, &ep->listener);
    if (rc != VIGIL_OK)
        return rc;
    ep->rl_handshake =
        ratelimit_new(g->handshake_burst, g->handshakes_per_minute, UDP_HANDSHAKE_KEYS);
    if (ep->rl_handshake == NULL)
        return VIGIL_ERR_NOMEM;
    ep->handshake_timeout_ms = ep->hub->cfg.limits.connect_timeout_ms != 0
                                   ? ep->hub->cfg.limits.connect_timeout_ms
                                   : UDP_HANDSHAKE_TIMEOUT_DEFAULT_MS;
    return VIGIL_OK;
}

void udp_dtls_free(struct udp_endpoint *ep)
{
    dtls_listener_free(ep->listener);
    dtls_server_free(ep->dtls);
    ratelimit_free(ep->rl_handshake);
    ep->listener = NULL;
    ep->dtls = NULL;
    ep->rl_handshake = NULL;
}

/* Peers in handshake */

static void handshake_link(struct udp_endpoint *ep, struct udp_peer_state *p, uint64_t deadline)
{
    p->deadline_ms = deadline;
    p->hs_prev = NULL;
    p->hs_next = ep->handshakes;
    if (ep->handshakes != NULL)
        ep->handshakes->hs_prev = p;
    ep->handshakes = p;
    p->in_handshakes = true;
}

void udp_dtls_handshake_unlink(struct udp_endpoint *ep, struct udp_peer_state *p)
{
    if (!p->in_handshakes)
        return;
    if (p->hs_prev != NULL)
        p->hs_prev->hs_next = p->hs_next;
    else
        ep->handshakes = p->hs_next;
    if (p->hs_next != NULL)
        p->hs_next->hs_prev = p->hs_prev;
    p->hs_prev = p->hs_next = NULL;
    p->in_handshakes = false;
}

/* Milliseconds until p needs the timer: a retransmission or its deadline. */
static uint64_t handshake_due(const struct udp_peer_state *p, uint64_t now)
{
    int64_t retransmit = dtls_session_timeout_ms(p->dtls);
    uint64_t due = p->deadline_ms > now ? p->deadline_ms - now : 0;

    if (retransmit >= 0 && (uint64_t)retransmit < due)
        due = (uint64_t)retransmit;
    return due;
}

/* Events and outcomes */

/* Emits the failure and ends p. A failure the peer caused counts as a
 * failed login of its address, and of the PSK identity it claimed with a
 * wrong key. A timeout does not count, because lost datagrams cause
 * timeouts too. */
static void handshake_failed(struct udp_endpoint *ep, struct udp_peer_state *p, const char *why,
                             bool timed_out, uint32_t size)
{
    const char *claimed = dtls_session_claimed_identity(p->dtls);

    if (udp_emit(ep, VIGIL_PROTO_DTLS, p->pub.name, VIGIL_EV_TLS_FAILURE, NULL, why, size))
        log_info("udp %s: DTLS handshake failed: %s", p->pub.name, why);
    if (!timed_out)
        gw_login_failed(ep->hub, p->pub.name, claimed[0] != '\0' ? claimed : NULL);
    udp_peer_close(&p->pub, why);
}

/* After dtls_session_feed or the timer: closes p or arms its timer. */
static void after_session_step(struct udp_endpoint *ep, struct udp_peer_state *p, vigil_err rc,
                               uint32_t size)
{
    if (p->closed)
        return;
    if (rc == VIGIL_OK) {
        if (p->in_handshakes)
            udp_timer_schedule(ep, handshake_due(p, uv_now(ep->hub->loop)));
        return;
    }
    if (rc == VIGIL_ERR_CLOSED) {
        udp_peer_close(&p->pub, "peer sent close_notify");
        return;
    }
    if (!p->pub.secure) {
        handshake_failed(ep, p, dtls_session_error(p->dtls), false, size);
        return;
    }
    log_debug("udp %s: DTLS session failed: %s", p->pub.name, dtls_session_error(p->dtls));
    udp_peer_close(&p->pub, dtls_session_error(p->dtls));
}

/* Session callbacks */

static void peer_send(void *ctx, const uint8_t *data, size_t len)
{
    struct udp_peer_state *p = ctx;

    (void)udp_transmit(p->pub.ep, (const struct sockaddr *)&p->pub.addr, data, len);
}

static void peer_established(void *ctx)
{
    struct udp_peer_state *p = ctx;
    struct udp_endpoint *ep = p->pub.ep;

    udp_dtls_handshake_unlink(ep, p);
    snprintf(p->pub.identity, sizeof p->pub.identity, "%s", dtls_session_identity(p->dtls));
    snprintf(p->pub.cert_serial, sizeof p->pub.cert_serial, "%s",
             dtls_session_cert_serial(p->dtls));
    p->pub.used_psk = dtls_session_used_psk(p->dtls);
    p->pub.secure = true;
    p->seen = true;
    log_debug("udp %s: DTLS established (%s%s), identity '%s'", p->pub.name,
              dtls_session_cipher(p->dtls), dtls_session_resumed(p->dtls) ? ", resumed" : "",
              p->pub.identity);
    if (ep->h.secured != NULL)
        ep->h.secured(ep->h.ctx, &p->pub);
}

static void peer_received(void *ctx, const uint8_t *data, size_t len)
{
    struct udp_peer_state *p = ctx;
    struct udp_endpoint *ep = p->pub.ep;

    if (!p->closed)
        ep->h.datagram(ep->h.ctx, &p->pub, data, len);
}

/* New handshakes */

struct listen_target {
    struct udp_endpoint *ep;
    const struct sockaddr *addr;
};

static void listen_send(void *ctx, const uint8_t *data, size_t len)
{
    struct listen_target *t = ctx;

    (void)udp_transmit(t->ep, t->addr, data, len);
}

/* Decides whether a source that proved its address may start a handshake;
 * emits the event when not. Each admitted handshake takes one token of
 * the address's handshake budget. */
static bool admit(struct udp_endpoint *ep, const char *name, size_t replaced, uint32_t size)
{
    uint64_t now = uv_now(ep->hub->loop);
    char host[64];

    hub_peer_host(name, host, sizeof host);
    if (ratelimit_blocked(ep->rl_handshake, host, now)) {
        udp_emit(ep, VIGIL_PROTO_DTLS, name, VIGIL_EV_RATE_LIMIT, "vigil-ratelimit",
                 "DTLS handshake rate limit of this address reached", size);
        return false;
    }
    ratelimit_fail(ep->rl_handshake, host, now);
    if (gw_peer_blocked(ep->hub, name)) {
        udp_emit(ep, VIGIL_PROTO_DTLS, name, VIGIL_EV_RATE_LIMIT, "vigil-ratelimit",
                 "peer address blocked after repeated failed logins", size);
        return false;
    }
    /* Only now, once the cookie proved the address, may a new source
     * take the place of an idle peer. */
    if (ep->n_peers - replaced >= ep->max_peers && !udp_evict_idle(ep)) {
        udp_emit(ep, VIGIL_PROTO_DTLS, name, VIGIL_EV_LIMIT, NULL,
                 "peer limit of the listener reached", size);
        return false;
    }
    return true;
}

/* Runs the cookie exchange for a datagram from a source without a
 * session, or a new ClientHello from one with a session (old). */
static void accept_new(struct udp_endpoint *ep, struct udp_peer_state *old,
                       const struct sockaddr *addr, const uint8_t *key, size_t key_len,
                       const uint8_t *data, size_t len)
{
    struct listen_target target = {ep, addr};
    struct dtls_session_io io = {peer_send, peer_established, peer_received, NULL};
    socklen_t addr_len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : sizeof(struct sockaddr_in);
    struct udp_peer_state *p;
    char name[64];

    if (dtls_listen(ep->listener, addr, addr_len, data, len, uv_now(ep->hub->loop), listen_send,
                    &target) != DTLS_LISTEN_ACCEPTED)
        return;
    udp_format_addr(addr, name, sizeof name);
    if (!admit(ep, name, old != NULL, (uint32_t)len))
        return;
    if (old != NULL)
        udp_peer_close(&old->pub, "peer started a new DTLS handshake");
    p = udp_peer_new(ep, addr, key, key_len);
    if (p == NULL) {
        udp_emit(ep, VIGIL_PROTO_DTLS, name, VIGIL_EV_LIMIT, NULL, "out of memory for a new peer",
                 (uint32_t)len);
        return;
    }
    io.ctx = p;
    if (dtls_listener_accept(ep->listener, &io, &p->dtls) != VIGIL_OK) {
        udp_peer_close(&p->pub, "DTLS session lost");
        return;
    }
    handshake_link(ep, p, uv_now(ep->hub->loop) + ep->handshake_timeout_ms);
    after_session_step(ep, p, dtls_session_feed(p->dtls, NULL, 0), (uint32_t)len);
}

void udp_dtls_input(struct udp_endpoint *ep, struct udp_peer_state *p,
                    const struct sockaddr *addr, const uint8_t *key, size_t key_len,
                    const uint8_t *data, size_t len)
{
    /* A ClientHello with another client random is a new handshake: a
     * restarted client that kept its port. It replaces the session only
     * once its cookie proved the address. */
    if (p == NULL ||
        (dtls_is_client_hello(data, len) && !dtls_session_same_hello(p->dtls, data, len))) {
        accept_new(ep, p, addr, key, key_len, data, len);
        return;
    }
    p->pub.last_rx_ms = uv_now(ep->hub->loop);
    after_session_step(ep, p, dtls_session_feed(p->dtls, data, len), (uint32_t)len);
}

uint64_t udp_dtls_on_timer(struct udp_endpoint *ep, uint64_t now)
{
    struct udp_peer_state *p = ep->handshakes;
    uint64_t next = UINT64_MAX;

    while (p != NULL) {
        struct udp_peer_state *following = p->hs_next;
        vigil_err rc = VIGIL_OK;

        if (now >= p->deadline_ms) {
            handshake_failed(ep, p, "DTLS handshake timed out", true, 0);
        } else {
            if (dtls_session_timeout_ms(p->dtls) == 0)
                rc = dtls_session_on_timer(p->dtls);
            if (rc != VIGIL_OK) {
                handshake_failed(ep, p, dtls_session_error(p->dtls), true, 0);
            } else {
                uint64_t due = handshake_due(p, now);

                next = due < next ? due : next;
            }
        }
        p = following;
    }
    if (next != UINT64_MAX && next < UDP_TIMER_SLACK_MS)
        next = UDP_TIMER_SLACK_MS;
    return next;
}

/* Reload and revocation */

void udp_endpoint_reload(struct udp_endpoint *ep)
{
    struct dtls_server *fresh;

    if (ep->dtls == NULL || ep->closing)
        return;
    if (build_server(ep, &fresh) != VIGIL_OK) {
        log_error("DTLS listener %s:%u: reload failed, keeping the previous certificates",
                  ep->l->host, ep->port);
        return;
    }
    dtls_listener_set_server(ep->listener, fresh);
    dtls_server_free(ep->dtls);
    ep->dtls = fresh;
    log_info("DTLS listener %s:%u: certificates, CA and CRL reloaded", ep->l->host, ep->port);
}

static bool revoked_match(const struct udp_peer_state *p, const char *device, const char *serial)
{
    if (!p->pub.secure)
        return false;
    if (device != NULL && device[0] != '\0' && strcmp(p->pub.identity, device) != 0)
        return false;
    return serial == NULL || serial[0] == '\0' || strcmp(p->pub.cert_serial, serial) == 0;
}

uint32_t udp_endpoint_revoke(struct udp_endpoint *ep, const char *device, const char *serial)
{
    struct vigil_map_slot *slot;
    size_t pos = 0;
    uint32_t n = 0;

    if (ep->dtls == NULL || ep->closing)
        return 0;
    dtls_server_flush_sessions(ep->dtls);
    if ((device == NULL || device[0] == '\0') && (serial == NULL || serial[0] == '\0'))
        return 0;
    while ((slot = vigil_map_next(&ep->peers, &pos)) != NULL) {
        struct udp_peer_state *p = slot->value;

        if (!revoked_match(p, device, serial))
            continue;
        dtls_session_forget(p->dtls);
        udp_peer_close(&p->pub, "identity revoked");
        n++;
    }
    if (n > 0)
        log_info("DTLS listener %s:%u: %u sessions of revoked identity '%s' ended", ep->l->host,
                 ep->port, n, device != NULL ? device : "");
    return n;
}
