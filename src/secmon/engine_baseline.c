/* Learned behaviour of each device and device type, scored after the
 * learning period: damped statistics of payload size, publish rate and
 * inter-arrival time, topic and peer sets, QoS levels and hours of
 * activity. Silence detection reads the same statistics. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/map.h"
#include "core/time.h"
#include "secmon/engine_internal.h"
#include "secmon/stats.h"

#define US_PER_S INT64_C(1000000)
#define US_PER_HOUR (INT64_C(3600) * US_PER_S)
#define SIZE_MARGIN_BYTES 64.0   /* payload sizes closer than this never alert */
#define RATE_MARGIN_PER_S 1.0    /* rates closer than this never alert */
#define TYPE_PREFIX_MAX 16

static void raise_baseline(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                           struct engine_device *d, const char *stat, double z, const char *obs,
                           const char *expect)
{
    char subject[ENGINE_KEY_MAX];
    struct engine_finding f;
    double limit_z = engine_device_config(e, d, ev)->baseline_z;
    uint8_t sev = z >= 2 * limit_z ? SECMON_SEV_MEDIUM : SECMON_SEV_LOW;

    snprintf(subject, sizeof subject, "%s|%s", engine_node_key(&d->node), stat);
    engine_finding_init(&f, SECMON_RULE_BASELINE, sev, engine_node_key(&d->node), src, subject);
    f.deviation = z;
    snprintf(f.observation, sizeof f.observation, "%s", obs);
    snprintf(f.expectation, sizeof f.expectation, "%s", expect);
    engine_raise(e, ev, &f);
}

/* Scores x against mean mu and standard deviation sd: a deviation counts
 * when it exceeds both limit_z standard deviations and margin. Returns
 * the z-score, with sd floored at floor_sd so a constant baseline gives a
 * finite number, or 0 when x is within the baseline. */
static double score(double limit_z, double x, double mu, double sd, double margin,
                    double floor_sd, bool upward_only)
{
    double dev = upward_only ? x - mu : fabs(x - mu);

    if (dev <= limit_z * sd || dev <= margin)
        return 0;
    return dev / (sd > floor_sd ? sd : floor_sd);
}

static void score_size(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                       struct engine_device *d, const struct secmon_damped *base, const char *whose)
{
    double mu = secmon_damped_mean(base);
    double sd = secmon_damped_std(base);
    double margin = mu * 0.5 > SIZE_MARGIN_BYTES ? mu * 0.5 : SIZE_MARGIN_BYTES;
    double limit_z = engine_device_config(e, d, ev)->baseline_z;
    double z = score(limit_z, ev->size, mu, sd, margin, 1.0, false);
    char obs[160], expect[160];

    if (z == 0)
        return;
    snprintf(obs, sizeof obs, "payload of %" PRIu32 " bytes on '%s'", ev->size, ev->topic);
    snprintf(expect, sizeof expect,
             "%s payload size %.1f +/- %.1f bytes (600-s half-life window); alert beyond %.1f sd and %.0f bytes",
             whose, mu, sd, limit_z, margin);
    raise_baseline(e, ev, src, d, strcmp(whose, "type") == 0 ? "type-size" : "size", z, obs, expect);
}

static void score_rate(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                       struct engine_device *d, double rate)
{
    double mu = secmon_damped_mean(&d->base->rate_short);
    double sd = secmon_damped_std(&d->base->rate_short);
    double margin = mu > RATE_MARGIN_PER_S ? mu : RATE_MARGIN_PER_S;
    double limit_z = engine_device_config(e, d, ev)->baseline_z;
    double z = score(limit_z, rate, mu, sd, margin, 0.01, true);
    char obs[160], expect[160];

    if (z == 0)
        return;
    snprintf(obs, sizeof obs, "publish rate %.2f/s over the 10-s half-life window", rate);
    snprintf(expect, sizeof expect,
             "device rate %.2f +/- %.2f/s (10-s rate, 600-s half-life baseline); alert beyond %.1f sd and %.2f/s",
             mu, sd, limit_z, margin);
    raise_baseline(e, ev, src, d, "rate", z, obs, expect);
}

/* Device type: the id up to and including its first '-' ("mon-"), with
 * the last topic level, so each kind of message ("mon-|heart_rate",
 * "mon-|alarm") has its own payload size baseline. */
static struct engine_type *type_of(struct secmon_engine *e, const char *id, const char *topic,
                                   bool create)
{
    const char *dash = strchr(id, '-');
    size_t len = dash != NULL ? (size_t)(dash - id) + 1 : 0;
    const char *last = strrchr(topic, '/');
    char key[ENGINE_KEY_MAX];
    size_t n;

    if (len < 2 || len > TYPE_PREFIX_MAX || id[len] == '\0')
        return NULL;
    last = last != NULL ? last + 1 : topic;
    if (len + 1 + strlen(last) >= sizeof key)
        return NULL;
    n = engine_key_join(key, id, len, last);
    if (!create)
        return engine_table_get(&e->types, key, n);
    return engine_table_touch(e, &e->types, key, n, NULL);
}

