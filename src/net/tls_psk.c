/* TLS-PSK on the server: the PSK identity is a device id, and its key comes
 * from the caller's lookup function. TLS 1.2 uses the PSK cipher suites,
 * TLS 1.3 an external PSK turned into a session for TLS_AES_128_GCM_SHA256. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "net/tls_internal.h"

#define TLS_PSK_MAX 64
/* TLS 1.3 suites with SHA-256, the hash of the PSK sessions built here. */
#define TLS13_PSK_SUITES "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

/* Looks the key of a claimed identity up; returns its length, 0 when the
 * identity is invalid or unknown (the session error records which). */
static size_t lookup_key(struct tls_session *s, const unsigned char *identity, size_t len,
                         uint8_t key[TLS_PSK_MAX])
{
    char id[DEVICE_ID_MAX + 1];
    size_t n;

    if (len == 0 || len > DEVICE_ID_MAX || memchr(identity, '\0', len) != NULL) {
        tls_session_set_error(s, "invalid PSK identity");
        return 0;
    }
    memcpy(id, identity, len);
    id[len] = '\0';
    if (!device_id_valid(id)) {
        tls_session_set_error(s, "invalid PSK identity");
        return 0;
    }
    n = s->srv->psk_lookup(s->srv->psk_ctx, id, key, TLS_PSK_MAX);
    if (n == 0 || n > TLS_PSK_MAX) {
        OPENSSL_cleanse(key, TLS_PSK_MAX);
        tls_session_set_error(s, "unknown PSK identity");
        return 0;
    }
    memcpy(s->psk_identity, id, len + 1);
    return n;
}

/* TLS 1.2. OpenSSL sends unknown_psk_identity when this returns 0. */
static unsigned int find_psk_tls12(SSL *ssl, const char *identity, unsigned char *psk,
                                   unsigned int max_psk_len)
{
    struct tls_session *s = tls_session_of(ssl);
    uint8_t key[TLS_PSK_MAX];
    size_t n;

    if (s == NULL || identity == NULL)
        return 0;
    n = lookup_key(s, (const unsigned char *)identity, strlen(identity), key);
    if (n > max_psk_len)
        n = 0;
    if (n > 0)
        memcpy(psk, key, n);
    OPENSSL_cleanse(key, sizeof key);
    return (unsigned int)n;
}

static SSL_SESSION *make_psk_session(SSL *ssl, const uint8_t *key, size_t len)
{
    static const unsigned char aes128gcm_sha256[] = {0x13, 0x01};
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm_sha256);
    SSL_SESSION *sess = SSL_SESSION_new();

    if (sess == NULL || cipher == NULL || SSL_SESSION_set1_master_key(sess, key, len) != 1 ||
        SSL_SESSION_set_cipher(sess, cipher) != 1 ||
        SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION) != 1) {
        SSL_SESSION_free(sess);
        return NULL;
    }
    return sess;
}

/* TLS 1.3. Returning 0 aborts the handshake; returning 1 with no session
 * would fall back to a certificate handshake, which an unknown identity
 * must not get. */
static int find_psk_tls13(SSL *ssl, const unsigned char *identity, size_t identity_len,
                          SSL_SESSION **sess)
{
    struct tls_session *s = tls_session_of(ssl);
    uint8_t key[TLS_PSK_MAX];
    size_t n;

    *sess = NULL;
    if (s == NULL)
        return 0;
    n = lookup_key(s, identity, identity_len, key);
    if (n > 0)
        *sess = make_psk_session(ssl, key, n);
    OPENSSL_cleanse(key, sizeof key);
    if (n > 0 && *sess == NULL)
        tls_session_set_error(s, "cannot build the TLS 1.3 PSK session");
    return *sess != NULL;
}

/* OpenSSL picks the TLS 1.3 suite before it looks at the PSK, and ignores
 * a PSK whose hash differs from the suite's. With the server preference
 * for TLS_AES_256_GCM_SHA384 every PSK would be ignored, so a ClientHello
 * that offers a PSK is limited to the SHA-256 suites. */
static int limit_suites_for_psk(SSL *ssl, int *alert, void *arg)
{
    const unsigned char *ext;
    size_t len;

    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_psk, &ext, &len) == 1 &&
        SSL_set_ciphersuites(ssl, TLS13_PSK_SUITES) != 1) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

vigil_err tls_psk_install(struct tls_server *srv)
{
    SSL_CTX_set_client_hello_cb(srv->ctx, limit_suites_for_psk, NULL);
    /* No identity hint: clients know their device id. */
    SSL_CTX_set_psk_server_callback(srv->ctx, find_psk_tls12);
    SSL_CTX_set_psk_find_session_callback(srv->ctx, find_psk_tls13);
    return VIGIL_OK;
}
