/* Tests for security event formatting and the JSON-lines sink. */
#include <setjmp.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "core/alloc.h"
#include "core/time.h"
#include "secmon/event.h"

static json_t *parse_event(const struct vigil_event *ev)
{
    char buf[VIGIL_EVENT_JSON_MAX];
    json_error_t err;
    int len = vigil_event_to_json(ev, buf, sizeof buf);
    json_t *obj;

    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(buf));
    obj = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL)
        fail_msg("invalid JSON (%s): %s", err.text, buf);
    return obj;
}

static const char *get_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void test_json_minimal_event(void **state)
{
    struct vigil_event ev;
    json_t *obj;

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_CONNECT_ATTEMPT);
    ev.ts_us = 1767323045123456LL; /* 2026-01-02T03:04:05.123456Z */
    obj = parse_event(&ev);
    assert_string_equal(get_str(obj, "ts"), "2026-01-02T03:04:05.123456Z");
    assert_string_equal(get_str(obj, "type"), "connect_attempt");
    assert_int_equal(json_object_size(obj), 2);
    json_decref(obj);
}

/* Timestamps are formatted from a per-second cache: the fraction keeps its
 * leading zeros, and a new second or an earlier one is formatted afresh. */
static void test_json_timestamps(void **state)
{
    static const struct {
        int64_t us;
        const char *text;
    } cases[] = {
        {1767323045000001LL, "2026-01-02T03:04:05.000001Z"},
        {1767323045999999LL, "2026-01-02T03:04:05.999999Z"},
        {1767323046000000LL, "2026-01-02T03:04:06.000000Z"},
        {1767323045500000LL, "2026-01-02T03:04:05.500000Z"},
        {0, "1970-01-01T00:00:00.000000Z"},
        {1767225599999999LL, "2025-12-31T23:59:59.999999Z"},
        {1767225600000000LL, "2026-01-01T00:00:00.000000Z"},
    };
    struct vigil_event ev;
    json_t *obj;

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ev.ts_us = cases[i].us;
        obj = parse_event(&ev);
        assert_string_equal(get_str(obj, "ts"), cases[i].text);
        json_decref(obj);
    }
}

static void test_json_numbers(void **state)
{
    struct vigil_event ev;
    char buf[VIGIL_EVENT_JSON_MAX];

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    ev.conn_id = UINT64_MAX;
    ev.size = 0;
    ev.qos = 2;
    assert_true(vigil_event_to_json(&ev, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"conn\":18446744073709551615,"));
    assert_non_null(strstr(buf, "\"qos\":2,"));
    assert_non_null(strstr(buf, "\"size\":0}"));
}

static void test_json_observed_flag(void **state)
{
    struct vigil_event ev;
    json_t *obj;

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_AUTH_FAILURE);
    ev.observed = true;
    obj = parse_event(&ev);
    assert_true(json_is_true(json_object_get(obj, "observed")));
    json_decref(obj);

    ev.observed = false;
    obj = parse_event(&ev);
    assert_null(json_object_get(obj, "observed"));
    json_decref(obj);
}

static void test_json_publish_fields(void **state)
{
    struct vigil_event ev;
    json_t *obj;

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    ev.proto = VIGIL_PROTO_MQTT5;
    ev.conn_id = 42;
    ev.size = 0;
    VIGIL_EVENT_SET(&ev, peer, "127.0.0.1:5000", 14);
    VIGIL_EVENT_SET(&ev, client_id, "mon-0042", 8);
    VIGIL_EVENT_SET(&ev, device, "mon-0042", 8);
    VIGIL_EVENT_SET(&ev, device_type, "bedside-monitor", 15);
    VIGIL_EVENT_SET(&ev, topic, "north/icu3/room305/mon-0042/heart_rate", 38);
    obj = parse_event(&ev);
    assert_string_equal(get_str(obj, "proto"), "mqtt5");
    assert_int_equal(json_integer_value(json_object_get(obj, "conn")), 42);
    assert_string_equal(get_str(obj, "peer"), "127.0.0.1:5000");
    assert_string_equal(get_str(obj, "client_id"), "mon-0042");
    assert_string_equal(get_str(obj, "device"), "mon-0042");
    assert_string_equal(get_str(obj, "device_type"), "bedside-monitor");
    assert_string_equal(get_str(obj, "topic"), "north/icu3/room305/mon-0042/heart_rate");
    assert_int_equal(json_integer_value(json_object_get(obj, "qos")), 0);
    assert_true(json_is_false(json_object_get(obj, "retain")));
    assert_int_equal(json_integer_value(json_object_get(obj, "size")), 0);
    assert_null(json_object_get(obj, "reason_code"));
    assert_null(json_object_get(obj, "rule"));
    assert_null(json_object_get(obj, "detail"));
    json_decref(obj);
}

static void test_json_malformed_fields(void **state)
{
    struct vigil_event ev;
    json_t *obj;

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_MALFORMED);
    ev.proto = VIGIL_PROTO_MQTT311;
    ev.reason_code = 0x81;
    ev.rule = "MQTT-3.3.2-2";
    VIGIL_EVENT_SET(&ev, detail, "wildcard in topic name", 22);
    obj = parse_event(&ev);
    assert_string_equal(get_str(obj, "proto"), "mqtt3.1.1");
    assert_int_equal(json_integer_value(json_object_get(obj, "reason_code")), 0x81);
    assert_string_equal(get_str(obj, "rule"), "MQTT-3.3.2-2");
    assert_string_equal(get_str(obj, "detail"), "wildcard in topic name");
    assert_null(json_object_get(obj, "qos"));
    assert_null(json_object_get(obj, "retain"));
    assert_null(json_object_get(obj, "size"));
    json_decref(obj);
}

