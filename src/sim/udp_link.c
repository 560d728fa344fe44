/* Datagram links of simulated devices: socket, DTLS client, backoff. */
#include "sim/udp_link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include "auth/device.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

enum link_state {
    LINK_IDLE,      /* created, not started */
    LINK_HANDSHAKE, /* DTLS handshake in progress */
    LINK_UP,
    LINK_BACKOFF,   /* waiting before the next attempt */
    LINK_CLOSED,    /* sim_link_close() was called */
};

/* A socket and its poll handle, freed once libuv released the handle. A
 * restarted link opens a new one while the old one is still closing. */
struct link_socket {
    uv_poll_t poll;
    int fd;
    struct sim_link *owner;
};

struct sim_link {
    uv_loop_t *loop;
    uv_timer_t timer;            /* handshake retransmission, backoff, deferred restart */
    struct link_socket *sock;    /* NULL between attempts */
    SSL *ssl;                    /* owned; NULL on plain links and between attempts */
    SSL_SESSION *session;        /* owned; the last established session, for resumption */
    struct sim_dtls *dtls;       /* borrowed */
    struct sockaddr_storage addr;
    char addr_text[64];
    char server_ip[INET6_ADDRSTRLEN];
    char identity[DEVICE_ID_MAX + 1];
    enum link_state state;
    uint64_t handshake_start_ms;
    uint32_t backoff_ms;
    uint64_t jitter_state;
    const char *deferred_why;    /* restart requested from inside a send, run from the timer */
    const struct sim_link_callbacks *cb;
    void *user;
    uint32_t open_handles;       /* handles being closed, the timer included */
    void (*closed)(void *arg);
    void *closed_arg;
    struct sim_link_counters counters;
    uint8_t rx[SIM_LINK_MAX_DATAGRAM];
};

static void start_attempt(struct sim_link *l);
static void drive_handshake(struct sim_link *l);

/* ---- Addresses ---------------------------------------------------------- */

static vigil_err parse_port(const char *text, uint16_t *port)
{
    char *end;
    unsigned long v;

    if (*text < '0' || *text > '9')
        return VIGIL_ERR_INVALID;
    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
        return VIGIL_ERR_INVALID;
    *port = (uint16_t)v;
    return VIGIL_OK;
}

/* Splits text into host (without brackets) and port text (NULL when absent). */
static vigil_err split_host_port(const char *text, char *host, size_t cap, const char **port)
{
    const char *colon;
    size_t len;

    *port = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return VIGIL_ERR_INVALID;
        len = (size_t)(close - text - 1);
        if (close[1] == ':')
            *port = close + 2;
        text++;
    } else {
        colon = strchr(text, ':');
        /* A second colon means a bare IPv6 address without a port. */
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            len = (size_t)(colon - text);
            *port = colon + 1;
        } else {
            len = strlen(text);
        }
    }
    if (len == 0 || len >= cap)
        return VIGIL_ERR_INVALID;
    memcpy(host, text, len);
    host[len] = '\0';
    return VIGIL_OK;
}

vigil_err sim_link_parse_address(const char *text, uint16_t default_port,
                                 struct sockaddr_storage *out)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    char host[INET6_ADDRSTRLEN];
    const char *port_text;
    uint16_t port = default_port;

    memset(out, 0, sizeof *out);
    if (split_host_port(text, host, sizeof host, &port_text) != VIGIL_OK)
        return VIGIL_ERR_INVALID;
    if (port_text != NULL && parse_port(port_text, &port) != VIGIL_OK)
        return VIGIL_ERR_INVALID;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1 && text[0] != '[') {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return VIGIL_OK;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return VIGIL_OK;
    }
    memset(out, 0, sizeof *out);
    return VIGIL_ERR_INVALID;
}

static socklen_t address_length(const struct sockaddr *addr)
{
    return addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in);
}

static void format_ip(const struct sockaddr *addr, char *out, size_t cap)
{
    const void *ip = addr->sa_family == AF_INET6
                         ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
                         : (const void *)&((const struct sockaddr_in *)addr)->sin_addr;

    if (inet_ntop(addr->sa_family, ip, out, (socklen_t)cap) == NULL)
        snprintf(out, cap, "?");
}

void sim_link_format_address(const struct sockaddr *addr, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;

    format_ip(addr, ip, sizeof ip);
    if (addr->sa_family == AF_INET6) {
        port = ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
        snprintf(out, cap, "[%s]:%u", ip, port);
    } else {
        port = ntohs(((const struct sockaddr_in *)addr)->sin_port);
        snprintf(out, cap, "%s:%u", ip, port);
    }
}

/* ---- Handles and teardown ----------------------------------------------- */

