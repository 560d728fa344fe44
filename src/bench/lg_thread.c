/* The load generator's event loops: one epoll instance per thread, with
 * non-blocking sockets, batched writes and the publish schedule. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/lg_internal.h"
#include "bench/procstat.h"
#include "core/alloc.h"

#define LG_EVENTS 256
#define LG_EMIT_BATCH 4096       /* publishes per wake-up before I/O is served again */
#define LG_IDLE_WAIT_NS 20000000 /* wake-up period without a schedule */

static void set_interest(struct lg_thread *t, struct lg_conn *c, bool out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

    if (c->want_out == out)
        return;
    c->want_out = out;
    epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(struct lg_thread *t, struct lg_conn *c)
{
    if (c->fd >= 0) {
        epoll_ctl(t->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    t->outstanding -= c->inflight + (c->backlog != NULL ? c->backlog->count : 0);
    c->inflight = 0;
    if (c->backlog != NULL)
        c->backlog->count = 0;
    c->want_out = false;
    vigil_buf_consume(&c->tx, c->tx.len);
    vigil_buf_consume(&c->partial, c->partial.len);
}

void lg_conn_lost(struct lg_thread *t, struct lg_conn *c, const char *reason)
{
    if (c->fd < 0)
        return;
    if (c->state == LG_READY) {
        atomic_fetch_sub(&t->sh.ready, 1);
        atomic_fetch_add(&t->sh.lost, 1);
        c->state = LG_CLOSED;
    } else {
        if (t->last_error[0] == '\0')
            snprintf(t->last_error, sizeof t->last_error, "%s", reason);
        atomic_fetch_add(&t->sh.failed, 1);
        t->connecting--;
        c->state = LG_FAILED;
    }
    conn_close(t, c);
}

void lg_conn_ready(struct lg_thread *t, struct lg_conn *c)
{
    c->state = LG_READY;
    t->connecting--;
    atomic_fetch_add(&t->sh.ready, 1);
}

void lg_mark_dirty(struct lg_thread *t, struct lg_conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        t->dirty[t->n_dirty++] = c;
    }
}

static int bind_source(const struct lg *lg, int fd, uint32_t global)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    int one = 1;

    if (lg->opt.source_addrs <= 1)
        return 0;
    /* The port is chosen at connect() time, per destination, so each
     * source address has its own ephemeral port range. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    src.sin_addr.s_addr = htonl(INADDR_LOOPBACK + global % lg->opt.source_addrs);
    return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static void conn_open(struct lg_thread *t, struct lg_conn *c)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(t->lg->opt.port)};
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        if (t->last_error[0] == '\0')
            snprintf(t->last_error, sizeof t->last_error, "socket: %s", strerror(errno));
        atomic_fetch_add(&t->sh.failed, 1);
        c->state = LG_FAILED;
        return;
    }
    c->fd = fd;
    c->state = LG_CONNECTING;
    t->connecting++;
    inet_pton(AF_INET, t->lg->opt.host, &dst.sin_addr);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_source(t->lg, fd, c->global) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS) ||
        epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        lg_conn_lost(t, c, strerror(errno));
        return;
    }
    c->want_out = true;
}

/* Completes a non-blocking connect and sends CONNECT. */
static void conn_connected(struct lg_thread *t, struct lg_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        lg_conn_lost(t, c, strerror(err != 0 ? err : errno));
        return;
    }
    c->state = LG_WAIT_CONNACK;
    set_interest(t, c, false);
    if (!lg_send_connect(t, c))
        lg_conn_lost(t, c, "CONNECT does not fit");
}

static void conn_flush(struct lg_thread *t, struct lg_conn *c)
{
    ssize_t n;

    while (c->tx.len > 0) {
        n = send(c->fd, c->tx.data, c->tx.len, MSG_NOSIGNAL);
        if (n > 0) {
            vigil_buf_consume(&c->tx, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_interest(t, c, true);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        lg_conn_lost(t, c, strerror(errno));
        return;
    }
    set_interest(t, c, false);
}

static void flush_dirty(struct lg_thread *t)
{
    for (size_t i = 0; i < t->n_dirty; i++) {
        struct lg_conn *c = t->dirty[i];

        c->dirty = false;
        if (c->fd >= 0 && !c->want_out)
            conn_flush(t, c);
    }
    t->n_dirty = 0;
}

/* Reads once, prepending the partial packet left by the last read. */
static void conn_read(struct lg_thread *t, struct lg_conn *c)
{
    size_t have = c->partial.len, used;
    ssize_t n;

    if (have > 0)
        memcpy(t->rbuf, c->partial.data, have);
    n = recv(c->fd, t->rbuf + have, LG_RBUF_SIZE - have, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        lg_conn_lost(t, c, n == 0 ? "closed by the broker" : strerror(errno));
        return;
    }
    t->now_ns = bench_now_ns();
    used = lg_handle_input(t, c, t->rbuf, have + (size_t)n);
    if (used == SIZE_MAX)
        return;
    vigil_buf_consume(&c->partial, c->partial.len);
    if (used < have + (size_t)n &&
        vigil_buf_append(&c->partial, t->rbuf + used, have + (size_t)n - used) != VIGIL_OK)
        lg_conn_lost(t, c, "partial packet over the limit");
}

static void conn_event(struct lg_thread *t, struct lg_conn *c, uint32_t events)
{
    if (c->fd < 0)
        return;
    if (c->state == LG_CONNECTING) {
        conn_connected(t, c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_read(t, c);
    if (c->fd >= 0 && (events & EPOLLOUT))
        conn_flush(t, c);
}

/* Starts connection attempts while fewer than connect_window are under way. */
static void connect_progress(struct lg_thread *t)
{
    while (t->connecting < t->lg->opt.connect_window && t->connect_cursor < t->n_conns) {
        struct lg_conn *c = t->conns[t->connect_cursor++];

        if (c->state == LG_CLOSED || c->state == LG_FAILED)
            conn_open(t, c);
    }
}

static void close_all(struct lg_thread *t)
{
    for (size_t i = 0; i < t->n_conns; i++) {
        struct lg_conn *c = t->conns[i];

        if (c->state == LG_READY)
            lg_send_disconnect(c);
        conn_close(t, c);
        c->state = LG_CLOSED;
        c->dirty = false;
    }
    t->n_dirty = 0;
    t->connecting = 0;
    t->connect_cursor = t->n_conns;
    atomic_store(&t->sh.ready, 0);
}

static void start_schedule(struct lg_thread *t, const struct lg_cmd *cmd)
{
    struct lg *lg = t->lg;
    double rate = lg->wl.n_pub > 0 ? cmd->rate * (double)t->n_pubs / lg->wl.n_pub : 0;

    t->start_ns = cmd->start_ns;
    t->from_ns = cmd->from_ns;
    t->to_ns = cmd->to_ns;
    t->stop_ns = cmd->stop_ns;
    t->next_j = 0;
    t->interval_ns = rate > 0 ? 1e9 / rate : 0;
    bench_hist_reset(&t->hist);
    atomic_store(&t->sh.sent, 0);
    atomic_store(&t->sh.dropped, 0);
    atomic_store(&t->sh.received, 0);
    atomic_store(&t->sh.lost, 0);
    t->recording = true;
    t->publishing = t->n_pubs > 0 && rate > 0;
    atomic_store(&t->sh.schedule_done, !t->publishing);
}

static void apply_command(struct lg_thread *t)
{
    struct lg *lg = t->lg;
    uint64_t gen = atomic_load_explicit(&lg->gen, memory_order_acquire);
    struct lg_cmd cmd;

    if (gen == t->gen)
        return;
    cmd = lg->cmd;
    switch (cmd.kind) {
    case LG_CMD_CONNECT:
        t->connect_cursor = 0;
        atomic_store(&t->sh.failed, 0);
        t->last_error[0] = '\0';
        break;
    case LG_CMD_PUBLISH:
        start_schedule(t, &cmd);
        break;
    case LG_CMD_QUIET:
        t->publishing = false;
        t->recording = false;
        break;
    case LG_CMD_CLOSE:
        t->publishing = false;
        close_all(t);
        break;
    default:
        break;
    }
    t->gen = gen;
    atomic_store_explicit(&t->sh.applied, gen, memory_order_release);
}

static uint64_t due_time(const struct lg_thread *t, uint64_t j)
{
    return t->start_ns + (uint64_t)((double)j * t->interval_ns);
}

/* Emits every publish that is due, at most LG_EMIT_BATCH. Returns the
 * time of the next one, or 0 when the schedule has ended. */
static uint64_t publish_due(struct lg_thread *t, uint64_t now)
{
    uint64_t due = 0;

    for (unsigned i = 0; t->publishing && i < LG_EMIT_BATCH; i++) {
        due = due_time(t, t->next_j);
        if (due >= t->stop_ns) {
            t->publishing = false;
            atomic_store(&t->sh.schedule_done, true);
            return 0;
        }
        if (due > now)
            return due;
        lg_emit(t, t->next_j, due);
        t->next_j++;
    }
    return t->publishing ? now : 0;
}

/* The latest due time that may be emitted now: now itself, or with
 * coalescing the start of the current period. A publish then waits for
 * the end of its period even when a socket event wakes the thread. */
static uint64_t emit_limit(const struct lg_thread *t, uint64_t now)
{
    uint64_t period = (uint64_t)t->lg->opt.coalesce_us * 1000u;

    if (period == 0 || now <= t->start_ns)
        return now;
    return t->start_ns + (now - t->start_ns) / period * period;
}

/* With coalescing, the next wake-up is the end of the period next_due
 * falls in, so that everything due within a period is emitted together.
 * A publish already due (the emit batch was full) is not delayed. */
static uint64_t coalesced_due(const struct lg_thread *t, uint64_t next_due, uint64_t now)
{
    uint64_t period = (uint64_t)t->lg->opt.coalesce_us * 1000u;

    if (period == 0 || next_due <= now || next_due <= t->start_ns)
        return next_due;
    return t->start_ns + ((next_due - t->start_ns + period - 1) / period) * period;
}

static void wait_events(struct lg_thread *t, uint64_t next_due)
{
    struct epoll_event events[LG_EVENTS];
    uint64_t now = bench_now_ns();
    uint64_t wait = LG_IDLE_WAIT_NS;
    struct timespec ts;
    int n;

    if (next_due != 0 && next_due < now + wait)
        wait = next_due > now ? next_due - now : 0;
    ts.tv_sec = (time_t)(wait / 1000000000u);
    ts.tv_nsec = (long)(wait % 1000000000u);
    n = epoll_pwait2(t->ep, events, LG_EVENTS, &ts, NULL);
    t->now_ns = bench_now_ns();
    for (int i = 0; i < n; i++) {
        if (events[i].data.ptr == NULL) {
            uint64_t v;

            if (read(t->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                continue;
            continue;
        }
        conn_event(t, events[i].data.ptr, events[i].events);
    }
}

void *lg_thread_main(void *arg)
{
    struct lg_thread *t = arg;
    uint64_t next_due, now;

    while (!atomic_load(&t->lg->quit)) {
        apply_command(t);
        connect_progress(t);
        now = bench_now_ns();
        next_due = coalesced_due(t, publish_due(t, emit_limit(t, now)), now);
        flush_dirty(t);
        atomic_store_explicit(&t->sh.outstanding, t->outstanding, memory_order_relaxed);
        wait_events(t, next_due);
        flush_dirty(t);
    }
    close_all(t);
    return NULL;
}
