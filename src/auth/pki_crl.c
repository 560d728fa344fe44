/* The certificate revocation list: revoking, ending rotation overlaps and
 * writing <data-dir>/pki/crl.pem from the revoked records. */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "auth/pki_internal.h"
#include "core/alloc.h"
#include "core/log.h"

/* Revoked records collected into a CRL being built. */
struct crl_fill {
    X509_CRL *crl;
    size_t failed;
};

static X509_CRL *read_crl(const struct pki *pki)
{
    BIO *bio = BIO_new_file(pki->crl_path, "r");
    X509_CRL *crl = bio != NULL ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    ERR_clear_error();
    return crl;
}

int64_t pki_crl_next_update(const struct pki *pki)
{
    X509_CRL *crl = read_crl(pki);
    int64_t next = crl != NULL ? pki_asn1_time(X509_CRL_get0_nextUpdate(crl)) : 0;

    X509_CRL_free(crl);
    return next;
}

/* Returns the CRL number of the current file plus one, or at least now in
 * seconds, so numbers keep increasing even if the file was deleted. */
static int64_t next_crl_number(const struct pki *pki, int64_t now)
{
    X509_CRL *crl = read_crl(pki);
    ASN1_INTEGER *num = crl != NULL ? X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL) : NULL;
    int64_t prev = 0;

    if (num == NULL || ASN1_INTEGER_get_int64(&prev, num) != 1)
        prev = 0;
    ASN1_INTEGER_free(num);
    X509_CRL_free(crl);
    ERR_clear_error();
    return prev >= now ? prev + 1 : now;
}

/* Marks a certificate that was superseded and then ran out of overlap as
 * revoked for that reason. Other entries carry no reason code, because
 * RFC 5280 (section 5.3.1) says the code "unspecified" SHOULD be absent. */
static int add_superseded_reason(X509_REVOKED *entry)
{
    ASN1_ENUMERATED *reason = ASN1_ENUMERATED_new();
    int ok = reason != NULL && ASN1_ENUMERATED_set(reason, CRL_REASON_SUPERSEDED) == 1 &&
             X509_REVOKED_add1_ext_i2d(entry, NID_crl_reason, reason, 0, 0) == 1;

    ASN1_ENUMERATED_free(reason);
    return ok;
}

static X509_REVOKED *make_entry(const struct pki_cert_info *info)
{
    X509_REVOKED *entry = X509_REVOKED_new();
    ASN1_INTEGER *serial = pki_serial_from_hex(info->serial);
    ASN1_TIME *when = ASN1_TIME_set(NULL, (time_t)info->revoked_at);
    int ok = entry != NULL && serial != NULL && when != NULL &&
             X509_REVOKED_set_serialNumber(entry, serial) == 1 &&
             X509_REVOKED_set_revocationDate(entry, when) == 1;

    if (ok && info->overlap_until != 0 && info->revoked_at >= info->overlap_until)
        ok = add_superseded_reason(entry);
    ASN1_INTEGER_free(serial);
    ASN1_TIME_free(when);
    if (!ok) {
        X509_REVOKED_free(entry);
        return NULL;
    }
    return entry;
}

static void add_entry(void *ctx, const struct pki_cert_info *info)
{
    struct crl_fill *fill = ctx;
    X509_REVOKED *entry = make_entry(info);

    if (entry == NULL || X509_CRL_add0_revoked(fill->crl, entry) != 1) {
        log_error("pki: adding serial %s to the CRL failed", info->serial);
        X509_REVOKED_free(entry);
        fill->failed++;
    }
}

/* Sets issuer, times, the CRL number and the authority key identifier. */
static vigil_err set_header(struct pki *pki, X509_CRL *crl, int64_t now)
{
    ASN1_TIME *last = ASN1_TIME_set(NULL, (time_t)now);
    ASN1_TIME *next = ASN1_TIME_set(NULL, (time_t)(now + PKI_CRL_VALID_S));
    ASN1_INTEGER *number = ASN1_INTEGER_new();
    X509_EXTENSION *aki = NULL;
    X509V3_CTX ctx;
    int ok;

    X509V3_set_ctx(&ctx, pki->ca_cert, NULL, NULL, crl, 0);
    ok = last != NULL && next != NULL && number != NULL &&
         X509_CRL_set_version(crl, X509_CRL_VERSION_2) == 1 &&
         X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca_cert)) == 1 &&
         X509_CRL_set1_lastUpdate(crl, last) == 1 && X509_CRL_set1_nextUpdate(crl, next) == 1 &&
         ASN1_INTEGER_set_int64(number, next_crl_number(pki, now)) == 1 &&
         X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0) == 1;
    if (ok) {
        aki = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
        ok = aki != NULL && X509_CRL_add_ext(crl, aki, -1) == 1;
    }
    X509_EXTENSION_free(aki);
    ASN1_TIME_free(last);
    ASN1_TIME_free(next);
    ASN1_INTEGER_free(number);
    return ok ? VIGIL_OK : VIGIL_ERR_NOMEM;
}

