/* I/O threads for plaintext MQTT connections. The hub accepts a socket and
 * hands a duplicate of it to one thread, round-robin. The thread reads and
 * cuts the stream into MQTT packets, which go to the hub. The hub decodes
 * and handles them as before and passes its output back to the thread,
 * which writes it. Records cross in two ioq queues per thread, each with
 * one uv_async wake-up per batch. The thread never reads struct conn and
 * the hub never reads struct io_conn after the handoff (except its
 * immutable thread pointer), so neither side needs locks beyond the
 * queues. */
#include "broker/iothread.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "core/alloc.h"
#include "core/ioq.h"
#include "core/log.h"
#include "core/sched.h"

/* Records from the hub to a thread. Every record names a struct io_conn,
 * except TO_IO_ABORT, which names the hub's struct conn because the
 * io_conn may be gone by the time it arrives. */
enum {
    TO_IO_ADOPT = 1, TO_IO_DATA, TO_IO_RESUME, TO_IO_CLOSE, TO_IO_STOP, TO_IO_ABORT,
    TO_IO_ABORT_ALL,
};
/* Records from a thread to the hub. */
enum {
    TO_HUB_PACKETS = 1, TO_HUB_ACTIVITY, TO_HUB_WRITTEN, TO_HUB_READ_FAILED,
    TO_HUB_WRITE_FAILED, TO_HUB_MALFORMED, TO_HUB_ABORTED, TO_HUB_CLOSED,
};
/* Pushed with records when the thread stopped reading some connections
 * because the hub had too much input waiting. */
#define IO_FLAG_STALLED 1u

/* Input waiting for the hub past which a thread stops reading until the
 * hub took it: bounds memory when the hub thread is the bottleneck. */
#define IO_HUB_BACKLOG_MAX (4u * 1024 * 1024)
/* Hard caps of a queue and of one connection's unwritten output; the
 * hub's own output limits (limits.max_output_bytes) act well before. */
#define IO_QUEUE_LIMIT (1024u * 1024 * 1024)
#define IO_OUT_LIMIT (64u * 1024 * 1024)
#define IO_THREADS_AUTO_MAX 8u

/* The automatic count leaves one CPU to the hub's thread, which decodes and
 * handles every packet: I/O threads only pay off on cores of their own, and
 * on two CPUs one thread of each measured slower than the single loop. */

struct io_thread;

/* A connection's socket on its I/O thread. Allocated by the hub, owned and
 * freed by the thread once the handoff record is pushed. */
struct io_conn {
    struct io_thread *t;       /* immutable; the hub reads it */
    struct conn *conn;         /* the hub's object: passed back, never read here */
    uv_tcp_t tcp;
    struct vigil_buf in;       /* a partial packet, or input held after the first packet */
    struct vigil_buf out;      /* waiting to be written */
    struct vigil_buf busy;     /* being written */
    uint32_t max_packet;
    bool tcp_open;
    bool first_seen;           /* the first packet went to the hub */
    bool read_held;            /* reading waits for the hub to handle that packet */
    bool read_done;            /* end of stream, a read error or a malformed packet */
    bool failed;               /* a write failed: no more reads or writes */
    bool closing;              /* the hub asked to close */
    bool handle_closed;
    bool write_busy;
    bool dirty;                /* in the thread's dirty list */
    bool stalled;              /* in the thread's stalled list */
    struct io_conn *dirty_next;
    /* Links in the thread's stalled list while reading is stalled, and in
     * its closing list from the close request until the socket is closed.
     * A closing connection is never stalled, so one pair serves both. */
    struct io_conn *link_prev, *link_next;
};

struct io_pool;

struct io_thread {
    struct io_pool *pool;
    unsigned index;
    uv_thread_t tid;
    bool running;
    struct ioq to_io, to_hub;

    /* Used on the thread only. */
    uv_loop_t loop;
    uv_async_t wake;
    uv_prepare_t prepare;      /* pushes staged records before the loop polls */
    uv_check_t check;          /* and after the callbacks of one poll */
    struct vigil_buf io_stage, io_work;
    size_t hub_backlog;        /* to_hub bytes at the last push or wake-up */
    struct io_conn *dirty_head;
    struct io_conn *stalled_head;
    struct io_conn *closing_head;  /* closing connections whose socket is open */
    uint8_t read_buf[65536];

