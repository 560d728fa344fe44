/* Unit tests of the MQTT-SN gateway's tables: topic ids, the output queue
 * with its drop-oldest cap, QoS 2 message ids and predefined topics. The
 * protocol exchanges run end to end in tests/e2e/mqttsn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "core/alloc.h"
#include "front/mqttsn_internal.h"

static void test_topics_assign_in_order(void **state)
{
    struct sn_topics t;
    uint16_t a = 0, b = 0, again = 0;

    sn_topics_init(&t, SN_MAX_TOPICS);
    assert_int_equal(sn_topics_add(&t, "ward/a", 6, &a), VIGIL_OK);
    assert_int_equal(sn_topics_add(&t, "ward/b", 6, &b), VIGIL_OK);
    assert_int_equal(a, 1);
    assert_int_equal(b, 2);
    assert_int_equal(sn_topics_add(&t, "ward/a", 6, &again), VIGIL_OK);
    assert_int_equal(again, 1);
    assert_int_equal(sn_topics_find(&t, "ward/b", 6), 2);
    assert_int_equal(sn_topics_find(&t, "ward/c", 6), 0);
    sn_topics_free(&t);
}

static void test_topics_get(void **state)
{
    struct sn_topics t;
    struct sn_topic *e;
    uint16_t id = 0;

    sn_topics_init(&t, SN_MAX_TOPICS);
    assert_int_equal(sn_topics_add(&t, "a/b/c", 5, &id), VIGIL_OK);
    e = sn_topics_get(&t, id);
    assert_non_null(e);
    assert_string_equal(e->name, "a/b/c");
    assert_int_equal(e->len, 5);
    assert_false(e->known);
    assert_null(sn_topics_get(&t, 0));
    assert_null(sn_topics_get(&t, 2));
    sn_topics_free(&t);
}

static void test_topics_limit(void **state)
{
    struct sn_topics t;
    char name[16];
    uint16_t id = 0;

    sn_topics_init(&t, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "t/%d", i);
        assert_int_equal(sn_topics_add(&t, name, strlen(name), &id), VIGIL_OK);
    }
    assert_int_equal(sn_topics_add(&t, "t/9", 3, &id), VIGIL_ERR_LIMIT);
    /* A name that has an id still gets it when the table is full. */
    assert_int_equal(sn_topics_add(&t, "t/1", 3, &id), VIGIL_OK);
    assert_int_equal(id, 2);
    sn_topics_free(&t);
}

static void test_topics_max_clamped(void **state)
{
    struct sn_topics t;

    sn_topics_init(&t, SN_MAX_TOPICS * 4);
    assert_int_equal(t.max, SN_MAX_TOPICS);
    sn_topics_free(&t);
}

static struct msg *new_msg(const char *topic)
{
    struct msg *m = msg_new(topic, strlen(topic), (const uint8_t *)"x", 1, NULL, 0);

    assert_non_null(m);
    return m;
}

/* Pushes a message and drops the caller's reference. */
static bool push(struct sn_outq *q, const char *topic, uint32_t cap, bool busy)
{
    struct msg *m = new_msg(topic);
    bool dropped = true;

    assert_int_equal(sn_outq_push(q, m, 1, false, cap, busy, &dropped), VIGIL_OK);
    msg_unref(m);
    return dropped;
}

static void test_outq_fifo(void **state)
{
    struct sn_outq q = {0};

    assert_false(push(&q, "a", 10, false));
    assert_false(push(&q, "b", 10, false));
    assert_int_equal(q.n, 2);
    assert_string_equal(q.head->msg->topic, "a");
    sn_outq_pop(&q);
    assert_string_equal(q.head->msg->topic, "b");
    sn_outq_pop(&q);
    assert_null(q.head);
    assert_null(q.tail);
    assert_int_equal(q.n, 0);
}

static void test_outq_drops_oldest(void **state)
{
    struct sn_outq q = {0};

    push(&q, "a", 2, false);
    push(&q, "b", 2, false);
    assert_true(push(&q, "c", 2, false));
    assert_int_equal(q.n, 2);
    assert_string_equal(q.head->msg->topic, "b");
    assert_string_equal(q.tail->msg->topic, "c");
    sn_outq_clear(&q);
    assert_int_equal(q.n, 0);
}

static void test_outq_keeps_head_in_flight(void **state)
{
    struct sn_outq q = {0};

    push(&q, "a", 2, false);
    push(&q, "b", 2, true);
    assert_true(push(&q, "c", 2, true));
    assert_int_equal(q.n, 2);
    assert_string_equal(q.head->msg->topic, "a");
    assert_string_equal(q.head->next->msg->topic, "c");
    sn_outq_clear(&q);
}

