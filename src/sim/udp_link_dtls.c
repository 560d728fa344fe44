/* DTLS client contexts: PSK or certificate, one SSL per device session. */
#include "sim/udp_link_dtls.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/alloc.h"
#include "core/log.h"

/* The suites offered with a PSK: one with ECDHE for forward secrecy, the
 * CCM_8 suite of constrained CoAP devices, and a GCM one. vigil's DTLS
 * listeners accept all three (src/net/dtls_ctx.c). */
#define PSK_CIPHERS "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-CCM8:PSK-AES128-GCM-SHA256"
#define CERT_CIPHERS                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM8:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define PATH_CAP 4096

struct sim_dtls {
    SSL_CTX *ctx;
    const struct credentials *keys; /* PSK mode; NULL in certificate mode */
    char *cert_dir;                 /* owned; certificate mode */
};

size_t sim_dtls_hex_decode(const char *hex, uint8_t *out, size_t cap)
{
    size_t len = strlen(hex);

    if (len == 0 || len % 2 != 0 || len / 2 > cap)
        return 0;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v = 0;

        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + (size_t)j];
            unsigned d;

            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                d = (unsigned)(c - 'A' + 10);
            else
                return 0;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return len / 2;
}

const char *sim_dtls_error_reason(const char *fallback, char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    if (reason == NULL)
        return fallback;
    snprintf(buf, cap, "%s", reason);
    return buf;
}

/* TLS 1.2 PSK client callback; the identity is the device id stored as the
 * SSL's application data. */
static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
                                  unsigned int max_identity_len, unsigned char *psk,
                                  unsigned int max_psk_len)
{
    const struct sim_dtls *d = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *id = SSL_get_app_data(ssl);
    const char *hex;
    uint8_t key[SIM_DTLS_PSK_MAX];
    size_t n;

    (void)hint;
    if (d == NULL || d->keys == NULL || id == NULL || strlen(id) + 1 > max_identity_len)
        return 0;
    hex = credentials_find(d->keys, id);
    n = hex ? sim_dtls_hex_decode(hex, key, sizeof key) : 0;
    if (n == 0 || n > max_psk_len) {
        OPENSSL_cleanse(key, sizeof key);
        return 0;
    }
    memcpy(identity, id, strlen(id) + 1);
    memcpy(psk, key, n);
    OPENSSL_cleanse(key, sizeof key);
    return (unsigned int)n;
}

static vigil_err new_context(const char *ciphers, struct sim_dtls **out)
{
    struct sim_dtls *d = vigil_calloc(1, sizeof *d);

    *out = NULL;
    if (d == NULL)
        return VIGIL_ERR_NOMEM;
    d->ctx = SSL_CTX_new(DTLS_client_method());
    if (d->ctx == NULL || SSL_CTX_set_min_proto_version(d->ctx, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(d->ctx, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(d->ctx, ciphers) != 1) {
        log_error("cannot create the DTLS client context");
        SSL_CTX_free(d->ctx);
        vigil_free(d);
        return VIGIL_ERR_IO;
    }
    SSL_CTX_set_options(d->ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    /* Sessions are kept by each link for resumption, not in a cache. */
    SSL_CTX_set_session_cache_mode(d->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_app_data(d->ctx, d);
    *out = d;
    return VIGIL_OK;
}

vigil_err sim_dtls_new_psk(const struct credentials *keys, struct sim_dtls **out)
{
    vigil_err rc = new_context(PSK_CIPHERS, out);

    if (rc != VIGIL_OK)
        return rc;
    (*out)->keys = keys;
    SSL_CTX_set_psk_client_callback((*out)->ctx, psk_client_cb);
    SSL_CTX_set_verify((*out)->ctx, SSL_VERIFY_NONE, NULL);
    return VIGIL_OK;
}

vigil_err sim_dtls_new_cert(const char *cert_dir, const char *ca_file, struct sim_dtls **out)
{
    vigil_err rc = new_context(CERT_CIPHERS, out);
    char why[160];

    if (rc != VIGIL_OK)
        return rc;
    (*out)->cert_dir = vigil_strdup(cert_dir);
    if ((*out)->cert_dir == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto cleanup;
    }
    if (SSL_CTX_load_verify_locations((*out)->ctx, ca_file, NULL) != 1) {
        log_error("cannot load the CA file %s: %s", ca_file,
                  sim_dtls_error_reason("unreadable or not PEM", why, sizeof why));
        rc = VIGIL_ERR_CONFIG;
        goto cleanup;
    }
    SSL_CTX_set_verify((*out)->ctx, SSL_VERIFY_PEER, NULL);
    return VIGIL_OK;

cleanup:
    sim_dtls_free(*out);
    *out = NULL;
    return rc;
}

void sim_dtls_free(struct sim_dtls *d)
{
    if (d == NULL)
        return;
    SSL_CTX_free(d->ctx);
    vigil_free(d->cert_dir);
    vigil_free(d);
}

static void cert_paths(const struct sim_dtls *d, const char *identity, char *crt, char *key)
{
    snprintf(crt, PATH_CAP, "%s/%s.crt", d->cert_dir, identity);
    snprintf(key, PATH_CAP, "%s/%s.key", d->cert_dir, identity);
}

/* Loads the certificate chain and key of identity into ssl. */
static vigil_err use_device_cert(const struct sim_dtls *d, SSL *ssl, const char *identity)
{
    char crt[PATH_CAP], key[PATH_CAP], why[160];

    cert_paths(d, identity, crt, key);
    if (SSL_use_certificate_chain_file(ssl, crt) != 1) {
        log_error("%s: cannot load the certificate %s: %s", identity, crt,
                  sim_dtls_error_reason("unreadable or not PEM", why, sizeof why));
        return VIGIL_ERR_INVALID;
    }
    if (SSL_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_check_private_key(ssl) != 1) {
        log_error("%s: cannot use the key %s: %s", identity, key,
                  sim_dtls_error_reason("unreadable, not PEM or not the certificate's key", why,
                                        sizeof why));
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

vigil_err sim_dtls_check_identity(const struct sim_dtls *d, const char *identity)
{
    uint8_t key[SIM_DTLS_PSK_MAX];
    vigil_err rc = VIGIL_OK;
    const char *hex;
    SSL *ssl;

    if (d->keys != NULL) {
        hex = credentials_find(d->keys, identity);
        if (hex == NULL) {
            log_error("no PSK for %s in the keys file; add a line \"%s <hex key>\"", identity,
                      identity);
            return VIGIL_ERR_NOT_FOUND;
        }
        if (sim_dtls_hex_decode(hex, key, sizeof key) == 0) {
            log_error("the PSK of %s is not 1 to %d bytes of hex", identity, SIM_DTLS_PSK_MAX);
            rc = VIGIL_ERR_INVALID;
        }
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    ssl = SSL_new(d->ctx);
    if (ssl == NULL)
        return VIGIL_ERR_NOMEM;
    rc = use_device_cert(d, ssl, identity);
    SSL_free(ssl);
    return rc;
}

SSL *sim_dtls_new_ssl(struct sim_dtls *d, const char *identity, const char *server_ip)
{
    SSL *ssl = SSL_new(d->ctx);

    if (ssl == NULL) {
        log_error("%s: cannot create a DTLS session", identity);
        return NULL;
    }
    SSL_set_app_data(ssl, (void *)identity);
    if (d->keys == NULL) {
        if (use_device_cert(d, ssl, identity) != VIGIL_OK ||
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), server_ip) != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}
