/* CoAP front end, pure parts: the CBOR reader and writer, SenML JSON and
 * CBOR packs with base values, the JSON that MQTT subscribers receive,
 * Block1 reassembly and Block2 slicing, request deduplication, and the
 * retransmission, Observe, Content-Format and link-format helpers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "front/coap_internal.h"
#include "sim/vitals.h"

#define BYTES(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
#define TEXT(s) (const uint8_t *)(s), strlen(s)

static const double NOW = 1700000100.0;

/* ---- CBOR ---- */

static void read_one(const uint8_t *p, size_t len, struct cbor_item *it)
{
    struct cbor_reader r = {.p = p, .end = p + len};

    assert_int_equal(cbor_read(&r, it), VIGIL_OK);
    assert_ptr_equal(r.p, p + len);
}

static void test_cbor_integers(void **state)
{
    struct cbor_item it;
    int64_t v;
    double d;

    (void)state;
    read_one(BYTES(0x17), &it);
    assert_int_equal(it.type, CBOR_UINT);
    assert_int_equal(it.u, 23);
    read_one(BYTES(0x18, 0x18), &it);
    assert_int_equal(it.u, 24);
    read_one(BYTES(0x1A, 0x65, 0x53, 0xF1, 0x00), &it);
    assert_int_equal(it.u, 1700000000u);
    read_one(BYTES(0x38, 0x63), &it);
    assert_int_equal(it.type, CBOR_NEGINT);
    assert_true(cbor_int(&it, &v));
    assert_int_equal(v, -100);
    assert_true(cbor_number(&it, &d));
    assert_true(d == -100.0);
    read_one(BYTES(0x1B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF), &it);
    assert_false(cbor_int(&it, &v));
}

static void test_cbor_floats_and_simple(void **state)
{
    struct cbor_item it;

    (void)state;
    read_one(BYTES(0xF9, 0x3C, 0x00), &it); /* half 1.0 */
    assert_int_equal(it.type, CBOR_FLOAT);
    assert_true(it.f == 1.0);
    read_one(BYTES(0xF9, 0xC4, 0x00), &it); /* half -4.0 */
    assert_true(it.f == -4.0);
    read_one(BYTES(0xFA, 0x47, 0xC3, 0x50, 0x00), &it); /* single 100000.0 */
    assert_true(it.f == 100000.0);
    read_one(BYTES(0xFB, 0x3F, 0xF1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9A), &it); /* 1.1 */
    assert_true(it.f == 1.1);
    read_one(BYTES(0xF4), &it);
    assert_int_equal(it.type, CBOR_FALSE);
    read_one(BYTES(0xF5), &it);
    assert_int_equal(it.type, CBOR_TRUE);
    read_one(BYTES(0xF6), &it);
    assert_int_equal(it.type, CBOR_NULL);
    read_one(BYTES(0xC1, 0x1A, 0x51, 0x4B, 0x67, 0xB0), &it); /* tag 1 skipped */
    assert_int_equal(it.type, CBOR_UINT);
    assert_int_equal(it.u, 1363896240u);
}

static void test_cbor_strings_containers(void **state)
{
    struct cbor_item it;

    (void)state;
    read_one(BYTES(0x63, 'a', 'b', 'c'), &it);
    assert_int_equal(it.type, CBOR_TEXT);
    assert_int_equal(it.len, 3);
    assert_memory_equal(it.data, "abc", 3);
    read_one(BYTES(0x42, 0x01, 0x02), &it);
    assert_int_equal(it.type, CBOR_BYTES);
    read_one(BYTES(0x83), &it);
    assert_int_equal(it.type, CBOR_ARRAY);
    assert_int_equal(it.len, 3);
    read_one(BYTES(0xA2), &it);
    assert_int_equal(it.type, CBOR_MAP);
    assert_int_equal(it.len, 2);
}

static vigil_err read_status(const uint8_t *p, size_t len)
{
    struct cbor_reader r = {.p = p, .end = p + len};
    struct cbor_item it;

    return cbor_read(&r, &it);
}