static void release_if_done(struct sim_link *l)
{
    if (l->state != LINK_CLOSED || l->open_handles > 0)
        return;
    SSL_SESSION_free(l->session);
    if (l->closed)
        l->closed(l->closed_arg);
    vigil_free(l);
}

static void on_handle_closed_timer(uv_handle_t *h)
{
    struct sim_link *l = h->data;

    l->open_handles--;
    release_if_done(l);
}

static void on_socket_closed(uv_handle_t *h)
{
    struct link_socket *s = h->data;
    struct sim_link *l = s->owner;

    close(s->fd);
    vigil_free(s);
    l->open_handles--;
    release_if_done(l);
}

/* Frees the session and closes the socket; the socket is released
 * asynchronously. */
static void teardown(struct sim_link *l)
{
    if (l->ssl != NULL) {
        SSL_free(l->ssl);
        l->ssl = NULL;
    }
    if (l->sock != NULL) {
        uv_poll_stop(&l->sock->poll);
        l->open_handles++;
        uv_close((uv_handle_t *)&l->sock->poll, on_socket_closed);
        l->sock = NULL;
    }
}

/* ---- Failures and backoff ----------------------------------------------- */

static uint32_t next_backoff(struct sim_link *l)
{
    uint32_t base = l->backoff_ms;
    uint32_t jitter;

    l->jitter_state ^= l->jitter_state << 13;
    l->jitter_state ^= l->jitter_state >> 7;
    l->jitter_state ^= l->jitter_state << 17;
    jitter = (uint32_t)(l->jitter_state % (base / 2 + 1));
    l->backoff_ms = base * 2 > SIM_LINK_BACKOFF_MAX_MS ? SIM_LINK_BACKOFF_MAX_MS : base * 2;
    return base / 2 + jitter;
}

static void on_timer(uv_timer_t *t);

/* Ends the current attempt or session and schedules the next attempt. */
static void go_down(struct sim_link *l, const char *why)
{
    bool was_up = l->state == LINK_UP;

    if (l->state == LINK_CLOSED)
        return;
    if (!was_up) {
        l->counters.failures++;
        /* A session the hub refused to resume may be why the attempt
         * failed, so the next one starts afresh. */
        SSL_SESSION_free(l->session);
        l->session = NULL;
    }
    teardown(l);
    l->state = LINK_BACKOFF;
    l->deferred_why = NULL;
    uv_timer_stop(&l->timer);
    uv_timer_start(&l->timer, on_timer, next_backoff(l), 0);
    log_debug("%s: link to %s %s: %s", l->identity, l->addr_text, was_up ? "lost" : "failed",
              why);
    if (l->cb->down)
        l->cb->down(l, l->user, was_up, why);
}

static const char *ssl_failure(SSL *ssl, int ret, char *buf, size_t cap)
{
    int e = SSL_get_error(ssl, ret);

    if (e == SSL_ERROR_SYSCALL) {
        if (errno == ECONNREFUSED)
            return "port unreachable (nothing listens there)";
        if (errno != 0) {
            snprintf(buf, cap, "%s", strerror(errno));
            return buf;
        }
        return "connection ended";
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return "closed by the hub (close_notify)";
    return sim_dtls_error_reason("DTLS error", buf, cap);
}

/* ---- Receiving ---------------------------------------------------------- */

static void deliver(struct sim_link *l, size_t len)
{
    l->counters.datagrams_received++;
    if (l->cb->datagram)
        l->cb->datagram(l, l->user, l->rx, len);
}

/* Reads every record available; stops when the callback changed the link. */
static void read_dtls(struct sim_link *l)
{
    SSL *ssl = l->ssl;
    char why[160];

    while (l->state == LINK_UP && l->ssl == ssl) {
        int n;

        ERR_clear_error();
        errno = 0;
        n = SSL_read(ssl, l->rx, sizeof l->rx);
        if (n > 0) {
            deliver(l, (size_t)n);
            continue;
        }
        if (SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ)
            return;
        go_down(l, ssl_failure(ssl, n, why, sizeof why));
        return;
    }
}

static void read_plain(struct sim_link *l)
{
    struct link_socket *s = l->sock;

    while (l->state == LINK_UP && l->sock == s) {
        ssize_t n = recv(s->fd, l->rx, sizeof l->rx, MSG_TRUNC);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            go_down(l, errno == ECONNREFUSED ? "port unreachable (nothing listens there)"
                                             : strerror(errno));
            return;
        }
        if ((size_t)n > sizeof l->rx) {
            l->counters.oversized++;
            continue;
        }
        deliver(l, (size_t)n);
    }
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    struct link_socket *s = p->data;
    struct sim_link *l = s->owner;

    (void)events;
    if (l->sock != s)
        return;
    if (status < 0) {
        go_down(l, uv_strerror(status));
        return;
    }
    if (l->state == LINK_HANDSHAKE)
        drive_handshake(l);
    else if (l->state == LINK_UP && l->ssl != NULL)
        read_dtls(l);
    else if (l->state == LINK_UP)
        read_plain(l);
}

