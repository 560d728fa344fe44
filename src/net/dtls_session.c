/* Server-side DTLS sessions: the handshake after the cookie exchange,
 * retransmission timers, application records in both directions, and the
 * checks a resumed session must pass again. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/alloc.h"
#include "net/dtls_internal.h"

/* Plaintext bytes asked of SSL_read at a time: one maximum record. */
#define DTLS_READ_CHUNK 16384
#define PSK_MAX 64
#define PSK_DIGEST_LEN 32

struct dtls_session *dtls_session_of(const SSL *ssl)
{
    /* ts is the first member, so the TLS session pointer is the DTLS one. */
    return (struct dtls_session *)tls_session_of(ssl);
}

vigil_err dtls_session_create(struct dtls_server *srv, struct dtls_session **out)
{
    struct dtls_session *s = vigil_calloc(1, sizeof *s);
    BIO *bio = NULL;
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (s == NULL)
        goto cleanup;
    s->ts.ssl = SSL_new(srv->tls->ctx);
    bio = s->ts.ssl != NULL ? dtls_bio_new(s) : NULL;
    if (bio == NULL)
        goto cleanup;
    /* One BIO for both directions; SSL_set_bio takes its one reference. */
    SSL_set_bio(s->ts.ssl, bio, bio);
    bio = NULL;
    /* Returns the MTU set, or 0 when it is below the DTLS minimum. */
    if (SSL_set_mtu(s->ts.ssl, srv->mtu) <= 0)
        goto cleanup;
    SSL_set_accept_state(s->ts.ssl);
    SSL_set_app_data(s->ts.ssl, &s->ts);
    tls_server_ref(srv->tls);
    s->ts.srv = srv->tls;
    *out = s;
    s = NULL;
    rc = VIGIL_OK;

cleanup:
    BIO_free(bio);
    if (s != NULL) {
        SSL_free(s->ts.ssl);
        vigil_free(s);
    }
    ERR_clear_error();
    return rc;
}

void dtls_session_free(struct dtls_session *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ts.ssl);
    if (s->ts.srv != NULL)
        tls_server_unref(s->ts.srv);
    vigil_free(s);
}

static vigil_err fail(struct dtls_session *s, vigil_err rc, const char *reason)
{
    tls_session_set_error(&s->ts, reason);
    s->ts.failure = rc;
    return rc;
}

/* SHA-256 of the current key of a PSK identity; false when it has none. */
static bool psk_digest(struct dtls_session *s, const char *identity, uint8_t out[PSK_DIGEST_LEN])
{
    uint8_t key[PSK_MAX];
    size_t n = 0;
    bool ok;

    if (s->ts.srv->psk_lookup != NULL && identity != NULL && device_id_valid(identity))
        n = s->ts.srv->psk_lookup(s->ts.srv->psk_ctx, identity, key, sizeof key);
    ok = n > 0 && n <= sizeof key && EVP_Digest(key, n, out, NULL, EVP_sha256(), NULL) == 1;
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}

/* After a full PSK handshake: a digest of the key goes with the cached
 * session, so that a resumption after the key changed is rejected. */
static void remember_psk(struct dtls_session *s)
{
    uint8_t digest[PSK_DIGEST_LEN];

    if (psk_digest(s, s->ts.identity, digest))
        (void)SSL_SESSION_set1_ticket_appdata(SSL_get_session(s->ts.ssl), digest, sizeof digest);
}

/* A resumed PSK session: the identity must still have the same key. */
static const char *check_resumed_psk(struct dtls_session *s)
{
    const char *identity = SSL_get_psk_identity(s->ts.ssl);
    uint8_t digest[PSK_DIGEST_LEN];
    void *stored = NULL;
    size_t stored_len = 0;

    if (identity == NULL || !psk_digest(s, identity, digest))
        return "resumed session of an unknown PSK identity";
    if (SSL_SESSION_get0_ticket_appdata(SSL_get_session(s->ts.ssl), &stored, &stored_len) != 1 ||
        stored_len != sizeof digest || CRYPTO_memcmp(stored, digest, sizeof digest) != 0)
        return "resumed session of a PSK that has changed";
    snprintf(s->ts.identity, sizeof s->ts.identity, "%s", identity);
    return NULL;
}

