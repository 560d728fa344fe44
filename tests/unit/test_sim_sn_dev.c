/* Tests of the simulator's MQTT-SN client: connection with a will,
 * registration, QoS 0/1/2, retries, keep-alive and the sleep cycle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/mqttsn/mqttsn.h"
#include "sim/sn_dev.h"

#define MAX_SENT 64

struct harness {
    struct sn_dev dev;
    uint8_t sent[MAX_SENT][1024];
    size_t sent_len[MAX_SENT];
    size_t n_sent;
    int connected_calls;
    int lost_calls;
    char lost_why[128];
};

static vigil_err capture(void *user, const uint8_t *data, size_t len)
{
    struct harness *h = user;

    assert_true(h->n_sent < MAX_SENT);
    memcpy(h->sent[h->n_sent], data, len);
    h->sent_len[h->n_sent++] = len;
    return VIGIL_OK;
}

static void on_connected(void *user)
{
    ((struct harness *)user)->connected_calls++;
}

static void on_lost(void *user, const char *why)
{
    struct harness *h = user;

    h->lost_calls++;
    snprintf(h->lost_why, sizeof h->lost_why, "%s", why);
}

static struct harness *new_harness(void)
{
    struct harness *h = test_calloc(1, sizeof *h);
    struct sn_dev_config cfg;

    memset(&cfg, 0, sizeof cfg);
    cfg.client_id = "sens-0001";
    cfg.keep_alive_s = 30;
    cfg.topics[0] = "north/icu3/room351/sens-0001/heart_rate";
    cfg.topics[1] = "north/icu3/room351/sens-0001/status";
    cfg.topics[2] = "north/icu3/room351/sens-0001/alarm";
    cfg.n_topics = 3;
    cfg.will_topic = 1;
    cfg.will_msg = "{\"state\":\"offline\"}";
    cfg.send = capture;
    cfg.connected = on_connected;
    cfg.lost = on_lost;
    cfg.user = h;
    cfg.seed = 7;
    assert_int_equal(sn_dev_init(&h->dev, &cfg), VIGIL_OK);
    return h;
}

static void free_harness(struct harness *h)
{
    sn_dev_free(&h->dev);
    test_free(h);
}

static void last_sent(const struct harness *h, struct sn_msg *m)
{
    struct sn_error err;

    assert_true(h->n_sent > 0);
    assert_int_equal(sn_decode(h->sent[h->n_sent - 1], h->sent_len[h->n_sent - 1], m, &err),
                     VIGIL_OK);
}

static void feed(struct harness *h, const struct sn_msg *m, uint64_t now)
{
    uint8_t wire[512];
    size_t n = sn_encode(m, wire, sizeof wire);

    assert_true(n > 0);
    sn_dev_input(&h->dev, wire, n, now);
}

static void feed_simple(struct harness *h, uint8_t type, uint16_t topic_id, uint16_t msg_id,
                        uint8_t rc, uint64_t now)
{
    struct sn_msg m;

    memset(&m, 0, sizeof m);
    m.type = type;
    m.topic_id = topic_id;
    m.msg_id = msg_id;
    m.return_code = rc;
    feed(h, &m, now);
}

/* Acknowledges every REGISTER with topic id index + 1. */
static void register_all(struct harness *h, uint64_t now)
{
    struct sn_msg m;

    for (uint16_t id = 1; !sn_dev_idle(&h->dev); id++) {
        last_sent(h, &m);
        assert_int_equal(m.type, SN_REGISTER);
        assert_int_equal(m.topic_id, 0);
        feed_simple(h, SN_REGACK, id, m.msg_id, SN_RC_ACCEPTED, now);
    }
}

/* Connects without the will exchange and registers every topic. */
static void connect_active(struct harness *h)
{
    sn_dev_connect(&h->dev, 0);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_ACCEPTED, 1);
    register_all(h, 2);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_ACTIVE);
}

