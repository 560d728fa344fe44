/* Session state: subscriptions, the delivery queue and its limit, packet
 * ids, incoming QoS 2 ids, and routing into offline sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "unit_hub.h"

static struct msg *make_msg(const char *topic, const char *payload, uint8_t qos)
{
    struct msg *m = msg_new(topic, strlen(topic), (const uint8_t *)payload, strlen(payload), NULL, 0);

    assert_non_null(m);
    m->qos = qos;
    return m;
}

static void session_create_and_find(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "mon-0001", "", MQTT_V5);

    (void)state;
    assert_non_null(s);
    assert_ptr_equal(session_find(hub, "mon-0001"), s);
    assert_null(session_find(hub, "mon-0002"));
    assert_int_equal(hub->sessions.count, 1);
    unit_hub_free(hub);
}

static void session_names_in_one_block(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *dev = session_create(hub, "mon-0001:b", "mon-0001", MQTT_V5);
    struct session *anon = session_create(hub, "anon-1", "", MQTT_V311);

    (void)state;
    assert_non_null(dev);
    assert_non_null(anon);
    assert_string_equal(dev->client_id, "mon-0001:b");
    assert_string_equal(session_device(dev), "mon-0001");
    assert_string_equal(session_device(anon), "");
    /* The map borrows the session's own copy of the client id. */
    assert_ptr_equal(session_find(hub, "mon-0001:b"), dev);
    session_discard(anon);
    assert_null(session_find(hub, "anon-1"));
    assert_ptr_equal(session_find(hub, "mon-0001:b"), dev);
    unit_hub_free(hub);
}

static void subscription_add_replace_remove(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    bool existed = true;

    (void)state;
    assert_int_equal(session_add_sub(s, "a/+", 3, 1, 7, &existed), VIGIL_OK);
    assert_false(existed);
    assert_int_equal(session_add_sub(s, "a/+", 3, 2, 8, &existed), VIGIL_OK);
    assert_true(existed);
    assert_int_equal(s->n_subs, 1);
    assert_int_equal(s->subs[0].options, 2);
    assert_int_equal(s->subs[0].sub_id, 8);
    assert_int_equal(subtree_count(hub->subs), 1);
    assert_true(session_remove_sub(s, "a/+", 3));
    assert_false(session_remove_sub(s, "a/+", 3));
    assert_int_equal(subtree_count(hub->subs), 0);
    unit_hub_free(hub);
}

static void offline_queue_keeps_qos12_only(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V311);
    struct msg *m0 = make_msg("a/b", "zero", 0);
    struct msg *m1 = make_msg("a/b", "one", 1);

    (void)state;
    session_enqueue(s, m0, 0, false, NULL, 0);
    session_enqueue(s, m1, 1, false, NULL, 0);
    assert_int_equal(s->n_queued, 1);
    assert_ptr_equal(s->queue_head->msg, m1);
    assert_int_equal(m1->refs, 2);
    assert_int_equal(hub->stats.msgs_dropped, 1);
    msg_unref(m0);
    msg_unref(m1);
    unit_hub_free(hub);
}

static void queue_limit_drops_oldest(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m[5];
    struct delivery *d;

    (void)state;
    hub->cfg.limits.max_queued_messages = 3;
    for (int i = 0; i < 5; i++) {
        m[i] = make_msg("a/b", "x", 1);
        session_enqueue(s, m[i], 1, false, NULL, 0);
    }
    assert_int_equal(s->n_queued, 3);
    assert_int_equal(hub->stats.msgs_dropped, 2);
    d = s->queue_head;
    assert_ptr_equal(d->msg, m[2]);
    assert_ptr_equal(d->next->msg, m[3]);
    assert_ptr_equal(d->next->next->msg, m[4]);
    for (int i = 0; i < 5; i++)
        msg_unref(m[i]);
    unit_hub_free(hub);
}

static void routing_merges_overlapping_subscriptions(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m = make_msg("north/icu3/r1/mon-1/hr", "72", 2);
    bool existed;

    (void)state;
    assert_int_equal(session_add_sub(s, "north/#", 7, 1, 11, &existed), VIGIL_OK);
    assert_int_equal(session_add_sub(s, "+/icu3/+/+/hr", 13, 2, 12, &existed), VIGIL_OK);
    router_publish(hub, m, NULL);
    assert_int_equal(s->n_queued, 1);
    assert_int_equal(s->queue_head->qos, 2);
    assert_int_equal(s->queue_head->n_sub_ids, 2);
    msg_unref(m);
    unit_hub_free(hub);
}

static void routing_honours_no_local(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m = make_msg("a/b", "x", 1);
    bool existed;

    (void)state;
    assert_int_equal(session_add_sub(s, "a/b", 3, 1 | MQTT_SUBOPT_NO_LOCAL, 0, &existed), VIGIL_OK);
    router_publish(hub, m, s);
    assert_int_equal(s->n_queued, 0);
    router_publish(hub, m, NULL);
    assert_int_equal(s->n_queued, 1);
    msg_unref(m);
    unit_hub_free(hub);
}

static void routing_caps_qos_at_granted(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m = make_msg("a/b", "x", 2);
    bool existed;

    (void)state;
    assert_int_equal(session_add_sub(s, "a/b", 3, 1, 0, &existed), VIGIL_OK);
    router_publish(hub, m, NULL);
    assert_int_equal(s->queue_head->qos, 1);
    msg_unref(m);
    unit_hub_free(hub);
}

