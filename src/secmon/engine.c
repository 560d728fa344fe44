/* The security engine: configuration, event dispatch to the rule groups,
 * time advance and counters. */
#include "secmon/engine.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>

#include "core/alloc.h"
#include "core/log.h"
#include "secmon/engine_internal.h"

/* Each default and its reason is listed in docs/security-engine.md. */
void secmon_config_defaults(struct secmon_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->learning_s = 300;
    cfg->auth_fail_burst = 5;
    cfg->auth_fail_window_s = 60;
    cfg->churn_connects = 60;
    cfg->churn_window_s = 60;
    cfg->identities_per_source = 20;
    cfg->slow_keepalive_s = 900;
    cfg->slow_conns = 10;
    cfg->flood_msgs_per_s = 100;
    cfg->qos_flood_msgs_per_s = 50;
    cfg->malformed_burst = 10;
    cfg->malformed_window_s = 60;
    cfg->silence_factor = 10;
    cfg->baseline_z = 4.0;
    cfg->vital_max_msgs_per_s = 50;
    cfg->alert_quiet_s = 60;
    cfg->max_tracked = 10000;
    cfg->monitor_prefixes = "station,monitor-station,central";
    cfg->passive = false;
}

/* Replaces zero thresholds, which would fire on every event, by defaults. */
static void config_sanitize(struct secmon_config *c)
{
    struct secmon_config d;

    secmon_config_defaults(&d);
#define KEEP_OR_DEFAULT(field) \
    if (c->field == 0)         \
        c->field = d.field;
    KEEP_OR_DEFAULT(auth_fail_burst)
    KEEP_OR_DEFAULT(auth_fail_window_s)
    KEEP_OR_DEFAULT(churn_connects)
    KEEP_OR_DEFAULT(churn_window_s)
    KEEP_OR_DEFAULT(identities_per_source)
    KEEP_OR_DEFAULT(slow_keepalive_s)
    KEEP_OR_DEFAULT(slow_conns)
    KEEP_OR_DEFAULT(flood_msgs_per_s)
    KEEP_OR_DEFAULT(qos_flood_msgs_per_s)
    KEEP_OR_DEFAULT(malformed_burst)
    KEEP_OR_DEFAULT(malformed_window_s)
    KEEP_OR_DEFAULT(silence_factor)
    KEEP_OR_DEFAULT(vital_max_msgs_per_s)
    KEEP_OR_DEFAULT(alert_quiet_s)
    KEEP_OR_DEFAULT(max_tracked)
#undef KEEP_OR_DEFAULT
    if (!(c->baseline_z > 0))
        c->baseline_z = d.baseline_z;
    if (c->monitor_prefixes == NULL)
        c->monitor_prefixes = "";
    /* The distinct-identity set has room for ENGINE_IDENTS_MAX entries. */
    if (c->identities_per_source > ENGINE_IDENTS_MAX)
        c->identities_per_source = ENGINE_IDENTS_MAX;
}

static void device_release(struct engine_node *n)
{
    vigil_free(((struct engine_device *)n)->base);
}

static void conn_evicted(struct secmon_engine *e, struct engine_node *n)
{
    struct engine_conn *c = (struct engine_conn *)n;
    struct engine_source *s;

    if (!c->slow)
        return;
    s = engine_table_get(&e->sources, c->source, strlen(c->source));
    if (s != NULL && s->slow_open > 0)
        s->slow_open--;
}

vigil_err secmon_engine_new(const struct secmon_config *cfg, secmon_alert_fn fn, void *ctx,
                            struct secmon_engine **out)
{
    struct secmon_engine *e = vigil_calloc(1, sizeof *e);
    size_t cap;

    *out = NULL;
    if (e == NULL)
        return VIGIL_ERR_NOMEM;
    if (RAND_bytes(e->peer_seed, sizeof e->peer_seed) != 1) {
        log_error("security engine: RAND_bytes failed for the seed of address hashes");
        vigil_free(e);
        return VIGIL_ERR_IO;
    }
    if (cfg != NULL)
        e->cfg = *cfg;
    else
        secmon_config_defaults(&e->cfg);
    config_sanitize(&e->cfg);
    e->fn = fn;
    e->ctx = ctx;
    cap = e->cfg.max_tracked;
    engine_table_init(&e->devices, cap, sizeof(struct engine_device), NULL);
    e->devices.release = device_release;
    engine_table_init(&e->types, ENGINE_TYPES_MAX, sizeof(struct engine_type), NULL);
    engine_table_init(&e->sources, cap, sizeof(struct engine_source), NULL);
    engine_table_init(&e->idents, cap, sizeof(struct engine_ident), NULL);
    engine_table_init(&e->conns, cap, sizeof(struct engine_conn), conn_evicted);
    engine_table_init(&e->alerts, ENGINE_ALERTS_MAX, sizeof(struct engine_alert), engine_alert_evicted);
    *out = e;
    return VIGIL_OK;
}

