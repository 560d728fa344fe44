/* Server-side TLS sessions driven through two memory BIOs: the caller feeds
 * ciphertext in and sends whatever lands in wire. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/alloc.h"
#include "net/tls_internal.h"

/* Plaintext bytes asked of SSL_read at a time: one maximum TLS record. */
#define TLS_READ_CHUNK 16384

struct tls_session *tls_session_of(const SSL *ssl)
{
    return ssl != NULL ? SSL_get_app_data(ssl) : NULL;
}

void tls_session_set_error(struct tls_session *s, const char *reason)
{
    if (s->error[0] == '\0')
        snprintf(s->error, sizeof s->error, "%s", reason);
}

vigil_err tls_session_new(struct tls_server *srv, struct tls_session **out)
{
    struct tls_session *s = vigil_calloc(1, sizeof *s);
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    ERR_clear_error();
    if (s == NULL)
        goto cleanup;
    s->ssl = SSL_new(srv->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL)
        goto cleanup;
    /* An empty memory BIO reports "retry", so SSL requests more input
     * instead of seeing the end of the stream. */
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    SSL_set_app_data(s->ssl, s);
    tls_server_ref(srv);
    s->srv = srv;
    *out = s;
    s = NULL;
    rc = VIGIL_OK;

cleanup:
    if (s != NULL) {
        /* Only reached before SSL_set_bio, so the BIOs are still ours. */
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        SSL_free(s->ssl);
        vigil_free(s);
    }
    ERR_clear_error();
    return rc;
}

void tls_session_free(struct tls_session *s)
{
    if (s == NULL)
        return;
    SSL_free(s->ssl);
    tls_server_unref(s->srv);
    vigil_free(s);
}

/* Moves pending ciphertext into wire; what does not fit stays in the BIO. */
static vigil_err drain_wire(struct tls_session *s, struct vigil_buf *wire)
{
    size_t pending;

    while ((pending = BIO_ctrl_pending(s->wbio)) > 0) {
        size_t room = wire->limit - wire->len;
        size_t n = pending < room ? pending : room;
        vigil_err rc;

        if (n == 0)
            return VIGIL_ERR_LIMIT;
        if (n > INT_MAX)
            n = INT_MAX;
        rc = vigil_buf_reserve(wire, n);
        if (rc != VIGIL_OK)
            return rc;
        if (BIO_read(s->wbio, wire->data + wire->len, (int)n) != (int)n)
            return VIGIL_ERR_NOMEM;
        wire->len += n;
    }
    return VIGIL_OK;
}

static void take_peer_serial(struct tls_session *s)
{
    X509 *peer = SSL_get0_peer_certificate(s->ssl);
    BIGNUM *bn = peer != NULL ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(peer), NULL) : NULL;
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

    if (hex != NULL)
        snprintf(s->serial, sizeof s->serial, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
}

void tls_session_finish_handshake(struct tls_session *s)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);

    s->established = true;
    if (SSL_version(s->ssl) == TLS1_3_VERSION)
        s->used_psk = SSL_session_reused(s->ssl) == 1;
    else
        s->used_psk = cipher != NULL && SSL_CIPHER_get_auth_nid(cipher) == NID_auth_psk;
    /* A PSK the server ignored proves nothing. */
    if (s->used_psk)
        memcpy(s->identity, s->psk_identity, sizeof s->identity);
    take_peer_serial(s);
}

static vigil_err drive_handshake(struct tls_session *s)
{
    int r = SSL_do_handshake(s->ssl);
    int e;

    if (r == 1) {
        tls_session_finish_handshake(s);
        return VIGIL_OK;
    }
    e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return VIGIL_OK;
    if (e == SSL_ERROR_ZERO_RETURN) {
        s->closed = true;
        return VIGIL_ERR_CLOSED;
    }
    return tls_session_fail(s, e);
}

/* True when SSL or its input BIO still hold bytes that may decrypt to
 * application data. */
static bool input_pending(struct tls_session *s)
{
    return SSL_has_pending(s->ssl) || BIO_ctrl_pending(s->rbio) > 0;
}

