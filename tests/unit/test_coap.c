/* CoAP codec: round trips of every message type and option header form,
 * option helpers, the critical option check, and each malformed datagram
 * with its rule, text and suggested response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/coap/coap.h"

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

/* Encodes msg, decodes the result, and checks every field survived. */
static void roundtrip(const struct coap_msg *msg, uint8_t *buf, size_t cap, size_t *len_out)
{
    struct coap_msg back;
    struct coap_error err;
    size_t size = coap_encoded_size(msg);
    size_t len = coap_encode(msg, buf, cap);

    assert_true(size > 0);
    assert_int_equal(len, size);
    assert_int_equal(coap_encode(msg, buf, size - 1), 0);
    assert_int_equal(coap_decode(buf, len, &back, &err), VIGIL_OK);
    assert_int_equal(err.action, COAP_ACTION_NONE);
    assert_int_equal(back.type, msg->type);
    assert_int_equal(back.code, msg->code);
    assert_int_equal(back.message_id, msg->message_id);
    assert_int_equal(back.token_len, msg->token_len);
    if (msg->token_len > 0)
        assert_memory_equal(back.token, msg->token, msg->token_len);
    assert_int_equal(back.n_options, msg->n_options);
    assert_int_equal(back.payload_len, msg->payload_len);
    if (msg->payload_len > 0)
        assert_memory_equal(back.payload, msg->payload, msg->payload_len);
    if (len_out != NULL)
        *len_out = len;
}

static void test_types_and_tokens(void **state)
{
    static const uint8_t token[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t buf[64];

    for (uint8_t type = COAP_CON; type <= COAP_RST; type++) {
        for (uint8_t tkl = 0; tkl <= COAP_MAX_TOKEN; tkl++) {
            struct coap_msg msg = {.type = type, .code = COAP_GET, .message_id = 0xBEEF,
                                   .token_len = tkl, .token = token};

            roundtrip(&msg, buf, sizeof buf, NULL);
        }
    }
}

static void test_empty_message(void **state)
{
    struct coap_msg msg = {.type = COAP_RST, .code = COAP_EMPTY, .message_id = 7};
    uint8_t buf[8];
    size_t len;

    roundtrip(&msg, buf, sizeof buf, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, ((const uint8_t[]){0x70, 0x00, 0x00, 0x07}), 4);
}

static void test_known_bytes(void **state)
{
    /* CON GET mid 0x1234 token 0xAB, Uri-Path "temp", Observe 0, payload "x". */
    static const uint8_t wire[] = {0x41, 0x01, 0x12, 0x34, 0xAB, 0x60, 0x54,
                                   't',  'e',  'm',  'p',  0xFF, 'x'};
    struct coap_msg msg;
    struct coap_error err;
    uint32_t observe = 99;
    uint8_t buf[32];

    assert_int_equal(coap_decode(wire, sizeof wire, &msg, &err), VIGIL_OK);
    assert_int_equal(msg.type, COAP_CON);
    assert_int_equal(msg.code, COAP_GET);
    assert_int_equal(msg.message_id, 0x1234);
    assert_int_equal(msg.token_len, 1);
    assert_int_equal(msg.n_options, 2);
    assert_int_equal(msg.options[0].number, COAP_OPT_OBSERVE);
    assert_int_equal(msg.options[0].len, 0);
    assert_int_equal(msg.options[1].number, COAP_OPT_URI_PATH);
    assert_int_equal(coap_get_observe(&msg, &observe), VIGIL_OK);
    assert_int_equal(observe, 0);
    assert_int_equal(msg.payload_len, 1);
    assert_true(coap_is_request(&msg));
    assert_int_equal(coap_encode(&msg, buf, sizeof buf), sizeof wire);
    assert_memory_equal(buf, wire, sizeof wire);
}

/* Every delta and length form: 4-bit, 1-byte extension and 2-byte extension,
 * at the edges of each range. */
static void test_option_forms(void **state)
{
    static const uint16_t numbers[] = {0, 1, 12, 13, 14, 268, 269, 270, 1000, 65535};
    static const uint32_t lengths[] = {0, 1, 12, 13, 14, 268, 269, 270, 1000, COAP_MAX_OPTION_LEN};
    static uint8_t value[COAP_MAX_OPTION_LEN];
    static uint8_t buf[COAP_MAX_OPTION_LEN + 64];

    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (uint8_t)i;
    for (size_t n = 0; n < sizeof numbers / sizeof numbers[0]; n++) {
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            struct coap_msg msg = {.type = COAP_NON, .code = COAP_POST, .message_id = 1};
            struct coap_msg back;
            struct coap_error err;
            size_t len;

            assert_int_equal(coap_add_option(&msg, numbers[n], value, lengths[l]), VIGIL_OK);
            roundtrip(&msg, buf, sizeof buf, &len);
            assert_int_equal(coap_decode(buf, len, &back, &err), VIGIL_OK);
            assert_int_equal(back.options[0].number, numbers[n]);
            assert_int_equal(back.options[0].len, lengths[l]);
            if (lengths[l] > 0)
                assert_memory_equal(back.options[0].value, value, lengths[l]);
        }
    }
}

