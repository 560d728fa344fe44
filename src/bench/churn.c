/* Connection storm and TLS handshake loop (see churn.h). Each thread runs
 * its own epoll loop; TLS uses OpenSSL in non-blocking mode without session
 * resumption, so every connection pays for a full handshake. */
#include "bench/churn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/procstat.h"
#include "bench/target.h"
#include "core/alloc.h"
#include "proto/mqtt/mqtt.h"

#define CHURN_MAX_THREADS 4
#define CHURN_EVENTS 128

enum churn_state { CH_FREE = 0, CH_CONNECTING, CH_HANDSHAKE, CH_WAIT_CONNACK };

struct churn_slot {
    int fd;
    SSL *ssl;                 /* owned; NULL for plaintext */
    uint8_t state;
    uint8_t in_len;
    uint8_t in[8];
    uint64_t t0_ns;
};

struct churn_thread {
    const struct churn_options *opt;
    SSL_CTX *ctx;             /* shared, not owned */
    unsigned id;
    pthread_t thread;
    int ep;
    struct churn_slot *slots; /* owned, opt->concurrency */
    uint32_t quota;           /* connections this thread makes */
    uint32_t started;
    uint64_t completed, failed;
    uint64_t deadline_ns, last_done_ns;
    char first_error[128];
    struct bench_hist hist;
};

static void set_interest(struct churn_thread *t, struct churn_slot *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};

    epoll_ctl(t->ep, EPOLL_CTL_MOD, s->fd, &ev);
}

static void slot_close(struct churn_thread *t, struct churn_slot *s)
{
    if (s->ssl != NULL) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    s->state = CH_FREE;
    s->in_len = 0;
}

static void slot_fail(struct churn_thread *t, struct churn_slot *s, const char *reason)
{
    if (t->first_error[0] == '\0')
        snprintf(t->first_error, sizeof t->first_error, "%s", reason);
    t->failed++;
    slot_close(t, s);
}