static void test_json_hostile_strings(void **state)
{
    static const struct {
        const char *in;
        const char *decoded;
    } cases[] = {
        {"a\"b", "a\"b"},
        {"back\\slash", "back\\slash"},
        {"\"}],\"type\":\"x", "\"}],\"type\":\"x"},
        {"tab\tnl\ncr\r\x01\x1f\x7f", "tab\tnl\ncr\r\x01\x1f\x7f"},
        {"bad\xff\xfe", "bad\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"lone\x80", "lone\xEF\xBF\xBD"},
        {"overlong\xc0\xaf", "overlong\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"surrogate\xed\xa0\x80", "surrogate\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"cut\xe2\x82", "cut\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"ok \xe2\x82\xac \xf0\x9f\x98\x80", "ok \xe2\x82\xac \xf0\x9f\x98\x80"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct vigil_event ev;
        json_t *obj;

        vigil_event_init(&ev, VIGIL_EV_AUTH_FAILURE);
        VIGIL_EVENT_SET(&ev, client_id, cases[i].in, strlen(cases[i].in));
        VIGIL_EVENT_SET(&ev, topic, cases[i].in, strlen(cases[i].in));
        VIGIL_EVENT_SET(&ev, detail, cases[i].in, strlen(cases[i].in));
        obj = parse_event(&ev);
        assert_string_equal(get_str(obj, "type"), "auth_failure");
        assert_string_equal(get_str(obj, "client_id"), cases[i].decoded);
        assert_string_equal(get_str(obj, "topic"), cases[i].decoded);
        assert_string_equal(get_str(obj, "detail"), cases[i].decoded);
        json_decref(obj);
    }
}

static void test_json_control_escape_form(void **state)
{
    struct vigil_event ev;
    char buf[VIGIL_EVENT_JSON_MAX];

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    VIGIL_EVENT_SET(&ev, detail, "\x01\x1b", 2);
    assert_true(vigil_event_to_json(&ev, buf, sizeof buf) > 0);
    assert_non_null(strstr(buf, "\"detail\":\"\\u0001\\u001b\""));
}

static void test_json_worst_case_fits(void **state)
{
    struct vigil_event ev;
    char buf[VIGIL_EVENT_JSON_MAX];

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    ev.proto = VIGIL_PROTO_MQTT5;
    ev.conn_id = INT64_MAX; /* jansson reads integers as int64 */
    ev.size = UINT32_MAX;
    ev.reason_code = 255;
    ev.qos = 2;
    ev.retain = true;
    ev.rule = "MQTT-3.3.2-2";
    memset(ev.peer, 0x01, sizeof ev.peer);
    memset(ev.client_id, 0x01, sizeof ev.client_id);
    memset(ev.device, 0x01, sizeof ev.device);
    memset(ev.device_type, 0x01, sizeof ev.device_type);
    memset(ev.topic, 0x01, sizeof ev.topic);
    memset(ev.detail, 0x01, sizeof ev.detail);
    /* Unterminated fields are read up to their size. */
    assert_true(vigil_event_to_json(&ev, buf, sizeof buf) > 0);
    json_decref(parse_event(&ev));
}

static void test_json_small_buffer(void **state)
{
    struct vigil_event ev;
    char buf[16];

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    assert_int_equal(vigil_event_to_json(&ev, buf, sizeof buf), -1);
    assert_int_equal(vigil_event_to_json(&ev, buf, 0), -1);
}

static void test_set_truncates(void **state)
{
    char field[8];
    char big[64];

    (void)state;
    vigil_event_set(field, sizeof field, "abcdefghij", 10);
    assert_string_equal(field, "abcdefg");
    /* "abcde" then a 3-byte euro sign: the sign does not fit whole. */
    vigil_event_set(field, sizeof field, "abcde\xe2\x82\xac", 8);
    assert_string_equal(field, "abcde");
    vigil_event_set(field, sizeof field, "ab\0cd", 5);
    assert_string_equal(field, "ab");
    vigil_event_set(field, sizeof field, NULL, 5);
    assert_string_equal(field, "");
    memset(big, 0x80, sizeof big);
    vigil_event_set(field, sizeof field, big, sizeof big);
    assert_int_equal(strlen(field), 7);
}

static void test_type_names(void **state)
{
    (void)state;
    for (int t = 0; t < VIGIL_EV_TYPE_COUNT; t++)
        assert_string_not_equal(vigil_event_type_name((enum vigil_event_type)t), "unknown");
    assert_string_equal(vigil_event_type_name(VIGIL_EV_ACL_DENY), "acl_deny");
    assert_string_equal(vigil_event_type_name(VIGIL_EV_TYPE_COUNT), "unknown");
}

static char *temp_path(void)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof path, "/tmp/vigil-event-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return path;
}

/* Counts lines in path, checking that each parses as a JSON object. */
static size_t count_json_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[VIGIL_EVENT_JSON_MAX + 2];
    size_t n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
        json_error_t err;
        json_t *obj;

        assert_non_null(strchr(line, '\n'));
        obj = json_loads(line, 0, &err);
        if (!json_is_object(obj))
            fail_msg("line %zu is not a JSON object: %s", n + 1, err.text);
        json_decref(obj);
        n++;
    }
    fclose(f);
    return n;
}

static void test_sink_drops_when_full(void **state)
{
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 4, &sink), VIGIL_OK);
    vigil_event_sink_set_paused(sink, true);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    VIGIL_EVENT_SET(&ev, topic, "a/b\"c", 5);
    for (int i = 0; i < 10; i++)
        vigil_event_sink_emit(sink, &ev);
    assert_int_equal(vigil_event_sink_dropped(sink), 6);
    assert_int_equal(vigil_event_sink_written(sink), 0);
    vigil_event_sink_close(sink);
    assert_int_equal(count_json_lines(path), 4);
    unlink(path);
}

/* Reads a thread's nice value (field 19) and scheduling policy (field 41)
 * from /proc/self/task/TID/stat. */
static bool task_sched(const char *tid, long *nice, long *policy)
{
    char path[300], line[1024];
    char *p;
    FILE *f;
    int field = 2;

    snprintf(path, sizeof path, "/proc/self/task/%s/stat", tid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    p = fgets(line, sizeof line, f);
    fclose(f);
    if (p == NULL || (p = strrchr(line, ')')) == NULL)
        return false;
    for (char *tok = strtok(p + 1, " "); tok != NULL; tok = strtok(NULL, " ")) {
        field++;
        if (field == 19)
            *nice = strtol(tok, NULL, 10);
        if (field == 41)
            *policy = strtol(tok, NULL, 10);
    }
    return field >= 41;
}

/* Counts this process's threads running SCHED_BATCH at the given nice. */
static int batch_threads(long want_nice)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        long nice = 0, policy = -1;

        if (e->d_name[0] != '.' && task_sched(e->d_name, &nice, &policy) &&
            policy == SCHED_BATCH && nice == want_nice)
            n++;
    }
    closedir(d);
    return n;
}

static void test_sink_writer_yields(void **state)
{
    struct vigil_event_sink *sink;
    char *path = temp_path();
    long process_nice = getpriority(PRIO_PROCESS, 0);
    int found = 0;

    (void)state;
    assert_int_equal(batch_threads(process_nice + 5), 0);
    assert_int_equal(vigil_event_sink_open(path, 8, &sink), VIGIL_OK);
    for (int i = 0; i < 200 && found == 0; i++) {
        found = batch_threads(process_nice + 5);
        if (found == 0)
            usleep(5000);
    }
    assert_int_equal(found, 1);
    /* The thread that opened the sink keeps its own policy. */
    assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
    vigil_event_sink_close(sink);
    unlink(path);
}

