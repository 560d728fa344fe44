/* MQTT codec: framing, encode-decode round trips of every packet type in
 * both versions, exact short forms, payload iterators and UTF-8 checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mqtt/mqtt.h"

#define LIT(s) ((struct mqtt_str){(const uint8_t *)(s), sizeof(s) - 1})

static uint8_t wire[4096];

static void assert_str(struct mqtt_str got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.p, want, got.len);
}

/* Encodes pkt, checks the size functions agree, and decodes it back. */
static size_t roundtrip(const struct mqtt_packet *pkt, uint8_t version, bool is_server,
                        struct mqtt_packet *out)
{
    struct mqtt_error err = {0};
    size_t n = mqtt_encode(pkt, version, wire, sizeof wire);

    assert_true(n > 0);
    assert_int_equal(mqtt_encoded_size(pkt, version), n);
    assert_int_equal(mqtt_encode(pkt, version, wire, n - 1), 0);
    assert_int_equal(mqtt_decode(wire, n, version, is_server, out, &err), VIGIL_OK);
    assert_int_equal(out->type, pkt->type);
    return n;
}

/* Frames a hand-encoded Remaining Length of value from every prefix, and
 * checks that the encoder writes the same header for a PUBLISH that long. */
static void check_frame(uint32_t value, size_t header_len)
{
    static uint8_t big[2097152 + 16];
    static const uint8_t payload[2097152];
    struct mqtt_packet pkt = {.type = MQTT_PUBLISH};
    uint8_t hdr[8];
    uint32_t rest = value, got;
    size_t n = 1, got_len;
    struct mqtt_error err;

    hdr[0] = 0x30;
    do {
        hdr[n] = (uint8_t)(rest & 0x7F);
        rest >>= 7;
        if (rest > 0)
            hdr[n] |= 0x80;
        n++;
    } while (rest > 0);
    assert_int_equal(n, header_len);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mqtt_frame(hdr, i, &got_len, &got, &err), VIGIL_ERR_AGAIN);
    assert_int_equal(mqtt_frame(hdr, n, &got_len, &got, &err), VIGIL_OK);
    assert_int_equal(got_len, header_len);
    assert_int_equal(got, value);

    if (value < 3 || value - 3 > sizeof payload)
        return;
    pkt.publish.topic = LIT("t");
    pkt.publish.payload = (struct mqtt_str){payload, value - 3};
    assert_int_equal(mqtt_encoded_size(&pkt, MQTT_V311), header_len + value);
    assert_int_equal(mqtt_encode(&pkt, MQTT_V311, big, sizeof big), header_len + value);
    assert_memory_equal(big, hdr, header_len);
}

static void test_frame_vbi_lengths(void **state)
{
    static const struct {
        uint32_t value;
        size_t header_len;
    } cases[] = {
        {3, 2},          {127, 2},         {128, 3},       {16383, 3},
        {16384, 4},      {2097151, 4},     {2097152, 5},   {MQTT_VBI_MAX, 5},
    };
    size_t hl;
    uint32_t rem;
    struct mqtt_error err;
    const uint8_t max[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F};

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_frame(cases[i].value, cases[i].header_len);
    assert_int_equal(mqtt_frame(max, sizeof max, &hl, &rem, &err), VIGIL_OK);
    assert_int_equal(rem, MQTT_VBI_MAX);
}

static void test_frame_invalid_vbi(void **state)
{
    const uint8_t five[] = {0x30, 0x80, 0x80, 0x80, 0x80, 0x01};
    const uint8_t not_minimal[] = {0x30, 0xFF, 0x80, 0x00};
    size_t hl;
    uint32_t rem;
    struct mqtt_error err = {0};

    /* Four continuation bytes are an error even before a fifth arrives. */
    assert_int_equal(mqtt_frame(five, 5, &hl, &rem, &err), VIGIL_ERR_PROTOCOL);
    assert_string_equal(err.rule, "MQTT-1.5.5");
    assert_int_equal(err.reason_code, MQTT_RC_MALFORMED);
    assert_int_equal(mqtt_frame(five, sizeof five, &hl, &rem, &err), VIGIL_ERR_PROTOCOL);
    assert_int_equal(mqtt_frame(not_minimal, sizeof not_minimal, &hl, &rem, &err),
                     VIGIL_ERR_PROTOCOL);
    assert_string_equal(err.rule, "MQTT-1.5.5-1");
    assert_int_equal(mqtt_frame(five, 0, &hl, &rem, &err), VIGIL_ERR_AGAIN);
}

