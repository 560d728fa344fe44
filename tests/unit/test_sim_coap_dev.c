/* Tests of the simulator's CoAP client: encoding, confirmable exchanges,
 * retransmission, separate responses and the offline queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proto/coap/coap.h"
#include "sim/coap_dev.h"

#define MAX_SENT 16

struct harness {
    struct coap_dev dev;
    uint8_t sent[MAX_SENT][COAP_DEV_MAX_PAYLOAD + 128];
    size_t sent_len[MAX_SENT];
    size_t n_sent;
    int done_calls;
    enum coap_dev_outcome last_outcome;
    uint8_t last_code;
    char last_path[COAP_DEV_MAX_PATH];
};

static vigil_err capture(void *user, const uint8_t *data, size_t len)
{
    struct harness *h = user;

    assert_true(h->n_sent < MAX_SENT);
    memcpy(h->sent[h->n_sent], data, len);
    h->sent_len[h->n_sent++] = len;
    return VIGIL_OK;
}

static void on_done(void *user, enum coap_dev_outcome outcome, uint8_t code, const char *path)
{
    struct harness *h = user;

    h->done_calls++;
    h->last_outcome = outcome;
    h->last_code = code;
    snprintf(h->last_path, sizeof h->last_path, "%s", path);
}

static struct harness *new_harness(bool online)
{
    struct harness *h = test_calloc(1, sizeof *h);
    struct coap_dev_config cfg = {capture, on_done, NULL, 42};

    cfg.user = h;
    coap_dev_init(&h->dev, &cfg);
    coap_dev_set_online(&h->dev, online, 0);
    return h;
}

static void free_harness(struct harness *h)
{
    coap_dev_free(&h->dev);
    test_free(h);
}

static void decode_sent(const struct harness *h, size_t i, struct coap_msg *m)
{
    struct coap_error err;

    assert_true(i < h->n_sent);
    assert_int_equal(coap_decode(h->sent[i], h->sent_len[i], m, &err), VIGIL_OK);
}

/* Feeds a message of type, code and MID with the token of sent message i. */
static void feed(struct harness *h, uint8_t type, uint8_t code, uint16_t mid, size_t token_of,
                 uint64_t now)
{
    struct coap_msg req, m;
    uint8_t wire[64];
    size_t n;

    memset(&m, 0, sizeof m);
    m.type = type;
    m.code = code;
    m.message_id = mid;
    if (code != COAP_EMPTY) {
        decode_sent(h, token_of, &req);
        m.token = req.token;
        m.token_len = req.token_len;
    }
    n = coap_encode(&m, wire, sizeof wire);
    assert_true(n > 0);
    coap_dev_input(&h->dev, wire, n, now);
}

static uint16_t mid_of(const struct harness *h, size_t i)
{
    struct coap_msg m;

    decode_sent(h, i, &m);
    return m.message_id;
}

static void encode_post_round_trip(void **state)
{
    static const uint8_t token[] = {1, 2, 3, 4};
    uint8_t wire[256];
    struct coap_error err;
    struct coap_msg m;
    uint16_t cf;
    char path[64];
    size_t n, plen;

    (void)state;
    n = coap_dev_encode_post(wire, sizeof wire, COAP_NON, 0x1234, token, 4, "t/heart_rate", 110,
                             (const uint8_t *)"[1]", 3);
    assert_true(n > 0);
    assert_int_equal(coap_decode(wire, n, &m, &err), VIGIL_OK);
    assert_int_equal(m.type, COAP_NON);
    assert_int_equal(m.code, COAP_POST);
    assert_int_equal(m.message_id, 0x1234);
    assert_int_equal(m.token_len, 4);
    assert_memory_equal(m.token, token, 4);
    assert_int_equal(coap_uri_path(&m, path, sizeof path, &plen), VIGIL_OK);
    assert_string_equal(path, "t/heart_rate");
    assert_int_equal(coap_get_content_format(&m, &cf), VIGIL_OK);
    assert_int_equal(cf, 110);
    assert_int_equal(m.payload_len, 3);
    assert_memory_equal(m.payload, "[1]", 3);
}

