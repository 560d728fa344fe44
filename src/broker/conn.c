/* Client connections: reading and framing, the packet dispatch table,
 * batched writes, keep-alive and closing. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "broker/broker.h"
#include "broker/iothread.h"
#include "core/alloc.h"
#include "core/log.h"

/* Output a connection may buffer at most; session.c stops sending to a
 * slow reader well before (limits.max_output_bytes, and its share of
 * limits.output_budget_bytes, outbudget.c). */
#define CONN_OUT_HARD_LIMIT (64u * 1024 * 1024)

/* Events a connection's socket is registered for in hub->conn_epfd. */
#define CONN_EP_IN 1u
#define CONN_EP_OUT 2u

/* Maximum read calls per readiness event while each read fills the
 * buffer, so that a connection that keeps sending cannot hold the loop. */
#define CONN_READS_PER_EVENT 32

/* Socket events taken from the epoll set per callback. */
#define CONN_EP_BATCH 256

/* Output the socket did not take at once, written as it becomes
 * writable. It is allocated at the first such write after an idle time
 * and kept while more output follows, so an idle connection has none. */
struct conn_write {
    struct vigil_buf busy;     /* len: bytes still unsent, from off */
    size_t off;
};

static bool conn_tls_encrypt(struct conn *c);
static void conn_write_ready(struct conn *c);
static void conn_read_ready(struct conn *c);

/* Brings the hub's count of c's unsent output up to date; called after
 * every change to out, the buffer being written or the TLS wire buffer. */
static void conn_account(struct conn *c)
{
    outbudget_account(&c->hub->output, &c->out_counted, conn_backlog(c));
}

/* Keeps c in hub->conns (for shutdown and revocation sweeps) at the slot
 * index it remembers, so adding and removing cost O(1). */
static void conn_track(struct hub *hub, struct conn *c, bool add)
{
    if (!add) {
        if (c->slot < hub->n_conn_slots && hub->conns[c->slot] == c) {
            hub->conns[c->slot] = NULL;
            hub->free_slots[hub->n_free_slots++] = c->slot;
        }
        return;
    }
    if (hub->n_free_slots == 0) {
        size_t n = hub->n_conn_slots ? hub->n_conn_slots * 2 : 64;
        struct conn **p = vigil_realloc(hub->conns, n * sizeof *p);
        uint32_t *f;

        if (p == NULL)
            goto untracked;
        hub->conns = p;
        f = vigil_realloc(hub->free_slots, n * sizeof *f);
        if (f == NULL)
            goto untracked;
        hub->free_slots = f;
        memset(p + hub->n_conn_slots, 0, (n - hub->n_conn_slots) * sizeof *p);
        /* Lower slots are handed out first. */
        for (size_t i = n; i > hub->n_conn_slots; i--)
            hub->free_slots[hub->n_free_slots++] = (uint32_t)(i - 1);
        hub->n_conn_slots = n;
    }
    c->slot = hub->free_slots[--hub->n_free_slots];
    hub->conns[c->slot] = c;
    return;
untracked:
    /* NOTE: an untracked connection is not closed at shutdown. */
    c->slot = UINT32_MAX;
}

static void conn_write_free(struct conn *c)
{
    if (c->wr == NULL)
        return;
    vigil_buf_release(&c->wr->busy);
    vigil_free(c->wr);
    c->wr = NULL;
}

static void conn_client_id_free(struct conn *c)
{
    if (c->client_id_shared) {
        session_unref((struct session *)(c->client_id - offsetof(struct session, client_id)));
        c->client_id = hub_no_name;
        c->client_id_shared = false;
        return;
    }
    hub_name_free(&c->client_id);
}

void conn_share_client_id(struct conn *c, struct session *s)
{
    if (c->client_id_shared || strcmp(c->client_id, s->client_id) != 0)
        return;
    session_ref(s);
    hub_name_free(&c->client_id);
    c->client_id = s->client_id;
    c->client_id_shared = true;
}

void conn_ref(struct conn *c)
{
    c->refs++;
}

void conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    outbudget_account(&c->hub->output, &c->out_counted, 0);
    vigil_buf_release(&c->in);
    vigil_buf_release(&c->out);
    conn_write_free(c);
    if (c->tls != NULL) {
        vigil_buf_release(&c->tls->wire);
        tls_session_free(c->tls->session);
        vigil_free(c->tls);
    }
    conn_extra_free(c);
    hub_name_free(&c->peer);
    conn_client_id_free(c);
    hub_name_free(&c->device);
    hub_name_free(&c->device_type);
    vigil_free(c);
}

/* Registers what c waits for on its socket: input while reading, and
 * room to write while output is pending. Returns false when epoll cannot
 * take the change. */