static void fill_connect(struct mqtt_packet *p)
{
    *p = (struct mqtt_packet){.type = MQTT_CONNECT};
    p->connect.clean_start = true;
    p->connect.will = true;
    p->connect.will_qos = 1;
    p->connect.will_retain = true;
    p->connect.has_username = true;
    p->connect.has_password = true;
    p->connect.keep_alive = 45;
    p->connect.client_id = LIT("mon-0042");
    p->connect.will_topic = LIT("north/icu3/mon-0042/status");
    p->connect.will_payload = LIT("offline");
    p->connect.username = LIT("mon-0042");
    p->connect.password = LIT("\x01\x02\x03");
}

static void check_connect(const struct mqtt_packet *out, uint8_t version)
{
    assert_int_equal(out->connect.version, version);
    assert_true(out->connect.clean_start);
    assert_true(out->connect.will);
    assert_int_equal(out->connect.will_qos, 1);
    assert_true(out->connect.will_retain);
    assert_int_equal(out->connect.keep_alive, 45);
    assert_str(out->connect.client_id, "mon-0042");
    assert_str(out->connect.will_topic, "north/icu3/mon-0042/status");
    assert_str(out->connect.will_payload, "offline");
    assert_str(out->connect.username, "mon-0042");
    assert_int_equal(out->connect.password.len, 3);
}

static void test_roundtrip_connect(void **state)
{
    struct mqtt_packet p, out;

    fill_connect(&p);
    roundtrip(&p, MQTT_V311, true, &out);
    check_connect(&out, MQTT_V311);
    assert_str(out.connect.protocol_name, "MQTT");

    p.props.present = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) |
                      MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) |
                      MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    p.props.session_expiry = 3600;
    p.props.receive_max = 16;
    p.props.auth_method = LIT("SCRAM-SHA-256");
    p.connect.will_props.present = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY) |
                                   MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
    p.connect.will_props.will_delay = 10;
    p.connect.will_props.content_type = LIT("text/plain");
    roundtrip(&p, MQTT_V5, true, &out);
    check_connect(&out, MQTT_V5);
    assert_int_equal(out.props.session_expiry, 3600);
    assert_int_equal(out.props.receive_max, 16);
    assert_str(out.props.auth_method, "SCRAM-SHA-256");
    assert_int_equal(out.connect.will_props.will_delay, 10);
    assert_str(out.connect.will_props.content_type, "text/plain");
}

static void test_connect_password_only(void **state)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT}, out;

    p.connect.has_password = true;
    p.connect.password = LIT("pw");
    /* v5 allows a password without a user name, v3.1.1 does not. */
    roundtrip(&p, MQTT_V5, true, &out);
    assert_true(out.connect.has_password);
    assert_false(out.connect.has_username);
    assert_int_equal(out.connect.client_id.len, 0);
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 0);
}

static void test_connect_level3(void **state)
{
    struct mqtt_packet p = {.type = MQTT_CONNECT}, out;
    struct mqtt_error err = {0};
    size_t n;

    p.connect.client_id = LIT("old");
    n = mqtt_encode(&p, MQTT_V31, wire, sizeof wire);
    assert_true(n > 0);
    assert_memory_equal(wire + 2, "\x00\x06MQIsdp\x03", 9);
    assert_int_equal(mqtt_decode(wire, n, MQTT_V311, true, &out, &err), VIGIL_ERR_PROTOCOL);
    assert_int_equal(err.reason_code, MQTT_RC_UNSUPPORTED_VERSION);
    assert_string_equal(err.rule, "MQTT-3.1.1:3.1.2-2");
    assert_int_equal(out.type, MQTT_CONNECT);
    assert_int_equal(out.connect.version, MQTT_V31);
    assert_str(out.connect.protocol_name, "MQIsdp");
}

static void test_roundtrip_connack(void **state)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK, .session_present = true}, out;
    size_t n;

    n = roundtrip(&p, MQTT_V311, false, &out);
    assert_int_equal(n, 4);
    assert_true(out.session_present);

    p.props.present = MQTT_PROP_BIT(MQTT_PROP_MAX_QOS) |
                      MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID) |
                      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) |
                      MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
    p.props.max_qos = 1;
    p.props.assigned_client_id = LIT("auto-7");
    p.props.topic_alias_max = 10;
    p.props.server_keep_alive = 120;
    roundtrip(&p, MQTT_V5, false, &out);
    assert_true(out.session_present);
    assert_int_equal(out.props.max_qos, 1);
    assert_str(out.props.assigned_client_id, "auto-7");
    assert_int_equal(out.props.topic_alias_max, 10);
    assert_int_equal(out.props.server_keep_alive, 120);
}

