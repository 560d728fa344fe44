/* Tests for the security engine's per-client state: a device that only
 * logs in gets no baseline, its first publish allocates one, and a
 * logged-in connection is forgotten unless its keep-alive is long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "secmon/engine.h"
#include "secmon/engine_internal.h"

#define T0 INT64_C(1767323045000000) /* 2026-01-02T03:04:05Z */
#define SEC INT64_C(1000000)

struct fixture {
    struct secmon_engine *e;
    size_t opens;
    char last_rule[64];
    char last_source[64];
};

static void on_alert(void *ctx, const struct secmon_alert *a, bool update)
{
    struct fixture *fx = ctx;

    if (update)
        return;
    fx->opens++;
    snprintf(fx->last_rule, sizeof fx->last_rule, "%s", a->rule);
    snprintf(fx->last_source, sizeof fx->last_source, "%s", a->source);
}

static int setup(void **state)
{
    static struct fixture fx;

    memset(&fx, 0, sizeof fx);
    assert_int_equal(secmon_engine_new(NULL, on_alert, &fx, &fx.e), VIGIL_OK);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    secmon_engine_free(fx->e);
    return 0;
}

static void feed(struct fixture *fx, enum vigil_event_type type, int64_t ts, uint64_t conn,
                 const char *peer, const char *device, const char *topic, uint16_t keep_alive)
{
    struct vigil_event ev;

    memset(&ev, 0, sizeof ev);
    ev.type = (uint8_t)type;
    ev.ts_us = ts;
    ev.conn_id = conn;
    ev.keep_alive = keep_alive;
    ev.size = 50;
    snprintf(ev.peer, sizeof ev.peer, "%s", peer);
    snprintf(ev.client_id, sizeof ev.client_id, "%s", device);
    snprintf(ev.device, sizeof ev.device, "%s", device);
    snprintf(ev.topic, sizeof ev.topic, "%s", topic != NULL ? topic : "");
    secmon_engine_feed(fx->e, &ev);
}

static struct engine_device *device(struct fixture *fx, const char *id)
{
    return engine_table_get(&fx->e->devices, id, strlen(id));
}

static void test_login_only_device_has_no_baseline(void **state)
{
    struct fixture *fx = *state;
    size_t before = vigil_alloc_in_use();
    char id[32];

    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "mon-%04d", i);
        feed(fx, VIGIL_EV_CONNECT_ATTEMPT, T0, (uint64_t)i + 1, "10.0.0.5:40000", "", NULL, 60);
        feed(fx, VIGIL_EV_AUTH_SUCCESS, T0, (uint64_t)i + 1, "10.0.0.5:40000", id, NULL, 60);
    }
    assert_int_equal(fx->e->devices.count, 1000);
    assert_null(device(fx, "mon-0000")->base);
    assert_true(device(fx, "mon-0000")->first_seen_us == T0);
    /* The device record (72 bytes), its key and its share of the bucket
     * array; the whole baseline alone is about 2 KB. */
    assert_true((vigil_alloc_in_use() - before) / 1000 < 96);
}

static void test_first_publish_allocates_baseline(void **state)
{
    struct fixture *fx = *state;
    struct engine_device *d;

    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0, 1, "10.0.0.5:40000", "mon-1", NULL, 60);
    d = device(fx, "mon-1");
    assert_non_null(d);
    assert_null(d->base);
    assert_int_equal(d->n_peers, 1);
    feed(fx, VIGIL_EV_PUBLISH, T0 + SEC, 1, "10.0.0.5:40000", "mon-1", "north/icu3/r1/mon-1/hr", 0);
    assert_non_null(d->base);
    assert_int_equal(d->base->publishes, 1);
    assert_string_equal(d->base->source, "10.0.0.5");
    /* The address of the login stays the only one known. */
    assert_int_equal(d->n_peers, 1);
}

/* A device that logged in long before publishing learns and goes silent
 * as before: the silence alert names the address it published from. */
static void test_silence_after_late_first_publish(void **state)
{
    struct fixture *fx = *state;
    int64_t t = T0;

    feed(fx, VIGIL_EV_AUTH_SUCCESS, t, 1, "10.0.0.7:40000", "mon-2", NULL, 60);
    t += 3600 * SEC;
    for (int i = 0; i < 400; i++, t += SEC)
        feed(fx, VIGIL_EV_PUBLISH, t, 1, "10.0.0.7:40000", "mon-2", "north/icu3/r1/mon-2/hr", 0);
    assert_true(device(fx, "mon-2")->base->learned);
    assert_int_equal(fx->opens, 0);
    secmon_engine_tick(fx->e, t + 60 * SEC);
    assert_int_equal(fx->opens, 1);
    assert_string_equal(fx->last_rule, SECMON_RULE_SILENT);
    assert_string_equal(fx->last_source, "10.0.0.7");
}

/* A learned device reports an address beyond the ones it learned, not a
 * return to a learned one, and keeps at most ENGINE_PEERS_MAX addresses. */