static void connect_with_will(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    sn_dev_connect(&h->dev, 0);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_CONNECT);
    assert_true(m.flags.will);
    assert_true(m.flags.clean_session);
    assert_int_equal(m.duration, 30);
    assert_int_equal(m.protocol_id, SN_PROTOCOL_ID);
    assert_int_equal(m.client_id.len, 9);
    assert_memory_equal(m.client_id.p, "sens-0001", 9);
    feed_simple(h, SN_WILLTOPICREQ, 0, 0, 0, 1);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_WILLTOPIC);
    assert_int_equal(m.flags.qos, 1);
    assert_int_equal(m.topic_name.len, strlen("north/icu3/room351/sens-0001/status"));
    feed_simple(h, SN_WILLMSGREQ, 0, 0, 0, 2);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_WILLMSG);
    assert_memory_equal(m.data.p, "{\"state\":\"offline\"}", m.data.len);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_ACCEPTED, 3);
    assert_int_equal(h->connected_calls, 1);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_ACTIVE);
    /* Registration of the first topic follows at once. */
    last_sent(h, &m);
    assert_int_equal(m.type, SN_REGISTER);
    assert_memory_equal(m.topic_name.p, "north/icu3/room351/sens-0001/heart_rate", m.topic_name.len);
    free_harness(h);
}

static void qos0_needs_registration(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    assert_int_equal(sn_dev_publish(&h->dev, 0, 0, (const uint8_t *)"1", 1, 0), VIGIL_ERR_CLOSED);
    sn_dev_connect(&h->dev, 0);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_ACCEPTED, 1);
    assert_int_equal(sn_dev_publish(&h->dev, 0, 0, (const uint8_t *)"1", 1, 1), VIGIL_ERR_CLOSED);
    assert_int_equal(h->dev.counters.unregistered, 1);
    register_all(h, 2);
    assert_int_equal(sn_dev_publish(&h->dev, 0, 0, (const uint8_t *)"72", 2, 3), VIGIL_OK);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PUBLISH);
    assert_int_equal(m.flags.qos, 0);
    assert_int_equal(m.flags.topic_id_type, SN_TOPIC_NORMAL);
    assert_int_equal(m.topic_id, 1);
    assert_int_equal(m.msg_id, 0);
    assert_memory_equal(m.data.p, "72", 2);
    free_harness(h);
}

static void qos1_puback(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    connect_active(h);
    assert_int_equal(sn_dev_publish(&h->dev, 1, 1, (const uint8_t *)"{}", 2, 10), VIGIL_OK);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PUBLISH);
    assert_int_equal(m.flags.qos, 1);
    assert_int_equal(m.topic_id, 2);
    assert_int_not_equal(m.msg_id, 0);
    assert_false(sn_dev_idle(&h->dev));
    feed_simple(h, SN_PUBACK, m.topic_id, m.msg_id, SN_RC_ACCEPTED, 11);
    assert_int_equal(h->dev.counters.delivered[1], 1);
    assert_true(sn_dev_idle(&h->dev));
    free_harness(h);
}

static void qos2_exchange(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;
    uint16_t id;

    (void)state;
    connect_active(h);
    sn_dev_publish(&h->dev, 2, 2, (const uint8_t *)"{}", 2, 10);
    last_sent(h, &m);
    assert_int_equal(m.flags.qos, 2);
    id = m.msg_id;
    feed_simple(h, SN_PUBREC, 0, id, 0, 11);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PUBREL);
    assert_int_equal(m.msg_id, id);
    feed_simple(h, SN_PUBCOMP, 0, id, 0, 12);
    assert_int_equal(h->dev.counters.delivered[2], 1);
    assert_true(sn_dev_idle(&h->dev));
    free_harness(h);
}

static void queued_in_order(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    connect_active(h);
    sn_dev_publish(&h->dev, 1, 1, (const uint8_t *)"a", 1, 10);
    sn_dev_publish(&h->dev, 2, 2, (const uint8_t *)"b", 1, 10);
    last_sent(h, &m);
    assert_memory_equal(m.data.p, "a", 1);
    feed_simple(h, SN_PUBACK, m.topic_id, m.msg_id, SN_RC_ACCEPTED, 11);
    last_sent(h, &m);
    assert_memory_equal(m.data.p, "b", 1);
    assert_int_equal(m.flags.qos, 2);
    free_harness(h);
}