static void encode_text_format_zero(void **state)
{
    uint8_t wire[64];
    struct coap_error err;
    struct coap_msg m;
    uint16_t cf = 99;
    size_t n;

    (void)state;
    n = coap_dev_encode_post(wire, sizeof wire, COAP_CON, 1, NULL, 0, "t/temperature", 0,
                             (const uint8_t *)"36.9", 4);
    assert_int_equal(coap_decode(wire, n, &m, &err), VIGIL_OK);
    /* Content-Format 0 is an option of length 0, present all the same. */
    assert_int_equal(coap_get_content_format(&m, &cf), VIGIL_OK);
    assert_int_equal(cf, 0);
}

static void encode_rejects_bad_paths(void **state)
{
    uint8_t wire[128];

    (void)state;
    assert_int_equal(coap_dev_encode_post(wire, sizeof wire, COAP_NON, 1, NULL, 0, "", 0, NULL, 0), 0);
    assert_int_equal(coap_dev_encode_post(wire, sizeof wire, COAP_NON, 1, NULL, 0, "t//x", 0, NULL, 0), 0);
    assert_int_equal(coap_dev_encode_post(wire, sizeof wire, COAP_NON, 1, NULL, 0, "t/", 0, NULL, 0), 0);
    assert_int_equal(coap_dev_encode_post(wire, 8, COAP_NON, 1, NULL, 0, "t/heart_rate", 0, NULL, 0), 0);
}

static void con_piggybacked_ack(void **state)
{
    struct harness *h = new_harness(true);
    struct coap_msg m;

    (void)state;
    assert_int_equal(coap_dev_post(&h->dev, true, "ps/a/b/c/d/status", 50,
                                   (const uint8_t *)"{}", 2, 0), VIGIL_OK);
    assert_int_equal(h->n_sent, 1);
    decode_sent(h, 0, &m);
    assert_int_equal(m.type, COAP_CON);
    assert_int_equal(m.token_len, COAP_DEV_TOKEN_LEN);
    assert_false(coap_dev_idle(&h->dev));
    feed(h, COAP_ACK, COAP_CHANGED, m.message_id, 0, 10);
    assert_int_equal(h->dev.counters.acknowledged, 1);
    assert_int_equal(h->done_calls, 1);
    assert_int_equal(h->last_outcome, COAP_DEV_ACKNOWLEDGED);
    assert_int_equal(h->last_code, COAP_CHANGED);
    assert_string_equal(h->last_path, "ps/a/b/c/d/status");
    assert_true(coap_dev_idle(&h->dev));
    free_harness(h);
}

static void ack_with_other_mid_ignored(void **state)
{
    struct harness *h = new_harness(true);

    (void)state;
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0);
    feed(h, COAP_ACK, COAP_CHANGED, (uint16_t)(mid_of(h, 0) + 1), 0, 10);
    assert_int_equal(h->done_calls, 0);
    assert_false(coap_dev_idle(&h->dev));
    free_harness(h);
}

