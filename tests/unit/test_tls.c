/* Tests for the TLS server: an OpenSSL client talks to tls_session through
 * memory BIOs, with keys, certificates and CRLs made in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../support/tls_testpki.h"
#include "core/buf.h"
#include "net/tls.h"

#define SERIAL_GOOD 0x1001
#define SERIAL_CN_ONLY 0x1002
#define SERIAL_EXPIRED 0x1003
#define SERIAL_NOT_YET 0x1004
#define SERIAL_OTHER_CA 0x1005
#define SERIAL_REVOKED 0x10AB
#define SERIAL_TWO_URIS 0x1007
#define SERIAL_BAD_ID 0x1008
#define BUF_LIMIT (1024 * 1024)

/* Everything made once for all tests. */
struct pki {
    char dir[64];
    char ca[128], other_ca[128], server[128], server_key[128], server_expired[128];
    char other_key[128], crl[128], crl_foreign[128], not_pem[128], missing[128];
    EVP_PKEY *ca_key, *other_ca_key, *client_key;
    X509 *ca_cert, *other_ca_cert;
    X509 *good, *cn_only, *expired, *not_yet, *other_ca_client, *revoked, *two_uris, *bad_id;
};

static struct pki pki;

static void path(char *out, const char *name)
{
    snprintf(out, 128, "%s/%s", pki.dir, name);
}

static X509 *client_cert(const char *cn, const char *uri, const char *uri2, long serial,
                         long from_s, long to_s, X509 *issuer, EVP_PKEY *issuer_key)
{
    struct testpki_spec spec = {cn, uri, uri2, serial, from_s, to_s, false};
    X509 *x = testpki_cert(&spec, pki.client_key, issuer, issuer_key);

    assert_non_null(x);
    return x;
}

static void make_cas(void)
{
    struct testpki_spec ca = {"Test CA", NULL, NULL, 1, -TESTPKI_DAY, 365 * TESTPKI_DAY, true};
    struct testpki_spec other = {"Other CA", NULL, NULL, 2, -TESTPKI_DAY, 365 * TESTPKI_DAY, true};

    pki.ca_key = testpki_key();
    pki.other_ca_key = testpki_key();
    pki.client_key = testpki_key();
    pki.ca_cert = testpki_cert(&ca, pki.ca_key, NULL, NULL);
    pki.other_ca_cert = testpki_cert(&other, pki.other_ca_key, NULL, NULL);
    assert_non_null(pki.ca_cert);
    assert_non_null(pki.other_ca_cert);
    path(pki.ca, "ca.pem");
    path(pki.other_ca, "other-ca.pem");
    assert_true(testpki_write_cert(pki.ca, pki.ca_cert));
    assert_true(testpki_write_cert(pki.other_ca, pki.other_ca_cert));
}

static void make_server_files(void)
{
    struct testpki_spec srv = {"vigil", NULL, NULL, 10, -TESTPKI_DAY, 90 * TESTPKI_DAY, false};
    struct testpki_spec old = {"vigil", NULL, NULL, 11, -10 * TESTPKI_DAY, -TESTPKI_DAY, false};
    EVP_PKEY *key = testpki_key();
    EVP_PKEY *other = testpki_key();
    X509 *cert = testpki_cert(&srv, key, pki.ca_cert, pki.ca_key);
    X509 *expired = testpki_cert(&old, key, pki.ca_cert, pki.ca_key);
    FILE *f;

    path(pki.server, "server.pem");
    path(pki.server_key, "server.key");
    path(pki.server_expired, "server-expired.pem");
    path(pki.other_key, "other.key");
    path(pki.not_pem, "not-pem.txt");
    path(pki.missing, "missing.pem");
    assert_true(testpki_write_cert(pki.server, cert));
    assert_true(testpki_write_key(pki.server_key, key));
    assert_true(testpki_write_cert(pki.server_expired, expired));
    assert_true(testpki_write_key(pki.other_key, other));
    f = fopen(pki.not_pem, "w");
    assert_non_null(f);
    fputs("this is not PEM\n", f);
    fclose(f);
    X509_free(cert);
    X509_free(expired);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
}

