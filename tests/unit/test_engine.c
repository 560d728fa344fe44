/* Tests for the security engine: each rule with a triggering and a benign
 * event sequence, aggregation, the quiet period, silence, learning and
 * determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "secmon/engine.h"

#define T0 INT64_C(1767323045000000) /* 2026-01-02T03:04:05Z */
#define SEC INT64_C(1000000)
#define MAX_SEEN 64

/* The latest state of every alert the callback reported. */
struct seen {
    struct secmon_alert alerts[MAX_SEEN];
    size_t count;
    size_t opens, updates;
};

static void on_alert(void *ctx, const struct secmon_alert *a, bool update)
{
    struct seen *s = ctx;

    update ? s->updates++ : s->opens++;
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->alerts[i].alert_id, a->alert_id) == 0) {
            s->alerts[i] = *a;
            return;
        }
    }
    if (s->count < MAX_SEEN)
        s->alerts[s->count++] = *a;
}

static size_t count_rule(const struct seen *s, const char *rule)
{
    size_t n = 0;

    for (size_t i = 0; i < s->count; i++)
        n += strcmp(s->alerts[i].rule, rule) == 0;
    return n;
}

static const struct secmon_alert *find_rule(const struct seen *s, const char *rule)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->alerts[i].rule, rule) == 0)
            return &s->alerts[i];
    return NULL;
}

struct fixture {
    struct secmon_config cfg;
    struct secmon_engine *e;
    struct seen seen;
};

static int setup(void **state)
{
    static struct fixture fx;

    memset(&fx, 0, sizeof fx);
    secmon_config_defaults(&fx.cfg);
    assert_int_equal(secmon_engine_new(&fx.cfg, on_alert, &fx.seen, &fx.e), VIGIL_OK);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    secmon_engine_free(fx->e);
    return 0;
}

/* Restarts the engine of fx with cfg. */
static void restart(struct fixture *fx)
{
    secmon_engine_free(fx->e);
    memset(&fx->seen, 0, sizeof fx->seen);
    assert_int_equal(secmon_engine_new(&fx->cfg, on_alert, &fx->seen, &fx->e), VIGIL_OK);
}

static struct vigil_event make(enum vigil_event_type type, int64_t ts, const char *peer, const char *id,
                               const char *topic)
{
    struct vigil_event ev;

    memset(&ev, 0, sizeof ev);
    ev.type = (uint8_t)type;
    ev.ts_us = ts;
    ev.conn_id = 1;
    snprintf(ev.peer, sizeof ev.peer, "%s", peer);
    snprintf(ev.client_id, sizeof ev.client_id, "%s", id);
    if (type != VIGIL_EV_AUTH_FAILURE && type != VIGIL_EV_CONNECT_ATTEMPT)
        snprintf(ev.device, sizeof ev.device, "%s", id);
    snprintf(ev.topic, sizeof ev.topic, "%s", topic != NULL ? topic : "");
    return ev;
}

static void feed(struct fixture *fx, enum vigil_event_type type, int64_t ts, const char *peer, const char *id,
                 const char *topic)
{
    struct vigil_event ev = make(type, ts, peer, id, topic);

    secmon_engine_feed(fx->e, &ev);
}

static void publish(struct fixture *fx, int64_t ts, const char *id, const char *topic, uint32_t size,
                    uint8_t qos)
{
    struct vigil_event ev = make(VIGIL_EV_PUBLISH, ts, "10.0.0.5:40000", id, topic);

    ev.size = size;
    ev.qos = qos;
    secmon_engine_feed(fx->e, &ev);
}

static void publish_value(struct fixture *fx, int64_t ts, const char *metric, double value)
{
    char topic[96];
    struct vigil_event ev;

    snprintf(topic, sizeof topic, "north/icu3/r1/mon-1/%s", metric);
    ev = make(VIGIL_EV_PUBLISH, ts, "10.0.0.5:40000", "mon-1", topic);
    ev.size = 60;
    ev.has_value = true;
    ev.value = value;
    snprintf(ev.metric, sizeof ev.metric, "%s", metric);
    secmon_engine_feed(fx->e, &ev);
}

/* A device that publishes 50 bytes every second from t0 for n seconds. */
static void steady(struct fixture *fx, const char *id, int64_t t0, int n)
{
    char topic[96];

    snprintf(topic, sizeof topic, "north/icu3/r1/%s/heart_rate", id);
    for (int i = 0; i < n; i++)
        publish(fx, t0 + i * SEC, id, topic, 50, 0);
}

static void test_defaults_documented_values(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(fx->cfg.learning_s, 300);
    assert_int_equal(fx->cfg.auth_fail_burst, 5);
    assert_true(fx->cfg.baseline_z > 3.0);
    assert_int_equal(secmon_engine_events(fx->e), 0);
}

static void test_unknown_device_login(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev = make(VIGIL_EV_AUTH_FAILURE, T0, "10.0.0.9:5000", "ghost-1", NULL);
    const struct secmon_alert *a;

    snprintf(ev.detail, sizeof ev.detail, "unknown device");
    secmon_engine_feed(fx->e, &ev);
    a = find_rule(&fx->seen, SECMON_RULE_UNKNOWN_DEVICE);
    assert_non_null(a);
    assert_string_equal(a->device, "ghost-1");
    assert_string_equal(a->source, "10.0.0.9");
    assert_int_equal(a->n_evidence, 1);
    assert_non_null(strstr(a->evidence[0], "2026-01-02T03:04:05"));
    assert_non_null(strstr(a->explanation, "ghost-1"));
    assert_non_null(strstr(a->explanation, "10.0.0.9"));
    assert_int_equal(strlen(a->alert_id), 32);
}

