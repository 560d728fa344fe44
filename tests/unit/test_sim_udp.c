/* Tests of the simulator's UDP device helpers: addresses, PSK hex, topic
 * base expansion, SenML packs, the shared sampler, and a plain UDP link
 * on a real loopback socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include <uv.h>

#include "sim/sampler.h"
#include "sim/udp_fleet_internal.h"
#include "sim/udp_link.h"
#include "sim/udp_link_dtls.h"

/* ---- Addresses ---------------------------------------------------------- */

static void address_forms(void **state)
{
    struct sockaddr_storage ss;
    char text[64];

    (void)state;
    assert_int_equal(sim_link_parse_address("127.0.0.1:5683", 1, &ss), VIGIL_OK);
    assert_int_equal(ss.ss_family, AF_INET);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "127.0.0.1:5683");
    assert_int_equal(sim_link_parse_address("[::1]:5684", 1, &ss), VIGIL_OK);
    assert_int_equal(ss.ss_family, AF_INET6);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "[::1]:5684");
    assert_int_equal(sim_link_parse_address("::1", 1885, &ss), VIGIL_OK);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "[::1]:1885");
    assert_int_equal(sim_link_parse_address("[fe80::1]", 7, &ss), VIGIL_OK);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "[fe80::1]:7");
    assert_int_equal(sim_link_parse_address("localhost:1884", 1, &ss), VIGIL_OK);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "127.0.0.1:1884");
    assert_int_equal(sim_link_parse_address("10.0.0.1", 5683, &ss), VIGIL_OK);
    sim_link_format_address((struct sockaddr *)&ss, text, sizeof text);
    assert_string_equal(text, "10.0.0.1:5683");
}

static void address_rejects(void **state)
{
    static const char *bad[] = {
        "", ":5683", "hub.example:5683", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:",
        "127.0.0.1:x", "[::1", "[::1]x", "[::1]:", "[127.0.0.1]:5683", "1.2.3:5", "[]:5",
        "127.0.0.1:+5", "127.0.0.1:5 ",
    };
    struct sockaddr_storage ss;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (sim_link_parse_address(bad[i], 5683, &ss) != VIGIL_ERR_INVALID)
            fail_msg("address '%s' was accepted", bad[i]);
    }
}

static void psk_hex(void **state)
{
    uint8_t key[4];

    (void)state;
    assert_int_equal(sim_dtls_hex_decode("00ff7A", key, sizeof key), 3);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[1], 0xff);
    assert_int_equal(key[2], 0x7a);
    assert_int_equal(sim_dtls_hex_decode("", key, sizeof key), 0);
    assert_int_equal(sim_dtls_hex_decode("abc", key, sizeof key), 0);
    assert_int_equal(sim_dtls_hex_decode("zz", key, sizeof key), 0);
    assert_int_equal(sim_dtls_hex_decode("0011223344", key, sizeof key), 0);
}

/* ---- Topics and payloads ------------------------------------------------ */

static void topic_base_expansion(void **state)
{
    char out[128];

    (void)state;
    assert_int_equal(simudp_expand_topic_base("hospital/%u/%t/%d/", "icu3", "wearable",
                                              "wear-0001", out, sizeof out),
                     strlen("hospital/icu3/wearable/wear-0001/"));
    assert_string_equal(out, "hospital/icu3/wearable/wear-0001/");
    simudp_expand_topic_base("%u/%t/%d/", "", NULL, "d", out, sizeof out);
    assert_string_equal(out, "unassigned/device/d/");
    assert_int_equal(simudp_expand_topic_base("a/%x/", "u", "t", "d", out, sizeof out), 0);
    assert_int_equal(simudp_expand_topic_base("a/%", "u", "t", "d", out, sizeof out), 0);
    assert_int_equal(simudp_expand_topic_base("hospital/%d/", "u", "t", "wear-0001", out, 12), 0);
    assert_int_equal(simudp_expand_topic_base("ab", "u", "t", "d", out, 3), 2);
    assert_int_equal(simudp_expand_topic_base("abc", "u", "t", "d", out, 3), 0);
}