static void test_connack_v311_mapping(void **state)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK, .reason_code = MQTT_RC_BAD_USER_OR_PASSWORD};
    const uint8_t want[] = {0x20, 0x02, 0x00, 0x04};

    assert_int_equal(mqtt_encode(&p, MQTT_V311, wire, sizeof wire), sizeof want);
    assert_memory_equal(wire, want, sizeof want);
    p.reason_code = MQTT_RC_UNSUPPORTED_VERSION;
    assert_int_equal(mqtt_encode(&p, MQTT_V31, wire, sizeof wire), 4);
    assert_int_equal(wire[3], MQTT_V311_BAD_VERSION);
    p.reason_code = 0x10; /* defined by neither version for CONNACK */
    assert_int_equal(mqtt_encode(&p, MQTT_V311, wire, sizeof wire), 0);
}

static void test_roundtrip_publish(void **state)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH, .packet_id = 77}, out;

    p.publish.qos = 2;
    p.publish.retain = true;
    p.publish.dup = true;
    p.publish.topic = LIT("north/icu3/room305/mon-0042/heart_rate");
    p.publish.payload = LIT("72");
    roundtrip(&p, MQTT_V311, true, &out);
    assert_int_equal(out.packet_id, 77);
    assert_int_equal(out.publish.qos, 2);
    assert_true(out.publish.retain);
    assert_true(out.publish.dup);
    assert_str(out.publish.topic, "north/icu3/room305/mon-0042/heart_rate");
    assert_str(out.publish.payload, "72");

    p.props.present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                      MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
                      MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
    p.props.payload_format = 1;
    p.props.message_expiry = 30;
    p.props.sub_ids[0] = 5;
    p.props.sub_ids[1] = 300000;
    p.props.n_sub_ids = 2;
    roundtrip(&p, MQTT_V5, false, &out);
    assert_int_equal(out.props.payload_format, 1);
    assert_int_equal(out.props.message_expiry, 30);
    assert_int_equal(out.props.n_sub_ids, 2);
    assert_int_equal(out.props.sub_ids[1], 300000);
    assert_str(out.publish.payload, "72");
}

static void test_publish_empty_topic_alias(void **state)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH}, out;

    p.props.present = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p.props.topic_alias = 4;
    p.publish.payload = LIT("x");
    roundtrip(&p, MQTT_V5, true, &out);
    assert_int_equal(out.publish.topic.len, 0);
    assert_int_equal(out.props.topic_alias, 4);
}

static void test_publish_too_many_sub_ids(void **state)
{
    uint8_t buf[128];
    size_t n = 0;
    struct mqtt_packet out;
    struct mqtt_error err = {0};

    buf[n++] = 0x30;
    buf[n++] = 3 + 1 + 2 * (MQTT_MAX_SUB_IDS + 1);
    buf[n++] = 0;
    buf[n++] = 1;
    buf[n++] = 't';
    buf[n++] = 2 * (MQTT_MAX_SUB_IDS + 1);
    for (unsigned i = 0; i <= MQTT_MAX_SUB_IDS; i++) {
        buf[n++] = MQTT_PROP_SUBSCRIPTION_ID;
        buf[n++] = (uint8_t)(i + 1);
    }
    assert_int_equal(mqtt_decode(buf, n - 2, MQTT_V5, false, &out, &err), VIGIL_ERR_PROTOCOL);
    buf[1] -= 2;
    buf[5] -= 2;
    assert_int_equal(mqtt_decode(buf, n - 2, MQTT_V5, false, &out, &err), VIGIL_OK);
    assert_int_equal(out.props.n_sub_ids, MQTT_MAX_SUB_IDS);
    buf[1] += 2;
    buf[5] += 2;
    assert_int_equal(mqtt_decode(buf, n, MQTT_V5, false, &out, &err), VIGIL_ERR_PROTOCOL);
    assert_int_equal(err.reason_code, MQTT_RC_IMPL_SPECIFIC);
}

