/* SIEM transports on the exporter loop: UDP datagrams, TCP and TLS with
 * RFC 6587 octet counting, reconnect with capped and jittered exponential
 * backoff, and deletion of outbox rows once the receiver accepted them. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "export/siem_exporter_internal.h"

struct siem_write {
    uv_write_t req;
    struct siem_conn *conn;
    uint64_t last_seq;        /* 0 for TLS handshake bytes */
    size_t len;
    char data[];
};

static void connect_now(struct siem_link *link);
static void lose_conn(struct siem_link *link, const char *why);

static bool stopping(struct siem_link *link)
{
    return siem_exporter_view(link->exp)->stopping;
}

/* ---- setup ---- */

static vigil_err make_ssl_ctx(struct siem_link *link)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL)
        return VIGIL_ERR_NOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, link->dest.ca_file, NULL) != 1) {
        char why[256];

        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        log_error("siem %s: cannot load ca_file %s (missing, unreadable or not PEM): %s",
                  link->dest.name, link->dest.ca_file, why);
        SSL_CTX_free(ctx);
        return VIGIL_ERR_CONFIG;
    }
    link->ssl_ctx = ctx;
    return VIGIL_OK;
}

vigil_err siem_link_init(struct siem_link *link, uv_loop_t *loop)
{
    const char *host = link->dest.host;
    int r;

    if (strchr(host, ':') != NULL)
        r = uv_ip6_addr(host, link->dest.port, (struct sockaddr_in6 *)&link->addr);
    else
        r = uv_ip4_addr(host, link->dest.port, (struct sockaddr_in *)&link->addr);
    if (r != 0) {
        log_error("siem %s: invalid address %s", link->dest.name, host);
        return VIGIL_ERR_CONFIG;
    }
    /* Hubs that lost the same receiver must not retry in step, so the
     * jitter differs per process and per destination. */
    link->jitter_state = (uint32_t)uv_hrtime() ^ ((uint32_t)uv_os_getpid() << 16) ^
                         (uint32_t)(uintptr_t)link;
    if (link->jitter_state == 0)
        link->jitter_state = 1;
    uv_timer_init(loop, &link->retry);
    link->retry.data = link;
    link->handles_open = true;
    link->backoff_ms = SIEM_BACKOFF_MIN_MS;
    if (link->dest.transport == SIEM_TRANSPORT_UDP) {
        uv_udp_init(loop, &link->udp);
        link->udp.data = link;
        link->udp_open = true;
        link->state = SIEM_LINK_READY;
    }
    if (link->dest.transport == SIEM_TRANSPORT_TLS)
        return make_ssl_ctx(link);
    return VIGIL_OK;
}

/* ---- accepted rows ---- */

static void confirm_upto(struct siem_link *link, uint64_t seq)
{
    uint64_t before = siem_outbox_count(link->outbox);

    if (siem_outbox_delete_upto(link->outbox, seq) != VIGIL_OK)
        return; /* the rows stay and are sent again after a reconnect */
    link->stats.sent += before - siem_outbox_count(link->outbox);
    siem_exporter_publish(link);
}

void siem_link_tick(struct siem_link *link, uint64_t now_ms)
{
    uint64_t upto = 0;

    if (link->state != SIEM_LINK_READY)
        return;
    while (link->settle_len > 0) {
        struct siem_settle *s = &link->settle[link->settle_head];

        if (now_ms < s->done_ms + SIEM_SETTLE_MS)
            break;
        upto = s->seq;
        link->settle_head = (link->settle_head + 1) % SIEM_SETTLE_SLOTS;
        link->settle_len--;
    }
    if (upto != 0)
        confirm_upto(link, upto);
}

/* ---- writing ---- */