static void test_options_sorted(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_PUT, .message_id = 2};
    struct coap_msg back;
    struct coap_error err;
    uint8_t buf[64];
    size_t len;

    coap_add_option(&msg, COAP_OPT_CONTENT_FORMAT, BYTES(50));
    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"a", 1);
    coap_add_option(&msg, COAP_OPT_URI_HOST, (const uint8_t *)"h", 1);
    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"b", 1);
    len = coap_encode(&msg, buf, sizeof buf);
    assert_int_equal(coap_decode(buf, len, &back, &err), VIGIL_OK);
    assert_int_equal(back.n_options, 4);
    assert_int_equal(back.options[0].number, COAP_OPT_URI_HOST);
    assert_int_equal(back.options[1].number, COAP_OPT_URI_PATH);
    assert_memory_equal(back.options[1].value, "a", 1);
    assert_int_equal(back.options[2].number, COAP_OPT_URI_PATH);
    assert_memory_equal(back.options[2].value, "b", 1);
    assert_int_equal(back.options[3].number, COAP_OPT_CONTENT_FORMAT);
}

static void test_option_limit(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET};
    struct coap_msg back;
    struct coap_error err;
    uint8_t buf[128];
    size_t len;

    for (int i = 0; i < COAP_MAX_OPTIONS; i++)
        assert_int_equal(coap_add_option(&msg, COAP_OPT_URI_PATH, NULL, 0), VIGIL_OK);
    assert_int_equal(coap_add_option(&msg, COAP_OPT_URI_PATH, NULL, 0), VIGIL_ERR_LIMIT);
    len = coap_encode(&msg, buf, sizeof buf);
    assert_int_equal(coap_decode(buf, len, &back, &err), VIGIL_OK);
    assert_int_equal(back.n_options, COAP_MAX_OPTIONS);

    /* One more option byte (delta 0, length 0) exceeds the array. */
    buf[len] = 0x00;
    assert_int_equal(coap_decode(buf, len + 1, &back, &err), VIGIL_ERR_LIMIT);
    assert_string_equal(err.rule, "RFC7252-3.1");
    assert_string_equal(err.text, "more options than vigil accepts (32)");
    assert_int_equal(err.action, COAP_ACTION_RST);
}

static void test_uint_values(void **state)
{
    static const uint32_t values[] = {0, 1, 255, 256, 65535, 65536, 0xFFFFFF, 0x1000000,
                                      0xFFFFFFFF};
    static const uint32_t lens[] = {0, 1, 1, 2, 2, 3, 3, 4, 4};
    uint8_t out[4];
    uint32_t v;

    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint32_t len = coap_uint_encode(values[i], out);

        assert_int_equal(len, lens[i]);
        assert_int_equal(coap_uint_decode(out, len, &v), VIGIL_OK);
        assert_int_equal(v, values[i]);
    }
    /* A receiver accepts leading zero bytes. */
    assert_int_equal(coap_uint_decode(BYTES(0, 0, 5), &v), VIGIL_OK);
    assert_int_equal(v, 5);
    assert_int_equal(coap_uint_decode(BYTES(1, 2, 3, 4, 5), &v), VIGIL_ERR_INVALID);
}