static void test_wrong_password_once_benign(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev = make(VIGIL_EV_AUTH_FAILURE, T0, "10.0.0.9:5000", "mon-1", NULL);

    snprintf(ev.detail, sizeof ev.detail, "wrong password");
    secmon_engine_feed(fx->e, &ev);
    assert_int_equal(fx->seen.count, 0);
}

static void test_unauthenticated_publish(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev = make(VIGIL_EV_CONNECT_ATTEMPT, T0, "10.0.0.9:5000", "", NULL);

    ev.conn_id = 7;
    secmon_engine_feed(fx->e, &ev);
    ev = make(VIGIL_EV_PUBLISH, T0 + SEC, "10.0.0.9:5000", "x", "north/icu3/r1/x/hr");
    ev.conn_id = 7;
    ev.device[0] = '\0';
    secmon_engine_feed(fx->e, &ev);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_UNKNOWN_DEVICE), 1);
}

static void test_authenticated_publish_benign(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev = make(VIGIL_EV_CONNECT_ATTEMPT, T0, "10.0.0.9:5000", "", NULL);

    ev.conn_id = 8;
    secmon_engine_feed(fx->e, &ev);
    ev = make(VIGIL_EV_AUTH_SUCCESS, T0, "10.0.0.9:5000", "mon-1", NULL);
    ev.conn_id = 8;
    ev.keep_alive = 60;
    secmon_engine_feed(fx->e, &ev);
    ev = make(VIGIL_EV_PUBLISH, T0 + SEC, "10.0.0.9:5000", "mon-1", "north/icu3/r1/mon-1/heart_rate");
    ev.conn_id = 8;
    secmon_engine_feed(fx->e, &ev);
    assert_int_equal(fx->seen.count, 0);
}

static void test_acl_deny_outside_subtree(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_ACL_DENY, T0, "10.0.0.5:1", "mon-1", "north/icu3/r2/mon-2/heart_rate");
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_TOPIC_OUTSIDE), 1);
}

static void test_passive_topic_owner(void **state)
{
    struct fixture *fx = *state;

    publish(fx, T0, "mon-1", "north/icu3/r2/mon-2/heart_rate", 50, 0);
    assert_int_equal(fx->seen.count, 0); /* the hub enforced the ACL */
    fx->cfg.passive = true;
    restart(fx);
    publish(fx, T0, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
    assert_int_equal(fx->seen.count, 0);
    publish(fx, T0, "mon-1", "north/icu3/r2/mon-2/heart_rate", 50, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_TOPIC_OUTSIDE), 1);
}

static void test_denied_subscribe_probes(void **state)
{
    struct fixture *fx = *state;
    static const char *const filters[] = {"$SYS/#", "#", "north/icu3/+/mon-1/#"};
    struct vigil_event ev;

    for (int i = 0; i < 3; i++) {
        ev = make(VIGIL_EV_ACL_DENY, T0 + i * SEC, "10.0.0.5:1", "mon-2", filters[i]);
        snprintf(ev.detail, sizeof ev.detail, "subscribe not allowed");
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_TOPIC_OUTSIDE), 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SYS_PROBE), 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_WILDCARD_PROBE), 1);

    /* A denied publish is no subscription probe. */
    ev = make(VIGIL_EV_ACL_DENY, T0 + 5 * SEC, "10.0.0.9:1", "mon-3", "north/icu3/+/x");
    snprintf(ev.detail, sizeof ev.detail, "publish not allowed");
    secmon_engine_feed(fx->e, &ev);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_WILDCARD_PROBE), 1);
}

static void test_sys_probe(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "mon-1", "$SYS/broker/clients/#");
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SYS_PROBE), 1);
    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.6:1", "mon-2", "#");
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SYS_PROBE), 2);
    publish(fx, T0, "mon-3", "$SYS/broker/uptime", 4, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SYS_PROBE), 3);
}

static void test_monitor_wildcard_benign(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "station-1", "+/+/+/+/heart_rate");
    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "mon-1", "north/icu3/r1/mon-1/cmd");
    assert_int_equal(fx->seen.count, 0);
}

static void test_wildcard_probe(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "mon-1", "north/icu3/+/+/heart_rate");
    feed(fx, VIGIL_EV_SUBSCRIBE, T0 + SEC, "10.0.0.5:1", "mon-1", "north/#");
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_WILDCARD_PROBE), 1);
    assert_int_equal(find_rule(&fx->seen, SECMON_RULE_WILDCARD_PROBE)->count, 2);
}

static void auth_fail(struct fixture *fx, int64_t ts, const char *peer, const char *id)
{
    struct vigil_event ev = make(VIGIL_EV_AUTH_FAILURE, ts, peer, id, NULL);

    snprintf(ev.detail, sizeof ev.detail, "wrong password");
    ev.reason_code = 5;
    secmon_engine_feed(fx->e, &ev);
}

