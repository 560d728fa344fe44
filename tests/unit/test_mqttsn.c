/* MQTT-SN codec: round trips of every message type in both Length forms,
 * known encodings, and each malformed datagram with its rule and text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mqttsn/mqttsn.h"

#define S(lit) ((struct sn_str){(const uint8_t *)(lit), (uint16_t)(sizeof(lit) - 1)})

static void assert_str_equal(struct sn_str a, struct sn_str b)
{
    assert_int_equal(a.len, b.len);
    if (a.len > 0)
        assert_memory_equal(a.p, b.p, a.len);
}

static void assert_msg_equal(const struct sn_msg *a, const struct sn_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags.dup, b->flags.dup);
    assert_int_equal(a->flags.qos, b->flags.qos);
    assert_int_equal(a->flags.retain, b->flags.retain);
    assert_int_equal(a->flags.will, b->flags.will);
    assert_int_equal(a->flags.clean_session, b->flags.clean_session);
    assert_int_equal(a->flags.topic_id_type, b->flags.topic_id_type);
    assert_int_equal(a->gw_id, b->gw_id);
    assert_int_equal(a->radius, b->radius);
    assert_int_equal(a->protocol_id, b->protocol_id);
    assert_int_equal(a->return_code, b->return_code);
    assert_int_equal(a->has_duration, b->has_duration);
    assert_int_equal(a->duration, b->duration);
    assert_int_equal(a->topic_id, b->topic_id);
    assert_int_equal(a->msg_id, b->msg_id);
    assert_int_equal(a->empty_will, b->empty_will);
    assert_str_equal(a->client_id, b->client_id);
    assert_str_equal(a->topic_name, b->topic_name);
    assert_str_equal(a->data, b->data);
    assert_str_equal(a->gw_add, b->gw_add);
    assert_str_equal(a->node_id, b->node_id);
    assert_str_equal(a->inner, b->inner);
}

/* Encodes msg in the 1-byte and in the 3-byte Length form, and checks that
 * each decodes to msg again. */
static void roundtrip(const struct sn_msg *msg)
{
    uint8_t buf[512];
    struct sn_msg copy = *msg, back;
    struct sn_error err;

    for (int form = 0; form < 2; form++) {
        size_t size, len;

        copy.long_length = form == 1;
        size = sn_encoded_size(&copy);
        len = sn_encode(&copy, buf, sizeof buf);
        assert_true(size > 0);
        assert_int_equal(len, size);
        assert_int_equal(sn_encode(&copy, buf, size - 1), 0);
        assert_int_equal(buf[0] == 0x01, form == 1);
        assert_int_equal(sn_decode(buf, len, &back, &err), VIGIL_OK);
        assert_int_equal(back.long_length, form == 1);
        assert_msg_equal(&back, &copy);
    }
}

static const struct sn_flags FLAGS_ALL = {.dup = true, .qos = 2, .retain = true, .will = true,
                                          .clean_session = true,
                                          .topic_id_type = SN_TOPIC_PREDEFINED};

static void test_gateway_messages(void **state)
{
    roundtrip(&(struct sn_msg){.type = SN_ADVERTISE, .gw_id = 5, .duration = 900});
    roundtrip(&(struct sn_msg){.type = SN_SEARCHGW, .radius = 3});
    roundtrip(&(struct sn_msg){.type = SN_GWINFO, .gw_id = 1});
    roundtrip(&(struct sn_msg){.type = SN_GWINFO, .gw_id = 1, .gw_add = S("\x0a\x00\x00\x01")});
}

