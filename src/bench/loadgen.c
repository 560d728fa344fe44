/* The load generator's controlling side: builds the connections, hands
 * commands to the loop threads and turns their counters into a step result. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bench/lg_internal.h"
#include "bench/procstat.h"
#include "core/alloc.h"
#include "core/log.h"

#define LG_POLL_NS 2000000       /* controlling thread's polling period */
#define LG_TAIL_NS 100000000     /* publishing goes on this long after the window */
#define LG_START_DELAY_NS 20000000

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static uint64_t sum_shared(struct lg *lg, size_t offset)
{
    uint64_t total = 0;

    for (unsigned i = 0; i < lg->opt.threads; i++)
        total += atomic_load((atomic_uint_fast64_t *)((char *)&lg->threads[i].sh + offset));
    return total;
}

#define SUM(lg, field) sum_shared((lg), offsetof(struct lg_shared, field))

/* Publishes a command and waits until every thread has applied it. */
static void send_command(struct lg *lg, const struct lg_cmd *cmd)
{
    uint64_t gen = atomic_load(&lg->gen) + 1;
    uint64_t one = 1;

    lg->cmd = *cmd;
    atomic_store_explicit(&lg->gen, gen, memory_order_release);
    for (unsigned i = 0; i < lg->opt.threads; i++)
        if (write(lg->threads[i].wake_fd, &one, sizeof one) < 0)
            log_debug("bench: eventfd write failed: %s", strerror(errno));
    for (unsigned i = 0; i < lg->opt.threads; i++)
        while (atomic_load_explicit(&lg->threads[i].sh.applied, memory_order_acquire) != gen)
            sleep_until(bench_now_ns() + LG_POLL_NS / 4);
}

static vigil_err conn_topics(struct lg *lg, struct lg_conn *c)
{
    const struct lg_workload *wl = &lg->wl;
    char buf[256];
    unsigned n = 1;

    if (c->role == LG_IDLE)
        return VIGIL_OK;
    c->mixed_topics = c->role == LG_PUB && wl->msg_qos != NULL;
    if (c->mixed_topics)
        n = 3;
    for (unsigned q = 0; q < n; q++) {
        if (c->role == LG_PUB)
            wl->pub_topic(wl->ctx, c->index, c->mixed_topics ? (uint8_t)q : wl->pub_qos, buf,
                          sizeof buf);
        else
            wl->sub_filter(wl->ctx, c->index, 0, buf, sizeof buf);
        c->topics[q] = vigil_strdup(buf);
        if (c->topics[q] == NULL)
            return VIGIL_ERR_NOMEM;
        c->topic_len[q] = (uint16_t)strlen(buf);
    }
    return VIGIL_OK;
}

static vigil_err build_conns(struct lg *lg)
{
    const struct lg_workload *wl = &lg->wl;
    vigil_err rc;

    lg->n_conns = (size_t)wl->n_pub + wl->n_sub + wl->n_idle;
    lg->conns = vigil_calloc(lg->n_conns ? lg->n_conns : 1, sizeof *lg->conns);
    if (lg->conns == NULL)
        return VIGIL_ERR_NOMEM;
    for (size_t i = 0; i < lg->n_conns; i++) {
        struct lg_conn *c = &lg->conns[i];

        c->fd = -1;
        c->global = (uint32_t)i;
        c->role = i < wl->n_pub ? LG_PUB : i < (size_t)wl->n_pub + wl->n_sub ? LG_SUB : LG_IDLE;
        c->index = (uint32_t)(c->role == LG_PUB   ? i
                              : c->role == LG_SUB ? i - wl->n_pub
                                                  : i - wl->n_pub - wl->n_sub);
        vigil_buf_init(&c->tx, lg->opt.tx_limit);
        vigil_buf_init(&c->partial, LG_PACKET_MAX);
        rc = conn_topics(lg, c);
        if (rc != VIGIL_OK)
            return rc;
    }
    return VIGIL_OK;
}

static vigil_err thread_init(struct lg *lg, struct lg_thread *t, unsigned id)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    size_t slots = lg->n_conns / lg->opt.threads + 1;

    t->lg = lg;
    t->id = id;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->conns = vigil_calloc(slots, sizeof *t->conns);
    t->pubs = vigil_calloc(slots, sizeof *t->pubs);
    t->dirty = vigil_calloc(slots, sizeof *t->dirty);
    t->rbuf = vigil_malloc(LG_RBUF_SIZE);
    t->payload = vigil_malloc(LG_PAYLOAD_MAX);
    if (t->ep < 0 || t->wake_fd < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wake_fd, &ev) != 0)
        return VIGIL_ERR_IO;
    if (t->conns == NULL || t->pubs == NULL || t->dirty == NULL || t->rbuf == NULL ||
        t->payload == NULL)
        return VIGIL_ERR_NOMEM;
    memset(t->payload, 'x', LG_PAYLOAD_MAX);
    bench_hist_reset(&t->hist);
    for (size_t i = id; i < lg->n_conns; i += lg->opt.threads) {
        t->conns[t->n_conns++] = &lg->conns[i];
        if (lg->conns[i].role == LG_PUB)
            t->pubs[t->n_pubs++] = &lg->conns[i];
    }
    /* Nothing connects before lg_connect(). */
    t->connect_cursor = t->n_conns;
    return VIGIL_OK;
}