static bool conn_ep_update(struct conn *c)
{
    uint8_t want = (c->reading ? CONN_EP_IN : 0) | (c->write_busy ? CONN_EP_OUT : 0);
    struct epoll_event ev = {.events = (want & CONN_EP_IN ? EPOLLIN : 0u) |
                                       (want & CONN_EP_OUT ? EPOLLOUT : 0u),
                             .data.ptr = c};

    int op = EPOLL_CTL_MOD;

    if (c->fd < 0 || want == c->ep_events)
        return true;
    if (want == 0)
        op = EPOLL_CTL_DEL;
    else if (c->ep_events == 0)
        op = EPOLL_CTL_ADD;
    /* A socket without events leaves the set, because epoll reports an
     * error or a hang-up even when not requested. A reset while a login is
     * being checked thus waits, as its input does, until reading resumes
     * and recv() returns it. */
    if (epoll_ctl(c->hub->conn_epfd, op, c->fd, &ev) != 0 && !(op == EPOLL_CTL_DEL && errno == ENOENT)) {
        log_error("conn %llu %s: epoll_ctl failed: %s", (unsigned long long)c->id, c->peer,
                  strerror(errno));
        return false;
    }
    c->ep_events = want;
    return true;
}

/* Handles the socket events epoll reports for the hub's connections. Each
 * connection of the batch is held until the whole batch was handled, so
 * one closed by an earlier event is still valid memory for its own. */
static void on_sockets_ready(uv_poll_t *h, int status, int events)
{
    struct hub *hub = h->data;
    struct epoll_event ev[CONN_EP_BATCH];
    int n;

    (void)status;
    (void)events;
    do
        n = epoll_wait(hub->conn_epfd, ev, CONN_EP_BATCH, 0);
    while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++)
        conn_ref(ev[i].data.ptr);
    for (int i = 0; i < n; i++) {
        struct conn *c = ev[i].data.ptr;
        uint32_t e = ev[i].events;
        bool failed = (e & (EPOLLERR | EPOLLHUP)) != 0;

        /* Input is handled first, as libuv does, because after a reset
         * recv() returns the reset as the close reason. A pending send()
         * would take the error and report only a failed write. */
        if (!c->closing_handles && c->reading && (e & EPOLLIN || failed))
            conn_read_ready(c);
        if (!c->closing_handles && c->write_busy && (e & EPOLLOUT || failed))
            conn_write_ready(c);
    }
    for (int i = 0; i < n; i++)
        conn_unref(ev[i].data.ptr);
}

vigil_err conn_sockets_open(struct hub *hub)
{
    int rc;

    hub->conn_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (hub->conn_epfd < 0) {
        log_error("epoll_create1 failed: %s", strerror(errno));
        return VIGIL_ERR_IO;
    }
    rc = uv_poll_init(hub->loop, &hub->conn_poll, hub->conn_epfd);
    if (rc != 0) {
        log_error("epoll: cannot poll the connection set: %s", uv_strerror(rc));
        close(hub->conn_epfd);
        hub->conn_epfd = -1;
        return VIGIL_ERR_IO;
    }
    hub->conn_poll.data = hub;
    hub->conn_poll_open = true;
    rc = uv_poll_start(&hub->conn_poll, UV_READABLE, on_sockets_ready);
    if (rc != 0) {
        log_error("epoll: cannot poll the connection set: %s", uv_strerror(rc));
        return VIGIL_ERR_IO;
    }
    return VIGIL_OK;
}

static void conn_sockets_closed(uv_handle_t *h)
{
    (void)h;
}

void conn_sockets_close(struct hub *hub)
{
    conn_reap(hub);
    if (!hub->conn_poll_open)
        return;
    hub->conn_poll_open = false;
    uv_close((uv_handle_t *)&hub->conn_poll, conn_sockets_closed);
    close(hub->conn_epfd);
    hub->conn_epfd = -1;
}

void conn_reap(struct hub *hub)
{
    while (hub->reap != NULL) {
        struct conn *c = hub->reap;

        hub->reap = c->reap_next;
        c->reap_next = NULL;
        conn_unref(c);
    }
}

/* Closes c's socket, which also takes it out of the epoll set, and hands
 * the socket's reference on c to conn_reap. */
static void conn_sock_close(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->reading = false;
    c->reap_next = c->hub->reap;
    c->hub->reap = c;
}

/* Starts the time c has to write its last output before it is reset. A
 * second conn_close keeps the first deadline, so closing again never
 * postpones it. */
static void conn_set_close_deadline(struct conn *c)
{
    if (c->close_deadline)
        return;
    /* NOTE: without memory for the deadline, c waits for its peer as it
     * did before deadlines existed; shutdown still resets it. */
    c->close_deadline = conn_timer_set(c, c->hub->cfg.limits.close_grace_ms);
}