static void test_connect_messages(void **state)
{
    roundtrip(&(struct sn_msg){.type = SN_CONNECT,
                               .flags = {.will = true, .clean_session = true},
                               .protocol_id = SN_PROTOCOL_ID, .duration = 60,
                               .client_id = S("pump-17")});
    roundtrip(&(struct sn_msg){.type = SN_CONNECT, .protocol_id = SN_PROTOCOL_ID,
                               .client_id = S("abcdefghijklmnopqrstuvw")});
    for (uint8_t rc = SN_RC_ACCEPTED; rc <= SN_RC_NOT_SUPPORTED; rc++) {
        roundtrip(&(struct sn_msg){.type = SN_CONNACK, .return_code = rc});
        roundtrip(&(struct sn_msg){.type = SN_WILLTOPICRESP, .return_code = rc});
        roundtrip(&(struct sn_msg){.type = SN_WILLMSGRESP, .return_code = rc});
    }
    roundtrip(&(struct sn_msg){.type = SN_PINGREQ});
    roundtrip(&(struct sn_msg){.type = SN_PINGREQ, .client_id = S("pump-17")});
    roundtrip(&(struct sn_msg){.type = SN_PINGRESP});
    roundtrip(&(struct sn_msg){.type = SN_DISCONNECT});
    roundtrip(&(struct sn_msg){.type = SN_DISCONNECT, .has_duration = true, .duration = 3600});
}

static void test_will_messages(void **state)
{
    static const uint8_t types[] = {SN_WILLTOPIC, SN_WILLTOPICUPD};

    roundtrip(&(struct sn_msg){.type = SN_WILLTOPICREQ});
    roundtrip(&(struct sn_msg){.type = SN_WILLMSGREQ});
    for (size_t i = 0; i < 2; i++) {
        roundtrip(&(struct sn_msg){.type = types[i], .empty_will = true});
        roundtrip(&(struct sn_msg){.type = types[i], .flags = {.qos = 1, .retain = true},
                                   .topic_name = S("ward/3/offline")});
    }
    roundtrip(&(struct sn_msg){.type = SN_WILLMSG, .data = S("gone")});
    roundtrip(&(struct sn_msg){.type = SN_WILLMSG});
    roundtrip(&(struct sn_msg){.type = SN_WILLMSGUPD, .data = S("gone again")});
}

static void test_publish_messages(void **state)
{
    roundtrip(&(struct sn_msg){.type = SN_REGISTER, .topic_id = 0, .msg_id = 9,
                               .topic_name = S("ward/3/spo2")});
    roundtrip(&(struct sn_msg){.type = SN_REGACK, .topic_id = 12, .msg_id = 9,
                               .return_code = SN_RC_INVALID_TOPIC_ID});
    for (int8_t qos = -1; qos <= 2; qos++) {
        for (uint8_t tt = SN_TOPIC_NORMAL; tt <= SN_TOPIC_SHORT; tt++) {
            if (qos == -1 && tt == SN_TOPIC_NORMAL)
                continue;
            roundtrip(&(struct sn_msg){.type = SN_PUBLISH,
                                       .flags = {.dup = qos > 0, .qos = qos, .retain = true,
                                                 .topic_id_type = tt},
                                       .topic_id = 0x7331, .msg_id = 0x0102,
                                       .data = S("\x00\x01\x02")});
        }
    }
    roundtrip(&(struct sn_msg){.type = SN_PUBLISH, .flags = FLAGS_ALL, .topic_id = 1});
    roundtrip(&(struct sn_msg){.type = SN_PUBACK, .topic_id = 1, .msg_id = 2,
                               .return_code = SN_RC_CONGESTION});
    roundtrip(&(struct sn_msg){.type = SN_PUBCOMP, .msg_id = 0xFFFF});
    roundtrip(&(struct sn_msg){.type = SN_PUBREC, .msg_id = 1});
    roundtrip(&(struct sn_msg){.type = SN_PUBREL, .msg_id = 2});
}