static void test_cbor_rejects(void **state)
{
    (void)state;
    assert_int_equal(read_status(BYTES(0x18)), VIGIL_ERR_INVALID);            /* truncated arg */
    assert_int_equal(read_status(BYTES(0x63, 'a')), VIGIL_ERR_INVALID);       /* short text */
    assert_int_equal(read_status(BYTES(0x1C)), VIGIL_ERR_INVALID);            /* ai 28 */
    assert_int_equal(read_status(BYTES(0x9F)), VIGIL_ERR_INVALID);            /* indefinite */
    assert_int_equal(read_status(BYTES(0x7F)), VIGIL_ERR_INVALID);
    assert_int_equal(read_status(BYTES(0xF8, 0x20)), VIGIL_ERR_INVALID);      /* simple 32 */
    assert_int_equal(read_status(BYTES(0x99, 0x04, 0x01)), VIGIL_ERR_INVALID); /* 1025 items */
    assert_int_equal(read_status(BYTES(0xC1)), VIGIL_ERR_INVALID);            /* tag alone */
    assert_int_equal(read_status(NULL, 0), VIGIL_ERR_INVALID);
}

static void test_cbor_skip_depth(void **state)
{
    uint8_t deep[16];
    struct cbor_reader r;

    (void)state;
    /* Seven nested arrays around 0 are eight levels, CBOR_MAX_DEPTH. */
    memset(deep, 0x81, 7);
    deep[7] = 0x00;
    r = (struct cbor_reader){.p = deep, .end = deep + 8};
    assert_int_equal(cbor_skip(&r), VIGIL_OK);
    assert_ptr_equal(r.p, deep + 8);
    memset(deep, 0x81, 8);
    deep[8] = 0x00;
    r = (struct cbor_reader){.p = deep, .end = deep + 9};
    assert_int_equal(cbor_skip(&r), VIGIL_ERR_INVALID);
    /* {1: [1, <missing>]} */
    static const uint8_t truncated[] = {0xA1, 0x01, 0x82, 0x01};
    r = (struct cbor_reader){.p = truncated, .end = truncated + sizeof truncated};
    assert_int_equal(cbor_skip(&r), VIGIL_ERR_INVALID);
}

static void test_cbor_writer(void **state)
{
    uint8_t buf[32];
    size_t n = 0;
    struct cbor_reader r;
    struct cbor_item it;

    (void)state;
    assert_true(cbor_put_int(buf, sizeof buf, &n, -3));
    assert_true(cbor_put_int(buf, sizeof buf, &n, 1700000000));
    assert_true(cbor_put_text(buf, sizeof buf, &n, "hr", 2));
    assert_true(cbor_put_double(buf, sizeof buf, &n, 36.6));
    assert_true(cbor_put_double(buf, sizeof buf, &n, 72.0));
    assert_memory_equal(buf, ((const uint8_t[]){0x22, 0x1A, 0x65, 0x53, 0xF1, 0x00, 0x62, 'h', 'r',
                                                0xFB}),
                        10);
    r = (struct cbor_reader){.p = buf, .end = buf + n};
    for (int i = 0; i < 4; i++)
        assert_int_equal(cbor_read(&r, &it), VIGIL_OK);
    assert_true(it.f == 36.6);
    assert_int_equal(cbor_read(&r, &it), VIGIL_OK);
    assert_int_equal(it.u, 72);
    n = 0;
    assert_false(cbor_put_text(buf, 4, &n, "hello", 5));
}

/* ---- SenML ---- */

static struct senml_record recs[SENML_MAX_RECORDS];

static vigil_err parse_json(const char *text, struct senml_pack *pack, const char **why)
{
    *pack = (struct senml_pack){.recs = recs, .cap = SENML_MAX_RECORDS};
    *why = NULL;
    return senml_parse_json((const uint8_t *)text, strlen(text), NOW, pack, why);
}

static void test_senml_json_sim_shape(void **state)
{
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_int_equal(parse_json("[{\"bn\":\"mon-0042/\",\"bt\":1700000000,\"n\":\"heart_rate\","
                                "\"u\":\"beat/min\",\"v\":72}]",
                                &pack, &why),
                     VIGIL_OK);
    assert_int_equal(pack.n, 1);
    assert_string_equal(recs[0].name, "mon-0042/heart_rate");
    assert_string_equal(recs[0].unit, "beat/min");
    assert_int_equal(recs[0].kind, SENML_NUMBER);
    assert_true(recs[0].value == 72.0);
    assert_true(recs[0].time == 1700000000.0);
}

