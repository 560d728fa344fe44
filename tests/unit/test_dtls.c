/* Tests for the DTLS server and the UDP endpoints. First an OpenSSL DTLS
 * client talks to the listener and sessions of net/dtls.h through a
 * datagram socket pair, so every datagram keeps its boundaries. Then the
 * endpoints of broker/udp.h run on loopback sockets with a libuv loop. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../support/tls_testpki.h"
#include "auth/acl.h"
#include "auth/device.h"
#include "broker/broker.h"
#include "broker/udp.h"
#include "config/config.h"
#include "net/dtls.h"
#include "secmon/event.h"

#define SERIAL_GOOD 0x2001
#define SERIAL_REVOKED 0x20AB
#define MAX_ROUNDS 40

/* Keys, certificates and CRL made once in a temp dir. */
struct pki {
    char dir[64];
    char ca[128], server[128], server_key[128], crl[128];
    EVP_PKEY *ca_key, *client_key;
    X509 *ca_cert, *good, *revoked;
};

static struct pki pki;

static void pki_path(char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", pki.dir, name);
}

static X509 *client_cert(const char *id, long serial)
{
    char uri[96];
    struct testpki_spec spec = {id, uri, NULL, serial, -TESTPKI_DAY, 30 * TESTPKI_DAY, false};
    X509 *x;

    snprintf(uri, sizeof uri, "urn:vigil:device:%s", id);
    x = testpki_cert(&spec, pki.client_key, pki.ca_cert, pki.ca_key);
    assert_non_null(x);
    return x;
}

static void make_server_files(void)
{
    struct testpki_spec ca = {"Test CA", NULL, NULL, 1, -TESTPKI_DAY, 365 * TESTPKI_DAY, true};
    struct testpki_spec srv = {"vigil", NULL, NULL, 10, -TESTPKI_DAY, 90 * TESTPKI_DAY, false};
    long revoked[] = {SERIAL_REVOKED};
    EVP_PKEY *key = testpki_key();
    X509 *cert;
    X509_CRL *crl;

    pki.ca_key = testpki_key();
    pki.client_key = testpki_key();
    pki.ca_cert = testpki_cert(&ca, pki.ca_key, NULL, NULL);
    assert_non_null(pki.ca_cert);
    cert = testpki_cert(&srv, key, pki.ca_cert, pki.ca_key);
    crl = testpki_crl(pki.ca_cert, pki.ca_key, revoked, 1, 30 * TESTPKI_DAY);
    assert_non_null(cert);
    assert_non_null(crl);
    pki_path(pki.ca, "ca.pem");
    pki_path(pki.server, "server.pem");
    pki_path(pki.server_key, "server.key");
    pki_path(pki.crl, "crl.pem");
    assert_true(testpki_write_cert(pki.ca, pki.ca_cert));
    assert_true(testpki_write_cert(pki.server, cert));
    assert_true(testpki_write_key(pki.server_key, key));
    assert_true(testpki_write_crl(pki.crl, crl));
    X509_CRL_free(crl);
    X509_free(cert);
    EVP_PKEY_free(key);
}

static int setup_pki(void **state)
{
    snprintf(pki.dir, sizeof pki.dir, "/tmp/vigil-dtls-XXXXXX");
    assert_non_null(mkdtemp(pki.dir));
    make_server_files();
    pki.good = client_cert("bed-2", SERIAL_GOOD);
    pki.revoked = client_cert("bed-6", SERIAL_REVOKED);
    if (state != NULL)
        *state = &pki;
    return 0;
}

static int teardown_pki(void **state)
{
    char cmd[128];

    X509_free(pki.good);
    X509_free(pki.revoked);
    X509_free(pki.ca_cert);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.client_key);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* The server's PSK table: bed-1 with a key the tests may change. */
static uint8_t psk_bed1[16] = {0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38,
                               0x39, 0x30, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66};

static size_t lookup_psk(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    (void)ctx;
    if (strcmp(identity, "bed-1") != 0 || cap < sizeof psk_bed1)
        return 0;
    memcpy(key, psk_bed1, sizeof psk_bed1);
    return sizeof psk_bed1;
}

static struct dtls_server *new_server(bool require_cert, bool psk)
{
    struct dtls_server_opts o = {0};
    struct dtls_server *srv = NULL;
    char err[256] = "";

    o.tls.cert_file = pki.server;
    o.tls.key_file = pki.server_key;
    o.tls.ca_file = pki.ca;
    o.tls.crl_file = pki.crl;
    o.tls.require_client_cert = require_cert;
    o.tls.identity = TLS_IDENTITY_URI;
    o.tls.psk_lookup = psk ? lookup_psk : NULL;
    o.session_cache_size = 16;
    if (dtls_server_new(&o, &srv, err, sizeof err) != VIGIL_OK)
        fail_msg("dtls_server_new: %s", err);
    return srv;
}

/* One client and the server side of its exchange. fd[0] is the client's
 * end of a datagram socket pair, fd[1] the server's. */
struct harness {
    int fd[2];
    SSL_CTX *cctx;
    SSL *client;
    struct dtls_server *srv;
    struct dtls_listener *listener;
    struct dtls_session *session;
    struct sockaddr_in addr;    /* the address the server believes the client has */
    const char *psk_identity;   /* NULL: no PSK */
    const uint8_t *psk_key;
    size_t psk_len;
    vigil_err rc;               /* last server result */
    int verify_sent, accepted, dropped, established_calls;
    size_t max_datagram;        /* largest datagram the server sent */
    int server_datagrams;
    bool hold_server_output;    /* drop what the server sends */
    uint8_t received[2048];
    size_t received_len;
};

static struct harness *current;

static unsigned int client_psk(SSL *ssl, const char *hint, char *identity, unsigned int max_id,
                               unsigned char *psk, unsigned int max_psk)
{
    (void)ssl;
    (void)hint;
    if (current == NULL || current->psk_identity == NULL || current->psk_len > max_psk)
        return 0;
    snprintf(identity, max_id, "%s", current->psk_identity);
    memcpy(psk, current->psk_key, current->psk_len);
    return (unsigned int)current->psk_len;
}