static void test_sink_close_drains(void **state)
{
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 1000, &sink), VIGIL_OK);
    vigil_event_sink_set_paused(sink, true);
    for (int i = 0; i < 1000; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = (uint64_t)i + 1;
        vigil_event_sink_emit(sink, &ev);
    }
    vigil_event_sink_set_paused(sink, false);
    assert_int_equal(vigil_event_sink_dropped(sink), 0);
    vigil_event_sink_close(sink);
    assert_int_equal(count_json_lines(path), 1000);
    unlink(path);
}

static void test_sink_appends(void **state)
{
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(vigil_event_sink_open(path, 8, &sink), VIGIL_OK);
        vigil_event_sink_emit(sink, &ev);
        vigil_event_sink_emit(sink, &ev);
        vigil_event_sink_close(sink);
    }
    assert_int_equal(count_json_lines(path), 4);
    unlink(path);
}

/* A line that a full disk or a crash left without its newline is ended
 * before the next run's first line, so that line stays valid JSON. */
static void test_sink_ends_cut_line_at_open(void **state)
{
    static const char cut[] = "{\"ts\":\"2026-01-02T03:04:05.000000Z\",\"type\":\"pub";
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();
    char text[512];
    FILE *f = fopen(path, "w");
    size_t n;

    (void)state;
    assert_non_null(f);
    assert_true(fputs(cut, f) >= 0);
    assert_int_equal(fclose(f), 0);
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    assert_int_equal(vigil_event_sink_open(path, 8, &sink), VIGIL_OK);
    vigil_event_sink_emit(sink, &ev);
    vigil_event_sink_close(sink);

    f = fopen(path, "r");
    assert_non_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_int_equal(strncmp(text, cut, sizeof cut - 1), 0);
    assert_int_equal(text[sizeof cut - 1], '\n');
    assert_non_null(strstr(text + sizeof cut, "\"type\":\"admin\""));
    assert_int_equal(text[n - 1], '\n');
    unlink(path);
}

/* Connection ids the test consumer saw, in order; written on the sink's
 * thread and read after vigil_event_sink_close() joined it. */
static uint64_t seen_ids[1000];
static uint64_t *seen_into = seen_ids;
static size_t seen_cap = sizeof seen_ids / sizeof seen_ids[0];
static size_t n_seen;

static void record_feed(void *ctx, const struct vigil_event *ev)
{
    (void)ctx;
    if (n_seen < seen_cap)
        seen_into[n_seen++] = ev->conn_id;
}

static void wait_written(struct vigil_event_sink *sink, uint64_t n)
{
    for (int i = 0; i < 5000 && vigil_event_sink_written(sink) < n; i++)
        usleep(1000);
    assert_int_equal(vigil_event_sink_written(sink), n);
}

