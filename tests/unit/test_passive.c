/* Tests for passive analysis: link types, IPv4 and IPv6 parsing, and
 * synthetic captures written here whose MQTT exchanges must give the same
 * events the broker emits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "passive/passive.h"

/* ---- Frame builders ---- */

struct endpoint {
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* Writes an IP packet with a TCP segment; returns its length. */
static size_t build_ip_tcp(uint8_t *out, const struct endpoint *src, const struct endpoint *dst,
                           uint32_t seq, uint8_t flags, const uint8_t *payload, size_t n)
{
    size_t ip_len = src->family == 4 ? 20 : 40;
    uint8_t *tcp = out + ip_len;

    memset(out, 0, ip_len + 20);
    if (src->family == 4) {
        out[0] = 0x45;
        put16(out + 2, (uint16_t)(20 + 20 + n));
        out[8] = 64;
        out[9] = 6;
        memcpy(out + 12, src->ip, 4);
        memcpy(out + 16, dst->ip, 4);
    } else {
        out[0] = 0x60;
        put16(out + 4, (uint16_t)(20 + n));
        out[6] = 6;
        out[7] = 64;
        memcpy(out + 8, src->ip, 16);
        memcpy(out + 24, dst->ip, 16);
    }
    put16(tcp, src->port);
    put16(tcp + 2, dst->port);
    put32(tcp + 4, seq);
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    if (n > 0)
        memcpy(tcp + 20, payload, n);
    return ip_len + 20 + n;
}

/* A classic little-endian pcap file in memory. */
struct capture {
    uint8_t data[1 << 17];
    size_t len;
    int link;
};

static void capture_put(struct capture *c, const void *p, size_t n)
{
    assert_true(c->len + n <= sizeof c->data);
    memcpy(c->data + c->len, p, n);
    c->len += n;
}

static void capture_init(struct capture *c, int link)
{
    uint32_t hdr[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, (uint32_t)link};

    c->len = 0;
    c->link = link;
    capture_put(c, hdr, sizeof hdr);
}

static void capture_frame(struct capture *c, int64_t ts_us, const uint8_t *frame, size_t n)
{
    uint32_t rec[4] = {(uint32_t)(ts_us / 1000000), (uint32_t)(ts_us % 1000000), (uint32_t)n,
                       (uint32_t)n};

    capture_put(c, rec, sizeof rec);
    capture_put(c, frame, n);
}

/* Wraps an IP packet in the link header of the capture's link type. */
static size_t link_wrap(int link, uint8_t *out, const uint8_t *ip, size_t n, uint8_t family)
{
    uint16_t ethertype = family == 4 ? 0x0800 : 0x86DD;
    size_t h = 0;

    switch (link) {
    case PASSIVE_LINK_ETHERNET:
        memset(out, 0xAA, 12);
        put16(out + 12, ethertype);
        h = 14;
        break;
    case PASSIVE_LINK_SLL:
        memset(out, 0, 14);
        put16(out + 14, ethertype);
        h = 16;
        break;
    case PASSIVE_LINK_SLL2:
        memset(out, 0, 20);
        put16(out, ethertype);
        h = 20;
        break;
    case PASSIVE_LINK_NULL:
        out[0] = family == 4 ? 2 : 30;
        out[1] = out[2] = out[3] = 0;
        h = 4;
        break;
    default:
        break;
    }
    memcpy(out + h, ip, n);
    return h + n;
}

/* One TCP connection written into a capture, with sequence numbers kept. */
struct tconn {
    struct capture *cap;
    struct endpoint client, server;
    uint32_t seq[2];  /* next sequence number: client, server */
    int64_t ts;
};

static void tconn_send(struct tconn *t, int from_server, uint8_t flags, const uint8_t *p, size_t n)
{
    uint8_t ip[2048], frame[2100];
    const struct endpoint *src = from_server ? &t->server : &t->client;
    const struct endpoint *dst = from_server ? &t->client : &t->server;
    size_t len = build_ip_tcp(ip, src, dst, t->seq[from_server], flags, p, n);

    len = link_wrap(t->cap->link, frame, ip, len, src->family);
    capture_frame(t->cap, t->ts, frame, len);
    t->ts += 1000;
    t->seq[from_server] += (uint32_t)n + ((flags & (PASSIVE_TCP_SYN | PASSIVE_TCP_FIN)) ? 1 : 0);
}

static void tconn_open(struct tconn *t, struct capture *cap, uint8_t family, uint8_t last_octet,
                       uint16_t client_port, int64_t ts)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->client.family = t->server.family = family;
    if (family == 4) {
        memcpy(t->client.ip, (uint8_t[]){192, 0, 2, last_octet}, 4);
        memcpy(t->server.ip, (uint8_t[]){192, 0, 2, 1}, 4);
    } else {
        memcpy(t->client.ip, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8}, 4);
        t->client.ip[15] = last_octet;
        memcpy(t->server.ip, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8}, 4);
        t->server.ip[15] = 1;
    }
    t->client.port = client_port;
    t->server.port = 1883;
    t->seq[0] = 1000;
    t->seq[1] = 90000;
    t->ts = ts;
    tconn_send(t, 0, PASSIVE_TCP_SYN, NULL, 0);
    tconn_send(t, 1, PASSIVE_TCP_SYN | PASSIVE_TCP_ACK, NULL, 0);
    tconn_send(t, 0, PASSIVE_TCP_ACK, NULL, 0);
}

