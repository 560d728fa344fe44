/* Throwaway keys, certificates and CRLs for TLS tests and fuzz harnesses,
 * made with the OpenSSL API (ECDSA P-256, SHA-256). */
#ifndef VIGIL_TESTS_TLS_TESTPKI_H
#define VIGIL_TESTS_TLS_TESTPKI_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TESTPKI_DAY (24L * 3600L)

struct testpki_spec {
    const char *cn;
    const char *uri;   /* URI SAN or NULL */
    const char *uri2;  /* a second URI SAN or NULL */
    long serial;
    long from_s;       /* notBefore, seconds from now */
    long to_s;         /* notAfter, seconds from now */
    bool ca;
};

static inline EVP_PKEY *testpki_key(void)
{
    return EVP_EC_gen("P-256");
}

static inline bool testpki_add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    bool ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;

    X509_EXTENSION_free(ext);
    return ok;
}

/* Makes a certificate for key, signed by issuer (self-signed when NULL).
 * The caller owns the result; NULL on failure. */
static inline X509 *testpki_cert(const struct testpki_spec *spec, EVP_PKEY *key, X509 *issuer,
                                 EVP_PKEY *issuer_key)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    char san[512];
    bool ok = x != NULL;

    ok = ok && X509_set_version(x, 2) == 1 &&
         ASN1_INTEGER_set(X509_get_serialNumber(x), spec->serial) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), spec->from_s) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), spec->to_s) != NULL &&
         X509_set_pubkey(x, key) == 1 &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)spec->cn, -1, -1, 0) == 1;
    ok = ok && X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer)
                                                       : X509_get_subject_name(x)) == 1;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ok = ok && testpki_add_ext(x, &v3, NID_basic_constraints,
                               spec->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    ok = ok && testpki_add_ext(x, &v3, NID_key_usage,
                               spec->ca ? "critical,keyCertSign,cRLSign"
                                        : "critical,digitalSignature");
    ok = ok && testpki_add_ext(x, &v3, NID_subject_key_identifier, "hash");
    if (spec->uri != NULL) {
        if (spec->uri2 != NULL)
            snprintf(san, sizeof san, "URI:%s,URI:%s", spec->uri, spec->uri2);
        else
            snprintf(san, sizeof san, "URI:%s", spec->uri);
        ok = ok && testpki_add_ext(x, &v3, NID_subject_alt_name, san);
    }
    ok = ok && X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Makes a CRL in the name of issuer, signed by sign_key, listing serials. */
static inline X509_CRL *testpki_crl(X509 *issuer, EVP_PKEY *sign_key, const long *serials,
                                    int n, long next_update_s)
{
    X509_CRL *crl = X509_CRL_new();
    ASN1_TIME *now = ASN1_TIME_adj(NULL, time(NULL), 0, -60);
    ASN1_TIME *next = ASN1_TIME_adj(NULL, time(NULL), 0, next_update_s);
    bool ok = crl != NULL && now != NULL && next != NULL;
    int i;

    ok = ok && X509_CRL_set_version(crl, 1) == 1 &&
         X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) == 1 &&
         X509_CRL_set1_lastUpdate(crl, now) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1;
    for (i = 0; ok && i < n; i++) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *serial = ASN1_INTEGER_new();

        ok = r != NULL && serial != NULL && ASN1_INTEGER_set(serial, serials[i]) == 1 &&
             X509_REVOKED_set_serialNumber(r, serial) == 1 &&
             X509_REVOKED_set_revocationDate(r, now) == 1 && X509_CRL_add0_revoked(crl, r) == 1;
        if (!ok)
            X509_REVOKED_free(r);
        ASN1_INTEGER_free(serial);
    }
    ok = ok && X509_CRL_sort(crl) == 1 && X509_CRL_sign(crl, sign_key, EVP_sha256()) > 0;
    ASN1_TIME_free(now);
    ASN1_TIME_free(next);
    if (!ok) {
        X509_CRL_free(crl);
        return NULL;
    }
    return crl;
}

static inline bool testpki_write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");
    bool ok = f != NULL && PEM_write_X509(f, x) == 1;

    if (f != NULL)
        fclose(f);
    return ok;
}

static inline bool testpki_write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");
    bool ok = f != NULL && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1;

    if (f != NULL)
        fclose(f);
    return ok;
}

static inline bool testpki_write_crl(const char *path, X509_CRL *crl)
{
    FILE *f = fopen(path, "w");
    bool ok = f != NULL && PEM_write_X509_CRL(f, crl) == 1;

    if (f != NULL)
        fclose(f);
    return ok;
}

#endif