static void conn_release(struct conn *c)
{
    struct hub *hub = c->hub;

    if (c->closing_handles)
        return;
    c->closing_handles = true;
    c->state = CONN_CLOSING;
    conn_track(hub, c, false);
    hub->n_conns--;
    if (c->session != NULL)
        session_detach(c->session);
    conn_timer_stop(c);
    c->close_deadline = false;
    /* The thread writes the output it still has, closes the socket and
     * then drops its reference. */
    if (c->io != NULL) {
        iopool_close(c);
        conn_set_close_deadline(c);
    } else {
        conn_sock_close(c);
    }
}

void conn_close(struct conn *c, uint8_t reason, const char *why)
{
    if (c->closing_handles)
        return;
    if (c->version == MQTT_V5 && reason != 0xFF && c->state == CONN_ACTIVE) {
        struct mqtt_packet p = {.type = MQTT_DISCONNECT, .reason_code = reason};

        /* DISCONNECT may carry a Reason String whatever the client set in
         * Request Problem Information (MQTT-3.1.2-29 covers other packets). */
        p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = (struct mqtt_str){(const uint8_t *)why, (uint32_t)strlen(why)};
        conn_send(c, &p);
    }
    hub_emit_suppressed(c->hub, c);
    {
        struct vigil_event ev;

        vigil_event_init(&ev, VIGIL_EV_DISCONNECT);
        ev.reason_code = reason == 0xFF ? 0 : reason;
        VIGIL_EVENT_SET(&ev, detail, why, strlen(why));
        hub_emit_ev(c->hub, c, &ev);
    }
    log_debug("conn %llu %s client '%s': closing: %s", (unsigned long long)c->id, c->peer,
              c->client_id, why);
    c->state = CONN_CLOSING;
    c->holds = 0;
    /* The close deadline bounds output still buffered in vigil. This bounds
     * output already handed to the kernel's send queue. */
    if (c->io == NULL)
        conn_sock_bound_unread(c->fd, c->hub->cfg.limits.close_grace_ms);
    /* A password check that has not started yet is cancelled, so closing
     * (and shutting down) waits at most for the checks already running. */
    connect_cancel_auth(c);
    conn_pause_read(c);
    if (c->tls != NULL && tls_session_established(c->tls->session)) {
        conn_tls_encrypt(c);
        tls_session_shutdown(c->tls->session, &c->tls->wire);
    }
    conn_flush(c);
    if (!c->write_busy)
        conn_release(c);
    else
        conn_set_close_deadline(c);
}

void conn_sock_reset_on_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    if (fd >= 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

void conn_sock_bound_unread(int fd, uint32_t ms)
{
    unsigned int timeout = ms;

    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof timeout);
}

/* Counts the reset of c, which left unwritten bytes of output, and reports
 * it in a limit event and the log. */
static void conn_report_abort(struct conn *c, size_t unwritten)
{
    struct hub *hub = c->hub;
    char detail[128];

    hub->output.aborted++;
    snprintf(detail, sizeof detail,
             "connection reset: the peer did not read %zu bytes of output within "
             "limits.close_grace_ms (%u)",
             unwritten, (unsigned)hub->cfg.limits.close_grace_ms);
    hub_emit(hub, c, VIGIL_EV_LIMIT, NULL, 0, NULL, detail);
    log_info("conn %llu %s client '%s': %s", (unsigned long long)c->id, c->peer, c->client_id,
             detail);
}

/* Closes c on the hub's loop without the output it has not written. The
 * reset discards what the kernel holds, and the output still in vigil is
 * freed here. */
static void conn_abort(struct conn *c)
{
    conn_report_abort(c, conn_backlog(c));
    conn_sock_reset_on_close(c->fd);
    vigil_buf_release(&c->out);
    conn_write_free(c);
    c->write_busy = false;
    if (c->tls != NULL)
        vigil_buf_release(&c->tls->wire);
    conn_account(c);
    conn_release(c);
}

void conn_close_expired(struct conn *c)
{
    if (c->io != NULL)
        iopool_abort(c);
    else if (!c->closing_handles && c->write_busy)
        conn_abort(c);
}

void conn_abort_closing(struct hub *hub)
{
    for (size_t i = 0; i < hub->n_conn_slots; i++) {
        struct conn *c = hub->conns[i];

        if (c != NULL && c->state == CONN_CLOSING && c->write_busy && c->io == NULL)
            conn_abort(c);
    }
}

/* With nothing more to send the buffers and the write request are freed,
 * so an idle connection keeps none. Called while no write is in progress. */
static void conn_release_idle_buffers(struct conn *c)
{
    if (c->out.len == 0 && (c->tls == NULL || c->tls->wire.len == 0)) {
        vigil_buf_release(&c->out);
        conn_write_free(c);
        if (c->tls != NULL)
            vigil_buf_release(&c->tls->wire);
    }
}

/* Ends the pending write of c: status is 0 once everything was written,
 * or a negative error code. */