static void test_typed_options(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_CONTENT};
    uint16_t format;
    uint32_t v;

    assert_int_equal(coap_get_content_format(&msg, &format), VIGIL_ERR_NOT_FOUND);
    coap_add_option(&msg, COAP_OPT_CONTENT_FORMAT, BYTES(0x01, 0x10));
    coap_add_option(&msg, COAP_OPT_OBSERVE, BYTES(0x12, 0x34, 0x56));
    coap_add_option(&msg, COAP_OPT_SIZE1, BYTES(0x01, 0x00, 0x00, 0x00));
    coap_add_option(&msg, COAP_OPT_SIZE2, BYTES(0x04, 0x00));
    assert_int_equal(coap_get_content_format(&msg, &format), VIGIL_OK);
    assert_int_equal(format, 272);
    assert_int_equal(coap_get_observe(&msg, &v), VIGIL_OK);
    assert_int_equal(v, 0x123456);
    assert_int_equal(coap_get_size1(&msg, &v), VIGIL_OK);
    assert_int_equal(v, 0x1000000);
    assert_int_equal(coap_get_size2(&msg, &v), VIGIL_OK);
    assert_int_equal(v, 1024);

    /* Observe is at most 3 bytes and Content-Format at most 2. */
    msg.n_options = 0;
    coap_add_option(&msg, COAP_OPT_OBSERVE, BYTES(1, 0, 0, 0));
    coap_add_option(&msg, COAP_OPT_CONTENT_FORMAT, BYTES(1, 0, 0));
    assert_int_equal(coap_get_observe(&msg, &v), VIGIL_ERR_INVALID);
    assert_int_equal(coap_get_content_format(&msg, &format), VIGIL_ERR_INVALID);
}

static void test_uri_path(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET};
    char path[16];
    size_t len;

    assert_int_equal(coap_uri_path(&msg, path, sizeof path, &len), VIGIL_OK);
    assert_string_equal(path, "");
    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"ward", 4);
    coap_add_option(&msg, COAP_OPT_URI_HOST, (const uint8_t *)"h", 1);
    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"bed-7", 5);
    assert_int_equal(coap_uri_path(&msg, path, sizeof path, &len), VIGIL_OK);
    assert_string_equal(path, "ward/bed-7");
    assert_int_equal(len, 10);
    assert_int_equal(coap_uri_path(&msg, path, 10, &len), VIGIL_ERR_LIMIT);
    assert_int_equal(coap_uri_path(&msg, path, 11, &len), VIGIL_OK);

    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"a/b", 3);
    assert_int_equal(coap_uri_path(&msg, path, sizeof path, &len), VIGIL_ERR_INVALID);
}

static void test_block_values(void **state)
{
    static const struct coap_block blocks[] = {
        {0, false, 0}, {0, true, 6}, {15, false, 2}, {16, true, 3},
        {4095, false, 1}, {4096, true, 5}, {(1u << 20) - 1, true, 6},
    };
    static const uint32_t lens[] = {0, 1, 1, 2, 2, 3, 3};
    uint8_t out[3];
    struct coap_block back;

    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        uint32_t len = coap_block_encode(&blocks[i], out);

        assert_true(coap_block_valid(&blocks[i]));
        assert_int_equal(len, lens[i]);
        assert_int_equal(coap_block_decode(out, len, &back), VIGIL_OK);
        assert_int_equal(back.num, blocks[i].num);
        assert_int_equal(back.more, blocks[i].more);
        assert_int_equal(back.szx, blocks[i].szx);
    }
    assert_int_equal(coap_block_size(0), 16);
    assert_int_equal(coap_block_size(6), 1024);
    assert_int_equal(coap_block_decode(BYTES(0x0F), &back), VIGIL_ERR_INVALID);
    assert_int_equal(coap_block_decode(BYTES(0, 0, 0, 1), &back), VIGIL_ERR_INVALID);
    assert_false(coap_block_valid(&(struct coap_block){.num = 1u << 20}));
    assert_false(coap_block_valid(&(struct coap_block){.szx = 7}));
}

