/* Parsing and checking certificate signing requests from devices. Only the
 * public key of a request is used: subject and requested extensions of an
 * issued certificate always come from vigil. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "auth/pki_internal.h"

#define PKI_RSA_MIN_BITS 2048
#define PKI_RSA_MAX_BITS 8192 /* bounds the cost of verifying a hostile request */

static vigil_err check_ec_key(const EVP_PKEY *key, char *err, size_t errcap)
{
    char group[64];

    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       NULL) != 1) {
        pki_set_err(err, errcap, "the CSR key is EC without a named curve; use P-256 or P-384");
        return VIGIL_ERR_INVALID;
    }
    if (strcmp(group, SN_X9_62_prime256v1) != 0 && strcmp(group, SN_secp384r1) != 0) {
        pki_set_err(err, errcap, "the CSR key is on curve %s; use P-256 or P-384", group);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

static vigil_err check_key(const EVP_PKEY *key, char *err, size_t errcap)
{
    int bits;

    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC)
        return check_ec_key(key, err, errcap);
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        pki_set_err(err, errcap, "the CSR key type %s is not supported; use EC P-256, P-384 "
                    "or RSA of at least %d bits", OBJ_nid2sn(EVP_PKEY_get_base_id(key)),
                    PKI_RSA_MIN_BITS);
        return VIGIL_ERR_INVALID;
    }
    bits = EVP_PKEY_get_bits(key);
    if (bits < PKI_RSA_MIN_BITS || bits > PKI_RSA_MAX_BITS) {
        pki_set_err(err, errcap, "the CSR key is RSA with %d bits; use %d to %d bits or EC P-256",
                    bits, PKI_RSA_MIN_BITS, PKI_RSA_MAX_BITS);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

/* Checks that the subject has at most one CN and that it equals
 * device_id byte for byte, so an embedded NUL cannot pass. */
static vigil_err check_cn(X509_REQ *req, const char *device_id, char *err, size_t errcap)
{
    const X509_NAME *name = X509_REQ_get_subject_name(req);
    int pos = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    unsigned char *utf8 = NULL;
    int len;
    int same;

    if (pos < 0)
        return VIGIL_OK;
    if (X509_NAME_get_index_by_NID(name, NID_commonName, pos) >= 0) {
        pki_set_err(err, errcap, "the CSR subject has more than one CN");
        return VIGIL_ERR_INVALID;
    }
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos)));
    same = len >= 0 && (size_t)len == strlen(device_id) && memcmp(utf8, device_id, (size_t)len) == 0;
    OPENSSL_free(utf8);
    if (!same) {
        pki_set_err(err, errcap, "the CSR subject CN does not match the device id '%s'",
                    device_id);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

static X509_REQ *read_request(const char *csr_pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(csr_pem, (int)len);
    X509_REQ *req = bio != NULL ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    return req;
}

vigil_err pki_csr_parse(const char *csr_pem, size_t len, const char *device_id, X509_REQ **out,
                        char *err, size_t errcap)
{
    X509_REQ *req = NULL;
    EVP_PKEY *key;
    vigil_err rc = VIGIL_ERR_INVALID;

    *out = NULL;
    if (csr_pem == NULL || len == 0 || len > PKI_CSR_MAX) {
        pki_set_err(err, errcap, "the CSR is empty or longer than %d bytes", PKI_CSR_MAX);
        return VIGIL_ERR_INVALID;
    }
    req = read_request(csr_pem, len);
    if (req == NULL) {
        pki_set_err(err, errcap, "the CSR is not a PEM certificate request");
        goto out;
    }
    key = X509_REQ_get0_pubkey(req);
    if (key == NULL) {
        pki_set_err(err, errcap, "the CSR public key cannot be decoded");
        goto out;
    }
    rc = check_key(key, err, errcap);
    if (rc != VIGIL_OK)
        goto out;
    if (X509_REQ_verify(req, key) != 1) {
        pki_set_err(err, errcap, "the CSR signature does not verify with its public key");
        rc = VIGIL_ERR_INVALID;
        goto out;
    }
    rc = check_cn(req, device_id, err, errcap);

out:
    ERR_clear_error();
    if (rc != VIGIL_OK) {
        X509_REQ_free(req);
        return rc;
    }
    *out = req;
    return VIGIL_OK;
}

vigil_err pki_csr_check(const char *csr_pem, size_t len, const char *device_id, char *err,
                        size_t errcap)
{
    X509_REQ *req = NULL;
    vigil_err rc = pki_csr_parse(csr_pem, len, device_id, &req, err, errcap);

    X509_REQ_free(req);
    return rc;
}