static void on_write(uv_write_t *req, int status)
{
    struct siem_write *w = (struct siem_write *)req;
    struct siem_link *link = w->conn->link;
    uint64_t seq = w->last_seq;

    vigil_free(w);
    if (link == NULL)
        return;
    if (seq != 0)
        link->writing = false;
    if (status != 0) {
        lose_conn(link, uv_strerror(status));
        return;
    }
    if (seq != 0) {
        size_t tail = (link->settle_head + link->settle_len) % SIEM_SETTLE_SLOTS;

        link->settle[tail].seq = seq;
        link->settle[tail].done_ms = uv_now(link->retry.loop);
        link->settle_len++;
        siem_link_pump(link);
    }
}

static int write_bytes(struct siem_conn *c, const void *data, size_t len, uint64_t last_seq)
{
    struct siem_write *w = vigil_malloc(sizeof *w + len);
    uv_buf_t buf;
    int r;

    if (w == NULL)
        return UV_ENOMEM;
    w->conn = c;
    w->last_seq = last_seq;
    w->len = len;
    memcpy(w->data, data, len);
    buf = uv_buf_init(w->data, (unsigned)len);
    r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (r != 0)
        vigil_free(w);
    return r;
}

/* Sends what TLS produced (handshake or records); last_seq marks the write
 * that carries the end of a batch. */
static int flush_tls(struct siem_conn *c, uint64_t last_seq)
{
    char buf[16384];
    int n, r = 0;
    size_t pending = BIO_ctrl_pending(c->wbio);

    if (pending == 0)
        return 0;
    while ((n = BIO_read(c->wbio, buf, sizeof buf)) > 0) {
        pending = BIO_ctrl_pending(c->wbio);
        r = write_bytes(c, buf, (size_t)n, pending == 0 ? last_seq : 0);
        if (r != 0)
            return r;
    }
    return r;
}

/* Frames rows into one buffer: "LEN SP MSG" each, RFC 6587. */
static char *frame_rows(const struct siem_outbox_row *rows, size_t n, size_t *len)
{
    size_t cap = 0, off = 0;
    char *buf;

    for (size_t i = 0; i < n; i++)
        cap += rows[i].len + 24;
    buf = vigil_malloc(cap);
    if (buf == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int k = siem_frame_octet(rows[i].payload, rows[i].len, buf + off, cap - off);

        off += (size_t)k; /* cap has room for every frame and its NUL */
    }
    *len = off;
    return buf;
}

static int send_stream_batch(struct siem_link *link, const struct siem_outbox_row *rows,
                             size_t n)
{
    uint64_t last = rows[n - 1].seq;
    size_t len;
    char *buf = frame_rows(rows, n, &len);
    int r;

    if (buf == NULL)
        return UV_ENOMEM;
    if (link->conn->ssl != NULL) {
        r = SSL_write(link->conn->ssl, buf, (int)len) == (int)len ? 0 : UV_EPROTO;
        if (r == 0)
            r = flush_tls(link->conn, last);
    } else {
        r = write_bytes(link->conn, buf, len, last);
    }
    vigil_free(buf);
    if (r == 0) {
        link->writing = true;
        link->sent_upto = last;
    }
    return r;
}

/* UDP: one datagram per row. A row counts as sent once the kernel took it,
 * because UDP gives no sign of whether it arrived. */
static void send_udp_batch(struct siem_link *link, const struct siem_outbox_row *rows, size_t n)
{
    uint64_t last = 0;

    for (size_t i = 0; i < n; i++) {
        uv_buf_t buf = uv_buf_init(rows[i].payload, (unsigned)rows[i].len);
        int r = uv_udp_try_send(&link->udp, &buf, 1, (const struct sockaddr *)&link->addr);

        if (r < 0) {
            if (r != UV_EAGAIN && link->failures++ % 200 == 0)
                log_warn("siem %s: udp send to %s:%u failed: %s; retrying", link->dest.name,
                         link->dest.host, link->dest.port, uv_strerror(r));
            break;
        }
        link->failures = 0;
        last = rows[i].seq;
    }
    if (last != 0) {
        link->sent_upto = last;
        confirm_upto(link, last);
    }
}