static void test_block_options(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_PUT};
    struct coap_block b1 = {.num = 3, .more = true, .szx = 2}, b2 = {.num = 0, .szx = 6};
    struct coap_block back;
    uint8_t v1[3], v2[3];

    assert_int_equal(coap_get_block(&msg, COAP_OPT_BLOCK1, &back), VIGIL_ERR_NOT_FOUND);
    coap_add_option(&msg, COAP_OPT_BLOCK1, v1, coap_block_encode(&b1, v1));
    coap_add_option(&msg, COAP_OPT_BLOCK2, v2, coap_block_encode(&b2, v2));
    assert_int_equal(coap_get_block(&msg, COAP_OPT_BLOCK1, &back), VIGIL_OK);
    assert_int_equal(back.num, 3);
    assert_true(back.more);
    assert_int_equal(back.szx, 2);
    assert_int_equal(coap_get_block(&msg, COAP_OPT_BLOCK2, &back), VIGIL_OK);
    assert_int_equal(back.num, 0);
    assert_false(back.more);
    assert_int_equal(back.szx, 6);
}

static void test_critical_check(void **state)
{
    static const uint16_t known[] = {COAP_OPT_URI_PATH};
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET};
    struct coap_error err;

    coap_add_option(&msg, COAP_OPT_URI_PATH, (const uint8_t *)"a", 1);
    coap_add_option(&msg, COAP_OPT_ETAG, BYTES(1)); /* elective */
    assert_int_equal(coap_check_critical(&msg, known, 1, &err), VIGIL_OK);
    assert_int_equal(coap_unknown_critical(&msg, known, 1), 0);

    coap_add_option(&msg, 2049, NULL, 0);
    assert_int_equal(coap_unknown_critical(&msg, known, 1), 2049);
    assert_int_equal(coap_check_critical(&msg, known, 1, &err), VIGIL_ERR_PROTOCOL);
    assert_string_equal(err.rule, "RFC7252-5.4.1");
    assert_string_equal(err.text, "unrecognized critical option");
    assert_int_equal(err.option, 2049);
    assert_int_equal(err.action, COAP_ACTION_BAD_OPTION);

    msg.code = COAP_CONTENT;
    coap_check_critical(&msg, known, 1, &err);
    assert_int_equal(err.action, COAP_ACTION_RST);
    msg.type = COAP_NON;
    coap_check_critical(&msg, known, 1, &err);
    assert_int_equal(err.action, COAP_ACTION_DROP);
    msg.type = COAP_ACK;
    coap_check_critical(&msg, known, 1, &err);
    assert_int_equal(err.action, COAP_ACTION_DROP);

    msg.n_options = 0;
    coap_add_option(&msg, COAP_OPT_BLOCK1, NULL, 0);
    coap_add_option(&msg, COAP_OPT_SIZE1, NULL, 0);
    assert_int_equal(coap_check_critical(&msg, coap_registered_options,
                                         coap_n_registered_options, &err),
                     VIGIL_OK);
}

/* A known critical option with a value length out of range counts as
 * unrecognized; an elective one does not fail the check. */