static void conn_write_done(struct conn *c, int status)
{
    /* A closing connection's socket carries TCP_USER_TIMEOUT set to
     * limits.close_grace_ms, so the kernel may give up on a peer that does
     * not read before the close deadline does: the same reset, reported
     * the same way. */
    if (status == -ETIMEDOUT && c->state == CONN_CLOSING) {
        conn_abort(c);
        return;
    }
    c->write_busy = false;
    c->wr->busy.len = 0;
    c->wr->off = 0;
    conn_account(c);
    conn_release_idle_buffers(c);
    if (status < 0) {
        if (c->state != CONN_CLOSING)
            conn_close(c, 0xFF, "write failed");
        else
            conn_release(c);
        return;
    }
    if (!conn_ep_update(c)) {
        conn_release(c);
        return;
    }
    if (c->out.len > 0) {
        conn_flush(c);
    } else if (c->state == CONN_CLOSING) {
        conn_release(c);
    } else if (c->session != NULL) {
        session_pump(c->session);
    }
}

/* Writes the pending output as far as the socket takes it. */
static void conn_write_ready(struct conn *c)
{
    struct conn_write *wr = c->wr;

    while (wr->busy.len > 0) {
        ssize_t n = send(c->fd, wr->busy.data + wr->off, wr->busy.len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_write_done(c, n < 0 ? -errno : UV_EPIPE);
            return;
        }
        wr->off += (size_t)n;
        wr->busy.len -= (size_t)n;
        c->hub->stats.bytes_sent += (uint64_t)n;
    }
    conn_write_done(c, 0);
}

/* Moves plaintext output into the TLS session, which appends records to
 * the wire buffer. Returns false when encryption failed. */
static bool conn_tls_encrypt(struct conn *c)
{
    if (c->out.len == 0 || !tls_session_established(c->tls->session))
        return true;
    if (tls_session_write(c->tls->session, c->out.data, c->out.len, &c->tls->wire) != VIGIL_OK) {
        log_warn("conn %llu %s: TLS write failed: %s", (unsigned long long)c->id, c->peer,
                 tls_session_error(c->tls->session));
        c->out.len = 0;
        return false;
    }
    c->out.len = 0;
    return true;
}

/* Hands the output of a connection on an I/O thread to that thread. */
static void conn_flush_io(struct conn *c)
{
    if (c->out.len == 0)
        return;
    if (iopool_write(c, c->out.data, c->out.len) != VIGIL_OK) {
        c->out.len = 0;
        conn_release(c);
        return;
    }
    c->hub->stats.bytes_sent += c->out.len;
    c->io_unwritten += c->out.len;
    c->out.len = 0;
    if (c->out.cap > 65536)
        vigil_buf_release(&c->out);
}

/* Writes as much of src as the socket takes now. Returns true when src
 * was written in full. Otherwise *done has the bytes written from its
 * start. An error is left for conn_write_ready, which meets it again once
 * epoll reports the socket: the connection is never closed from inside a
 * flush. */