static bool type_learned(const struct secmon_engine *e, const struct engine_type *t)
{
    return t->publishes >= 2 * ENGINE_MIN_SAMPLES &&
           e->now_us - t->first_seen_us >= (int64_t)e->cfg.learning_s * US_PER_S;
}

static void update_type(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                        struct engine_device *d, struct engine_type *t)
{
    if (t == NULL)
        return;
    if (t->first_seen_us == 0)
        t->first_seen_us = e->now_us;
    /* A device still learning its own baseline is held to its type's. */
    if (!d->base->learned && type_learned(e, t))
        score_size(e, ev, src, d, &t->size, "type");
    secmon_damped_add(&t->size, secmon_half_life_s[SECMON_WIN_LONG], e->now_us, ev->size);
    t->qos_seen |= (uint8_t)(1u << (ev->qos & 3));
    t->publishes++;
}

/* Records src as the device's latest address and raises a finding when a
 * learned device uses an address beyond those it learned. */
static void check_peer(struct secmon_engine *e, struct engine_device *d, const struct vigil_event *ev,
                       const char *src)
{
    uint32_t h;
    bool learned = d->base != NULL && d->base->learned;
    char obs[160], expect[160];

    if (src[0] == '\0')
        return;
    if (d->base != NULL && strcmp(d->base->source, src) != 0)
        snprintf(d->base->source, sizeof d->base->source, "%s", src);
    h = engine_peer_hash(e, src);
    for (int i = 0; i < d->n_peers; i++)
        if (d->peer_hash[i] == h)
            return;
    if (learned && d->n_peers < ENGINE_PEERS_MAX) {
        snprintf(obs, sizeof obs, "'%s' connected from new address %s", engine_node_key(&d->node), src);
        snprintf(expect, sizeof expect, "the %u addresses learned for this device", d->n_peers);
        raise_baseline(e, ev, src, d, "peer", 1.0, obs, expect);
    }
    if (d->n_peers < ENGINE_PEERS_MAX)
        d->peer_hash[d->n_peers++] = h;
}

/* Hours are scored only once the device has a day of history, so every
 * hour had the chance to be seen. */
static void check_hour(struct secmon_engine *e, struct engine_device *d, const struct vigil_event *ev,
                       const char *src)
{
    int hour = (int)((e->now_us / US_PER_HOUR) % 24);
    uint32_t bit = UINT32_C(1) << hour;
    bool learned = d->base != NULL && d->base->learned;
    char obs[160], expect[160];

    if (learned && (d->hours & bit) == 0 && e->now_us - d->first_seen_us >= 24 * US_PER_HOUR) {
        snprintf(obs, sizeof obs, "'%s' active at %02d:00-%02d:59 UTC", engine_node_key(&d->node), hour, hour);
        snprintf(expect, sizeof expect, "activity only in the UTC hours seen since %s",
                 "its first day of history");
        raise_baseline(e, ev, src, d, "hour", 1.0, obs, expect);
    }
    d->hours |= bit;
}

/* A QoS level is new when neither the device nor other devices of its type
 * used it for this kind of message (alarms go at QoS 2, measurements at 0). */
static void check_qos(struct secmon_engine *e, struct engine_device *d, const struct engine_type *t,
                      const struct vigil_event *ev, const char *src)
{
    uint8_t bit = (uint8_t)(1u << (ev->qos & 3));
    bool type_uses = t != NULL && (t->qos_seen & bit) != 0;
    char obs[160], expect[160];

    if (d->base->learned && (d->base->qos_seen & bit) == 0 && !type_uses) {
        snprintf(obs, sizeof obs, "publish with QoS %u on '%s'", ev->qos, ev->topic);
        snprintf(expect, sizeof expect, "the QoS levels learned for this device (mask 0x%x)",
                 d->base->qos_seen);
        raise_baseline(e, ev, src, d, "qos", 1.0, obs, expect);
    }
    d->base->qos_seen |= bit;
}

/* A topic new to the device is still expected when other devices of its
 * type published the same kind of message (last topic level) before: an
 * alarm topic first appears at a device's first alarm. Called after
 * engine_baseline_publish() counted this publish. */
void engine_baseline_new_topic(struct secmon_engine *e, struct engine_device *d,
                               const struct vigil_event *ev, const char *src)
{
    const struct engine_type *t = type_of(e, engine_node_key(&d->node), ev->topic, false);
    char obs[160], expect[160];

    if (t != NULL && t->publishes > 1)
        return;
    snprintf(obs, sizeof obs, "first publish on '%s'", ev->topic);
    snprintf(expect, sizeof expect, "the %u topics learned for this device", d->base->n_topics - 1u);
    raise_baseline(e, ev, src, d, "topic", 1.0, obs, expect);
}

void engine_baseline_login(struct secmon_engine *e, struct engine_device *d,
                           const struct vigil_event *ev, const char *src)
{
    if (d->first_seen_us == 0)
        d->first_seen_us = e->now_us;
    check_peer(e, d, ev, src);
    check_hour(e, d, ev, src);
}