void siem_link_pump(struct siem_link *link)
{
    struct siem_outbox_row rows[SIEM_BATCH_ROWS];
    size_t n = 0;
    int r;

    if (stopping(link))
        return;
    if (link->state == SIEM_LINK_IDLE && !uv_is_active((uv_handle_t *)&link->retry)) {
        if (siem_outbox_count(link->outbox) > 0)
            connect_now(link);
        return;
    }
    if (link->state != SIEM_LINK_READY || link->writing ||
        link->settle_len == SIEM_SETTLE_SLOTS ||
        link->sent_upto >= siem_outbox_last_seq(link->outbox) ||
        siem_outbox_count(link->outbox) == 0)
        return;
    if (siem_outbox_read(link->outbox, link->sent_upto, SIEM_BATCH_ROWS, rows, &n) != VIGIL_OK ||
        n == 0)
        return;
    if (link->dest.transport == SIEM_TRANSPORT_UDP) {
        send_udp_batch(link, rows, n);
    } else {
        r = send_stream_batch(link, rows, n);
        if (r != 0)
            lose_conn(link, uv_strerror(r));
    }
    siem_outbox_rows_free(rows, n);
}

/* ---- connection life cycle ---- */

static void on_conn_closed(uv_handle_t *handle)
{
    struct siem_conn *c = handle->data;

    if (c->ssl != NULL)
        SSL_free(c->ssl);
    vigil_free(c);
}