static void test_brute_force_source(void **state)
{
    struct fixture *fx = *state;
    char id[16];
    const struct secmon_alert *a;

    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "mon-%d", i);
        auth_fail(fx, T0 + i * 2 * SEC, "10.0.0.66:4000", id);
    }
    a = find_rule(&fx->seen, SECMON_RULE_BRUTE_FORCE);
    assert_non_null(a);
    assert_int_equal(a->count, 5);
    assert_string_equal(a->source, "10.0.0.66");
    assert_true(a->first_event_us == T0);
    assert_true(a->first_seen_us == T0 + 8 * SEC);
}

static void test_brute_force_identity(void **state)
{
    struct fixture *fx = *state;
    char peer[32];

    for (int i = 0; i < 5; i++) {
        snprintf(peer, sizeof peer, "10.0.1.%d:4000", i);
        auth_fail(fx, T0 + i * SEC, peer, "mon-7");
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BRUTE_FORCE), 1);
    assert_string_equal(find_rule(&fx->seen, SECMON_RULE_BRUTE_FORCE)->device, "mon-7");
}

static void test_slow_failures_benign(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < 10; i++)
        auth_fail(fx, T0 + i * 61 * SEC, "10.0.0.66:4000", "mon-1");
    for (int i = 0; i < 4; i++)
        auth_fail(fx, T0 + 1000 * SEC + i * SEC, "10.0.0.67:4000", "mon-2");
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BRUTE_FORCE), 0);
}

/* Feeds one connection of peer: its connect_attempt, a login when type is
 * AUTH_SUCCESS or AUTH_FAILURE (device id for a verified login, "" for one
 * without credentials), and its disconnect when close is set. */
static void connection(struct fixture *fx, uint64_t conn_id, int64_t ts, const char *peer,
                       enum vigil_event_type type, const char *client_id, const char *device,
                       bool close)
{
    struct vigil_event ev = make(VIGIL_EV_CONNECT_ATTEMPT, ts, peer, "", NULL);

    ev.conn_id = conn_id;
    secmon_engine_feed(fx->e, &ev);
    if (type == VIGIL_EV_AUTH_SUCCESS || type == VIGIL_EV_AUTH_FAILURE) {
        ev = make(type, ts, peer, client_id, NULL);
        ev.conn_id = conn_id;
        snprintf(ev.device, sizeof ev.device, "%s", device);
        secmon_engine_feed(fx->e, &ev);
    }
    if (close) {
        ev = make(VIGIL_EV_DISCONNECT, ts, peer, client_id, NULL);
        ev.conn_id = conn_id;
        snprintf(ev.device, sizeof ev.device, "%s", device);
        secmon_engine_feed(fx->e, &ev);
    }
}

static void test_connection_churn(void **state)
{
    struct fixture *fx = *state;

    /* Sockets closed before any CONNECT. */
    for (int i = 0; i < 10; i++)
        connection(fx, 100 + (uint64_t)i, T0 + i * SEC, "10.0.0.5:1", VIGIL_EV_DISCONNECT, "", "",
                   true);
    assert_int_equal(fx->seen.count, 0);
    for (int i = 0; i < 60; i++)
        connection(fx, 200 + (uint64_t)i, T0 + 10 * SEC + i * 100000, "10.0.0.5:1",
                   VIGIL_EV_DISCONNECT, "", "", true);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_CONN_CHURN), 1);
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_CONN_CHURN)->observation,
                           "unauthenticated connections from 10.0.0.5"));
}

static void test_churn_verified_logins_benign(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    /* 50 devices behind one address, each reconnecting three times. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            snprintf(id, sizeof id, "mon-%04d", i);
            connection(fx, (uint64_t)(1000 * round + i), T0 + round * 10 * SEC + i * 10000,
                       "127.0.0.1:5", VIGIL_EV_AUTH_SUCCESS, id, id, true);
        }
    }
    assert_int_equal(fx->seen.count, 0);
}

static void test_churn_counts_each_connection_once(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    /* A failed login followed by its close, and an anonymous login followed
     * by its close, count once each: 59 connections stay below 60. */
    for (int i = 0; i < 59; i++) {
        snprintf(id, sizeof id, "x-%d", i % 5);
        connection(fx, 100 + (uint64_t)i, T0 + i * 100000, "10.0.0.9:1",
                   i % 2 ? VIGIL_EV_AUTH_FAILURE : VIGIL_EV_AUTH_SUCCESS, id, "", true);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_CONN_CHURN), 0);
    connection(fx, 500, T0 + 6 * SEC, "10.0.0.9:1", VIGIL_EV_AUTH_SUCCESS, "x-1", "", false);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_CONN_CHURN), 1);
}

static void test_churn_passive_counts_every_connection(void **state)
{
    struct fixture *fx = *state;

    fx->cfg.passive = true;
    restart(fx);
    for (int i = 0; i < 60; i++)
        connection(fx, 100 + (uint64_t)i, T0 + i * 100000, "10.0.0.5:1", VIGIL_EV_AUTH_SUCCESS,
                   "c", "c", false);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_CONN_CHURN), 1);
}

static void test_many_identities(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "mon-%d", i);
        connection(fx, (uint64_t)i, T0 + i * SEC, "10.0.0.5:1", VIGIL_EV_AUTH_FAILURE, id, "",
                   false);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_MANY_IDENTITIES), 0);
    for (int i = 5; i < 20; i++) {
        snprintf(id, sizeof id, "mon-%d", i);
        connection(fx, (uint64_t)i, T0 + i * SEC, "10.0.0.5:1", VIGIL_EV_AUTH_FAILURE, id, "",
                   false);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_MANY_IDENTITIES), 1);
}

