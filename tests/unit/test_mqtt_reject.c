/* MQTT decoder rejections: one malformed or forbidden packet per case,
 * each checked for the reason code and the named rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/mqtt/mqtt.h"

#define V4 MQTT_V311
#define V5 MQTT_V5
#define SRV true  /* decode what a client sends */
#define CLI false /* decode what a server sends */

/* One case. first is the first header byte, and body is what follows the
 * Remaining Length, which the test computes. With raw set, body is the
 * whole packet. */
struct reject_case {
    const char *name;
    uint8_t version;
    bool is_server;
    uint8_t first;
    const uint8_t *body;
    size_t body_len;
    bool raw;
    uint8_t reason;
    const char *rule;
};

#define BODY(...)                                                                             \
    .body = (const uint8_t[]){__VA_ARGS__}, .body_len = sizeof((const uint8_t[]){__VA_ARGS__})

/* CONNECT variable header up to the keep alive (60 s). */
#define CONNECT_HDR(level, flags) 0, 4, 'M', 'Q', 'T', 'T', level, flags, 0, 60
/* Client identifier "c". */
#define CID 0, 1, 'c'

static const struct reject_case cases[] = {
    /* Fixed header and framing. */
    {"pingreq reserved flags", V5, SRV, 0xC1, BODY(0), false, 0x81, "MQTT-2.1.3-1"},
    {"subscribe flags v311", V4, SRV, 0x80, BODY(0, 1, 0, 1, 'a', 0), false, 0x81,
     "MQTT-3.1.1:2.2.2-1"},
    {"pubrel flags zero", V5, SRV, 0x60, BODY(0, 1), false, 0x81, "MQTT-2.1.3-1"},
    {"packet type zero", V5, SRV, 0x00, BODY(0), false, 0x81, "MQTT-2.1.2"},
    {"auth in v311", V4, SRV, 0xF0, BODY(0), false, 0x81, "MQTT-3.1.1:2.2.1"},
    {"connack sent to server", V5, SRV, 0x20, BODY(0, 0, 0), false, 0x82, "MQTT-2.1.2"},
    {"subscribe sent to client", V5, CLI, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0), false, 0x82,
     "MQTT-2.1.2"},
    {"disconnect from server v311", V4, CLI, 0xE0, BODY(0), false, 0x82, "MQTT-3.1.1:2.2.1"},
    {"remaining length not minimal", V5, SRV, 0, BODY(0xC0, 0x80, 0x00), true, 0x81,
     "MQTT-1.5.5-1"},
    {"remaining length five bytes", V5, SRV, 0, BODY(0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F), true,
     0x81, "MQTT-1.5.5"},
    {"remaining length short of buffer", V5, SRV, 0, BODY(0xC0, 0x00, 0x00), true, 0x81,
     "MQTT-2.1.4"},
    {"pingreq with body", V5, SRV, 0xC0, BODY(0), false, 0x81, "MQTT-2.1.4"},
    {"pingresp with body", V5, CLI, 0xD0, BODY(0), false, 0x81, "MQTT-2.1.4"},
    {"publish topic truncated", V5, SRV, 0x30, BODY(0, 5, 'a'), false, 0x81, "MQTT-2.1.4"},
    {"puback v311 trailing byte", V4, SRV, 0x40, BODY(0, 1, 0), false, 0x81,
     "MQTT-3.1.1:2.2.3"},

    /* CONNECT. */
    {"connect reserved flag", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x03), 0, CID), false, 0x81,
     "MQTT-3.1.2-3"},
    {"connect reserved flag v311", V4, SRV, 0x10, BODY(CONNECT_HDR(4, 0x01), CID), false, 0x81,
     "MQTT-3.1.1:3.1.2-3"},
    {"connect will qos 3", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x1C), 0, CID), false, 0x81,
     "MQTT-3.1.2-12"},
    {"connect will qos 3 v311", V4, SRV, 0x10, BODY(CONNECT_HDR(4, 0x1C), CID), false, 0x81,
     "MQTT-3.1.1:3.1.2-14"},
    {"connect will qos no will", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x08), 0, CID), false, 0x81,
     "MQTT-3.1.2-11"},
    {"connect will retain no will", V4, SRV, 0x10, BODY(CONNECT_HDR(4, 0x20), CID), false, 0x81,
     "MQTT-3.1.1:3.1.2-15"},
    {"connect password no user v311", V4, SRV, 0x10, BODY(CONNECT_HDR(4, 0x40), CID, 0, 1, 'p'),
     false, 0x81, "MQTT-3.1.1:3.1.2-22"},
    {"connect wrong protocol name", V4, SRV, 0x10,
     BODY(0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, CID), false, 0x84, "MQTT-3.1.1:3.1.2-1"},
    {"connect wrong protocol name v5", V5, SRV, 0x10,
     BODY(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 5, 0x02, 0, 60, 0, CID), false, 0x84,
     "MQTT-3.1.2-1"},
    {"connect level 6", V5, SRV, 0x10, BODY(CONNECT_HDR(6, 0x02), 0, CID), false, 0x84,
     "MQTT-3.1.2-2"},
    {"connect level 3", V4, SRV, 0x10,
     BODY(0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, CID), false, 0x84,
     "MQTT-3.1.1:3.1.2-2"},
    {"connect client id overlong", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 0, 0, 2, 0xC0, 0x80), false, 0x81, "MQTT-1.5.4-1"},
    {"connect client id nul", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x02), 0, 0, 2, 'a', 0), false,
     0x81, "MQTT-1.5.4-2"},
    {"connect username surrogate", V4, SRV, 0x10,
     BODY(CONNECT_HDR(4, 0x82), CID, 0, 3, 0xED, 0xA0, 0x80), false, 0x81,
     "MQTT-3.1.1:1.5.3-1"},
    {"connect will topic wildcard", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x06), 0, CID, 0, 0, 3, 'a', '/', '#', 0, 0), false, 0x90,
     "MQTT-4.7.1"},
    {"connect will topic empty v311", V4, SRV, 0x10,
     BODY(CONNECT_HDR(4, 0x06), CID, 0, 0, 0, 0), false, 0x90, "MQTT-3.1.1:4.7.3-1"},
    {"connect topic alias property", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x02), 3, 0x23, 0, 1, CID),
     false, 0x81, "MQTT-2.2.2.2"},
    {"connect unknown property", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x02), 2, 0x05, 0, CID),
     false, 0x81, "MQTT-2.2.2.2"},
    {"connect duplicate session expiry", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, CID), false, 0x82,
     "MQTT-3.1.2.11.2"},
    {"connect receive maximum 0", V5, SRV, 0x10, BODY(CONNECT_HDR(5, 0x02), 3, 0x21, 0, 0, CID),
     false, 0x82, "MQTT-3.1.2.11.3"},
    {"connect max packet size 0", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 5, 0x27, 0, 0, 0, 0, CID), false, 0x82, "MQTT-3.1.2.11.4"},
    {"connect request problem info 2", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 2, 0x17, 2, CID), false, 0x82, "MQTT-3.1.2.11.7"},
    {"connect request response info 2", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 2, 0x19, 2, CID), false, 0x82, "MQTT-3.1.2.11.6"},
    {"connect auth data no method", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 4, 0x16, 0, 1, 'x', CID), false, 0x82, "MQTT-3.1.2.11.10"},
    {"connect will payload format 2", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x06), 0, CID, 2, 0x01, 2, 0, 1, 't', 0, 0), false, 0x82,
     "MQTT-3.3.2.3.2"},
    {"connect will delay in connect", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 5, 0x18, 0, 0, 0, 1, CID), false, 0x81, "MQTT-2.2.2.2"},
    {"connect user property bad value", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 7, 0x26, 0, 1, 'k', 0, 1, 0xFF, CID), false, 0x81,
     "MQTT-1.5.4-1"},
    {"connect property length not minimal", V5, SRV, 0x10,
     BODY(CONNECT_HDR(5, 0x02), 0x80, 0x00, CID), false, 0x81, "MQTT-1.5.5-1"},

    /* PUBLISH. */
    {"publish qos 3", V5, SRV, 0x36, BODY(0, 1, 't', 0, 1, 0), false, 0x81, "MQTT-3.3.1-4"},
    {"publish qos 3 v311", V4, SRV, 0x36, BODY(0, 1, 't', 0, 1), false, 0x81,
     "MQTT-3.1.1:3.3.1-4"},
    {"publish dup on qos 0", V5, SRV, 0x38, BODY(0, 1, 't', 0), false, 0x81, "MQTT-3.3.1-2"},
    {"publish dup on qos 0 v311", V4, SRV, 0x38, BODY(0, 1, 't'), false, 0x81,
     "MQTT-3.1.1:3.3.1-2"},
    {"publish topic plus", V5, SRV, 0x30, BODY(0, 3, 'a', '/', '+', 0), false, 0x90,
     "MQTT-3.3.2-2"},
    {"publish topic hash v311", V4, SRV, 0x30, BODY(0, 1, '#'), false, 0x90,
     "MQTT-3.1.1:3.3.2-2"},
    {"publish packet id 0 from client", V5, SRV, 0x32, BODY(0, 1, 't', 0, 0, 0), false, 0x82,
     "MQTT-2.2.1-3"},
    {"publish packet id 0 from server", V5, CLI, 0x34, BODY(0, 1, 't', 0, 0, 0), false, 0x82,
     "MQTT-2.2.1-4"},
    {"publish packet id 0 v311", V4, SRV, 0x32, BODY(0, 1, 't', 0, 0), false, 0x82,
     "MQTT-3.1.1:2.3.1-1"},
    {"publish empty topic v311", V4, SRV, 0x30, BODY(0, 0, 'x'), false, 0x81,
     "MQTT-3.1.1:4.7.3-1"},
    {"publish empty topic no alias", V5, SRV, 0x30, BODY(0, 0, 0, 'x'), false, 0x82,
     "MQTT-3.3.2.3.4"},
    {"publish topic alias 0", V5, SRV, 0x30, BODY(0, 1, 't', 3, 0x23, 0, 0), false, 0x82,
     "MQTT-3.3.2-8"},
    {"publish duplicate topic alias", V5, SRV, 0x30, BODY(0, 1, 't', 6, 0x23, 0, 1, 0x23, 0, 2),
     false, 0x82, "MQTT-3.3.2.3.4"},
    {"publish sub id from client", V5, SRV, 0x30, BODY(0, 1, 't', 2, 0x0B, 1), false, 0x82,
     "MQTT-3.3.4-6"},
    {"publish sub id 0", V5, CLI, 0x30, BODY(0, 1, 't', 2, 0x0B, 0), false, 0x82,
     "MQTT-3.8.2.1.2"},
    {"publish sub id not minimal", V5, CLI, 0x30, BODY(0, 1, 't', 3, 0x0B, 0x81, 0x00), false,
     0x81, "MQTT-1.5.5-1"},
    {"publish payload format 2", V5, SRV, 0x30, BODY(0, 1, 't', 2, 0x01, 2), false, 0x82,
     "MQTT-3.3.2.3.2"},
    {"publish response topic wildcard", V5, SRV, 0x30,
     BODY(0, 1, 't', 4, 0x08, 0, 1, '#'), false, 0x82, "MQTT-3.3.2-14"},
    {"publish topic nul", V5, SRV, 0x30, BODY(0, 2, 't', 0, 0), false, 0x81, "MQTT-1.5.4-2"},
    {"publish property past block", V5, SRV, 0x30, BODY(0, 1, 't', 2, 0x02, 0, 0, 0), false,
     0x81, "MQTT-2.2.2.2"},
    {"publish property length past packet", V5, SRV, 0x30, BODY(0, 1, 't', 9, 0x01, 0), false,
     0x81, "MQTT-2.2.2.1"},
    {"publish reason string property", V5, SRV, 0x30, BODY(0, 1, 't', 4, 0x1F, 0, 1, 'r'), false,
     0x81, "MQTT-2.2.2.2"},

    /* SUBSCRIBE and UNSUBSCRIBE. */
    {"subscribe empty payload", V5, SRV, 0x82, BODY(0, 1, 0), false, 0x82, "MQTT-3.8.3-2"},
    {"subscribe empty payload v311", V4, SRV, 0x82, BODY(0, 1), false, 0x82,
     "MQTT-3.1.1:3.8.3-3"},
    {"subscribe packet id 0", V5, SRV, 0x82, BODY(0, 0, 0, 0, 1, 'a', 0), false, 0x82,
     "MQTT-2.2.1-3"},
    {"subscribe reserved option bits", V5, SRV, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x40), false,
     0x81, "MQTT-3.8.3-5"},
    {"subscribe qos 3", V5, SRV, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x03), false, 0x82,
     "MQTT-3.8.3.1"},
    {"subscribe retain handling 3", V5, SRV, 0x82, BODY(0, 1, 0, 0, 1, 'a', 0x30), false, 0x82,
     "MQTT-3.8.3.1"},
    {"subscribe no local on shared", V5, SRV, 0x82,
     BODY(0, 1, 0, 0, 10, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'a', 0x04), false, 0x82,
     "MQTT-3.8.3-4"},
    {"subscribe reserved bits v311", V4, SRV, 0x82, BODY(0, 1, 0, 1, 'a', 0x04), false, 0x81,
     "MQTT-3.1.1:3.8.3-4"},
    {"subscribe qos 3 v311", V4, SRV, 0x82, BODY(0, 1, 0, 1, 'a', 0x03), false, 0x81,
     "MQTT-3.1.1:3.8.3-4"},
    {"subscribe hash not last", V5, SRV, 0x82, BODY(0, 1, 0, 0, 5, 'a', '/', '#', '/', 'b', 0),
     false, 0x81, "MQTT-4.7.1-1"},
    {"subscribe plus inside level v311", V4, SRV, 0x82, BODY(0, 1, 0, 2, 'a', '+', 0), false,
     0x81, "MQTT-3.1.1:4.7.1-3"},
    {"subscribe empty filter", V5, SRV, 0x82, BODY(0, 1, 0, 0, 0, 0), false, 0x81,
     "MQTT-4.7.3-1"},
    {"subscribe empty share name", V5, SRV, 0x82,
     BODY(0, 1, 0, 0, 9, '$', 's', 'h', 'a', 'r', 'e', '/', '/', 'a', 0), false, 0x82,
     "MQTT-4.8.2-1"},
    {"subscribe share without filter", V5, SRV, 0x82,
     BODY(0, 1, 0, 0, 8, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', 0), false, 0x82,
     "MQTT-4.8.2-2"},
    {"subscribe duplicate sub id", V5, SRV, 0x82, BODY(0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0),
     false, 0x82, "MQTT-3.8.2.1.2"},
    {"subscribe sub id 0", V5, SRV, 0x82, BODY(0, 1, 2, 0x0B, 0, 0, 1, 'a', 0), false, 0x82,
     "MQTT-3.8.2.1.2"},
    {"subscribe options missing", V5, SRV, 0x82, BODY(0, 1, 0, 0, 1, 'a'), false, 0x81,
     "MQTT-2.1.4"},
    {"subscribe filter overlong utf8", V5, SRV, 0x82, BODY(0, 1, 0, 0, 2, 0xE0, 0x80, 0), false,
     0x81, "MQTT-1.5.4-1"},
    {"unsubscribe empty payload", V5, SRV, 0xA2, BODY(0, 1, 0), false, 0x82, "MQTT-3.10.3-2"},
    {"unsubscribe empty payload v311", V4, SRV, 0xA2, BODY(0, 1), false, 0x82,
     "MQTT-3.1.1:3.10.3-2"},
    {"unsubscribe packet id 0", V4, SRV, 0xA2, BODY(0, 0, 0, 1, 'a'), false, 0x82,
     "MQTT-3.1.1:2.3.1-1"},
    {"unsubscribe reason string", V5, SRV, 0xA2, BODY(0, 1, 4, 0x1F, 0, 1, 'r', 0, 1, 'a'), false,
     0x81, "MQTT-2.2.2.2"},

    /* Packets a server sends. */
    {"connack reserved flags", V5, CLI, 0x20, BODY(0x02, 0, 0), false, 0x81, "MQTT-3.2.2-1"},
    {"connack return code 6 v311", V4, CLI, 0x20, BODY(0, 6), false, 0x81, "MQTT-3.1.1:3.2.2.3"},
    {"connack session present refused v311", V4, CLI, 0x20, BODY(1, 5), false, 0x82,
     "MQTT-3.1.1:3.2.2-4"},
    {"connack session present refused", V5, CLI, 0x20, BODY(1, 0x87, 0), false, 0x82,
     "MQTT-3.2.2-6"},
    {"connack invalid reason", V5, CLI, 0x20, BODY(0, 0x10, 0), false, 0x81, "MQTT-3.2.2.2"},
    {"connack maximum qos 2", V5, CLI, 0x20, BODY(0, 0, 2, 0x24, 2), false, 0x82,
     "MQTT-3.2.2.3.4"},
    {"connack retain available 2", V5, CLI, 0x20, BODY(0, 0, 2, 0x25, 2), false, 0x82,
     "MQTT-3.2.2.3.5"},
    {"connack property length missing", V5, CLI, 0x20, BODY(0, 0), false, 0x81, "MQTT-2.1.4"},
    {"suback return code 3 v311", V4, CLI, 0x90, BODY(0, 1, 3), false, 0x81,
     "MQTT-3.1.1:3.9.3-2"},
    {"suback invalid reason", V5, CLI, 0x90, BODY(0, 1, 0, 0x10), false, 0x81, "MQTT-3.9.3"},
    {"unsuback payload v311", V4, CLI, 0xB0, BODY(0, 1, 0), false, 0x81, "MQTT-3.1.1:2.2.3"},
    {"unsuback invalid reason", V5, CLI, 0xB0, BODY(0, 1, 0, 0x01), false, 0x81, "MQTT-3.11.3"},
    {"puback invalid reason", V5, SRV, 0x40, BODY(0, 1, 0x92), false, 0x81, "MQTT-3.4.2.1"},
    {"pubrel invalid reason", V5, SRV, 0x62, BODY(0, 1, 0x10), false, 0x81, "MQTT-3.6.2.1"},
    {"puback topic alias property", V5, SRV, 0x40, BODY(0, 1, 0, 3, 0x23, 0, 1), false, 0x81,
     "MQTT-2.2.2.2"},
    {"disconnect session expiry from server", V5, CLI, 0xE0, BODY(0, 5, 0x11, 0, 0, 0, 1), false,
     0x82, "MQTT-3.14.2-2"},
    {"disconnect invalid reason", V5, SRV, 0xE0, BODY(0x05), false, 0x81, "MQTT-3.14.2.1"},
    {"auth invalid reason", V5, SRV, 0xF0, BODY(0x01), false, 0x81, "MQTT-3.15.2.1"},
    {"auth data without method", V5, CLI, 0xF0, BODY(0x18, 4, 0x16, 0, 1, 'x'), false, 0x82,
     "MQTT-3.1.2.11.10"},
};