static void test_senml_json_base_values(void **state)
{
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_int_equal(parse_json("[{\"bn\":\"urn:dev:ow:10e2073a01080063:\",\"bt\":1.276020076e+09,"
                                "\"bu\":\"A\",\"bver\":5,\"bv\":10,\"n\":\"voltage\",\"u\":\"V\","
                                "\"v\":120.1},{\"n\":\"current\",\"t\":-5,\"v\":1.2},"
                                "{\"n\":\"current\",\"t\":-4}]",
                                &pack, &why),
                     VIGIL_OK);
    assert_int_equal(pack.n, 3);
    assert_string_equal(recs[0].name, "urn:dev:ow:10e2073a01080063:voltage");
    assert_string_equal(recs[0].unit, "V");
    assert_true(fabs(recs[0].value - 130.1) < 1e-9);
    assert_string_equal(recs[1].unit, "A");
    assert_true(fabs(recs[1].value - 11.2) < 1e-9);
    assert_true(recs[1].time == 1276020071.0);
    /* No value of its own: the base value alone. */
    assert_true(recs[2].value == 10.0);
}

static void test_senml_json_relative_time(void **state)
{
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_int_equal(parse_json("[{\"n\":\"spo2\",\"v\":0.97,\"t\":-10}]", &pack, &why), VIGIL_OK);
    assert_true(recs[0].time == NOW - 10);
    assert_int_equal(parse_json("[{\"n\":\"spo2\",\"v\":0.97}]", &pack, &why), VIGIL_OK);
    assert_true(recs[0].time == NOW);
}

static void test_senml_json_value_kinds(void **state)
{
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_int_equal(parse_json("[{\"n\":\"a\",\"vs\":\"on \\\"x\\\"\"},{\"n\":\"b\",\"vb\":true},"
                                "{\"n\":\"c\",\"vd\":\"aGk\"},{\"n\":\"d\",\"s\":5,\"v\":1}]",
                                &pack, &why),
                     VIGIL_OK);
    assert_int_equal(pack.n, 4);
    assert_int_equal(recs[0].kind, SENML_STRING);
    assert_string_equal(recs[0].text, "on \"x\"");
    assert_int_equal(recs[1].kind, SENML_BOOL);
    assert_true(recs[1].boolean);
    assert_int_equal(recs[2].kind, SENML_DATA);
    assert_string_equal(recs[2].text, "aGk");
    assert_true(recs[3].has_sum);
    assert_true(recs[3].sum == 5.0);
}

static void test_senml_json_base_only_record(void **state)
{
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_int_equal(parse_json("[{\"bn\":\"dev/\"},{\"n\":\"temperature\",\"v\":36.6}]", &pack,
                                &why),
                     VIGIL_OK);
    assert_int_equal(pack.n, 1);
    assert_string_equal(recs[0].name, "dev/temperature");
}

static void test_senml_json_rejects(void **state)
{
    static const char *bad[] = {
        "",
        "{}",
        "[]",
        "[1]",
        "[{\"n\":\"a\"}]",                          /* no value */
        "[{\"n\":\"a\",\"v\":1,\"vs\":\"x\"}]",       /* two values */
        "[{\"n\":\"a\",\"v\":\"1\"}]",                /* wrong type */
        "[{\"n\":\"a\",\"v\":1,\"v\":2}]",            /* duplicate key */
        "[{\"n\":\"a\",\"v\":1,\"foo_\":1}]",         /* must-understand */
        "[{\"n\":\"-a\",\"v\":1}]",                   /* first character */
        "[{\"n\":\"a b\",\"v\":1}]",                  /* space */
        "[{\"v\":1}]",                                /* empty name */
        "[{\"bver\":11,\"n\":\"a\",\"v\":1}]",         /* later version */
        "[{\"n\":\"a\",\"vd\":\"a+b\"}]",             /* not base64url */
        "[{\"n\":\"a\",\"v\":1e999}]",
        "[{\"bn\":\"x\"}]",                           /* no measurement */
        "[{\"n\":\"a\",\"v\":1,\"bt\":1e12}]",          /* after SENML_TIME_MAX */
        "[{\"n\":\"a\",\"v\":1,\"t\":-1e10}]",          /* before 1970 */
    };
    struct senml_pack pack;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        vigil_err rc = parse_json(bad[i], &pack, &why);

        if (rc == VIGIL_OK)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(why);
    }
}

