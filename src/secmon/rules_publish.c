/* Publish rules: publishers that never authenticated, message and QoS
 * floods, impossible metric rates and values outside physiological range. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"
#include "secmon/engine_internal.h"
#include "secmon/stats.h"
#include "secmon/value.h"

#define US_PER_S INT64_C(1000000)

/* A publish on a connection whose start the engine saw but which never
 * authenticated. Connections that began before a capture started are not
 * flagged, because their CONNECT was never seen. */
static void check_unauthenticated(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    char key[24];
    size_t n = engine_conn_key(key, ev->conn_id);
    struct engine_conn *c = engine_table_get(&e->conns, key, n);
    const char *id = engine_event_identity(ev);
    struct engine_finding f;

    if (c == NULL || !c->started || c->authenticated || ev->device[0] != '\0')
        return;
    engine_finding_init(&f, SECMON_RULE_UNKNOWN_DEVICE, SECMON_SEV_HIGH, id, src, id[0] ? id : src);
    f.deviation = 1;
    snprintf(f.observation, sizeof f.observation,
             "publish on '%s' from %s on a connection that never authenticated", ev->topic, src);
    snprintf(f.expectation, sizeof f.expectation, "policy: only authenticated clients publish");
    engine_raise(e, ev, &f);
}

/* Raises a flood when the sliding 1-s count of the subject, or its damped
 * 10-s rate, is above the threshold. Every publish while it stays above
 * joins the alert. what qualifies "publishes" in the texts: "" or a word
 * with a trailing space. */
static void check_flood(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                        struct engine_window *w, const char *rule, uint32_t threshold, double damped,
                        const char *subject, const char *what)
{
    double n = engine_window_add(w, e->now_us, US_PER_S);
    double rate = n > damped ? n : damped;
    struct engine_finding f;

    if (rate <= threshold)
        return;
    /* A flood fires on each of its events; the alert keeps the texts of
     * its largest deviation, so only a new largest one is formatted. */
    if (engine_raise_repeat(e, ev, rule, subject, SECMON_SEV_HIGH, rate / threshold))
        return;
    engine_finding_init(&f, rule, SECMON_SEV_HIGH, engine_event_identity(ev), src, subject);
    f.deviation = rate / threshold;
    f.open_count = (uint64_t)(n + 0.5);
    f.first_event_us = w->first_us;
    snprintf(f.observation, sizeof f.observation,
             "%.0f %spublishes by '%s' in the last second (damped 10-s rate %.1f/s)", n, what, subject,
             damped);
    snprintf(f.expectation, sizeof f.expectation, "policy: at most %" PRIu32 " %spublishes per second",
             threshold, what);
    engine_raise(e, ev, &f);
}

static void check_floods(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                         struct engine_device *d)
{
    const struct secmon_config *c = d != NULL ? engine_device_config(e, d, ev) : &e->cfg;
    struct engine_source *s = NULL;
    struct engine_window *pub, *qos;
    const char *subject;
    double damped = 0;

    if (d != NULL) {
        pub = &d->base->pub_sec;
        qos = &d->base->qos_sec;
        subject = engine_node_key(&d->node);
        damped = secmon_damped_rate(&d->base->count.win[SECMON_WIN_SHORT],
                                    secmon_half_life_s[SECMON_WIN_SHORT], e->now_us);
    } else {
        s = engine_table_touch(e, &e->sources, src, strlen(src), NULL);
        if (s == NULL)
            return;
        pub = &s->pub_sec;
        qos = &s->qos_sec;
        subject = src;
    }
    check_flood(e, ev, src, pub, SECMON_RULE_FLOOD, c->flood_msgs_per_s, damped, subject, "");
    if (ev->qos > 0)
        check_flood(e, ev, src, qos, SECMON_RULE_QOS_FLOOD, c->qos_flood_msgs_per_s, 0, subject, "QoS 1/2 ");
}

/* Clinical value of a measurement that a producer may have sent in another
 * unit: SpO2 as a ratio, blood pressure in pascals. */
static double normalise_value(const char *metric, double v)
{
    if (strcmp(metric, "spo2") == 0 && v >= 0 && v <= 1.0)
        return v * 100.0;
    if (strstr(metric, "bp_") != NULL && v > 1000.0)
        return v / 133.322387415;
    return v;
}