    /* Used on the hub only. */
    uv_async_t hub_wake;
    struct vigil_buf hub_stage, hub_work;
    uint64_t n_conns;
};

struct io_pool {
    struct hub *hub;
    struct io_thread **threads;
    size_t n;
    size_t next;               /* round-robin position */
    uint64_t live;             /* handed-off connections not yet reported closed */
    uint32_t close_grace_ms;   /* limits.close_grace_ms, read by the threads */
    uint32_t sched_slice_us;   /* limits.sched_slice_us, read by the threads */
    bool stopped;
};

/* ---- thread side ---- */

static void io_push(struct io_thread *t)
{
    size_t queued;

    if (t->io_stage.len == 0)
        return;
    queued = ioq_push(&t->to_hub, &t->io_stage, t->stalled_head != NULL ? IO_FLAG_STALLED : 0);
    if (queued == 0)
        return;
    t->hub_backlog = queued;
    uv_async_send(&t->hub_wake);
}

static void io_report(struct io_conn *ic, uint8_t kind, uint64_t arg, const void *data, size_t len)
{
    if (ioq_put(&ic->t->io_stage, kind, ic->conn, arg, data, len) != VIGIL_OK)
        log_error("I/O thread %u: hub queue full; a record is lost", ic->t->index);
}

static void io_list_push(struct io_conn **head, struct io_conn *ic)
{
    ic->link_prev = NULL;
    ic->link_next = *head;
    if (*head != NULL)
        (*head)->link_prev = ic;
    *head = ic;
}

static void io_list_unlink(struct io_conn **head, struct io_conn *ic)
{
    if (ic->link_prev != NULL)
        ic->link_prev->link_next = ic->link_next;
    else
        *head = ic->link_next;
    if (ic->link_next != NULL)
        ic->link_next->link_prev = ic->link_prev;
    ic->link_prev = ic->link_next = NULL;
}

static void io_stall_unlink(struct io_conn *ic)
{
    if (!ic->stalled)
        return;
    io_list_unlink(&ic->t->stalled_head, ic);
    ic->stalled = false;
}

static bool io_may_read(const struct io_conn *ic)
{
    return ic->tcp_open && !ic->read_held && !ic->read_done && !ic->failed && !ic->closing &&
           !ic->stalled;
}

static void io_on_closed(uv_handle_t *h)
{
    struct io_conn *ic = h->data;
    struct io_thread *t = ic->t;

    /* Only closing connections are closed, and each is in the closing
     * list until here. */
    io_list_unlink(&t->closing_head, ic);
    /* CLOSED is the last record about this connection: after it the hub
     * drops its reference, so it goes out now, behind everything staged. */
    io_report(ic, TO_HUB_CLOSED, 0, NULL, 0);
    io_push(t);
    vigil_buf_release(&ic->in);
    vigil_buf_release(&ic->out);
    vigil_buf_release(&ic->busy);
    vigil_free(ic);
}

static void io_maybe_close(struct io_conn *ic)
{
    if (!ic->closing || ic->handle_closed || ic->write_busy)
        return;
    if (ic->out.len > 0 && !ic->failed && ic->tcp_open)
        return;
    ic->handle_closed = true;
    io_stall_unlink(ic);
    if (ic->tcp_open) {
        uv_close((uv_handle_t *)&ic->tcp, io_on_closed);
        return;
    }
    ic->tcp.data = ic;
    io_on_closed((uv_handle_t *)&ic->tcp);
}

/* Stops reading (and after a write error, writing) and reports why. */
static void io_fail(struct io_conn *ic, uint8_t kind, int status)
{
    bool reported = ic->read_done || ic->failed;

    ic->read_done = true;
    if (kind == TO_HUB_WRITE_FAILED)
        ic->failed = true;
    if (ic->tcp_open)
        uv_read_stop((uv_stream_t *)&ic->tcp);
    if (!reported)
        io_report(ic, kind, (uint64_t)(int64_t)status, NULL, 0);
}

