/* DTLS server contexts: protocol and cipher policy, built from the checked
 * TLS files, and the bounded cache of resumable sessions. */
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/alloc.h"
#include "net/dtls_internal.h"

/* With PSK allowed, the PSK suites come first. A client offers them only
 * when it has a key, and server preference would otherwise pick a
 * certificate suite it cannot complete. PSK-AES128-CCM8 is the suite
 * RFC 7252 requires of CoAP PSK devices, ECDHE-ECDSA-AES128-CCM8 the one
 * for certificates. Every suite is an AEAD; only ECDHE-PSK has forward
 * secrecy among the PSK ones. */
#define DTLS_PSK_CIPHERS                                                         \
    "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305:"   \
    "PSK-AES128-GCM-SHA256:PSK-AES256-CCM:PSK-AES128-CCM:PSK-AES128-CCM8:"
#define DTLS_CERT_CIPHERS                                                        \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                \
    "ECDHE-ECDSA-AES256-CCM:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-CCM8"
#define DTLS_SESSION_TIMEOUT_S 7200
/* OpenSSL 3.0 rejects a smaller MTU in SSL_set_mtu. */
#define DTLS_MTU_MIN 256

static vigil_err apply_dtls_policy(SSL_CTX *ctx, bool psk, char *err, size_t errcap)
{
    const char *ciphers = psk ? DTLS_PSK_CIPHERS DTLS_CERT_CIPHERS : DTLS_CERT_CIPHERS;

    SSL_CTX_set_security_level(ctx, 2);
    /* No path MTU discovery, because the datagram BIO has no socket to
     * ask: the MTU is set per session. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                                 SSL_OP_NO_QUERY_MTU);
    /* Needed to resume a session under SSL_VERIFY_PEER. */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"vigil-dtls", 10) != 1) {
        tls_format_openssl_error(err, errcap, "DTLS session id context");
        return VIGIL_ERR_CONFIG;
    }
    if (SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION) != 1) {
        tls_format_openssl_error(err, errcap, "DTLS protocol versions");
        return VIGIL_ERR_CONFIG;
    }
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        tls_format_openssl_error(err, errcap, "DTLS cipher suites");
        return VIGIL_ERR_CONFIG;
    }
    if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        tls_format_openssl_error(err, errcap, "DTLS groups " TLS_GROUPS);
        return VIGIL_ERR_CONFIG;
    }
    dtls_cookie_install(ctx);
    return VIGIL_OK;
}

static void configure_cache(SSL_CTX *ctx, const struct dtls_server_opts *opts)
{
    if (opts->session_cache_size == 0) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        return;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, (long)opts->session_cache_size);
    SSL_CTX_set_timeout(ctx, opts->session_timeout_s != 0 ? (long)opts->session_timeout_s
                                                          : DTLS_SESSION_TIMEOUT_S);
}

vigil_err dtls_server_new(const struct dtls_server_opts *opts, struct dtls_server **out, char *err,
                          size_t errcap)
{
    static const struct tls_policy policy = {DTLS_server_method, apply_dtls_policy};
    struct dtls_server *srv;
    vigil_err rc;

    *out = NULL;
    if (opts->mtu != 0 && opts->mtu < DTLS_MTU_MIN) {
        snprintf(err, errcap, "DTLS MTU %u is below the minimum of %d", opts->mtu, DTLS_MTU_MIN);
        return VIGIL_ERR_CONFIG;
    }
    srv = vigil_calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errcap, "out of memory");
        return VIGIL_ERR_NOMEM;
    }
    rc = tls_server_build(&opts->tls, &policy, &srv->tls, err, errcap);
    if (rc != VIGIL_OK) {
        vigil_free(srv);
        return rc;
    }
    srv->mtu = opts->mtu != 0 ? opts->mtu : DTLS_MTU_DEFAULT;
    configure_cache(srv->tls->ctx, opts);
    *out = srv;
    return VIGIL_OK;
}

void dtls_server_free(struct dtls_server *srv)
{
    if (srv == NULL)
        return;
    tls_server_unref(srv->tls);
    vigil_free(srv);
}

void dtls_server_flush_sessions(struct dtls_server *srv)
{
    /* A time of 0 removes every session, expired or not. */
    SSL_CTX_flush_sessions(srv->tls->ctx, 0);
}

size_t dtls_server_cached_sessions(const struct dtls_server *srv)
{
    long n = SSL_CTX_sess_number(srv->tls->ctx);

    return n > 0 ? (size_t)n : 0;
}