#define SEND(t, from_server, ...)                                                           \
    do {                                                                                    \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                      \
        tconn_send((t), (from_server), PASSIVE_TCP_ACK, bytes_, sizeof bytes_);             \
    } while (0)

/* MQTT 3.1.1 CONNECT of client id "dev1" with keep-alive 60 s. */
#define CONNECT_DEV1 0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 4, 'd', 'e', 'v', '1'
#define CONNACK(code) 0x20, 2, 0, (code)
#define SUBSCRIBE_AB 0x82, 8, 0, 1, 0, 3, 'a', '/', 'b', 1
#define PUBLISH_AB_QOS1 0x32, 9, 0, 3, 'a', '/', 'b', 0, 2, '4', '2'
#define DISCONNECT 0xE0, 0

/* ---- Event collection ---- */

struct events {
    struct vigil_event ev[64];
    size_t n;
    int ticks;
};

static void on_event(void *ctx, const struct vigil_event *ev)
{
    struct events *e = ctx;

    if (e->n < 64)
        e->ev[e->n++] = *ev;
}

static void on_tick(void *ctx, int64_t now_us)
{
    ((struct events *)ctx)->ticks++;
}

static void analyse(struct capture *cap, struct events *e, struct passive_stats *stats)
{
    struct passive_config cfg;
    struct passive *p;
    char err[256];
    FILE *fp = fmemopen(cap->data, cap->len, "rb");

    assert_non_null(fp);
    memset(e, 0, sizeof *e);
    passive_config_defaults(&cfg);
    assert_int_equal(passive_new(&cfg, on_event, on_tick, e, &p), VIGIL_OK);
    assert_int_equal(passive_read_stream(p, fp, err, sizeof err), VIGIL_OK);
    if (stats != NULL)
        *stats = *passive_get_stats(p);
    passive_free(p);
}

static const struct vigil_event *find(const struct events *e, enum vigil_event_type type, int nth)
{
    for (size_t i = 0; i < e->n; i++)
        if (e->ev[i].type == type && nth-- == 0)
            return &e->ev[i];
    return NULL;
}

static size_t count(const struct events *e, enum vigil_event_type type)
{
    size_t n = 0;

    for (size_t i = 0; i < e->n; i++)
        n += e->ev[i].type == type;
    return n;
}

/* ---- Tests ---- */

