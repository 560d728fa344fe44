/* The raw reference relay: a single-threaded epoll loop that accepts MQTT
 * 3.1.1 clients on loopback and copies each PUBLISH, byte for byte, to the
 * connections whose filters match its topic. It reads nothing past the
 * fixed header except the topic, packet identifiers and SUBSCRIBE filters.
 * It replies to CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and the QoS 1/2
 * acknowledgements with minimal packets, and keeps no session, retained
 * message, QoS state or store. It shows how fast this machine moves the
 * same bytes through one process, not what a broker can do. */
#include "bench/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/log.h"
#include "proto/mqtt/mqtt.h"

#define RELAY_FILTERS 8                  /* per connection */
#define RELAY_FILTER_MAX 256
#define RELAY_OUT_LIMIT (8u * 1024 * 1024) /* queued bytes per connection; later copies are dropped */
#define RELAY_PACKET_MAX (1024u * 1024)
#define RELAY_RBUF (RELAY_PACKET_MAX + 256u * 1024)
#define RELAY_EVENTS 256

struct relay_conn {
    int fd;
    bool dirty;
    bool want_out;
    bool subscribed;          /* listed in relay.subs */
    struct vigil_buf out;
    struct vigil_buf partial;
    char filters[RELAY_FILTERS][RELAY_FILTER_MAX];
    uint16_t filter_len[RELAY_FILTERS];
    uint8_t n_filters;
};

struct relay {
    int ep;
    int listen_fd;
    uint8_t *rbuf;            /* owned, RELAY_RBUF */
    struct relay_conn **subs; /* owned array, connections with filters */
    size_t n_subs, cap_subs;
    struct relay_conn **dirty;
    size_t n_dirty, cap_dirty;
    uint64_t dropped;         /* copies dropped at RELAY_OUT_LIMIT */
};

static volatile sig_atomic_t relay_stop;

static void on_signal(int sig)
{
    (void)sig;
    relay_stop = 1;
}

/* Matches an MQTT topic against a filter with '+' and '#'. */
static bool topic_matches(const char *f, size_t flen, const uint8_t *t, size_t tlen)
{
    size_t i = 0, j = 0;

    while (i < flen) {
        if (f[i] == '#')
            return true;
        if (f[i] == '+') {
            while (j < tlen && t[j] != '/')
                j++;
            i++;
        } else {
            while (i < flen && j < tlen && f[i] != '/' && t[j] != '/' && f[i] == (char)t[j])
                i++, j++;
            if (i < flen && f[i] != '/')
                return false;
            if (j < tlen && t[j] != '/')
                return false;
        }
        if (i == flen)
            return j == tlen;
        if (j == tlen)
            return flen - i == 2 && f[i + 1] == '#'; /* "a/#" matches "a" */
        i++, j++;
    }
    return j == tlen;
}