static void server_send(void *ctx, const uint8_t *data, size_t len)
{
    struct harness *h = ctx;

    h->server_datagrams++;
    if (len > h->max_datagram)
        h->max_datagram = len;
    if (!h->hold_server_output)
        assert_int_equal(send(h->fd[1], data, len, 0), (ssize_t)len);
}

static void server_established(void *ctx)
{
    struct harness *h = ctx;

    h->established_calls++;
}

static void server_received(void *ctx, const uint8_t *data, size_t len)
{
    struct harness *h = ctx;

    assert_true(len <= sizeof h->received - h->received_len);
    memcpy(h->received + h->received_len, data, len);
    h->received_len += len;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static SSL_CTX *client_ctx(const char *ciphers, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(DTLS_client_method());

    assert_non_null(ctx);
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, DTLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
    if (ciphers != NULL)
        assert_int_equal(SSL_CTX_set_cipher_list(ctx, ciphers), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, pki.ca, NULL), 1);
    return ctx;
}

/* Makes the client SSL over fd[0]. */
static void harness_client(struct harness *h, X509 *cert, SSL_SESSION *resume)
{
    BIO *bio = BIO_new_dgram(h->fd[0], BIO_NOCLOSE);
    BIO_ADDR *peer = BIO_ADDR_new();

    assert_non_null(bio);
    /* A connected datagram BIO writes with send(), which a socket pair
     * needs; the address itself is not used. */
    assert_int_equal(BIO_ADDR_rawmake(peer, AF_INET, &h->addr.sin_addr, 4, h->addr.sin_port), 1);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer);
    BIO_ADDR_free(peer);
    h->client = SSL_new(h->cctx);
    assert_non_null(h->client);
    SSL_set_bio(h->client, bio, bio);
    SSL_set_mtu(h->client, DTLS_MTU_DEFAULT);
    if (cert != NULL) {
        assert_int_equal(SSL_use_certificate(h->client, cert), 1);
        assert_int_equal(SSL_use_PrivateKey(h->client, pki.client_key), 1);
    }
    /* OpenSSL offers the PSK suites only with a PSK callback. */
    if (h->psk_identity != NULL)
        SSL_set_psk_client_callback(h->client, client_psk);
    if (resume != NULL)
        assert_int_equal(SSL_set_session(h->client, resume), 1);
    SSL_set_connect_state(h->client);
}

static void harness_init(struct harness *h, struct dtls_server *srv, SSL_CTX *cctx)
{
    memset(h, 0, sizeof *h);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, h->fd), 0);
    assert_int_equal(fcntl(h->fd[0], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(fcntl(h->fd[1], F_SETFL, O_NONBLOCK), 0);
    h->cctx = cctx;
    h->srv = srv;
    assert_int_equal(dtls_listener_new(srv, &h->listener), VIGIL_OK);
    h->addr.sin_family = AF_INET;
    h->addr.sin_port = htons(40001);
    h->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    current = h;
}

static void harness_free(struct harness *h)
{
    SSL_free(h->client);
    dtls_session_free(h->session);
    dtls_listener_free(h->listener);
    close(h->fd[0]);
    close(h->fd[1]);
    current = NULL;
}

/* Starts a new client on the same harness, as a reconnect would. */
static void harness_reconnect(struct harness *h, X509 *cert, SSL_SESSION *resume)
{
    SSL_free(h->client);
    h->client = NULL;
    dtls_session_free(h->session);
    h->session = NULL;
    h->rc = VIGIL_OK;
    harness_client(h, cert, resume);
}

/* Hands one client datagram to the listener or the session. */
static void server_input(struct harness *h, const uint8_t *data, size_t len)
{
    struct dtls_session_io io = {server_send, server_established, server_received, h};
    enum dtls_listen_result r;

    if (h->session != NULL) {
        h->rc = dtls_session_feed(h->session, data, len);
        return;
    }
    r = dtls_listen(h->listener, (const struct sockaddr *)&h->addr, sizeof h->addr, data, len,
                    now_ms(), server_send, h);
    if (r == DTLS_LISTEN_VERIFY_SENT) {
        h->verify_sent++;
    } else if (r == DTLS_LISTEN_DROPPED) {
        h->dropped++;
    } else {
        h->accepted++;
        assert_int_equal(dtls_listener_accept(h->listener, &io, &h->session), VIGIL_OK);
        h->rc = dtls_session_feed(h->session, NULL, 0);
    }
}

/* Moves every datagram the client sent to the server. */
static void pump_client_output(struct harness *h)
{
    uint8_t buf[4096];
    ssize_t n;

    while ((n = recv(h->fd[1], buf, sizeof buf, 0)) > 0)
        server_input(h, buf, (size_t)n);
}

/* Runs the handshake until both sides finish or one fails. Returns the
 * client's SSL_do_handshake result. */
static int handshake(struct harness *h)
{
    int r = 0;

    for (int round = 0; round < MAX_ROUNDS; round++) {
        r = SSL_do_handshake(h->client);
        if (r <= 0 && SSL_get_error(h->client, r) != SSL_ERROR_WANT_READ)
            break;
        pump_client_output(h);
        if (h->rc != VIGIL_OK)
            break;
        if (r == 1 && h->session != NULL && dtls_session_established(h->session))
            break;
    }
    return r;
}

static void check_echo(struct harness *h)
{
    uint8_t buf[64];
    size_t got = 0;

    assert_int_equal(SSL_write(h->client, "ping", 4), 4);
    pump_client_output(h);
    assert_int_equal(h->rc, VIGIL_OK);
    assert_int_equal(h->received_len, 4);
    assert_memory_equal(h->received, "ping", 4);
    assert_int_equal(dtls_session_write(h->session, (const uint8_t *)"pong", 4), VIGIL_OK);
    assert_int_equal(SSL_read_ex(h->client, buf, sizeof buf, &got), 1);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "pong", 4);
}