static void retry_with_dup_then_lost(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;
    size_t before;

    (void)state;
    connect_active(h);
    sn_dev_publish(&h->dev, 1, 1, (const uint8_t *)"{}", 2, 1000);
    before = h->n_sent;
    sn_dev_tick(&h->dev, 1000 + SN_DEV_RETRY_MS - 1);
    assert_int_equal(h->n_sent, before);
    sn_dev_tick(&h->dev, 1000 + SN_DEV_RETRY_MS);
    assert_int_equal(h->n_sent, before + 1);
    last_sent(h, &m);
    assert_true(m.flags.dup);
    for (unsigned i = 1; i < SN_DEV_RETRIES; i++)
        sn_dev_tick(&h->dev, 1000 + SN_DEV_RETRY_MS * (i + 1));
    assert_int_equal(h->dev.counters.retries, SN_DEV_RETRIES);
    assert_int_equal(h->lost_calls, 0);
    sn_dev_tick(&h->dev, 1000 + SN_DEV_RETRY_MS * (SN_DEV_RETRIES + 1));
    assert_int_equal(h->lost_calls, 1);
    assert_string_equal(h->lost_why, "no answer from the gateway");
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_OFFLINE);
    /* The message stays queued for the next connection. */
    assert_int_equal(h->dev.q_len, 1);
    free_harness(h);
}

static void invalid_topic_id_reregisters(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    connect_active(h);
    sn_dev_publish(&h->dev, 1, 1, (const uint8_t *)"{}", 2, 10);
    last_sent(h, &m);
    feed_simple(h, SN_PUBACK, m.topic_id, m.msg_id, SN_RC_INVALID_TOPIC_ID, 11);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_REGISTER);
    assert_memory_equal(m.topic_name.p, "north/icu3/room351/sens-0001/status", m.topic_name.len);
    feed_simple(h, SN_REGACK, 9, m.msg_id, SN_RC_ACCEPTED, 12);
    /* The message goes out again with the new id. */
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PUBLISH);
    assert_int_equal(m.topic_id, 9);
    free_harness(h);
}

static void refused_registration_drops_messages(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    sn_dev_connect(&h->dev, 0);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_ACCEPTED, 1);
    last_sent(h, &m);
    feed_simple(h, SN_REGACK, 0, m.msg_id, SN_RC_NOT_SUPPORTED, 2);
    assert_int_equal(h->dev.counters.rejected, 1);
    register_all(h, 3);
    assert_int_equal(sn_dev_publish(&h->dev, 0, 1, (const uint8_t *)"x", 1, 4), VIGIL_OK);
    assert_int_equal(h->dev.counters.lost, 1);
    assert_true(sn_dev_idle(&h->dev));
    free_harness(h);
}

static void connack_refused(void **state)
{
    struct harness *h = new_harness();

    (void)state;
    sn_dev_connect(&h->dev, 0);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_CONGESTION, 1);
    assert_int_equal(h->lost_calls, 1);
    assert_string_equal(h->lost_why, "connection refused with return code 0x01");
    assert_int_equal(h->dev.counters.refused, 1);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_OFFLINE);
    free_harness(h);
}

static void keep_alive_ping(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;
    size_t before;

    (void)state;
    connect_active(h);
    before = h->n_sent;
    sn_dev_tick(&h->dev, 29999);
    assert_int_equal(h->n_sent, before);
    sn_dev_tick(&h->dev, 30002);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PINGREQ);
    assert_int_equal(m.client_id.len, 0);
    feed_simple(h, SN_PINGRESP, 0, 0, 0, 30010);
    assert_false(h->dev.ping_outstanding);
    /* Silence after the next PINGREQ ends the connection. */
    for (uint64_t t = 60010; t < 60010 + SN_DEV_RETRY_MS * (SN_DEV_RETRIES + 2); t += 500)
        sn_dev_tick(&h->dev, t);
    assert_int_equal(h->lost_calls, 1);
    assert_string_equal(h->lost_why, "no PINGRESP from the gateway");
    free_harness(h);
}