static void check_range(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                        const char *id)
{
    const char *metric = secmon_metric_canonical(ev->metric, strnlen(ev->metric, sizeof ev->metric));
    const char *unit = "";
    double lo, hi, v, dev;
    char subject[ENGINE_KEY_MAX];
    struct engine_finding f;

    if (!ev->has_value || metric == NULL || !secmon_metric_range(metric, &lo, &hi, &unit))
        return;
    v = normalise_value(metric, ev->value);
    if (v >= lo && v <= hi)
        return;
    dev = v < lo ? lo - v : v - hi;
    snprintf(subject, sizeof subject, "%s/%s", id[0] ? id : src, metric);
    engine_finding_init(&f, SECMON_RULE_PHYSIO_RANGE, SECMON_SEV_HIGH, id, src, subject);
    f.deviation = dev / (hi - lo);
    /* The value itself is a vital sign: only its side of the range is
     * written, never the number. */
    snprintf(f.observation, sizeof f.observation, "%s from '%s' %s the physiological range", metric, id,
             v < lo ? "below" : "above");
    snprintf(f.expectation, sizeof f.expectation, "policy: %s within %g..%g %s", metric, lo, hi, unit);
    engine_raise(e, ev, &f);
}

/* Remembers the topic of a device, returning its slot or -1 when the
 * bounded set is full. */
static int device_topic_slot(struct engine_baseline *b, const char *topic, bool *is_new)
{
    uint64_t h = vigil_hash_bytes(topic, strlen(topic));

    *is_new = false;
    for (int i = 0; i < b->n_topics; i++)
        if (b->topic_hash[i] == h)
            return i;
    if (b->n_topics >= ENGINE_TOPICS_MAX) {
        b->topics_full = true;
        return -1;
    }
    *is_new = true;
    b->topic_hash[b->n_topics] = h;
    return b->n_topics++;
}

static void check_metric_rate(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                              struct engine_device *d, int slot)
{
    const struct secmon_config *c = engine_device_config(e, d, ev);
    const char *metric;
    size_t start = strlen(ev->topic);
    struct engine_finding f;
    char subject[ENGINE_KEY_MAX];
    double n;

    while (start > 0 && ev->topic[start - 1] != '/')
        start--;
    metric = ev->has_value ? ev->metric : secmon_metric_canonical(ev->topic + start, strlen(ev->topic + start));
    if (slot < 0 || metric == NULL || metric[0] == '\0')
        return;
    n = engine_window_add(&d->base->topic_rate[slot], e->now_us, US_PER_S);
    if (n <= c->vital_max_msgs_per_s)
        return;
    engine_key_join(subject, engine_node_key(&d->node), d->node.key_len, ev->topic);
    if (engine_raise_repeat(e, ev, SECMON_RULE_IMPOSSIBLE_RATE, subject, SECMON_SEV_HIGH,
                            n / c->vital_max_msgs_per_s))
        return;
    engine_finding_init(&f, SECMON_RULE_IMPOSSIBLE_RATE, SECMON_SEV_HIGH, engine_node_key(&d->node), src, subject);
    f.deviation = n / c->vital_max_msgs_per_s;
    f.open_count = (uint64_t)(n + 0.5);
    f.first_event_us = d->base->topic_rate[slot].first_us;
    snprintf(f.observation, sizeof f.observation, "%.0f values of %s on '%s' in the last second", n, metric,
             ev->topic);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: a vital sign is sampled at most %" PRIu32 " times per second", c->vital_max_msgs_per_s);
    engine_raise(e, ev, &f);
}

void engine_rules_publish(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const char *id = engine_event_identity(ev);
    struct engine_device *d = NULL;
    bool new_topic = false;
    int slot = -1;

    check_unauthenticated(e, ev, src);
    if (id[0] != '\0')
        d = engine_table_touch(e, &e->devices, id, strlen(id), NULL);
    /* Without memory for its baseline the device is judged like one
     * without an identity. */
    if (d != NULL && engine_device_baseline(d, src) == NULL)
        d = NULL;
    if (d != NULL) {
        slot = device_topic_slot(d->base, ev->topic, &new_topic);
        engine_baseline_publish(e, d, ev, src, slot);
        if (new_topic && d->base->learned)
            engine_baseline_new_topic(e, d, ev, src);
    }
    check_floods(e, ev, src, d);
    if (d != NULL)
        check_metric_rate(e, ev, src, d, slot);
    check_range(e, ev, src, id);
}