static void test_many_identities_anonymous(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "anon-%d", i);
        connection(fx, (uint64_t)i, T0 + i * SEC, "10.0.0.5:1", VIGIL_EV_AUTH_SUCCESS, id, "",
                   false);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_MANY_IDENTITIES), 1);
    assert_string_equal(find_rule(&fx->seen, SECMON_RULE_MANY_IDENTITIES)->source, "10.0.0.5");
}

static void test_many_identities_verified_benign(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof id, "mon-%04d", i);
        connection(fx, (uint64_t)i, T0 + i * 100000, "127.0.0.1:5", VIGIL_EV_AUTH_SUCCESS, id, id,
                   false);
    }
    assert_int_equal(fx->seen.count, 0);
}

static void test_many_identities_passive(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    fx->cfg.passive = true;
    restart(fx);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "c-%d", i);
        connection(fx, (uint64_t)i, T0 + i * SEC, "10.0.0.5:1", VIGIL_EV_AUTH_SUCCESS, id, id,
                   false);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_MANY_IDENTITIES), 1);
}

static void test_slow_keepalive(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev;

    for (int i = 0; i < 10; i++) {
        ev = make(VIGIL_EV_AUTH_SUCCESS, T0 + i * SEC, "10.0.0.5:1", "mon-1", NULL);
        ev.conn_id = 100 + (uint64_t)i;
        ev.keep_alive = 60;
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(fx->seen.count, 0);
    for (int i = 0; i < 10; i++) {
        ev = make(VIGIL_EV_AUTH_SUCCESS, T0 + i * SEC, "10.0.0.8:1", "mon-2", NULL);
        ev.conn_id = 200 + (uint64_t)i;
        ev.keep_alive = 3600;
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SLOW_CONN), 1);
}

static void test_slow_keepalive_closed_benign(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev;

    for (int i = 0; i < 20; i++) {
        ev = make(VIGIL_EV_AUTH_SUCCESS, T0 + i * SEC, "10.0.0.8:1", "mon-2", NULL);
        ev.conn_id = 300 + (uint64_t)i;
        ev.keep_alive = 3600;
        secmon_engine_feed(fx->e, &ev);
        ev.type = VIGIL_EV_DISCONNECT;
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(fx->seen.count, 0);
}

static void test_no_connect_limit(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev;

    for (int i = 0; i < 10; i++) {
        ev = make(VIGIL_EV_LIMIT, T0 + i * SEC, "10.0.0.8:1", "", NULL);
        snprintf(ev.detail, sizeof ev.detail, "no CONNECT within the connect timeout");
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SLOW_CONN), 1);
}

static void test_flood_one_alert(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    for (int i = 0; i < 10000; i++)
        publish(fx, T0 + i * 1000, "mon-1", "north/icu3/r1/mon-1/log", 52, 0);
    secmon_engine_tick(fx->e, T0 + 200 * SEC);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_FLOOD), 1);
    a = find_rule(&fx->seen, SECMON_RULE_FLOOD);
    assert_int_equal(a->count, 10000);
    assert_int_equal(a->n_evidence, SECMON_EVIDENCE_MAX);
    assert_non_null(strstr(a->evidence[0], "publish north/icu3/r1/mon-1/log qos0 52B from 10.0.0.5"));
    assert_int_equal(fx->seen.opens, 1);
    /* About ten seconds of flood: one update per second at most. */
    assert_true(fx->seen.updates <= 12);
    assert_int_equal(secmon_engine_open_alerts(fx->e), 0);
}

/* A flood that grows shows its largest rate; a later, weaker phase of the
 * same episode neither lowers it nor loses a count. */
static void test_flood_keeps_largest_deviation(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;
    int64_t t = T0;
    uint64_t sent = 0;

    for (int i = 0; i < 600; i++, sent++, t += 5000) /* 200/s for 3 s */
        publish(fx, t, "mon-1", "north/icu3/r1/mon-1/log", 52, 0);
    for (int i = 0; i < 3000; i++, sent++, t += 1000) /* 1,000/s for 3 s */
        publish(fx, t, "mon-1", "north/icu3/r1/mon-1/log", 52, 0);
    for (int i = 0; i < 600; i++, sent++, t += 5000) /* 200/s again */
        publish(fx, t, "mon-1", "north/icu3/r1/mon-1/log", 52, 0);
    secmon_engine_tick(fx->e, t + 200 * SEC);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_FLOOD), 1);
    a = find_rule(&fx->seen, SECMON_RULE_FLOOD);
    /* The alert opens with the count of its window, which contains every
     * publish before it. */
    assert_int_equal(a->count, sent);
    assert_true(a->deviation >= 9.9 && a->deviation <= 10.1);
    assert_int_equal(strncmp(a->observation, "100", 3), 0);
    assert_non_null(strstr(a->observation, " publishes by 'mon-1' in the last second"));
    assert_null(strstr(a->observation, "  "));
}

static void test_steady_publishes_benign(void **state)
{
    struct fixture *fx = *state;

    steady(fx, "mon-1", T0, 900);
    secmon_engine_tick(fx->e, T0 + 900 * SEC);
    assert_int_equal(fx->seen.count, 0);
}