static void make_crls(void)
{
    long revoked[] = {SERIAL_REVOKED, 0x2000};
    X509_CRL *crl = testpki_crl(pki.ca_cert, pki.ca_key, revoked, 2, 30 * TESTPKI_DAY);
    /* Names the test CA as issuer but is signed by the other CA's key. */
    X509_CRL *foreign = testpki_crl(pki.ca_cert, pki.other_ca_key, revoked, 1, 30 * TESTPKI_DAY);

    assert_non_null(crl);
    assert_non_null(foreign);
    path(pki.crl, "crl.pem");
    path(pki.crl_foreign, "crl-foreign.pem");
    assert_true(testpki_write_crl(pki.crl, crl));
    assert_true(testpki_write_crl(pki.crl_foreign, foreign));
    X509_CRL_free(crl);
    X509_CRL_free(foreign);
}

static int setup_pki(void **state)
{
    const long day = TESTPKI_DAY;

    snprintf(pki.dir, sizeof pki.dir, "/tmp/vigil-tls-XXXXXX");
    assert_non_null(mkdtemp(pki.dir));
    make_cas();
    make_server_files();
    make_crls();
    pki.good = client_cert("bed-1", "urn:vigil:device:bed-1", NULL, SERIAL_GOOD, -day, 30 * day,
                           pki.ca_cert, pki.ca_key);
    pki.cn_only = client_cert("bed-2", NULL, NULL, SERIAL_CN_ONLY, -day, 30 * day, pki.ca_cert,
                              pki.ca_key);
    pki.expired = client_cert("bed-3", "urn:vigil:device:bed-3", NULL, SERIAL_EXPIRED, -30 * day,
                              -day, pki.ca_cert, pki.ca_key);
    pki.not_yet = client_cert("bed-4", "urn:vigil:device:bed-4", NULL, SERIAL_NOT_YET, day,
                              30 * day, pki.ca_cert, pki.ca_key);
    pki.other_ca_client = client_cert("bed-5", "urn:vigil:device:bed-5", NULL, SERIAL_OTHER_CA,
                                      -day, 30 * day, pki.other_ca_cert, pki.other_ca_key);
    pki.revoked = client_cert("bed-6", "urn:vigil:device:bed-6", NULL, SERIAL_REVOKED, -day,
                              30 * day, pki.ca_cert, pki.ca_key);
    pki.two_uris = client_cert("bed-7", "urn:vigil:device:bed-7", "urn:vigil:device:bed-8",
                               SERIAL_TWO_URIS, -day, 30 * day, pki.ca_cert, pki.ca_key);
    pki.bad_id = client_cert("bed 9", "urn:vigil:device:bed/9", NULL, SERIAL_BAD_ID, -day,
                             30 * day, pki.ca_cert, pki.ca_key);
    *state = &pki;
    return 0;
}

static int teardown_pki(void **state)
{
    char cmd[128];

    X509_free(pki.good);
    X509_free(pki.cn_only);
    X509_free(pki.expired);
    X509_free(pki.not_yet);
    X509_free(pki.other_ca_client);
    X509_free(pki.revoked);
    X509_free(pki.two_uris);
    X509_free(pki.bad_id);
    X509_free(pki.ca_cert);
    X509_free(pki.other_ca_cert);
    EVP_PKEY_free(pki.ca_key);
    EVP_PKEY_free(pki.other_ca_key);
    EVP_PKEY_free(pki.client_key);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* PSK table of the server: one device. */
static const uint8_t psk_bed1[32] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                                     0xcc, 0xdd, 0xee, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                     0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x12};

static size_t lookup_psk(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    int *calls = ctx;

    (*calls)++;
    if (strcmp(identity, "bed-1") != 0 || cap < sizeof psk_bed1)
        return 0;
    memcpy(key, psk_bed1, sizeof psk_bed1);
    return sizeof psk_bed1;
}

static int psk_calls;

static struct tls_server_opts server_opts(void)
{
    struct tls_server_opts o = {0};

    o.cert_file = pki.server;
    o.key_file = pki.server_key;
    o.ca_file = pki.ca;
    o.require_client_cert = true;
    o.identity = TLS_IDENTITY_URI;
    return o;
}

static struct tls_server *server_new(const struct tls_server_opts *o)
{
    struct tls_server *srv = NULL;
    char err[512] = "";
    vigil_err rc = tls_server_new(o, &srv, err, sizeof err);

    if (rc != VIGIL_OK)
        fail_msg("tls_server_new: %s", err);
    return srv;
}

/* What a client uses and how it behaves. */
struct client_opts {
    int min_version, max_version;  /* 0 = OpenSSL default */
    X509 *cert;                    /* NULL = no client certificate */
    const char *ciphers;           /* TLS 1.2 list, NULL = default */
    bool weak;                     /* security level 0, for old versions and ciphers */
    const char *psk_identity;      /* NULL = no PSK */
    const uint8_t *psk_key;
    size_t psk_len;
};