static void test_sink_order_across_blocks(void **state)
{
    struct vigil_event_consumer cons = {.feed = record_feed};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    n_seen = 0;
    assert_int_equal(vigil_event_sink_open(path, 1000, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_sink_set_paused(sink, true);
    /* 300 events span five blocks of 64; a second round reuses them. */
    for (int i = 0; i < 300; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = (uint64_t)i + 1;
        vigil_event_sink_emit(sink, &ev);
    }
    vigil_event_sink_set_paused(sink, false);
    wait_written(sink, 300);
    for (int i = 300; i < 700; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = (uint64_t)i + 1;
        vigil_event_sink_emit(sink, &ev);
    }
    vigil_event_sink_close(sink);
    assert_int_equal(n_seen, 700);
    for (size_t i = 0; i < n_seen; i++)
        assert_int_equal(seen_ids[i], i + 1);
    assert_int_equal(count_json_lines(path), 700);
    unlink(path);
}

/* The writer works on the events it took while the emitter keeps
 * queueing; every event arrives once, in order. */
static void test_sink_order_while_emitting(void **state)
{
    static uint64_t ids[20000];
    struct vigil_event_consumer cons = {.feed = record_feed};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    n_seen = 0;
    seen_into = ids;
    seen_cap = sizeof ids / sizeof ids[0];
    assert_int_equal(vigil_event_sink_open(path, 20000, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    for (int i = 0; i < 20000; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = (uint64_t)i + 1;
        vigil_event_sink_emit(sink, &ev);
        if (i % 1000 == 0)
            usleep(1000);
    }
    vigil_event_sink_close(sink);
    assert_int_equal(n_seen, 20000);
    for (size_t i = 0; i < n_seen; i++)
        assert_int_equal(ids[i], i + 1);
    seen_into = seen_ids;
    seen_cap = sizeof seen_ids / sizeof seen_ids[0];
    unlink(path);
}

/* Events fed since the last tick, and their maximum between two ticks.
 * The sink ticks its consumer once per batch. */
static size_t batch_fed, batch_max, batch_total, batch_ticks;

static void batch_feed(void *ctx, const struct vigil_event *ev)
{
    (void)ctx;
    (void)ev;
    batch_fed++;
    batch_total++;
}

static void batch_tick(void *ctx, int64_t now_us)
{
    (void)ctx;
    (void)now_us;
    if (batch_fed > batch_max)
        batch_max = batch_fed;
    batch_fed = 0;
    batch_ticks++;
}

/* A disk that refuses writes loses the lines, not the engine's events,
 * and the writer keeps draining the queue. */
static void test_sink_write_failure(void **state)
{
    struct vigil_event_consumer cons = {.feed = batch_feed, .tick = batch_tick};
    struct vigil_event_sink *sink;
    struct vigil_event ev;

    (void)state;
    batch_fed = batch_max = batch_total = 0;
    assert_int_equal(vigil_event_sink_open("/dev/full", 5000, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    for (int i = 0; i < 3000; i++)
        vigil_event_sink_emit(sink, &ev);
    vigil_event_sink_close(sink);
    assert_int_equal(batch_total, 3000);
}

/* Waits until the consumer of the batch_* counters was fed n events. */
static void wait_fed(size_t n)
{
    for (int i = 0; i < 5000 && batch_total < n; i++)
        usleep(1000);
    assert_int_equal(batch_total, n);
}

/* Writes that fail for a while lose those lines only. The file size
 * limit plays the full disk. The lines before and after are whole, and
 * the recovery is logged with the number lost, with or without rotation. */
static void write_recovers(const struct vigil_event_rotation *rot)
{
    struct vigil_event_consumer cons = {.feed = batch_feed, .tick = batch_tick};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    struct rlimit old, cap;
    struct stat st;
    char *path = temp_path();
    char log_path[] = "/tmp/vigil-sink-log-XXXXXX";
    char logged[4096];
    int log_fd = mkstemp(log_path), saved_err = dup(2);
    ssize_t n;

    assert_true(log_fd >= 0 && saved_err >= 0);
    batch_fed = batch_max = batch_total = 0;
    assert_int_equal(vigil_event_sink_open_rotating(path, 5000, rot, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    for (int i = 0; i < 10; i++)
        vigil_event_sink_emit(sink, &ev);
    wait_written(sink, 10);

    fflush(stderr);
    assert_true(dup2(log_fd, 2) >= 0);
    assert_int_equal(stat(path, &st), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    cap = old;
    cap.rlim_cur = (rlim_t)st.st_size;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &cap), 0);
    for (int i = 0; i < 7; i++)
        vigil_event_sink_emit(sink, &ev);
    wait_fed(17);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (int i = 0; i < 5; i++)
        vigil_event_sink_emit(sink, &ev);
    wait_written(sink, 15);
    vigil_event_sink_close(sink);
    fflush(stderr);
    assert_true(dup2(saved_err, 2) >= 0);
    close(saved_err);

    assert_int_equal(count_json_lines(path), 15);
    n = pread(log_fd, logged, sizeof logged - 1, 0);
    assert_true(n > 0);
    logged[n] = '\0';
    assert_non_null(strstr(logged, "event sink: write failed"));
    assert_non_null(strstr(logged, "writing events works again; events not written: 7"));
    close(log_fd);
    unlink(log_path);
    unlink(path);
}

static void test_sink_write_recovers(void **state)
{
    (void)state;
    write_recovers(NULL);
}

static void test_sink_write_recovers_rotating(void **state)
{
    (void)state;
    write_recovers(&(struct vigil_event_rotation){.max_bytes = 65536, .keep = 2});
}

/* Events that trickle in are handed over in batches: the first one wakes
 * the writer, which then waits one period for more before taking them. */
static void test_sink_trickle_batched(void **state)
{
    struct vigil_event_consumer cons = {.feed = batch_feed, .tick = batch_tick};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();
    uint64_t start, periods;

    (void)state;
    batch_fed = batch_max = batch_total = batch_ticks = 0;
    assert_int_equal(vigil_event_sink_open(path, 5000, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    start = vigil_time_mono_ms();
    /* 1,000 events 200 us apart: 200 ms, or about 40 periods of 5 ms on an
     * idle machine. A loaded one stretches the loop and gets more periods,
     * but not one per event. */
    for (int i = 0; i < 1000; i++) {
        vigil_event_sink_emit(sink, &ev);
        usleep(200);
    }
    periods = (vigil_time_mono_ms() - start) / 5;
    vigil_event_sink_close(sink);
    assert_int_equal(batch_total, 1000);
    assert_true(batch_ticks <= (size_t)(2 * periods + 20));
    assert_true(batch_ticks < 500);
    assert_int_equal(count_json_lines(path), 1000);
    unlink(path);
}

/* A backlog is taken a few blocks at a time, so the blocks of what was
 * written go back while the rest still waits. */
static void test_sink_batch_capped(void **state)
{
    struct vigil_event_consumer cons = {.feed = batch_feed, .tick = batch_tick};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    batch_fed = batch_max = batch_total = 0;
    assert_int_equal(vigil_event_sink_open(path, 5000, &sink), VIGIL_OK);
    vigil_event_sink_set_paused(sink, true);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    for (int i = 0; i < 5000; i++)
        vigil_event_sink_emit(sink, &ev);
    vigil_event_sink_set_paused(sink, false);
    vigil_event_sink_close(sink);
    assert_int_equal(batch_total, 5000);
    assert_true(batch_max > 0);
    assert_true(batch_max <= 512);
    assert_int_equal(count_json_lines(path), 5000);
    unlink(path);
}

/* The writer works on the queue's own blocks, so an open sink keeps no
 * copy of a batch: its memory is the struct and the 16 KiB output buffer
 * of JSON lines. */
static void test_sink_open_memory(void **state)
{
    struct vigil_event_sink *sink;
    char *path = temp_path();
    size_t before = vigil_alloc_in_use();

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 16384, &sink), VIGIL_OK);
    assert_true(vigil_alloc_in_use() - before < 16 * 1024 + VIGIL_EVENT_JSON_MAX);
    vigil_event_sink_close(sink);
    unlink(path);
}

/* The queue keeps memory for its backlog, not for its capacity. */
static void test_sink_memory_follows_backlog(void **state)
{
    const size_t block = 64 * sizeof(struct vigil_event);
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();
    size_t opened, filled;

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 16384, &sink), VIGIL_OK);
    opened = vigil_alloc_in_use();
    vigil_event_sink_set_paused(sink, true);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    for (int i = 0; i < 640; i++)
        vigil_event_sink_emit(sink, &ev);
    filled = vigil_alloc_in_use();
    assert_true(filled - opened >= 10 * block);
    assert_true(filled - opened < 11 * block);
    vigil_event_sink_set_paused(sink, false);
    wait_written(sink, 640);
    /* Drained: the blocks stay as spares while the burst is one of the
     * last two seconds; then one stays and the rest is unmapped. */
    for (int i = 0; i < 5000 && vigil_alloc_in_use() >= opened + 2 * block; i++)
        usleep(1000);
    assert_true(vigil_alloc_in_use() < opened + 2 * block);
    vigil_event_sink_close(sink);
    unlink(path);
}

/* Emitter threads for test_sink_concurrent_emitters. An event's conn_id is
 * the thread's index times EMIT_PER_THREAD plus its running count. */
#define EMIT_THREADS 4
#define EMIT_PER_THREAD 5000

struct emit_check {
    uint64_t next[EMIT_THREADS]; /* lowest count each thread may show next */
    uint64_t fed;
    bool reordered;
};

static void check_feed(void *ctx, const struct vigil_event *ev)
{
    struct emit_check *chk = ctx;
    uint64_t thread = ev->conn_id / EMIT_PER_THREAD, count = ev->conn_id % EMIT_PER_THREAD;

    if (thread >= EMIT_THREADS || count < chk->next[thread])
        chk->reordered = true;
    else
        chk->next[thread] = count + 1;
    /* A slow consumer now and then: emitters fill the queue while the
     * writer still works on the batch it took. */
    if (++chk->fed % 1000 == 0)
        usleep(2000);
}

static void *emit_thread(void *arg)
{
    struct vigil_event_sink *sink = ((void **)arg)[0];
    uint64_t thread = (uint64_t)(uintptr_t)((void **)arg)[1];
    struct vigil_event ev;

    for (uint64_t i = 0; i < EMIT_PER_THREAD; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = thread * EMIT_PER_THREAD + i;
        vigil_event_sink_emit(sink, &ev);
        /* Pauses let the writer take batches while the others emit. */
        if (i % 64 == 63)
            usleep(300);
    }
    return NULL;
}

/* Events from several threads at once: each is either written once or
 * counted as dropped, and each thread's events keep their order. */
static void test_sink_concurrent_emitters(void **state)
{
    struct emit_check chk = {0};
    struct vigil_event_consumer cons = {.feed = check_feed, .ctx = &chk};
    struct vigil_event_sink *sink;
    pthread_t threads[EMIT_THREADS];
    void *args[EMIT_THREADS][2];
    char *path = temp_path();
    uint64_t written, dropped;

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 256, &sink), VIGIL_OK);
    vigil_event_sink_set_consumer(sink, &cons);
    for (int i = 0; i < EMIT_THREADS; i++) {
        args[i][0] = sink;
        args[i][1] = (void *)(uintptr_t)i;
        assert_int_equal(pthread_create(&threads[i], NULL, emit_thread, args[i]), 0);
    }
    for (int i = 0; i < EMIT_THREADS; i++)
        pthread_join(threads[i], NULL);
    /* The sink's counters are read before closing frees it. */
    for (int i = 0; i < 5000 && vigil_event_sink_written(sink) + vigil_event_sink_dropped(sink) <
                                     (uint64_t)EMIT_THREADS * EMIT_PER_THREAD; i++)
        usleep(1000);
    written = vigil_event_sink_written(sink);
    dropped = vigil_event_sink_dropped(sink);
    vigil_event_sink_close(sink);
    assert_int_equal(written + dropped, (uint64_t)EMIT_THREADS * EMIT_PER_THREAD);
    assert_int_equal(chk.fed, written);
    assert_false(chk.reordered);
    assert_int_equal(count_json_lines(path), written);
    unlink(path);
}

/* A consumer that blocks in its first feed until the test releases it. */
static atomic_bool feed_entered, feed_release;

static void blocking_feed(void *ctx, const struct vigil_event *ev)
{
    (void)ctx;
    (void)ev;
    atomic_store(&feed_entered, true);
    while (!atomic_load(&feed_release))
        usleep(1000);
}

static void test_sink_held_events_count(void **state)
{
    struct vigil_event_consumer cons = {.feed = blocking_feed};
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();
    bool accepted = false;

    (void)state;
    atomic_store(&feed_entered, false);
    atomic_store(&feed_release, false);
    assert_int_equal(vigil_event_sink_open(path, 128, &sink), VIGIL_OK);
    vigil_event_sink_set_paused(sink, true);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    for (int i = 0; i < 128; i++)
        vigil_event_sink_emit(sink, &ev);
    vigil_event_sink_set_consumer(sink, &cons);
    vigil_event_sink_set_paused(sink, false);
    for (int i = 0; i < 5000 && !atomic_load(&feed_entered); i++)
        usleep(1000);
    assert_true(atomic_load(&feed_entered));
    /* The writer has taken all 128 events, so the queue has no room left. */
    for (int i = 0; i < 200; i++)
        vigil_event_sink_emit(sink, &ev);
    assert_int_equal(vigil_event_sink_dropped(sink), 200);
    atomic_store(&feed_release, true);
    wait_written(sink, 128);
    /* Room comes back once the writer hands the blocks back. */
    for (int i = 0; i < 5000 && !accepted; i++) {
        uint64_t before = vigil_event_sink_dropped(sink);

        vigil_event_sink_emit(sink, &ev);
        accepted = vigil_event_sink_dropped(sink) == before;
        if (!accepted)
            usleep(1000);
    }
    assert_true(accepted);
    vigil_event_sink_close(sink);
    unlink(path);
}

static void test_sink_block_failure_drops(void **state)
{
    struct vigil_event_sink *sink;
    struct vigil_event ev;
    char *path = temp_path();

    (void)state;
    assert_int_equal(vigil_event_sink_open(path, 100, &sink), VIGIL_OK);
    vigil_event_sink_set_paused(sink, true);
    vigil_event_init(&ev, VIGIL_EV_ADMIN);
    vigil_alloc_fail_after(1);
    vigil_event_sink_emit(sink, &ev);
    vigil_alloc_fail_after(0);
    assert_int_equal(vigil_event_sink_dropped(sink), 1);
    vigil_event_sink_emit(sink, &ev);
    assert_int_equal(vigil_event_sink_dropped(sink), 1);
    vigil_event_sink_close(sink);
    assert_int_equal(count_json_lines(path), 1);
    unlink(path);
}

/* A private directory for the rotation tests, with events.jsonl inside. */
struct rot_dir {
    char dir[64];
    char path[96];
};

static void rot_dir_make(struct rot_dir *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/vigil-rotate-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof d->path, "%s/events.jsonl", d->dir);
}

static void rot_dir_remove(struct rot_dir *d)
{
    DIR *dir = opendir(d->dir);
    struct dirent *e;
    char name[400];

    assert_non_null(dir);
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(name, sizeof name, "%s/%s", d->dir, e->d_name);
        if (unlink(name) != 0)
            assert_int_equal(rmdir(name), 0);
    }
    closedir(dir);
    assert_int_equal(rmdir(d->dir), 0);
}

/* Emits publish events with connection ids from first to first + n - 1,
 * queued while the writer is paused so that its batches fill the output
 * buffer and a rotation falls inside one write. */
static void emit_ids(struct vigil_event_sink *sink, uint64_t first, uint64_t n)
{
    struct vigil_event ev;

    vigil_event_sink_set_paused(sink, true);
    for (uint64_t i = 0; i < n; i++) {
        vigil_event_init(&ev, VIGIL_EV_PUBLISH);
        ev.conn_id = first + i;
        VIGIL_EVENT_SET(&ev, topic, "hospital/icu3/bedside-monitor/mon-0042/heart_rate", 49);
        vigil_event_sink_emit(sink, &ev);
    }
    vigil_event_sink_set_paused(sink, false);
}

/* Appends the conn id of every line of one event file to ids, failing the
 * test on a line that is not a whole JSON event. Returns the file's size,
 * or -1 when it does not exist. */
static long read_ids(const char *path, uint64_t *ids, size_t cap, size_t *n)
{
    char line[VIGIL_EVENT_JSON_MAX + 2];
    FILE *f = fopen(path, "r");
    long size;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        json_error_t err;
        json_t *obj;

        if (strchr(line, '\n') == NULL)
            fail_msg("%s: a line without its newline: %s", path, line);
        obj = json_loads(line, 0, &err);
        if (!json_is_object(obj) || !json_is_integer(json_object_get(obj, "conn")))
            fail_msg("%s: not an event line (%s): %s", path, err.text, line);
        assert_true(*n < cap);
        ids[(*n)++] = (uint64_t)json_integer_value(json_object_get(obj, "conn"));
        json_decref(obj);
    }
    size = ftell(f);
    fclose(f);
    return size;
}