static void test_senml_json_limits(void **state)
{
    char big[8192];
    size_t n = 0;
    struct senml_pack pack;
    const char *why;

    (void)state;
    n += (size_t)snprintf(big + n, sizeof big - n, "[");
    for (unsigned i = 0; i <= SENML_MAX_RECORDS; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s{\"n\":\"m%u\",\"v\":%u}",
                              i > 0 ? "," : "", i, i);
    snprintf(big + n, sizeof big - n, "]");
    assert_int_equal(parse_json(big, &pack, &why), VIGIL_ERR_LIMIT);
    snprintf(big, sizeof big, "[{\"n\":\"%0*d\",\"v\":1}]", (int)SENML_NAME_MAX, 0);
    assert_int_equal(parse_json(big, &pack, &why), VIGIL_ERR_INVALID);
    snprintf(big, sizeof big, "[{\"n\":\"%0*d\",\"v\":1}]", (int)SENML_NAME_MAX - 1, 0);
    assert_int_equal(parse_json(big, &pack, &why), VIGIL_OK);
}

static vigil_err parse_cbor(const uint8_t *p, size_t len, struct senml_pack *pack)
{
    const char *why = NULL;

    *pack = (struct senml_pack){.recs = recs, .cap = SENML_MAX_RECORDS};
    return senml_parse_cbor(p, len, NOW, pack, &why);
}

static void test_senml_cbor_sim_shape(void **state)
{
    struct senml_pack pack;

    (void)state;
    /* [{-2:"mon-0042/", -3:1700000000, 0:"heart_rate", 1:"beat/min", 2:72}] */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA5, 0x21, 0x69, 'm', 'o', 'n', '-', '0', '0', '4',
                                      '2', '/', 0x22, 0x1A, 0x65, 0x53, 0xF1, 0x00, 0x00, 0x6A,
                                      'h', 'e', 'a', 'r', 't', '_', 'r', 'a', 't', 'e', 0x01,
                                      0x68, 'b', 'e', 'a', 't', '/', 'm', 'i', 'n', 0x02, 0x18,
                                      0x48),
                                &pack),
                     VIGIL_OK);
    assert_int_equal(pack.n, 1);
    assert_string_equal(recs[0].name, "mon-0042/heart_rate");
    assert_string_equal(recs[0].unit, "beat/min");
    assert_true(recs[0].value == 72.0);
    assert_true(recs[0].time == 1700000000.0);
}

static void test_senml_cbor_kinds(void **state)
{
    struct senml_pack pack;

    (void)state;
    /* [{0:"a", 4:true}, {0:"b", 8:h'6869'}, {0:"c", 2:half 1.5, 6:-1}] */
    assert_int_equal(parse_cbor(BYTES(0x83, 0xA2, 0x00, 0x61, 'a', 0x04, 0xF5, 0xA2, 0x00, 0x61,
                                      'b', 0x08, 0x42, 0x68, 0x69, 0xA3, 0x00, 0x61, 'c', 0x02,
                                      0xF9, 0x3E, 0x00, 0x06, 0x20),
                                &pack),
                     VIGIL_OK);
    assert_int_equal(pack.n, 3);
    assert_int_equal(recs[0].kind, SENML_BOOL);
    assert_string_equal(recs[1].text, "aGk");
    assert_true(recs[2].value == 1.5);
    assert_true(recs[2].time == NOW - 1);
}

static void test_senml_cbor_unknown_labels(void **state)
{
    struct senml_pack pack;

    (void)state;
    /* An unknown label 42 with a nested value and a text key "x" are skipped. */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA4, 0x00, 0x61, 'a', 0x02, 0x01, 0x18, 0x2A, 0x81,
                                      0x01, 0x61, 'x', 0x00),
                                &pack),
                     VIGIL_OK);
    assert_int_equal(pack.n, 1);
}

static void test_senml_cbor_rejects(void **state)
{
    struct senml_pack pack;

    (void)state;
    assert_int_equal(parse_cbor(BYTES(0x80), &pack), VIGIL_ERR_INVALID);          /* [] */
    assert_int_equal(parse_cbor(BYTES(0xA0), &pack), VIGIL_ERR_INVALID);          /* {} */
    assert_int_equal(parse_cbor(BYTES(0x81, 0x01), &pack), VIGIL_ERR_INVALID);    /* [1] */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x00, 0x61, 'b'), &pack),
                     VIGIL_ERR_INVALID); /* duplicate label */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x62, 'x', '_', 0x01), &pack),
                     VIGIL_ERR_INVALID); /* must-understand text key */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0x61, '1'), &pack),
                     VIGIL_ERR_INVALID); /* value as text */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0x81, 0x01), &pack),
                     VIGIL_ERR_INVALID); /* value as array */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x02), &pack),
                     VIGIL_ERR_INVALID); /* truncated */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0x01, 0x00), &pack),
                     VIGIL_ERR_INVALID); /* trailing byte */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 0xFF, 0x02, 0x01), &pack),
                     VIGIL_ERR_INVALID); /* invalid UTF-8 */
    assert_int_equal(parse_cbor(BYTES(0x81, 0xA2, 0x00, 0x61, 'a', 0x02, 0xF9, 0x7C, 0x00), &pack),
                     VIGIL_ERR_INVALID); /* infinity */
    assert_int_equal(parse_cbor(BYTES(0x98, 0x41), &pack), VIGIL_ERR_LIMIT); /* 65 records */
}