/* A resumed certificate session: OpenSSL does not verify again, so the
 * certificate's validity and identity are checked here. Revocations flush
 * the cache (dtls_server_flush_sessions), so the CRL is not read again. */
static const char *check_resumed_cert(struct dtls_session *s)
{
    X509 *peer = SSL_get0_peer_certificate(s->ts.ssl);

    if (peer == NULL)
        return NULL;
    if (X509_cmp_current_time(X509_get0_notAfter(peer)) < 0)
        return "certificate expired";
    return tls_cert_identity(peer, s->ts.srv->identity, s->ts.identity);
}

static vigil_err finish_handshake(struct dtls_session *s)
{
    const char *problem = NULL;

    tls_session_finish_handshake(&s->ts);
    s->resumed = SSL_session_reused(s->ts.ssl) == 1;
    if (!s->resumed) {
        if (s->ts.used_psk)
            remember_psk(s);
    } else if (s->ts.used_psk) {
        problem = check_resumed_psk(s);
    } else {
        problem = check_resumed_cert(s);
    }
    if (problem != NULL) {
        s->ts.established = false;
        dtls_session_forget(s);
        return fail(s, VIGIL_ERR_AUTH, problem);
    }
    if (s->io.established != NULL)
        s->io.established(s->io.ctx);
    return VIGIL_OK;
}

/* True when a record of a later epoch than 0 (encrypted) is in data. */
static bool has_encrypted_record(const uint8_t *data, size_t len)
{
    while (len >= DTLS_RECORD_HEADER_LEN) {
        size_t body = ((size_t)data[11] << 8) | data[12];

        if (data[3] != 0 || data[4] != 0)
            return true;
        if (body > len - DTLS_RECORD_HEADER_LEN)
            return false;
        data += DTLS_RECORD_HEADER_LEN + body;
        len -= DTLS_RECORD_HEADER_LEN + body;
    }
    return false;
}

static vigil_err drive_handshake(struct dtls_session *s, const uint8_t *data, size_t len)
{
    int r = SSL_do_handshake(s->ts.ssl);
    int e;

    if (r == 1)
        return finish_handshake(s);
    e = SSL_get_error(s->ts.ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
        s->ts.closed = true;
        return VIGIL_ERR_CLOSED;
    }
    if (e != SSL_ERROR_WANT_READ)
        return tls_session_fail(&s->ts, e);
    /* After the client's ChangeCipherSpec, an encrypted record that left
     * the handshake waiting is a Finished that did not decrypt. With PSK,
     * that means the client has another key for the identity. */
    if (SSL_get_state(s->ts.ssl) == TLS_ST_SR_CHANGE && s->ts.psk_identity[0] != '\0' &&
        has_encrypted_record(data, len))
        return fail(s, VIGIL_ERR_AUTH, "PSK key mismatch");
    return VIGIL_OK;
}

