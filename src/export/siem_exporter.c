/* The SIEM exporter thread: a bounded queue from any thread to the
 * durable outboxes, and a libuv loop that drives the transports. */
#include "export/siem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "export/siem_exporter_internal.h"

/* NOTE: vigil has no version constant yet; CEF and OCSF carry this one. */
#define SIEM_PRODUCT_VERSION "0.1.0"
#define DRAIN_BATCH 64
#define TICK_MS 50

enum item_kind { ITEM_EVENT, ITEM_ALERT };

struct item {
    uint8_t kind;  /* enum item_kind */
    union {
        struct vigil_event ev;
        struct secmon_alert alert;
    } u;
};

struct siem_exporter {
    struct siem_config cfg;
    struct siem_exporter_view view;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t tick;
    uv_thread_t thread;
    char procid[16];
    struct siem_link links[SIEM_MAX_DESTINATIONS];
    struct item *drain;           /* DRAIN_BATCH items, exporter thread only */

    uv_mutex_t lock;              /* guards everything below */
    struct item *queue;           /* ring of cfg.queue_capacity items */
    size_t q_head, q_len;
    bool busy;                    /* items taken from the queue are not stored yet */
    bool closing;                 /* stop began: submit rejects */
    uint64_t submitted, queue_dropped;
    struct siem_dest_stats published[SIEM_MAX_DESTINATIONS];
};

struct siem_exporter_view *siem_exporter_view(struct siem_exporter *exp)
{
    return &exp->view;
}

void siem_exporter_publish(struct siem_link *link)
{
    struct siem_exporter *exp = link->exp;

    link->stats.pending = siem_outbox_count(link->outbox);
    uv_mutex_lock(&exp->lock);
    exp->published[link - exp->links] = link->stats;
    uv_mutex_unlock(&exp->lock);
}

/* ---- submit (any thread) ---- */

static vigil_err submit(struct siem_exporter *exp, const struct item *it, size_t size)
{
    vigil_err rc = VIGIL_OK;
    uint64_t dropped = 0;

    uv_mutex_lock(&exp->lock);
    if (exp->closing) {
        rc = VIGIL_ERR_CLOSED;
    } else if (exp->q_len == exp->cfg.queue_capacity) {
        dropped = ++exp->queue_dropped;
        rc = VIGIL_ERR_LIMIT;
    } else {
        struct item *slot = &exp->queue[(exp->q_head + exp->q_len) % exp->cfg.queue_capacity];

        memcpy(slot, it, size);
        exp->q_len++;
        exp->submitted++;
    }
    uv_mutex_unlock(&exp->lock);
    /* The first drop and then every 1000th are logged; the counter is exact. */
    if (dropped == 1 || (dropped != 0 && dropped % 1000 == 0))
        log_warn("siem: queue full (%zu items), %llu dropped so far", exp->cfg.queue_capacity,
                 (unsigned long long)dropped);
    if (rc == VIGIL_OK)
        uv_async_send(&exp->wake);
    return rc;
}

vigil_err siem_exporter_submit_event(struct siem_exporter *exp, const struct vigil_event *ev)
{
    struct item it;

    it.kind = ITEM_EVENT;
    it.u.ev = *ev;
    return submit(exp, &it, offsetof(struct item, u) + sizeof it.u.ev);
}

vigil_err siem_exporter_submit_alert(struct siem_exporter *exp, const struct secmon_alert *alert)
{
    struct item it;

    it.kind = ITEM_ALERT;
    it.u.alert = *alert;
    return submit(exp, &it, offsetof(struct item, u) + sizeof it.u.alert);
}

/* ---- queue to outboxes (exporter thread) ---- */

struct format_ctx {
    struct siem_exporter *exp;
    struct siem_link *link;
    const struct item *item;
};

static int format_item(void *arg, uint64_t seq, char *buf, size_t cap)
{
    struct format_ctx *fc = arg;
    struct siem_header h = {
        .facility = fc->link->dest.facility,
        .hostname = fc->exp->cfg.hostname,
        .procid = fc->exp->procid,
        .version = SIEM_PRODUCT_VERSION,
    };
    enum siem_format fmt = (enum siem_format)fc->link->dest.format;

    if (fc->item->kind == ITEM_EVENT)
        return siem_format_event(fmt, &h, &fc->item->u.ev, seq, buf, cap);
    return siem_format_alert(fmt, &h, &fc->item->u.alert, seq, buf, cap);
}

static void note_outbox_full(struct siem_link *link)
{
    uint64_t n = ++link->stats.outbox_dropped;

    if (link->full_logged == 0 || n - link->full_logged >= 1000) {
        log_error("siem %s: outbox full at max_rows=%llu; dropping new messages until the "
                  "receiver takes some (%llu dropped so far)", link->dest.name,
                  (unsigned long long)link->dest.max_rows, (unsigned long long)n);
        link->full_logged = n;
    }
}