static void io_write_start(struct io_conn *ic);
static void io_abort(struct io_conn *ic);

static void io_on_write(uv_write_t *req, int status)
{
    struct io_conn *ic = req->data;

    vigil_free(req);
    /* A closing connection's socket carries TCP_USER_TIMEOUT set to
     * limits.close_grace_ms. The kernel may thus give up on a peer that
     * does not read before the hub's close deadline does. That is the same
     * reset and is reported the same way; this write's bytes count as
     * unwritten. */
    if (status == UV_ETIMEDOUT && ic->closing && !ic->handle_closed) {
        io_abort(ic);
        return;
    }
    ic->write_busy = false;
    io_report(ic, TO_HUB_WRITTEN, ic->busy.len, NULL, 0);
    ic->busy.len = 0;
    /* With nothing more to send the buffers are freed, so an idle
     * connection keeps none; a busy one keeps reusing them. */
    if (ic->busy.cap > 65536 || ic->out.len == 0)
        vigil_buf_release(&ic->busy);
    if (ic->out.len == 0)
        vigil_buf_release(&ic->out);
    if (status < 0)
        io_fail(ic, TO_HUB_WRITE_FAILED, status);
    io_write_start(ic);
    io_maybe_close(ic);
}

static void io_write_start(struct io_conn *ic)
{
    struct vigil_buf tmp;
    uv_write_t *req;
    uv_buf_t b;
    int rc;

    if (ic->write_busy || ic->failed || ic->handle_closed || !ic->tcp_open || ic->out.len == 0)
        return;
    tmp = ic->busy;
    ic->busy = ic->out;
    ic->out = tmp;
    ic->out.len = 0;
    b = uv_buf_init((char *)ic->busy.data, (unsigned)ic->busy.len);
    /* A write request exists only while its write runs. */
    req = vigil_malloc(sizeof *req);
    rc = req != NULL ? 0 : UV_ENOMEM;
    if (req != NULL) {
        req->data = ic;
        rc = uv_write(req, (uv_stream_t *)&ic->tcp, &b, 1, io_on_write);
    }
    if (rc != 0) {
        vigil_free(req);
        ic->busy.len = 0;
        io_fail(ic, TO_HUB_WRITE_FAILED, rc);
        return;
    }
    ic->write_busy = true;
}

/* Passes the complete packets at the start of data to the hub and returns
 * the bytes they take. After the first packet of a connection (CONNECT)
 * nothing more is cut until the hub resumes the connection, so the hub
 * never has to buffer packets behind a login it is still checking. */
static size_t io_frame(struct io_conn *ic, const uint8_t *data, size_t len, bool from_read)
{
    size_t off = 0;

    while (!ic->read_held && off < len) {
        struct mqtt_error err = {0};
        size_t hdr;
        uint32_t rem;
        vigil_err rc = mqtt_frame(data + off, len - off, &hdr, &rem, &err);

        if (rc == VIGIL_ERR_AGAIN)
            break;
        if (rc == VIGIL_OK && hdr + rem > ic->max_packet) {
            err = (struct mqtt_error){MQTT_RC_PACKET_TOO_LARGE, "MQTT-3.2.2-15",
                                      "packet exceeds the maximum packet size"};
            rc = VIGIL_ERR_LIMIT;
        }
        if (rc != VIGIL_OK) {
            if (off > 0)
                io_report(ic, TO_HUB_PACKETS, 0, data, off);
            io_report(ic, TO_HUB_MALFORMED, data[off] >> 4, &err, sizeof err);
            ic->read_done = true;
            uv_read_stop((uv_stream_t *)&ic->tcp);
            return len;
        }
        if (len - off < hdr + rem)
            break;
        off += hdr + rem;
        if (!ic->first_seen) {
            ic->first_seen = true;
            ic->read_held = true;
            uv_read_stop((uv_stream_t *)&ic->tcp);
        }
    }
    if (off > 0)
        io_report(ic, TO_HUB_PACKETS, 0, data, off);
    else if (from_read)
        io_report(ic, TO_HUB_ACTIVITY, 0, NULL, 0);
    return off;
}