static bool conn_try_write(struct conn *c, struct vigil_buf *src, size_t *done)
{
    ssize_t n;

    do
        n = send(c->fd, src->data, src->len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    *done = n > 0 ? (size_t)n : 0;
    c->hub->stats.bytes_sent += *done;
    if (*done < src->len)
        return false;
    src->len = 0;
    conn_release_idle_buffers(c);
    if (c->state == CONN_CLOSING)
        conn_release(c);
    else if (c->session != NULL)
        session_pump(c->session);
    return true;
}

/* Starts writing what c has buffered, unless a write is pending. */
static void conn_write_out(struct conn *c)
{
    struct vigil_buf tmp, *src = &c->out;
    struct conn_write *wr;
    size_t done = 0;

    if (c->closing_handles || c->holds > 0)
        return;
    if (c->io != NULL) {
        conn_flush_io(c);
        return;
    }
    if (c->tls != NULL) {
        if (!conn_tls_encrypt(c)) {
            conn_release(c);
            return;
        }
        src = &c->tls->wire;
    }
    if (c->write_busy || src->len == 0 || conn_try_write(c, src, &done))
        return;
    if (c->wr == NULL) {
        c->wr = vigil_calloc(1, sizeof *c->wr);
        if (c->wr == NULL) {
            conn_release(c);
            return;
        }
        vigil_buf_init(&c->wr->busy, CONN_OUT_HARD_LIMIT);
    }
    wr = c->wr;
    tmp = wr->busy;
    wr->busy = *src;
    *src = tmp;
    src->len = 0;
    /* What the socket took is skipped, not moved: busy.len counts the
     * bytes still unsent (conn_backlog), not the end of the data. */
    wr->off = done;
    wr->busy.len -= done;
    c->write_busy = true;
    if (!conn_ep_update(c)) {
        conn_release(c);
        return;
    }
    /* Large idle buffers are returned so idle connections stay small. */
    if (src->cap > 65536)
        vigil_buf_release(src);
}

void conn_flush(struct conn *c)
{
    conn_write_out(c);
    conn_account(c);
}

void hub_keep_polling(uv_idle_t *h)
{
    (void)h;
}

static void conn_queue_flush(struct conn *c)
{
    struct hub *hub = c->hub;

    if (c->flush_queued || c->closing_handles)
        return;
    if (hub->flush_n == hub->flush_cap) {
        size_t cap = hub->flush_cap ? hub->flush_cap * 2 : 64;
        struct conn **p = vigil_realloc(hub->flush_list, cap * sizeof *p);

        if (p == NULL) {
            conn_flush(c);
            return;
        }
        hub->flush_list = p;
        hub->flush_cap = cap;
    }
    hub->flush_list[hub->flush_n++] = c;
    c->flush_queued = true;
    conn_ref(c);
    /* An active idle handle keeps the next poll from blocking. */
    if (hub->flush_n == 1)
        uv_idle_start(&hub->flush_idle, hub_keep_polling);
}

bool conn_send(struct conn *c, const struct mqtt_packet *pkt)
{
    size_t need = mqtt_encoded_size(pkt, c->version);
    size_t n;

    if (need == 0 || c->closing_handles)
        return false;
    if (c->client_max_packet != 0 && need > c->client_max_packet)
        return false;
    if (vigil_buf_reserve(&c->out, need) != VIGIL_OK)
        return false;
    n = mqtt_encode(pkt, c->version, c->out.data + c->out.len, need);
    if (n == 0)
        return false;
    c->out.len += n;
    conn_account(c);
    conn_queue_flush(c);
    return true;
}

void conn_flush_pending(struct hub *hub)
{
    publish_acks_ready(hub);
    /* A flush can close a connection, which can publish a will and queue
     * more connections here; the list is indexed afresh each turn, so
     * those are flushed in the same pass. */
    for (size_t i = 0; i < hub->flush_n; i++) {
        struct conn *c = hub->flush_list[i];

        c->flush_queued = false;
        conn_flush(c);
        conn_unref(c);
    }
    hub->flush_n = 0;
    iopool_push(hub);
    /* Closing a connection during a flush can release PUBACKs, for example
     * when its will drops a queued message. Those wait for the next loop
     * iteration, so the idle handle stays active to keep poll from blocking. */
    if (hub->ack_ready_head == NULL)
        uv_idle_stop(&hub->flush_idle);
}

size_t conn_backlog(const struct conn *c)
{
    return c->out.len + (c->wr != NULL ? c->wr->busy.len : 0) +
           (c->tls != NULL ? c->tls->wire.len : 0) + c->io_unwritten;
}

/* Chooses where the next read of c goes. buf->len is 0 when c's input
 * buffer is full or cannot grow. */
static void conn_read_buf(struct conn *c, uv_buf_t *buf)
{
    size_t want = 16384;

    if (c->tls != NULL || c->in.len == 0) {
        /* Input is consumed inside the read callback, so one buffer serves
         * every connection of the loop: ciphertext of TLS connections, and
         * plaintext of connections with no partial packet pending. Only
         * a partial packet is copied to the connection's own buffer, so
         * idle connections hold no input buffer. */
        buf->base = (char *)c->hub->read_buf;
        buf->len = sizeof c->hub->read_buf;
        if (c->tls == NULL && buf->len > c->in.limit)
            buf->len = c->in.limit;
        return;
    }
    if (c->in.limit - c->in.len < want)
        want = c->in.limit - c->in.len;
    if (want == 0 || vigil_buf_reserve(&c->in, want) != VIGIL_OK) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)c->in.data + c->in.len;
    buf->len = c->in.cap - c->in.len;
}

void conn_protocol_error(struct conn *c, const struct mqtt_error *err, uint8_t type)
{
    struct vigil_event ev;
    char detail[128];

    vigil_event_init(&ev, VIGIL_EV_MALFORMED);
    ev.rule = err->rule;
    ev.reason_code = err->reason_code;
    snprintf(detail, sizeof detail, "%s: %s", mqtt_type_name(type), err->text ? err->text : "");
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    hub_emit_ev(c->hub, c, &ev);
    log_info("conn %llu %s client '%s': protocol violation %s: %s", (unsigned long long)c->id,
             c->peer, c->client_id, err->rule ? err->rule : "-", detail);
    conn_close(c, err->reason_code ? err->reason_code : MQTT_RC_MALFORMED, detail);
}

typedef bool (*packet_handler)(struct conn *c, const struct mqtt_packet *pkt);

static const packet_handler handlers[16] = {
    [MQTT_CONNECT] = handle_connect,       [MQTT_PUBLISH] = handle_publish,
    [MQTT_PUBACK] = handle_puback,         [MQTT_PUBREC] = handle_pubrec,
    [MQTT_PUBREL] = handle_pubrel,         [MQTT_PUBCOMP] = handle_pubcomp,
    [MQTT_SUBSCRIBE] = handle_subscribe,   [MQTT_UNSUBSCRIBE] = handle_unsubscribe,
    [MQTT_PINGREQ] = handle_pingreq,       [MQTT_DISCONNECT] = handle_disconnect,
    [MQTT_AUTH] = handle_auth,
};