static void store_items(struct siem_exporter *exp, struct siem_link *link, size_t n)
{
    vigil_err rc = siem_outbox_begin(link->outbox);
    uint64_t stored = 0;

    if (rc != VIGIL_OK) {
        link->stats.outbox_dropped += n;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct format_ctx fc = {exp, link, &exp->drain[i]};
        int64_t now = vigil_time_now_us();

        rc = siem_outbox_append(link->outbox, now, format_item, &fc, NULL);
        if (rc == VIGIL_OK) {
            stored++;
        } else if (rc == VIGIL_ERR_LIMIT) {
            note_outbox_full(link);
        } else {
            log_error("siem %s: message not stored: %s", link->dest.name, vigil_strerror(rc));
            link->stats.outbox_dropped++;
        }
    }
    if (siem_outbox_commit(link->outbox) != VIGIL_OK) {
        link->stats.outbox_dropped += stored;
        return;
    }
    link->stats.stored += stored;
}

/* Takes up to DRAIN_BATCH items from the queue; returns how many. */
static size_t take_items(struct siem_exporter *exp)
{
    size_t n = 0;

    uv_mutex_lock(&exp->lock);
    while (n < DRAIN_BATCH && exp->q_len > 0) {
        exp->drain[n++] = exp->queue[exp->q_head];
        exp->q_head = (exp->q_head + 1) % exp->cfg.queue_capacity;
        exp->q_len--;
    }
    exp->busy = n > 0;
    uv_mutex_unlock(&exp->lock);
    return n;
}

static void drain_queue(struct siem_exporter *exp)
{
    size_t n;

    while ((n = take_items(exp)) > 0) {
        for (size_t i = 0; i < exp->cfg.n_dests; i++)
            store_items(exp, &exp->links[i], n);
        for (size_t i = 0; i < exp->cfg.n_dests; i++)
            siem_exporter_publish(&exp->links[i]);
        uv_mutex_lock(&exp->lock);
        exp->busy = false;
        uv_mutex_unlock(&exp->lock);
    }
}

static void on_wake(uv_async_t *handle)
{
    struct siem_exporter *exp = handle->data;
    bool closing;

    drain_queue(exp);
    uv_mutex_lock(&exp->lock);
    closing = exp->closing;
    uv_mutex_unlock(&exp->lock);
    if (closing && !exp->view.stopping) {
        exp->view.stopping = true;
        uv_timer_stop(&exp->tick);
        uv_close((uv_handle_t *)&exp->tick, NULL);
        uv_close((uv_handle_t *)&exp->wake, NULL);
        for (size_t i = 0; i < exp->cfg.n_dests; i++)
            siem_link_close(&exp->links[i]);
        return;
    }
    for (size_t i = 0; i < exp->cfg.n_dests; i++)
        siem_link_pump(&exp->links[i]);
}

static void on_tick(uv_timer_t *timer)
{
    struct siem_exporter *exp = timer->data;
    uint64_t now = uv_now(&exp->loop);

    for (size_t i = 0; i < exp->cfg.n_dests; i++) {
        siem_link_tick(&exp->links[i], now);
        siem_link_pump(&exp->links[i]);
    }
}

static void thread_main(void *arg)
{
    struct siem_exporter *exp = arg;

    for (size_t i = 0; i < exp->cfg.n_dests; i++)
        siem_link_pump(&exp->links[i]);
    uv_run(&exp->loop, UV_RUN_DEFAULT);
}

/* ---- start and stop ---- */

static vigil_err open_links(struct siem_exporter *exp)
{
    char path[700];
    vigil_err rc;

    for (size_t i = 0; i < exp->cfg.n_dests; i++) {
        struct siem_link *link = &exp->links[i];

        link->exp = exp;
        link->dest = exp->cfg.dests[i];
        snprintf(path, sizeof path, "%s/outbox-%s.db", exp->cfg.data_dir, link->dest.name);
        rc = siem_outbox_open(path, link->dest.max_rows, &link->outbox);
        if (rc != VIGIL_OK)
            return rc;
        rc = siem_link_init(link, &exp->loop);
        if (rc != VIGIL_OK)
            return rc;
        link->stats.pending = siem_outbox_count(link->outbox);
        exp->published[i] = link->stats;
        if (link->stats.pending > 0)
            log_info("siem %s: %llu messages left from an earlier run", link->dest.name,
                     (unsigned long long)link->stats.pending);
    }
    return VIGIL_OK;
}

static vigil_err check_config(const struct siem_config *cfg)
{
    char err[256];

    if (cfg->n_dests > SIEM_MAX_DESTINATIONS || cfg->queue_capacity == 0) {
        log_error("siem: %zu destinations (at most %d) and queue capacity %zu (at least 1)",
                  cfg->n_dests, SIEM_MAX_DESTINATIONS, cfg->queue_capacity);
        return VIGIL_ERR_CONFIG;
    }
    for (size_t i = 0; i < cfg->n_dests; i++) {
        if (siem_dest_validate(&cfg->dests[i], err, sizeof err) != VIGIL_OK) {
            log_error("%s", err);
            return VIGIL_ERR_CONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->dests[i].name, cfg->dests[j].name) == 0) {
                log_error("siem: destination name '%s' is used twice", cfg->dests[i].name);
                return VIGIL_ERR_CONFIG;
            }
        }
    }
    return VIGIL_OK;
}