static void drop_conn(struct siem_link *link)
{
    struct siem_conn *c = link->conn;

    if (c == NULL)
        return;
    link->conn = NULL;
    c->link = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_retry(uv_timer_t *timer)
{
    struct siem_link *link = timer->data;

    connect_now(link);
}

static uint32_t next_jitter(struct siem_link *link)
{
    uint32_t x = link->jitter_state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    link->jitter_state = x;
    return x;
}

/* Waits a random time in [backoff/2, backoff], then doubles the backoff up
 * to backoff_max_ms. */
static void schedule_retry(struct siem_link *link)
{
    uint32_t b = link->backoff_ms;
    uint32_t delay = b / 2 + next_jitter(link) % (b / 2 + 1);

    link->backoff_ms = b * 2 > link->dest.backoff_max_ms ? link->dest.backoff_max_ms : b * 2;
    uv_timer_start(&link->retry, on_retry, delay, 0);
}

/* Forgets unconfirmed writes, so their rows are sent again after the
 * reconnect (at least once), and schedules the reconnect. */
static void lose_conn(struct siem_link *link, const char *why)
{
    bool was_ready = link->state == SIEM_LINK_READY;

    drop_conn(link);
    link->state = SIEM_LINK_IDLE;
    link->writing = false;
    link->settle_len = 0;
    link->sent_upto = 0;
    link->stats.connected = false;
    if (was_ready) {
        log_warn("siem %s: connection to %s:%u lost: %s; reconnecting", link->dest.name,
                 link->dest.host, link->dest.port, why);
    } else {
        link->failures++;
        link->stats.connect_failures++;
        if (link->failures == 1 || link->failures % 20 == 0)
            log_warn("siem %s: connect to %s:%u failed (%u in a row): %s; retrying with backoff",
                     link->dest.name, link->dest.host, link->dest.port, link->failures, why);
    }
    siem_exporter_publish(link);
    if (!stopping(link))
        schedule_retry(link);
}

static void become_ready(struct siem_link *link)
{
    link->state = SIEM_LINK_READY;
    link->backoff_ms = SIEM_BACKOFF_MIN_MS;
    link->failures = 0;
    link->stats.connects++;
    link->stats.connected = true;
    log_info("siem %s: connected to %s:%u (%s)", link->dest.name, link->dest.host,
             link->dest.port, link->conn->ssl != NULL ? SSL_get_version(link->conn->ssl) : "tcp");
    siem_exporter_publish(link);
    siem_link_pump(link);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct siem_conn *c = handle->data;

    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static const char *tls_error_text(SSL *ssl)
{
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();

    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (v != X509_V_OK)
        return X509_verify_cert_error_string(v);
    return reason != NULL ? reason : "TLS handshake failed";
}

/* Advances the handshake or drains records; returns false when the
 * connection was lost. */
static bool tls_progress(struct siem_link *link)
{
    struct siem_conn *c = link->conn;
    char sink[4096];
    int r;

    if (link->state == SIEM_LINK_HANDSHAKE) {
        r = SSL_do_handshake(c->ssl);
        if (flush_tls(c, 0) != 0) {
            lose_conn(link, "write failed");
            return false;
        }
        if (r == 1) {
            become_ready(link);
            return link->conn != NULL;
        }
        if (SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
            lose_conn(link, tls_error_text(c->ssl));
            ERR_clear_error();
            return false;
        }
        return true;
    }
    while ((r = SSL_read(c->ssl, sink, sizeof sink)) > 0)
        ;
    if (SSL_get_error(c->ssl, r) == SSL_ERROR_ZERO_RETURN) {
        lose_conn(link, "receiver closed the TLS session");
        return false;
    }
    ERR_clear_error();
    return true;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct siem_conn *c = stream->data;
    struct siem_link *link = c->link;

    if (link == NULL || nread == 0)
        return;
    if (nread < 0) {
        lose_conn(link, nread == UV_EOF ? "closed by the receiver" : uv_strerror((int)nread));
        return;
    }
    /* Receivers send nothing in syslog over TCP; bytes only matter to TLS. */
    if (c->ssl == NULL)
        return;
    BIO_write(c->rbio, buf->base, (int)nread);
    tls_progress(link);
}

static vigil_err start_tls(struct siem_link *link)
{
    struct siem_conn *c = link->conn;
    const char *name = link->dest.server_name[0] != '\0' ? link->dest.server_name
                                                          : link->dest.host;
    X509_VERIFY_PARAM *param;
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    c->ssl = SSL_new(link->ssl_ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return VIGIL_ERR_NOMEM;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    param = SSL_get0_param(c->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, name);
    } else {
        SSL_set_tlsext_host_name(c->ssl, name);
        SSL_set1_host(c->ssl, name);
    }
    link->state = SIEM_LINK_HANDSHAKE;
    return VIGIL_OK;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct siem_conn *c = req->data;
    struct siem_link *link = c->link;

    if (link == NULL)
        return;
    if (status != 0) {
        lose_conn(link, uv_strerror(status));
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (link->dest.transport != SIEM_TRANSPORT_TLS) {
        become_ready(link);
        return;
    }
    if (start_tls(link) != VIGIL_OK) {
        lose_conn(link, "out of memory");
        return;
    }
    tls_progress(link);
}

static void connect_now(struct siem_link *link)
{
    struct siem_conn *c;
    int r;

    if (stopping(link) || link->state != SIEM_LINK_IDLE)
        return;
    c = vigil_calloc(1, sizeof *c);
    if (c == NULL) {
        schedule_retry(link);
        return;
    }
    c->link = link;
    uv_tcp_init(link->retry.loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    link->conn = c;
    link->state = SIEM_LINK_CONNECTING;
    r = uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&link->addr, on_connect);
    if (r != 0)
        lose_conn(link, uv_strerror(r));
}

void siem_link_close(struct siem_link *link)
{
    if (!link->handles_open)
        return;
    link->handles_open = false;
    if (link->conn != NULL && link->conn->ssl != NULL && link->state == SIEM_LINK_READY) {
        SSL_shutdown(link->conn->ssl);
        flush_tls(link->conn, 0);
    }
    drop_conn(link);
    link->state = SIEM_LINK_IDLE;
    uv_timer_stop(&link->retry);
    uv_close((uv_handle_t *)&link->retry, NULL);
    if (link->udp_open)
        uv_close((uv_handle_t *)&link->udp, NULL);
}