static void test_publish_encode_invalid(void **state)
{
    struct mqtt_packet p = {.type = MQTT_PUBLISH};

    p.publish.topic = LIT("t");
    p.publish.qos = 1; /* packet identifier 0 */
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V5), 0);
    p.packet_id = 1;
    p.publish.qos = 3;
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V5), 0);
    p.publish.qos = 0;
    p.publish.dup = true;
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 0);
    assert_int_equal(mqtt_encoded_size(&p, 6), 0);
}

static void test_roundtrip_acks(void **state)
{
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};

    for (size_t i = 0; i < sizeof types; i++) {
        struct mqtt_packet p = {.type = types[i], .packet_id = 9}, out;
        uint8_t want_first = (uint8_t)(types[i] << 4 | (types[i] == MQTT_PUBREL ? 2 : 0));

        /* v3.1.1 and the v5 short form are both 2 bytes of identifier. */
        assert_int_equal(roundtrip(&p, MQTT_V311, true, &out), 4);
        assert_int_equal(wire[0], want_first);
        assert_int_equal(out.packet_id, 9);
        assert_int_equal(roundtrip(&p, MQTT_V5, false, &out), 4);
        assert_int_equal(out.reason_code, 0);

        p.reason_code = types[i] >= MQTT_PUBREL ? 0x92 : 0x10;
        assert_int_equal(roundtrip(&p, MQTT_V5, true, &out), 5);
        assert_int_equal(out.reason_code, p.reason_code);
        /* v3.1.1 has no reason code: it is dropped. */
        assert_int_equal(roundtrip(&p, MQTT_V311, true, &out), 4);

        p.props.present = MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = LIT("why");
        assert_int_equal(roundtrip(&p, MQTT_V5, true, &out), 4 + 1 + 1 + 6);
        assert_str(out.props.reason_string, "why");
    }
}

static void test_roundtrip_subscribe(void **state)
{
    struct mqtt_packet p = {.type = MQTT_SUBSCRIBE, .packet_id = 3}, out;
    uint8_t payload[128];
    size_t n = 0;
    const uint8_t *cursor;
    struct mqtt_sub_entry e;

    n += mqtt_encode_sub_entry("north/+/room305/#", 0x01 | MQTT_SUBOPT_NO_LOCAL | 0x20, payload,
                               sizeof payload);
    n += mqtt_encode_sub_entry("$share/g/north/#", 2, payload + n, sizeof payload - n);
    p.entries = (struct mqtt_str){payload, (uint32_t)n};
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
    p.props.sub_ids[0] = 12;
    p.props.n_sub_ids = 1;
    roundtrip(&p, MQTT_V5, true, &out);
    assert_int_equal(out.packet_id, 3);
    assert_int_equal(out.n_entries, 2);
    assert_int_equal(out.props.sub_ids[0], 12);

    cursor = out.entries.p;
    assert_true(mqtt_sub_next(&out, &cursor, &e));
    assert_str(e.filter, "north/+/room305/#");
    assert_int_equal(MQTT_SUBOPT_QOS(e.options), 1);
    assert_true(e.options & MQTT_SUBOPT_NO_LOCAL);
    assert_int_equal(MQTT_SUBOPT_RH(e.options), 2);
    assert_true(mqtt_sub_next(&out, &cursor, &e));
    assert_str(e.filter, "$share/g/north/#");
    assert_false(mqtt_sub_next(&out, &cursor, &e));

    /* v3.1.1: options carry the QoS only. */
    n = mqtt_encode_sub_entry("a/b", 1, payload, sizeof payload);
    p.entries = (struct mqtt_str){payload, (uint32_t)n};
    roundtrip(&p, MQTT_V311, true, &out);
    cursor = out.entries.p;
    assert_true(mqtt_sub_next(&out, &cursor, &e));
    assert_int_equal(e.options, 1);
}

static void test_roundtrip_unsubscribe(void **state)
{
    struct mqtt_packet p = {.type = MQTT_UNSUBSCRIBE, .packet_id = 4}, out;
    uint8_t payload[64];
    size_t n = 0;
    const uint8_t *cursor;
    struct mqtt_str f;

    n += mqtt_encode_sub_entry("a/+", -1, payload, sizeof payload);
    n += mqtt_encode_sub_entry("#", -1, payload + n, sizeof payload - n);
    assert_int_equal(n, 5 + 3);
    p.entries = (struct mqtt_str){payload, (uint32_t)n};
    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        roundtrip(&p, v, true, &out);
        assert_int_equal(out.n_entries, 2);
        cursor = out.entries.p;
        assert_true(mqtt_unsub_next(&out, &cursor, &f));
        assert_str(f, "a/+");
        assert_true(mqtt_unsub_next(&out, &cursor, &f));
        assert_str(f, "#");
        assert_false(mqtt_unsub_next(&out, &cursor, &f));
    }
    p.entries.len = 0;
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V5), 0);
}

