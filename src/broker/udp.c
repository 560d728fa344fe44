/* UDP endpoints of the CoAP and MQTT-SN front ends: the socket, the table
 * of peers keyed by source address, sending without blocking, and the
 * deferred freeing of closed peers. The DTLS path is in udp_dtls.c. */
#include <stdio.h>
#include <string.h>

#include "broker/gateway.h"
#include "broker/udp_internal.h"
#include "core/alloc.h"
#include "core/log.h"

/* Bytes of datagrams waiting in libuv's send queue per endpoint; more are
 * dropped, as a full socket buffer drops them. */
#define UDP_SEND_QUEUE_MAX (1024u * 1024)

struct udp_send_req {
    uv_udp_send_t req;
    struct udp_endpoint *ep;
    size_t len;
    uint8_t data[];
};

/* Peer table keys: family, scope id, port and address bytes. */
static size_t addr_key(const struct sockaddr *addr, uint8_t key[UDP_KEY_MAX])
{
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;

        key[0] = 4;
        memcpy(key + 1, &a->sin_port, 2);
        memcpy(key + 3, &a->sin_addr, 4);
        return 7;
    }
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;

        key[0] = 6;
        memcpy(key + 1, &a->sin6_scope_id, 4);
        memcpy(key + 5, &a->sin6_port, 2);
        memcpy(key + 7, &a->sin6_addr, 16);
        return 23;
    }
    return 0;
}

void udp_format_addr(const struct sockaddr *addr, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;

        uv_ip6_name(a, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
        return;
    }
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;

        uv_ip4_name(a, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, (unsigned)ntohs(a->sin_port));
        return;
    }
    snprintf(out, cap, "?");
}

static void emit_suppressed(struct udp_endpoint *ep, uint8_t proto)
{
    char detail[96];

    snprintf(detail, sizeof detail, "%llu events of this listener suppressed (event rate limit)",
             (unsigned long long)ep->ev_suppressed);
    ep->ev_suppressed = 0;
    gw_emit_peer(ep->hub, proto, "", VIGIL_EV_LIMIT, NULL, detail, 0);
}

bool udp_emit(struct udp_endpoint *ep, uint8_t proto, const char *peer, enum vigil_event_type type,
              const char *rule, const char *detail, uint32_t size)
{
    /* Unlike a TCP connection, a datagram costs the sender nothing, so
     * every event about peers shares one budget per listener. */
    if (!hub_event_budget_take(ep->hub, &ep->ev_tokens, &ep->ev_last_ms)) {
        ep->ev_suppressed++;
        return false;
    }
    if (ep->ev_suppressed > 0)
        emit_suppressed(ep, proto);
    gw_emit_peer(ep->hub, proto, peer != NULL ? peer : "", type, rule, detail, size);
    return true;
}

/* Sending */

static void on_sent(uv_udp_send_t *req, int status)
{
    struct udp_send_req *r = req->data;

    (void)status;
    r->ep->queued_bytes -= r->len;
    vigil_free(r);
}

/* Queues a copy of a datagram behind those libuv is still sending. */
static vigil_err queue_send(struct udp_endpoint *ep, const struct sockaddr *addr,
                            const uint8_t *data, size_t len)
{
    struct udp_send_req *r;
    uv_buf_t buf;

    if (ep->queued_bytes + len > UDP_SEND_QUEUE_MAX)
        return VIGIL_ERR_LIMIT;
    r = vigil_malloc(sizeof *r + len);
    if (r == NULL)
        return VIGIL_ERR_NOMEM;
    r->ep = ep;
    r->len = len;
    r->req.data = r;
    memcpy(r->data, data, len);
    buf = uv_buf_init((char *)r->data, (unsigned)len);
    if (uv_udp_send(&r->req, &ep->sock, &buf, 1, addr, on_sent) != 0) {
        vigil_free(r);
        return VIGIL_ERR_IO;
    }
    ep->queued_bytes += len;
    return VIGIL_OK;
}