static void test_qos_flood(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < 60; i++)
        publish(fx, T0 + i * 10000, "mon-1", "north/icu3/r1/mon-1/log", 52, 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_QOS_FLOOD), 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_FLOOD), 0);
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_QOS_FLOOD)->observation,
                           " QoS 1/2 publishes by 'mon-1'"));
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_QOS_FLOOD)->expectation,
                           "at most 50 QoS 1/2 publishes per second"));
}

static void test_malformed_burst(void **state)
{
    struct fixture *fx = *state;
    struct vigil_event ev = make(VIGIL_EV_MALFORMED, T0, "10.0.0.5:1", "", NULL);

    ev.rule = "MQTT-2.1.3-1";
    for (int i = 0; i < 3; i++) {
        ev.ts_us = T0 + i * SEC;
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(fx->seen.count, 0);
    for (int i = 3; i < 10; i++) {
        ev.ts_us = T0 + i * SEC;
        secmon_engine_feed(fx->e, &ev);
    }
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_MALFORMED_BURST), 1);
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_MALFORMED_BURST)->observation, "MQTT-2.1.3-1"));
}

static void test_suspicious_topics(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad[] = {"north/../etc/passwd", "/north/icu3", "north/%s%n/x", "north/a\x01/b"};
    char id[16];

    publish(fx, T0, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
    assert_int_equal(fx->seen.count, 0);
    for (size_t i = 0; i < 4; i++) {
        snprintf(id, sizeof id, "mon-%zu", i + 2);
        publish(fx, T0, id, bad[i], 50, 0);
        assert_int_equal(count_rule(&fx->seen, SECMON_RULE_TOPIC_CHARS), i + 1);
    }
}

static void test_physiological_range(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    publish_value(fx, T0, "heart_rate", 72);
    publish_value(fx, T0, "spo2", 0.97);        /* SenML ratio */
    publish_value(fx, T0, "spo2", 97);          /* percent */
    publish_value(fx, T0, "abp_sys", 16000);    /* 120 mmHg in Pa */
    publish_value(fx, T0, "temperature", 37.2);
    assert_int_equal(fx->seen.count, 0);
    publish_value(fx, T0, "heart_rate", 400);
    publish_value(fx, T0, "spo2", 0.3);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_PHYSIO_RANGE), 2);
    a = find_rule(&fx->seen, SECMON_RULE_PHYSIO_RANGE);
    assert_null(strstr(a->observation, "400")); /* never the value itself */
    assert_non_null(strstr(a->expectation, "20..300"));
}

static void test_impossible_rate(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < 60; i++)
        publish(fx, T0 + i * 15000, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_IMPOSSIBLE_RATE), 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_FLOOD), 0);
}

/* Checks that s is well-formed UTF-8 (no overlong forms or surrogates). */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        size_t n;
        uint32_t cp;

        if (*p < 0x80) {
            n = 1;
            cp = *p;
        } else if ((*p & 0xE0) == 0xC0) {
            n = 2;
            cp = *p & 0x1Fu;
        } else if ((*p & 0xF0) == 0xE0) {
            n = 3;
            cp = *p & 0x0Fu;
        } else if ((*p & 0xF8) == 0xF0) {
            n = 4;
            cp = *p & 0x07u;
        } else {
            return false;
        }
        for (size_t i = 1; i < n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n;
    }
    return true;
}

/* A long topic of two-byte characters runs over the end of each alert
 * text. The texts stay valid UTF-8 at either parity of the cut. */
static void test_texts_cut_at_whole_characters(void **state)
{
    struct fixture *fx = *state;
    char topic[192];

    for (int pad = 0; pad < 2; pad++) {
        size_t n = (size_t)snprintf(topic, sizeof topic, "north/%s", pad ? "x" : "");

        for (int i = 0; i < 80; i++)
            n += (size_t)snprintf(topic + n, sizeof topic - n, "\xc3\xbc"); /* U+00FC */
        snprintf(topic + n, sizeof topic - n, "/heart_rate");
        restart(fx);
        for (int i = 0; i < 300; i++)
            publish(fx, T0 + i * 4000, "mon-1", topic, 50, 0);
        secmon_engine_tick(fx->e, T0 + 200 * SEC);
        assert_int_equal(count_rule(&fx->seen, SECMON_RULE_IMPOSSIBLE_RATE), 1);
        for (size_t a = 0; a < fx->seen.count; a++) {
            const struct secmon_alert *al = &fx->seen.alerts[a];

            assert_true(utf8_valid(al->observation));
            assert_true(utf8_valid(al->expectation));
            assert_true(utf8_valid(al->explanation));
            for (int e = 0; e < al->n_evidence; e++)
                assert_true(utf8_valid(al->evidence[e]));
        }
    }
}

static void test_silence_after_learning(void **state)
{
    struct fixture *fx = *state;
    int64_t last = T0 + 399 * SEC;
    const struct secmon_alert *a;

    steady(fx, "mon-1", T0, 400);
    secmon_engine_tick(fx->e, last + 5 * SEC);
    assert_int_equal(fx->seen.count, 0);
    secmon_engine_tick(fx->e, last + 20 * SEC);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SILENT), 1);
    a = find_rule(&fx->seen, SECMON_RULE_SILENT);
    assert_string_equal(a->device, "mon-1");
    assert_true(a->first_event_us == last);
    secmon_engine_tick(fx->e, last + 40 * SEC);
    assert_int_equal(fx->seen.opens, 1);
}