static void test_roundtrip_suback_unsuback(void **state)
{
    const uint8_t codes[] = {0x00, 0x01, 0x80};
    struct mqtt_packet p = {.type = MQTT_SUBACK, .packet_id = 3}, out;

    p.entries = (struct mqtt_str){codes, sizeof codes};
    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        roundtrip(&p, v, false, &out);
        assert_int_equal(out.n_entries, 3);
        assert_memory_equal(out.entries.p, codes, sizeof codes);
    }

    p.type = MQTT_UNSUBACK;
    p.entries = (struct mqtt_str){(const uint8_t *)"\x00\x11", 2};
    assert_int_equal(roundtrip(&p, MQTT_V311, false, &out), 4);
    assert_int_equal(out.n_entries, 0);
    assert_int_equal(roundtrip(&p, MQTT_V5, false, &out), 7);
    assert_int_equal(out.n_entries, 2);
    assert_int_equal(out.entries.p[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
}

static void test_roundtrip_ping(void **state)
{
    struct mqtt_packet req = {.type = MQTT_PINGREQ}, resp = {.type = MQTT_PINGRESP}, out;

    for (uint8_t v = MQTT_V311; v <= MQTT_V5; v++) {
        assert_int_equal(roundtrip(&req, v, true, &out), 2);
        assert_int_equal(wire[0], 0xC0);
        assert_int_equal(roundtrip(&resp, v, false, &out), 2);
        assert_int_equal(wire[0], 0xD0);
    }
}

static void test_roundtrip_disconnect(void **state)
{
    struct mqtt_packet p = {.type = MQTT_DISCONNECT}, out;

    assert_int_equal(roundtrip(&p, MQTT_V311, true, &out), 2);
    assert_int_equal(roundtrip(&p, MQTT_V5, false, &out), 2);
    p.reason_code = MQTT_RC_DISCONNECT_WITH_WILL;
    assert_int_equal(roundtrip(&p, MQTT_V5, true, &out), 3);
    assert_int_equal(out.reason_code, MQTT_RC_DISCONNECT_WITH_WILL);
    assert_int_equal(roundtrip(&p, MQTT_V311, true, &out), 2);

    p.reason_code = MQTT_RC_SERVER_MOVED;
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
    p.props.server_reference = LIT("hub-2");
    roundtrip(&p, MQTT_V5, false, &out);
    assert_str(out.props.server_reference, "hub-2");
}

static void test_roundtrip_auth(void **state)
{
    struct mqtt_packet p = {.type = MQTT_AUTH}, out;

    assert_int_equal(roundtrip(&p, MQTT_V5, true, &out), 2);
    assert_int_equal(mqtt_encoded_size(&p, MQTT_V311), 0);
    p.reason_code = MQTT_RC_CONTINUE_AUTH;
    assert_int_equal(roundtrip(&p, MQTT_V5, true, &out), 4);
    assert_int_equal(wire[3], 0); /* property length kept */
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD) | MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
    p.props.auth_method = LIT("SCRAM-SHA-256");
    p.props.auth_data = LIT("\x00\x01");
    roundtrip(&p, MQTT_V5, false, &out);
    assert_int_equal(out.reason_code, MQTT_RC_CONTINUE_AUTH);
    assert_int_equal(out.props.auth_data.len, 2);
}