static void io_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct io_conn *ic = h->data;
    size_t want = 16384;

    (void)suggested;
    if (ic->in.len == 0) {
        /* As on the hub: one buffer per loop serves every connection with
         * no partial packet, so idle connections hold no input buffer. */
        buf->base = (char *)ic->t->read_buf;
        buf->len = sizeof ic->t->read_buf;
        if (buf->len > ic->in.limit)
            buf->len = ic->in.limit;
        return;
    }
    if (ic->in.limit - ic->in.len < want)
        want = ic->in.limit - ic->in.len;
    if (want == 0 || vigil_buf_reserve(&ic->in, want) != VIGIL_OK) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = (char *)ic->in.data + ic->in.len;
    buf->len = ic->in.cap - ic->in.len;
}

static void io_check_stall(struct io_conn *ic)
{
    struct io_thread *t = ic->t;

    if (ic->stalled || !io_may_read(ic) || t->io_stage.len + t->hub_backlog <= IO_HUB_BACKLOG_MAX)
        return;
    uv_read_stop((uv_stream_t *)&ic->tcp);
    ic->stalled = true;
    io_list_push(&t->stalled_head, ic);
}

static void io_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct io_conn *ic = stream->data;
    size_t off;

    if (ic->read_done || ic->closing)
        return;
    if (nread == UV_ENOBUFS || (nread == 0 && buf->base == NULL)) {
        io_fail(ic, TO_HUB_READ_FAILED, UV_ENOBUFS);
        return;
    }
    if (nread < 0) {
        io_fail(ic, TO_HUB_READ_FAILED, (int)nread);
        return;
    }
    if (nread == 0)
        return;
    if (buf->base == (char *)ic->t->read_buf) {
        off = io_frame(ic, (const uint8_t *)buf->base, (size_t)nread, true);
        if (!ic->read_done && off < (size_t)nread &&
            vigil_buf_append(&ic->in, buf->base + off, (size_t)nread - off) != VIGIL_OK)
            io_fail(ic, TO_HUB_READ_FAILED, UV_ENOBUFS);
    } else {
        ic->in.len += (size_t)nread;
        off = io_frame(ic, ic->in.data, ic->in.len, true);
        vigil_buf_consume(&ic->in, off);
        if (ic->in.len == 0)
            vigil_buf_release(&ic->in);
    }
    io_check_stall(ic);
}

static void io_read_start(struct io_conn *ic)
{
    int rc;

    if (!io_may_read(ic))
        return;
    rc = uv_read_start((uv_stream_t *)&ic->tcp, io_on_alloc, io_on_read);
    if (rc != 0)
        io_fail(ic, TO_HUB_READ_FAILED, rc);
}

/* Returns the socket of ic's open handle, or -1. */
static int io_fd(const struct io_conn *ic)
{
    uv_os_fd_t fd;

    return uv_fileno((const uv_handle_t *)&ic->tcp, &fd) == 0 ? fd : -1;
}

static void io_adopt(struct io_thread *t, struct io_conn *ic, int fd)
{
    int rc = uv_tcp_init(&t->loop, &ic->tcp);

    ic->tcp.data = ic;
    if (rc == 0) {
        ic->tcp_open = true;
        rc = uv_tcp_open(&ic->tcp, fd);
    }
    if (rc != 0) {
        if (!ic->tcp_open)
            close(fd);
        log_error("I/O thread %u: cannot take over a socket: %s", t->index, uv_strerror(rc));
        io_fail(ic, TO_HUB_READ_FAILED, rc);
        return;
    }
    io_read_start(ic);
}

static void io_data(struct io_thread *t, struct io_conn *ic, const uint8_t *data, size_t len)
{
    if (ic->failed || ic->handle_closed)
        return;
    if (vigil_buf_append(&ic->out, data, len) != VIGIL_OK) {
        io_fail(ic, TO_HUB_WRITE_FAILED, UV_ENOBUFS);
        return;
    }
    if (!ic->dirty) {
        ic->dirty = true;
        ic->dirty_next = t->dirty_head;
        t->dirty_head = ic;
    }
}