static void test_silence_needs_learning(void **state)
{
    struct fixture *fx = *state;

    steady(fx, "mon-1", T0, 100);
    secmon_engine_tick(fx->e, T0 + 1000 * SEC);
    assert_int_equal(fx->seen.count, 0);
}

static void test_learning_period_honoured(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    steady(fx, "mon-1", T0, 100);
    publish(fx, T0 + 100 * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 5000, 0);
    assert_int_equal(fx->seen.count, 0);
    steady(fx, "mon-1", T0 + 101 * SEC, 300);
    assert_int_equal(fx->seen.count, 0);
    publish(fx, T0 + 401 * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 5000, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 1);
    a = find_rule(&fx->seen, SECMON_RULE_BASELINE);
    assert_non_null(strstr(a->observation, "5000 bytes"));
    assert_non_null(strstr(a->expectation, "600-s"));
    assert_true(a->deviation > fx->cfg.baseline_z);
}

static void test_baseline_new_topic_and_rate(void **state)
{
    struct fixture *fx = *state;

    steady(fx, "mon-1", T0, 400);
    publish(fx, T0 + 400 * SEC, "mon-1", "north/icu3/r1/mon-1/firmware", 50, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 1);
    for (int i = 0; i < 40; i++)
        publish(fx, T0 + 401 * SEC + i * 100000, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 2);
}

/* A learned device logs in from an address it never used. That raises one
 * baseline finding, which names the address and what was learned. The
 * same new address again, or a learned one, raises nothing more. */
static void test_baseline_new_source_address(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    steady(fx, "mon-1", T0, 400);
    assert_int_equal(fx->seen.count, 0);
    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0 + 400 * SEC, "10.9.9.9:5000", "mon-1", NULL);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 1);
    a = find_rule(&fx->seen, SECMON_RULE_BASELINE);
    assert_string_equal(a->device, "mon-1");
    assert_non_null(strstr(a->observation, "new address 10.9.9.9"));
    assert_non_null(strstr(a->expectation, "1 addresses learned"));
    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0 + 401 * SEC, "10.9.9.9:5001", "mon-1", NULL);
    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0 + 402 * SEC, "10.0.0.5:40001", "mon-1", NULL);
    publish(fx, T0 + 403 * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
    assert_int_equal(fx->seen.opens, 1);
    assert_int_equal(fx->seen.updates, 0);
}

static void test_size_baseline_per_topic(void **state)
{
    struct fixture *fx = *state;

    /* Measurements of 50 bytes every second and an alarm of 230 bytes
     * every 20 s: each topic keeps its own size baseline. */
    for (int i = 0; i < 400; i++) {
        publish(fx, T0 + i * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
        if (i % 20 == 0)
            publish(fx, T0 + i * SEC + 1000, "mon-1", "north/icu3/r1/mon-1/alarm", 230, 2);
    }
    assert_int_equal(fx->seen.count, 0);
    publish(fx, T0 + 400 * SEC, "mon-1", "north/icu3/r1/mon-1/alarm", 240, 2);
    assert_int_equal(fx->seen.count, 0);
    publish(fx, T0 + 401 * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 230, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 1);
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_BASELINE)->expectation, "topic"));
}

static void test_new_topic_known_to_type(void **state)
{
    struct fixture *fx = *state;

    /* mon-2 raised an alarm at QoS 2 while both learned; mon-1's first
     * alarm after learning is the same kind of message. */
    for (int i = 0; i < 400; i++) {
        publish(fx, T0 + i * SEC, "mon-1", "north/icu3/r1/mon-1/heart_rate", 50, 0);
        publish(fx, T0 + i * SEC + 500, "mon-2", "north/icu3/r2/mon-2/heart_rate", 50, 0);
        if (i == 100)
            publish(fx, T0 + i * SEC + 700, "mon-2", "north/icu3/r2/mon-2/alarm", 230, 2);
    }
    publish(fx, T0 + 401 * SEC, "mon-1", "north/icu3/r1/mon-1/alarm", 230, 2);
    assert_int_equal(fx->seen.count, 0);
    /* A kind of message no device of the type sent is still new. */
    publish(fx, T0 + 402 * SEC, "mon-1", "north/icu3/r1/mon-1/firmware", 50, 1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 2);
}

static void test_resp_rate_zero_benign(void **state)
{
    struct fixture *fx = *state;

    publish_value(fx, T0, "resp_rate", 0);
    assert_int_equal(fx->seen.count, 0);
    publish_value(fx, T0 + SEC, "resp_rate", -1);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_PHYSIO_RANGE), 1);
}

static void test_type_baseline(void **state)
{
    struct fixture *fx = *state;

    steady(fx, "mon-1", T0, 400);
    publish(fx, T0 + 400 * SEC, "mon-2", "north/icu3/r2/mon-2/heart_rate", 5000, 0);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_BASELINE), 1);
    assert_non_null(strstr(find_rule(&fx->seen, SECMON_RULE_BASELINE)->expectation, "type"));
}

static void test_alert_closes_after_quiet(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "mon-1", "$SYS/#");
    feed(fx, VIGIL_EV_SUBSCRIBE, T0 + 30 * SEC, "10.0.0.5:1", "mon-1", "$SYS/#");
    assert_int_equal(fx->seen.opens, 1);
    secmon_engine_tick(fx->e, T0 + 89 * SEC);
    assert_int_equal(secmon_engine_open_alerts(fx->e), 1);
    secmon_engine_tick(fx->e, T0 + 91 * SEC);
    assert_int_equal(secmon_engine_open_alerts(fx->e), 0);
    assert_int_equal(fx->seen.alerts[0].count, 2);
    feed(fx, VIGIL_EV_SUBSCRIBE, T0 + 100 * SEC, "10.0.0.5:1", "mon-1", "$SYS/#");
    assert_int_equal(fx->seen.opens, 2);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_SYS_PROBE), 2);
    assert_int_equal(secmon_engine_alerts(fx->e), 2);
}