/* Reads the conn ids of events.jsonl.N down to .1 and then of events.jsonl,
 * oldest first, into ids. Checks that no file is over max_bytes (0: no
 * check) and returns the number of rotated files. */
static unsigned read_rotated(const struct rot_dir *d, uint64_t max_bytes, uint64_t *ids,
                             size_t cap, size_t *n)
{
    char name[128];
    unsigned files = 0;
    long size;

    *n = 0;
    for (unsigned k = 2000; k >= 1; k--) {
        snprintf(name, sizeof name, "%s.%u", d->path, k);
        size = read_ids(name, ids, cap, n);
        if (size < 0)
            continue;
        files++;
        if (max_bytes > 0 && (uint64_t)size > max_bytes)
            fail_msg("%s has %ld bytes, over the limit of %llu", name, size,
                     (unsigned long long)max_bytes);
    }
    size = read_ids(d->path, ids, cap, n);
    assert_true(size >= 0);
    if (max_bytes > 0)
        assert_true((uint64_t)size <= max_bytes);
    return files;
}

static uint64_t rot_ids[4000];

/* With a tiny limit the file rotates many times, inside single writes. No
 * file passes the limit, each was filled to within one line of it, every
 * line is whole and each event is in exactly one file, in order. */
static void test_sink_rotates_at_line_boundaries(void **state)
{
    const struct vigil_event_rotation rot = {.max_bytes = 4096, .keep = 1000};
    struct vigil_event_sink *sink;
    struct rot_dir d;
    struct stat st;
    char name[128];
    unsigned files;
    size_t n;

    (void)state;
    rot_dir_make(&d);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, &rot, &sink), VIGIL_OK);
    emit_ids(sink, 1, 1500);
    wait_written(sink, 1500);
    emit_ids(sink, 1501, 1500);
    vigil_event_sink_close(sink);

    files = read_rotated(&d, rot.max_bytes, rot_ids, 4000, &n);
    assert_int_equal(n, 3000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rot_ids[i], i + 1);
    /* About 160 bytes a line, so some 25 lines a file. */
    assert_true(files >= 100);
    for (unsigned k = 1; k <= files; k++) {
        snprintf(name, sizeof name, "%s.%u", d.path, k);
        assert_int_equal(stat(name, &st), 0);
        assert_true(st.st_size > 4096 - 200);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
    rot_dir_remove(&d);
}