static void test_decode_short_forms(void **state)
{
    const uint8_t puback[] = {0x40, 0x02, 0x00, 0x05};
    const uint8_t puback3[] = {0x40, 0x03, 0x00, 0x05, 0x10};
    const uint8_t disc0[] = {0xE0, 0x00};
    const uint8_t disc1[] = {0xE0, 0x01, 0x8E};
    const uint8_t auth0[] = {0xF0, 0x00};
    struct mqtt_packet out;
    struct mqtt_error err;

    assert_int_equal(mqtt_decode(puback, sizeof puback, MQTT_V5, true, &out, &err), VIGIL_OK);
    assert_int_equal(out.reason_code, 0);
    assert_int_equal(out.packet_id, 5);
    assert_int_equal(mqtt_decode(puback3, sizeof puback3, MQTT_V5, true, &out, &err), VIGIL_OK);
    assert_int_equal(out.reason_code, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
    assert_int_equal(out.props.present, 0);
    assert_int_equal(mqtt_decode(disc0, sizeof disc0, MQTT_V5, true, &out, &err), VIGIL_OK);
    assert_int_equal(out.reason_code, 0);
    assert_int_equal(mqtt_decode(disc1, sizeof disc1, MQTT_V5, false, &out, &err), VIGIL_OK);
    assert_int_equal(out.reason_code, MQTT_RC_SESSION_TAKEN_OVER);
    assert_int_equal(mqtt_decode(auth0, sizeof auth0, MQTT_V5, false, &out, &err), VIGIL_OK);
    assert_int_equal(out.reason_code, 0);
}

static void test_verbatim_and_user_props(void **state)
{
    const uint8_t user[] = {0x26, 0, 1, 'a', 0, 1, '1', 0x26, 0, 1, 'b', 0, 1, '2'};
    struct mqtt_packet p = {.type = MQTT_PUBLISH}, out;
    const uint8_t *cursor;
    struct mqtt_user_prop up;

    p.publish.topic = LIT("t");
    p.props.verbatim = (struct mqtt_str){user, sizeof user};
    roundtrip(&p, MQTT_V5, true, &out);
    assert_int_equal(out.props.n_user, 2);
    assert_true(out.props.present & MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY));
    cursor = out.props.raw.p;
    assert_true(mqtt_user_prop_next(&out.props, &cursor, &up));
    assert_str(up.name, "a");
    assert_str(up.value, "1");
    assert_true(mqtt_user_prop_next(&out.props, &cursor, &up));
    assert_str(up.name, "b");
    assert_false(mqtt_user_prop_next(&out.props, &cursor, &up));
    /* v3.1.1 has no properties: verbatim is not written. */
    assert_int_equal(roundtrip(&p, MQTT_V311, true, &out), 5);
}

static void test_forward_props(void **state)
{
    const uint8_t user[] = {0x26, 0, 1, 'z', 0, 0, 0x26, 0, 1, 'a', 0, 0};
    struct mqtt_packet p = {.type = MQTT_PUBLISH}, out, back;
    uint8_t fwd[128];
    size_t n;
    const uint8_t *cursor;
    struct mqtt_user_prop up;

    p.publish.topic = LIT("t");
    p.props.present = MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                      MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY) |
                      MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
                      MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                      MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |
                      MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p.props.payload_format = 1;
    p.props.message_expiry = 5;
    p.props.content_type = LIT("application/senml+json");
    p.props.response_topic = LIT("reply/here");
    p.props.correlation_data = LIT("c1");
    p.props.topic_alias = 2;
    p.props.verbatim = (struct mqtt_str){user, sizeof user};
    roundtrip(&p, MQTT_V5, true, &out);

    n = mqtt_encode_forward_props(&out.props, fwd, sizeof fwd);
    assert_true(n > 0);
    assert_int_equal(mqtt_encode_forward_props(&out.props, fwd, n - 1), 0);
    p = (struct mqtt_packet){.type = MQTT_PUBLISH};
    p.publish.topic = LIT("t");
    p.props.verbatim = (struct mqtt_str){fwd, (uint32_t)n};
    roundtrip(&p, MQTT_V5, false, &back);
    assert_int_equal(back.props.present,
                     MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                         MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |
                         MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) |
                         MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |
                         MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY));
    assert_str(back.props.content_type, "application/senml+json");
    cursor = back.props.raw.p;
    assert_true(mqtt_user_prop_next(&back.props, &cursor, &up));
    assert_str(up.name, "z");
    assert_true(mqtt_user_prop_next(&back.props, &cursor, &up));
    assert_str(up.name, "a");

    memset(&p.props, 0, sizeof p.props);
    assert_int_equal(mqtt_encode_forward_props(&p.props, fwd, sizeof fwd), 0);
}

static void test_encode_sub_entry(void **state)
{
    uint8_t buf[8];

    assert_int_equal(mqtt_encode_sub_entry("a/b", 0x15, buf, sizeof buf), 6);
    assert_memory_equal(buf, "\x00\x03" "a/b\x15", 6);
    assert_int_equal(mqtt_encode_sub_entry("a/b", -1, buf, sizeof buf), 5);
    assert_int_equal(mqtt_encode_sub_entry("a/b", 1, buf, 5), 0);
    assert_int_equal(mqtt_encode_sub_entry("a/b", 256, buf, sizeof buf), 0);
}