static vigil_err write_crl(struct pki *pki, X509_CRL *crl)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (bio != NULL && PEM_write_bio_X509_CRL(bio, crl) == 1) {
        len = BIO_get_mem_data(bio, &data);
        if (len > 0)
            rc = pki_write_file(pki->crl_path, data, (size_t)len, 0644);
    }
    BIO_free(bio);
    return rc;
}

vigil_err pki_crl_write(struct pki *pki)
{
    struct crl_fill fill = {X509_CRL_new(), 0};
    int64_t now = pki_now();
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (fill.crl == NULL)
        goto out;
    rc = set_header(pki, fill.crl, now);
    /* Entries of expired certificates are left out: a validator rejects
     * those certificates for their notAfter already. */
    if (rc == VIGIL_OK)
        rc = pki_db_each(pki, 1, now, add_entry, &fill);
    if (rc == VIGIL_OK && fill.failed > 0)
        rc = VIGIL_ERR_NOMEM;
    if (rc == VIGIL_OK && (X509_CRL_sort(fill.crl) != 1 ||
                           X509_CRL_sign(fill.crl, pki->ca_key, EVP_sha256()) <= 0))
        rc = VIGIL_ERR_INVALID;
    if (rc == VIGIL_OK)
        rc = write_crl(pki, fill.crl);

out:
    if (rc != VIGIL_OK)
        log_error("pki: writing the CRL %s failed: %s", pki->crl_path, vigil_strerror(rc));
    X509_CRL_free(fill.crl);
    ERR_clear_error();
    return rc;
}

vigil_err pki_revoke_device(struct pki *pki, const char *device_id)
{
    int count = 0;
    int total = 0;
    vigil_err rc;

    if (!device_id_valid(device_id))
        return VIGIL_ERR_NOT_FOUND;
    device_db_lock(pki->devices);
    rc = pki_db_begin(pki);
    if (rc != VIGIL_OK)
        goto out;
    rc = pki_db_revoke_device(pki, device_id, pki_now(), &count, &total);
    if (rc == VIGIL_OK && total == 0)
        rc = VIGIL_ERR_NOT_FOUND;
    if (rc == VIGIL_OK)
        rc = pki_crl_write(pki);
    if (rc == VIGIL_OK)
        rc = pki_db_commit(pki);
    if (rc != VIGIL_OK)
        pki_db_rollback(pki);
    else
        log_info("pki: revoked %d certificate(s) of %s", count, device_id);

out:
    device_db_unlock(pki->devices);
    return rc;
}

vigil_err pki_expire_overlaps(struct pki *pki, int64_t now, int *changed)
{
    int count = 0;
    int64_t next_update;
    vigil_err rc;

    *changed = 0;
    device_db_lock(pki->devices);
    rc = pki_db_begin(pki);
    if (rc != VIGIL_OK)
        goto out;
    rc = pki_db_expire(pki, now, &count);
    next_update = pki_crl_next_update(pki);
    if (rc == VIGIL_OK && (count > 0 || next_update - pki_now() < PKI_CRL_REFRESH_S)) {
        rc = pki_crl_write(pki);
        *changed = rc == VIGIL_OK;
    }
    if (rc == VIGIL_OK)
        rc = pki_db_commit(pki);
    if (rc != VIGIL_OK) {
        pki_db_rollback(pki);
        *changed = 0;
    } else if (count > 0) {
        log_info("pki: %d superseded certificate(s) reached the end of their overlap and "
                 "were revoked", count);
    }

out:
    device_db_unlock(pki->devices);
    return rc;
}
