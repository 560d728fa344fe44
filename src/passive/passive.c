/* Passive analysis: the analyser object, capture time and statistics. */
#include <string.h>

#include "core/alloc.h"
#include "passive/passive_internal.h"

#define US_PER_S 1000000

void passive_config_defaults(struct passive_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->ports[0] = 1883;
    cfg->n_ports = 1;
    cfg->max_flows = 16384;
    cfg->ooo_dir_cap = 256 * 1024;
    cfg->ooo_total_cap = 64 * 1024 * 1024;
    cfg->ooo_dir_segments = 256;
    cfg->ooo_hold_ms = 2000;
    cfg->packet_cap = 1024 * 1024;
    cfg->idle_timeout_s = 900;
    cfg->closed_linger_s = 10;
    cfg->connect_timeout_s = 10;
}

vigil_err passive_new(const struct passive_config *cfg, passive_event_fn on_event,
                      passive_tick_fn on_tick, void *ctx, struct passive **out)
{
    struct passive *p;

    *out = NULL;
    if (cfg->n_ports == 0 || cfg->n_ports > PASSIVE_MAX_PORTS || cfg->max_flows == 0 ||
        on_event == NULL)
        return VIGIL_ERR_INVALID;
    p = vigil_calloc(1, sizeof *p);
    if (p == NULL)
        return VIGIL_ERR_NOMEM;
    p->cfg = *cfg;
    p->on_event = on_event;
    p->on_tick = on_tick;
    p->ctx = ctx;
    vigil_map_init(&p->flows);
    p->pool.dir_cap = cfg->ooo_dir_cap;
    p->pool.dir_segments = cfg->ooo_dir_segments;
    p->pool.total_cap = cfg->ooo_total_cap;
    p->pool.hold_us = (int64_t)cfg->ooo_hold_ms * 1000;
    *out = p;
    return VIGIL_OK;
}

void passive_free(struct passive *p)
{
    if (p == NULL)
        return;
    flows_free_all(p);
    vigil_map_free(&p->flows);
    vigil_free(p);
}

/* Sends one tick per whole second of capture time passed. */
static void tick_to(struct passive *p, int64_t now_us)
{
    while (p->next_tick_us <= now_us) {
        if (p->on_tick != NULL)
            p->on_tick(p->ctx, p->next_tick_us);
        p->next_tick_us += US_PER_S;
    }
}

void passive_advance(struct passive *p, int64_t now_us)
{
    if (!p->started) {
        p->started = true;
        p->first_us = now_us;
        p->now_us = now_us;
        p->next_tick_us = now_us + US_PER_S;
    }
    if (now_us <= p->now_us)
        return;
    /* A jump of more than 10 s in capture time is taken in one step with
     * one tick, so a gap of hours costs no more than a second. */
    if (now_us - p->next_tick_us > 10 * US_PER_S)
        p->next_tick_us = now_us;
    /* Otherwise time advances a second at a time, so that timeouts and
     * ticks stay in order with each other. */
    while (p->now_us < now_us) {
        int64_t step = p->next_tick_us < now_us ? p->next_tick_us : now_us;

        if (step <= p->now_us)
            step = now_us;
        p->now_us = step;
        flows_expire(p);
        tick_to(p, step);
    }
}

void passive_feed_frame(struct passive *p, int link, int64_t ts_us, const uint8_t *frame,
                        size_t caplen)
{
    struct passive_segment seg;
    vigil_err rc;

    p->stats.frames++;
    passive_advance(p, ts_us);
    rc = passive_parse_frame(link, frame, caplen, &seg);
    if (rc == VIGIL_ERR_INVALID)
        p->stats.frames_invalid++;
    if (rc != VIGIL_OK)
        return;
    flows_segment(p, &seg);
}

void passive_finish(struct passive *p)
{
    flows_flush_all(p);
    if (p->on_tick != NULL && p->started)
        p->on_tick(p->ctx, p->now_us);
}

const struct passive_stats *passive_get_stats(const struct passive *p)
{
    struct passive *m = (struct passive *)p;

    m->stats.gaps = p->pool.gaps + p->stats.gaps;
    m->stats.retransmissions = p->pool.retransmissions;
    m->stats.overlaps = p->pool.overlaps;
    m->stats.ooo_bytes = p->pool.used;
    m->stats.ooo_bytes_peak = p->pool.peak;
    return &p->stats;
}

int64_t passive_first_us(const struct passive *p)
{
    return p->first_us;
}

int64_t passive_now_us(const struct passive *p)
{
    return p->now_us;
}