static void test_utf8_valid(void **state)
{
    static const struct {
        const char *bytes;
        bool valid;
    } cases[] = {
        {"", true},
        {"north/icu3", true},
        {"\xC3\xA9", true},                 /* U+00E9 */
        {"\xE2\x82\xAC", true},             /* U+20AC */
        {"\xF0\x9F\x98\x80", true},         /* U+1F600 */
        {"\xF4\x8F\xBF\xBF", true},         /* U+10FFFF */
        {"\xEF\xBF\xBF", true},             /* U+FFFF, a non-character */
        {"\xC0\x80", false},                /* overlong U+0000 */
        {"\xC1\xBF", false},                /* overlong */
        {"\xE0\x80\xAF", false},            /* overlong */
        {"\xF0\x80\x80\xAF", false},        /* overlong */
        {"\xED\xA0\x80", false},            /* U+D800 */
        {"\xED\xBF\xBF", false},            /* U+DFFF */
        {"\xF4\x90\x80\x80", false},        /* U+110000 */
        {"\xF5\x80\x80\x80", false},
        {"\xFF", false},
        {"\x80", false},                    /* stray continuation */
        {"\xE2\x82", false},                /* truncated */
        {"\xE2\x28\xA1", false},            /* bad continuation */
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = (const uint8_t *)cases[i].bytes;

        assert_int_equal(mqtt_utf8_valid(p, strlen(cases[i].bytes)), cases[i].valid);
    }
    assert_false(mqtt_utf8_valid((const uint8_t *)"a\0b", 3));
}

static void test_utf8_has_control(void **state)
{
    assert_false(mqtt_utf8_has_control((const uint8_t *)"plain text", 10));
    assert_true(mqtt_utf8_has_control((const uint8_t *)"a\x01", 2));
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\x1F", 1));
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\x7F", 1));
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\xC2\x80", 2));   /* U+0080 */
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\xC2\x9F", 2));   /* U+009F */
    assert_false(mqtt_utf8_has_control((const uint8_t *)"\xC2\xA0", 2));  /* U+00A0 */
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\xEF\xB7\x90", 3)); /* U+FDD0 */
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\xEF\xBF\xBE", 3)); /* U+FFFE */
    assert_true(mqtt_utf8_has_control((const uint8_t *)"\xF0\x9F\xBF\xBF", 4)); /* U+1FFFF */
    assert_false(mqtt_utf8_has_control((const uint8_t *)"\xE2\x82\xAC", 3));
}

static void test_type_names(void **state)
{
    assert_string_equal(mqtt_type_name(MQTT_CONNECT), "CONNECT");
    assert_string_equal(mqtt_type_name(MQTT_AUTH), "AUTH");
    assert_string_equal(mqtt_type_name(0), "RESERVED");
    assert_string_equal(mqtt_type_name(16), "RESERVED");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_vbi_lengths),
        cmocka_unit_test(test_frame_invalid_vbi),
        cmocka_unit_test(test_roundtrip_connect),
        cmocka_unit_test(test_connect_password_only),
        cmocka_unit_test(test_connect_level3),
        cmocka_unit_test(test_roundtrip_connack),
        cmocka_unit_test(test_connack_v311_mapping),
        cmocka_unit_test(test_roundtrip_publish),
        cmocka_unit_test(test_publish_empty_topic_alias),
        cmocka_unit_test(test_publish_too_many_sub_ids),
        cmocka_unit_test(test_publish_encode_invalid),
        cmocka_unit_test(test_roundtrip_acks),
        cmocka_unit_test(test_roundtrip_subscribe),
        cmocka_unit_test(test_roundtrip_unsubscribe),
        cmocka_unit_test(test_roundtrip_suback_unsuback),
        cmocka_unit_test(test_roundtrip_ping),
        cmocka_unit_test(test_roundtrip_disconnect),
        cmocka_unit_test(test_roundtrip_auth),
        cmocka_unit_test(test_decode_short_forms),
        cmocka_unit_test(test_verbatim_and_user_props),
        cmocka_unit_test(test_forward_props),
        cmocka_unit_test(test_encode_sub_entry),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_has_control),
        cmocka_unit_test(test_type_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
