/* Tests for SIEM message formatting: RFC 5424, CEF, OCSF JSON, escaping and
 * octet-counting frames, all against exact strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "export/siem.h"

static const struct siem_header HEADER = {20, "hub1", "4242", "0.1.0"};

static void auth_failure_event(struct vigil_event *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->type = VIGIL_EV_AUTH_FAILURE;
    ev->proto = VIGIL_PROTO_MQTT5;
    ev->ts_us = 1767323045123456LL; /* 2026-01-02T03:04:05.123456Z */
    ev->conn_id = 7;
    strcpy(ev->peer, "127.0.0.1:50123");
    strcpy(ev->client_id, "mon-\"1\"]");
    strcpy(ev->detail, "bad password");
    ev->reason_code = 0x86;
    ev->keep_alive = 60;
}

static void brute_force_alert(struct secmon_alert *a)
{
    memset(a, 0, sizeof *a);
    strcpy(a->alert_id, "a1b2c3");
    a->rule = SECMON_RULE_BRUTE_FORCE;
    a->severity = SECMON_SEV_HIGH;
    strcpy(a->device, "mon-1");
    strcpy(a->source, "10.0.0.9");
    strcpy(a->observation, "12 auth failures in 60 s");
    strcpy(a->expectation, "at most 10 in 60 s");
    a->deviation = 1.2;
    strcpy(a->explanation, "Line1|x=y\nline2");
    a->first_seen_us = 1767323045000000LL;
    a->last_seen_us = 1767323105500000LL;
    a->count = 12;
    strcpy(a->evidence[0], "auth_failure 10.0.0.9:1");
    a->n_evidence = 1;
}

static void check_event(enum siem_format fmt, const struct vigil_event *ev, uint64_t seq,
                        const char *expected)
{
    char out[SIEM_MSG_MAX];
    int len = siem_format_event(fmt, &HEADER, ev, seq, out, sizeof out);

    assert_string_equal(out, expected);
    assert_int_equal(len, (int)strlen(expected));
}

static void check_alert(enum siem_format fmt, const struct secmon_alert *a, uint64_t seq,
                        const char *expected)
{
    char out[SIEM_MSG_MAX];
    int len = siem_format_alert(fmt, &HEADER, a, seq, out, sizeof out);

    assert_string_equal(out, expected);
    assert_int_equal(len, (int)strlen(expected));
}

static void test_rfc5424_auth_failure(void **state)
{
    struct vigil_event ev;

    (void)state;
    auth_failure_event(&ev);
    check_event(SIEM_FORMAT_RFC5424, &ev, 5,
                "<164>1 2026-01-02T03:04:05.123456Z hub1 vigil 4242 auth_failure "
                "[vigil@32473 seq=\"5\" proto=\"mqtt5\" conn=\"7\" peer=\"127.0.0.1:50123\" "
                "client_id=\"mon-\\\"1\\\"\\]\" reason_code=\"134\" keep_alive=\"60\"] "
                "bad password");
}

static void test_rfc5424_publish_v6_peer(void **state)
{
    struct vigil_event ev;

    (void)state;
    memset(&ev, 0, sizeof ev);
    ev.type = VIGIL_EV_PUBLISH;
    ev.ts_us = 1767323045000001LL;
    strcpy(ev.peer, "[::1]:7");
    strcpy(ev.topic, "north/icu3/room305/mon-0042/heart_rate");
    ev.qos = 1;
    ev.size = 10;
    check_event(SIEM_FORMAT_RFC5424, &ev, 9,
                "<166>1 2026-01-02T03:04:05.000001Z hub1 vigil 4242 publish "
                "[vigil@32473 seq=\"9\" peer=\"[::1\\]:7\" "
                "topic=\"north/icu3/room305/mon-0042/heart_rate\" qos=\"1\" retain=\"false\" "
                "size=\"10\"] publish");
}