static bool options_valid(const struct lg_options *opt, const struct lg_workload *wl)
{
    if (opt->threads < 1 || opt->threads > LG_MAX_THREADS || opt->port == 0)
        return false;
    if (wl->payload < LG_PAYLOAD_MIN || wl->payload > LG_PAYLOAD_MAX)
        return false;
    if (wl->pub_qos > 2 || wl->sub_qos > 2 || opt->max_inflight == 0 || opt->tx_limit < 4096)
        return false;
    return (wl->n_pub == 0 || wl->pub_topic != NULL) && (wl->n_sub == 0 || wl->sub_filter != NULL);
}

vigil_err lg_create(const struct lg_options *opt, const struct lg_workload *wl, struct lg **out)
{
    struct lg *lg;
    vigil_err rc;

    *out = NULL;
    if (!options_valid(opt, wl))
        return VIGIL_ERR_INVALID;
    lg = vigil_calloc(1, sizeof *lg);
    if (lg == NULL)
        return VIGIL_ERR_NOMEM;
    lg->opt = *opt;
    lg->wl = *wl;
    if (lg->opt.connect_window == 0)
        lg->opt.connect_window = 64;
    for (unsigned i = 0; i < LG_MAX_THREADS; i++)
        lg->threads[i].ep = lg->threads[i].wake_fd = -1;
    rc = build_conns(lg);
    for (unsigned i = 0; rc == VIGIL_OK && i < opt->threads; i++)
        rc = thread_init(lg, &lg->threads[i], i);
    for (unsigned i = 0; rc == VIGIL_OK && i < opt->threads; i++) {
        if (pthread_create(&lg->threads[i].thread, NULL, lg_thread_main, &lg->threads[i]) != 0)
            rc = VIGIL_ERR_IO;
        else
            lg->threads[i].started = true;
    }
    if (rc != VIGIL_OK) {
        lg_destroy(lg);
        return rc;
    }
    *out = lg;
    return VIGIL_OK;
}

uint64_t lg_ready(struct lg *lg)
{
    return SUM(lg, ready);
}

static void first_error(struct lg *lg, char *err, size_t errcap)
{
    for (unsigned i = 0; i < lg->opt.threads; i++) {
        if (lg->threads[i].last_error[0] != '\0') {
            snprintf(err, errcap, "%s", lg->threads[i].last_error);
            return;
        }
    }
    snprintf(err, errcap, "unknown error");
}

vigil_err lg_connect(struct lg *lg, uint32_t timeout_ms, char *err, size_t errcap)
{
    struct lg_cmd cmd = {.kind = LG_CMD_CONNECT};
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    char reason[128];

    send_command(lg, &cmd);
    while (SUM(lg, ready) < lg->n_conns) {
        if (SUM(lg, failed) > 0) {
            first_error(lg, reason, sizeof reason);
            snprintf(err, errcap, "%llu of %zu connections failed: %s",
                     (unsigned long long)SUM(lg, failed), lg->n_conns, reason);
            return VIGIL_ERR_IO;
        }
        if (bench_now_ns() > deadline) {
            snprintf(err, errcap, "only %llu of %zu connections ready after %u ms",
                     (unsigned long long)SUM(lg, ready), lg->n_conns, timeout_ms);
            return VIGIL_ERR_IO;
        }
        sleep_until(bench_now_ns() + LG_POLL_NS);
    }
    return VIGIL_OK;
}

static bool all_schedules_done(struct lg *lg)
{
    for (unsigned i = 0; i < lg->opt.threads; i++)
        if (!atomic_load(&lg->threads[i].sh.schedule_done))
            return false;
    return true;
}

/* Waits until every window message is delivered and every QoS 1/2 exchange
 * completed, or until the deadline. */
static void drain(struct lg *lg, uint64_t deadline)
{
    while (bench_now_ns() < deadline) {
        if (all_schedules_done(lg) &&
            SUM(lg, received) >= SUM(lg, sent) * lg->wl.fanout && SUM(lg, outstanding) == 0)
            return;
        sleep_until(bench_now_ns() + LG_POLL_NS);
    }
}