static void touch(const char *path, const char *suffix)
{
    char name[160];
    FILE *f;

    snprintf(name, sizeof name, "%s%s", path, suffix);
    f = fopen(name, "w");
    assert_non_null(f);
    fclose(f);
}

static bool exists(const char *path, const char *suffix)
{
    char name[160];

    snprintf(name, sizeof name, "%s%s", path, suffix);
    return access(name, F_OK) == 0;
}

/* Only keep rotated files stay. The oldest events go, the newest are all
 * there once, and files left beyond keep by a larger setting are deleted,
 * also past a number missing between them. Other names stay. */
static void test_sink_rotation_keeps_files(void **state)
{
    const struct vigil_event_rotation rot = {.max_bytes = 4096, .keep = 3};
    static const char *const stale[] = {".4", ".6", ".7", ".1001", ".99999999999"};
    static const char *const other[] = {".07", ".5x", ".bak", "x.9"};
    struct vigil_event_sink *sink;
    struct rot_dir d;
    char name[128];
    unsigned files;
    size_t n;

    (void)state;
    rot_dir_make(&d);
    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        touch(d.path, stale[i]);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        touch(d.path, other[i]);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, &rot, &sink), VIGIL_OK);
    emit_ids(sink, 1, 1000);
    vigil_event_sink_close(sink);

    for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++)
        if (exists(d.path, stale[i]))
            fail_msg("events.jsonl%s beyond keep was not deleted", stale[i]);
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        assert_true(exists(d.path, other[i]));
    assert_false(exists(d.path, ".new"));
    files = read_rotated(&d, rot.max_bytes, rot_ids, 4000, &n);
    assert_int_equal(files, 3);
    for (unsigned k = 1; k <= 3; k++) {
        snprintf(name, sizeof name, "%s.%u", d.path, k);
        assert_int_equal(access(name, F_OK), 0);
    }
    /* Four files of about 25 lines contain the last events, in order. */
    assert_true(n > 60);
    assert_true(n < 130);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rot_ids[i], 1000 - n + 1 + i);
    rot_dir_remove(&d);
}

/* A limit of 0, or no rotation at all, keeps one file however large. */
static void test_sink_rotation_off(void **state)
{
    const struct vigil_event_rotation off = {.max_bytes = 0, .keep = 0};
    struct vigil_event_sink *sink;
    struct rot_dir d;
    char name[128];
    size_t n;

    (void)state;
    rot_dir_make(&d);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, &off, &sink), VIGIL_OK);
    emit_ids(sink, 1, 1000);
    vigil_event_sink_close(sink);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, NULL, &sink), VIGIL_OK);
    emit_ids(sink, 1001, 1000);
    vigil_event_sink_close(sink);
    assert_int_equal(read_rotated(&d, 0, rot_ids, 4000, &n), 0);
    assert_int_equal(n, 2000);
    snprintf(name, sizeof name, "%s.1", d.path);
    assert_int_equal(access(name, F_OK), -1);
    rot_dir_remove(&d);
}

/* The size of an existing file counts. A file already over the limit
 * rotates before the first new line, and its cut last line is ended
 * there first. */