static void use_psk(struct harness *h, const char *identity, const uint8_t *key, size_t len)
{
    h->psk_identity = identity;
    h->psk_key = key;
    h->psk_len = len;
}

static void test_psk_handshake(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    assert_int_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_OK);
    /* The first ClientHello had no cookie and created no session. */
    assert_int_equal(h.verify_sent, 1);
    assert_int_equal(h.accepted, 1);
    assert_int_equal(h.established_calls, 1);
    assert_true(dtls_session_established(h.session));
    assert_string_equal(dtls_session_identity(h.session), "bed-1");
    assert_true(dtls_session_used_psk(h.session));
    assert_false(dtls_session_resumed(h.session));
    assert_string_equal(dtls_session_cert_serial(h.session), "");
    check_echo(&h);
    assert_true(h.max_datagram <= DTLS_MTU_DEFAULT);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

/* The suites libcoap and RFC 7252 use, and a weak one that is refused. */
static void test_psk_ccm8_suite(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx("PSK-AES128-CCM8", DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    assert_int_equal(handshake(&h), 1);
    assert_string_equal(dtls_session_cipher(h.session), "PSK-AES128-CCM8");
    check_echo(&h);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_weak_suite_refused(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx("PSK-AES128-CBC-SHA256", DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    assert_int_not_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_ERR_PROTOCOL);
    assert_string_equal(dtls_session_error(h.session), "no shared cipher");
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_wrong_psk_fails(void **state)
{
    static const uint8_t wrong[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", wrong, sizeof wrong);
    harness_client(&h, NULL, NULL);
    handshake(&h);
    assert_int_equal(h.rc, VIGIL_ERR_AUTH);
    assert_string_equal(dtls_session_error(h.session), "PSK key mismatch");
    assert_string_equal(dtls_session_claimed_identity(h.session), "bed-1");
    assert_false(dtls_session_established(h.session));
    assert_int_equal(h.established_calls, 0);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_unknown_identity_fails(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-99", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    handshake(&h);
    assert_int_equal(h.rc, VIGIL_ERR_AUTH);
    assert_string_equal(dtls_session_error(h.session), "unknown PSK identity");
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_cert_handshake(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    harness_client(&h, pki.good, NULL);
    assert_int_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_OK);
    assert_string_equal(dtls_session_identity(h.session), "bed-2");
    assert_false(dtls_session_used_psk(h.session));
    assert_string_equal(dtls_session_cert_serial(h.session), "2001");
    check_echo(&h);
    /* The certificate flight is cut to the MTU. */
    assert_true(h.max_datagram <= DTLS_MTU_DEFAULT);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_cert_ccm8_suite(void **state)
{
    struct dtls_server *srv = new_server(true, false);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx("ECDHE-ECDSA-AES128-CCM8", DTLS1_2_VERSION));
    harness_client(&h, pki.good, NULL);
    assert_int_equal(handshake(&h), 1);
    assert_string_equal(dtls_session_cipher(h.session), "ECDHE-ECDSA-AES128-CCM8");
    check_echo(&h);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_revoked_cert_fails(void **state)
{
    struct dtls_server *srv = new_server(true, false);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    harness_client(&h, pki.revoked, NULL);
    assert_int_not_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_ERR_AUTH);
    assert_string_equal(dtls_session_error(h.session), "certificate revoked");
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_missing_cert_fails(void **state)
{
    struct dtls_server *srv = new_server(true, false);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    harness_client(&h, NULL, NULL);
    assert_int_not_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_ERR_AUTH);
    assert_string_equal(dtls_session_error(h.session), "no client certificate");
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_dtls10_refused(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    assert_int_not_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_ERR_PROTOCOL);
    assert_string_equal(dtls_session_error(h.session), "unsupported protocol version DTLSv1");
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

/* Captures the client's next datagram without replying to it. */
static size_t next_client_datagram(struct harness *h, uint8_t *buf, size_t cap)
{
    ssize_t n;

    (void)SSL_do_handshake(h->client);
    n = recv(h->fd[1], buf, cap, 0);
    assert_true(n > 0);
    return (size_t)n;
}

/* Offset of the cookie length byte in a ClientHello datagram without a
 * session id. */
#define COOKIE_AT (13 + 12 + 2 + 32 + 1)

static void test_bad_cookie_silent(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    struct sockaddr_in other;
    uint8_t hello[2048];
    size_t len;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    len = next_client_datagram(&h, hello, sizeof hello);
    server_input(&h, hello, len);
    assert_int_equal(h.verify_sent, 1);
    len = next_client_datagram(&h, hello, sizeof hello);
    assert_int_equal(hello[COOKIE_AT], 32);

    /* The same cookie from another port is not valid there. */
    other = h.addr;
    other.sin_port = htons(40002);
    assert_int_equal(dtls_listen(h.listener, (const struct sockaddr *)&other, sizeof other, hello,
                                 len, now_ms(), server_send, &h),
                     DTLS_LISTEN_VERIFY_SENT);
    /* A changed cookie only gets a new HelloVerifyRequest. */
    hello[COOKIE_AT + 5] ^= 0x40;
    server_input(&h, hello, len);
    assert_int_equal(h.verify_sent, 2);
    assert_int_equal(h.accepted, 0);
    assert_null(h.session);
    /* The cookie as sent is accepted. */
    hello[COOKIE_AT + 5] ^= 0x40;
    server_input(&h, hello, len);
    assert_int_equal(h.accepted, 1);
    /* Anything but a ClientHello is dropped without a reply. */
    h.server_datagrams = 0;
    assert_int_equal(dtls_listen(h.listener, (const struct sockaddr *)&h.addr, sizeof h.addr,
                                 (const uint8_t *)"garbage", 7, now_ms(), server_send, &h),
                     DTLS_LISTEN_DROPPED);
    assert_int_equal(h.server_datagrams, 0);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

/* An old cookie stays valid for one rotation, not two. */
static void test_cookie_rotation(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    uint8_t hello[2048];
    size_t len;
    uint64_t t0 = now_ms();

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    len = next_client_datagram(&h, hello, sizeof hello);
    assert_int_equal(dtls_listen(h.listener, (const struct sockaddr *)&h.addr, sizeof h.addr, hello,
                                 len, t0, server_send, &h),
                     DTLS_LISTEN_VERIFY_SENT);
    len = next_client_datagram(&h, hello, sizeof hello);
    assert_int_equal(dtls_listen(h.listener, (const struct sockaddr *)&h.addr, sizeof h.addr, hello,
                                 len, t0 + DTLS_COOKIE_ROTATE_MS, server_send, &h),
                     DTLS_LISTEN_ACCEPTED);
    assert_int_equal(dtls_listen(h.listener, (const struct sockaddr *)&h.addr, sizeof h.addr, hello,
                                 len, t0 + 2 * DTLS_COOKIE_ROTATE_MS, server_send, &h),
                     DTLS_LISTEN_VERIFY_SENT);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

/* Runs a full handshake, then a resumed one with the client's session. */
static SSL_SESSION *first_handshake(struct harness *h, X509 *cert)
{
    SSL_SESSION *sess;

    harness_client(h, cert, NULL);
    assert_int_equal(handshake(h), 1);
    assert_false(dtls_session_resumed(h->session));
    sess = SSL_get1_session(h->client);
    assert_non_null(sess);
    /* A clean close keeps the session resumable on both sides. */
    assert_true(SSL_shutdown(h->client) >= 0);
    pump_client_output(h);
    assert_int_equal(h->rc, VIGIL_ERR_CLOSED);
    dtls_session_shutdown(h->session);
    return sess;
}

static void test_psk_resumption(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    SSL_SESSION *sess;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    sess = first_handshake(&h, NULL);
    assert_int_equal(dtls_server_cached_sessions(srv), 1);
    harness_reconnect(&h, NULL, sess);
    assert_int_equal(handshake(&h), 1);
    assert_int_equal(h.rc, VIGIL_OK);
    assert_true(SSL_session_reused(h.client));
    assert_true(dtls_session_resumed(h.session));
    assert_string_equal(dtls_session_identity(h.session), "bed-1");
    assert_true(dtls_session_used_psk(h.session));
    check_echo(&h);

    /* After a flush the same session gets a full handshake. */
    dtls_server_flush_sessions(srv);
    assert_int_equal(dtls_server_cached_sessions(srv), 0);
    harness_reconnect(&h, NULL, sess);
    assert_int_equal(handshake(&h), 1);
    assert_false(dtls_session_resumed(h.session));
    SSL_SESSION_free(sess);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_resumption_after_key_change(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    SSL_SESSION *sess;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    sess = first_handshake(&h, NULL);
    psk_bed1[0] ^= 0xff;
    harness_reconnect(&h, NULL, sess);
    handshake(&h);
    assert_int_equal(h.rc, VIGIL_ERR_AUTH);
    assert_string_equal(dtls_session_error(h.session), "resumed session of a PSK that has changed");
    assert_false(dtls_session_established(h.session));
    assert_int_equal(dtls_server_cached_sessions(srv), 0);
    psk_bed1[0] ^= 0xff;
    SSL_SESSION_free(sess);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_cert_resumption(void **state)
{
    struct dtls_server *srv = new_server(true, false);
    struct harness h;
    SSL_SESSION *sess;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    sess = first_handshake(&h, pki.good);
    harness_reconnect(&h, pki.good, sess);
    assert_int_equal(handshake(&h), 1);
    assert_true(dtls_session_resumed(h.session));
    assert_string_equal(dtls_session_identity(h.session), "bed-2");
    assert_string_equal(dtls_session_cert_serial(h.session), "2001");
    check_echo(&h);
    SSL_SESSION_free(sess);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_retransmission_timer(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    int64_t wait;
    int sent;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    (void)SSL_do_handshake(h.client);
    pump_client_output(&h);
    (void)SSL_do_handshake(h.client);
    /* The server flight is lost on the way. */
    h.hold_server_output = true;
    pump_client_output(&h);
    assert_non_null(h.session);
    wait = dtls_session_timeout_ms(h.session);
    assert_true(wait > 0);
    assert_true(wait <= 1000);
    sent = h.server_datagrams;
    assert_int_equal(dtls_session_on_timer(h.session), VIGIL_OK);
    assert_int_equal(h.server_datagrams, sent);
    usleep((useconds_t)(wait + 20) * 1000);
    assert_int_equal(dtls_session_timeout_ms(h.session), 0);
    assert_int_equal(dtls_session_on_timer(h.session), VIGIL_OK);
    assert_true(h.server_datagrams > sent);
    /* The retransmitted flight completes the handshake. */
    h.hold_server_output = false;
    sent = h.server_datagrams;
    wait = dtls_session_timeout_ms(h.session);
    usleep((useconds_t)(wait + 20) * 1000);
    assert_int_equal(dtls_session_on_timer(h.session), VIGIL_OK);
    assert_true(h.server_datagrams > sent);
    assert_int_equal(handshake(&h), 1);
    assert_true(dtls_session_established(h.session));
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_write_limit(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    uint8_t big[DTLS_PLAINTEXT_MAX + 1] = {0};
    size_t max;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    assert_int_equal(handshake(&h), 1);
    max = dtls_session_max_write(h.session);
    assert_int_equal(max, DTLS_PLAINTEXT_MAX);
    assert_int_equal(dtls_session_write(h.session, big, max + 1), VIGIL_ERR_LIMIT);
    h.max_datagram = 0;
    assert_int_equal(dtls_session_write(h.session, big, max), VIGIL_OK);
    assert_true(h.max_datagram <= DTLS_MTU_DEFAULT);
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_client_hello_detection(void **state)
{
    struct dtls_server *srv = new_server(true, true);
    struct harness h;
    uint8_t hello[2048];
    size_t len;

    (void)state;
    harness_init(&h, srv, client_ctx(NULL, DTLS1_2_VERSION));
    use_psk(&h, "bed-1", psk_bed1, sizeof psk_bed1);
    harness_client(&h, NULL, NULL);
    len = next_client_datagram(&h, hello, sizeof hello);
    assert_true(dtls_is_client_hello(hello, len));
    assert_false(dtls_is_client_hello(hello, 40));
    server_input(&h, hello, len);
    len = next_client_datagram(&h, hello, sizeof hello);
    server_input(&h, hello, len);
    assert_non_null(h.session);
    assert_true(dtls_session_same_hello(h.session, hello, len));
    hello[13 + 12 + 2] ^= 1;
    assert_false(dtls_session_same_hello(h.session, hello, len));
    SSL_CTX_free(h.cctx);
    harness_free(&h);
    dtls_server_free(srv);
}

static void test_server_config_errors(void **state)
{
    struct dtls_server_opts o = {0};
    struct dtls_server *srv = NULL;
    char err[256] = "";

    (void)state;
    o.tls.cert_file = pki.server;
    o.tls.key_file = "/nonexistent/server.key";
    assert_int_equal(dtls_server_new(&o, &srv, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_null(srv);
    assert_string_equal(err, "/nonexistent/server.key: file not found");
    o.tls.key_file = pki.server_key;
    o.mtu = 100;
    assert_int_equal(dtls_server_new(&o, &srv, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_string_equal(err, "DTLS MTU 100 is below the minimum of 256");
}

/* UDP endpoints on loopback, driven by a libuv loop in this thread. */

#define MAX_EVENTS 64
#define MAX_FRONT_PEERS 8

/* Events the sink's thread passed to the consumer. */
struct event_log {
    pthread_mutex_t lock;
    struct vigil_event ev[MAX_EVENTS];
    int n;
};

/* What the front-end callbacks saw. */
struct front {
    int datagrams, secured, closing;
    struct udp_peer *last;
    char last_name[64];
    char identity[DEVICE_ID_MAX + 1];
    bool used_psk;
    bool echo;                  /* reply to each datagram with "ack:" and its data */
    uint8_t data[256];
    size_t len;
};

struct udp_fixture {
    uv_loop_t loop;
    struct hub *hub;
    struct config_listener listener;
    struct udp_endpoint *ep;
    struct device_db *db;
    char dir[64];
    struct event_log events;
    struct front front;
    struct udp_handler handler;
};

static struct udp_fixture fx;

static void on_event(void *ctx, const struct vigil_event *ev)
{
    struct event_log *log = ctx;

    pthread_mutex_lock(&log->lock);
    if (log->n < MAX_EVENTS)
        log->ev[log->n++] = *ev;
    pthread_mutex_unlock(&log->lock);
}

/* Waits up to two seconds for an event of type with detail (NULL: any);
 * returns a copy in out. */
static bool wait_event(uint8_t type, const char *detail, struct vigil_event *out)
{
    for (int i = 0; i < 200; i++) {
        bool found = false;

        uv_run(&fx.loop, UV_RUN_NOWAIT);
        pthread_mutex_lock(&fx.events.lock);
        for (int j = 0; j < fx.events.n && !found; j++) {
            if (fx.events.ev[j].type == type &&
                (detail == NULL || strcmp(fx.events.ev[j].detail, detail) == 0)) {
                *out = fx.events.ev[j];
                found = true;
            }
        }
        pthread_mutex_unlock(&fx.events.lock);
        if (found)
            return true;
        usleep(10000);
    }
    return false;
}

static void front_datagram(void *ctx, struct udp_peer *p, const uint8_t *data, size_t len)
{
    struct front *f = ctx;
    uint8_t reply[300];

    f->datagrams++;
    f->last = p;
    snprintf(f->last_name, sizeof f->last_name, "%s", p->name);
    f->len = len < sizeof f->data ? len : sizeof f->data;
    memcpy(f->data, data, f->len);
    if (f->echo && len <= 200) {
        memcpy(reply, "ack:", 4);
        memcpy(reply + 4, data, len);
        assert_int_equal(udp_send(p, reply, len + 4), VIGIL_OK);
    }
}

static void front_secured(void *ctx, struct udp_peer *p)
{
    struct front *f = ctx;

    f->secured++;
    f->last = p;
    snprintf(f->identity, sizeof f->identity, "%s", p->identity);
    f->used_psk = p->used_psk;
}

static void front_closing(void *ctx, struct udp_peer *p)
{
    struct front *f = ctx;

    f->closing++;
    if (f->last == p)
        f->last = NULL;
}

static void make_inventory(void)
{
    struct device_info info = {0};
    char password[64];

    snprintf(fx.dir, sizeof fx.dir, "/tmp/vigil-udp-XXXXXX");
    assert_non_null(mkdtemp(fx.dir));
    assert_int_equal(device_db_open(fx.dir, &fx.db), VIGIL_OK);
    snprintf(info.id, sizeof info.id, "bed-1");
    snprintf(info.role, sizeof info.role, "device");
    assert_int_equal(device_db_add(fx.db, &info, password, sizeof password), VIGIL_OK);
    assert_int_equal(device_db_set_psk(fx.db, "bed-1", psk_bed1, sizeof psk_bed1), VIGIL_OK);
    assert_int_equal(device_snapshot_load(fx.db, &fx.hub->snap), VIGIL_OK);
}

static void open_events(void)
{
    struct vigil_event_consumer consumer = {.feed = on_event, .ctx = &fx.events};
    char path[128];

    snprintf(path, sizeof path, "%s/events.jsonl", fx.dir);
    assert_int_equal(vigil_event_sink_open(path, 1024, &fx.hub->events), VIGIL_OK);
    vigil_event_sink_set_consumer(fx.hub->events, &consumer);
}

/* A hub with what UDP endpoints use: loop, configuration, TLS files,
 * inventory, failed-login limits and the event sink. */
static int setup_udp(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    pthread_mutex_init(&fx.events.lock, NULL);
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    fx.hub = calloc(1, sizeof *fx.hub);
    assert_non_null(fx.hub);
    fx.hub->loop = &fx.loop;
    config_defaults(&fx.hub->cfg);
    fx.hub->cfg.gateway.max_peers = 4;
    snprintf(fx.hub->tls_cert, sizeof fx.hub->tls_cert, "%s", pki.server);
    snprintf(fx.hub->tls_key, sizeof fx.hub->tls_key, "%s", pki.server_key);
    snprintf(fx.hub->tls_ca, sizeof fx.hub->tls_ca, "%s", pki.ca);
    snprintf(fx.hub->tls_crl, sizeof fx.hub->tls_crl, "%s", pki.crl);
    fx.hub->rl_peer = ratelimit_new(50, 60, 1024);
    fx.hub->rl_identity = ratelimit_new(50, 60, 1024);
    make_inventory();
    open_events();
    fx.handler = (struct udp_handler){front_datagram, front_secured, front_closing, &fx.front};
    fx.listener.port = 0;
    fx.listener.allow_psk = true;
    fx.listener.require_client_cert = true;
    return 0;
}

static void close_endpoint(void)
{
    if (fx.ep == NULL)
        return;
    udp_endpoint_close(fx.ep);
    fx.ep = NULL;
    /* The endpoint's two handles close within a loop iteration or two. */
    for (int i = 0; i < 10 && uv_run(&fx.loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    assert_int_equal(uv_loop_alive(&fx.loop), 0);
}

static int teardown_udp(void **state)
{
    char cmd[128];

    (void)state;
    close_endpoint();
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    vigil_event_sink_close(fx.hub->events);
    device_snapshot_free(fx.hub->snap);
    device_db_close(fx.db);
    ratelimit_free(fx.hub->rl_peer);
    ratelimit_free(fx.hub->rl_identity);
    free(fx.hub);
    pthread_mutex_destroy(&fx.events.lock);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void open_endpoint(const char *host, uint8_t transport)
{
    snprintf(fx.listener.host, sizeof fx.listener.host, "%s", host);
    fx.listener.transport = transport;
    assert_int_equal(udp_endpoint_open(fx.hub, &fx.listener, VIGIL_PROTO_COAP, &fx.handler, &fx.ep),
                     VIGIL_OK);
    assert_true(udp_endpoint_port(fx.ep) != 0);
}

/* A UDP socket connected to the endpoint. */
static int client_socket(int family)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int fd = socket(family, SOCK_DGRAM, 0);

    assert_true(fd >= 0);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(udp_endpoint_port(fx.ep));
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;

        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(udp_endpoint_port(fx.ep));
        len = sizeof *a;
    }
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    return fd;
}

static uint16_t local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Runs the loop until the socket has a datagram or a second passed. With
 * peek, the datagram stays for the DTLS client to read. */
static ssize_t wait_datagram(int fd, uint8_t *buf, size_t cap, bool peek)
{
    for (int i = 0; i < 100; i++) {
        ssize_t n;

        uv_run(&fx.loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, cap, peek ? MSG_PEEK : 0);
        if (n >= 0)
            return n;
        usleep(10000);
    }
    return -1;
}

static void run_loop_ms(int ms)
{
    for (int i = 0; i < ms; i += 5) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
}

static void test_udp_plain_peers(void **state)
{
    struct udp_peer *peer;
    int fd[5];
    char name[64];
    uint8_t buf[64];
    struct vigil_event ev;

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAP);
    assert_false(udp_endpoint_is_dtls(fx.ep));
    fx.front = (struct front){.echo = true};
    for (int i = 0; i < 5; i++) {
        fd[i] = client_socket(AF_INET);
        assert_int_equal(send(fd[i], "hello", 5, 0), 5);
    }
    run_loop_ms(100);
    /* The fifth source is over gateway.max_peers (4). */
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 4);
    assert_int_equal(fx.front.datagrams, 4);
    assert_true(wait_event(VIGIL_EV_LIMIT, "peer limit of the listener reached", &ev));
    snprintf(name, sizeof name, "127.0.0.1:%u", local_port(fd[4]));
    assert_string_equal(ev.peer, name);
    assert_int_equal(ev.proto, VIGIL_PROTO_COAP);
    assert_int_equal(wait_datagram(fd[0], buf, sizeof buf, false), 9);
    assert_memory_equal(buf, "ack:hello", 9);

    /* The same source keeps its peer. */
    assert_int_equal(send(fd[0], "again", 5, 0), 5);
    assert_int_equal(wait_datagram(fd[0], buf, sizeof buf, false), 9);
    snprintf(name, sizeof name, "127.0.0.1:%u", local_port(fd[0]));
    assert_string_equal(fx.front.last_name, name);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 4);

    peer = fx.front.last;
    udp_peer_close(peer, "test");
    udp_peer_close(peer, "closed twice");
    assert_int_equal(fx.front.closing, 1);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 3);
    assert_int_equal(udp_send_to(fx.ep, NULL, buf, 65508), VIGIL_ERR_LIMIT);
    close_endpoint();
    assert_int_equal(fx.front.closing, 4);
    for (int i = 0; i < 5; i++)
        close(fd[i]);
}

static void test_udp_plain_ipv6(void **state)
{
    int fd;
    char name[64];
    uint8_t buf[64];

    (void)state;
    fd = socket(AF_INET6, SOCK_DGRAM, 0);
    if (fd < 0) {
        skip();
        return;
    }
    close(fd);
    open_endpoint("::1", CONFIG_TRANSPORT_MQTTSN);
    fx.front = (struct front){.echo = true};
    fd = client_socket(AF_INET6);
    assert_int_equal(send(fd, "hi", 2, 0), 2);
    assert_int_equal(wait_datagram(fd, buf, sizeof buf, false), 6);
    snprintf(name, sizeof name, "[::1]:%u", local_port(fd));
    assert_string_equal(fx.front.last_name, name);
    close_endpoint();
    close(fd);
}

/* A DTLS client over a connected UDP socket. */
static SSL *udp_client(int fd, SSL_CTX *ctx, const char *identity, const uint8_t *key,
                       size_t key_len)
{
    BIO *bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    SSL *ssl = SSL_new(ctx);
    BIO_ADDR *peer = BIO_ADDR_new();
    struct in_addr loopback = {htonl(INADDR_LOOPBACK)};

    assert_non_null(bio);
    assert_non_null(ssl);
    /* Connected: the BIO writes with send() to the socket's peer. */
    assert_int_equal(BIO_ADDR_rawmake(peer, AF_INET, &loopback, 4, htons(udp_endpoint_port(fx.ep))),
                     1);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer);
    BIO_ADDR_free(peer);
    SSL_set_bio(ssl, bio, bio);
    SSL_set_mtu(ssl, DTLS_MTU_DEFAULT);
    if (identity != NULL) {
        static struct harness h;

        memset(&h, 0, sizeof h);
        h.psk_identity = identity;
        h.psk_key = key;
        h.psk_len = key_len;
        current = &h;
        SSL_set_psk_client_callback(ssl, client_psk);
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Drives the client's handshake and the loop for up to a second. */
static int udp_handshake(SSL *ssl)
{
    for (int i = 0; i < 100; i++) {
        int r = SSL_do_handshake(ssl);

        if (r == 1)
            return 1;
        if (SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ)
            return r;
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    return 0;
}

static void test_udp_dtls_psk(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    int fd;
    SSL *ssl;
    uint8_t buf[64];
    size_t got = 0;

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    assert_true(udp_endpoint_is_dtls(fx.ep));
    fx.front = (struct front){.echo = true};
    fd = client_socket(AF_INET);
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    assert_int_equal(udp_handshake(ssl), 1);
    run_loop_ms(20);
    assert_int_equal(fx.front.secured, 1);
    assert_string_equal(fx.front.identity, "bed-1");
    assert_true(fx.front.used_psk);
    assert_int_equal(SSL_write(ssl, "reading", 7), 7);
    for (int i = 0; i < 100 && got == 0; i++) {
        uv_run(&fx.loop, UV_RUN_NOWAIT);
        if (SSL_read_ex(ssl, buf, sizeof buf, &got) != 1)
            usleep(10000);
    }
    assert_int_equal(got, 11);
    assert_memory_equal(buf, "ack:reading", 11);
    assert_int_equal(fx.front.datagrams, 1);
    /* Plaintext to a DTLS endpoint from the same source is not delivered. */
    assert_int_equal(send(fd, "plain", 5, 0), 5);
    run_loop_ms(20);
    assert_int_equal(fx.front.datagrams, 1);

    /* Revocation ends the session and forgets resumable ones. */
    assert_int_equal(udp_endpoint_revoke(fx.ep, "bed-2", NULL), 0);
    assert_int_equal(fx.front.closing, 0);
    assert_int_equal(udp_endpoint_revoke(fx.ep, "bed-1", NULL), 1);
    assert_int_equal(fx.front.closing, 1);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 0);
    SSL_free(ssl);
    close(fd);
    close_endpoint();
    SSL_CTX_free(ctx);
}

static void test_udp_dtls_restart(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    int fd;
    SSL *ssl;

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_MQTTSN_DTLS);
    fx.front = (struct front){0};
    fd = client_socket(AF_INET);
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    assert_int_equal(udp_handshake(ssl), 1);
    SSL_free(ssl);
    /* A restarted client on the same port replaces its old session once
     * its cookie proved the address. */
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    assert_int_equal(udp_handshake(ssl), 1);
    run_loop_ms(20);
    assert_int_equal(fx.front.secured, 2);
    assert_int_equal(fx.front.closing, 1);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 1);
    SSL_free(ssl);
    close(fd);
    close_endpoint();
    assert_int_equal(fx.front.closing, 2);
    SSL_CTX_free(ctx);
}

static void test_udp_dtls_wrong_psk(void **state)
{
    static const uint8_t wrong[16] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    struct vigil_event ev;
    char name[64];
    int fd;
    SSL *ssl;

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    fx.front = (struct front){0};
    fd = client_socket(AF_INET);
    ssl = udp_client(fd, ctx, "bed-1", wrong, sizeof wrong);
    assert_int_not_equal(udp_handshake(ssl), 1);
    assert_true(wait_event(VIGIL_EV_TLS_FAILURE, "PSK key mismatch", &ev));
    snprintf(name, sizeof name, "127.0.0.1:%u", local_port(fd));
    assert_string_equal(ev.peer, name);
    assert_int_equal(ev.proto, VIGIL_PROTO_DTLS);
    assert_int_equal(fx.front.secured, 0);
    /* The front end never saw the peer, so it gets no closing call. */
    assert_int_equal(fx.front.closing, 0);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 0);
    SSL_free(ssl);
    close(fd);
    close_endpoint();
    SSL_CTX_free(ctx);
}

static void test_udp_dtls_rate_limit(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    struct vigil_event ev;
    int fd[3];
    SSL *ssl[3];

    (void)state;
    fx.hub->cfg.gateway.handshake_burst = 2;
    fx.hub->cfg.gateway.handshakes_per_minute = 1;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    fx.front = (struct front){0};
    for (int i = 0; i < 3; i++) {
        fd[i] = client_socket(AF_INET);
        ssl[i] = udp_client(fd[i], ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    }
    assert_int_equal(udp_handshake(ssl[0]), 1);
    assert_int_equal(udp_handshake(ssl[1]), 1);
    /* The third handshake from 127.0.0.1 gets its cookie, then nothing. */
    assert_int_not_equal(udp_handshake(ssl[2]), 1);
    assert_true(wait_event(VIGIL_EV_RATE_LIMIT, "DTLS handshake rate limit of this address reached",
                           &ev));
    assert_string_equal(ev.rule, "vigil-ratelimit");
    assert_int_equal(fx.front.secured, 2);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 2);
    for (int i = 0; i < 3; i++) {
        SSL_free(ssl[i]);
        close(fd[i]);
    }
    close_endpoint();
    fx.hub->cfg.gateway.handshake_burst = 10;
    fx.hub->cfg.gateway.handshakes_per_minute = 60;
    SSL_CTX_free(ctx);
}

/* A full table of idle DTLS peers makes room for a source that proved its
 * address, as a plaintext endpoint does. */
static void test_udp_dtls_evicts_idle(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    struct vigil_event ev;
    int fd[5];
    SSL *ssl[5];

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    udp_endpoint_set_idle_ms(fx.ep, 50);
    fx.front = (struct front){0};
    for (int i = 0; i < 5; i++) {
        fd[i] = client_socket(AF_INET);
        ssl[i] = udp_client(fd[i], ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(udp_handshake(ssl[i]), 1);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 4);
    run_loop_ms(100);

    /* The fifth source is over gateway.max_peers (4), and the first four
     * have been idle for longer than 50 ms. */
    assert_int_equal(udp_handshake(ssl[4]), 1);
    run_loop_ms(20);
    assert_int_equal(fx.front.secured, 5);
    assert_int_equal(fx.front.closing, 1);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 4);
    assert_true(wait_event(VIGIL_EV_LIMIT, "idle peer released: peer table of the listener full",
                           &ev));
    assert_int_equal(ev.proto, VIGIL_PROTO_COAP);
    for (int i = 0; i < 5; i++) {
        SSL_free(ssl[i]);
        close(fd[i]);
    }
    close_endpoint();
    SSL_CTX_free(ctx);
}

static void test_udp_dtls_handshake_timeout(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    struct vigil_event ev;
    uint8_t buf[2048];
    int fd;
    SSL *ssl;

    (void)state;
    fx.hub->cfg.limits.connect_timeout_ms = 1500;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    fx.front = (struct front){0};
    fd = client_socket(AF_INET);
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    /* ClientHello, HelloVerifyRequest, ClientHello with the cookie; then
     * the client goes silent. */
    (void)SSL_do_handshake(ssl);
    assert_true(wait_datagram(fd, buf, sizeof buf, true) > 0);
    (void)SSL_do_handshake(ssl);
    assert_true(wait_datagram(fd, buf, sizeof buf, false) > 0);
    while (recv(fd, buf, sizeof buf, 0) > 0)
        ;
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 1);
    /* The endpoint timer retransmits the server flight after a second. */
    run_loop_ms(1200);
    assert_true(recv(fd, buf, sizeof buf, 0) > 0);
    assert_true(wait_event(VIGIL_EV_TLS_FAILURE, "DTLS handshake timed out", &ev));
    assert_int_equal(ev.size, 0);
    assert_int_equal(udp_endpoint_n_peers(fx.ep), 0);
    SSL_free(ssl);
    close(fd);
    close_endpoint();
    fx.hub->cfg.limits.connect_timeout_ms = 10000;
    SSL_CTX_free(ctx);
}

static void test_udp_dtls_reload(void **state)
{
    SSL_CTX *ctx = client_ctx(NULL, DTLS1_2_VERSION);
    int fd;
    SSL *ssl;

    (void)state;
    open_endpoint("127.0.0.1", CONFIG_TRANSPORT_COAPS);
    fx.front = (struct front){0};
    fd = client_socket(AF_INET);
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    assert_int_equal(udp_handshake(ssl), 1);
    /* The session made before the reload keeps working. */
    udp_endpoint_reload(fx.ep);
    run_loop_ms(20);
    assert_int_equal(udp_send(fx.front.last, (const uint8_t *)"x", 1), VIGIL_OK);
    assert_int_equal(fx.front.closing, 0);
    SSL_free(ssl);
    ssl = udp_client(fd, ctx, "bed-1", psk_bed1, sizeof psk_bed1);
    assert_int_equal(udp_handshake(ssl), 1);
    SSL_free(ssl);
    close(fd);
    close_endpoint();
    SSL_CTX_free(ctx);
}

static void test_udp_bad_host(void **state)
{
    struct udp_endpoint *ep = NULL;

    (void)state;
    snprintf(fx.listener.host, sizeof fx.listener.host, "localhost");
    fx.listener.transport = CONFIG_TRANSPORT_COAP;
    assert_int_equal(udp_endpoint_open(fx.hub, &fx.listener, VIGIL_PROTO_COAP, &fx.handler, &ep),
                     VIGIL_ERR_CONFIG);
    assert_null(ep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_psk_handshake),
        cmocka_unit_test(test_psk_ccm8_suite),
        cmocka_unit_test(test_weak_suite_refused),
        cmocka_unit_test(test_wrong_psk_fails),
        cmocka_unit_test(test_unknown_identity_fails),
        cmocka_unit_test(test_cert_handshake),
        cmocka_unit_test(test_cert_ccm8_suite),
        cmocka_unit_test(test_revoked_cert_fails),
        cmocka_unit_test(test_missing_cert_fails),
        cmocka_unit_test(test_dtls10_refused),
        cmocka_unit_test(test_bad_cookie_silent),
        cmocka_unit_test(test_cookie_rotation),
        cmocka_unit_test(test_psk_resumption),
        cmocka_unit_test(test_resumption_after_key_change),
        cmocka_unit_test(test_cert_resumption),
        cmocka_unit_test(test_retransmission_timer),
        cmocka_unit_test(test_write_limit),
        cmocka_unit_test(test_client_hello_detection),
        cmocka_unit_test(test_server_config_errors),
    };

    const struct CMUnitTest udp_tests[] = {
        cmocka_unit_test(test_udp_plain_peers),
        cmocka_unit_test(test_udp_plain_ipv6),
        cmocka_unit_test(test_udp_dtls_psk),
        cmocka_unit_test(test_udp_dtls_restart),
        cmocka_unit_test(test_udp_dtls_wrong_psk),
        cmocka_unit_test(test_udp_dtls_rate_limit),
        cmocka_unit_test(test_udp_dtls_evicts_idle),
        cmocka_unit_test(test_udp_dtls_handshake_timeout),
        cmocka_unit_test(test_udp_dtls_reload),
        cmocka_unit_test(test_udp_bad_host),
    };
    int failed;

    setup_pki(NULL);
    failed = cmocka_run_group_tests_name("dtls", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("udp", udp_tests, setup_udp, teardown_udp);
    teardown_pki(NULL);
    return failed;
}