static bool grow(void ***arr, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap * 2 : 64;
    void **p;

    if (need <= *cap)
        return true;
    while (n < need)
        n *= 2;
    p = vigil_realloc(*arr, n * sizeof **arr);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

static void set_out(struct relay *r, struct relay_conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

    if (c->want_out != out) {
        c->want_out = out;
        epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

static void queue(struct relay *r, struct relay_conn *c, const uint8_t *p, size_t n)
{
    if (c->fd < 0)
        return;
    if (vigil_buf_append(&c->out, p, n) != VIGIL_OK) {
        r->dropped++;
        return;
    }
    if (!c->dirty && grow((void ***)&r->dirty, &r->cap_dirty, r->n_dirty + 1)) {
        c->dirty = true;
        r->dirty[r->n_dirty++] = c;
    }
}

static void queue_ack(struct relay *r, struct relay_conn *c, uint8_t first, const uint8_t *id)
{
    uint8_t ack[4] = {first, 2, id[0], id[1]};

    queue(r, c, ack, sizeof ack);
}

static void conn_close(struct relay *r, struct relay_conn *c)
{
    if (c->fd < 0)
        return;
    epoll_ctl(r->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    /* Freed at the next flush, after it left the dirty list. */
    if (!c->dirty && grow((void ***)&r->dirty, &r->cap_dirty, r->n_dirty + 1)) {
        c->dirty = true;
        r->dirty[r->n_dirty++] = c;
    }
    for (size_t i = 0; c->subscribed && i < r->n_subs; i++) {
        if (r->subs[i] == c) {
            r->subs[i] = r->subs[--r->n_subs];
            break;
        }
    }
    c->subscribed = false;
}

static void forward(struct relay *r, const uint8_t *pkt, size_t len, size_t header)
{
    const uint8_t *topic = pkt + header + 2;
    size_t tlen;

    if (len < header + 2)
        return;
    tlen = (size_t)pkt[header] << 8 | pkt[header + 1];
    if (header + 2 + tlen > len)
        return;
    for (size_t i = 0; i < r->n_subs; i++) {
        struct relay_conn *s = r->subs[i];

        for (uint8_t k = 0; k < s->n_filters; k++) {
            if (topic_matches(s->filters[k], s->filter_len[k], topic, tlen)) {
                queue(r, s, pkt, len);
                break;
            }
        }
    }
}

/* SUBSCRIBE: remembers each filter and grants the requested QoS. */
static bool subscribe(struct relay *r, struct relay_conn *c, const uint8_t *p, size_t len,
                      size_t header)
{
    uint8_t ack[4 + RELAY_FILTERS] = {MQTT_SUBACK << 4, 0, p[header], p[header + 1]};
    size_t off = header + 2, n = 0;

    while (off + 2 < len && n < RELAY_FILTERS) {
        size_t flen = (size_t)p[off] << 8 | p[off + 1];

        if (off + 2 + flen + 1 > len || flen == 0 || flen >= RELAY_FILTER_MAX ||
            c->n_filters == RELAY_FILTERS)
            return false;
        memcpy(c->filters[c->n_filters], p + off + 2, flen);
        c->filter_len[c->n_filters++] = (uint16_t)flen;
        ack[4 + n++] = p[off + 2 + flen] & 0x03;
        off += 2 + flen + 1;
    }
    if (!c->subscribed) {
        if (!grow((void ***)&r->subs, &r->cap_subs, r->n_subs + 1))
            return false;
        r->subs[r->n_subs++] = c;
        c->subscribed = true;
    }
    ack[1] = (uint8_t)(2 + n);
    queue(r, c, ack, 4 + n);
    return true;
}

/* Handles one framed packet; returns false to close the connection. */
static bool handle(struct relay *r, struct relay_conn *c, const uint8_t *p, size_t len,
                   size_t header)
{
    static const uint8_t connack[4] = {MQTT_CONNACK << 4, 2, 0, 0};
    static const uint8_t pingresp[2] = {MQTT_PINGRESP << 4, 0};
    uint8_t type = p[0] >> 4, qos = (p[0] >> 1) & 3;
    size_t body = len - header;

    switch (type) {
    case MQTT_CONNECT:
        queue(r, c, connack, sizeof connack);
        return true;
    case MQTT_PUBLISH:
        forward(r, p, len, header);
        if (qos > 0 && body >= 2 + ((size_t)p[header] << 8 | p[header + 1]) + 2) {
            const uint8_t *id = p + header + 2 + ((size_t)p[header] << 8 | p[header + 1]);

            queue_ack(r, c, qos == 1 ? MQTT_PUBACK << 4 : MQTT_PUBREC << 4, id);
        }
        return true;
    case MQTT_PUBREL:
        return body >= 2 ? (queue_ack(r, c, MQTT_PUBCOMP << 4, p + header), true) : false;
    case MQTT_PUBREC:
        return body >= 2 ? (queue_ack(r, c, MQTT_PUBREL << 4 | 2, p + header), true) : false;
    case MQTT_SUBSCRIBE:
        return body >= 2 && subscribe(r, c, p, len, header);
    case MQTT_UNSUBSCRIBE:
        return body >= 2 ? (queue_ack(r, c, MQTT_UNSUBACK << 4, p + header), true) : false;
    case MQTT_PINGREQ:
        queue(r, c, pingresp, sizeof pingresp);
        return true;
    case MQTT_DISCONNECT:
        return false;
    default:
        return true; /* PUBACK and PUBCOMP of deliveries */
    }
}

static size_t parse(struct relay *r, struct relay_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0, header;
    uint32_t remaining;
    struct mqtt_error err;
    vigil_err rc;

    while (off < len) {
        rc = mqtt_frame(buf + off, len - off, &header, &remaining, &err);
        if (rc == VIGIL_ERR_AGAIN)
            break;
        if (rc != VIGIL_OK || header + remaining > RELAY_PACKET_MAX)
            return SIZE_MAX;
        if (header + remaining > len - off)
            break;
        if (!handle(r, c, buf + off, header + remaining, header))
            return SIZE_MAX;
        off += header + remaining;
    }
    return off;
}

static void conn_read(struct relay *r, struct relay_conn *c)
{
    size_t have = c->partial.len, used;
    ssize_t n;

    if (have > 0)
        memcpy(r->rbuf, c->partial.data, have);
    n = recv(c->fd, r->rbuf + have, RELAY_RBUF - have, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(r, c);
        return;
    }
    used = parse(r, c, r->rbuf, have + (size_t)n);
    vigil_buf_consume(&c->partial, c->partial.len);
    if (used == SIZE_MAX ||
        (used < have + (size_t)n &&
         vigil_buf_append(&c->partial, r->rbuf + used, have + (size_t)n - used) != VIGIL_OK))
        conn_close(r, c);
}

static void conn_flush(struct relay *r, struct relay_conn *c)
{
    while (c->fd >= 0 && c->out.len > 0) {
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);

        if (n > 0) {
            vigil_buf_consume(&c->out, (size_t)n);
        } else if (n < 0 && errno == EAGAIN) {
            set_out(r, c, true);
            return;
        } else if (!(n < 0 && errno == EINTR)) {
            conn_close(r, c);
            return;
        }
    }
    if (c->fd >= 0)
        set_out(r, c, false);
}

static void conn_free(struct relay_conn *c)
{
    vigil_buf_release(&c->out);
    vigil_buf_release(&c->partial);
    vigil_free(c);
}

static void flush_dirty(struct relay *r)
{
    for (size_t i = 0; i < r->n_dirty; i++) {
        struct relay_conn *c = r->dirty[i];

        c->dirty = false;
        if (c->fd >= 0 && !c->want_out)
            conn_flush(r, c);
        /* A connection closed by this flush was queued again and is freed
         * when the loop reaches that entry. */
        if (c->fd < 0 && !c->dirty)
            conn_free(c);
    }
    r->n_dirty = 0;
}

static void accept_all(struct relay *r)
{
    int one = 1;

    for (;;) {
        int fd = accept4(r->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct relay_conn *c;
        struct epoll_event ev = {.events = EPOLLIN};

        if (fd < 0)
            return;
        c = vigil_calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        vigil_buf_init(&c->out, RELAY_OUT_LIMIT);
        vigil_buf_init(&c->partial, RELAY_PACKET_MAX);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ev.data.ptr = c;
        if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            conn_free(c);
        }
    }
}

static vigil_err relay_listen(struct relay *r, const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int one = 1;

    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return VIGIL_ERR_INVALID;
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    r->ep = epoll_create1(EPOLL_CLOEXEC);
    if (r->listen_fd < 0 || r->ep < 0)
        return VIGIL_ERR_IO;
    setsockopt(r->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(r->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->listen_fd, 4096) != 0 ||
        epoll_ctl(r->ep, EPOLL_CTL_ADD, r->listen_fd, &ev) != 0)
        return VIGIL_ERR_IO;
    return VIGIL_OK;
}

static void relay_loop(struct relay *r)
{
    struct epoll_event events[RELAY_EVENTS];

    while (!relay_stop) {
        int n = epoll_wait(r->ep, events, RELAY_EVENTS, 500);

        for (int i = 0; i < n; i++) {
            struct relay_conn *c = events[i].data.ptr;

            if (c == NULL) {
                accept_all(r);
                continue;
            }
            if (c->fd >= 0 && (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                conn_read(r, c);
            if (c->fd >= 0 && (events[i].events & EPOLLOUT))
                conn_flush(r, c);
        }
        flush_dirty(r);
    }
}

int bench_relay_run(const char *host, uint16_t port)
{
    struct relay r = {.ep = -1, .listen_fd = -1};
    struct sigaction sa = {.sa_handler = on_signal};
    vigil_err rc;

    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    r.rbuf = vigil_malloc(RELAY_RBUF);
    rc = r.rbuf != NULL ? relay_listen(&r, host, port) : VIGIL_ERR_NOMEM;
    if (rc != VIGIL_OK) {
        log_error("relay: cannot listen on %s:%u: %s", host, port,
                  rc == VIGIL_ERR_IO ? strerror(errno) : vigil_strerror(rc));
    } else {
        log_info("relay: listening on %s:%u", host, port);
        relay_loop(&r);
        log_info("relay: stopped; %llu copies dropped at the %u-byte output limit",
                 (unsigned long long)r.dropped, RELAY_OUT_LIMIT);
    }
    /* Connections still open are released with the process. */
    if (r.listen_fd >= 0)
        close(r.listen_fd);
    if (r.ep >= 0)
        close(r.ep);
    vigil_free(r.rbuf);
    vigil_free(r.subs);
    vigil_free(r.dirty);
    return rc == VIGIL_OK ? 0 : 1;
}