/* One client SSL and one server session joined by memory BIOs. */
struct pair {
    SSL_CTX *cctx;
    SSL *client;
    BIO *c_in, *c_out;
    struct tls_session *s;
    struct vigil_buf plain, wire;
    vigil_err rc;       /* last result of tls_session_feed */
    size_t alert_len;   /* bytes in wire right after a failed feed */
};

static const struct client_opts *current_client;

static unsigned int client_psk12(SSL *ssl, const char *hint, char *identity,
                                 unsigned int max_identity_len, unsigned char *psk,
                                 unsigned int max_psk_len)
{
    snprintf(identity, max_identity_len, "%s", current_client->psk_identity);
    memcpy(psk, current_client->psk_key, current_client->psk_len);
    return (unsigned int)current_client->psk_len;
}

static int client_psk13(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                        SSL_SESSION **sess)
{
    static const unsigned char aes128gcm_sha256[] = {0x13, 0x01};
    SSL_SESSION *s = SSL_SESSION_new();

    assert_non_null(s);
    assert_int_equal(SSL_SESSION_set1_master_key(s, current_client->psk_key,
                                                 current_client->psk_len), 1);
    assert_int_equal(SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, aes128gcm_sha256)), 1);
    assert_int_equal(SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION), 1);
    *id = (const unsigned char *)current_client->psk_identity;
    *idlen = strlen(current_client->psk_identity);
    *sess = s;
    return 1;
}