static void test_critical_length(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET};
    struct coap_error err;

    assert_false(coap_option_length_valid(COAP_OPT_URI_HOST, 0));
    assert_true(coap_option_length_valid(COAP_OPT_URI_HOST, 255));
    assert_false(coap_option_length_valid(COAP_OPT_IF_NONE_MATCH, 1));
    assert_false(coap_option_length_valid(COAP_OPT_PROXY_URI, 1035));
    assert_true(coap_option_length_valid(65000, 9999));

    coap_add_option(&msg, COAP_OPT_CONTENT_FORMAT, BYTES(1, 2, 3)); /* elective */
    assert_int_equal(coap_check_critical(&msg, coap_registered_options,
                                         coap_n_registered_options, &err),
                     VIGIL_OK);
    coap_add_option(&msg, COAP_OPT_BLOCK2, BYTES(1, 2, 3, 4));
    assert_int_equal(coap_check_critical(&msg, coap_registered_options,
                                         coap_n_registered_options, &err),
                     VIGIL_ERR_PROTOCOL);
    assert_int_equal(err.option, COAP_OPT_BLOCK2);
    assert_int_equal(err.action, COAP_ACTION_BAD_OPTION);
}

static void test_find_option(void **state)
{
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET};

    coap_add_option(&msg, COAP_OPT_URI_QUERY, (const uint8_t *)"a", 1);
    coap_add_option(&msg, COAP_OPT_URI_QUERY, (const uint8_t *)"b", 1);
    assert_memory_equal(coap_find_option(&msg, COAP_OPT_URI_QUERY, 1)->value, "b", 1);
    assert_null(coap_find_option(&msg, COAP_OPT_URI_QUERY, 2));
    assert_null(coap_find_option(&msg, COAP_OPT_URI_PATH, 0));
}

static void test_encode_invalid(void **state)
{
    uint8_t buf[64];
    struct coap_msg msg = {.type = COAP_CON, .code = COAP_GET, .token_len = 9};

    assert_int_equal(coap_encoded_size(&msg), 0);
    assert_int_equal(coap_encode(&msg, buf, sizeof buf), 0);
    msg.token_len = 0;
    msg.type = 4;
    assert_int_equal(coap_encode(&msg, buf, sizeof buf), 0);
}

/* One malformed datagram with its expected error. */
struct reject_case {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    const char *rule;
    const char *text;
    enum coap_action action;
};

#define WIRE(...) .bytes = (const uint8_t[]){__VA_ARGS__}, \
                  .len = sizeof((const uint8_t[]){__VA_ARGS__})