static void test_session_events(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;
    const struct vigil_event *ev;

    capture_init(&cap, PASSIVE_LINK_ETHERNET);
    tconn_open(&t, &cap, 4, 10, 40000, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(0));
    SEND(&t, 0, SUBSCRIBE_AB);
    SEND(&t, 1, 0x90, 3, 0, 1, 1);
    SEND(&t, 0, PUBLISH_AB_QOS1);
    SEND(&t, 1, 0x40, 2, 0, 2);
    SEND(&t, 0, DISCONNECT);
    tconn_send(&t, 0, PASSIVE_TCP_FIN | PASSIVE_TCP_ACK, NULL, 0);
    tconn_send(&t, 1, PASSIVE_TCP_FIN | PASSIVE_TCP_ACK, NULL, 0);
    analyse(&cap, &e, NULL);

    assert_int_equal(e.n, 5);
    assert_int_equal(e.ev[0].type, VIGIL_EV_CONNECT_ATTEMPT);
    assert_string_equal(e.ev[0].peer, "192.0.2.10:40000");
    assert_int_equal(e.ev[0].ts_us, 1700000000000000);
    assert_int_equal(e.ev[1].type, VIGIL_EV_AUTH_SUCCESS);
    assert_string_equal(e.ev[1].client_id, "dev1");
    assert_string_equal(e.ev[1].device, "dev1");
    assert_int_equal(e.ev[1].keep_alive, 60);
    assert_int_equal(e.ev[1].proto, VIGIL_PROTO_MQTT311);
    ev = find(&e, VIGIL_EV_SUBSCRIBE, 0);
    assert_non_null(ev);
    assert_string_equal(ev->topic, "a/b");
    assert_int_equal(ev->qos, 1);
    ev = find(&e, VIGIL_EV_PUBLISH, 0);
    assert_non_null(ev);
    assert_string_equal(ev->topic, "a/b");
    assert_int_equal(ev->qos, 1);
    assert_int_equal(ev->size, 2);
    assert_false(ev->retain);
    ev = &e.ev[4];
    assert_int_equal(ev->type, VIGIL_EV_DISCONNECT);
    assert_string_equal(ev->detail, "client sent DISCONNECT");
}

static void test_auth_failure_codes(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;
    const struct vigil_event *ev;

    capture_init(&cap, PASSIVE_LINK_SLL);
    tconn_open(&t, &cap, 4, 11, 40001, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(4));
    tconn_send(&t, 1, PASSIVE_TCP_RST, NULL, 0);
    tconn_open(&t, &cap, 4, 12, 40002, 1700000001000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(5));
    analyse(&cap, &e, NULL);

    ev = find(&e, VIGIL_EV_AUTH_FAILURE, 0);
    assert_non_null(ev);
    assert_int_equal(ev->reason_code, 4);
    assert_string_equal(ev->detail, "bad user name or password");
    ev = find(&e, VIGIL_EV_AUTH_FAILURE, 1);
    assert_non_null(ev);
    assert_int_equal(ev->reason_code, 5);
    assert_string_equal(ev->detail, "not authorized");
    ev = find(&e, VIGIL_EV_DISCONNECT, 0);
    assert_non_null(ev);
    assert_string_equal(ev->detail, "connection reset");
    assert_int_equal(count(&e, VIGIL_EV_CONNECT_ATTEMPT), 2);
}

static void test_malformed_publish(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;
    struct passive_stats st;
    const struct vigil_event *ev;

    capture_init(&cap, PASSIVE_LINK_SLL2);
    tconn_open(&t, &cap, 4, 13, 40003, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(0));
    SEND(&t, 0, 0x30, 6, 0, 3, 'a', '/', '+', 'x');  /* wildcard in a PUBLISH topic */
    SEND(&t, 0, PUBLISH_AB_QOS1);
    analyse(&cap, &e, &st);

    ev = find(&e, VIGIL_EV_MALFORMED, 0);
    assert_non_null(ev);
    assert_non_null(ev->rule);
    assert_true(strstr(ev->detail, "PUBLISH") != NULL);
    assert_int_equal(st.malformed, 1);
    /* Decoding goes on with the next packet. */
    assert_non_null(find(&e, VIGIL_EV_PUBLISH, 0));
}

static void test_ipv6_null_link(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;

    capture_init(&cap, PASSIVE_LINK_NULL);
    tconn_open(&t, &cap, 6, 20, 40004, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(0));
    analyse(&cap, &e, NULL);

    assert_int_equal(count(&e, VIGIL_EV_AUTH_SUCCESS), 1);
    assert_string_equal(e.ev[0].peer, "[2001:db8::14]:40004");
}

static void test_connect_timeout_limit(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t, other;
    const struct vigil_event *ev;

    capture_init(&cap, PASSIVE_LINK_RAW);
    tconn_open(&t, &cap, 4, 14, 40005, 1700000000000000);
    /* Another connection moves capture time past the connect timeout. */
    tconn_open(&other, &cap, 4, 15, 40006, 1700000011000000);
    analyse(&cap, &e, NULL);

    ev = find(&e, VIGIL_EV_LIMIT, 0);
    assert_non_null(ev);
    assert_string_equal(ev->peer, "192.0.2.14:40005");
    assert_int_equal(ev->ts_us, 1700000010000000);
    assert_int_equal(count(&e, VIGIL_EV_LIMIT), 1);
    assert_true(e.ticks >= 11);
}