/* Scores the payload size against the topic's own baseline once the topic
 * has ENGINE_MIN_SAMPLES publishes, or against the whole device when the
 * topic set is full. A topic still learning is left to the new-topic
 * check. */
static void score_topic_size(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                             struct engine_device *d, int slot)
{
    if (slot < 0)
        score_size(e, ev, src, d, &d->base->size.win[SECMON_WIN_LONG], "device");
    else if (d->base->topic_publishes[slot] >= ENGINE_MIN_SAMPLES)
        score_size(e, ev, src, d, &d->base->topic_size[slot], "topic");
}

struct engine_baseline *engine_device_baseline(struct engine_device *d, const char *src)
{
    if (d->base != NULL)
        return d->base;
    d->base = vigil_calloc(1, sizeof *d->base);
    if (d->base == NULL)
        return NULL;
    /* Logins keep only a hash of the source address, so the string comes
     * from this publish. */
    snprintf(d->base->source, sizeof d->base->source, "%s", src);
    return d->base;
}

/* Called once engine_device_baseline() gave d its baseline. */
void engine_baseline_publish(struct secmon_engine *e, struct engine_device *d,
                             const struct vigil_event *ev, const char *src, int slot)
{
    struct engine_baseline *b = d->base;
    struct engine_type *t;
    double rate;

    if (d->first_seen_us == 0)
        d->first_seen_us = e->now_us;
    check_peer(e, d, ev, src);
    check_hour(e, d, ev, src);
    t = type_of(e, engine_node_key(&d->node), ev->topic, true);
    check_qos(e, d, t, ev, src);
    update_type(e, ev, src, d, t);
    if (b->last_pub_us != 0)
        secmon_multi_add(&b->iat, e->now_us, (double)(e->now_us - b->last_pub_us) / 1e6);
    secmon_multi_add(&b->count, e->now_us, 1.0);
    rate = secmon_damped_rate(&b->count.win[SECMON_WIN_SHORT], secmon_half_life_s[SECMON_WIN_SHORT],
                              e->now_us);
    if (b->learned) {
        score_topic_size(e, ev, src, d, slot);
        score_rate(e, ev, src, d, rate);
    }
    secmon_multi_add(&b->size, e->now_us, ev->size);
    if (slot >= 0) {
        secmon_damped_add(&b->topic_size[slot], secmon_half_life_s[SECMON_WIN_LONG], e->now_us,
                          ev->size);
        if (b->topic_publishes[slot] < UINT32_MAX)
            b->topic_publishes[slot]++;
    }
    secmon_damped_add(&b->rate_short, secmon_half_life_s[SECMON_WIN_LONG], e->now_us, rate);
    b->last_pub_us = e->now_us;
    b->publishes++;
    b->silent_reported = false;
    if (!b->learned && b->publishes >= ENGINE_MIN_SAMPLES &&
        e->now_us - d->first_seen_us >= (int64_t)engine_device_config(e, d, ev)->learning_s * US_PER_S)
        b->learned = true;
}

static void check_silent(struct secmon_engine *e, struct engine_device *d)
{
    struct engine_baseline *b = d->base;
    double interval = secmon_damped_mean(&b->iat.win[SECMON_WIN_LONG]);
    double silent_s = (double)(e->now_us - b->last_pub_us) / 1e6;
    double limit;
    char last[40];
    struct engine_finding f;

    if (interval < 1.0)
        interval = 1.0;
    limit = interval * engine_device_config(e, d, NULL)->silence_factor;
    if (silent_s <= limit)
        return;
    b->silent_reported = true;
    vigil_time_format_rfc3339(b->last_pub_us, last, sizeof last);
    engine_finding_init(&f, SECMON_RULE_SILENT, SECMON_SEV_HIGH, engine_node_key(&d->node), b->source, engine_node_key(&d->node));
    f.deviation = silent_s / interval;
    f.first_event_us = b->last_pub_us;
    snprintf(f.observation, sizeof f.observation, "no publish from '%s' for %.0f s", engine_node_key(&d->node), silent_s);
    snprintf(f.expectation, sizeof f.expectation,
             "a publish every %.1f s (600-s half-life mean); silent beyond %" PRIu32 " x that (%.0f s)",
             interval, engine_device_config(e, d, NULL)->silence_factor, limit);
    snprintf(f.evidence, sizeof f.evidence, "%s last publish by '%s' from %s", last, engine_node_key(&d->node), b->source);
    engine_raise(e, NULL, &f);
}

void engine_silence_tick(struct secmon_engine *e)
{
    for (struct engine_node *n = e->devices.head; n != NULL; n = n->next) {
        struct engine_device *d = (struct engine_device *)n;
        const struct engine_baseline *b = d->base;

        if (b != NULL && b->learned && !b->silent_reported && b->last_pub_us != 0)
            check_silent(e, d);
    }
}