static void test_subscribe_messages(void **state)
{
    static const uint8_t types[] = {SN_SUBSCRIBE, SN_UNSUBSCRIBE};

    for (size_t i = 0; i < 2; i++) {
        roundtrip(&(struct sn_msg){.type = types[i], .flags = {.qos = 1}, .msg_id = 3,
                                   .topic_name = S("ward/+/spo2")});
        roundtrip(&(struct sn_msg){.type = types[i],
                                   .flags = {.dup = true, .topic_id_type = SN_TOPIC_PREDEFINED},
                                   .msg_id = 4, .topic_id = 77});
        roundtrip(&(struct sn_msg){.type = types[i],
                                   .flags = {.qos = 2, .topic_id_type = SN_TOPIC_SHORT},
                                   .msg_id = 5, .topic_id = ('h' << 8) | 'r'});
    }
    roundtrip(&(struct sn_msg){.type = SN_SUBACK, .flags = {.qos = 1}, .topic_id = 8,
                               .msg_id = 3, .return_code = SN_RC_ACCEPTED});
    roundtrip(&(struct sn_msg){.type = SN_UNSUBACK, .msg_id = 3});
}

static void test_encapsulated(void **state)
{
    static const uint8_t inner[] = {0x02, SN_PINGRESP};
    struct sn_msg msg = {.type = SN_ENCAPSULATED, .radius = 2, .node_id = S("\x11\x22\x33"),
                         .inner = {inner, sizeof inner}};
    struct sn_msg back, in;
    struct sn_error err;
    uint8_t buf[32];
    size_t len;

    roundtrip(&msg);
    len = sn_encode(&msg, buf, sizeof buf);
    assert_int_equal(len, 8);
    assert_int_equal(buf[0], 6);
    assert_int_equal(sn_decode(buf, len, &back, &err), VIGIL_OK);
    assert_int_equal(sn_decode(back.inner.p, back.inner.len, &in, &err), VIGIL_OK);
    assert_int_equal(in.type, SN_PINGRESP);
}

static void test_known_bytes(void **state)
{
    /* PUBLISH QoS 1, short topic "hr", msg id 0x0A0B, data "72". */
    static const uint8_t wire[] = {0x09, 0x0C, 0x22, 'h', 'r', 0x0A, 0x0B, '7', '2'};
    /* The same message with a 3-byte Length. */
    static const uint8_t wire_long[] = {0x01, 0x00, 0x0B, 0x0C, 0x22, 'h', 'r',
                                        0x0A, 0x0B, '7',  '2'};
    struct sn_msg msg;
    struct sn_error err;
    uint8_t buf[16];

    assert_int_equal(sn_decode(wire, sizeof wire, &msg, &err), VIGIL_OK);
    assert_int_equal(msg.type, SN_PUBLISH);
    assert_int_equal(msg.flags.qos, 1);
    assert_int_equal(msg.flags.topic_id_type, SN_TOPIC_SHORT);
    assert_int_equal(msg.topic_id, ('h' << 8) | 'r');
    assert_int_equal(msg.msg_id, 0x0A0B);
    assert_str_equal(msg.data, S("72"));
    assert_false(msg.long_length);
    assert_int_equal(sn_encode(&msg, buf, sizeof buf), sizeof wire);
    assert_memory_equal(buf, wire, sizeof wire);

    assert_int_equal(sn_decode(wire_long, sizeof wire_long, &msg, &err), VIGIL_OK);
    assert_true(msg.long_length);
    assert_int_equal(sn_encode(&msg, buf, sizeof buf), sizeof wire_long);
    assert_memory_equal(buf, wire_long, sizeof wire_long);
}

/* A message above 255 bytes gets the 3-byte form even without long_length. */
static void test_long_message(void **state)
{
    static uint8_t data[300];
    static uint8_t buf[400];
    struct sn_msg msg = {.type = SN_PUBLISH, .flags = {.qos = 1}, .topic_id = 1, .msg_id = 1,
                         .data = {data, sizeof data}};
    struct sn_msg back;
    struct sn_error err;
    size_t len;

    len = sn_encode(&msg, buf, sizeof buf);
    assert_int_equal(len, 3 + 1 + 5 + sizeof data);
    assert_int_equal(buf[0], 0x01);
    assert_int_equal(sn_decode(buf, len, &back, &err), VIGIL_OK);
    assert_int_equal(back.data.len, sizeof data);

    /* 253 bytes of body plus 2 header bytes is the last short form. */
    msg.data.len = 248;
    assert_int_equal(sn_encode(&msg, buf, sizeof buf), 255);
    assert_int_equal(buf[0], 255);
    msg.data.len = 249;
    assert_int_equal(sn_encode(&msg, buf, sizeof buf), 258);
    assert_int_equal(buf[0], 0x01);
}