static void con_retransmits_then_times_out(void **state)
{
    struct harness *h = new_harness(true);
    uint64_t now = 0;
    uint32_t timeout;

    (void)state;
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, now);
    timeout = h->dev.timeout_ms;
    /* The first timeout is ACK_TIMEOUT times 1 to 1.5 (RFC 7252 4.8). */
    assert_true(timeout >= COAP_DEV_ACK_TIMEOUT_MS && timeout < COAP_DEV_ACK_TIMEOUT_MS * 3 / 2);
    coap_dev_tick(&h->dev, timeout - 1);
    assert_int_equal(h->n_sent, 1);
    for (unsigned i = 1; i <= COAP_DEV_MAX_RETRANSMIT; i++) {
        now = h->dev.due_ms;
        coap_dev_tick(&h->dev, now);
        assert_int_equal(h->n_sent, 1 + i);
        /* A retransmission is the same message: same MID and token. */
        assert_memory_equal(h->sent[i], h->sent[0], h->sent_len[0]);
        assert_int_equal(h->dev.timeout_ms, timeout << i);
    }
    assert_int_equal(h->dev.counters.retransmissions, COAP_DEV_MAX_RETRANSMIT);
    assert_int_equal(h->done_calls, 0);
    coap_dev_tick(&h->dev, h->dev.due_ms);
    assert_int_equal(h->done_calls, 1);
    assert_int_equal(h->last_outcome, COAP_DEV_TIMED_OUT);
    assert_int_equal(h->dev.counters.timed_out, 1);
    assert_true(coap_dev_idle(&h->dev));
    free_harness(h);
}

static void separate_response(void **state)
{
    struct harness *h = new_harness(true);
    struct coap_msg ack;
    uint16_t mid;

    (void)state;
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0);
    mid = mid_of(h, 0);
    feed(h, COAP_ACK, COAP_EMPTY, mid, 0, 100);
    /* The empty ACK stops retransmission. */
    coap_dev_tick(&h->dev, 20000);
    assert_int_equal(h->n_sent, 1);
    /* The response comes as a CON of its own and must be acknowledged. */
    feed(h, COAP_CON, COAP_CHANGED, 0x7777, 0, 20100);
    assert_int_equal(h->n_sent, 2);
    decode_sent(h, 1, &ack);
    assert_int_equal(ack.type, COAP_ACK);
    assert_int_equal(ack.code, COAP_EMPTY);
    assert_int_equal(ack.message_id, 0x7777);
    assert_int_equal(h->last_outcome, COAP_DEV_ACKNOWLEDGED);
    assert_true(coap_dev_idle(&h->dev));
    free_harness(h);
}

static void separate_response_times_out(void **state)
{
    struct harness *h = new_harness(true);

    (void)state;
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0);
    feed(h, COAP_ACK, COAP_EMPTY, mid_of(h, 0), 0, 100);
    coap_dev_tick(&h->dev, 100 + COAP_DEV_SEPARATE_WAIT_MS);
    assert_int_equal(h->last_outcome, COAP_DEV_TIMED_OUT);
    free_harness(h);
}

static void one_outstanding_at_a_time(void **state)
{
    struct harness *h = new_harness(true);

    (void)state;
    for (int i = 0; i < 3; i++)
        assert_int_equal(coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0),
                         VIGIL_OK);
    assert_int_equal(h->n_sent, 1);
    feed(h, COAP_ACK, COAP_CHANGED, mid_of(h, 0), 0, 5);
    assert_int_equal(h->n_sent, 2);
    assert_int_not_equal(mid_of(h, 1), mid_of(h, 0));
    feed(h, COAP_ACK, COAP_CHANGED, mid_of(h, 1), 1, 6);
    feed(h, COAP_ACK, COAP_CHANGED, mid_of(h, 2), 2, 7);
    assert_int_equal(h->dev.counters.acknowledged, 3);
    assert_true(coap_dev_idle(&h->dev));
    free_harness(h);
}

static void reset_and_error_reject(void **state)
{
    struct harness *h = new_harness(true);

    (void)state;
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0);
    feed(h, COAP_RST, COAP_EMPTY, mid_of(h, 0), 0, 5);
    assert_int_equal(h->last_outcome, COAP_DEV_REJECTED);
    assert_int_equal(h->last_code, 0);
    coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 10);
    feed(h, COAP_ACK, COAP_FORBIDDEN, mid_of(h, 1), 1, 15);
    assert_int_equal(h->last_outcome, COAP_DEV_REJECTED);
    assert_int_equal(h->last_code, COAP_FORBIDDEN);
    assert_int_equal(h->dev.counters.rejected, 2);
    free_harness(h);
}