static void client_ctx(struct pair *p, const struct client_opts *co)
{
    p->cctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(p->cctx);
    if (co->weak) {
        SSL_CTX_set_security_level(p->cctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(p->cctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    if (co->min_version != 0)
        assert_int_equal(SSL_CTX_set_min_proto_version(p->cctx, co->min_version), 1);
    if (co->max_version != 0)
        assert_int_equal(SSL_CTX_set_max_proto_version(p->cctx, co->max_version), 1);
    if (co->ciphers != NULL)
        assert_int_equal(SSL_CTX_set_cipher_list(p->cctx, co->ciphers), 1);
    if (co->cert != NULL) {
        assert_int_equal(SSL_CTX_use_certificate(p->cctx, co->cert), 1);
        assert_int_equal(SSL_CTX_use_PrivateKey(p->cctx, pki.client_key), 1);
    }
    if (co->psk_identity != NULL) {
        SSL_CTX_set_psk_client_callback(p->cctx, client_psk12);
        SSL_CTX_set_psk_use_session_callback(p->cctx, client_psk13);
    }
    current_client = co;
}

static void pair_open(struct pair *p, struct tls_server *srv, const struct client_opts *co)
{
    memset(p, 0, sizeof *p);
    client_ctx(p, co);
    p->client = SSL_new(p->cctx);
    p->c_in = BIO_new(BIO_s_mem());
    p->c_out = BIO_new(BIO_s_mem());
    assert_non_null(p->client);
    BIO_set_mem_eof_return(p->c_in, -1);
    BIO_set_mem_eof_return(p->c_out, -1);
    SSL_set_bio(p->client, p->c_in, p->c_out);
    SSL_set_connect_state(p->client);
    assert_int_equal(tls_session_new(srv, &p->s), VIGIL_OK);
    vigil_buf_init(&p->plain, BUF_LIMIT);
    vigil_buf_init(&p->wire, BUF_LIMIT);
}

static void pair_close(struct pair *p)
{
    tls_session_free(p->s);
    SSL_free(p->client);
    SSL_CTX_free(p->cctx);
    vigil_buf_release(&p->plain);
    vigil_buf_release(&p->wire);
}

/* Moves what the server queued into the client's input. */
static size_t to_client(struct pair *p)
{
    size_t n = p->wire.len;

    if (n > 0)
        assert_int_equal(BIO_write(p->c_in, p->wire.data, (int)n), (int)n);
    vigil_buf_consume(&p->wire, n);
    return n;
}

/* Feeds what the client queued to the server. */
static size_t to_server(struct pair *p)
{
    uint8_t chunk[65536];
    int n = BIO_read(p->c_out, chunk, sizeof chunk);

    if (n <= 0)
        return 0;
    p->rc = tls_session_feed(p->s, chunk, (size_t)n, &p->plain, &p->wire);
    return (size_t)n;
}

/* Runs both sides until no bytes move or the server fails; returns the
 * server's last feed result. */
static vigil_err pump(struct pair *p)
{
    int round;

    p->rc = VIGIL_OK;
    for (round = 0; round < 20; round++) {
        size_t moved;

        if (!SSL_is_init_finished(p->client))
            (void)SSL_do_handshake(p->client);
        moved = to_server(p);
        if (p->rc != VIGIL_OK)
            p->alert_len = p->wire.len;
        moved += to_client(p);
        if (p->rc != VIGIL_OK || moved == 0)
            break;
    }
    ERR_clear_error();
    return p->rc;
}

/* Runs a handshake and returns the server's result. */
static vigil_err handshake(struct pair *p, struct tls_server *srv, const struct client_opts *co)
{
    pair_open(p, srv, co);
    return pump(p);
}

static void check_failure(struct tls_server *srv, const struct client_opts *co, vigil_err want,
                          const char *reason)
{
    struct pair p;

    assert_int_equal(handshake(&p, srv, co), want);
    assert_string_equal(tls_session_error(p.s), reason);
    assert_false(tls_session_established(p.s));
    assert_string_equal(tls_session_identity(p.s), "");
    /* The failing feed queued an alert, and the failure sticks. */
    assert_true(p.alert_len > 0);
    assert_int_equal(tls_session_feed(p.s, NULL, 0, &p.plain, &p.wire), want);
    assert_int_equal(p.wire.len, 0);
    pair_close(&p);
}

/* Sends data both ways over an established pair. */
static void exchange_data(struct pair *p)
{
    char reply[64];
    int n;

    assert_int_equal(SSL_write(p->client, "ping from device", 16), 16);
    to_server(p);
    assert_int_equal(p->rc, VIGIL_OK);
    assert_int_equal(p->plain.len, 16);
    assert_memory_equal(p->plain.data, "ping from device", 16);
    vigil_buf_consume(&p->plain, p->plain.len);

    assert_int_equal(tls_session_write(p->s, (const uint8_t *)"pong from vigil", 15, &p->wire),
                     VIGIL_OK);
    assert_true(p->wire.len > 15);
    to_client(p);
    n = SSL_read(p->client, reply, sizeof reply);
    assert_int_equal(n, 15);
    assert_memory_equal(reply, "pong from vigil", 15);
}

static void check_cert_handshake(int version, const char *protocol)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.min_version = version, .max_version = version, .cert = pki.good};
    struct pair p;

    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    assert_true(tls_session_established(p.s));
    assert_true(SSL_is_init_finished(p.client));
    assert_string_equal(tls_session_error(p.s), "");
    assert_string_equal(tls_session_identity(p.s), "bed-1");
    assert_string_equal(tls_session_cert_serial(p.s), "1001");
    assert_string_equal(tls_session_protocol(p.s), protocol);
    assert_false(tls_session_used_psk(p.s));
    assert_non_null(strstr(tls_session_cipher(p.s), version == TLS1_3_VERSION ? "TLS_" : "ECDHE"));
    exchange_data(&p);
    pair_close(&p);
    tls_server_unref(srv);
}

static void handshake_tls13_uri(void **state)
{
    check_cert_handshake(TLS1_3_VERSION, "TLSv1.3");
}

static void handshake_tls12_uri(void **state)
{
    check_cert_handshake(TLS1_2_VERSION, "TLSv1.2");
}

static void handshake_cn_identity(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv;
    struct client_opts co = {.cert = pki.cn_only};
    struct pair p;

    o.identity = TLS_IDENTITY_CN;
    srv = server_new(&o);
    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    assert_string_equal(tls_session_identity(p.s), "bed-2");
    assert_string_equal(tls_session_cert_serial(p.s), "1002");
    pair_close(&p);

    /* CN mode ignores the URI and reads "bed 9", which is no device id. */
    co.cert = pki.bad_id;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "client certificate CN is not a valid device id");
    tls_server_unref(srv);
}

static void uri_identity_problems(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.cn_only};

    check_failure(srv, &co, VIGIL_ERR_AUTH, "client certificate has no urn:vigil:device: URI");
    co.cert = pki.two_uris;
    check_failure(srv, &co, VIGIL_ERR_AUTH,
                  "client certificate has more than one urn:vigil:device: URI");
    co.cert = pki.bad_id;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "client certificate URI holds an invalid device id");
    co.max_version = TLS1_2_VERSION;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "client certificate URI holds an invalid device id");
    tls_server_unref(srv);
}