static void test_sink_rotation_counts_existing(void **state)
{
    const struct vigil_event_rotation rot = {.max_bytes = 65536, .keep = 2};
    struct vigil_event_sink *sink;
    struct rot_dir d;
    char name[128], text[256];
    struct stat st;
    FILE *f;
    size_t n;

    (void)state;
    rot_dir_make(&d);
    f = fopen(d.path, "w");
    assert_non_null(f);
    for (int i = 0; i < 2000; i++)
        fprintf(f, "{\"ts\":\"2026-01-02T03:04:05.000000Z\",\"type\":\"admin\",\"conn\":%d}\n",
                i + 1);
    fputs("{\"ts\":\"2026-01-02T03:04:05.000000Z\",\"type\":\"pub", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, &rot, &sink), VIGIL_OK);
    emit_ids(sink, 2001, 10);
    vigil_event_sink_close(sink);

    snprintf(name, sizeof name, "%s.1", d.path);
    assert_int_equal(stat(name, &st), 0);
    f = fopen(name, "r");
    assert_non_null(f);
    assert_int_equal(fseek(f, -20, SEEK_END), 0);
    n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_string_equal(text + n - 5, "\"pub\n");
    n = 0;
    assert_true(read_ids(d.path, rot_ids, 4000, &n) > 0);
    assert_int_equal(n, 10);
    assert_int_equal(rot_ids[0], 2001);
    rot_dir_remove(&d);
}

/* Runs fn with standard error going to a file, and returns what was
 * logged in out. */
static void capture_log(void (*fn)(void *), void *arg, char *out, size_t cap)
{
    char log_path[] = "/tmp/vigil-sink-log-XXXXXX";
    int log_fd = mkstemp(log_path), saved_err = dup(2);
    ssize_t n;

    assert_true(log_fd >= 0);
    assert_true(saved_err >= 0);
    fflush(stderr);
    assert_true(dup2(log_fd, 2) >= 0);
    fn(arg);
    fflush(stderr);
    assert_true(dup2(saved_err, 2) >= 0);
    close(saved_err);
    n = pread(log_fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(log_fd);
    unlink(log_path);
}

static size_t count_text(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* A directory where the oldest kept file must be deleted stops rotation.
 * The writer logs it once and keeps every event in the current file.
 * Once the directory is gone, rotation works again. */
static void rename_failure_run(void *arg)
{
    const struct vigil_event_rotation rot = {.max_bytes = 4096, .keep = 1};
    const struct rot_dir *d = arg;
    struct vigil_event_sink *sink;
    char name[128];
    size_t n;

    snprintf(name, sizeof name, "%s.1", d->path);
    assert_int_equal(mkdir(name, 0700), 0);
    assert_int_equal(vigil_event_sink_open_rotating(d->path, 4000, &rot, &sink), VIGIL_OK);
    for (int i = 0; i < 5; i++) {
        emit_ids(sink, (uint64_t)i * 100 + 1, 100);
        wait_written(sink, (uint64_t)(i + 1) * 100);
    }
    n = 0;
    assert_true(read_ids(d->path, rot_ids, 4000, &n) > 4096 * 3);
    assert_int_equal(n, 500);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rot_ids[i], i + 1);

    assert_int_equal(rmdir(name), 0);
    emit_ids(sink, 501, 500);
    vigil_event_sink_close(sink);
}

static void test_sink_rotation_rename_failure(void **state)
{
    struct rot_dir d;
    char logged[8192], name[128];
    struct stat st;
    size_t n;

    (void)state;
    rot_dir_make(&d);
    capture_log(rename_failure_run, &d, logged, sizeof logged);
    assert_int_equal(count_text(logged, "event sink: rotating"), 2);
    assert_non_null(strstr(logged, "/events.jsonl.1: Is a directory); appending to it"));
    assert_non_null(strstr(logged, "works again"));
    snprintf(name, sizeof name, "%s.1", d.path);
    assert_int_equal(stat(name, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* One rotated file is kept, so the oldest events are gone. The rest
     * are there once, in order, ending with the last. */
    assert_int_equal(read_rotated(&d, 0, rot_ids, 4000, &n), 1);
    assert_true(n > 0);
    assert_true(n < 1000);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rot_ids[i], 1000 - n + 1 + i);
    rot_dir_remove(&d);
}

/* Inode numbers of path.1 to path.3, 0 for a missing file. */
static void rotated_inodes(const struct rot_dir *d, ino_t ino[3])
{
    char name[128];
    struct stat st;

    for (unsigned k = 1; k <= 3; k++) {
        snprintf(name, sizeof name, "%s.%u", d->path, k);
        ino[k - 1] = stat(name, &st) == 0 ? st.st_ino : 0;
    }
}

/* events.jsonl deleted under the writer: at the limit a new file takes
 * the next lines, and the rotated files stay as they were. Rotating as
 * usual would fail to rename the missing file after every shift, delete
 * one rotated file each time and leave the events in the deleted file. */
static void path_gone_run(void *arg)
{
    const struct vigil_event_rotation rot = {.max_bytes = 4096, .keep = 3};
    const struct rot_dir *d = arg;
    struct vigil_event_sink *sink;
    ino_t before[3], after[3];
    uint64_t id;
    size_t n = 0;

    assert_int_equal(vigil_event_sink_open_rotating(d->path, 4000, &rot, &sink), VIGIL_OK);
    emit_ids(sink, 1, 200);
    wait_written(sink, 200);
    rotated_inodes(d, before);
    assert_true(before[2] != 0);
    assert_int_equal(unlink(d->path), 0);
    /* One line at a time until the limit brings a new file: about 4096
     * bytes of lines of some 160 bytes. */
    for (id = 201; id < 240 && access(d->path, F_OK) != 0; id++) {
        emit_ids(sink, id, 1);
        wait_written(sink, id);
    }
    vigil_event_sink_close(sink);

    rotated_inodes(d, after);
    assert_memory_equal(before, after, sizeof before);
    assert_true(read_ids(d->path, rot_ids, 4000, &n) > 0);
    assert_int_equal(n, 1);
    assert_int_equal(rot_ids[0], id - 1);
}

static void test_sink_rotation_path_gone(void **state)
{
    struct rot_dir d;
    char logged[8192];

    (void)state;
    rot_dir_make(&d);
    capture_log(path_gone_run, &d, logged, sizeof logged);
    assert_int_equal(count_text(logged, "was deleted or moved away; writing to a new one"), 1);
    assert_null(strstr(logged, "rotating"));
    rot_dir_remove(&d);
}

/* No descriptor left for the new file (a connection flood): the rotation
 * fails before any rename, so every rotated file stays, the lines go on
 * into the current file, and rotation resumes once a descriptor is free. */
static void no_descriptor_run(void *arg)
{
    const struct vigil_event_rotation rot = {.max_bytes = 4096, .keep = 3};
    const struct rot_dir *d = arg;
    struct vigil_event_sink *sink;
    ino_t before[3], after[3];
    struct rlimit old, cap;
    int lowest;
    size_t n = 0;

    assert_int_equal(vigil_event_sink_open_rotating(d->path, 4000, &rot, &sink), VIGIL_OK);
    emit_ids(sink, 1, 200);
    wait_written(sink, 200);
    rotated_inodes(d, before);
    assert_true(before[2] != 0);

    lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    cap = old;
    cap.rlim_cur = (rlim_t)lowest;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &cap), 0);
    for (int i = 0; i < 3; i++) {
        emit_ids(sink, 201 + (uint64_t)i * 20, 20);
        wait_written(sink, 220 + (uint64_t)i * 20);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    rotated_inodes(d, after);
    assert_memory_equal(before, after, sizeof before);
    assert_false(exists(d->path, ".new"));
    assert_true(read_ids(d->path, rot_ids, 4000, &n) > 4096);

    emit_ids(sink, 261, 40);
    vigil_event_sink_close(sink);
    rotated_inodes(d, after);
    assert_true(after[0] != before[0]);
    assert_false(exists(d->path, ".new"));
}

static void test_sink_rotation_no_descriptor(void **state)
{
    struct rot_dir d;
    char logged[8192];

    (void)state;
    rot_dir_make(&d);
    capture_log(no_descriptor_run, &d, logged, sizeof logged);
    assert_int_equal(count_text(logged, "event sink: rotating"), 2);
    assert_non_null(strstr(logged, "events.jsonl.new: Too many open files); appending to it"));
    assert_non_null(strstr(logged, "works again"));
    rot_dir_remove(&d);
}

/* A reopen request (SIGHUP after logrotate moved the file) sends the next
 * lines to a new file at the path. When the path cannot be opened, they
 * go on into the old file. */
static void test_sink_reopen(void **state)
{
    const struct vigil_event_rotation off = {0};
    struct vigil_event_sink *sink;
    struct rot_dir d;
    char moved[128];
    size_t n = 0;

    (void)state;
    rot_dir_make(&d);
    snprintf(moved, sizeof moved, "%s.moved", d.path);
    assert_int_equal(vigil_event_sink_open_rotating(d.path, 4000, &off, &sink), VIGIL_OK);
    emit_ids(sink, 1, 10);
    wait_written(sink, 10);
    assert_int_equal(rename(d.path, moved), 0);
    vigil_event_sink_reopen(sink);
    for (int i = 0; i < 5000 && access(d.path, F_OK) != 0; i++)
        usleep(1000);
    assert_int_equal(access(d.path, F_OK), 0);
    emit_ids(sink, 11, 5);
    wait_written(sink, 15);

    /* A directory now has the file's name, so the reopen fails. */
    assert_int_equal(unlink(moved), 0);
    assert_int_equal(rename(d.path, moved), 0);
    assert_int_equal(mkdir(d.path, 0700), 0);
    vigil_event_sink_reopen(sink);
    emit_ids(sink, 16, 5);
    vigil_event_sink_close(sink);
    assert_int_equal(rmdir(d.path), 0);

    assert_true(read_ids(moved, rot_ids, 4000, &n) > 0);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rot_ids[i], i + 11);
    rot_dir_remove(&d);
}