static void non_needs_online(void **state)
{
    struct harness *h = new_harness(false);
    struct coap_msg m;

    (void)state;
    assert_int_equal(coap_dev_post(&h->dev, false, "t", 110, (const uint8_t *)"[]", 2, 0),
                     VIGIL_ERR_CLOSED);
    assert_int_equal(h->n_sent, 0);
    coap_dev_set_online(&h->dev, true, 0);
    assert_int_equal(coap_dev_post(&h->dev, false, "t", 110, (const uint8_t *)"[]", 2, 0),
                     VIGIL_OK);
    decode_sent(h, 0, &m);
    assert_int_equal(m.type, COAP_NON);
    assert_int_equal(h->dev.counters.non_sent, 1);
    /* An error response to a non-confirmable request counts as rejected. */
    feed(h, COAP_NON, COAP_BAD_REQUEST, 0x4242, 0, 5);
    assert_int_equal(h->dev.counters.rejected, 1);
    assert_int_equal(h->last_outcome, COAP_DEV_REJECTED);
    free_harness(h);
}

static void offline_requeues_outstanding(void **state)
{
    struct harness *h = new_harness(true);

    (void)state;
    coap_dev_post(&h->dev, true, "t/a", 0, (const uint8_t *)"1", 1, 0);
    coap_dev_post(&h->dev, true, "t/b", 0, (const uint8_t *)"2", 1, 0);
    coap_dev_set_online(&h->dev, false, 50);
    assert_false(h->dev.active);
    assert_int_equal(h->dev.q_len, 2);
    /* Offline, nothing is retransmitted. */
    coap_dev_tick(&h->dev, 100000);
    assert_int_equal(h->n_sent, 1);
    coap_dev_set_online(&h->dev, true, 100);
    assert_int_equal(h->n_sent, 2);
    assert_string_equal(h->dev.current.path, "t/a");
    assert_int_not_equal(mid_of(h, 1), mid_of(h, 0));
    free_harness(h);
}

static void queue_cap(void **state)
{
    struct harness *h = new_harness(false);

    (void)state;
    for (unsigned i = 0; i < COAP_DEV_QUEUE; i++)
        assert_int_equal(coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0),
                         VIGIL_OK);
    assert_int_equal(coap_dev_post(&h->dev, true, "t/x", 0, (const uint8_t *)"1", 1, 0),
                     VIGIL_ERR_LIMIT);
    assert_int_equal(h->dev.counters.dropped, 1);
    assert_int_equal(coap_dev_post(&h->dev, true, "t/x", 0, NULL, COAP_DEV_MAX_PAYLOAD + 1, 0),
                     VIGIL_ERR_INVALID);
    free_harness(h);
}

static void ping_answered_with_reset(void **state)
{
    struct harness *h = new_harness(true);
    struct coap_msg m;

    (void)state;
    feed(h, COAP_CON, COAP_EMPTY, 0x0101, 0, 0);
    assert_int_equal(h->n_sent, 1);
    decode_sent(h, 0, &m);
    assert_int_equal(m.type, COAP_RST);
    assert_int_equal(m.message_id, 0x0101);
    free_harness(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_post_round_trip),
        cmocka_unit_test(encode_text_format_zero),
        cmocka_unit_test(encode_rejects_bad_paths),
        cmocka_unit_test(con_piggybacked_ack),
        cmocka_unit_test(ack_with_other_mid_ignored),
        cmocka_unit_test(con_retransmits_then_times_out),
        cmocka_unit_test(separate_response),
        cmocka_unit_test(separate_response_times_out),
        cmocka_unit_test(one_outstanding_at_a_time),
        cmocka_unit_test(reset_and_error_reject),
        cmocka_unit_test(non_needs_online),
        cmocka_unit_test(offline_requeues_outstanding),
        cmocka_unit_test(queue_cap),
        cmocka_unit_test(ping_answered_with_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