/* Handles one complete packet; returns false when the connection closed. */
static bool conn_dispatch(struct conn *c, const uint8_t *p, size_t len)
{
    struct mqtt_packet pkt;
    struct mqtt_error err = {0};
    uint8_t type = p[0] >> 4;

    if (c->state == CONN_NEW && type != MQTT_CONNECT) {
        err = (struct mqtt_error){MQTT_RC_PROTOCOL_ERROR, "MQTT-3.1.0-1",
                                  "first packet is not CONNECT"};
        conn_protocol_error(c, &err, type);
        return false;
    }
    if (c->state != CONN_NEW && type == MQTT_CONNECT) {
        err = (struct mqtt_error){MQTT_RC_PROTOCOL_ERROR, "MQTT-3.1.0-2", "second CONNECT"};
        conn_protocol_error(c, &err, type);
        return false;
    }
    c->hub->cur_packet = p;
    c->hub->cur_packet_len = len;
    if (mqtt_decode(p, len, c->version ? c->version : MQTT_V311, true, &pkt, &err) != VIGIL_OK) {
        if (type == MQTT_CONNECT)
            connect_malformed(c, &pkt, &err);
        else
            conn_protocol_error(c, &err, type);
        return false;
    }
    if (handlers[pkt.type] == NULL) {
        err = (struct mqtt_error){MQTT_RC_PROTOCOL_ERROR, "MQTT-2.1.2", "packet type not allowed from a client"};
        conn_protocol_error(c, &err, type);
        return false;
    }
    return handlers[pkt.type](c, &pkt);
}

/* Processes every complete packet of data (len bytes) and returns the
 * bytes consumed. Stops early while a login is being checked or once the
 * connection closes. */
static size_t conn_process_bytes(struct conn *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    uint32_t max_in = c->hub->cfg.limits.max_packet_size;

    while (c->state != CONN_CLOSING && c->state != CONN_AUTH && off < len) {
        size_t hdr;
        uint32_t rem;
        struct mqtt_error err = {0};
        vigil_err rc = mqtt_frame(data + off, len - off, &hdr, &rem, &err);

        if (rc == VIGIL_ERR_AGAIN)
            break;
        if (rc != VIGIL_OK) {
            conn_protocol_error(c, &err, data[off] >> 4);
            return off;
        }
        if (hdr + rem > max_in) {
            err = (struct mqtt_error){MQTT_RC_PACKET_TOO_LARGE, "MQTT-3.2.2-15",
                                      "packet exceeds the maximum packet size"};
            conn_protocol_error(c, &err, data[off] >> 4);
            return off;
        }
        if (len - off < hdr + rem)
            break;
        c->hub->stats.bytes_received += hdr + rem;
        if (!conn_dispatch(c, data + off, hdr + rem))
            return off;
        off += hdr + rem;
    }
    return off;
}

/* Processes every complete packet in the input buffer. */
static void conn_process(struct conn *c)
{
    size_t off = conn_process_bytes(c, c->in.data, c->in.len);

    if (c->closing_handles)
        return;
    vigil_buf_consume(&c->in, off);
    if (c->in.len == 0)
        vigil_buf_release(&c->in);
}

/* Processes plaintext read into the loop's shared buffer; what is left (a
 * partial packet, or packets behind a CONNECT whose login is being
 * checked) moves to the connection's own buffer. */
static void conn_process_shared(struct conn *c, const uint8_t *data, size_t len)
{
    size_t off = conn_process_bytes(c, data, len);

    if (c->closing_handles || off == len)
        return;
    if (vigil_buf_append(&c->in, data + off, len - off) != VIGIL_OK)
        conn_close(c, MQTT_RC_PACKET_TOO_LARGE, "input buffer limit reached");
}

static void conn_tls_failed(struct conn *c, vigil_err rc)
{
    const char *why = rc == VIGIL_ERR_CLOSED ? "peer sent close_notify"
                                             : tls_session_error(c->tls->session);

    if (rc != VIGIL_ERR_CLOSED && !tls_session_established(c->tls->session))
        zt_handshake_failed(c, why);
    /* An alert the session produced goes out before the close. */
    conn_close(c, 0xFF, why);
}

/* Feeds ciphertext to the TLS session and processes the plaintext. When the
 * input buffer is full, the rest stays inside the session and is pulled
 * after the complete packets were consumed. */