static void inqos2_set_operations(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);

    (void)state;
    for (uint16_t id = 1; id <= 20; id++)
        assert_true(session_add_inqos2(s, id));
    assert_true(session_has_inqos2(s, 13));
    assert_true(session_remove_inqos2(s, 13));
    assert_false(session_has_inqos2(s, 13));
    assert_false(session_remove_inqos2(s, 13));
    assert_true(session_has_inqos2(s, 20));
    assert_non_null(s->cold);
    assert_int_equal(s->cold->n_inqos2, 19);
    unit_hub_free(hub);
}

static void offline_sessions_expire_in_sweep(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *a = session_create(hub, "a", "", MQTT_V5);
    struct session *b = session_create(hub, "b", "", MQTT_V5);
    struct session *forever = session_create(hub, "forever", "", MQTT_V5);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(forever);
    a->expiry_interval = 10;
    b->expiry_interval = 20;
    forever->expiry_interval = UINT32_MAX;
    session_mark_offline(a, 1000);
    session_mark_offline(b, 1000);
    session_mark_offline(forever, 1000);
    assert_true(a->in_offline_list);
    assert_non_null(a->cold);
    assert_int_equal(a->cold->offline_since_ms, 1000);

    session_offline_sweep(hub, 10999);
    assert_ptr_equal(session_find(hub, "a"), a);
    session_offline_sweep(hub, 11000);
    assert_null(session_find(hub, "a"));
    assert_ptr_equal(session_find(hub, "b"), b);
    session_offline_sweep(hub, 21000);
    assert_null(session_find(hub, "b"));
    session_offline_sweep(hub, UINT64_C(1) << 40);
    assert_ptr_equal(session_find(hub, "forever"), forever);
    assert_ptr_equal(hub->offline_head, forever);
    assert_null(forever->cold->offline_next);
    assert_null(forever->cold->offline_prev);
    unit_hub_free(hub);
}

static void conn_shares_session_client_id(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "mon-0001", "", MQTT_V311);
    struct conn *c = vigil_calloc(1, sizeof *c);

    (void)state;
    assert_non_null(s);
    assert_non_null(c);
    c->hub = hub;
    c->refs = 1;
    c->peer = c->client_id = c->device = c->device_type = hub_no_name;
    assert_true(hub_name_set(&c->client_id, "mon-0002", 8, CONN_CLIENT_ID_MAX));
    conn_share_client_id(c, s);
    assert_false(c->client_id_shared);
    assert_int_equal(s->refs, 1);

    assert_true(hub_name_set(&c->client_id, "mon-0001", 8, CONN_CLIENT_ID_MAX));
    conn_share_client_id(c, s);
    assert_true(c->client_id_shared);
    assert_ptr_equal(c->client_id, s->client_id);
    assert_int_equal(s->refs, 2);
    /* The connection's reference keeps the id valid after the discard. */
    session_discard(s);
    assert_null(session_find(hub, "mon-0001"));
    assert_string_equal(c->client_id, "mon-0001");
    conn_unref(c);
    unit_hub_free(hub);
}

static void restored_inflight_is_found_by_packet_id(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m = make_msg("a/b", "x", 2);
    struct delivery *d1 = session_restore_delivery(s, m, 1, 2, STORE_Q_PUBREL, 41);
    struct delivery *d2 = session_restore_delivery(s, m, 2, 1, STORE_Q_PENDING, 0);

    (void)state;
    assert_non_null(d1);
    assert_non_null(d2);
    assert_int_equal(s->n_inflight, 1);
    assert_ptr_equal(session_find_inflight(s, 41), d1);
    assert_null(session_find_inflight(s, 42));
    assert_false(d2->sent);
    msg_unref(m);
    unit_hub_free(hub);
}

static void retained_delivery_on_subscribe(void **state)
{
    struct hub *hub = unit_hub_new();
    struct session *s = session_create(hub, "c1", "", MQTT_V5);
    struct msg *m = make_msg("a/b", "x", 1);
    struct msg *clear = make_msg("a/b", "", 1);

    (void)state;
    m->retain = true;
    router_retain(hub, m, false);
    assert_int_equal(retain_count(hub->retained), 1);
    router_send_retained(hub, s, "a/#", 3, 2, 5);
    assert_int_equal(s->n_queued, 1);
    assert_true(s->queue_head->retain);
    assert_int_equal(s->queue_head->sub_ids[0], 5);
    clear->retain = true;
    router_retain(hub, clear, false);
    assert_int_equal(retain_count(hub->retained), 0);
    msg_unref(m);
    msg_unref(clear);
    unit_hub_free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_create_and_find),
        cmocka_unit_test(session_names_in_one_block),
        cmocka_unit_test(subscription_add_replace_remove),
        cmocka_unit_test(offline_queue_keeps_qos12_only),
        cmocka_unit_test(queue_limit_drops_oldest),
        cmocka_unit_test(routing_merges_overlapping_subscriptions),
        cmocka_unit_test(routing_honours_no_local),
        cmocka_unit_test(routing_caps_qos_at_granted),
        cmocka_unit_test(inqos2_set_operations),
        cmocka_unit_test(offline_sessions_expire_in_sweep),
        cmocka_unit_test(conn_shares_session_client_id),
        cmocka_unit_test(restored_inflight_is_found_by_packet_id),
        cmocka_unit_test(retained_delivery_on_subscribe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