static void test_pipelined_before_connack(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;

    capture_init(&cap, PASSIVE_LINK_ETHERNET);
    tconn_open(&t, &cap, 4, 16, 40007, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1, PUBLISH_AB_QOS1);
    SEND(&t, 1, CONNACK(0));
    analyse(&cap, &e, NULL);

    assert_int_equal(e.n, 3);
    assert_int_equal(e.ev[1].type, VIGIL_EV_AUTH_SUCCESS);
    assert_int_equal(e.ev[2].type, VIGIL_EV_PUBLISH);
}

/* A PUBLISH split over two segments that arrive in reverse order, with a
 * retransmission of the first. */
static void test_reordered_segments(void **state)
{
    static struct capture cap;
    static const uint8_t pub[] = {PUBLISH_AB_QOS1};
    uint8_t ip[256], frame[300];
    struct events e;
    struct tconn t;
    struct passive_stats st;
    size_t n;

    capture_init(&cap, PASSIVE_LINK_ETHERNET);
    tconn_open(&t, &cap, 4, 17, 40008, 1700000000000000);
    SEND(&t, 0, CONNECT_DEV1);
    SEND(&t, 1, CONNACK(0));
    n = build_ip_tcp(ip, &t.client, &t.server, t.seq[0] + 4, PASSIVE_TCP_ACK, pub + 4, 7);
    n = link_wrap(cap.link, frame, ip, n, 4);
    capture_frame(&cap, t.ts, frame, n);
    tconn_send(&t, 0, PASSIVE_TCP_ACK, pub, 4);
    t.seq[0] -= 4;
    tconn_send(&t, 0, PASSIVE_TCP_ACK, pub, 4);
    analyse(&cap, &e, &st);

    assert_int_equal(count(&e, VIGIL_EV_PUBLISH), 1);
    assert_string_equal(find(&e, VIGIL_EV_PUBLISH, 0)->topic, "a/b");
    assert_int_equal(st.retransmissions, 1);
    assert_int_equal(st.gaps, 0);
}

/* A flow joined in the middle: the first segment starts inside a packet
 * and is skipped; decoding starts at the next packet boundary. */
static void test_midstream_resync(void **state)
{
    static struct capture cap;
    struct events e;
    struct tconn t;
    struct passive_stats st;

    capture_init(&cap, PASSIVE_LINK_ETHERNET);
    memset(&t, 0, sizeof t);
    t.cap = &cap;
    t.client = (struct endpoint){4, {192, 0, 2, 18}, 40009};
    t.server = (struct endpoint){4, {192, 0, 2, 1}, 1883};
    t.seq[0] = 5000;
    t.ts = 1700000000000000;
    SEND(&t, 0, 'b', 0, 2, '4', '2');
    SEND(&t, 0, PUBLISH_AB_QOS1);
    analyse(&cap, &e, &st);

    assert_int_equal(e.ev[0].type, VIGIL_EV_CONNECT_ATTEMPT);
    assert_int_equal(count(&e, VIGIL_EV_PUBLISH), 1);
    assert_int_equal(st.skipped_bytes, 5);
    assert_int_equal(count(&e, VIGIL_EV_MALFORMED), 0);
}

static void test_parse_link_types(void **state)
{
    struct endpoint a = {4, {10, 0, 0, 1}, 1234}, b = {4, {10, 0, 0, 2}, 1883};
    static const int links[] = {PASSIVE_LINK_ETHERNET, PASSIVE_LINK_SLL, PASSIVE_LINK_SLL2,
                                PASSIVE_LINK_NULL, PASSIVE_LINK_RAW};
    uint8_t ip[128], frame[160];
    struct passive_segment s;
    size_t n = build_ip_tcp(ip, &a, &b, 77, PASSIVE_TCP_ACK, (const uint8_t *)"xy", 2);

    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        size_t len = link_wrap(links[i], frame, ip, n, 4);

        assert_int_equal(passive_parse_frame(links[i], frame, len, &s), VIGIL_OK);
        assert_int_equal(s.sport, 1234);
        assert_int_equal(s.dport, 1883);
        assert_int_equal(s.seq, 77);
        assert_int_equal(s.len, 2);
        assert_memory_equal(s.payload, "xy", 2);
        /* A frame cut inside the TCP header is invalid. */
        assert_int_equal(passive_parse_frame(links[i], frame, len - 12, &s), VIGIL_ERR_INVALID);
    }
    assert_int_equal(passive_parse_frame(9999, frame, n, &s), VIGIL_ERR_INVALID);
}

