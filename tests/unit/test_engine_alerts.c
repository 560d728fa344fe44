/* Tests for the alert store: upsert, the open/acknowledged/resolved life
 * cycle, listing and the MTTD/MTTR arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "secmon/alerts.h"

#define SEC INT64_C(1000000)

struct fixture {
    char dir[64];
    struct alerts_db *db;
};

static int setup(void **state)
{
    static struct fixture fx;

    snprintf(fx.dir, sizeof fx.dir, "/tmp/vigil-alerts-XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    assert_int_equal(alerts_open(fx.dir, &fx.db), VIGIL_OK);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    alerts_close(fx->db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static struct secmon_alert make_alert(const char *id, int64_t first_event, int64_t first_seen)
{
    struct secmon_alert a;

    memset(&a, 0, sizeof a);
    snprintf(a.alert_id, sizeof a.alert_id, "%s", id);
    a.rule = SECMON_RULE_FLOOD;
    a.severity = SECMON_SEV_HIGH;
    snprintf(a.device, sizeof a.device, "mon-1");
    snprintf(a.source, sizeof a.source, "10.0.0.5");
    snprintf(a.observation, sizeof a.observation, "500 publishes in the last second");
    snprintf(a.expectation, sizeof a.expectation, "policy: at most 100 publishes per second");
    a.deviation = 5.0;
    snprintf(a.explanation, sizeof a.explanation, "flood \"quoted\"");
    a.first_event_us = first_event;
    a.first_seen_us = a.last_seen_us = first_seen;
    a.count = 1;
    snprintf(a.evidence[0], sizeof a.evidence[0], "2026-01-02T03:04:05Z publish x qos0 52B from 10.0.0.5");
    a.n_evidence = 1;
    return a;
}

struct rows {
    struct alerts_row row[8];
    size_t count;
};

static void collect(void *ctx, const struct alerts_row *row)
{
    struct rows *r = ctx;

    if (r->count < 8)
        r->row[r->count++] = *row;
}

static void test_upsert_aggregates(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("a1", 100 * SEC, 102 * SEC);
    struct rows r = {0};

    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    a.count = 10000;
    a.last_seen_us = 110 * SEC;
    snprintf(a.evidence[1], sizeof a.evidence[1], "second line");
    a.n_evidence = 2;
    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_list(fx->db, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.row[0].alert.count, 10000);
    assert_true(r.row[0].alert.last_seen_us == 110 * SEC);
    assert_true(r.row[0].alert.first_event_us == 100 * SEC);
    assert_int_equal(r.row[0].alert.n_evidence, 2);
    assert_string_equal(r.row[0].alert.evidence[1], "second line");
    assert_string_equal(r.row[0].alert.explanation, "flood \"quoted\"");
    assert_string_equal(r.row[0].alert.rule, SECMON_RULE_FLOOD);
    assert_int_equal(r.row[0].state, ALERTS_OPEN);
}

static void test_life_cycle(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("a1", 100 * SEC, 102 * SEC);
    struct rows r = {0};

    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_resolve(fx->db, "nope", 1), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(alerts_ack(fx->db, "a1", 150 * SEC), VIGIL_OK);
    assert_int_equal(alerts_ack(fx->db, "a1", 151 * SEC), VIGIL_ERR_INVALID);
    assert_int_equal(alerts_list(fx->db, ALERTS_ACKNOWLEDGED, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 1);
    assert_true(r.row[0].acked_at_us == 150 * SEC);
    assert_int_equal(alerts_resolve(fx->db, "a1", 202 * SEC), VIGIL_OK);
    assert_int_equal(alerts_resolve(fx->db, "a1", 203 * SEC), VIGIL_ERR_INVALID);
    /* A later update of the same alert keeps it resolved. */
    a.count = 5;
    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    r.count = 0;
    assert_int_equal(alerts_list(fx->db, ALERTS_OPEN, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 0);
    assert_int_equal(alerts_list(fx->db, ALERTS_RESOLVED, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 1);
    assert_true(r.row[0].resolved_at_us == 202 * SEC);
}

static void test_mttd_mttr(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("a1", 100 * SEC, 102 * SEC);  /* detected in 2 s */
    struct secmon_alert b = make_alert("b2", 200 * SEC, 206 * SEC);  /* detected in 6 s */
    struct secmon_alert c = make_alert("c3", 300 * SEC, 301 * SEC);  /* detected in 1 s */
    double mttd, mttr;

    assert_int_equal(alerts_mttd_mttr(fx->db, &mttd, &mttr), VIGIL_OK);
    assert_true(mttd < 0);
    assert_true(mttr < 0);
    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_upsert(fx->db, &b), VIGIL_OK);
    assert_int_equal(alerts_upsert(fx->db, &c), VIGIL_OK);
    assert_int_equal(alerts_resolve(fx->db, "a1", 162 * SEC), VIGIL_OK);  /* 60 s */
    assert_int_equal(alerts_ack(fx->db, "b2", 210 * SEC), VIGIL_OK);
    assert_int_equal(alerts_resolve(fx->db, "b2", 326 * SEC), VIGIL_OK); /* 120 s */
    assert_int_equal(alerts_mttd_mttr(fx->db, &mttd, &mttr), VIGIL_OK);
    assert_float_equal(mttd, 3.0, 1e-9);
    assert_float_equal(mttr, 90.0, 1e-9);
}