static vigil_err read_records(struct dtls_session *s)
{
    uint8_t buf[DTLS_READ_CHUNK];

    while (!s->ts.shut && s->ts.failure == VIGIL_OK) {
        size_t got = 0;
        int e;

        if (SSL_read_ex(s->ts.ssl, buf, sizeof buf, &got) == 1) {
            s->io.received(s->io.ctx, buf, got);
            continue;
        }
        e = SSL_get_error(s->ts.ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            return VIGIL_OK;
        if (e == SSL_ERROR_ZERO_RETURN) {
            s->ts.closed = true;
            return VIGIL_ERR_CLOSED;
        }
        return tls_session_fail(&s->ts, e);
    }
    return s->ts.failure;
}

vigil_err dtls_session_feed(struct dtls_session *s, const uint8_t *data, size_t len)
{
    vigil_err rc = VIGIL_OK;

    if (s->ts.failure != VIGIL_OK)
        return s->ts.failure;
    if (s->ts.closed)
        return VIGIL_ERR_CLOSED;
    ERR_clear_error();
    s->in = len > 0 ? data : NULL;
    s->in_len = len;
    if (!s->ts.established)
        rc = drive_handshake(s, data, len);
    if (rc == VIGIL_OK && s->ts.established && s->io.received != NULL)
        rc = read_records(s);
    /* Whatever OpenSSL did not read of the datagram is dropped. */
    s->in = NULL;
    s->in_len = 0;
    ERR_clear_error();
    return rc;
}

int64_t dtls_session_timeout_ms(const struct dtls_session *s)
{
    struct timeval tv;

    if (s->ts.failure != VIGIL_OK || DTLSv1_get_timeout(s->ts.ssl, &tv) != 1)
        return -1;
    /* Rounded up, so the timer never fires before OpenSSL's deadline. */
    return (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
}

vigil_err dtls_session_on_timer(struct dtls_session *s)
{
    vigil_err rc = VIGIL_OK;

    if (s->ts.failure != VIGIL_OK)
        return s->ts.failure;
    ERR_clear_error();
    if (DTLSv1_handle_timeout(s->ts.ssl) < 0)
        rc = fail(s, VIGIL_ERR_PROTOCOL, "handshake timed out: no answer to retransmissions");
    ERR_clear_error();
    return rc;
}

size_t dtls_session_max_write(const struct dtls_session *s)
{
    size_t mtu;

    if (!dtls_session_established(s))
        return 0;
    mtu = DTLS_get_data_mtu(s->ts.ssl);
    return mtu < DTLS_PLAINTEXT_MAX ? mtu : DTLS_PLAINTEXT_MAX;
}

vigil_err dtls_session_write(struct dtls_session *s, const uint8_t *data, size_t len)
{
    size_t written = 0;
    vigil_err rc = VIGIL_OK;

    if (s->ts.failure != VIGIL_OK)
        return s->ts.failure;
    if (!s->ts.established)
        return VIGIL_ERR_INVALID;
    if (s->ts.shut || s->ts.closed)
        return VIGIL_ERR_CLOSED;
    if (len > dtls_session_max_write(s))
        return VIGIL_ERR_LIMIT;
    ERR_clear_error();
    if (len > 0 && SSL_write_ex(s->ts.ssl, data, len, &written) != 1)
        rc = tls_session_fail(&s->ts, SSL_get_error(s->ts.ssl, 0));
    ERR_clear_error();
    return rc;
}

void dtls_session_shutdown(struct dtls_session *s)
{
    ERR_clear_error();
    if (s->ts.established && s->ts.failure == VIGIL_OK && !s->ts.shut) {
        s->ts.shut = true;
        (void)SSL_shutdown(s->ts.ssl);
    }
    ERR_clear_error();
}

void dtls_session_forget(struct dtls_session *s)
{
    SSL_SESSION *sess = SSL_get_session(s->ts.ssl);

    if (sess != NULL)
        (void)SSL_CTX_remove_session(SSL_get_SSL_CTX(s->ts.ssl), sess);
}

bool dtls_session_established(const struct dtls_session *s)
{
    return tls_session_established(&s->ts);
}

const char *dtls_session_error(const struct dtls_session *s)
{
    return tls_session_error(&s->ts);
}

const char *dtls_session_identity(const struct dtls_session *s)
{
    return tls_session_identity(&s->ts);
}

bool dtls_session_used_psk(const struct dtls_session *s)
{
    return tls_session_used_psk(&s->ts);
}

const char *dtls_session_cert_serial(const struct dtls_session *s)
{
    return tls_session_cert_serial(&s->ts);
}

bool dtls_session_resumed(const struct dtls_session *s)
{
    return s->ts.established && s->resumed;
}

const char *dtls_session_cipher(const struct dtls_session *s)
{
    return tls_session_cipher(&s->ts);
}

const char *dtls_session_claimed_identity(const struct dtls_session *s)
{
    return s->ts.psk_identity;
}

bool dtls_is_client_hello(const uint8_t *data, size_t len)
{
    /* Record header, handshake header, client version and random. */
    if (len < DTLS_RECORD_HEADER_LEN + DTLS_HANDSHAKE_HEADER_LEN + 2 + DTLS_RANDOM_LEN)
        return false;
    return data[0] == SSL3_RT_HANDSHAKE && data[1] == DTLS1_VERSION_MAJOR && data[3] == 0 &&
           data[4] == 0 && data[DTLS_RECORD_HEADER_LEN] == SSL3_MT_CLIENT_HELLO;
}

bool dtls_session_same_hello(const struct dtls_session *s, const uint8_t *data, size_t len)
{
    const size_t at = DTLS_RECORD_HEADER_LEN + DTLS_HANDSHAKE_HEADER_LEN + 2;

    return dtls_is_client_hello(data, len) &&
           memcmp(data + at, s->client_random, DTLS_RANDOM_LEN) == 0;
}