static void test_outq_cap_one_in_flight(void **state)
{
    struct sn_outq q = {0};

    push(&q, "a", 1, false);
    assert_true(push(&q, "b", 1, true));
    assert_int_equal(q.n, 1);
    assert_string_equal(q.head->msg->topic, "a");
    sn_outq_clear(&q);
}

static void test_outq_holds_reference(void **state)
{
    struct sn_outq q = {0};
    struct msg *m = new_msg("a");
    bool dropped;

    assert_int_equal(sn_outq_push(&q, m, 2, true, 5, false, &dropped), VIGIL_OK);
    assert_int_equal(m->refs, 2);
    assert_int_equal(q.head->qos, 2);
    assert_true(q.head->retain);
    sn_outq_clear(&q);
    assert_int_equal(m->refs, 1);
    msg_unref(m);
}

static void test_idset(void **state)
{
    struct sn_idset s = {0};

    assert_int_equal(sn_idset_add(&s, 7, 2), VIGIL_OK);
    assert_int_equal(sn_idset_add(&s, 7, 2), VIGIL_OK);
    assert_int_equal(sn_idset_add(&s, 9, 2), VIGIL_OK);
    assert_int_equal(sn_idset_add(&s, 11, 2), VIGIL_ERR_LIMIT);
    assert_true(sn_idset_has(&s, 7));
    assert_true(sn_idset_remove(&s, 7));
    assert_false(sn_idset_has(&s, 7));
    assert_false(sn_idset_remove(&s, 7));
    assert_true(sn_idset_has(&s, 9));
    sn_idset_free(&s);
    assert_int_equal(s.n, 0);
}

static void gateway_with_predefined(struct config_gateway *g)
{
    memset(g, 0, sizeof *g);
    g->predefined[0].id = 1;
    snprintf(g->predefined[0].topic, sizeof g->predefined[0].topic, "ward/%%d/heart_rate");
    g->predefined[1].id = 0x0200;
    snprintf(g->predefined[1].topic, sizeof g->predefined[1].topic, "ward/alarms");
    g->n_predefined = 2;
}

static void test_predefined_expands_device(void **state)
{
    struct config_gateway g;
    char out[64];

    gateway_with_predefined(&g);
    assert_int_equal(sn_predefined_topic(&g, 1, "mon-7", out, sizeof out), 21);
    assert_string_equal(out, "ward/mon-7/heart_rate");
    assert_int_equal(sn_predefined_topic(&g, 0x0200, "", out, sizeof out), 11);
    assert_string_equal(out, "ward/alarms");
}

static void test_predefined_unknown_or_anonymous(void **state)
{
    struct config_gateway g;
    char out[64];

    gateway_with_predefined(&g);
    assert_int_equal(sn_predefined_topic(&g, 5, "mon-7", out, sizeof out), 0);
    assert_int_equal(sn_predefined_topic(&g, 1, "", out, sizeof out), 0);
    assert_int_equal(sn_predefined_topic(&g, 1, "mon-7", out, 10), 0);
}

static void test_predefined_find(void **state)
{
    struct config_gateway g;
    uint16_t id = 0;

    gateway_with_predefined(&g);
    assert_true(sn_predefined_find(&g, "mon-7", "ward/mon-7/heart_rate", 21, &id));
    assert_int_equal(id, 1);
    assert_false(sn_predefined_find(&g, "mon-8", "ward/mon-7/heart_rate", 21, &id));
    assert_true(sn_predefined_find(&g, "", "ward/alarms", 11, &id));
    assert_int_equal(id, 0x0200);
    assert_false(sn_predefined_find(&g, "", "ward/alarm", 10, &id));
}

static void test_type_rule(void **state)
{
    assert_string_equal(sn_type_rule(SN_CONNACK), "MQTT-SN-1.2:5.4.5");
    assert_string_equal(sn_type_rule(SN_PUBREL), "MQTT-SN-1.2:5.4.14");
    assert_string_equal(sn_type_rule(0x03), "MQTT-SN-1.2:5.2.2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_assign_in_order),
        cmocka_unit_test(test_topics_get),
        cmocka_unit_test(test_topics_limit),
        cmocka_unit_test(test_topics_max_clamped),
        cmocka_unit_test(test_outq_fifo),
        cmocka_unit_test(test_outq_drops_oldest),
        cmocka_unit_test(test_outq_keeps_head_in_flight),
        cmocka_unit_test(test_outq_cap_one_in_flight),
        cmocka_unit_test(test_outq_holds_reference),
        cmocka_unit_test(test_idset),
        cmocka_unit_test(test_predefined_expands_device),
        cmocka_unit_test(test_predefined_unknown_or_anonymous),
        cmocka_unit_test(test_predefined_find),
        cmocka_unit_test(test_type_rule),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