static json_t *parse_json(const char *text, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);

    assert_non_null(root);
    return root;
}

static void senml_pack_records(void **state)
{
    static const enum vital metrics[] = {VITAL_HR, VITAL_SPO2, VITAL_RESP};
    double values[VITAL_COUNT];
    char out[512];
    json_t *root, *rec;
    size_t n;

    (void)state;
    for (int i = 0; i < VITAL_COUNT; i++)
        values[i] = NAN;
    values[VITAL_HR] = 72;
    values[VITAL_SPO2] = 97;
    values[VITAL_RESP] = 16;
    n = simudp_senml_pack(out, sizeof out, "wear-0001/", 1767225600.5, values, metrics, 3);
    assert_int_equal(n, strlen(out));
    root = parse_json(out, n);
    assert_int_equal(json_array_size(root), 3);
    rec = json_array_get(root, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "bn")), "wear-0001/");
    assert_true(json_number_value(json_object_get(rec, "bt")) == 1767225600.5);
    assert_string_equal(json_string_value(json_object_get(rec, "n")), "heart_rate");
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "beat/min");
    assert_true(json_number_value(json_object_get(rec, "v")) == 72);
    rec = json_array_get(root, 1);
    assert_null(json_object_get(rec, "bn"));
    assert_null(json_object_get(rec, "bt"));
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "/");
    assert_true(fabs(json_number_value(json_object_get(rec, "v")) - 0.97) < 1e-9);
    rec = json_array_get(root, 2);
    assert_string_equal(json_string_value(json_object_get(rec, "n")), "resp_rate");
    assert_string_equal(json_string_value(json_object_get(rec, "u")), "1/min");
    json_decref(root);
}

static void senml_pack_gaps(void **state)
{
    static const enum vital metrics[] = {VITAL_HR, VITAL_SPO2};
    double values[VITAL_COUNT];
    char out[512];
    json_t *root;
    size_t n;

    (void)state;
    for (int i = 0; i < VITAL_COUNT; i++)
        values[i] = NAN;
    assert_int_equal(simudp_senml_pack(out, sizeof out, "d/", 1.0, values, metrics, 2), 0);
    /* The first record with a value carries the base fields. */
    values[VITAL_SPO2] = 91;
    n = simudp_senml_pack(out, sizeof out, "d/", 1.0, values, metrics, 2);
    root = parse_json(out, n);
    assert_int_equal(json_array_size(root), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(root, 0), "bn")), "d/");
    json_decref(root);
    assert_int_equal(simudp_senml_pack(out, 20, "d/", 1.0, values, metrics, 2), 0);
    assert_int_equal(simudp_senml_pack(out, sizeof out, "d/", NAN, values, metrics, 2), 0);
}

/* ---- Sampler ------------------------------------------------------------ */

struct sample_log {
    int samples;
    int temperatures;
    double last_t;
    double hr[8];
};

static void log_sample(void *user, double t, const double values[VITAL_COUNT])
{
    struct sample_log *l = user;

    if (l->samples < 8)
        l->hr[l->samples] = values[VITAL_HR];
    l->samples++;
    l->temperatures += isnan(values[VITAL_TEMP]) ? 0 : 1;
    l->last_t = t;
}

static const struct sampler_hooks log_hooks = {log_sample, NULL};

static void sampler_model_clock(void **state)
{
    struct sampler s;
    struct sample_log a = {0};

    (void)state;
    sampler_init(&s, NULL, 1, 0, 1);
    assert_true(sampler_period(&s) == 1.0);
    assert_string_equal(sampler_source_name(&s), "model");
    sampler_advance(&s, 0.5, 10, &log_hooks, &a);
    assert_int_equal(a.samples, 0);
    sampler_advance(&s, 20.0, 10, &log_hooks, &a);
    /* Samples at 1, 2, ..., 20; temperature at 1 and 11. */
    assert_int_equal(a.samples, 20);
    assert_int_equal(a.temperatures, 2);
    assert_true(a.last_t == 20.0);
}