static vigil_err init_loop(struct siem_exporter *exp)
{
    if (uv_loop_init(&exp->loop) != 0)
        return VIGIL_ERR_IO;
    exp->view.loop = &exp->loop;
    uv_async_init(&exp->loop, &exp->wake, on_wake);
    exp->wake.data = exp;
    uv_timer_init(&exp->loop, &exp->tick);
    exp->tick.data = exp;
    uv_timer_start(&exp->tick, on_tick, TICK_MS, TICK_MS);
    return VIGIL_OK;
}

static void free_exporter(struct siem_exporter *exp)
{
    for (size_t i = 0; i < exp->cfg.n_dests; i++) {
        siem_outbox_close(exp->links[i].outbox);
        if (exp->links[i].ssl_ctx != NULL)
            SSL_CTX_free(exp->links[i].ssl_ctx);
    }
    uv_mutex_destroy(&exp->lock);
    vigil_free(exp->queue);
    vigil_free(exp->drain);
    vigil_free(exp);
}

/* Runs the loop until every handle made so far has closed. */
static void close_loop(struct siem_exporter *exp)
{
    if (!exp->view.stopping) {
        exp->view.stopping = true;
        uv_close((uv_handle_t *)&exp->tick, NULL);
        uv_close((uv_handle_t *)&exp->wake, NULL);
        for (size_t i = 0; i < exp->cfg.n_dests; i++)
            siem_link_close(&exp->links[i]);
    }
    uv_run(&exp->loop, UV_RUN_DEFAULT);
    uv_loop_close(&exp->loop);
}

vigil_err siem_exporter_start(const struct siem_config *config, struct siem_exporter **out)
{
    struct siem_exporter *exp;
    vigil_err rc;

    *out = NULL;
    rc = check_config(config);
    if (rc != VIGIL_OK)
        return rc;
    exp = vigil_calloc(1, sizeof *exp);
    if (exp == NULL)
        return VIGIL_ERR_NOMEM;
    exp->cfg = *config;
    if (exp->cfg.hostname[0] == '\0' &&
        gethostname(exp->cfg.hostname, sizeof exp->cfg.hostname - 1) != 0)
        exp->cfg.hostname[0] = '\0';
    snprintf(exp->procid, sizeof exp->procid, "%ld", (long)getpid());
    uv_mutex_init(&exp->lock);
    exp->queue = vigil_calloc(exp->cfg.queue_capacity, sizeof *exp->queue);
    exp->drain = vigil_calloc(DRAIN_BATCH, sizeof *exp->drain);
    if (exp->queue == NULL || exp->drain == NULL) {
        free_exporter(exp);
        return VIGIL_ERR_NOMEM;
    }
    rc = init_loop(exp);
    if (rc != VIGIL_OK) {
        free_exporter(exp);
        return rc;
    }
    rc = open_links(exp);
    if (rc == VIGIL_OK && uv_thread_create(&exp->thread, thread_main, exp) != 0)
        rc = VIGIL_ERR_IO;
    if (rc != VIGIL_OK) {
        close_loop(exp);
        free_exporter(exp);
        return rc;
    }
    *out = exp;
    return VIGIL_OK;
}

void siem_exporter_stats(struct siem_exporter *exp, struct siem_stats *out)
{
    memset(out, 0, sizeof *out);
    uv_mutex_lock(&exp->lock);
    out->submitted = exp->submitted;
    out->queue_dropped = exp->queue_dropped;
    out->n_dests = exp->cfg.n_dests;
    memcpy(out->dests, exp->published, sizeof out->dests);
    uv_mutex_unlock(&exp->lock);
}

static bool drained(struct siem_exporter *exp)
{
    bool done;

    uv_mutex_lock(&exp->lock);
    done = exp->q_len == 0 && !exp->busy;
    for (size_t i = 0; done && i < exp->cfg.n_dests; i++)
        done = exp->published[i].pending == 0;
    uv_mutex_unlock(&exp->lock);
    return done;
}

vigil_err siem_exporter_flush(struct siem_exporter *exp, uint32_t timeout_ms)
{
    uint64_t deadline = vigil_time_mono_ms() + timeout_ms;

    while (!drained(exp)) {
        if (vigil_time_mono_ms() >= deadline)
            return VIGIL_ERR_AGAIN;
        usleep(10 * 1000);
    }
    return VIGIL_OK;
}

void siem_exporter_stop(struct siem_exporter *exp)
{
    if (exp == NULL)
        return;
    uv_mutex_lock(&exp->lock);
    exp->closing = true;
    uv_mutex_unlock(&exp->lock);
    uv_async_send(&exp->wake);
    uv_thread_join(&exp->thread);
    uv_loop_close(&exp->loop);
    free_exporter(exp);
}
