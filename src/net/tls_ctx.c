/* TLS server contexts: protocol policy, loading of the checked PEM files,
 * reference counting. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "net/tls.h"
#include "net/tls_files.h"
#include "net/tls_internal.h"

/* TLS 1.2 suites: forward secrecy with an AEAD only. */
#define TLS12_CIPHERS                                                              \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                  \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS12_PSK_CIPHERS \
    ":ECDHE-PSK-CHACHA20-POLY1305:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256"
#define TLS13_SUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
#define TLS_VERIFY_DEPTH 8

void tls_format_time(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(out, cap, "(invalid time)");
}

bool tls_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return false;
    *out = (int64_t)timegm(&tm);
    return true;
}

void tls_format_openssl_error(char *err, size_t errcap, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errcap, "%s: %s", what, reason != NULL ? reason : "unknown OpenSSL error");
    ERR_clear_error();
}

/* Versions, options, suites and groups shared by every server context. */
static vigil_err apply_policy(SSL_CTX *ctx, bool psk, char *err, size_t errcap)
{
    const char *ciphers = psk ? TLS12_CIPHERS TLS12_PSK_CIPHERS : TLS12_CIPHERS;

    SSL_CTX_set_security_level(ctx, 2);
    /* No tickets and no session cache: every connection runs a full handshake,
     * so each one is checked against the current CA, CRL and PSK table. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* OpenSSL refuses to resume a session, which is how a TLS 1.3 PSK is
     * used, under SSL_VERIFY_PEER unless a session id context is set. */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"vigil", 5) != 1) {
        tls_format_openssl_error(err, errcap, "TLS session id context");
        return VIGIL_ERR_CONFIG;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1 ||
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        tls_format_openssl_error(err, errcap, "TLS protocol versions");
        return VIGIL_ERR_CONFIG;
    }
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1) {
        tls_format_openssl_error(err, errcap, "TLS cipher suites");
        return VIGIL_ERR_CONFIG;
    }
    if (SSL_CTX_set1_groups_list(ctx, TLS_GROUPS) != 1) {
        tls_format_openssl_error(err, errcap, "TLS groups " TLS_GROUPS);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

/* Installs the certificate chain and key that tls_files_load checked. */
static vigil_err use_server_material(SSL_CTX *ctx, const struct tls_server_opts *opts,
                                     struct tls_material *m, char *err, size_t errcap)
{
    int i;

    if (SSL_CTX_use_certificate(ctx, m->leaf) != 1) {
        tls_format_openssl_error(err, errcap, opts->cert_file);
        return VIGIL_ERR_CONFIG;
    }
    for (i = 0; i < sk_X509_num(m->chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(m->chain, i)) != 1) {
            tls_format_openssl_error(err, errcap, opts->cert_file);
            return VIGIL_ERR_CONFIG;
        }
    }
    if (SSL_CTX_use_PrivateKey(ctx, m->key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        tls_format_openssl_error(err, errcap, opts->key_file);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

/* Puts the client CAs and CRLs into the context's store and sends the CA
 * names in CertificateRequest so that clients can pick a certificate. */
static vigil_err use_client_ca(SSL_CTX *ctx, const struct tls_server_opts *opts,
                               struct tls_material *m, char *err, size_t errcap)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int i;

    for (i = 0; i < sk_X509_num(m->cas); i++) {
        X509 *ca = sk_X509_value(m->cas, i);

        if (X509_STORE_add_cert(store, ca) != 1 || SSL_CTX_add_client_CA(ctx, ca) != 1) {
            tls_format_openssl_error(err, errcap, opts->ca_file);
            return VIGIL_ERR_CONFIG;
        }
    }
    for (i = 0; i < sk_X509_CRL_num(m->crls); i++) {
        if (X509_STORE_add_crl(store, sk_X509_CRL_value(m->crls, i)) != 1) {
            tls_format_openssl_error(err, errcap, opts->crl_file);
            return VIGIL_ERR_CONFIG;
        }
    }
    /* CRL_CHECK without CRL_CHECK_ALL checks the leaf only: the CRL file
     * contains the revocations of the CA that issues device certificates. */
    if (sk_X509_CRL_num(m->crls) > 0)
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return VIGIL_OK;
}

static int verify_mode(const struct tls_server_opts *opts)
{
    if (opts->require_client_cert)
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    if (opts->ca_file != NULL)
        return SSL_VERIFY_PEER;
    return SSL_VERIFY_NONE;
}

static vigil_err check_opts(const struct tls_server_opts *opts, char *err, size_t errcap)
{
    if (opts->cert_file == NULL || opts->key_file == NULL) {
        snprintf(err, errcap, "TLS needs both a certificate file and a key file");
        return VIGIL_ERR_CONFIG;
    }
    if (opts->require_client_cert && opts->ca_file == NULL) {
        snprintf(err, errcap, "client certificates are required but no CA file is set");
        return VIGIL_ERR_CONFIG;
    }
    if (opts->crl_file != NULL && opts->ca_file == NULL) {
        snprintf(err, errcap, "%s: a CRL needs the CA file of its issuer", opts->crl_file);
        return VIGIL_ERR_CONFIG;
    }
    if (opts->identity != TLS_IDENTITY_URI && opts->identity != TLS_IDENTITY_CN) {
        snprintf(err, errcap, "invalid TLS identity source %d", (int)opts->identity);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

static vigil_err build_ctx(struct tls_server *srv, const struct tls_server_opts *opts,
                           const struct tls_policy *policy, struct tls_material *m, char *err,
                           size_t errcap)
{
    vigil_err rc;

    srv->ctx = SSL_CTX_new(policy->method());
    if (srv->ctx == NULL) {
        tls_format_openssl_error(err, errcap, "cannot create the TLS context");
        return VIGIL_ERR_NOMEM;
    }
    SSL_CTX_set_app_data(srv->ctx, srv);
    rc = policy->apply(srv->ctx, opts->psk_lookup != NULL, err, errcap);
    if (rc == VIGIL_OK)
        rc = use_server_material(srv->ctx, opts, m, err, errcap);
    if (rc == VIGIL_OK && opts->ca_file != NULL)
        rc = use_client_ca(srv->ctx, opts, m, err, errcap);
    if (rc == VIGIL_OK && opts->psk_lookup != NULL)
        rc = tls_psk_install(srv);
    if (rc == VIGIL_OK) {
        tls_verify_install(srv, verify_mode(opts));
        SSL_CTX_set_verify_depth(srv->ctx, TLS_VERIFY_DEPTH);
    }
    return rc;
}

vigil_err tls_server_build(const struct tls_server_opts *opts, const struct tls_policy *policy,
                           struct tls_server **out, char *err, size_t errcap)
{
    struct tls_material m = {0};
    struct tls_server *srv = NULL;
    vigil_err rc;

    *out = NULL;
    ERR_clear_error();
    rc = check_opts(opts, err, errcap);
    if (rc == VIGIL_OK)
        rc = tls_files_load(opts, &m, err, errcap);
    if (rc != VIGIL_OK)
        goto cleanup;

    srv = vigil_calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errcap, "out of memory");
        rc = VIGIL_ERR_NOMEM;
        goto cleanup;
    }
    atomic_init(&srv->refs, 1);
    srv->identity = opts->identity;
    srv->psk_lookup = opts->psk_lookup;
    srv->psk_ctx = opts->psk_ctx;
    if (!tls_time_to_unix(X509_get0_notAfter(m.leaf), &srv->not_after))
        srv->not_after = 0;
    rc = build_ctx(srv, opts, policy, &m, err, errcap);
    if (rc != VIGIL_OK)
        goto cleanup;
    *out = srv;
    srv = NULL;

cleanup:
    if (srv != NULL) {
        SSL_CTX_free(srv->ctx);
        vigil_free(srv);
    }
    tls_files_free(&m);
    ERR_clear_error();
    return rc;
}

vigil_err tls_server_new(const struct tls_server_opts *opts, struct tls_server **out, char *err,
                         size_t errcap)
{
    static const struct tls_policy policy = {TLS_server_method, apply_policy};

    return tls_server_build(opts, &policy, out, err, errcap);
}

void tls_server_ref(struct tls_server *srv)
{
    atomic_fetch_add(&srv->refs, 1);
}

void tls_server_unref(struct tls_server *srv)
{
    if (srv == NULL || atomic_fetch_sub(&srv->refs, 1) != 1)
        return;
    SSL_CTX_free(srv->ctx);
    vigil_free(srv);
}

int64_t tls_server_cert_expires_in(const struct tls_server *srv)
{
    return srv->not_after - vigil_time_now_us() / 1000000;
}