static const char *tls_error(void)
{
    static _Thread_local char buf[120];
    unsigned long e = ERR_get_error();

    if (e == 0)
        return "TLS connection closed";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

/* Writes all of p; a short write of these few bytes on a fresh socket is
 * treated as a failure. */
static bool slot_write(struct churn_slot *s, const uint8_t *p, size_t n)
{
    if (s->ssl != NULL)
        return SSL_write(s->ssl, p, (int)n) == (int)n;
    return send(s->fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

static bool send_connect(struct churn_thread *t, struct churn_slot *s)
{
    struct mqtt_packet pkt = {.type = MQTT_CONNECT};
    uint8_t buf[128];
    char id[64];
    int n = snprintf(id, sizeof id, "%s:%u-%u", t->opt->client_prefix, t->id, t->started);
    size_t len;

    pkt.connect.version = MQTT_V311;
    pkt.connect.clean_start = true;
    pkt.connect.keep_alive = 60;
    pkt.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)n};
    len = mqtt_encode(&pkt, MQTT_V311, buf, sizeof buf);
    if (len == 0 || !slot_write(s, buf, len))
        return false;
    s->state = CH_WAIT_CONNACK;
    set_interest(t, s, EPOLLIN);
    return true;
}

static void slot_start(struct churn_thread *t, struct churn_slot *s)
{
    const struct churn_options *o = t->opt;
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(o->port)};
    struct sockaddr_in src = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    int one = 1;

    t->started++;
    s->t0_ns = bench_now_ns();
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        slot_fail(t, s, strerror(errno));
        return;
    }
    s->state = CH_CONNECTING;
    inet_pton(AF_INET, o->host, &dst.sin_addr);
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->source_addrs > 1) {
        setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + t->started % o->source_addrs);
        if (bind(s->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            slot_fail(t, s, strerror(errno));
            return;
        }
    }
    if ((connect(s->fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) ||
        epoll_ctl(t->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
        slot_fail(t, s, strerror(errno));
}

static void step_handshake(struct churn_thread *t, struct churn_slot *s)
{
    int r = SSL_do_handshake(s->ssl);

    if (r == 1) {
        if (!send_connect(t, s))
            slot_fail(t, s, "CONNECT write failed after the TLS handshake");
        return;
    }
    switch (SSL_get_error(s->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_interest(t, s, EPOLLIN);
        break;
    case SSL_ERROR_WANT_WRITE:
        set_interest(t, s, EPOLLOUT);
        break;
    default:
        slot_fail(t, s, tls_error());
        break;
    }
}

static void on_connected(struct churn_thread *t, struct churn_slot *s)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        slot_fail(t, s, strerror(err ? err : errno));
        return;
    }
    if (t->ctx == NULL) {
        if (!send_connect(t, s))
            slot_fail(t, s, "CONNECT write failed");
        return;
    }
    s->ssl = SSL_new(t->ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        slot_fail(t, s, tls_error());
        return;
    }
    SSL_set_connect_state(s->ssl);
    s->state = CH_HANDSHAKE;
    step_handshake(t, s);
}

static void finish(struct churn_thread *t, struct churn_slot *s)
{
    static const uint8_t disconnect[2] = {MQTT_DISCONNECT << 4, 0};
    uint64_t now = bench_now_ns();

    bench_hist_record(&t->hist, now - s->t0_ns);
    t->completed++;
    t->last_done_ns = now;
    slot_write(s, disconnect, sizeof disconnect);
    if (s->ssl != NULL)
        SSL_shutdown(s->ssl); /* sends close_notify without waiting for the reply */
    slot_close(t, s);
}

static void on_readable(struct churn_thread *t, struct churn_slot *s)
{
    int n;

    if (s->ssl != NULL) {
        n = SSL_read(s->ssl, s->in + s->in_len, (int)(sizeof s->in - s->in_len));
        if (n <= 0) {
            int e = SSL_get_error(s->ssl, n);

            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                slot_fail(t, s, tls_error());
            return;
        }
    } else {
        n = (int)recv(s->fd, s->in + s->in_len, sizeof s->in - s->in_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            slot_fail(t, s, n == 0 ? "closed before CONNACK" : strerror(errno));
            return;
        }
    }
    s->in_len = (uint8_t)(s->in_len + n);
    if (s->in_len < 4)
        return;
    if (s->in[0] != MQTT_CONNACK << 4 || s->in[1] != 2 || s->in[3] != 0) {
        slot_fail(t, s, "CONNACK missing or refusing the connection");
        return;
    }
    finish(t, s);
}

static void on_event(struct churn_thread *t, struct churn_slot *s)
{
    switch (s->state) {
    case CH_CONNECTING:
        on_connected(t, s);
        break;
    case CH_HANDSHAKE:
        step_handshake(t, s);
        break;
    case CH_WAIT_CONNACK:
        on_readable(t, s);
        break;
    default:
        break;
    }
}

static void *churn_thread_main(void *arg)
{
    struct churn_thread *t = arg;
    struct epoll_event events[CHURN_EVENTS];

    while (t->completed + t->failed < t->quota && bench_now_ns() < t->deadline_ns) {
        for (uint32_t i = 0; i < t->opt->concurrency && t->started < t->quota; i++)
            if (t->slots[i].state == CH_FREE)
                slot_start(t, &t->slots[i]);
        int n = epoll_wait(t->ep, events, CHURN_EVENTS, 50);

        for (int i = 0; i < n; i++)
            on_event(t, events[i].data.ptr);
    }
    for (uint32_t i = 0; i < t->opt->concurrency; i++) {
        if (t->slots[i].state != CH_FREE)
            slot_fail(t, &t->slots[i], "still under way at the time limit");
    }
    return NULL;
}

static SSL_CTX *client_ctx(const struct bench_tls_files *f, char *err, size_t errcap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, f->client_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, f->client_key, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errcap, "cannot load the TLS client files: %s", tls_error());
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static vigil_err thread_setup(struct churn_thread *t, const struct churn_options *opt,
                              unsigned id, uint64_t deadline)
{
    t->opt = opt;
    t->id = id;
    t->deadline_ns = deadline;
    t->quota = opt->total / opt->threads + (id == 0 ? opt->total % opt->threads : 0);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->slots = vigil_calloc(opt->concurrency, sizeof *t->slots);
    bench_hist_reset(&t->hist);
    if (t->slots == NULL || t->ep < 0)
        return VIGIL_ERR_NOMEM;
    for (uint32_t i = 0; i < opt->concurrency; i++)
        t->slots[i].fd = -1;
    return VIGIL_OK;
}

static void merge(struct churn_thread *threads, unsigned n, uint64_t start_ns,
                  struct churn_result *out)
{
    uint64_t last = start_ns;

    for (unsigned i = 0; i < n; i++) {
        struct churn_thread *t = &threads[i];

        out->completed += t->completed;
        out->failed += t->failed;
        bench_hist_merge(&out->hist, &t->hist);
        if (t->last_done_ns > last)
            last = t->last_done_ns;
        if (out->first_error[0] == '\0' && t->first_error[0] != '\0')
            snprintf(out->first_error, sizeof out->first_error, "%s", t->first_error);
    }
    out->elapsed_s = (double)(last - start_ns) / 1e9;
}

vigil_err churn_run(const struct churn_options *opt, struct churn_result *out)
{
    struct churn_thread threads[CHURN_MAX_THREADS] = {0};
    struct bench_proc_sample g0, g1;
    SSL_CTX *ctx = NULL;
    uint64_t start = bench_now_ns();
    vigil_err rc = VIGIL_OK;
    unsigned started = 0;

    memset(out, 0, sizeof *out);
    bench_hist_reset(&out->hist);
    if (opt->threads < 1 || opt->threads > CHURN_MAX_THREADS || opt->concurrency == 0 ||
        opt->total < opt->threads)
        return VIGIL_ERR_INVALID;
    if (opt->tls != NULL &&
        (ctx = client_ctx(opt->tls, out->first_error, sizeof out->first_error)) == NULL)
        return VIGIL_ERR_IO;
    bench_proc_read(getpid(), &g0);
    for (unsigned i = 0; i < CHURN_MAX_THREADS; i++)
        threads[i].ep = -1;
    for (unsigned i = 0; rc == VIGIL_OK && i < opt->threads; i++) {
        threads[i].ctx = ctx;
        rc = thread_setup(&threads[i], opt, i, start + (uint64_t)opt->timeout_ms * 1000000u);
        if (rc == VIGIL_OK && pthread_create(&threads[i].thread, NULL, churn_thread_main,
                                             &threads[i]) != 0)
            rc = VIGIL_ERR_IO;
        if (rc == VIGIL_OK)
            started++;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i].thread, NULL);
    bench_proc_read(getpid(), &g1);
    merge(threads, started, start, out);
    out->gen_cpu_ns = g1.cpu_ns - g0.cpu_ns;
    for (unsigned i = 0; i < opt->threads; i++) {
        if (threads[i].ep >= 0)
            close(threads[i].ep);
        vigil_free(threads[i].slots);
    }
    SSL_CTX_free(ctx);
    return rc;
}