static void test_rfc5424_facility_and_nil_fields(void **state)
{
    struct siem_header h = {4, NULL, "", NULL};
    struct vigil_event ev;
    char out[SIEM_MSG_MAX];

    (void)state;
    memset(&ev, 0, sizeof ev);
    ev.type = VIGIL_EV_ADMIN;
    ev.ts_us = 0;
    strcpy(ev.detail, "device added");
    assert_true(siem_format_event(SIEM_FORMAT_RFC5424, &h, &ev, 1, out, sizeof out) > 0);
    /* auth (4) * 8 + notice (5) */
    assert_string_equal(out, "<37>1 1970-01-01T00:00:00.000000Z - vigil - admin "
                             "[vigil@32473 seq=\"1\"] device added");
}

static void test_rfc5424_alert(void **state)
{
    struct secmon_alert a;

    (void)state;
    brute_force_alert(&a);
    check_alert(SIEM_FORMAT_RFC5424, &a, 6,
                "<163>1 2026-01-02T03:05:05.500000Z hub1 vigil 4242 alert "
                "[vigil@32473 seq=\"6\" alert_id=\"a1b2c3\" rule=\"brute_force\" "
                "severity=\"high\" device=\"mon-1\" source=\"10.0.0.9\" "
                "observation=\"12 auth failures in 60 s\" expectation=\"at most 10 in 60 s\" "
                "deviation=\"1.2\" count=\"12\" first_seen=\"2026-01-02T03:04:05.000000Z\" "
                "last_seen=\"2026-01-02T03:05:05.500000Z\" "
                "evidence=\"auth_failure 10.0.0.9:1\"] Line1|x=y line2");
}

static void test_sd_escape(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(siem_sd_escape("a\"b\\c]d", out, sizeof out), 10);
    assert_string_equal(out, "a\\\"b\\\\c\\]d");
    /* Invalid UTF-8 becomes U+FFFD; control characters become spaces. */
    assert_int_equal(siem_sd_escape("x\xff\ty", out, sizeof out), 6);
    assert_string_equal(out, "x\xEF\xBF\xBD y");
    assert_int_equal(siem_sd_escape("caf\xC3\xA9", out, sizeof out), 5);
    assert_string_equal(out, "caf\xC3\xA9");
    assert_int_equal(siem_sd_escape("]]]]", out, 8), -1);
}

static void test_severity_map(void **state)
{
    struct vigil_event ev;
    struct secmon_alert a;

    (void)state;
    memset(&ev, 0, sizeof ev);
    ev.type = VIGIL_EV_AUTH_SUCCESS;
    assert_int_equal(siem_event_severity(&ev), 6);
    ev.type = VIGIL_EV_TLS_FAILURE;
    assert_int_equal(siem_event_severity(&ev), 4);
    ev.type = VIGIL_EV_CERT;
    assert_int_equal(siem_event_severity(&ev), 5);
    memset(&a, 0, sizeof a);
    a.severity = SECMON_SEV_CRITICAL;
    assert_int_equal(siem_alert_severity(&a), 2);
    a.severity = SECMON_SEV_LOW;
    assert_int_equal(siem_alert_severity(&a), 5);
}

static void test_cef_event(void **state)
{
    struct vigil_event ev;

    (void)state;
    auth_failure_event(&ev);
    check_event(SIEM_FORMAT_CEF, &ev, 5,
                "<164>1 2026-01-02T03:04:05.123456Z hub1 vigil 4242 auth_failure - "
                "CEF:0|vigil|vigil|0.1.0|auth_failure|auth_failure|5|externalId=5 "
                "rt=1767323045123 src=127.0.0.1 spt=50123 cs1Label=clientId cs1=mon-\"1\"] "
                "cn1Label=connectionId cn1=7 cn2Label=reasonCode cn2=134 msg=bad password");
}

static void test_cef_alert(void **state)
{
    struct secmon_alert a;

    (void)state;
    brute_force_alert(&a);
    strcpy(a.observation, "12 auth|failures");
    check_alert(SIEM_FORMAT_CEF, &a, 6,
                "<163>1 2026-01-02T03:05:05.500000Z hub1 vigil 4242 alert - "
                "CEF:0|vigil|vigil|0.1.0|brute_force|12 auth\\|failures|8|externalId=6 "
                "rt=1767323105500 start=1767323045000 end=1767323105500 cnt=12 "
                "cat=brute_force src=10.0.0.9 suser=mon-1 cs1Label=alertId cs1=a1b2c3 "
                "cs2Label=expectation cs2=at most 10 in 60 s cfp1Label=deviation cfp1=1.2 "
                "msg=Line1|x\\=y\\nline2");
}