static void test_senml_json_to_cbor(void **state)
{
    const char *json = "[{\"bn\":\"mon-0042/\",\"bt\":1700000000,\"n\":\"temperature\","
                       "\"u\":\"Cel\",\"v\":36.6},{\"n\":\"x\",\"vd\":\"aGk\",\"vb\":false}]";
    uint8_t cbor[256];
    size_t n = senml_json_to_cbor((const uint8_t *)json, strlen(json), cbor, sizeof cbor);
    struct senml_pack pack;
    const char *why;

    (void)state;
    assert_true(n > 0);
    assert_true(n < strlen(json));
    /* The second record has two values, so only the first is parsed back. */
    assert_int_equal(parse_cbor(cbor, n, &pack), VIGIL_ERR_INVALID);
    json = "[{\"bn\":\"mon-0042/\",\"bt\":1700000000,\"n\":\"temperature\",\"u\":\"Cel\","
           "\"v\":36.6},{\"n\":\"x\",\"vd\":\"aGk\"}]";
    n = senml_json_to_cbor((const uint8_t *)json, strlen(json), cbor, sizeof cbor);
    assert_int_equal(parse_cbor(cbor, n, &pack), VIGIL_OK);
    assert_int_equal(pack.n, 2);
    assert_string_equal(recs[0].name, "mon-0042/temperature");
    assert_true(recs[0].value == 36.6);
    assert_string_equal(recs[1].text, "aGk");
    assert_int_equal(senml_json_to_cbor((const uint8_t *)json, strlen(json), cbor, 10), 0);
    assert_int_equal(senml_json_to_cbor(TEXT("72"), cbor, sizeof cbor), 0);
    (void)why;
}

static void test_senml_format_matches_sim(void **state)
{
    struct senml_record r = {.kind = SENML_NUMBER, .value = 72, .time = 1700000000};
    char ours[256], sim[256];

    (void)state;
    strcpy(r.unit, "beat/min");
    assert_true(senml_format_record(ours, sizeof ours, "mon-0042", "heart_rate", &r) > 0);
    assert_true(senml_format(sim, sizeof sim, "mon-0042/", 1700000000, VITAL_HR, 72) > 0);
    assert_string_equal(ours, sim);

    r.time = 1700000000.25;
    r.value = 97 * 0.01;
    strcpy(r.unit, "/");
    senml_format_record(ours, sizeof ours, "mon-0042", "spo2", &r);
    senml_format(sim, sizeof sim, "mon-0042/", 1700000000.25, VITAL_SPO2, 97);
    assert_string_equal(ours, sim);
}

static void test_senml_format_kinds(void **state)
{
    struct senml_record r = {.kind = SENML_STRING, .time = 5, .has_sum = true, .sum = 2};
    char out[256];

    (void)state;
    strcpy(r.text, "a\"b\\c\n");
    assert_true(senml_format_record(out, sizeof out, "d1", "state", &r) > 0);
    assert_string_equal(out, "[{\"bn\":\"d1/\",\"bt\":5,\"n\":\"state\",\"vs\":\"a\\\"b\\\\c\\u000a\","
                             "\"s\":2}]");
    r = (struct senml_record){.kind = SENML_BOOL, .boolean = true, .time = 5};
    senml_format_record(out, sizeof out, "d1", "alarm", &r);
    assert_string_equal(out, "[{\"bn\":\"d1/\",\"bt\":5,\"n\":\"alarm\",\"vb\":true}]");
    assert_int_equal(senml_format_record(out, 20, "d1", "alarm", &r), 0);
}