static void test_quiet_without_tick(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_SUBSCRIBE, T0, "10.0.0.5:1", "mon-1", "$SYS/#");
    feed(fx, VIGIL_EV_SUBSCRIBE, T0 + 61 * SEC, "10.0.0.5:1", "mon-1", "$SYS/#");
    assert_int_equal(fx->seen.opens, 2);
}

static void test_monitoring_gap(void **state)
{
    struct fixture *fx = *state;

    secmon_engine_dropped(fx->e, 0, T0);
    assert_int_equal(fx->seen.count, 0);
    secmon_engine_dropped(fx->e, 42, T0);
    secmon_engine_dropped(fx->e, 8, T0 + 2 * SEC);
    secmon_engine_tick(fx->e, T0 + 4 * SEC);
    assert_int_equal(count_rule(&fx->seen, SECMON_RULE_EVENTS_DROPPED), 1);
    assert_int_equal(find_rule(&fx->seen, SECMON_RULE_EVENTS_DROPPED)->count, 50);
}

/* Runs a mixed scenario and writes the alert ids in order. */
static void scenario_ids(struct fixture *fx, char *out, size_t cap)
{
    restart(fx);
    steady(fx, "mon-1", T0, 400);
    for (int i = 0; i < 6; i++)
        auth_fail(fx, T0 + 10 * SEC + i * SEC, "10.0.0.66:4000", "mon-9");
    feed(fx, VIGIL_EV_SUBSCRIBE, T0 + 20 * SEC, "10.0.0.5:1", "mon-1", "$SYS/#");
    for (int i = 0; i < 500; i++)
        publish(fx, T0 + 500 * SEC + i * 1000, "mon-3", "north/icu3/r1/mon-3/log", 52, 0);
    secmon_engine_tick(fx->e, T0 + 520 * SEC);
    out[0] = '\0';
    for (size_t i = 0; i < fx->seen.count; i++) {
        strncat(out, fx->seen.alerts[i].alert_id, cap - strlen(out) - 1);
        strncat(out, ",", cap - strlen(out) - 1);
    }
}

static void test_replay_same_ids(void **state)
{
    struct fixture *fx = *state;
    char first[2048], second[2048];

    scenario_ids(fx, first, sizeof first);
    scenario_ids(fx, second, sizeof second);
    assert_true(fx->seen.count >= 4);
    assert_string_equal(first, second);
}

static void test_tracked_keys_capped(void **state)
{
    struct fixture *fx = *state;
    char id[16];

    fx->cfg.max_tracked = 16;
    restart(fx);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "dev-%d", i);
        publish(fx, T0 + i * SEC, id, "north/icu3/r1/x/heart_rate", 50, 0);
    }
    assert_int_equal(secmon_engine_events(fx->e), 1000);
}

/* Publishes n messages of a device of that type (may be "") on a topic
 * that carries no vital sign, evenly spread over the second from t0. */
static void publish_typed(struct fixture *fx, int64_t t0, const char *id, const char *type, int n)
{
    char topic[96];
    struct vigil_event ev;

    snprintf(topic, sizeof topic, "north/icu3/r1/%s/status", id);
    for (int i = 0; i < n; i++) {
        ev = make(VIGIL_EV_PUBLISH, t0 + i * (SEC / n), "10.0.0.5:40000", id, topic);
        snprintf(ev.device_type, sizeof ev.device_type, "%s", type);
        ev.size = 50;
        secmon_engine_feed(fx->e, &ev);
    }
}

static const struct secmon_alert *find_device_alert(const struct seen *s, const char *rule,
                                                    const char *device)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->alerts[i].rule, rule) == 0 && strcmp(s->alerts[i].device, device) == 0)
            return &s->alerts[i];
    return NULL;
}

static void set_flood_profile(struct fixture *fx, const char *type, uint32_t flood)
{
    struct secmon_config p = fx->cfg;

    p.flood_msgs_per_s = flood;
    assert_int_equal(secmon_engine_set_profile(fx->e, type, &p), VIGIL_OK);
}

static void test_profile_flood_per_type(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    set_flood_profile(fx, "infusion-pump", 20);
    set_flood_profile(fx, "bedside-monitor", 150);
    publish_typed(fx, T0, "pump-1", "infusion-pump", 120);
    publish_typed(fx, T0, "mon-1", "bedside-monitor", 120);

    a = find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "pump-1");
    assert_non_null(a);
    assert_non_null(strstr(a->expectation, "at most 20 "));
    assert_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "mon-1"));
}

static void test_profile_absent_uses_global(void **state)
{
    struct fixture *fx = *state;
    const struct secmon_alert *a;

    set_flood_profile(fx, "bedside-monitor", 150);
    publish_typed(fx, T0, "dev-1", "", 120);
    publish_typed(fx, T0, "band-1", "wearable", 120);
    publish_typed(fx, T0, "pump-1", "infusion-pump", 90);

    a = find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "dev-1");
    assert_non_null(a);
    assert_non_null(strstr(a->expectation, "at most 100 "));
    a = find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "band-1");
    assert_non_null(a);
    assert_non_null(strstr(a->expectation, "at most 100 "));
    assert_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "pump-1"));
}