static void no_client_cert_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co13 = {0};
    struct client_opts co12 = {.max_version = TLS1_2_VERSION};

    check_failure(srv, &co13, VIGIL_ERR_AUTH, "no client certificate");
    check_failure(srv, &co12, VIGIL_ERR_AUTH, "no client certificate");
    tls_server_unref(srv);
}

static void optional_client_cert(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv;
    struct client_opts none = {0};
    struct client_opts good = {.cert = pki.good};
    struct client_opts foreign = {.cert = pki.other_ca_client};
    struct pair p;

    o.require_client_cert = false;
    srv = server_new(&o);
    assert_int_equal(handshake(&p, srv, &none), VIGIL_OK);
    assert_true(tls_session_established(p.s));
    assert_string_equal(tls_session_identity(p.s), "");
    assert_string_equal(tls_session_cert_serial(p.s), "");
    pair_close(&p);

    assert_int_equal(handshake(&p, srv, &good), VIGIL_OK);
    assert_string_equal(tls_session_identity(p.s), "bed-1");
    pair_close(&p);

    /* A certificate that is presented must verify. */
    check_failure(srv, &foreign, VIGIL_ERR_AUTH, "certificate not issued by a trusted CA");
    tls_server_unref(srv);
}

static void bad_client_certs_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.other_ca_client};

    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate not issued by a trusted CA");
    co.cert = pki.expired;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate expired");
    co.cert = pki.not_yet;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate not yet valid");
    co.max_version = TLS1_2_VERSION;
    co.cert = pki.expired;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate expired");
    tls_server_unref(srv);
}

static void revoked_cert_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv;
    struct client_opts co = {.cert = pki.revoked};
    struct client_opts good = {.cert = pki.good};
    struct pair p;

    /* Without the CRL the certificate passes. */
    srv = server_new(&o);
    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    pair_close(&p);
    tls_server_unref(srv);

    o.crl_file = pki.crl;
    srv = server_new(&o);
    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate revoked");
    co.max_version = TLS1_2_VERSION;
    check_failure(srv, &co, VIGIL_ERR_AUTH, "certificate revoked");
    assert_int_equal(handshake(&p, srv, &good), VIGIL_OK);
    assert_string_equal(tls_session_identity(p.s), "bed-1");
    pair_close(&p);
    tls_server_unref(srv);
}

static void old_protocol_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.min_version = TLS1_VERSION,
                             .max_version = TLS1_1_VERSION,
                             .cert = pki.good,
                             .weak = true};

    check_failure(srv, &co, VIGIL_ERR_PROTOCOL, "unsupported protocol version TLSv1.1");
    tls_server_unref(srv);
}

static void weak_cipher_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts rsa_kx = {.max_version = TLS1_2_VERSION,
                                 .cert = pki.good,
                                 .weak = true,
                                 .ciphers = "AES128-SHA:@SECLEVEL=0"};
    struct client_opts cbc = {.max_version = TLS1_2_VERSION,
                              .cert = pki.good,
                              .ciphers = "ECDHE-ECDSA-AES128-SHA256"};

    check_failure(srv, &rsa_kx, VIGIL_ERR_PROTOCOL, "no shared cipher");
    check_failure(srv, &cbc, VIGIL_ERR_PROTOCOL, "no shared cipher");
    tls_server_unref(srv);
}

static void garbage_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct tls_session *s;
    struct vigil_buf plain, wire;
    static const char http[] = "GET / HTTP/1.1\r\nHost: vigil\r\n\r\n";

    vigil_buf_init(&plain, BUF_LIMIT);
    vigil_buf_init(&wire, BUF_LIMIT);
    assert_int_equal(tls_session_new(srv, &s), VIGIL_OK);
    assert_int_equal(tls_session_feed(s, (const uint8_t *)http, strlen(http), &plain, &wire),
                     VIGIL_ERR_PROTOCOL);
    assert_string_equal(tls_session_error(s), "plain HTTP request on a TLS port");
    assert_int_equal(plain.len, 0);
    assert_int_equal(tls_session_write(s, (const uint8_t *)"x", 1, &wire), VIGIL_ERR_PROTOCOL);
    tls_session_free(s);
    vigil_buf_release(&plain);
    vigil_buf_release(&wire);
    tls_server_unref(srv);
}

static struct tls_server *psk_server(void)
{
    struct tls_server_opts o = server_opts();

    o.psk_lookup = lookup_psk;
    o.psk_ctx = &psk_calls;
    return server_new(&o);
}