static void test_senml_text(void **state)
{
    struct senml_record r;
    const char *why;

    (void)state;
    assert_int_equal(senml_from_text(TEXT("97"), "spo2", NOW, &r, &why), VIGIL_OK);
    assert_true(fabs(r.value - 0.97) < 1e-12);
    assert_string_equal(r.unit, "/");
    assert_int_equal(senml_from_text(TEXT("120\n"), "nbp_sys", NOW, &r, &why), VIGIL_OK);
    assert_true(fabs(r.value - 120 * 133.322387415) < 1e-6);
    assert_string_equal(r.unit, "Pa");
    assert_int_equal(senml_from_text(TEXT("-3.5"), "weight_delta", NOW, &r, &why), VIGIL_OK);
    assert_string_equal(r.unit, "");
    assert_true(r.time == NOW);
    assert_int_equal(senml_from_text(TEXT("abc"), "spo2", NOW, &r, &why), VIGIL_ERR_INVALID);
    assert_int_equal(senml_from_text(TEXT(""), "spo2", NOW, &r, &why), VIGIL_ERR_INVALID);
    assert_int_equal(senml_from_text(TEXT("1e999"), "spo2", NOW, &r, &why), VIGIL_ERR_INVALID);
    assert_int_equal(senml_from_text(TEXT("nan"), "spo2", NOW, &r, &why), VIGIL_ERR_INVALID);
    assert_int_equal(senml_from_text(TEXT("7 2"), "spo2", NOW, &r, &why), VIGIL_ERR_INVALID);
}

static void test_senml_units_and_metrics(void **state)
{
    struct senml_record r = {.kind = SENML_NUMBER};
    size_t len;

    (void)state;
    senml_default_unit(&r, "temperature");
    assert_string_equal(r.unit, "Cel");
    strcpy(r.unit, "K");
    senml_default_unit(&r, "temperature");
    assert_string_equal(r.unit, "K");
    assert_string_equal(senml_metric("mon-0042/heart_rate", &len), "heart_rate");
    assert_string_equal(senml_metric("urn:dev:mac:0024:temp", &len), "temp");
    assert_int_equal(len, 4);
    senml_metric("dev/", &len);
    assert_int_equal(len, 0);
    assert_true(senml_metric_valid("heart_rate", 10));
    assert_true(senml_metric_valid("a.b-c", 5));
    assert_false(senml_metric_valid("a+b", 3));
    assert_false(senml_metric_valid("", 0));
}

/* ---- block-wise ---- */

static void test_block1_sequence(void **state)
{
    struct coap_reassembly r = {0};
    uint8_t data[40];
    struct coap_block b = {.num = 0, .more = true, .szx = 0};

    (void)state;
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 1000),
                     COAP_B1_CONTINUE);
    b.num = 1;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data + 16, 16, 100, 0, 1100),
                     COAP_B1_CONTINUE);
    /* The same block again is accepted once. */
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data + 16, 16, 100, 0, 1150),
                     COAP_B1_CONTINUE);
    b.num = 2;
    b.more = false;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data + 32, 8, 100, 0, 1200),
                     COAP_B1_DONE);
    assert_int_equal(r.body.len, 40);
    assert_memory_equal(r.body.data, data, 40);
    coap_reassembly_reset(&r);
    assert_false(r.active);
}

static void test_block1_size_change(void **state)
{
    struct coap_reassembly r = {0};
    uint8_t data[64] = {0};
    struct coap_block b = {.num = 0, .more = true, .szx = 1};

    (void)state;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_PUT, &b, data, 32, 100, 0, 0),
                     COAP_B1_CONTINUE);
    /* 16-byte blocks from here: block 2 starts at byte 32. */
    b = (struct coap_block){.num = 2, .more = false, .szx = 0};
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_PUT, &b, data, 10, 100, 0, 0),
                     COAP_B1_DONE);
    assert_int_equal(r.body.len, 42);
    coap_reassembly_reset(&r);
}

static void test_block1_errors(void **state)
{
    struct coap_reassembly r = {0};
    uint8_t data[64] = {0};
    struct coap_block b = {.num = 1, .more = true, .szx = 0};

    (void)state;
    /* No block 0 first. */
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 0),
                     COAP_B1_INCOMPLETE);
    b.num = 0;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 0),
                     COAP_B1_CONTINUE);
    b.num = 2; /* block 1 skipped */
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 0),
                     COAP_B1_INCOMPLETE);
    assert_false(r.active);
    b.num = 0;
    coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 0);
    b.num = 1; /* another path */
    assert_int_equal(coap_reassembly_feed(&r, "ps/x", COAP_POST, &b, data, 16, 100, 0, 0),
                     COAP_B1_INCOMPLETE);
    b.num = 0; /* M set but short */
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 15, 100, 0, 0),
                     COAP_B1_BAD);
    /* Size1 announces more than the maximum. */
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 101, 0),
                     COAP_B1_TOO_LARGE);
    /* The body grows past the maximum. */
    b = (struct coap_block){.num = 0, .more = true, .szx = 2};
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 64, 100, 0, 0),
                     COAP_B1_CONTINUE);
    b.num = 1;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 64, 100, 0, 0),
                     COAP_B1_TOO_LARGE);
    assert_false(r.active);
}