static void test_profile_set_after_first_event(void **state)
{
    struct fixture *fx = *state;

    publish_typed(fx, T0, "pump-1", "infusion-pump", 30);
    assert_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "pump-1"));
    set_flood_profile(fx, "infusion-pump", 20);
    publish_typed(fx, T0 + 60 * SEC, "pump-1", "infusion-pump", 30);
    assert_non_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "pump-1"));
}

static void test_profile_type_change(void **state)
{
    struct fixture *fx = *state;

    set_flood_profile(fx, "infusion-pump", 20);
    publish_typed(fx, T0, "dev-7", "bedside-monitor", 30);
    assert_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "dev-7"));
    publish_typed(fx, T0 + 60 * SEC, "dev-7", "infusion-pump", 30);
    assert_non_null(find_device_alert(&fx->seen, SECMON_RULE_FLOOD, "dev-7"));
}

static void test_profile_keeps_source_rules(void **state)
{
    struct fixture *fx = *state;
    struct secmon_config p = fx->cfg;
    struct vigil_event ev;

    char id[16];
    const struct secmon_alert *a;

    p.auth_fail_burst = 1000;
    assert_int_equal(secmon_engine_set_profile(fx->e, "infusion-pump", &p), VIGIL_OK);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "pump-%d", i);
        publish_typed(fx, T0, id, "infusion-pump", 1);
        ev = make(VIGIL_EV_AUTH_FAILURE, T0 + (i + 1) * SEC, "10.0.0.9:5000", id, NULL);
        snprintf(ev.device_type, sizeof ev.device_type, "infusion-pump");
        snprintf(ev.detail, sizeof ev.detail, "wrong password");
        secmon_engine_feed(fx->e, &ev);
    }
    a = find_rule(&fx->seen, SECMON_RULE_BRUTE_FORCE);
    assert_non_null(a);
    assert_int_equal(a->count, 5);
}

static void test_profile_set_rejects(void **state)
{
    struct fixture *fx = *state;
    char type[40];

    assert_int_equal(secmon_engine_set_profile(fx->e, "", &fx->cfg), VIGIL_ERR_INVALID);
    memset(type, 'a', sizeof type);
    type[SECMON_DEVICE_TYPE_MAX] = '\0';
    assert_int_equal(secmon_engine_set_profile(fx->e, type, &fx->cfg), VIGIL_ERR_INVALID);
    type[SECMON_DEVICE_TYPE_MAX - 1] = '\0';
    assert_int_equal(secmon_engine_set_profile(fx->e, type, &fx->cfg), VIGIL_OK);
    for (int i = 1; i < SECMON_PROFILES_MAX; i++) {
        snprintf(type, sizeof type, "type-%d", i);
        assert_int_equal(secmon_engine_set_profile(fx->e, type, &fx->cfg), VIGIL_OK);
    }
    assert_int_equal(secmon_engine_set_profile(fx->e, "one-more", &fx->cfg), VIGIL_ERR_LIMIT);
    assert_int_equal(secmon_engine_set_profile(fx->e, "type-1", &fx->cfg), VIGIL_OK);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_documented_values),
        T(test_unknown_device_login),
        T(test_wrong_password_once_benign),
        T(test_unauthenticated_publish),
        T(test_authenticated_publish_benign),
        T(test_acl_deny_outside_subtree),
        T(test_passive_topic_owner),
        T(test_sys_probe),
        T(test_denied_subscribe_probes),
        T(test_monitor_wildcard_benign),
        T(test_wildcard_probe),
        T(test_brute_force_source),
        T(test_brute_force_identity),
        T(test_slow_failures_benign),
        T(test_connection_churn),
        T(test_churn_verified_logins_benign),
        T(test_churn_counts_each_connection_once),
        T(test_churn_passive_counts_every_connection),
        T(test_many_identities),
        T(test_many_identities_anonymous),
        T(test_many_identities_verified_benign),
        T(test_many_identities_passive),
        T(test_slow_keepalive),
        T(test_slow_keepalive_closed_benign),
        T(test_no_connect_limit),
        T(test_flood_one_alert),
        T(test_flood_keeps_largest_deviation),
        T(test_steady_publishes_benign),
        T(test_qos_flood),
        T(test_malformed_burst),
        T(test_suspicious_topics),
        T(test_physiological_range),
        T(test_impossible_rate),
        T(test_texts_cut_at_whole_characters),
        T(test_silence_after_learning),
        T(test_silence_needs_learning),
        T(test_learning_period_honoured),
        T(test_baseline_new_topic_and_rate),
        T(test_baseline_new_source_address),
        T(test_type_baseline),
        T(test_size_baseline_per_topic),
        T(test_new_topic_known_to_type),
        T(test_resp_rate_zero_benign),
        T(test_alert_closes_after_quiet),
        T(test_quiet_without_tick),
        T(test_monitoring_gap),
        T(test_replay_same_ids),
        T(test_tracked_keys_capped),
        T(test_profile_flood_per_type),
        T(test_profile_absent_uses_global),
        T(test_profile_set_after_first_event),
        T(test_profile_type_change),
        T(test_profile_keeps_source_rules),
        T(test_profile_set_rejects),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