static void sleep_wake_resume(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    connect_active(h);
    sn_dev_disconnect(&h->dev, 20, 100);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_DISCONNECT);
    assert_true(m.has_duration);
    assert_int_equal(m.duration, 20);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_DISCONNECTING);
    feed_simple(h, SN_DISCONNECT, 0, 0, 0, 101);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_ASLEEP);
    assert_int_equal(h->dev.counters.sleeps, 1);
    /* Asleep, no keep-alive PINGREQ is sent. */
    sn_dev_tick(&h->dev, 100000);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_DISCONNECT);
    sn_dev_wake(&h->dev, 100001);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_PINGREQ);
    assert_memory_equal(m.client_id.p, "sens-0001", 9);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_AWAKE);
    feed_simple(h, SN_PINGRESP, 0, 0, 0, 100002);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_ASLEEP);
    assert_int_equal(h->dev.counters.wakes, 1);
    /* Resuming keeps the session: no CleanSession, no will, topics kept. */
    sn_dev_connect(&h->dev, 100003);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_CONNECT);
    assert_false(m.flags.clean_session);
    assert_false(m.flags.will);
    feed_simple(h, SN_CONNACK, 0, 0, SN_RC_ACCEPTED, 100004);
    assert_true(sn_dev_idle(&h->dev));
    assert_int_equal(sn_dev_publish(&h->dev, 0, 0, (const uint8_t *)"1", 1, 100005), VIGIL_OK);
    free_harness(h);
}

static void gateway_disconnect_is_lost(void **state)
{
    struct harness *h = new_harness();

    (void)state;
    connect_active(h);
    feed_simple(h, SN_DISCONNECT, 0, 0, 0, 10);
    assert_int_equal(h->lost_calls, 1);
    assert_string_equal(h->lost_why, "disconnected by the gateway");
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_OFFLINE);
    free_harness(h);
}

static void final_disconnect(void **state)
{
    struct harness *h = new_harness();
    struct sn_msg m;

    (void)state;
    connect_active(h);
    sn_dev_disconnect(&h->dev, 0, 10);
    last_sent(h, &m);
    assert_int_equal(m.type, SN_DISCONNECT);
    assert_false(m.has_duration);
    feed_simple(h, SN_DISCONNECT, 0, 0, 0, 11);
    assert_int_equal(sn_dev_state(&h->dev), SN_DEV_OFFLINE);
    assert_int_equal(h->lost_calls, 0);
    free_harness(h);
}

static void init_checks_config(void **state)
{
    struct sn_dev dev;
    struct sn_dev_config cfg;

    (void)state;
    memset(&cfg, 0, sizeof cfg);
    cfg.client_id = "a-client-id-of-24-chars!";
    cfg.topics[0] = "t";
    cfg.n_topics = 1;
    cfg.will_topic = -1;
    cfg.send = capture;
    assert_int_equal(sn_dev_init(&dev, &cfg), VIGIL_ERR_INVALID);
    sn_dev_free(&dev);
    cfg.client_id = "ok";
    cfg.will_topic = 1;
    assert_int_equal(sn_dev_init(&dev, &cfg), VIGIL_ERR_INVALID);
    sn_dev_free(&dev);
    cfg.will_topic = -1;
    cfg.n_topics = 0;
    assert_int_equal(sn_dev_init(&dev, &cfg), VIGIL_ERR_INVALID);
    sn_dev_free(&dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_with_will),
        cmocka_unit_test(qos0_needs_registration),
        cmocka_unit_test(qos1_puback),
        cmocka_unit_test(qos2_exchange),
        cmocka_unit_test(queued_in_order),
        cmocka_unit_test(retry_with_dup_then_lost),
        cmocka_unit_test(invalid_topic_id_reregisters),
        cmocka_unit_test(refused_registration_drops_messages),
        cmocka_unit_test(connack_refused),
        cmocka_unit_test(keep_alive_ping),
        cmocka_unit_test(sleep_wake_resume),
        cmocka_unit_test(gateway_disconnect_is_lost),
        cmocka_unit_test(final_disconnect),
        cmocka_unit_test(init_checks_config),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