vigil_err udp_transmit(struct udp_endpoint *ep, const struct sockaddr *addr, const uint8_t *data,
                       size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int r;
    vigil_err rc;

    if (uv_is_closing((uv_handle_t *)&ep->sock))
        return VIGIL_ERR_CLOSED;
    r = uv_udp_try_send(&ep->sock, &buf, 1, addr);
    if (r >= 0)
        return VIGIL_OK;
    if (r != UV_EAGAIN && r != UV_ENOSYS) {
        log_debug("udp %s:%u: send failed: %s", ep->l->host, ep->port, uv_strerror(r));
        return VIGIL_ERR_IO;
    }
    rc = queue_send(ep, addr, data, len);
    /* The first drop and every 1000th are logged. */
    if (rc != VIGIL_OK && ep->send_dropped++ % 1000 == 0)
        log_warn("udp %s:%u: datagram dropped: %s (%llu dropped so far)", ep->l->host, ep->port,
                 rc == VIGIL_ERR_LIMIT ? "send queue full" : vigil_strerror(rc),
                 (unsigned long long)ep->send_dropped);
    return rc;
}

vigil_err udp_send(struct udp_peer *pub, const uint8_t *data, size_t len)
{
    struct udp_peer_state *p = (struct udp_peer_state *)pub;

    if (p->closed)
        return VIGIL_ERR_CLOSED;
    if (p->dtls == NULL) {
        if (len > UDP_DATAGRAM_MAX)
            return VIGIL_ERR_LIMIT;
        return udp_transmit(pub->ep, (const struct sockaddr *)&pub->addr, data, len);
    }
    if (!pub->secure)
        return VIGIL_ERR_INVALID;
    return dtls_session_write(p->dtls, data, len);
}

vigil_err udp_send_to(struct udp_endpoint *ep, const struct sockaddr *addr, const uint8_t *data,
                      size_t len)
{
    if (ep->dtls != NULL)
        return VIGIL_ERR_INVALID;
    if (len > UDP_DATAGRAM_MAX)
        return VIGIL_ERR_LIMIT;
    return udp_transmit(ep, addr, data, len);
}

/* Peers */

/* Ends the least recently active peer whose last datagram is at least the
 * endpoint's idle time old, to make room in a full table. A scan of the
 * table, but only when it is full and a new source arrives. */
bool udp_evict_idle(struct udp_endpoint *ep)
{
    uint64_t now = uv_now(ep->hub->loop);
    struct udp_peer_state *oldest = NULL;
    struct vigil_map_slot *slot;
    size_t pos = 0;

    if (ep->idle_ms == 0)
        return false;
    while ((slot = vigil_map_next(&ep->peers, &pos)) != NULL) {
        struct udp_peer_state *p = slot->value;

        if (now - p->pub.last_rx_ms >= ep->idle_ms &&
            (oldest == NULL || p->pub.last_rx_ms < oldest->pub.last_rx_ms))
            oldest = p;
    }
    if (oldest == NULL)
        return false;
    log_info("udp %s: peer evicted: peer table full and no datagram for %llu s", oldest->pub.name,
             (unsigned long long)((now - oldest->pub.last_rx_ms) / 1000));
    udp_emit(ep, ep->proto, oldest->pub.name, VIGIL_EV_LIMIT, NULL,
             "idle peer released: peer table of the listener full", 0);
    udp_peer_close(&oldest->pub, "evicted");
    return true;
}

struct udp_peer_state *udp_peer_new(struct udp_endpoint *ep, const struct sockaddr *addr,
                                    const uint8_t *key, size_t key_len)
{
    struct udp_peer_state *p;
    size_t addr_len = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in);

    if (ep->n_peers >= ep->max_peers && !udp_evict_idle(ep))
        return NULL;
    p = vigil_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (vigil_map_put(&ep->peers, (const char *)key, key_len, p) != VIGIL_OK) {
        vigil_free(p);
        return NULL;
    }
    p->pub.ep = ep;
    memcpy(&p->pub.addr, addr, addr_len);
    p->pub.addr_len = (socklen_t)addr_len;
    udp_format_addr(addr, p->pub.name, sizeof p->pub.name);
    p->pub.last_rx_ms = uv_now(ep->hub->loop);
    memcpy(p->key, key, key_len);
    p->key_len = key_len;
    ep->n_peers++;
    return p;
}

static void peer_free(struct udp_peer_state *p)
{
    dtls_session_free(p->dtls);
    vigil_free(p);
}