static void io_resume(struct io_conn *ic)
{
    size_t off;

    if (!ic->read_held || ic->read_done || ic->closing)
        return;
    ic->read_held = false;
    /* Input read behind the first packet is cut now. */
    off = io_frame(ic, ic->in.data, ic->in.len, false);
    vigil_buf_consume(&ic->in, off);
    if (ic->in.len == 0)
        vigil_buf_release(&ic->in);
    io_read_start(ic);
}

static void io_close_request(struct io_conn *ic)
{
    if (ic->closing)
        return;
    ic->closing = true;
    if (ic->tcp_open) {
        uv_read_stop((uv_stream_t *)&ic->tcp);
        conn_sock_bound_unread(io_fd(ic), ic->t->pool->close_grace_ms);
    }
    io_stall_unlink(ic);
    io_list_push(&ic->t->closing_head, ic);
    io_write_start(ic);
    io_maybe_close(ic);
}

/* Resets the socket of a closing connection whose output is still being
 * written (its peer stopped reading), reporting the bytes left unwritten.
 * libuv cancels the write, whose callback runs before the close callback,
 * which frees ic. */
static void io_abort(struct io_conn *ic)
{
    size_t unwritten = ic->out.len + (ic->write_busy ? ic->busy.len : 0);

    if (ic->handle_closed)
        return;
    io_report(ic, TO_HUB_ABORTED, unwritten, NULL, 0);
    ic->failed = true;
    ic->handle_closed = true;
    if (ic->tcp_open) {
        conn_sock_reset_on_close(io_fd(ic));
        uv_close((uv_handle_t *)&ic->tcp, io_on_closed);
        return;
    }
    io_on_closed((uv_handle_t *)&ic->tcp);
}

/* Resets the connection of the hub's conn when it is still closing here.
 * It is looked up by conn, never by an io_conn pointer the hub kept: the
 * socket may have closed and its io_conn been freed meanwhile. A new
 * io_conn for a conn at the same address comes only after the hub took
 * the CLOSED record, so after this record. */
static void io_abort_conn(struct io_thread *t, const void *conn)
{
    /* NOTE: the search is linear in the thread's closing connections, so
     * resetting n of them at once costs O(n^2) steps. */
    for (struct io_conn *ic = t->closing_head; ic != NULL; ic = ic->link_next) {
        if (ic->conn == conn) {
            io_abort(ic);
            return;
        }
    }
}

static void io_abort_all(struct io_thread *t)
{
    struct io_conn *ic = t->closing_head;

    while (ic != NULL) {
        /* io_abort may free ic at once. */
        struct io_conn *next = ic->link_next;

        io_abort(ic);
        ic = next;
    }
}

static void io_stop(struct io_thread *t)
{
    uv_close((uv_handle_t *)&t->wake, NULL);
    uv_close((uv_handle_t *)&t->prepare, NULL);
    uv_close((uv_handle_t *)&t->check, NULL);
}

static void io_run_record(struct io_thread *t, const struct ioq_rec *rec, const uint8_t *data)
{
    struct io_conn *ic = rec->ref;

    switch (rec->kind) {
    case TO_IO_ADOPT:
        io_adopt(t, ic, (int)rec->arg);
        break;
    case TO_IO_DATA:
        io_data(t, ic, data, rec->len);
        break;
    case TO_IO_RESUME:
        io_resume(ic);
        break;
    case TO_IO_CLOSE:
        io_close_request(ic);
        break;
    case TO_IO_STOP:
        io_stop(t);
        break;
    case TO_IO_ABORT:
        io_abort_conn(t, rec->ref);
        break;
    case TO_IO_ABORT_ALL:
        io_abort_all(t);
        break;
    default:
        break;
    }
}

/* Restarts reading on stalled connections once the hub took its input. */
static void io_unstall(struct io_thread *t)
{
    while (t->stalled_head != NULL && t->io_stage.len + t->hub_backlog <= IO_HUB_BACKLOG_MAX) {
        struct io_conn *ic = t->stalled_head;

        io_stall_unlink(ic);
        io_read_start(ic);
    }
}