static void sampler_deterministic(void **state)
{
    struct sampler s1, s2, s3;
    struct sample_log a = {0}, b = {0}, c = {0};

    (void)state;
    sampler_init(&s1, NULL, 9, 3, 10);
    sampler_init(&s2, NULL, 9, 3, 10);
    sampler_init(&s3, NULL, 9, 4, 10);
    sampler_advance(&s1, 8, 10, &log_hooks, &a);
    sampler_advance(&s2, 8, 10, &log_hooks, &b);
    sampler_advance(&s3, 8, 10, &log_hooks, &c);
    assert_memory_equal(a.hr, b.hr, sizeof a.hr);
    assert_memory_not_equal(a.hr, c.hr, sizeof a.hr);
}

static void sampler_skips_old_samples(void **state)
{
    struct sampler s;
    struct sample_log a = {0};

    (void)state;
    sampler_init(&s, NULL, 1, 0, 1);
    sampler_advance(&s, 100000.0, 10, &log_hooks, &a);
    assert_true(a.samples <= SAMPLER_MAX_CATCH_UP + 1);
    assert_true(a.last_t == 100000.0);
}

static void sampler_recording_offsets(void **state)
{
    float values[4 * VITAL_COUNT];
    struct recording rec = {0};
    struct recording_set set = {0};
    struct sampler s0, s1;

    (void)state;
    for (size_t i = 0; i < 4 * VITAL_COUNT; i++)
        values[i] = NAN;
    rec.name = "r.csv";
    rec.period_s = 1.0;
    rec.n_rows = 4;
    rec.values = values;
    set.items = &rec;
    set.n = 1;
    sampler_init(&s0, &set, 1, 0, 2);
    sampler_init(&s1, &set, 1, 1, 2);
    /* Two devices share one recording: the second starts half-way. */
    assert_int_equal(s0.row_offset, 0);
    assert_int_equal(s1.row_offset, 2);
    assert_string_equal(sampler_source_name(&s1), "r.csv");
}

/* ---- A plain UDP link against a loopback echo socket -------------------- */

struct link_test {
    uv_loop_t loop;
    uv_udp_t echo;
    uv_timer_t guard;
    struct sim_link *link;
    int ups, downs, datagrams, closed;
    bool last_was_up;
    char received[64];
};

static void echo_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static char storage[2048];

    (void)h;
    (void)size;
    *buf = uv_buf_init(storage, sizeof storage);
}

static void echo_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                      unsigned flags)
{
    uv_buf_t out;

    (void)flags;
    if (n <= 0 || from == NULL)
        return;
    out = uv_buf_init(buf->base, (unsigned)n);
    uv_udp_try_send(u, &out, 1, from);
}

static void link_up(struct sim_link *l, void *user)
{
    struct link_test *t = user;

    t->ups++;
    assert_int_equal(sim_link_send(l, (const uint8_t *)"ping", 4), VIGIL_OK);
}

static void link_down(struct sim_link *l, void *user, bool was_up, const char *why)
{
    struct link_test *t = user;

    (void)l;
    (void)why;
    t->downs++;
    t->last_was_up = was_up;
}

static void link_closed(void *arg)
{
    ((struct link_test *)arg)->closed++;
}

static void stop_all(struct link_test *t)
{
    uv_timer_stop(&t->guard);
    uv_close((uv_handle_t *)&t->guard, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->echo))
        uv_close((uv_handle_t *)&t->echo, NULL);
    sim_link_close(t->link, link_closed, t);
}

static void link_datagram(struct sim_link *l, void *user, const uint8_t *data, size_t len)
{
    struct link_test *t = user;

    (void)l;
    t->datagrams++;
    memcpy(t->received, data, len < sizeof t->received - 1 ? len : sizeof t->received - 1);
    stop_all(t);
}

static void guard_expired(uv_timer_t *timer)
{
    stop_all(timer->data);
}