void udp_peer_close(struct udp_peer *pub, const char *why)
{
    struct udp_peer_state *p = (struct udp_peer_state *)pub;
    struct udp_endpoint *ep = pub->ep;

    if (p->closed)
        return;
    p->closed = true;
    vigil_map_remove(&ep->peers, (const char *)p->key, p->key_len);
    ep->n_peers--;
    udp_dtls_handshake_unlink(ep, p);
    if (p->dtls != NULL)
        dtls_session_shutdown(p->dtls);
    if (p->seen && ep->h.closing != NULL)
        ep->h.closing(ep->h.ctx, pub);
    pub->user = NULL;
    log_debug("udp %s: peer closed: %s", pub->name, why != NULL ? why : "");
    p->dead_next = ep->dead;
    ep->dead = p;
    udp_timer_schedule(ep, 0);
}

static void free_dead(struct udp_endpoint *ep)
{
    struct udp_peer_state *p;

    while ((p = ep->dead) != NULL) {
        ep->dead = p->dead_next;
        peer_free(p);
    }
}

/* Plain endpoints: a peer per source address from its first datagram. */
static void plain_input(struct udp_endpoint *ep, struct udp_peer_state *p,
                        const struct sockaddr *addr, const uint8_t *key, size_t key_len,
                        const uint8_t *data, size_t len)
{
    char name[64];

    if (p == NULL) {
        p = udp_peer_new(ep, addr, key, key_len);
        if (p == NULL) {
            udp_format_addr(addr, name, sizeof name);
            udp_emit(ep, ep->proto, name, VIGIL_EV_LIMIT, NULL,
                     ep->n_peers >= ep->max_peers ? "peer limit of the listener reached"
                                                  : "out of memory for a new peer",
                     (uint32_t)len);
            return;
        }
        p->seen = true;
    }
    p->pub.last_rx_ms = uv_now(ep->hub->loop);
    ep->h.datagram(ep->h.ctx, &p->pub, data, len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct udp_endpoint *ep = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)ep->recv_buf, sizeof ep->recv_buf);
}

static void on_recv(uv_udp_t *sock, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct udp_endpoint *ep = sock->data;
    uint8_t key[UDP_KEY_MAX];
    size_t key_len;
    struct udp_peer_state *p;

    (void)buf;
    if (nread < 0) {
        log_debug("udp %s:%u: receive failed: %s", ep->l->host, ep->port,
                  uv_strerror((int)nread));
        return;
    }
    /* nread 0 without an address: nothing more to read. Empty datagrams
     * and truncated ones carry no message of either protocol. */
    if (addr == NULL || nread == 0 || (flags & UV_UDP_PARTIAL) || ep->closing)
        return;
    key_len = addr_key(addr, key);
    if (key_len == 0)
        return;
    p = vigil_map_get(&ep->peers, (const char *)key, key_len);
    if (ep->dtls != NULL)
        udp_dtls_input(ep, p, addr, key, key_len, ep->recv_buf, (size_t)nread);
    else
        plain_input(ep, p, addr, key, key_len, ep->recv_buf, (size_t)nread);
}

/* Timer */

static void on_timer(uv_timer_t *t)
{
    struct udp_endpoint *ep = t->data;
    uint64_t now = uv_now(ep->hub->loop);
    uint64_t next = UINT64_MAX;

    ep->timer_due_ms = 0;
    free_dead(ep);
    if (ep->dtls != NULL && !ep->closing)
        next = udp_dtls_on_timer(ep, now);
    if (next != UINT64_MAX)
        udp_timer_schedule(ep, next);
}

void udp_timer_schedule(struct udp_endpoint *ep, uint64_t delay_ms)
{
    uint64_t due = uv_now(ep->hub->loop) + delay_ms;

    if (ep->closing || ep->handles_open < 2 || (ep->timer_due_ms != 0 && ep->timer_due_ms <= due))
        return;
    ep->timer_due_ms = due;
    uv_timer_start(&ep->timer, on_timer, delay_ms, 0);
}

/* Opening and closing */

static vigil_err parse_host(const struct config_listener *l, struct sockaddr_storage *ss)
{
    if (uv_ip4_addr(l->host, l->port, (struct sockaddr_in *)ss) == 0)
        return VIGIL_OK;
    if (uv_ip6_addr(l->host, l->port, (struct sockaddr_in6 *)ss) == 0)
        return VIGIL_OK;
    log_error("udp listener %s:%u: '%s' is not a numeric IPv4 or IPv6 address", l->host, l->port,
              l->host);
    return VIGIL_ERR_CONFIG;
}