static void test_cef_escape(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(siem_cef_escape_header("a|b\\c=d", out, sizeof out), 9);
    assert_string_equal(out, "a\\|b\\\\c=d");
    assert_int_equal(siem_cef_escape_ext("a|b\\c=d\r\ne", out, sizeof out), 14);
    assert_string_equal(out, "a|b\\\\c\\=d\\r\\ne");
}

static void test_ocsf_auth_failure(void **state)
{
    struct vigil_event ev;

    (void)state;
    auth_failure_event(&ev);
    check_event(SIEM_FORMAT_OCSF_JSON, &ev, 5,
                "<164>1 2026-01-02T03:04:05.123456Z hub1 vigil 4242 auth_failure - "
                "{\"class_uid\":3002,\"class_name\":\"Authentication\",\"category_uid\":3,"
                "\"category_name\":\"Identity & Access Management\",\"activity_id\":1,"
                "\"activity_name\":\"Logon\",\"type_uid\":300201,\"status_id\":2,"
                "\"status\":\"Failure\",\"status_detail\":\"bad password\","
                "\"user\":{\"name\":\"mon-\\\"1\\\"]\",\"uid\":\"mon-\\\"1\\\"]\"},"
                "\"time\":1767323045123,\"severity_id\":3,\"message\":\"auth_failure\","
                "\"src_endpoint\":{\"ip\":\"127.0.0.1\",\"port\":50123},"
                "\"metadata\":{\"version\":\"1.1.0\",\"product\":{\"name\":\"vigil\","
                "\"vendor_name\":\"vigil\",\"version\":\"0.1.0\"},\"uid\":\"5\"},"
                "\"unmapped\":{\"event_type\":\"auth_failure\",\"conn\":7}}");
}

static void test_ocsf_auth_success_user(void **state)
{
    struct vigil_event ev;
    char out[SIEM_MSG_MAX];
    json_t *obj;
    const char *json;

    (void)state;
    auth_failure_event(&ev);
    ev.type = VIGIL_EV_AUTH_SUCCESS;
    strcpy(ev.device, "mon-0042");
    strcpy(ev.client_id, "c\xff");
    assert_true(siem_ocsf_event(&HEADER, &ev, 3, out, sizeof out) > 0);
    json = out;
    obj = json_loads(json, 0, NULL);
    assert_non_null(obj);
    assert_int_equal(json_integer_value(json_object_get(obj, "status_id")), 1);
    assert_string_equal(json_string_value(json_object_get(obj, "status")), "Success");
    assert_string_equal(json_string_value(json_object_get(json_object_get(obj, "user"), "name")),
                        "mon-0042");
    assert_string_equal(json_string_value(json_object_get(json_object_get(obj, "user"), "uid")),
                        "c\xEF\xBF\xBD");
    json_decref(obj);
}

static void test_ocsf_alert(void **state)
{
    struct secmon_alert a;

    (void)state;
    brute_force_alert(&a);
    check_alert(SIEM_FORMAT_OCSF_JSON, &a, 6,
                "<163>1 2026-01-02T03:05:05.500000Z hub1 vigil 4242 alert - "
                "{\"class_uid\":2004,\"class_name\":\"Detection Finding\",\"category_uid\":2,"
                "\"category_name\":\"Findings\",\"activity_id\":1,\"activity_name\":\"Create\","
                "\"type_uid\":200401,\"time\":1767323105500,\"severity_id\":4,\"status_id\":1,"
                "\"status\":\"New\",\"message\":\"12 auth failures in 60 s\",\"count\":12,"
                "\"finding_info\":{\"uid\":\"a1b2c3\",\"title\":\"12 auth failures in 60 s\","
                "\"desc\":\"Line1|x=y line2\",\"types\":[\"brute_force\"],"
                "\"first_seen_time\":1767323045000,\"last_seen_time\":1767323105500},"
                "\"evidences\":[{\"data\":{\"event\":\"auth_failure 10.0.0.9:1\"},"
                "\"src_endpoint\":{\"ip\":\"10.0.0.9\"}}],\"device\":{\"name\":\"mon-1\"},"
                "\"metadata\":{\"version\":\"1.1.0\",\"product\":{\"name\":\"vigil\","
                "\"vendor_name\":\"vigil\",\"version\":\"0.1.0\"},\"uid\":\"6\"},"
                "\"unmapped\":{\"rule\":\"brute_force\",\"expectation\":\"at most 10 in 60 s\","
                "\"deviation\":1.2}}");
}