static void test_type_names(void **state)
{
    assert_string_equal(sn_type_name(SN_WILLTOPICUPD), "WILLTOPICUPD");
    assert_string_equal(sn_type_name(SN_ENCAPSULATED), "Encapsulated");
    assert_null(sn_type_name(0x03));
    assert_null(sn_type_name(0xFF));
}

static void test_encode_invalid(void **state)
{
    uint8_t buf[16];

    assert_int_equal(sn_encode(&(struct sn_msg){.type = 0x11}, buf, sizeof buf), 0);
    assert_int_equal(sn_encode(&(struct sn_msg){.type = SN_PUBLISH, .flags = {.qos = 3}}, buf,
                               sizeof buf),
                     0);
}

/* One malformed datagram with its expected rule and text. */
struct reject_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    const char *rule;
    const char *text;
};

#define WIRE(...) .bytes = (const uint8_t[]){__VA_ARGS__}, \
                  .len = sizeof((const uint8_t[]){__VA_ARGS__})
#define R_LEN "MQTT-SN-1.2:5.2.1"
#define T_SHORT "message is shorter than its type requires"
#define T_LONG "message is longer than its type allows"

static const struct reject_case cases[] = {
    /* Length field. */
    {"one byte datagram", WIRE(0x02), R_LEN, "datagram is shorter than Length and MsgType"},
    {"length zero", WIRE(0x00, 0x17), R_LEN, "Length is smaller than the header"},
    {"long length truncated", WIRE(0x01, 0x00, 0x04), R_LEN,
     "datagram is shorter than a 3-byte Length and MsgType"},
    {"long length below header", WIRE(0x01, 0x00, 0x03, 0x17), R_LEN,
     "Length is smaller than the header"},
    {"length above datagram", WIRE(0x03, 0x17), R_LEN,
     "Length does not match the datagram length"},
    {"length below datagram", WIRE(0x02, 0x17, 0x00), R_LEN,
     "Length does not match the datagram length"},
    {"long length mismatch", WIRE(0x01, 0x00, 0x05, 0x17), R_LEN,
     "Length does not match the datagram length"},

    /* MsgType. */
    {"reserved type 0x03", WIRE(0x02, 0x03), "MQTT-SN-1.2:5.2.2", "MsgType is reserved"},
    {"reserved type 0x11", WIRE(0x02, 0x11), "MQTT-SN-1.2:5.2.2", "MsgType is reserved"},
    {"reserved type 0x19", WIRE(0x02, 0x19), "MQTT-SN-1.2:5.2.2", "MsgType is reserved"},
    {"reserved type 0x1e", WIRE(0x02, 0x1E), "MQTT-SN-1.2:5.2.2", "MsgType is reserved"},
    {"reserved type 0xff", WIRE(0x02, 0xFF), "MQTT-SN-1.2:5.2.2", "MsgType is reserved"},

    /* Body lengths per type. */
    {"advertise short", WIRE(0x04, 0x00, 1, 0), "MQTT-SN-1.2:5.4.1", T_SHORT},
    {"advertise long", WIRE(0x06, 0x00, 1, 0, 1, 0), "MQTT-SN-1.2:5.4.1", T_LONG},
    {"searchgw empty", WIRE(0x02, 0x01), "MQTT-SN-1.2:5.4.2", T_SHORT},
    {"gwinfo empty", WIRE(0x02, 0x02), "MQTT-SN-1.2:5.4.3", T_SHORT},
    {"connect no client id", WIRE(0x06, 0x04, 0x04, 0x01, 0, 60), "MQTT-SN-1.2:5.4.4",
     T_SHORT},
    {"connect client id 24", WIRE(30, 0x04, 0x04, 0x01, 0, 60, 'a', 'b', 'c', 'd', 'e', 'f', 'g',
                                  'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r', 's',
                                  't', 'u', 'v', 'w', 'x'),
     "MQTT-SN-1.2:5.4.4", T_LONG},
    {"connack empty", WIRE(0x02, 0x05), "MQTT-SN-1.2:5.4.5", T_SHORT},
    {"willtopicreq body", WIRE(0x03, 0x06, 0), "MQTT-SN-1.2:5.4.6", T_LONG},
    {"willmsgreq body", WIRE(0x03, 0x08, 0), "MQTT-SN-1.2:5.4.8", T_LONG},
    {"register short", WIRE(0x05, 0x0A, 0, 0, 0), "MQTT-SN-1.2:5.4.10", T_SHORT},
    {"register empty topic name", WIRE(0x06, 0x0A, 0, 0, 0, 1), "MQTT-SN-1.2:5.4.10",
     "TopicName is empty"},
    {"regack long", WIRE(0x08, 0x0B, 0, 1, 0, 1, 0, 0), "MQTT-SN-1.2:5.4.11", T_LONG},
    {"publish short", WIRE(0x06, 0x0C, 0x00, 0, 1, 0), "MQTT-SN-1.2:5.4.12", T_SHORT},
    {"puback short", WIRE(0x06, 0x0D, 0, 1, 0, 1), "MQTT-SN-1.2:5.4.13", T_SHORT},
    {"pubcomp long", WIRE(0x05, 0x0E, 0, 1, 0), "MQTT-SN-1.2:5.4.14", T_LONG},
    {"pubrec short", WIRE(0x03, 0x0F, 0), "MQTT-SN-1.2:5.4.14", T_SHORT},
    {"pubrel short", WIRE(0x02, 0x10), "MQTT-SN-1.2:5.4.14", T_SHORT},
    {"subscribe short", WIRE(0x04, 0x12, 0x00, 0), "MQTT-SN-1.2:5.4.15", T_SHORT},
    {"suback short", WIRE(0x07, 0x13, 0x00, 0, 1, 0, 1), "MQTT-SN-1.2:5.4.16", T_SHORT},
    {"unsubscribe short", WIRE(0x04, 0x14, 0x00, 0), "MQTT-SN-1.2:5.4.17", T_SHORT},
    {"unsubscribe empty topic name", WIRE(0x05, 0x14, 0x00, 0, 1), "MQTT-SN-1.2:5.4.17",
     "TopicName is empty"},
    {"unsuback long", WIRE(0x05, 0x15, 0, 1, 0), "MQTT-SN-1.2:5.4.18", T_LONG},
    {"pingresp body", WIRE(0x03, 0x17, 0), "MQTT-SN-1.2:5.4.20", T_LONG},
    {"disconnect three bytes", WIRE(0x05, 0x18, 0, 1, 0), "MQTT-SN-1.2:5.4.21", T_LONG},
    {"disconnect one byte", WIRE(0x03, 0x18, 0), "MQTT-SN-1.2:5.4.21",
     "Duration of DISCONNECT is not 2 bytes"},
    {"willtopicresp empty", WIRE(0x02, 0x1B), "MQTT-SN-1.2:5.4.24", T_SHORT},
    {"willmsgresp long", WIRE(0x04, 0x1D, 0, 0), "MQTT-SN-1.2:5.4.25", T_LONG},
    {"encapsulated without ctrl", WIRE(0x02, 0xFE, 0x02, 0x17), "MQTT-SN-1.2:5.5", T_SHORT},

    /* Field values. */
    {"connect protocol id 2", WIRE(0x07, 0x04, 0x04, 0x02, 0, 60, 'c'), "MQTT-SN-1.2:5.3.8",
     "ProtocolId is not 0x01"},
    {"connect qos minus one", WIRE(0x07, 0x04, 0x60, 0x01, 0, 60, 'c'), "MQTT-SN-1.2:5.3.4",
     "QoS -1 (0b11) is allowed only in PUBLISH"},
    {"publish topic id type 3", WIRE(0x07, 0x0C, 0x03, 0, 1, 0, 1), "MQTT-SN-1.2:5.3.4",
     "TopicIdType 0b11 is reserved"},
    {"subscribe topic id type 3", WIRE(0x05, 0x12, 0x03, 0, 1), "MQTT-SN-1.2:5.3.4",
     "TopicIdType 0b11 is reserved"},
    {"subscribe qos minus one", WIRE(0x06, 0x12, 0x60, 0, 1, 'a'), "MQTT-SN-1.2:5.3.4",
     "QoS -1 (0b11) is allowed only in PUBLISH"},
    {"willtopic qos minus one", WIRE(0x04, 0x07, 0x60, 'a'), "MQTT-SN-1.2:5.3.4",
     "QoS -1 (0b11) is allowed only in PUBLISH"},
    {"publish qos minus one normal", WIRE(0x07, 0x0C, 0x60, 0, 1, 0, 0), "MQTT-SN-1.2:6.8",
     "QoS -1 PUBLISH needs a predefined topic id or short topic name"},
    {"connack return code 4", WIRE(0x03, 0x05, 0x04), "MQTT-SN-1.2:5.3.10",
     "ReturnCode 0x04-0xFF is reserved"},
    {"puback return code 0xff", WIRE(0x07, 0x0D, 0, 1, 0, 1, 0xFF), "MQTT-SN-1.2:5.3.10",
     "ReturnCode 0x04-0xFF is reserved"},
    {"subscribe predefined 3 bytes", WIRE(0x06, 0x12, 0x01, 0, 1, 0), "MQTT-SN-1.2:5.4.15",
     "predefined topic id or short topic name is not 2 bytes"},
    {"unsubscribe short name 3 bytes", WIRE(0x08, 0x14, 0x02, 0, 1, 'a', 'b', 'c'),
     "MQTT-SN-1.2:5.4.17", "predefined topic id or short topic name is not 2 bytes"},
    {"subscribe empty topic name", WIRE(0x05, 0x12, 0x00, 0, 1), "MQTT-SN-1.2:5.4.15",
     "TopicName is empty"},
    {"encapsulated reserved ctrl", WIRE(0x03, 0xFE, 0x04, 0x02, 0x17), "MQTT-SN-1.2:5.5",
     "reserved bits of Ctrl are set"},
    {"encapsulated no inner", WIRE(0x03, 0xFE, 0x01), "MQTT-SN-1.2:5.5",
     "Encapsulated message carries no inner message"},
};