static void test_reject(void **state)
{
    const struct reject_case *c = *state;
    uint8_t buf[512];
    size_t len = 0;
    struct mqtt_packet pkt;
    struct mqtt_error err = {0};

    if (c->raw) {
        memcpy(buf, c->body, c->body_len);
        len = c->body_len;
    } else {
        assert_true(c->body_len < 128);
        buf[len++] = c->first;
        buf[len++] = (uint8_t)c->body_len;
        memcpy(buf + len, c->body, c->body_len);
        len += c->body_len;
    }

    assert_int_equal(mqtt_decode(buf, len, c->version, c->is_server, &pkt, &err),
                     VIGIL_ERR_PROTOCOL);
    assert_non_null(err.text);
    assert_non_null(err.rule);
    assert_string_equal(err.rule, c->rule);
    assert_int_equal(err.reason_code, c->reason);
}

int main(void)
{
    enum { N = sizeof cases / sizeof cases[0] };
    struct CMUnitTest tests[N];

    for (size_t i = 0; i < N; i++) {
        tests[i] = (struct CMUnitTest){
            .name = cases[i].name,
            .test_func = test_reject,
            .initial_state = (void *)&cases[i],
        };
    }
    return _cmocka_run_group_tests("mqtt_reject", tests, N, NULL, NULL);
}
