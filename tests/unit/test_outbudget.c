/* The hub-wide count of unsent output and the QoS 0 drop rule: the per-
 * connection bound, the global budget with its fair share, and counts that
 * return to zero when connections go away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "unit_hub.h"

#define KIB 1024u
#define MIB (1024u * 1024)

static void account_tracks_total_and_holders(void **state)
{
    struct out_budget b;
    uint32_t c1 = 0, c2 = 0;

    (void)state;
    outbudget_init(&b, MIB, 64 * MIB);
    outbudget_account(&b, &c1, 1000);
    outbudget_account(&b, &c2, 500);
    assert_int_equal(b.total, 1500);
    assert_int_equal(b.holders, 2);
    outbudget_account(&b, &c1, 200);
    assert_int_equal(b.total, 700);
    assert_int_equal(b.holders, 2);
    assert_int_equal(b.peak, 1500);
    assert_int_equal(c1, 200);
}

static void account_returns_to_zero(void **state)
{
    struct out_budget b;
    uint32_t counted[50] = {0};

    (void)state;
    outbudget_init(&b, MIB, 64 * MIB);
    for (size_t round = 1; round <= 3; round++)
        for (size_t i = 0; i < 50; i++)
            outbudget_account(&b, &counted[i], round * (i + 1) * 100);
    assert_int_equal(b.holders, 50);
    for (size_t i = 0; i < 50; i++)
        outbudget_account(&b, &counted[i], 0);
    assert_int_equal(b.total, 0);
    assert_int_equal(b.holders, 0);
    assert_int_equal(b.peak, 3 * 100 * (50 * 51 / 2));
}

static void check_applies_connection_bound(void **state)
{
    struct out_budget b;

    (void)state;
    outbudget_init(&b, MIB, 64 * MIB);
    assert_int_equal(outbudget_check(&b, 0), OUT_SEND);
    assert_int_equal(outbudget_check(&b, MIB), OUT_SEND);
    assert_int_equal(outbudget_check(&b, MIB + 1), OUT_OVER_CONN_LIMIT);
}

static void check_applies_fair_share(void **state)
{
    struct out_budget b;
    uint32_t big = 0, small = 0;

    (void)state;
    outbudget_init(&b, 16 * MIB, 4 * MIB);
    outbudget_account(&b, &big, 3 * MIB);
    outbudget_account(&b, &small, 512 * KIB);
    /* Within budget: only the per-connection bound applies. */
    assert_int_equal(outbudget_check(&b, big), OUT_SEND);
    outbudget_account(&b, &small, 1536 * KIB);
    /* Over budget: the share is 4 MiB / 2 holders. */
    assert_int_equal(outbudget_share(&b), 2 * MIB);
    assert_int_equal(outbudget_check(&b, big), OUT_OVER_SHARE);
    assert_int_equal(outbudget_check(&b, small), OUT_SEND);
}

static void share_has_floor(void **state)
{
    struct out_budget b;
    uint32_t counted[1000] = {0};

    (void)state;
    outbudget_init(&b, MIB, 8 * MIB);
    assert_int_equal(outbudget_share(&b), 8 * MIB);
    for (size_t i = 0; i < 1000; i++)
        outbudget_account(&b, &counted[i], 1);
    assert_int_equal(outbudget_share(&b), 64 * KIB);
}

/* 1,000 stalled subscribers and one that drains after every message: the
 * stalled ones are held near their share, the fast one loses nothing. */
static void budget_bounds_stalled_fan_out(void **state)
{
    enum { N = 1000, MSG = 16 * KIB, ROUNDS = 200 };
    struct out_budget b;
    static uint32_t counted[N];
    uint32_t fast = 0;
    size_t fast_sent = 0, bound;

    (void)state;
    memset(counted, 0, sizeof counted);
    outbudget_init(&b, MIB, 8 * MIB);
    for (size_t r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < N; i++)
            if (outbudget_check(&b, counted[i]) == OUT_SEND)
                outbudget_account(&b, &counted[i], counted[i] + MSG);
        if (outbudget_check(&b, fast) == OUT_SEND) {
            outbudget_account(&b, &fast, fast + MSG);
            fast_sent++;
        }
        outbudget_account(&b, &fast, 0);
    }
    assert_int_equal(fast_sent, ROUNDS);
    /* Each stalled subscriber stops one message past its share (the 64 KiB
     * floor here), so the total stays near N * (floor + MSG), plus the
     * fast subscriber's one message. */
    bound = (size_t)N * (64 * KIB + MSG) + MSG;
    assert_true(b.peak <= bound);
    assert_true(b.total > 8 * MIB);
    for (size_t i = 0; i < N; i++)
        assert_true(counted[i] <= 64 * KIB + MSG);
}

/* A unit-test hub with the flush handle that conn_send needs. */
static struct hub *test_hub(size_t conn_limit, size_t budget)
{
    struct hub *hub = unit_hub_new();

    uv_idle_init(hub->loop, &hub->flush_idle);
    outbudget_init(&hub->output, conn_limit, budget);
    return hub;
}