/* ---- Connecting ----------------------------------------------------------- */

static vigil_err open_socket(struct sim_link *l, const char **why)
{
    const struct sockaddr *addr = (const struct sockaddr *)&l->addr;
    struct link_socket *s;
    int fd;

    fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, addr, address_length(addr)) != 0) {
        *why = strerror(errno);
        if (fd >= 0)
            close(fd);
        return VIGIL_ERR_IO;
    }
    s = vigil_calloc(1, sizeof *s);
    if (s == NULL || uv_poll_init_socket(l->loop, &s->poll, fd) != 0) {
        *why = s == NULL ? "out of memory" : "cannot watch the socket";
        vigil_free(s);
        close(fd);
        return VIGIL_ERR_IO;
    }
    s->fd = fd;
    s->owner = l;
    s->poll.data = s;
    l->sock = s;
    uv_poll_start(&s->poll, UV_READABLE, on_readable);
    return VIGIL_OK;
}

static vigil_err open_dtls(struct sim_link *l, const char **why)
{
    BIO *bio;

    l->ssl = sim_dtls_new_ssl(l->dtls, l->identity, l->server_ip);
    if (l->ssl == NULL) {
        *why = "cannot create the DTLS session (certificate or key)";
        return VIGIL_ERR_IO;
    }
    bio = BIO_new_dgram(l->sock->fd, BIO_NOCLOSE);
    if (bio == NULL) {
        *why = "out of memory";
        return VIGIL_ERR_NOMEM;
    }
    /* The socket is connected, so the BIO uses send() and recv(). */
    BIO_ctrl_set_connected(bio, &l->addr);
    SSL_set_bio(l->ssl, bio, bio);
    SSL_set_connect_state(l->ssl);
    DTLS_set_link_mtu(l->ssl, SIM_DTLS_LINK_MTU);
    if (l->session != NULL)
        SSL_set_session(l->ssl, l->session);
    return VIGIL_OK;
}

static void became_up(struct sim_link *l)
{
    l->state = LINK_UP;
    l->backoff_ms = SIM_LINK_BACKOFF_MIN_MS;
    l->counters.sessions++;
    uv_timer_stop(&l->timer);
    if (l->cb->up)
        l->cb->up(l, l->user);
}

static void handshake_done(struct sim_link *l)
{
    if (SSL_session_reused(l->ssl))
        l->counters.resumed++;
    SSL_SESSION_free(l->session);
    l->session = SSL_get1_session(l->ssl);
    log_debug("%s: DTLS %s with %s, %s%s", l->identity, SSL_get_version(l->ssl), l->addr_text,
              SSL_get_cipher_name(l->ssl), SSL_session_reused(l->ssl) ? " (resumed)" : "");
    became_up(l);
    /* Application data may have arrived with the last handshake flight. */
    if (l->state == LINK_UP && l->ssl != NULL)
        read_dtls(l);
}

/* Runs the handshake as far as the datagrams received allow, then arms
 * the retransmission timer. */
static void drive_handshake(struct sim_link *l)
{
    struct timeval tv;
    uint64_t ms = 1000;
    uint64_t elapsed;
    char why[160];
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(l->ssl);
    if (r == 1) {
        handshake_done(l);
        return;
    }
    if (SSL_get_error(l->ssl, r) != SSL_ERROR_WANT_READ &&
        SSL_get_error(l->ssl, r) != SSL_ERROR_WANT_WRITE) {
        go_down(l, ssl_failure(l->ssl, r, why, sizeof why));
        return;
    }
    if (DTLSv1_get_timeout(l->ssl, &tv) == 1)
        ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 + 1;
    elapsed = vigil_time_mono_ms() - l->handshake_start_ms;
    if (elapsed + ms > SIM_LINK_HANDSHAKE_TIMEOUT_MS)
        ms = elapsed < SIM_LINK_HANDSHAKE_TIMEOUT_MS ? SIM_LINK_HANDSHAKE_TIMEOUT_MS - elapsed : 0;
    uv_timer_stop(&l->timer);
    uv_timer_start(&l->timer, on_timer, ms, 0);
}

static void start_attempt(struct sim_link *l)
{
    const char *why = NULL;

    if (open_socket(l, &why) != VIGIL_OK) {
        go_down(l, why);
        return;
    }
    if (l->dtls == NULL) {
        became_up(l);
        return;
    }
    if (open_dtls(l, &why) != VIGIL_OK) {
        go_down(l, why);
        return;
    }
    l->state = LINK_HANDSHAKE;
    l->handshake_start_ms = vigil_time_mono_ms();
    drive_handshake(l);
}