static void check_psk_handshake(int version, const char *protocol)
{
    struct tls_server *srv = psk_server();
    struct client_opts co = {.min_version = version,
                             .max_version = version,
                             .psk_identity = "bed-1",
                             .psk_key = psk_bed1,
                             .psk_len = sizeof psk_bed1};
    struct pair p;

    if (version == TLS1_2_VERSION)
        co.ciphers = "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256";
    psk_calls = 0;
    if (handshake(&p, srv, &co) != VIGIL_OK)
        fail_msg("PSK handshake failed: %s", tls_session_error(p.s));
    assert_int_equal(psk_calls, 1);
    assert_true(tls_session_established(p.s));
    assert_true(tls_session_used_psk(p.s));
    assert_string_equal(tls_session_identity(p.s), "bed-1");
    assert_string_equal(tls_session_cert_serial(p.s), "");
    assert_string_equal(tls_session_protocol(p.s), protocol);
    exchange_data(&p);
    pair_close(&p);
    tls_server_unref(srv);
}

static void psk_tls13_accepted(void **state)
{
    check_psk_handshake(TLS1_3_VERSION, "TLSv1.3");
}

static void psk_tls12_accepted(void **state)
{
    check_psk_handshake(TLS1_2_VERSION, "TLSv1.2");
}

static void psk_failures(void **state)
{
    static const uint8_t wrong[32] = {1, 2, 3};
    struct tls_server *srv = psk_server();
    struct client_opts co = {.min_version = TLS1_3_VERSION,
                             .psk_identity = "bed-1",
                             .psk_key = wrong,
                             .psk_len = sizeof wrong};
    struct client_opts co12 = {.max_version = TLS1_2_VERSION,
                               .ciphers = "PSK-AES128-GCM-SHA256",
                               .psk_identity = "bed-1",
                               .psk_key = wrong,
                               .psk_len = sizeof wrong};

    check_failure(srv, &co, VIGIL_ERR_AUTH, "PSK key mismatch");
    check_failure(srv, &co12, VIGIL_ERR_AUTH, "PSK key mismatch");

    co.psk_identity = co12.psk_identity = "bed-99";
    check_failure(srv, &co, VIGIL_ERR_AUTH, "unknown PSK identity");
    check_failure(srv, &co12, VIGIL_ERR_AUTH, "unknown PSK identity");

    co.psk_identity = co12.psk_identity = "bed/1";
    check_failure(srv, &co, VIGIL_ERR_AUTH, "invalid PSK identity");
    check_failure(srv, &co12, VIGIL_ERR_AUTH, "invalid PSK identity");
    tls_server_unref(srv);
}

static void psk_not_offered_without_lookup(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co12 = {.max_version = TLS1_2_VERSION,
                               .ciphers = "PSK-AES128-GCM-SHA256",
                               .psk_identity = "bed-1",
                               .psk_key = psk_bed1,
                               .psk_len = sizeof psk_bed1};

    check_failure(srv, &co12, VIGIL_ERR_PROTOCOL, "no shared cipher");
    tls_server_unref(srv);
}

static void close_notify_both_ways(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.good};
    struct pair p;
    char byte;

    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    assert_int_equal(SSL_shutdown(p.client), 0);
    to_server(&p);
    assert_int_equal(p.rc, VIGIL_ERR_CLOSED);
    assert_int_equal(tls_session_feed(p.s, NULL, 0, &p.plain, &p.wire), VIGIL_ERR_CLOSED);

    tls_session_shutdown(p.s, &p.wire);
    assert_true(p.wire.len > 0);
    assert_int_equal(tls_session_write(p.s, (const uint8_t *)"x", 1, &p.wire), VIGIL_ERR_CLOSED);
    to_client(&p);
    assert_int_equal(SSL_read(p.client, &byte, 1), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    pair_close(&p);
    tls_server_unref(srv);
}

static void server_shutdown_first(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.good};
    struct pair p;
    char byte;

    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    tls_session_shutdown(p.s, &p.wire);
    to_client(&p);
    assert_int_equal(SSL_read(p.client, &byte, 1), 0);
    assert_int_equal(SSL_get_error(p.client, 0), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(SSL_shutdown(p.client), 1);
    to_server(&p);
    assert_int_equal(p.rc, VIGIL_ERR_CLOSED);
    pair_close(&p);
    tls_server_unref(srv);
}