static void conn_tls_input(struct conn *c, const uint8_t *data, size_t len)
{
    bool was_established = tls_session_established(c->tls->session);
    vigil_err rc = tls_session_feed(c->tls->session, data, len, &c->in, &c->tls->wire);

    for (;;) {
        if (rc == VIGIL_ERR_CLOSED) {
            /* close_notify may come in the same read as the last packets
             * (a PUBLISH, then DISCONNECT): those are handled first. */
            conn_process(c);
            if (!c->closing_handles && c->state != CONN_CLOSING)
                conn_tls_failed(c, rc);
            return;
        }
        if (rc != VIGIL_OK && rc != VIGIL_ERR_LIMIT) {
            conn_tls_failed(c, rc);
            return;
        }
        if (!was_established && tls_session_established(c->tls->session)) {
            was_established = true;
            if (!zt_handshake_done(c))
                return;
        }
        conn_process(c);
        if (rc != VIGIL_ERR_LIMIT || c->closing_handles || c->state == CONN_AUTH)
            return;
        rc = tls_session_feed(c->tls->session, NULL, 0, &c->in, &c->tls->wire);
    }
}

/* Handles n bytes that a read put into buf. */
static void conn_input(struct conn *c, const uv_buf_t *buf, size_t n)
{
    c->last_rx_ms = uv_now(c->hub->loop);
    conn_ref(c);
    if (c->tls != NULL) {
        conn_tls_input(c, (const uint8_t *)buf->base, n);
    } else if (buf->base == (char *)c->hub->read_buf) {
        conn_process_shared(c, (const uint8_t *)buf->base, n);
    } else {
        c->in.len += n;
        conn_process(c);
    }
    if (!c->closing_handles)
        conn_flush(c);
    conn_unref(c);
}

/* Reads what c's socket has, while c keeps reading. */
static void conn_read_ready(struct conn *c)
{
    for (int i = 0; i < CONN_READS_PER_EVENT && c->reading && !c->closing_handles; i++) {
        uv_buf_t buf;
        ssize_t n;

        conn_read_buf(c, &buf);
        if (buf.len == 0) {
            conn_close(c, MQTT_RC_PACKET_TOO_LARGE, "input buffer limit reached");
            return;
        }
        n = recv(c->fd, buf.base, buf.len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c, 0xFF, n == 0 ? "peer closed the connection" : uv_strerror(-errno));
            return;
        }
        conn_input(c, &buf, (size_t)n);
        if ((size_t)n < buf.len)
            return;
    }
}

void conn_resume_read(struct conn *c)
{
    if (c->closing_handles)
        return;
    conn_ref(c);
    /* Plaintext still buffered in the TLS session is pulled as well. */
    if (c->tls != NULL)
        conn_tls_input(c, NULL, 0);
    else
        conn_process(c);
    if (!c->closing_handles) {
        conn_flush(c);
        if (c->io != NULL) {
            iopool_resume(c);
        } else if (!c->closing_handles && !c->reading) {
            c->reading = true;
            if (!conn_ep_update(c))
                conn_release(c);
        }
    }
    conn_unref(c);
}

void conn_pause_read(struct conn *c)
{
    /* An I/O thread stops reading after the first packet by itself. */
    if (c->io != NULL || !c->reading)
        return;
    c->reading = false;
    /* Without the change, epoll keeps reporting input that is not read. */
    if (!conn_ep_update(c))
        conn_release(c);
}

void conn_io_packets(struct conn *c, const uint8_t *data, size_t len)
{
    bool first = c->state == CONN_NEW;
    size_t off;

    if (c->closing_handles || c->state == CONN_CLOSING)
        return;
    c->last_rx_ms = uv_now(c->hub->loop);
    conn_ref(c);
    off = conn_process_bytes(c, data, len);
    if (!c->closing_handles && c->state != CONN_CLOSING && off < len &&
        vigil_buf_append(&c->in, data + off, len - off) != VIGIL_OK)
        conn_close(c, MQTT_RC_PACKET_TOO_LARGE, "input buffer limit reached");
    /* The I/O thread stops reading after the first packet until CONNECT is
     * handled here. A login still being checked resumes it later
     * (conn_resume_read). */
    if (first && !c->closing_handles && c->state != CONN_AUTH && c->state != CONN_CLOSING)
        iopool_resume(c);
    conn_unref(c);
}

void conn_io_activity(struct conn *c)
{
    c->last_rx_ms = uv_now(c->hub->loop);
}

void conn_io_written(struct conn *c, size_t n)
{
    c->io_unwritten -= n < c->io_unwritten ? n : c->io_unwritten;
    /* Once everything was written, an idle connection keeps no buffer. */
    if (c->io_unwritten == 0 && c->out.len == 0)
        vigil_buf_release(&c->out);
    conn_account(c);
    if (!c->closing_handles && c->state != CONN_CLOSING && c->session != NULL)
        session_pump(c->session);
}

void conn_io_failed(struct conn *c, int status, bool writing)
{
    if (c->closing_handles)
        return;
    if (writing)
        conn_close(c, 0xFF, "write failed");
    else if (status == UV_ENOBUFS)
        conn_close(c, MQTT_RC_PACKET_TOO_LARGE, "input buffer limit reached");
    else
        conn_close(c, 0xFF, status == UV_EOF ? "peer closed the connection" : uv_strerror(status));
}