static void test_block1_timeout(void **state)
{
    struct coap_reassembly r = {0};
    uint8_t data[16] = {0};
    struct coap_block b = {.num = 0, .more = true, .szx = 0};

    (void)state;
    coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0, 1000);
    assert_false(coap_reassembly_expired(&r, 1000 + COAP_BLOCK1_TIMEOUT_MS - 1));
    assert_true(coap_reassembly_expired(&r, 1000 + COAP_BLOCK1_TIMEOUT_MS));
    b.num = 1;
    assert_int_equal(coap_reassembly_feed(&r, "t", COAP_POST, &b, data, 16, 100, 0,
                                          1000 + COAP_BLOCK1_TIMEOUT_MS),
                     COAP_B1_INCOMPLETE);
    coap_reassembly_reset(&r);
}

static void test_block2_slice(void **state)
{
    struct coap_block req = {.num = 0, .szx = 6}, out;
    size_t off, n;

    (void)state;
    assert_true(coap_block2_slice(2500, NULL, &out, &off, &n));
    assert_int_equal(out.num, 0);
    assert_true(out.more);
    assert_int_equal(out.szx, 6);
    assert_int_equal(n, 1024);
    req.num = 2;
    assert_true(coap_block2_slice(2500, &req, &out, &off, &n));
    assert_int_equal(off, 2048);
    assert_int_equal(n, 452);
    assert_false(out.more);
    req.num = 3;
    assert_false(coap_block2_slice(2500, &req, &out, &off, &n));
    req = (struct coap_block){.num = 1, .szx = 2};
    assert_true(coap_block2_slice(100, &req, &out, &off, &n));
    assert_int_equal(off, 64);
    assert_int_equal(n, 36);
    assert_int_equal(out.szx, 2);
    assert_true(coap_block2_slice(0, NULL, &out, &off, &n));
    assert_int_equal(n, 0);
    assert_false(out.more);
}

/* ---- deduplication ---- */

static void test_dedup_replay(void **state)
{
    struct coap_dedup d = {0};
    struct coap_dedup_entry *e;

    (void)state;
    assert_null(coap_dedup_find(&d, 7, 0));
    coap_dedup_add(&d, 7, COAP_CON, 0);
    e = coap_dedup_find(&d, 7, 10);
    assert_non_null(e);
    assert_null(e->response);
    coap_dedup_set_response(&d, 7, (const uint8_t *)"\x60\x44\x00\x07", 4);
    e = coap_dedup_find(&d, 7, 20);
    assert_int_equal(e->response_len, 4);
    assert_memory_equal(e->response, "\x60\x44\x00\x07", 4);
    assert_non_null(coap_dedup_find(&d, 7, COAP_EXCHANGE_LIFETIME_MS - 1));
    assert_null(coap_dedup_find(&d, 7, COAP_EXCHANGE_LIFETIME_MS));
    assert_int_equal(d.bytes, 0);
    coap_dedup_add(&d, 8, COAP_NON, 0);
    assert_non_null(coap_dedup_find(&d, 8, COAP_NON_LIFETIME_MS - 1));
    assert_null(coap_dedup_find(&d, 8, COAP_NON_LIFETIME_MS));
    coap_dedup_free(&d);
}

static void test_dedup_bounds(void **state)
{
    struct coap_dedup d = {0};
    static uint8_t big[COAP_DEDUP_BYTES / 2];

    (void)state;
    for (uint16_t mid = 0; mid < COAP_DEDUP_SLOTS + 5; mid++)
        coap_dedup_add(&d, mid, COAP_CON, mid);
    /* The oldest five were evicted. */
    for (uint16_t mid = 0; mid < 5; mid++)
        assert_null(coap_dedup_find(&d, mid, 100));
    assert_non_null(coap_dedup_find(&d, 5, 100));
    coap_dedup_set_response(&d, 10, big, sizeof big);
    coap_dedup_set_response(&d, 11, big, sizeof big);
    assert_int_equal(d.bytes, COAP_DEDUP_BYTES);
    coap_dedup_set_response(&d, 12, big, 10);
    assert_true(d.bytes <= COAP_DEDUP_BYTES);
    assert_null(coap_dedup_find(&d, 10, 100)->response);
    assert_non_null(coap_dedup_find(&d, 12, 100)->response);
    coap_dedup_set_response(&d, 13, big, COAP_DEDUP_BYTES + 1);
    assert_null(coap_dedup_find(&d, 13, 100)->response);
    coap_dedup_free(&d);
    assert_int_equal(d.bytes, 0);
}

