/* libFuzzer harness for the server side of DTLS: arbitrary datagrams go to
 * the cookie exchange of a listener, and once a ClientHello is accepted,
 * to the session it started. The context has client certificates, a CRL
 * and PSK. ASan and LSan catch a crash or a leak, and a failure without a
 * reason aborts.
 *
 * Input: datagrams, each a 2-byte big-endian length and that many bytes.
 * A ClientHello that carries a 32-byte cookie gets the listener's real
 * cookie spliced in, so inputs reach the handshake past the cookie. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/support/tls_testpki.h"
#include "net/dtls.h"

#define COOKIE_LEN 32
#define RECORD_HEADER 13
#define HANDSHAKE_HEADER 12
/* Offset of the session id length in a ClientHello datagram. */
#define SESSION_ID_AT (RECORD_HEADER + HANDSHAKE_HEADER + 2 + 32)
#define DATAGRAM_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dtls_server *server;
static struct dtls_listener *listener;
static struct sockaddr_in peer;
static uint8_t cookie[COOKIE_LEN];
static char dir[64];
static char files[4][128];

static size_t lookup_psk(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    (void)ctx;
    if (strcmp(identity, "bed-1") != 0 || cap < 16)
        return 0;
    memset(key, 0x5a, 16);
    return 16;
}

static void remove_files(void)
{
    dtls_listener_free(listener);
    dtls_server_free(server);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
}

/* Writes a CA, a server certificate and key, and a CRL into dir. */
static int write_pki(void)
{
    struct testpki_spec ca_spec = {"Fuzz CA", NULL, NULL, 1, -TESTPKI_DAY, 30 * TESTPKI_DAY, true};
    struct testpki_spec srv_spec = {"vigil", NULL, NULL, 2, -TESTPKI_DAY, 30 * TESTPKI_DAY, false};
    long revoked[] = {3};
    EVP_PKEY *ca_key = testpki_key();
    EVP_PKEY *key = testpki_key();
    X509 *ca = testpki_cert(&ca_spec, ca_key, NULL, NULL);
    X509 *cert = testpki_cert(&srv_spec, key, ca, ca_key);
    X509_CRL *crl = testpki_crl(ca, ca_key, revoked, 1, 30 * TESTPKI_DAY);
    int ok = ca != NULL && cert != NULL && crl != NULL && testpki_write_cert(files[0], ca) &&
             testpki_write_cert(files[1], cert) && testpki_write_key(files[2], key) &&
             testpki_write_crl(files[3], crl);

    X509_CRL_free(crl);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ok;
}

/* Keeps the cookie of the HelloVerifyRequest the listener sends. */
static void capture_cookie(void *ctx, const uint8_t *data, size_t len)
{
    const size_t at = RECORD_HEADER + HANDSHAKE_HEADER + 2;

    (void)ctx;
    if (len >= at + 1 + COOKIE_LEN && data[at] == COOKIE_LEN)
        memcpy(cookie, data + at + 1, COOKIE_LEN);
}

/* Gets a cookie from the listener with the smallest ClientHello it replies to. */
static void learn_cookie(void)
{
    uint8_t hello[SESSION_ID_AT + 2] = {0};
    const size_t body = sizeof hello - RECORD_HEADER - HANDSHAKE_HEADER;

    hello[0] = 22;                      /* handshake record */
    hello[1] = 0xfe;                    /* DTLS 1.0 record version */
    hello[2] = 0xff;
    hello[12] = (uint8_t)(sizeof hello - RECORD_HEADER);
    hello[13] = 1;                      /* ClientHello */
    hello[16] = (uint8_t)body;          /* message length */
    hello[24] = (uint8_t)body;          /* fragment length */
    hello[25] = 0xfe;                   /* client version DTLS 1.2 */
    hello[26] = 0xfd;
    if (dtls_listen(listener, (const struct sockaddr *)&peer, sizeof peer, hello, sizeof hello, 0,
                    capture_cookie, NULL) != DTLS_LISTEN_VERIFY_SENT)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct dtls_server_opts opts = {0};
    char err[512];

    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "/tmp/vigil-fuzz-dtls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(files[0], sizeof files[0], "%s/ca.pem", dir);
    snprintf(files[1], sizeof files[1], "%s/server.pem", dir);
    snprintf(files[2], sizeof files[2], "%s/server.key", dir);
    snprintf(files[3], sizeof files[3], "%s/crl.pem", dir);
    if (!write_pki())
        abort();
    opts.tls.ca_file = files[0];
    opts.tls.cert_file = files[1];
    opts.tls.key_file = files[2];
    opts.tls.crl_file = files[3];
    opts.tls.require_client_cert = true;
    opts.tls.psk_lookup = lookup_psk;
    opts.session_cache_size = 16;
    if (dtls_server_new(&opts, &server, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "dtls_server_new: %s\n", err);
        abort();
    }
    if (dtls_listener_new(server, &listener) != VIGIL_OK)
        abort();
    peer.sin_family = AF_INET;
    peer.sin_port = htons(5684);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The clock stays at 0, so the cookie secret never rotates. */
    learn_cookie();
    atexit(remove_files);
    return 0;
}

/* Replaces a 32-byte cookie in a ClientHello with the valid one. */
static void splice_cookie(uint8_t *d, size_t len)
{
    size_t at;

    if (!dtls_is_client_hello(d, len) || len <= SESSION_ID_AT)
        return;
    at = SESSION_ID_AT + 1 + d[SESSION_ID_AT];
    if (at + 1 + COOKIE_LEN <= len && d[at] == COOKIE_LEN)
        memcpy(d + at + 1, cookie, COOKIE_LEN);
}

static void discard(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
}

static void check_failure(const struct dtls_session *s, vigil_err rc)
{
    if ((rc == VIGIL_ERR_AUTH || rc == VIGIL_ERR_PROTOCOL) && dtls_session_error(s)[0] == '\0')
        abort();
}

/* Feeds one datagram to the listener or to the session it started. */
static vigil_err feed(struct dtls_session **s, uint8_t *d, size_t len)
{
    struct dtls_session_io io = {discard, NULL, discard, NULL};
    vigil_err rc;

    if (*s != NULL) {
        rc = dtls_session_feed(*s, d, len);
        check_failure(*s, rc);
        return rc;
    }
    splice_cookie(d, len);
    if (dtls_listen(listener, (const struct sockaddr *)&peer, sizeof peer, d, len, 0, discard,
                    NULL) != DTLS_LISTEN_ACCEPTED)
        return VIGIL_OK;
    if (dtls_listener_accept(listener, &io, s) != VIGIL_OK)
        abort();
    rc = dtls_session_feed(*s, NULL, 0);
    check_failure(*s, rc);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t datagram[DATAGRAM_MAX];
    struct dtls_session *s = NULL;
    vigil_err rc = VIGIL_OK;
    size_t at = 0;

    while (rc == VIGIL_OK && size - at >= 2) {
        size_t len = ((size_t)data[at] << 8) | data[at + 1];

        at += 2;
        if (len > size - at)
            len = size - at;
        if (len > sizeof datagram)
            len = sizeof datagram;
        memcpy(datagram, data + at, len);
        at += len;
        rc = feed(&s, datagram, len);
    }
    if (s != NULL) {
        (void)dtls_session_on_timer(s);
        dtls_session_shutdown(s);
        dtls_session_free(s);
    }
    return 0;
}