void secmon_engine_free(struct secmon_engine *e)
{
    if (e == NULL)
        return;
    engine_table_free(&e->devices);
    engine_table_free(&e->types);
    engine_table_free(&e->sources);
    engine_table_free(&e->idents);
    engine_table_free(&e->conns);
    engine_table_free(&e->alerts);
    vigil_free(e);
}

vigil_err secmon_engine_set_profile(struct secmon_engine *e, const char *type,
                                    const struct secmon_config *cfg)
{
    size_t len = strnlen(type, SECMON_DEVICE_TYPE_MAX);
    struct engine_profile *p = NULL;

    if (len == 0 || len == SECMON_DEVICE_TYPE_MAX)
        return VIGIL_ERR_INVALID;
    for (size_t i = 0; i < e->n_profiles && p == NULL; i++)
        if (strcmp(e->profiles[i].type, type) == 0)
            p = &e->profiles[i];
    if (p == NULL) {
        if (e->n_profiles == SECMON_PROFILES_MAX)
            return VIGIL_ERR_LIMIT;
        p = &e->profiles[e->n_profiles++];
        memcpy(p->type, type, len + 1);
    }
    p->cfg = *cfg;
    config_sanitize(&p->cfg);
    e->profile_generation++;
    return VIGIL_OK;
}

/* Profiles live in a fixed array, so a resolved pointer stays valid. A
 * device resolves again when its event names another type or when a
 * profile was set since. */
const struct secmon_config *engine_device_config(struct secmon_engine *e, struct engine_device *d,
                                                 const struct vigil_event *ev)
{
    struct engine_baseline *b = d->base;

    if (ev == NULL)
        return b->cfg != NULL ? b->cfg : &e->cfg;
    if (b->cfg != NULL && b->cfg_generation == e->profile_generation &&
        strncmp(b->device_type, ev->device_type, sizeof b->device_type) == 0)
        return b->cfg;
    b->cfg = &e->cfg;
    b->cfg_generation = e->profile_generation;
    vigil_event_set(b->device_type, sizeof b->device_type, ev->device_type,
                    strnlen(ev->device_type, sizeof ev->device_type));
    for (size_t i = 0; i < e->n_profiles && b->device_type[0] != '\0'; i++)
        if (strcmp(e->profiles[i].type, b->device_type) == 0)
            b->cfg = &e->profiles[i].cfg;
    return b->cfg;
}

/* Event time only moves forward, so a reordered event cannot reopen the
 * past or shrink a window. */
static void advance(struct secmon_engine *e, int64_t ts_us)
{
    if (ts_us > e->now_us)
        e->now_us = ts_us;
}

void secmon_engine_feed(struct secmon_engine *e, const struct vigil_event *ev)
{
    char src[64];

    advance(e, ev->ts_us);
    e->events++;
    engine_peer_address(ev->peer, src, sizeof src);
    switch (ev->type) {
    case VIGIL_EV_SUBSCRIBE:
    case VIGIL_EV_UNSUBSCRIBE:
    case VIGIL_EV_ACL_DENY:
        engine_rules_topic(e, ev, src);
        break;
    case VIGIL_EV_PUBLISH:
        engine_rules_topic(e, ev, src);
        engine_rules_publish(e, ev, src);
        break;
    default:
        engine_rules_connection(e, ev, src);
        break;
    }
}

/* Silence is judged in seconds, so the pass over every tracked device runs
 * at most once a second however often the sink delivers batches. */
#define ENGINE_SILENCE_PERIOD_US 1000000

void secmon_engine_tick(struct secmon_engine *e, int64_t now_us)
{
    advance(e, now_us);
    if (now_us - e->silence_checked_us >= ENGINE_SILENCE_PERIOD_US || now_us < e->silence_checked_us) {
        e->silence_checked_us = now_us;
        engine_silence_tick(e);
    }
    engine_alerts_tick(e);
}

void secmon_engine_dropped(struct secmon_engine *e, uint64_t n, int64_t now_us)
{
    struct engine_finding f;

    if (n == 0)
        return;
    advance(e, now_us);
    e->dropped += n;
    engine_finding_init(&f, SECMON_RULE_EVENTS_DROPPED, SECMON_SEV_MEDIUM, "", "", "engine");
    f.count = n;
    f.deviation = (double)n;
    snprintf(f.observation, sizeof f.observation,
             "the event queue dropped %" PRIu64 " events (%" PRIu64 " in total)", n, e->dropped);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: every event reaches the engine; a dropped event is a monitoring blind spot");
    snprintf(f.evidence, sizeof f.evidence, "%" PRIu64 " events dropped by the engine queue", n);
    engine_raise(e, NULL, &f);
    log_warn("security engine: %" PRIu64 " events dropped, %" PRIu64 " in total", n, e->dropped);
}

uint64_t secmon_engine_events(const struct secmon_engine *e)
{
    return e->events;
}

uint64_t secmon_engine_alerts(const struct secmon_engine *e)
{
    return e->alerts_opened;
}

size_t secmon_engine_open_alerts(const struct secmon_engine *e)
{
    return e->alerts.count;
}