void conn_io_malformed(struct conn *c, const struct mqtt_error *err, uint8_t type)
{
    if (c->closing_handles || c->state == CONN_CLOSING)
        return;
    conn_protocol_error(c, err, type);
}

void conn_io_aborted(struct conn *c, size_t unwritten)
{
    /* The thread freed that output, so none of it is reported written. */
    c->io_unwritten = 0;
    conn_account(c);
    conn_report_abort(c, unwritten);
}

void conn_io_closed(struct conn *c)
{
    conn_timer_stop(c);
    conn_unref(c);
}

static void conn_format_peer(struct conn *c, const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";
    char peer[INET6_ADDRSTRLEN + 8];
    int port = 0;

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(peer, sizeof peer, "[%s]:%d", host, ntohs(in6->sin6_port));
        hub_name_set(&c->peer, peer, sizeof peer, sizeof peer);
        return;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    }
    snprintf(peer, sizeof peer, "%s:%d", host, port);
    hub_name_set(&c->peer, peer, sizeof peer, sizeof peer);
}

/* Gives c its TLS part; false when there is no TLS context or memory. */
static bool conn_tls_start(struct conn *c, struct tls_server *server)
{
    if (server == NULL)
        return false;
    c->tls = vigil_calloc(1, sizeof *c->tls);
    if (c->tls == NULL)
        return false;
    vigil_buf_init(&c->tls->wire, CONN_OUT_HARD_LIMIT);
    if (tls_session_new(server, &c->tls->session) == VIGIL_OK)
        return true;
    vigil_free(c->tls);
    c->tls = NULL;
    return false;
}

void conn_accept(struct hub *hub, int fd, const struct sockaddr *peer,
                 const struct config_listener *listener)
{
    bool plaintext = listener->transport != CONFIG_TRANSPORT_MQTTS;
    struct conn *c = vigil_calloc(1, sizeof *c);
    int on = 1;

    if (c == NULL) {
        log_error("accept: out of memory");
        close(fd);
        return;
    }
    c->hub = hub;
    c->fd = fd;
    c->id = hub->next_conn_id++;
    c->anonymous_allowed = listener->allow_anonymous;
    c->password_allowed = listener->allow_password;
    c->refs = 1; /* the socket, dropped by conn_reap */
    c->peer = c->client_id = c->device = c->device_type = hub_no_name;
    vigil_timer_node_init(&c->timer);
    vigil_buf_init(&c->in, (size_t)hub->cfg.limits.max_packet_size + 5);
    vigil_buf_init(&c->out, CONN_OUT_HARD_LIMIT);
    hub->n_conns++;
    hub->stats.connections_total++;
    conn_track(hub, c, true);
    conn_format_peer(c, peer);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    hub_emit(hub, c, VIGIL_EV_CONNECT_ATTEMPT, NULL, 0, NULL, NULL);
    if (hub->stopping || hub->n_conns > hub->cfg.limits.max_connections) {
        hub_emit(hub, c, VIGIL_EV_LIMIT, NULL, 0, NULL, "connection limit reached");
        conn_close(c, 0xFF, "connection limit reached");
        return;
    }
    if (zt_peer_blocked(c)) {
        conn_close(c, 0xFF, "too many failed logins from this address");
        return;
    }
    if (!plaintext && !conn_tls_start(c, hub->tls[listener - hub->cfg.listeners])) {
        log_error("conn %llu %s: cannot start a TLS session", (unsigned long long)c->id, c->peer);
        conn_close(c, 0xFF, "cannot start a TLS session");
        return;
    }
    c->last_rx_ms = uv_now(hub->loop);
    if (!conn_timer_set(c, hub->cfg.limits.connect_timeout_ms)) {
        conn_close(c, 0xFF, "out of memory");
        return;
    }
    /* TLS connections stay on the hub's loop: their handshake reads the
     * inventory snapshot, the CRL and the login limits, which live here.
     * The socket's reference on c passes to the thread. */
    if (c->tls == NULL && hub->io != NULL && iopool_adopt(c))
        return;
    c->reading = true;
    if (!conn_ep_update(c))
        conn_release(c);
}

void conn_hold_end(struct conn *c, vigil_err rc)
{
    if (c->holds > 0)
        c->holds--;
    if (rc != VIGIL_OK && !c->closing_handles)
        conn_close(c, MQTT_RC_UNSPECIFIED, "store write failed");
    else
        conn_flush(c);
}

static void hold_released(void *arg, vigil_err rc)
{
    struct conn *c = arg;

    conn_hold_end(c, rc);
    conn_unref(c);
}

void conn_hold_until_durable(struct conn *c)
{
    if (store_pending(c->hub->store) == 0)
        return;
    c->holds++;
    conn_ref(c);
    persist_barrier(c->hub, hold_released, c);
}