static void test_format_too_small(void **state)
{
    struct vigil_event ev;
    struct secmon_alert a;
    char out[64];

    (void)state;
    auth_failure_event(&ev);
    brute_force_alert(&a);
    for (int fmt = 0; fmt < 3; fmt++) {
        assert_int_equal(siem_format_event(fmt, &HEADER, &ev, 1, out, sizeof out), -1);
        assert_int_equal(siem_format_alert(fmt, &HEADER, &a, 1, out, sizeof out), -1);
    }
}

static void test_frame_octet(void **state)
{
    char out[32];

    (void)state;
    assert_int_equal(siem_frame_octet("<14>1 x", 7, out, sizeof out), 9);
    assert_string_equal(out, "7 <14>1 x");
    assert_int_equal(siem_frame_octet("", 0, out, sizeof out), 2);
    assert_string_equal(out, "0 ");
    assert_int_equal(siem_frame_octet("0123456789", 10, out, 13), -1);
    assert_int_equal(siem_frame_octet("0123456789", 10, out, 14), 13);
    assert_string_equal(out, "10 0123456789");
}

static void test_dest_set(void **state)
{
    struct siem_dest d;
    char err[256];

    (void)state;
    siem_dest_defaults(&d);
    assert_int_equal(d.facility, 20);
    assert_int_equal(siem_dest_set(&d, "transport", "tls", err, sizeof err), VIGIL_OK);
    assert_int_equal(d.transport, SIEM_TRANSPORT_TLS);
    assert_int_equal(siem_dest_set(&d, "address", "[::1]:6514", err, sizeof err), VIGIL_OK);
    assert_string_equal(d.host, "::1");
    assert_int_equal(d.port, 6514);
    assert_int_equal(siem_dest_set(&d, "format", "ocsf-json", err, sizeof err), VIGIL_OK);
    assert_int_equal(d.format, SIEM_FORMAT_OCSF_JSON);
    assert_int_equal(siem_dest_set(&d, "facility", "auth", err, sizeof err), VIGIL_OK);
    assert_int_equal(d.facility, 4);
    assert_int_equal(siem_dest_set(&d, "facility", "24", err, sizeof err), VIGIL_ERR_CONFIG);
    assert_int_equal(siem_dest_set(&d, "transport", "sctp", err, sizeof err), VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, "udp, tcp or tls"));
    assert_int_equal(siem_dest_set(&d, "name", "a b", err, sizeof err), VIGIL_ERR_CONFIG);
    assert_int_equal(siem_dest_set(&d, "colour", "x", err, sizeof err), VIGIL_ERR_CONFIG);
    assert_int_equal(siem_dest_validate(&d, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_non_null(strstr(err, "ca_file"));
    assert_int_equal(siem_dest_set(&d, "ca_file", "/tmp/ca.pem", err, sizeof err), VIGIL_OK);
    assert_int_equal(siem_dest_validate(&d, err, sizeof err), VIGIL_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5424_auth_failure),
        cmocka_unit_test(test_rfc5424_publish_v6_peer),
        cmocka_unit_test(test_rfc5424_facility_and_nil_fields),
        cmocka_unit_test(test_rfc5424_alert),
        cmocka_unit_test(test_sd_escape),
        cmocka_unit_test(test_severity_map),
        cmocka_unit_test(test_cef_event),
        cmocka_unit_test(test_cef_alert),
        cmocka_unit_test(test_cef_escape),
        cmocka_unit_test(test_ocsf_auth_failure),
        cmocka_unit_test(test_ocsf_auth_success_user),
        cmocka_unit_test(test_ocsf_alert),
        cmocka_unit_test(test_format_too_small),
        cmocka_unit_test(test_frame_octet),
        cmocka_unit_test(test_dest_set),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