static uint16_t bound_port(uv_udp_t *sock)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;

    if (uv_udp_getsockname(sock, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void endpoint_free(struct udp_endpoint *ep)
{
    free_dead(ep);
    udp_dtls_free(ep);
    vigil_map_free(&ep->peers);
    vigil_free(ep);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct udp_endpoint *ep = h->data;

    if (--ep->handles_open == 0)
        endpoint_free(ep);
}

/* Creates, binds and starts the socket. When it fails after the handle was
 * created, handles_open is 1 and the caller closes the handle. */
static vigil_err open_socket(struct udp_endpoint *ep)
{
    struct sockaddr_storage ss;
    vigil_err rc = parse_host(ep->l, &ss);
    int r;

    if (rc != VIGIL_OK)
        return rc;
    r = uv_udp_init_ex(ep->hub->loop, &ep->sock, ss.ss_family);
    if (r != 0) {
        log_error("udp listener %s:%u: cannot create the socket: %s", ep->l->host, ep->l->port,
                  uv_strerror(r));
        return VIGIL_ERR_IO;
    }
    ep->sock.data = ep;
    ep->handles_open = 1;
    r = uv_udp_bind(&ep->sock, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_udp_recv_start(&ep->sock, on_alloc, on_recv);
    if (r != 0) {
        log_error("udp listener %s:%u: cannot bind: %s", ep->l->host, ep->l->port,
                  uv_strerror(r));
        return VIGIL_ERR_IO;
    }
    ep->port = bound_port(&ep->sock);
    return VIGIL_OK;
}

vigil_err udp_endpoint_open(struct hub *hub, const struct config_listener *l, uint8_t proto,
                            const struct udp_handler *h, struct udp_endpoint **out)
{
    struct udp_endpoint *ep = vigil_calloc(1, sizeof *ep);
    vigil_err rc;

    *out = NULL;
    if (ep == NULL)
        return VIGIL_ERR_NOMEM;
    ep->hub = hub;
    ep->l = l;
    ep->proto = proto;
    ep->h = *h;
    ep->max_peers = hub->cfg.gateway.max_peers;
    vigil_map_init(&ep->peers);
    rc = config_listener_is_tls(l) ? udp_dtls_open(ep) : VIGIL_OK;
    if (rc == VIGIL_OK)
        rc = open_socket(ep);
    if (rc != VIGIL_OK) {
        if (ep->handles_open > 0) {
            ep->closing = true;
            uv_close((uv_handle_t *)&ep->sock, on_handle_closed);
        } else {
            endpoint_free(ep);
        }
        return rc;
    }
    uv_timer_init(hub->loop, &ep->timer);
    ep->timer.data = ep;
    ep->handles_open++;
    *out = ep;
    return VIGIL_OK;
}

void udp_endpoint_close(struct udp_endpoint *ep)
{
    struct vigil_map_slot *slot;
    size_t pos = 0;

    if (ep == NULL || ep->closing)
        return;
    ep->closing = true;
    uv_udp_recv_stop(&ep->sock);
    while ((slot = vigil_map_next(&ep->peers, &pos)) != NULL)
        udp_peer_close(slot->value, "listener closing");
    uv_timer_stop(&ep->timer);
    uv_close((uv_handle_t *)&ep->sock, on_handle_closed);
    uv_close((uv_handle_t *)&ep->timer, on_handle_closed);
}

/* Accessors */

bool udp_endpoint_is_dtls(const struct udp_endpoint *ep)
{
    return ep->dtls != NULL;
}

const struct config_listener *udp_endpoint_listener(const struct udp_endpoint *ep)
{
    return ep->l;
}

struct hub *udp_endpoint_hub(const struct udp_endpoint *ep)
{
    return ep->hub;
}

uint32_t udp_endpoint_n_peers(const struct udp_endpoint *ep)
{
    return ep->n_peers;
}

uint16_t udp_endpoint_port(const struct udp_endpoint *ep)
{
    return ep->port;
}

void udp_endpoint_set_idle_ms(struct udp_endpoint *ep, uint64_t idle_ms)
{
    ep->idle_ms = idle_ms;
}

void udp_endpoint_foreach(struct udp_endpoint *ep, void (*fn)(void *ctx, struct udp_peer *p),
                          void *ctx)
{
    struct vigil_map_slot *slot;
    size_t pos = 0;

    while ((slot = vigil_map_next(&ep->peers, &pos)) != NULL) {
        struct udp_peer_state *p = slot->value;

        if (p->seen)
            fn(ctx, &p->pub);
    }
}