static void sample_cpu(pid_t pid, uint64_t *cpu_ns, uint64_t *sys_ns)
{
    struct bench_proc_sample s;

    if (bench_proc_read(pid, &s) != VIGIL_OK)
        s.cpu_ns = s.sys_ns = 0;
    *cpu_ns = s.cpu_ns;
    *sys_ns = s.sys_ns;
}

static void collect(struct lg *lg, struct lg_result *out)
{
    out->sent = SUM(lg, sent);
    out->gen_dropped = SUM(lg, dropped);
    out->expected = out->sent * lg->wl.fanout;
    out->received = SUM(lg, received);
    out->conn_lost = SUM(lg, lost);
    bench_hist_reset(&out->hist);
    for (unsigned i = 0; i < lg->opt.threads; i++)
        bench_hist_merge(&out->hist, &lg->threads[i].hist);
}

vigil_err lg_run_step(struct lg *lg, const struct lg_step *step, struct lg_result *out)
{
    struct lg_cmd cmd = {.kind = LG_CMD_PUBLISH, .rate = step->rate};
    struct bench_system_sample s0 = {0}, s1 = {0};
    uint64_t b0 = 0, b1 = 0, bs0 = 0, bs1 = 0, g0, g1, gs;

    if (step->rate <= 0 || step->measure_ms == 0)
        return VIGIL_ERR_INVALID;
    cmd.start_ns = bench_now_ns() + LG_START_DELAY_NS;
    cmd.from_ns = cmd.start_ns + (uint64_t)step->warmup_ms * 1000000u;
    cmd.to_ns = cmd.from_ns + (uint64_t)step->measure_ms * 1000000u;
    cmd.stop_ns = cmd.to_ns + LG_TAIL_NS;
    send_command(lg, &cmd);

    sleep_until(cmd.from_ns);
    if (step->broker_pid > 0)
        sample_cpu(step->broker_pid, &b0, &bs0);
    sample_cpu(getpid(), &g0, &gs);
    bench_system_read(&s0);
    sleep_until(cmd.to_ns);
    if (step->broker_pid > 0)
        sample_cpu(step->broker_pid, &b1, &bs1);
    sample_cpu(getpid(), &g1, &gs);
    bench_system_read(&s1);
    /* A coalescing generator sends the last publishes up to a period late. */
    drain(lg, cmd.stop_ns + (uint64_t)step->drain_ms * 1000000u +
                  (uint64_t)lg->opt.coalesce_us * 1000u);

    cmd = (struct lg_cmd){.kind = LG_CMD_QUIET};
    send_command(lg, &cmd);
    memset(out, 0, sizeof *out);
    out->rate = step->rate;
    out->measure_s = step->measure_ms / 1000.0;
    out->broker_cpu_ns = b1 > b0 ? b1 - b0 : 0;
    out->broker_sys_ns = bs1 > bs0 ? bs1 - bs0 : 0;
    out->gen_cpu_ns = g1 > g0 ? g1 - g0 : 0;
    out->system_task_ns = s1.task_ns - s0.task_ns;
    out->system_irq_ns = s1.irq_ns - s0.irq_ns;
    out->system_steal_ns = s1.steal_ns - s0.steal_ns;
    collect(lg, out);
    return VIGIL_OK;
}

void lg_disconnect(struct lg *lg)
{
    struct lg_cmd cmd = {.kind = LG_CMD_CLOSE};

    send_command(lg, &cmd);
}

static void free_conn(struct lg_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    vigil_free(c->topics[0]);
    if (c->mixed_topics) {
        vigil_free(c->topics[1]);
        vigil_free(c->topics[2]);
    }
    vigil_buf_release(&c->tx);
    vigil_buf_release(&c->partial);
    vigil_free(c->backlog);
}

void lg_destroy(struct lg *lg)
{
    uint64_t one = 1;

    if (lg == NULL)
        return;
    atomic_store(&lg->quit, true);
    for (unsigned i = 0; i < LG_MAX_THREADS; i++) {
        struct lg_thread *t = &lg->threads[i];

        if (t->started) {
            if (write(t->wake_fd, &one, sizeof one) < 0)
                log_debug("bench: eventfd write failed: %s", strerror(errno));
            pthread_join(t->thread, NULL);
        }
        if (t->ep >= 0)
            close(t->ep);
        if (t->wake_fd >= 0)
            close(t->wake_fd);
        vigil_free(t->conns);
        vigil_free(t->pubs);
        vigil_free(t->dirty);
        vigil_free(t->rbuf);
        vigil_free(t->payload);
    }
    for (size_t i = 0; lg->conns != NULL && i < lg->n_conns; i++)
        free_conn(&lg->conns[i]);
    vigil_free(lg->conns);
    vigil_free(lg);
}