static void write_before_handshake(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct tls_session *s;
    struct vigil_buf wire;

    vigil_buf_init(&wire, BUF_LIMIT);
    assert_int_equal(tls_session_new(srv, &s), VIGIL_OK);
    assert_int_equal(tls_session_write(s, (const uint8_t *)"x", 1, &wire), VIGIL_ERR_INVALID);
    assert_false(tls_session_established(s));
    assert_string_equal(tls_session_protocol(s), "");
    tls_session_shutdown(s, &wire);
    assert_int_equal(wire.len, 0);
    tls_session_free(s);
    vigil_buf_release(&wire);
    tls_server_unref(srv);
}

static void plain_limit_keeps_data(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.good};
    struct pair p;
    char message[100];
    char received[100];
    size_t got = 0;
    int rounds = 0;

    memset(message, 'm', sizeof message);
    message[99] = 'z';
    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    p.plain.limit = 30;
    assert_int_equal(SSL_write(p.client, message, sizeof message), (int)sizeof message);
    to_server(&p);
    assert_int_equal(p.rc, VIGIL_ERR_LIMIT);
    while (got < sizeof message && rounds++ < 10) {
        memcpy(received + got, p.plain.data, p.plain.len);
        got += p.plain.len;
        vigil_buf_consume(&p.plain, p.plain.len);
        p.rc = tls_session_feed(p.s, NULL, 0, &p.plain, &p.wire);
        assert_true(p.rc == VIGIL_OK || p.rc == VIGIL_ERR_LIMIT);
    }
    assert_int_equal(got, sizeof message);
    assert_memory_equal(received, message, sizeof message);
    assert_int_equal(p.rc, VIGIL_OK);
    pair_close(&p);
    tls_server_unref(srv);
}

static void renegotiation_rejected(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.max_version = TLS1_2_VERSION, .cert = pki.good};
    struct pair p;
    char byte;

    assert_int_equal(handshake(&p, srv, &co), VIGIL_OK);
    assert_int_equal(SSL_renegotiate(p.client), 1);
    assert_true(SSL_do_handshake(p.client) <= 0);
    to_server(&p);
    /* The server sends a no_renegotiation alert and stays up. */
    assert_int_equal(p.rc, VIGIL_OK);
    assert_true(p.wire.len > 0);
    to_client(&p);
    assert_true(SSL_read(p.client, &byte, 1) <= 0);
    ERR_clear_error();
    assert_true(tls_session_established(p.s));
    pair_close(&p);
    tls_server_unref(srv);
}

static void server_unref_while_session_lives(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    struct client_opts co = {.cert = pki.good};
    struct pair p;

    pair_open(&p, srv, &co);
    tls_server_ref(srv);
    tls_server_unref(srv);
    tls_server_unref(srv);
    /* The session's reference keeps the context and its callbacks alive. */
    assert_int_equal(pump(&p), VIGIL_OK);
    assert_string_equal(tls_session_identity(p.s), "bed-1");
    exchange_data(&p);
    pair_close(&p);
}

static void cert_expiry_reported(void **state)
{
    struct tls_server_opts o = server_opts();
    struct tls_server *srv = server_new(&o);
    int64_t left = tls_server_cert_expires_in(srv);

    assert_true(left > 89 * TESTPKI_DAY);
    assert_true(left <= 90 * TESTPKI_DAY);
    tls_server_unref(srv);
}

