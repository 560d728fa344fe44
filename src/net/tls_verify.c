/* Client certificate checks: after OpenSSL has verified the chain (CA,
 * validity, CRL), the leaf must also carry a usable device identity. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth/pki.h"
#include "net/tls_internal.h"

/* Copies a certificate string into id when it is a valid device id. */
static bool copy_device_id(const unsigned char *data, size_t len, char *id)
{
    if (len == 0 || len > DEVICE_ID_MAX || memchr(data, '\0', len) != NULL)
        return false;
    memcpy(id, data, len);
    id[len] = '\0';
    return device_id_valid(id) != 0;
}

/* Takes the device id from the only "urn:vigil:device:" URI SAN. */
static const char *identity_from_uri(X509 *cert, char *id)
{
    const size_t prefix_len = strlen(PKI_URI_PREFIX);
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    const char *problem = "client certificate has no " PKI_URI_PREFIX " URI";
    int found = 0;
    int i;

    for (i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        const unsigned char *uri;
        size_t len;

        if (gn->type != GEN_URI)
            continue;
        uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        len = (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        if (len < prefix_len || strncasecmp((const char *)uri, PKI_URI_PREFIX, prefix_len) != 0)
            continue;
        if (++found > 1) {
            problem = "client certificate has more than one " PKI_URI_PREFIX " URI";
            break;
        }
        problem = copy_device_id(uri + prefix_len, len - prefix_len, id)
                      ? NULL
                      : "client certificate URI holds an invalid device id";
    }
    GENERAL_NAMES_free(names);
    return problem;
}

/* Takes the device id from the only subject Common Name. */
static const char *identity_from_cn(X509 *cert, char *id)
{
    const X509_NAME *subject = X509_get_subject_name(cert);
    int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int len;
    const char *problem = NULL;

    if (at < 0)
        return "client certificate has no subject CN";
    if (X509_NAME_get_index_by_NID(subject, NID_commonName, at) >= 0)
        return "client certificate has more than one subject CN";
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at)));
    if (len < 0 || !copy_device_id(utf8, (size_t)len, id))
        problem = "client certificate CN is not a valid device id";
    OPENSSL_free(utf8);
    return problem;
}

const char *tls_cert_identity(X509 *cert, enum tls_identity_source source,
                              char id[DEVICE_ID_MAX + 1])
{
    const char *problem;

    /* A device certificate is a leaf: one that may sign others (CA:TRUE)
     * or is marked for servers only is not a device identity. */
    if (X509_check_ca(cert) != 0)
        problem = "client certificate is a CA certificate";
    else if (X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) != 1)
        problem = "client certificate is not for client authentication";
    else if (source == TLS_IDENTITY_CN)
        problem = identity_from_cn(cert, id);
    else
        problem = identity_from_uri(cert, id);
    if (problem != NULL)
        id[0] = '\0';
    return problem;
}

/* Called by OpenSSL for each certificate of the chain, the leaf (depth 0)
 * last. A leaf without a usable identity fails the handshake. */
static int verify_client_cert(int ok, X509_STORE_CTX *store_ctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_session *s = tls_session_of(ssl);
    X509 *cert = X509_STORE_CTX_get_current_cert(store_ctx);
    const char *problem;

    if (!ok || X509_STORE_CTX_get_error_depth(store_ctx) != 0 || s == NULL || cert == NULL)
        return ok;
    problem = tls_cert_identity(cert, s->srv->identity, s->identity);
    if (problem == NULL)
        return 1;
    tls_session_set_error(s, problem);
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

void tls_verify_install(struct tls_server *srv, int mode)
{
    SSL_CTX_set_verify(srv->ctx, mode, mode == SSL_VERIFY_NONE ? NULL : verify_client_cert);
}
