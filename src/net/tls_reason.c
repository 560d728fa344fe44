/* Turns a failed TLS session into a short English reason, from the
 * certificate verify result or the OpenSSL error queue. */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls_internal.h"

static const char *version_name(int version)
{
    switch (version) {
    case SSL3_VERSION: return "SSLv3";
    case TLS1_VERSION: return "TLSv1";
    case TLS1_1_VERSION: return "TLSv1.1";
    case TLS1_2_VERSION: return "TLSv1.2";
    case TLS1_3_VERSION: return "TLSv1.3";
    case DTLS1_BAD_VER: return "DTLSv0.9";
    case DTLS1_VERSION: return "DTLSv1";
    case DTLS1_2_VERSION: return "DTLSv1.2";
    default: return NULL;
    }
}

/* Reason for a client certificate that failed the chain check. */
static const char *verify_reason(long result)
{
    switch (result) {
    case X509_V_ERR_CERT_REVOKED: return "certificate revoked";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "certificate expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "certificate not issued by a trusted CA";
    case X509_V_ERR_UNABLE_TO_GET_CRL: return "no CRL for the certificate issuer";
    case X509_V_ERR_CRL_HAS_EXPIRED: return "CRL expired";
    case X509_V_ERR_CRL_NOT_YET_VALID: return "CRL not yet valid";
    case X509_V_ERR_INVALID_PURPOSE: return "certificate not valid for client authentication";
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
        return "certificate key or signature too weak";
    default: return NULL;
    }
}

/* Reasons for OpenSSL's SSL-library reason codes; NULL for the rest. */
static const char *ssl_reason(struct tls_session *s, int reason, vigil_err *rc)
{
    *rc = VIGIL_ERR_PROTOCOL;
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        *rc = VIGIL_ERR_AUTH;
        return "no client certificate";
    case SSL_R_NO_SHARED_CIPHER: return "no shared cipher";
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
        return "no shared signature algorithm";
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
        return "no shared group";
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
        return "plain HTTP request on a TLS port";
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
        return "not a TLS record";
    case SSL_R_BINDER_DOES_NOT_VERIFY:
    case SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC:
    case SSL_R_DIGEST_CHECK_FAILED:
        if (!s->established && s->psk_identity[0] != '\0') {
            *rc = VIGIL_ERR_AUTH;
            return "PSK key mismatch";
        }
        return "bad record MAC";
    case SSL_R_NO_RENEGOTIATION: return "renegotiation refused";
    case SSL_R_UNEXPECTED_EOF_WHILE_READING: return "unexpected end of stream";
    default: return NULL;
    }
}

/* Writes the reason for the first SSL-library error of the queue. */
static vigil_err reason_from_queue(struct tls_session *s)
{
    unsigned long e;
    vigil_err rc = VIGIL_ERR_PROTOCOL;

    while ((e = ERR_get_error()) != 0) {
        int reason = ERR_GET_REASON(e);
        const char *text;

        if (ERR_GET_LIB(e) != ERR_LIB_SSL)
            continue;
        if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_VERSION_TOO_LOW) {
            const char *name = version_name(SSL_client_version(s->ssl));

            if (name != NULL)
                snprintf(s->error, sizeof s->error, "unsupported protocol version %s", name);
            else
                snprintf(s->error, sizeof s->error, "unsupported protocol version 0x%04x",
                         (unsigned)SSL_client_version(s->ssl));
            return rc;
        }
        text = ssl_reason(s, reason, &rc);
        if (text != NULL) {
            tls_session_set_error(s, text);
            return rc;
        }
        /* Codes from SSL_AD_REASON_OFFSET up are alerts the peer sent. */
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            snprintf(s->error, sizeof s->error, "peer sent alert: %s",
                     SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
            return rc;
        }
        text = ERR_reason_error_string(e);
        snprintf(s->error, sizeof s->error, "TLS error: %s", text != NULL ? text : "unknown");
        return rc;
    }
    tls_session_set_error(s, s->established ? "TLS record layer failed" : "TLS handshake failed");
    return rc;
}

vigil_err tls_session_fail(struct tls_session *s, int ssl_error)
{
    long verify = SSL_get_verify_result(s->ssl);
    const char *text = verify_reason(verify);
    vigil_err rc = VIGIL_ERR_AUTH;

    if (s->error[0] != '\0') {
        /* A callback recorded why it rejected the peer. */
    } else if (verify != X509_V_OK) {
        if (text != NULL)
            tls_session_set_error(s, text);
        else
            snprintf(s->error, sizeof s->error, "certificate rejected: %s",
                     X509_verify_cert_error_string(verify));
    } else if (ssl_error == SSL_ERROR_SSL || ssl_error == SSL_ERROR_SYSCALL) {
        rc = reason_from_queue(s);
    } else {
        snprintf(s->error, sizeof s->error, "TLS failed with SSL error %d", ssl_error);
        rc = VIGIL_ERR_PROTOCOL;
    }
    ERR_clear_error();
    s->failure = rc;
    return rc;
}