static const struct sim_link_callbacks test_callbacks = {link_up, link_down, link_datagram};

static void plain_link_echo(void **state)
{
    struct link_test *t = test_calloc(1, sizeof *t);
    struct sockaddr_in bind_addr;
    struct sockaddr_storage addr;
    struct sim_link_options o;
    int len = sizeof addr;

    (void)state;
    assert_int_equal(uv_loop_init(&t->loop), 0);
    uv_ip4_addr("127.0.0.1", 0, &bind_addr);
    assert_int_equal(uv_udp_init(&t->loop, &t->echo), 0);
    assert_int_equal(uv_udp_bind(&t->echo, (const struct sockaddr *)&bind_addr, 0), 0);
    assert_int_equal(uv_udp_getsockname(&t->echo, (struct sockaddr *)&addr, &len), 0);
    uv_udp_recv_start(&t->echo, echo_alloc, echo_recv);
    uv_timer_init(&t->loop, &t->guard);
    t->guard.data = t;
    uv_timer_start(&t->guard, guard_expired, 5000, 0);

    memset(&o, 0, sizeof o);
    o.loop = &t->loop;
    o.addr = (const struct sockaddr *)&addr;
    o.identity = "wear-0001";
    o.cb = &test_callbacks;
    o.user = t;
    o.seed = 1;
    assert_int_equal(sim_link_create(&o, &t->link), VIGIL_OK);
    assert_false(sim_link_is_up(t->link));
    assert_false(sim_link_is_dtls(t->link));
    sim_link_start(t->link);
    uv_run(&t->loop, UV_RUN_DEFAULT);

    assert_int_equal(t->ups, 1);
    assert_int_equal(t->downs, 0);
    assert_int_equal(t->datagrams, 1);
    assert_string_equal(t->received, "ping");
    assert_int_equal(t->closed, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    test_free(t);
}

static void plain_link_unreachable(void **state)
{
    struct link_test *t = test_calloc(1, sizeof *t);
    struct sockaddr_storage addr;
    struct sim_link_options o;
    uv_udp_t probe;
    struct sockaddr_in any;
    int len = sizeof addr;

    (void)state;
    assert_int_equal(uv_loop_init(&t->loop), 0);
    /* A port that was just free: nothing listens, so the kernel replies
     * with ICMP port unreachable. */
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_udp_init(&t->loop, &probe);
    uv_udp_bind(&probe, (const struct sockaddr *)&any, 0);
    uv_udp_getsockname(&probe, (struct sockaddr *)&addr, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_udp_init(&t->loop, &t->echo);
    uv_timer_init(&t->loop, &t->guard);
    t->guard.data = t;
    uv_timer_start(&t->guard, guard_expired, 300, 0);

    memset(&o, 0, sizeof o);
    o.loop = &t->loop;
    o.addr = (const struct sockaddr *)&addr;
    o.identity = "sens-0001";
    o.cb = &test_callbacks;
    o.user = t;
    o.seed = 1;
    assert_int_equal(sim_link_create(&o, &t->link), VIGIL_OK);
    sim_link_start(t->link);
    uv_run(&t->loop, UV_RUN_DEFAULT);

    assert_int_equal(t->ups, 1);
    assert_int_equal(t->downs, 1);
    assert_true(t->last_was_up);
    assert_int_equal(t->datagrams, 0);
    assert_int_equal(t->closed, 1);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    test_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(address_forms),
        cmocka_unit_test(address_rejects),
        cmocka_unit_test(psk_hex),
        cmocka_unit_test(topic_base_expansion),
        cmocka_unit_test(senml_pack_records),
        cmocka_unit_test(senml_pack_gaps),
        cmocka_unit_test(sampler_model_clock),
        cmocka_unit_test(sampler_deterministic),
        cmocka_unit_test(sampler_skips_old_samples),
        cmocka_unit_test(sampler_recording_offsets),
        cmocka_unit_test(plain_link_echo),
        cmocka_unit_test(plain_link_unreachable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