/* ---- helpers ---- */

static void test_timeouts_and_observe(void **state)
{
    (void)state;
    assert_int_equal(coap_initial_timeout_ms(0), 2000);
    assert_int_equal(coap_initial_timeout_ms(UINT32_MAX), 2999);
    assert_int_equal(coap_initial_timeout_ms(UINT32_MAX / 2), 2499);
    assert_int_equal(coap_observe_next(5), 6);
    assert_int_equal(coap_observe_next(0xFFFFFF), 0);
}

static void test_guess_format(void **state)
{
    (void)state;
    assert_int_equal(coap_guess_format(TEXT("[{\"v\":1}]")), COAP_FORMAT_SENML_JSON);
    assert_int_equal(coap_guess_format(TEXT(" [1]")), COAP_FORMAT_SENML_JSON);
    assert_int_equal(coap_guess_format(TEXT("72")), COAP_FORMAT_TEXT);
    assert_int_equal(coap_guess_format(NULL, 0), COAP_FORMAT_TEXT);
    assert_int_equal(coap_guess_format(BYTES(0x81, 0xA1, 0x00)), COAP_FORMAT_OCTETS);
}

static void test_links_etag_paths(void **state)
{
    char links[1024];
    size_t n = coap_core_links(links, sizeof links);
    const char *topic;
    size_t len;

    (void)state;
    assert_true(n > 0);
    assert_int_equal(strlen(links), n);
    assert_non_null(strstr(links, "</t>;ct=\"110 112\""));
    assert_non_null(strstr(links, "</ps>;rt=\"core.ps\""));
    assert_non_null(strstr(links, "</t/heart_rate>;obs"));
    assert_int_equal(coap_core_links(links, 20), 0);
    assert_int_equal(coap_etag(NULL, 0), 0x811c9dc5u);
    assert_int_equal(coap_etag(TEXT("a")), 0xe40c292cu);
    assert_true(coap_ps_topic("ps/a/b", 6, &topic, &len));
    assert_int_equal(len, 3);
    assert_memory_equal(topic, "a/b", 3);
    assert_false(coap_ps_topic("ps", 2, &topic, &len));
    assert_false(coap_ps_topic("ps/", 3, &topic, &len));
    assert_false(coap_ps_topic("pst/a", 5, &topic, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cbor_integers),
        cmocka_unit_test(test_cbor_floats_and_simple),
        cmocka_unit_test(test_cbor_strings_containers),
        cmocka_unit_test(test_cbor_rejects),
        cmocka_unit_test(test_cbor_skip_depth),
        cmocka_unit_test(test_cbor_writer),
        cmocka_unit_test(test_senml_json_sim_shape),
        cmocka_unit_test(test_senml_json_base_values),
        cmocka_unit_test(test_senml_json_relative_time),
        cmocka_unit_test(test_senml_json_value_kinds),
        cmocka_unit_test(test_senml_json_base_only_record),
        cmocka_unit_test(test_senml_json_rejects),
        cmocka_unit_test(test_senml_json_limits),
        cmocka_unit_test(test_senml_cbor_sim_shape),
        cmocka_unit_test(test_senml_cbor_kinds),
        cmocka_unit_test(test_senml_cbor_unknown_labels),
        cmocka_unit_test(test_senml_cbor_rejects),
        cmocka_unit_test(test_senml_json_to_cbor),
        cmocka_unit_test(test_senml_format_matches_sim),
        cmocka_unit_test(test_senml_format_kinds),
        cmocka_unit_test(test_senml_text),
        cmocka_unit_test(test_senml_units_and_metrics),
        cmocka_unit_test(test_block1_sequence),
        cmocka_unit_test(test_block1_size_change),
        cmocka_unit_test(test_block1_errors),
        cmocka_unit_test(test_block1_timeout),
        cmocka_unit_test(test_block2_slice),
        cmocka_unit_test(test_dedup_replay),
        cmocka_unit_test(test_dedup_bounds),
        cmocka_unit_test(test_timeouts_and_observe),
        cmocka_unit_test(test_guess_format),
        cmocka_unit_test(test_links_etag_paths),
    };

    return cmocka_run_group_tests_name("coap_front", tests, NULL, NULL);
}