static void test_parse_vlan_padding_udp(void **state)
{
    struct endpoint a = {4, {10, 0, 0, 1}, 1234}, b = {4, {10, 0, 0, 2}, 1883};
    uint8_t ip[128], frame[200];
    struct passive_segment s;
    size_t n = build_ip_tcp(ip, &a, &b, 1, PASSIVE_TCP_ACK, (const uint8_t *)"z", 1);

    memset(frame, 0, sizeof frame);
    put16(frame + 12, 0x8100);
    put16(frame + 16, 0x0800);
    memcpy(frame + 18, ip, n);
    /* Ethernet padding after the IP packet is not payload. */
    assert_int_equal(passive_parse_frame(PASSIVE_LINK_ETHERNET, frame, 18 + n + 6, &s), VIGIL_OK);
    assert_int_equal(s.len, 1);
    ip[9] = 17;  /* UDP */
    assert_int_equal(passive_parse_frame(PASSIVE_LINK_RAW, ip, n, &s), VIGIL_ERR_NOT_FOUND);
    ip[9] = 6;
    ip[6] = 0x20;  /* more fragments */
    assert_int_equal(passive_parse_frame(PASSIVE_LINK_RAW, ip, n, &s), VIGIL_ERR_NOT_FOUND);
}

static void test_parse_ipv6_extension(void **state)
{
    struct endpoint a = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 5}, 5555};
    struct endpoint b = {6, {0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 1883};
    uint8_t ip[160], with_ext[200];
    struct passive_segment s;
    size_t n = build_ip_tcp(ip, &a, &b, 9, PASSIVE_TCP_SYN, NULL, 0);

    /* Insert an 8-byte Hop-by-Hop Options header before TCP. */
    memcpy(with_ext, ip, 40);
    with_ext[6] = 0;
    put16(with_ext + 4, (uint16_t)(n - 40 + 8));
    memset(with_ext + 40, 0, 8);
    with_ext[40] = 6;
    memcpy(with_ext + 48, ip + 40, n - 40);
    assert_int_equal(passive_parse_frame(PASSIVE_LINK_IPV6, with_ext, n + 8, &s), VIGIL_OK);
    assert_int_equal(s.src.family, 6);
    assert_int_equal(s.sport, 5555);
    assert_int_equal(s.flags, PASSIVE_TCP_SYN);
    with_ext[40] = 44;  /* a Fragment header next: not reassembled */
    assert_int_equal(passive_parse_frame(PASSIVE_LINK_IPV6, with_ext, n + 8, &s),
                     VIGIL_ERR_NOT_FOUND);
}

static void test_unreadable_capture(void **state)
{
    static uint8_t junk[64] = "not a capture file";
    struct passive_config cfg;
    struct passive *p;
    struct events e = {0};
    char err[256] = "";
    FILE *fp = fmemopen(junk, sizeof junk, "rb");

    passive_config_defaults(&cfg);
    assert_int_equal(passive_new(&cfg, on_event, NULL, &e, &p), VIGIL_OK);
    assert_int_equal(passive_read_stream(p, fp, err, sizeof err), VIGIL_ERR_IO);
    assert_true(err[0] != '\0');
    passive_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_events),
        cmocka_unit_test(test_auth_failure_codes),
        cmocka_unit_test(test_malformed_publish),
        cmocka_unit_test(test_ipv6_null_link),
        cmocka_unit_test(test_connect_timeout_limit),
        cmocka_unit_test(test_pipelined_before_connack),
        cmocka_unit_test(test_reordered_segments),
        cmocka_unit_test(test_midstream_resync),
        cmocka_unit_test(test_parse_link_types),
        cmocka_unit_test(test_parse_vlan_padding_udp),
        cmocka_unit_test(test_parse_ipv6_extension),
        cmocka_unit_test(test_unreadable_capture),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