/* Expects tls_server_new to fail with exactly message. */
static void check_config_error(const struct tls_server_opts *o, const char *message)
{
    struct tls_server *srv = (struct tls_server *)&srv;
    char err[512] = "";

    assert_int_equal(tls_server_new(o, &srv, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_null(srv);
    assert_string_equal(err, message);
}

static void server_file_errors(void **state)
{
    struct tls_server_opts o = server_opts();
    char want[512];

    o.cert_file = pki.missing;
    snprintf(want, sizeof want, "%s: file not found", pki.missing);
    check_config_error(&o, want);

    o.cert_file = pki.not_pem;
    snprintf(want, sizeof want, "%s: no PEM certificate found", pki.not_pem);
    check_config_error(&o, want);

    o.cert_file = pki.dir;
    snprintf(want, sizeof want, "%s: is a directory, expected a PEM file", pki.dir);
    check_config_error(&o, want);

    o.cert_file = pki.server;
    o.key_file = pki.other_key;
    snprintf(want, sizeof want, "%s: private key does not match the certificate in %s",
             pki.other_key, pki.server);
    check_config_error(&o, want);

    o.key_file = pki.server;
    snprintf(want, sizeof want, "%s: no PEM private key found", pki.server);
    check_config_error(&o, want);

    o = server_opts();
    o.ca_file = pki.not_pem;
    snprintf(want, sizeof want, "%s: no PEM certificate found", pki.not_pem);
    check_config_error(&o, want);
}

static void server_cert_dates_checked(void **state)
{
    struct tls_server_opts o = server_opts();
    char err[512] = "";
    struct tls_server *srv = NULL;
    const char *prefix_end;

    o.cert_file = pki.server_expired;
    assert_int_equal(tls_server_new(&o, &srv, err, sizeof err), VIGIL_ERR_CONFIG);
    assert_null(srv);
    prefix_end = strstr(err, ": certificate expired on ");
    assert_non_null(prefix_end);
    assert_int_equal(prefix_end - err, strlen(pki.server_expired));
    assert_non_null(strstr(err, " UTC"));
}

static void server_crl_errors(void **state)
{
    struct tls_server_opts o = server_opts();
    char want[512];

    o.crl_file = pki.crl_foreign;
    snprintf(want, sizeof want, "%s: CRL not signed by the CA in %s", pki.crl_foreign, pki.ca);
    check_config_error(&o, want);

    o.ca_file = pki.other_ca;
    o.crl_file = pki.crl;
    snprintf(want, sizeof want, "%s: CRL issuer is not a CA in %s", pki.crl, pki.other_ca);
    check_config_error(&o, want);

    o.crl_file = pki.not_pem;
    snprintf(want, sizeof want, "%s: no PEM CRL found", pki.not_pem);
    check_config_error(&o, want);

    o = server_opts();
    o.ca_file = NULL;
    check_config_error(&o, "client certificates are required but no CA file is set");
}

static void server_file_permission(void **state)
{
    struct tls_server_opts o = server_opts();
    char locked[128];
    char want[512];

    if (geteuid() == 0)
        skip();
    path(locked, "locked.key");
    assert_int_equal(link(pki.server_key, locked), 0);
    assert_int_equal(chmod(locked, 0), 0);
    o.key_file = locked;
    snprintf(want, sizeof want, "%s: permission denied", locked);
    check_config_error(&o, want);
    assert_int_equal(chmod(locked, 0600), 0);
}

static void crl_lookup(void **state)
{
    assert_int_equal(tls_crl_contains(pki.crl, "10AB"), VIGIL_OK);
    assert_int_equal(tls_crl_contains(pki.crl, "10ab"), VIGIL_OK);
    assert_int_equal(tls_crl_contains(pki.crl, "0010AB"), VIGIL_OK);
    assert_int_equal(tls_crl_contains(pki.crl, "2000"), VIGIL_OK);
    assert_int_equal(tls_crl_contains(pki.crl, "1001"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(tls_crl_contains(pki.missing, "10AB"), VIGIL_ERR_IO);
    assert_int_equal(tls_crl_contains(pki.not_pem, "10AB"), VIGIL_ERR_CONFIG);
    assert_int_equal(tls_crl_contains(pki.crl, "not hex"), VIGIL_ERR_INVALID);
    assert_int_equal(tls_crl_contains(pki.crl, ""), VIGIL_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_tls13_uri),
        cmocka_unit_test(handshake_tls12_uri),
        cmocka_unit_test(handshake_cn_identity),
        cmocka_unit_test(uri_identity_problems),
        cmocka_unit_test(no_client_cert_rejected),
        cmocka_unit_test(optional_client_cert),
        cmocka_unit_test(bad_client_certs_rejected),
        cmocka_unit_test(revoked_cert_rejected),
        cmocka_unit_test(old_protocol_rejected),
        cmocka_unit_test(weak_cipher_rejected),
        cmocka_unit_test(garbage_rejected),
        cmocka_unit_test(psk_tls13_accepted),
        cmocka_unit_test(psk_tls12_accepted),
        cmocka_unit_test(psk_failures),
        cmocka_unit_test(psk_not_offered_without_lookup),
        cmocka_unit_test(close_notify_both_ways),
        cmocka_unit_test(server_shutdown_first),
        cmocka_unit_test(write_before_handshake),
        cmocka_unit_test(plain_limit_keeps_data),
        cmocka_unit_test(renegotiation_rejected),
        cmocka_unit_test(server_unref_while_session_lives),
        cmocka_unit_test(cert_expiry_reported),
        cmocka_unit_test(server_file_errors),
        cmocka_unit_test(server_cert_dates_checked),
        cmocka_unit_test(server_crl_errors),
        cmocka_unit_test(server_file_permission),
        cmocka_unit_test(crl_lookup),
    };

    return cmocka_run_group_tests(tests, setup_pki, teardown_pki);
}