static void io_on_wake(uv_async_t *h)
{
    struct io_thread *t = h->data;
    struct ioq_rec rec;
    const uint8_t *data;
    size_t off = 0;

    (void)ioq_take(&t->to_io, &t->io_work);
    t->hub_backlog = ioq_queued(&t->to_hub);
    while (ioq_next(&t->io_work, &off, &rec, &data))
        io_run_record(t, &rec, data);
    t->io_work.len = 0;
    /* Everything queued for one connection in this batch goes out in one
     * write. */
    while (t->dirty_head != NULL) {
        struct io_conn *ic = t->dirty_head;

        t->dirty_head = ic->dirty_next;
        ic->dirty = false;
        io_write_start(ic);
    }
    io_unstall(t);
}

static void io_on_prepare(uv_prepare_t *h)
{
    io_push(h->data);
}

static void io_on_check(uv_check_t *h)
{
    io_push(h->data);
}

static void io_thread_main(void *arg)
{
    struct io_thread *t = arg;
    char name[16];
    int rc;

    /* Named so that top -H, perf and /proc/PID/task show which is which. */
    snprintf(name, sizeof name, "vigil-io%u", t->index);
    pthread_setname_np(pthread_self(), name);
    rc = vigil_sched_set_slice(t->pool->sched_slice_us);
    if (rc != 0)
        log_debug("I/O thread %u keeps the kernel's default time slice: %s", t->index,
                  strerror(rc));
    uv_run(&t->loop, UV_RUN_DEFAULT);
    io_push(t);
}

/* ---- hub side ---- */

static void hub_run_record(struct io_thread *t, const struct ioq_rec *rec, const uint8_t *data)
{
    struct conn *c = rec->ref;
    struct mqtt_error err;

    switch (rec->kind) {
    case TO_HUB_PACKETS:
        conn_io_packets(c, data, rec->len);
        break;
    case TO_HUB_ACTIVITY:
        conn_io_activity(c);
        break;
    case TO_HUB_WRITTEN:
        conn_io_written(c, (size_t)rec->arg);
        break;
    case TO_HUB_READ_FAILED:
    case TO_HUB_WRITE_FAILED:
        conn_io_failed(c, (int)(int64_t)rec->arg, rec->kind == TO_HUB_WRITE_FAILED);
        break;
    case TO_HUB_MALFORMED:
        memcpy(&err, data, sizeof err);
        conn_io_malformed(c, &err, (uint8_t)rec->arg);
        break;
    case TO_HUB_ABORTED:
        conn_io_aborted(c, (size_t)rec->arg);
        break;
    case TO_HUB_CLOSED:
        t->n_conns--;
        t->pool->live--;
        conn_io_closed(c);
        break;
    default:
        break;
    }
}

static void hub_on_wake(uv_async_t *h)
{
    struct io_thread *t = h->data;
    struct ioq_rec rec;
    const uint8_t *data;
    size_t off = 0;

    if (ioq_take(&t->to_hub, &t->hub_work) & IO_FLAG_STALLED)
        uv_async_send(&t->wake);
    while (ioq_next(&t->hub_work, &off, &rec, &data))
        hub_run_record(t, &rec, data);
    t->hub_work.len = 0;
    if (t->hub_work.cap > 2 * IO_HUB_BACKLOG_MAX)
        vigil_buf_release(&t->hub_work);
}

/* Keeps the hub's loop from blocking in poll while records are staged. */
static void on_stage_idle(uv_idle_t *h)
{
    (void)h;
}

static vigil_err hub_stage(struct io_thread *t, uint8_t kind, void *ref, uint64_t arg,
                           const void *data, size_t len)
{
    struct hub *hub = t->pool->hub;
    vigil_err rc = ioq_put(&t->hub_stage, kind, ref, arg, data, len);

    if (rc == VIGIL_OK)
        uv_idle_start(&hub->flush_idle, on_stage_idle);
    return rc;
}

unsigned iopool_configured(const struct hub *hub)
{
    long cpus;

    if (hub->cfg.limits.io_threads != 0)
        return hub->cfg.limits.io_threads;
    cpus = sysconf(_SC_NPROCESSORS_ONLN) - 1;
    if (cpus <= 1)
        return 1;
    return cpus > (long)IO_THREADS_AUTO_MAX ? IO_THREADS_AUTO_MAX : (unsigned)cpus;
}