static void test_second_handle_sees_changes(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("a1", 100 * SEC, 102 * SEC);
    struct alerts_db *other = NULL;
    struct rows r = {0};

    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_flush(fx->db), VIGIL_OK);
    assert_int_equal(alerts_open(fx->dir, &other), VIGIL_OK);
    assert_int_equal(alerts_ack(other, "a1", 0), VIGIL_OK);
    assert_int_equal(alerts_list(fx->db, ALERTS_ACKNOWLEDGED, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 1);
    assert_true(r.row[0].acked_at_us > 0);
    alerts_close(other);
}

/* Upserts wait in one transaction until alerts_flush(). A second handle
 * reads none of them before the flush and all of them after. */
static void test_upserts_batched_until_flush(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("b1", 100 * SEC, 102 * SEC);
    struct secmon_alert b = make_alert("b2", 100 * SEC, 103 * SEC);
    struct alerts_db *other = NULL;
    struct rows r = {0};

    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    a.count = 7;
    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_upsert(fx->db, &b), VIGIL_OK);
    /* The writing handle reads its own pending rows. */
    assert_int_equal(alerts_list(fx->db, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 2);

    assert_int_equal(alerts_open(fx->dir, &other), VIGIL_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(alerts_list(other, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 0);

    assert_int_equal(alerts_flush(fx->db), VIGIL_OK);
    assert_int_equal(alerts_flush(fx->db), VIGIL_OK); /* nothing pending: no-op */
    memset(&r, 0, sizeof r);
    assert_int_equal(alerts_list(other, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.row[0].alert.alert_id, "b1");
    assert_int_equal(r.row[0].alert.count, 7);
    alerts_close(other);
}

/* A state change on the writing handle commits the pending upserts with
 * it, so both are durable when alerts_ack() returns; closing commits the
 * rest. */
static void test_transition_and_close_commit_batch(void **state)
{
    struct fixture *fx = *state;
    struct secmon_alert a = make_alert("c1", 100 * SEC, 102 * SEC);
    struct secmon_alert b = make_alert("c2", 100 * SEC, 104 * SEC);
    struct alerts_db *other = NULL;
    struct rows r = {0};

    assert_int_equal(alerts_upsert(fx->db, &a), VIGIL_OK);
    assert_int_equal(alerts_upsert(fx->db, &b), VIGIL_OK);
    assert_int_equal(alerts_ack(fx->db, "c1", 0), VIGIL_OK);
    assert_int_equal(alerts_open(fx->dir, &other), VIGIL_OK);
    assert_int_equal(alerts_list(other, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.row[0].state, ALERTS_ACKNOWLEDGED);
    assert_int_equal(r.row[1].state, ALERTS_OPEN);

    b.count = 3;
    assert_int_equal(alerts_upsert(fx->db, &b), VIGIL_OK);
    alerts_close(fx->db);
    assert_int_equal(alerts_open(fx->dir, &fx->db), VIGIL_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(alerts_list(other, -1, collect, &r), VIGIL_OK);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.row[1].alert.count, 3);
    alerts_close(other);
}

static void test_state_names(void **state)
{
    (void)state;
    assert_string_equal(alerts_state_name(ALERTS_ACKNOWLEDGED), "acknowledged");
    assert_int_equal(alerts_state_parse("resolved"), ALERTS_RESOLVED);
    assert_int_equal(alerts_state_parse("closed"), -1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_upsert_aggregates), T(test_life_cycle), T(test_mttd_mttr),
        T(test_second_handle_sees_changes),
        T(test_upserts_batched_until_flush),
        T(test_transition_and_close_commit_batch), T(test_state_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