static vigil_err read_plain(struct tls_session *s, struct vigil_buf *plain)
{
    for (;;) {
        size_t room = plain->limit - plain->len;
        size_t got = 0;
        vigil_err rc;
        int e;

        if (room == 0)
            return input_pending(s) ? VIGIL_ERR_LIMIT : VIGIL_OK;
        if (room > TLS_READ_CHUNK)
            room = TLS_READ_CHUNK;
        rc = vigil_buf_reserve(plain, room);
        if (rc != VIGIL_OK)
            return rc;
        if (SSL_read_ex(s->ssl, plain->data + plain->len, room, &got) == 1) {
            plain->len += got;
            continue;
        }
        e = SSL_get_error(s->ssl, 0);
        if (e == SSL_ERROR_WANT_READ)
            return VIGIL_OK;
        if (e == SSL_ERROR_ZERO_RETURN) {
            s->closed = true;
            return VIGIL_ERR_CLOSED;
        }
        return tls_session_fail(s, e);
    }
}

vigil_err tls_session_feed(struct tls_session *s, const uint8_t *in, size_t len,
                           struct vigil_buf *plain, struct vigil_buf *wire)
{
    vigil_err rc = VIGIL_OK;
    vigil_err wire_rc;

    if (s->failure != VIGIL_OK)
        return s->failure;
    if (s->closed)
        return VIGIL_ERR_CLOSED;
    if (len > INT_MAX)
        return VIGIL_ERR_INVALID;
    ERR_clear_error();
    if (len > 0 && BIO_write(s->rbio, in, (int)len) != (int)len)
        rc = VIGIL_ERR_NOMEM;
    if (rc == VIGIL_OK && !s->established)
        rc = drive_handshake(s);
    if (rc == VIGIL_OK && s->established)
        rc = read_plain(s, plain);
    /* Drained on failure too, because wire then contains the alert. */
    wire_rc = drain_wire(s, wire);
    if (rc == VIGIL_OK)
        rc = wire_rc;
    ERR_clear_error();
    return rc;
}

vigil_err tls_session_write(struct tls_session *s, const uint8_t *data, size_t len,
                            struct vigil_buf *wire)
{
    vigil_err rc = VIGIL_OK;
    size_t written = 0;

    if (s->failure != VIGIL_OK)
        return s->failure;
    if (!s->established)
        return VIGIL_ERR_INVALID;
    if (s->shut)
        return VIGIL_ERR_CLOSED;
    ERR_clear_error();
    if (len > 0 && SSL_write_ex(s->ssl, data, len, &written) != 1)
        rc = tls_session_fail(s, SSL_get_error(s->ssl, 0));
    if (rc == VIGIL_OK)
        rc = drain_wire(s, wire);
    else
        (void)drain_wire(s, wire);
    ERR_clear_error();
    return rc;
}

void tls_session_shutdown(struct tls_session *s, struct vigil_buf *wire)
{
    ERR_clear_error();
    if (s->established && s->failure == VIGIL_OK && !s->shut) {
        s->shut = true;
        (void)SSL_shutdown(s->ssl);
    }
    (void)drain_wire(s, wire);
    ERR_clear_error();
}

bool tls_session_established(const struct tls_session *s)
{
    return s->established && s->failure == VIGIL_OK;
}

const char *tls_session_error(const struct tls_session *s)
{
    return s->error;
}

const char *tls_session_identity(const struct tls_session *s)
{
    return s->established ? s->identity : "";
}

bool tls_session_used_psk(const struct tls_session *s)
{
    return s->established && s->used_psk;
}

const char *tls_session_cert_serial(const struct tls_session *s)
{
    return s->established ? s->serial : "";
}

const char *tls_session_protocol(const struct tls_session *s)
{
    return s->established ? SSL_get_version(s->ssl) : "";
}

const char *tls_session_cipher(const struct tls_session *s)
{
    return s->established ? SSL_get_cipher_name(s->ssl) : "";
}