static vigil_err io_thread_init(struct io_pool *pool, unsigned index, struct io_thread **out)
{
    struct io_thread *t = vigil_calloc(1, sizeof *t);
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (t == NULL)
        return rc;
    t->pool = pool;
    t->index = index;
    vigil_buf_init(&t->io_stage, IO_QUEUE_LIMIT);
    vigil_buf_init(&t->io_work, IO_QUEUE_LIMIT);
    vigil_buf_init(&t->hub_stage, IO_QUEUE_LIMIT);
    vigil_buf_init(&t->hub_work, IO_QUEUE_LIMIT);
    if (ioq_init(&t->to_io, IO_QUEUE_LIMIT) != VIGIL_OK)
        goto fail;
    if (ioq_init(&t->to_hub, IO_QUEUE_LIMIT) != VIGIL_OK)
        goto fail_to_io;
    if (uv_loop_init(&t->loop) != 0)
        goto fail_to_hub;
    uv_async_init(&t->loop, &t->wake, io_on_wake);
    uv_prepare_init(&t->loop, &t->prepare);
    uv_check_init(&t->loop, &t->check);
    t->wake.data = t->prepare.data = t->check.data = t;
    uv_prepare_start(&t->prepare, io_on_prepare);
    uv_check_start(&t->check, io_on_check);
    uv_async_init(pool->hub->loop, &t->hub_wake, hub_on_wake);
    t->hub_wake.data = t;
    *out = t;
    return VIGIL_OK;

fail_to_hub:
    ioq_free(&t->to_hub);
fail_to_io:
    ioq_free(&t->to_io);
fail:
    vigil_free(t);
    return rc;
}

vigil_err iopool_start(struct hub *hub, unsigned n)
{
    struct io_pool *pool = vigil_calloc(1, sizeof *pool);

    if (pool == NULL || (pool->threads = vigil_calloc(n, sizeof *pool->threads)) == NULL) {
        vigil_free(pool);
        return VIGIL_ERR_NOMEM;
    }
    pool->hub = hub;
    pool->close_grace_ms = hub->cfg.limits.close_grace_ms;
    pool->sched_slice_us = hub->cfg.limits.sched_slice_us;
    hub->io = pool;
    for (unsigned i = 0; i < n; i++) {
        struct io_thread *t;
        vigil_err rc = io_thread_init(pool, i, &t);

        if (rc != VIGIL_OK)
            return rc;
        pool->threads[pool->n++] = t;
        if (uv_thread_create(&t->tid, io_thread_main, t) != 0) {
            log_error("cannot start I/O thread %u", i);
            return VIGIL_ERR_NOMEM;
        }
        t->running = true;
    }
    log_info("MQTT connections run on %u I/O threads", n);
    return VIGIL_OK;
}

bool iopool_idle(const struct hub *hub)
{
    return hub->io == NULL || hub->io->live == 0;
}

void iopool_abort_closing(struct hub *hub)
{
    struct io_pool *pool = hub->io;

    if (pool == NULL || pool->stopped)
        return;
    for (size_t i = 0; i < pool->n; i++) {
        struct io_thread *t = pool->threads[i];

        if (ioq_put(&t->hub_stage, TO_IO_ABORT_ALL, NULL, 0, NULL, 0) != VIGIL_OK)
            log_error("I/O thread %u: queue full; closing sockets are not reset", t->index);
    }
    iopool_push(hub);
}

void iopool_abort(struct conn *c)
{
    struct io_pool *pool = c->hub->io;

    /* c->io may be freed already (see io_abort_conn), so its thread is
     * unknown here and every thread gets the record. */
    for (size_t i = 0; i < pool->n; i++) {
        if (hub_stage(pool->threads[i], TO_IO_ABORT, c, 0, NULL, 0) != VIGIL_OK)
            log_error("conn %llu: I/O thread %u queue full; the socket is not reset",
                      (unsigned long long)c->id, pool->threads[i]->index);
    }
}