static const struct reject_case cases[] = {
    {"header too short", WIRE(0x40, 0x01, 0x00), "RFC7252-3",
     "message is shorter than the 4-byte header", COAP_ACTION_DROP},
    {"version 0", WIRE(0x00, 0x01, 0, 1), "RFC7252-3", "version is not 1", COAP_ACTION_DROP},
    {"version 2", WIRE(0x80, 0x01, 0, 1), "RFC7252-3", "version is not 1", COAP_ACTION_DROP},
    {"version 3", WIRE(0xC0, 0x01, 0, 1), "RFC7252-3", "version is not 1", COAP_ACTION_DROP},
    {"token length 9 con", WIRE(0x49, 0x01, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9), "RFC7252-3",
     "token length 9-15 is a message format error", COAP_ACTION_RST},
    {"token length 12 con", WIRE(0x4C, 0x01, 0, 1), "RFC7252-3",
     "token length 9-15 is a message format error", COAP_ACTION_RST},
    {"token length 15 non", WIRE(0x5F, 0x01, 0, 1), "RFC7252-3",
     "token length 9-15 is a message format error", COAP_ACTION_DROP},
    {"token length 9 ack", WIRE(0x69, 0x45, 0, 1), "RFC7252-3",
     "token length 9-15 is a message format error", COAP_ACTION_DROP},
    {"token truncated", WIRE(0x44, 0x01, 0, 1, 1, 2), "RFC7252-3",
     "token runs past the end of the message", COAP_ACTION_RST},
    {"option delta nibble 15", WIRE(0x40, 0x01, 0, 1, 0xF0), "RFC7252-3.1",
     "option delta 15 without payload marker is a message format error", COAP_ACTION_RST},
    {"option length nibble 15", WIRE(0x40, 0x01, 0, 1, 0xBF), "RFC7252-3.1",
     "option length 15 is a message format error", COAP_ACTION_RST},
    {"option length nibble 15 non", WIRE(0x50, 0x01, 0, 1, 0x0F), "RFC7252-3.1",
     "option length 15 is a message format error", COAP_ACTION_DROP},
    {"delta extension 13 missing", WIRE(0x40, 0x01, 0, 1, 0xD0), "RFC7252-3.1",
     "option header extension runs past the end", COAP_ACTION_RST},
    {"delta extension 14 short", WIRE(0x40, 0x01, 0, 1, 0xE0, 0x00), "RFC7252-3.1",
     "option header extension runs past the end", COAP_ACTION_RST},
    {"length extension 13 missing", WIRE(0x40, 0x01, 0, 1, 0x1D), "RFC7252-3.1",
     "option header extension runs past the end", COAP_ACTION_RST},
    {"length extension 14 short", WIRE(0x40, 0x01, 0, 1, 0x1E, 0x01), "RFC7252-3.1",
     "option header extension runs past the end", COAP_ACTION_RST},
    {"option value truncated", WIRE(0x40, 0x01, 0, 1, 0xB4, 'a', 'b'), "RFC7252-3.1",
     "option value runs past the end of the message", COAP_ACTION_RST},
    {"option extended value truncated", WIRE(0x40, 0x01, 0, 1, 0xBD, 0x00, 'a'), "RFC7252-3.1",
     "option value runs past the end of the message", COAP_ACTION_RST},
    {"option number above 65535", WIRE(0x40, 0x01, 0, 1, 0xE0, 0xFF, 0x00, 0xE0, 0xFF, 0x00),
     "RFC7252-3.1", "option number exceeds 65535", COAP_ACTION_RST},
    {"payload marker without payload", WIRE(0x40, 0x02, 0, 1, 0xFF), "RFC7252-3",
     "payload marker followed by a zero-length payload", COAP_ACTION_RST},
    {"payload marker after option", WIRE(0x50, 0x02, 0, 1, 0xB1, 'a', 0xFF), "RFC7252-3",
     "payload marker followed by a zero-length payload", COAP_ACTION_DROP},
    {"empty message with token", WIRE(0x41, 0x00, 0, 1, 0xAA), "RFC7252-4.1",
     "Empty message has a token, options or payload", COAP_ACTION_RST},
    {"empty ack with payload", WIRE(0x60, 0x00, 0, 1, 0xFF, 'x'), "RFC7252-4.1",
     "Empty message has a token, options or payload", COAP_ACTION_DROP},
};

static void test_reject(void **state)
{
    const struct reject_case *c = *state;
    struct coap_msg msg;
    struct coap_error err = {0};

    assert_int_equal(coap_decode(c->bytes, c->len, &msg, &err), VIGIL_ERR_PROTOCOL);
    assert_string_equal(err.rule, c->rule);
    assert_string_equal(err.text, c->text);
    assert_int_equal(err.action, c->action);
}

int main(void)
{
    enum { N_REJECT = sizeof cases / sizeof cases[0] };
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_types_and_tokens), cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_known_bytes),      cmocka_unit_test(test_option_forms),
        cmocka_unit_test(test_options_sorted),   cmocka_unit_test(test_option_limit),
        cmocka_unit_test(test_uint_values),      cmocka_unit_test(test_typed_options),
        cmocka_unit_test(test_uri_path),         cmocka_unit_test(test_block_values),
        cmocka_unit_test(test_block_options),    cmocka_unit_test(test_critical_check),
        cmocka_unit_test(test_critical_length),  cmocka_unit_test(test_find_option),
        cmocka_unit_test(test_encode_invalid),
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
    return _cmocka_run_group_tests("coap", tests, N_FIXED + N_REJECT, NULL, NULL);
}