static void free_hub(struct hub *hub)
{
    uv_close((uv_handle_t *)&hub->flush_idle, NULL);
    uv_run(hub->loop, UV_RUN_NOWAIT);
    unit_hub_free(hub);
}

/* An active MQTT 3.1.1 connection whose output is held (as while a store
 * write is pending), so nothing touches its socket. */
static struct conn *test_conn(struct hub *hub, struct session *s)
{
    struct conn *c = vigil_calloc(1, sizeof *c);

    assert_non_null(c);
    c->hub = hub;
    c->refs = 1;
    c->holds = 1;
    c->state = CONN_ACTIVE;
    c->version = MQTT_V311;
    vigil_buf_init(&c->in, 1024);
    vigil_buf_init(&c->out, 64 * MIB);
    c->peer = c->client_id = c->device = c->device_type = hub_no_name;
    s->conn = c;
    c->session = s;
    return c;
}

static void deliver(struct session *s, struct msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        session_send_qos0(s, m, false, NULL, 0);
}

static void conn_output_counted_until_freed(void **state)
{
    struct hub *hub = test_hub(MIB, 64 * MIB);
    struct session *s = session_create(hub, "station-1", "", MQTT_V311);
    struct conn *c = test_conn(hub, s);
    static uint8_t payload[1000];
    struct msg *m = msg_new("a/b", 3, payload, sizeof payload, NULL, 0);

    (void)state;
    assert_non_null(m);
    deliver(s, m, 10);
    assert_int_equal(hub->stats.msgs_sent, 10);
    assert_int_equal(hub->output.total, c->out.len);
    assert_int_equal(hub->output.total, conn_backlog(c));
    assert_int_equal(hub->output.holders, 1);
    conn_flush_pending(hub);
    s->conn = NULL;
    conn_unref(c);
    assert_int_equal(hub->output.total, 0);
    assert_int_equal(hub->output.holders, 0);
    msg_unref(m);
    free_hub(hub);
}

static void conn_bound_drops_qos0(void **state)
{
    struct hub *hub = test_hub(64 * KIB, 64 * MIB);
    struct session *s = session_create(hub, "station-1", "", MQTT_V311);
    struct conn *c = test_conn(hub, s);
    static uint8_t payload[16 * KIB];
    struct msg *m = msg_new("a/b", 3, payload, sizeof payload, NULL, 0);

    (void)state;
    assert_non_null(m);
    deliver(s, m, 10);
    /* Each PUBLISH is 16,393 bytes: the fifth finds 65,572 bytes waiting,
     * over the 64 KiB bound, so it and the rest are dropped. */
    assert_int_equal(hub->stats.msgs_sent, 4);
    assert_int_equal(hub->stats.msgs_dropped, 6);
    assert_int_equal(hub->output.dropped_conn_limit, 6);
    assert_int_equal(hub->output.dropped_budget, 0);
    conn_flush_pending(hub);
    s->conn = NULL;
    conn_unref(c);
    assert_int_equal(hub->output.total, 0);
    msg_unref(m);
    free_hub(hub);
}

static void budget_drops_for_largest_holder(void **state)
{
    struct hub *hub = test_hub(16 * MIB, MIB);
    struct session *slow = session_create(hub, "slow", "", MQTT_V311);
    struct session *fast = session_create(hub, "fast", "", MQTT_V311);
    struct conn *cs = test_conn(hub, slow);
    struct conn *cf = test_conn(hub, fast);
    static uint8_t payload[16 * KIB];
    struct msg *m = msg_new("a/b", 3, payload, sizeof payload, NULL, 0);

    (void)state;
    assert_non_null(m);
    deliver(slow, m, 100);
    /* Alone, slow's share is the whole budget: 64 PUBLISH packets of
     * 16,393 bytes pass 1 MiB, and the rest are dropped. */
    assert_int_equal(hub->stats.msgs_sent, 64);
    assert_int_equal(hub->output.dropped_budget, 36);
    assert_true(hub->output.total > MIB);
    /* Over budget, fast (below its share of 512 KiB) still gets messages. */
    deliver(fast, m, 10);
    assert_int_equal(hub->stats.msgs_sent, 74);
    assert_int_equal(hub->output.dropped_conn_limit, 0);
    assert_int_equal(hub->stats.msgs_dropped, 36);
    conn_flush_pending(hub);
    slow->conn = NULL;
    fast->conn = NULL;
    conn_unref(cs);
    conn_unref(cf);
    assert_int_equal(hub->output.total, 0);
    assert_int_equal(hub->output.holders, 0);
    msg_unref(m);
    free_hub(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(account_tracks_total_and_holders),
        cmocka_unit_test(account_returns_to_zero),
        cmocka_unit_test(check_applies_connection_bound),
        cmocka_unit_test(check_applies_fair_share),
        cmocka_unit_test(share_has_floor),
        cmocka_unit_test(budget_bounds_stalled_fan_out),
        cmocka_unit_test(conn_output_counted_until_freed),
        cmocka_unit_test(conn_bound_drops_qos0),
        cmocka_unit_test(budget_drops_for_largest_holder),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