void iopool_stop(struct hub *hub)
{
    struct io_pool *pool = hub->io;

    if (pool == NULL || pool->stopped)
        return;
    pool->stopped = true;
    for (size_t i = 0; i < pool->n; i++) {
        struct io_thread *t = pool->threads[i];

        if (t->running) {
            (void)ioq_put(&t->hub_stage, TO_IO_STOP, NULL, 0, NULL, 0);
            (void)ioq_push(&t->to_io, &t->hub_stage, 0);
            uv_async_send(&t->wake);
            uv_thread_join(&t->tid);
            t->running = false;
        } else {
            /* Never started: its loop closes its own handles here. */
            io_stop(t);
            uv_run(&t->loop, UV_RUN_DEFAULT);
        }
        uv_close((uv_handle_t *)&t->hub_wake, NULL);
    }
}

void iopool_free(struct hub *hub)
{
    struct io_pool *pool = hub->io;

    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->n; i++) {
        struct io_thread *t = pool->threads[i];

        uv_loop_close(&t->loop);
        ioq_free(&t->to_io);
        ioq_free(&t->to_hub);
        vigil_buf_release(&t->io_stage);
        vigil_buf_release(&t->io_work);
        vigil_buf_release(&t->hub_stage);
        vigil_buf_release(&t->hub_work);
        vigil_free(t);
    }
    vigil_free(pool->threads);
    vigil_free(pool);
    hub->io = NULL;
}

bool iopool_adopt(struct conn *c)
{
    struct io_pool *pool = c->hub->io;
    struct io_thread *t;
    struct io_conn *ic;

    if (pool == NULL || pool->stopped || c->fd < 0)
        return false;
    ic = vigil_calloc(1, sizeof *ic);
    if (ic == NULL)
        return false;
    /* The socket moves to the thread, which closes it. */
    t = pool->threads[pool->next];
    if (hub_stage(t, TO_IO_ADOPT, ic, (uint64_t)c->fd, NULL, 0) != VIGIL_OK) {
        vigil_free(ic);
        return false;
    }
    c->fd = -1;
    pool->next = (pool->next + 1) % pool->n;
    ic->t = t;
    ic->conn = c;
    ic->max_packet = c->hub->cfg.limits.max_packet_size;
    vigil_buf_init(&ic->in, (size_t)ic->max_packet + 5);
    vigil_buf_init(&ic->out, IO_OUT_LIMIT);
    vigil_buf_init(&ic->busy, IO_OUT_LIMIT);
    c->io = ic;
    t->n_conns++;
    pool->live++;
    log_debug("conn %llu %s: on I/O thread %u", (unsigned long long)c->id, c->peer, t->index);
    return true;
}

vigil_err iopool_write(struct conn *c, const uint8_t *data, size_t len)
{
    return hub_stage(c->io->t, TO_IO_DATA, c->io, 0, data, len);
}

void iopool_resume(struct conn *c)
{
    if (hub_stage(c->io->t, TO_IO_RESUME, c->io, 0, NULL, 0) != VIGIL_OK)
        log_error("conn %llu: I/O thread queue full; reading stays paused",
                  (unsigned long long)c->id);
}

void iopool_close(struct conn *c)
{
    /* NOTE: the thread queue's limit is 1 GiB, so a failing CLOSE record
     * would mean memory exhaustion; the socket then stays open until exit. */
    if (hub_stage(c->io->t, TO_IO_CLOSE, c->io, 0, NULL, 0) != VIGIL_OK)
        log_error("conn %llu: I/O thread queue full; the socket is not closed",
                  (unsigned long long)c->id);
}

void iopool_push(struct hub *hub)
{
    struct io_pool *pool = hub->io;

    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->n; i++) {
        struct io_thread *t = pool->threads[i];

        if (t->hub_stage.len == 0 || !t->running)
            continue;
        if (ioq_push(&t->to_io, &t->hub_stage, 0) != 0)
            uv_async_send(&t->wake);
    }
}

size_t iopool_threads(const struct hub *hub)
{
    return hub->io != NULL ? hub->io->n : 0;
}

uint64_t iopool_thread_conns(const struct hub *hub, size_t i)
{
    return hub->io != NULL && i < hub->io->n ? hub->io->threads[i]->n_conns : 0;
}