static void on_timer(uv_timer_t *t)
{
    struct sim_link *l = t->data;

    switch (l->state) {
    case LINK_HANDSHAKE:
        if (vigil_time_mono_ms() - l->handshake_start_ms >= SIM_LINK_HANDSHAKE_TIMEOUT_MS) {
            go_down(l, "DTLS handshake timed out");
            return;
        }
        if (DTLSv1_handle_timeout(l->ssl) < 0) {
            go_down(l, "DTLS handshake timed out");
            return;
        }
        drive_handshake(l);
        break;
    case LINK_BACKOFF:
        start_attempt(l);
        break;
    case LINK_UP:
        if (l->deferred_why != NULL)
            go_down(l, l->deferred_why);
        break;
    default:
        break;
    }
}

/* ---- Public API ----------------------------------------------------------- */

vigil_err sim_link_create(const struct sim_link_options *opt, struct sim_link **out)
{
    struct sim_link *l = vigil_calloc(1, sizeof *l);

    *out = NULL;
    if (l == NULL)
        return VIGIL_ERR_NOMEM;
    l->loop = opt->loop;
    memcpy(&l->addr, opt->addr, address_length(opt->addr));
    sim_link_format_address(opt->addr, l->addr_text, sizeof l->addr_text);
    format_ip(opt->addr, l->server_ip, sizeof l->server_ip);
    snprintf(l->identity, sizeof l->identity, "%s", opt->identity);
    l->dtls = opt->dtls;
    l->cb = opt->cb;
    l->user = opt->user;
    l->backoff_ms = SIM_LINK_BACKOFF_MIN_MS;
    l->jitter_state = opt->seed | 1;
    uv_timer_init(l->loop, &l->timer);
    l->timer.data = l;
    *out = l;
    return VIGIL_OK;
}

void sim_link_start(struct sim_link *l)
{
    if (l->state == LINK_IDLE)
        start_attempt(l);
}

static void defer_restart(struct sim_link *l, const char *why)
{
    if (l->deferred_why != NULL)
        return;
    l->deferred_why = why;
    uv_timer_stop(&l->timer);
    uv_timer_start(&l->timer, on_timer, 0, 0);
}

vigil_err sim_link_send(struct sim_link *l, const uint8_t *data, size_t len)
{
    int r;

    if (l->state != LINK_UP || l->deferred_why != NULL)
        return VIGIL_ERR_CLOSED;
    if (len > SIM_LINK_MAX_DATAGRAM)
        return VIGIL_ERR_LIMIT;
    if (l->ssl != NULL) {
        ERR_clear_error();
        errno = 0;
        r = SSL_write(l->ssl, data, (int)len);
        if (r <= 0 && SSL_get_error(l->ssl, r) != SSL_ERROR_WANT_WRITE) {
            l->counters.send_errors++;
            defer_restart(l, errno == ECONNREFUSED ? "port unreachable (nothing listens there)"
                                                   : "DTLS write failed");
            return VIGIL_ERR_IO;
        }
    } else {
        r = send(l->sock->fd, data, len, 0) == (ssize_t)len ? 1 : 0;
        if (r == 0 && errno == ECONNREFUSED)
            defer_restart(l, "port unreachable (nothing listens there)");
    }
    if (r <= 0) {
        l->counters.send_errors++;
        return VIGIL_ERR_IO;
    }
    l->counters.datagrams_sent++;
    return VIGIL_OK;
}

void sim_link_restart(struct sim_link *l, const char *why)
{
    if (l->state == LINK_UP || l->state == LINK_HANDSHAKE)
        go_down(l, why);
}

void sim_link_close(struct sim_link *l, void (*closed)(void *arg), void *arg)
{
    if (l->state == LINK_UP && l->ssl != NULL) {
        ERR_clear_error();
        SSL_shutdown(l->ssl);
    }
    l->state = LINK_CLOSED;
    l->closed = closed;
    l->closed_arg = arg;
    teardown(l);
    uv_timer_stop(&l->timer);
    l->open_handles++;
    uv_close((uv_handle_t *)&l->timer, on_handle_closed_timer);
}

bool sim_link_is_up(const struct sim_link *l)
{
    return l->state == LINK_UP && l->deferred_why == NULL;
}

bool sim_link_is_dtls(const struct sim_link *l)
{
    return l->dtls != NULL;
}

const struct sim_link_counters *sim_link_counters(const struct sim_link *l)
{
    return &l->counters;
}