static void test_sink_open_errors(void **state)
{
    struct vigil_event_sink *sink = (void *)1;

    (void)state;
    assert_int_equal(vigil_event_sink_open("/nonexistent-dir/x.jsonl", 4, &sink), VIGIL_ERR_IO);
    assert_null(sink);
    assert_int_equal(vigil_event_sink_open("/tmp/unused.jsonl", 0, &sink), VIGIL_ERR_INVALID);
    assert_int_equal(vigil_event_sink_open_rotating(
                         "/tmp/unused.jsonl", 4, &(struct vigil_event_rotation){4096, 0}, &sink),
                     VIGIL_ERR_INVALID);
    assert_int_equal(vigil_event_sink_open_rotating(
                         "/tmp/unused.jsonl", 4,
                         &(struct vigil_event_rotation){4096, VIGIL_EVENT_KEEP_MAX + 1}, &sink),
                     VIGIL_ERR_INVALID);
    assert_int_equal(access("/tmp/unused.jsonl", F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_minimal_event),
        cmocka_unit_test(test_json_timestamps),
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_observed_flag),
        cmocka_unit_test(test_json_publish_fields),
        cmocka_unit_test(test_json_malformed_fields),
        cmocka_unit_test(test_json_hostile_strings),
        cmocka_unit_test(test_json_control_escape_form),
        cmocka_unit_test(test_json_worst_case_fits),
        cmocka_unit_test(test_json_small_buffer),
        cmocka_unit_test(test_set_truncates),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_sink_drops_when_full),
        cmocka_unit_test(test_sink_close_drains),
        cmocka_unit_test(test_sink_writer_yields),
        cmocka_unit_test(test_sink_appends),
        cmocka_unit_test(test_sink_order_across_blocks),
        cmocka_unit_test(test_sink_order_while_emitting),
        cmocka_unit_test(test_sink_open_memory),
        cmocka_unit_test(test_sink_batch_capped),
        cmocka_unit_test(test_sink_write_failure),
        cmocka_unit_test(test_sink_ends_cut_line_at_open),
        cmocka_unit_test(test_sink_trickle_batched),
        cmocka_unit_test(test_sink_write_recovers),
        cmocka_unit_test(test_sink_write_recovers_rotating),
        cmocka_unit_test(test_sink_memory_follows_backlog),
        cmocka_unit_test(test_sink_concurrent_emitters),
        cmocka_unit_test(test_sink_held_events_count),
        cmocka_unit_test(test_sink_block_failure_drops),
        cmocka_unit_test(test_sink_rotates_at_line_boundaries),
        cmocka_unit_test(test_sink_rotation_keeps_files),
        cmocka_unit_test(test_sink_rotation_off),
        cmocka_unit_test(test_sink_rotation_counts_existing),
        cmocka_unit_test(test_sink_rotation_rename_failure),
        cmocka_unit_test(test_sink_rotation_path_gone),
        cmocka_unit_test(test_sink_rotation_no_descriptor),
        cmocka_unit_test(test_sink_reopen),
        cmocka_unit_test(test_sink_open_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