static void test_reject(void **state)
{
    const struct reject_case *c = *state;
    struct sn_msg msg;
    struct sn_error err = {0};

    assert_int_equal(sn_decode(c->bytes, c->len, &msg, &err), VIGIL_ERR_PROTOCOL);
    assert_string_equal(err.rule, c->rule);
    assert_string_equal(err.text, c->text);
}

int main(void)
{
    enum { N_REJECT = sizeof cases / sizeof cases[0] };
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_gateway_messages),   cmocka_unit_test(test_connect_messages),
        cmocka_unit_test(test_will_messages),      cmocka_unit_test(test_publish_messages),
        cmocka_unit_test(test_subscribe_messages), cmocka_unit_test(test_encapsulated),
        cmocka_unit_test(test_known_bytes),        cmocka_unit_test(test_long_message),
        cmocka_unit_test(test_type_names),         cmocka_unit_test(test_encode_invalid),
    };
    enum { N_FIXED = sizeof fixed / sizeof fixed[0] };
    struct CMUnitTest tests[N_FIXED + N_REJECT];

    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < N_REJECT; i++) {
        tests[N_FIXED + i] = (struct CMUnitTest){
            .name = cases[i].name,
            .test_func = test_reject,
            .initial_state = (void *)&cases[i],
        };
    }
    return _cmocka_run_group_tests("mqttsn", tests, N_FIXED + N_REJECT, NULL, NULL);
}