static void test_peer_addresses_after_learning(void **state)
{
    struct fixture *fx = *state;
    const char *topic = "north/icu3/r1/mon-3/hr";
    int64_t t = T0;
    struct engine_device *d;
    char peer[32];

    feed(fx, VIGIL_EV_AUTH_SUCCESS, t, 1, "10.0.0.5:40000", "mon-3", NULL, 60);
    for (int i = 0; i < 400; i++, t += SEC)
        feed(fx, VIGIL_EV_PUBLISH, t, 1, "10.0.0.5:40000", "mon-3", topic, 0);
    d = device(fx, "mon-3");
    assert_true(d->base->learned);
    assert_int_equal(fx->opens, 0);

    feed(fx, VIGIL_EV_AUTH_SUCCESS, t, 2, "10.0.0.6:40000", "mon-3", NULL, 60);
    assert_int_equal(fx->opens, 1);
    assert_string_equal(fx->last_rule, SECMON_RULE_BASELINE);
    assert_string_equal(fx->last_source, "10.0.0.6");
    assert_int_equal(d->n_peers, 2);

    feed(fx, VIGIL_EV_AUTH_SUCCESS, t + SEC, 3, "10.0.0.5:40001", "mon-3", NULL, 60);
    assert_int_equal(d->n_peers, 2);
    feed(fx, VIGIL_EV_PUBLISH, t + 2 * SEC, 3, "10.0.0.5:40001", "mon-3", topic, 0);
    assert_string_equal(d->base->source, "10.0.0.5");
    assert_int_equal(fx->opens, 1);

    for (int i = 7; i < 12; i++) {
        snprintf(peer, sizeof peer, "10.0.0.%d:40000", i);
        feed(fx, VIGIL_EV_AUTH_SUCCESS, t + 3 * SEC, 4, peer, "mon-3", NULL, 60);
    }
    assert_int_equal(d->n_peers, ENGINE_PEERS_MAX);
    assert_int_equal(d->peer_hash[0], engine_peer_hash(fx->e, "10.0.0.5"));
    assert_int_equal(d->peer_hash[3], engine_peer_hash(fx->e, "10.0.0.8"));
}

static void test_logged_in_connection_forgotten(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_CONNECT_ATTEMPT, T0, 7, "10.0.0.5:40000", "", NULL, 0);
    assert_int_equal(fx->e->conns.count, 1);
    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0, 7, "10.0.0.5:40000", "mon-1", NULL, 60);
    assert_int_equal(fx->e->conns.count, 0);
    /* Its publishes and its close find no record and raise nothing. */
    feed(fx, VIGIL_EV_PUBLISH, T0 + SEC, 7, "10.0.0.5:40000", "mon-1", "north/icu3/r1/mon-1/hr", 0);
    feed(fx, VIGIL_EV_DISCONNECT, T0 + 2 * SEC, 7, "10.0.0.5:40000", "mon-1", NULL, 0);
    assert_int_equal(fx->opens, 0);
}

static void test_slow_connection_kept_until_close(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_CONNECT_ATTEMPT, T0, 8, "10.0.0.5:40000", "", NULL, 0);
    feed(fx, VIGIL_EV_AUTH_SUCCESS, T0, 8, "10.0.0.5:40000", "mon-1", NULL, 3600);
    assert_int_equal(fx->e->conns.count, 1);
    feed(fx, VIGIL_EV_DISCONNECT, T0 + SEC, 8, "10.0.0.5:40000", "mon-1", NULL, 0);
    assert_int_equal(fx->e->conns.count, 0);
}

static void test_unauthenticated_connection_kept(void **state)
{
    struct fixture *fx = *state;

    feed(fx, VIGIL_EV_CONNECT_ATTEMPT, T0, 9, "10.0.0.5:40000", "", NULL, 0);
    feed(fx, VIGIL_EV_PUBLISH, T0 + SEC, 9, "10.0.0.5:40000", "", "north/icu3/r1/x/hr", 0);
    assert_int_equal(fx->e->conns.count, 1);
    assert_int_equal(fx->opens, 1);
    assert_string_equal(fx->last_rule, SECMON_RULE_UNKNOWN_DEVICE);
}

/* Evicting a device with a baseline frees the baseline (ASan reports a
 * leak otherwise). */
static void test_evicted_device_frees_baseline(void **state)
{
    struct fixture *fx = *state;
    struct secmon_config cfg;
    char id[32];

    secmon_engine_free(fx->e);
    secmon_config_defaults(&cfg);
    cfg.max_tracked = 4;
    assert_int_equal(secmon_engine_new(&cfg, on_alert, fx, &fx->e), VIGIL_OK);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "mon-%d", i);
        feed(fx, VIGIL_EV_PUBLISH, T0 + i * SEC, 1, "10.0.0.5:40000", id, "north/icu3/r1/x/hr", 0);
    }
    assert_int_equal(fx->e->devices.count, 4);
    assert_non_null(device(fx, "mon-19")->base);
    assert_null(device(fx, "mon-0"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_login_only_device_has_no_baseline),
        T(test_first_publish_allocates_baseline),
        T(test_silence_after_late_first_publish),
        T(test_peer_addresses_after_learning),
        T(test_logged_in_connection_forgotten),
        T(test_slow_connection_kept_until_close),
        T(test_unauthenticated_connection_kept),
        T(test_evicted_device_frees_baseline),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
