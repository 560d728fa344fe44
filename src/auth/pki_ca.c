/* The local certificate authority: creating or loading its key and
 * certificate, and signing the certificates it issues. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "auth/pki_internal.h"
#include "core/alloc.h"
#include "core/log.h"

const char *pki_ca_file(const struct pki *pki)
{
    return pki->ca_cert_path;
}

const char *pki_crl_file(const struct pki *pki)
{
    return pki->crl_path;
}

const char *pki_server_cert_file(const struct pki *pki)
{
    return pki->server_cert_path;
}

const char *pki_server_key_file(const struct pki *pki)
{
    return pki->server_key_path;
}

/* Sets a random positive 128-bit serial. The first byte is kept between
 * 0x01 and 0x7F, so the hex form always has 32 digits. */
static vigil_err set_random_serial(X509 *cert)
{
    unsigned char raw[16];
    BIGNUM *bn = NULL;
    vigil_err rc = VIGIL_ERR_IO;

    if (RAND_bytes(raw, sizeof raw) != 1)
        return VIGIL_ERR_IO;
    raw[0] &= 0x7F;
    if (raw[0] == 0)
        raw[0] = 0x01;
    bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
        rc = VIGIL_OK;
    BN_free(bn);
    return rc;
}

/* Adds an extension written in OpenSSL's configuration syntax. */
static vigil_err add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        log_error("pki: invalid extension %s = \"%s\"", OBJ_nid2sn(nid), value);
        return VIGIL_ERR_INVALID;
    }
    ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? VIGIL_OK : VIGIL_ERR_NOMEM;
}

/* Fills version, serial, subject, validity and key of a new certificate. */
static vigil_err fill_base(X509 *cert, const char *cn, EVP_PKEY *key, int64_t not_before,
                           int64_t not_after)
{
    X509_NAME *name = X509_get_subject_name(cert);

    if (X509_set_version(cert, X509_VERSION_3) != 1 || set_random_serial(cert) != VIGIL_OK)
        return VIGIL_ERR_NOMEM;
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1)
        return VIGIL_ERR_INVALID;
    if (ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after) == NULL)
        return VIGIL_ERR_NOMEM;
    return X509_set_pubkey(cert, key) == 1 ? VIGIL_OK : VIGIL_ERR_INVALID;
}

static vigil_err add_leaf_exts(X509 *cert, X509 *ca, const struct pki_cert_spec *spec)
{
    vigil_err rc = add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE");

    if (rc == VIGIL_OK)
        rc = add_ext(cert, ca, NID_key_usage, "critical,digitalSignature");
    if (rc == VIGIL_OK)
        rc = add_ext(cert, ca, NID_ext_key_usage, spec->eku);
    if (rc == VIGIL_OK)
        rc = add_ext(cert, ca, NID_subject_alt_name, spec->san);
    if (rc == VIGIL_OK)
        rc = add_ext(cert, ca, NID_subject_key_identifier, "hash");
    if (rc == VIGIL_OK)
        rc = add_ext(cert, ca, NID_authority_key_identifier, "keyid:always");
    return rc;
}

/* Returns the notAfter of a certificate that starts now and lasts days,
 * cut to the CA's own notAfter so that no certificate outlives its issuer. */
static int64_t leaf_not_after(const struct pki *pki, int64_t now, uint32_t days)
{
    int64_t want = now + (int64_t)days * 86400;
    int64_t ca_end = pki_asn1_time(X509_get0_notAfter(pki->ca_cert));

    if (ca_end > 0 && want > ca_end) {
        log_warn("pki: a certificate for %u days would outlive the CA; it ends with the CA", days);
        return ca_end;
    }
    return want;
}

vigil_err pki_ca_issue(struct pki *pki, const struct pki_cert_spec *spec, X509 **out,
                       struct pki_cert_info *info)
{
    X509 *cert = X509_new();
    int64_t now = pki_now();
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    memset(info, 0, sizeof *info);
    if (cert == NULL)
        goto out;
    info->not_before = now - PKI_BACKDATE_S;
    info->not_after = leaf_not_after(pki, now, spec->days);
    rc = fill_base(cert, spec->cn, spec->key, info->not_before, info->not_after);
    if (rc == VIGIL_OK && X509_set_issuer_name(cert, X509_get_subject_name(pki->ca_cert)) != 1)
        rc = VIGIL_ERR_NOMEM;
    if (rc == VIGIL_OK)
        rc = add_leaf_exts(cert, pki->ca_cert, spec);
    if (rc == VIGIL_OK && X509_sign(cert, pki->ca_key, EVP_sha256()) <= 0)
        rc = VIGIL_ERR_INVALID;
    if (rc == VIGIL_OK)
        rc = pki_serial_hex(X509_get0_serialNumber(cert), info->serial);

out:
    if (rc != VIGIL_OK) {
        log_error("pki: issuing a certificate for %s failed: %s", spec->cn, vigil_strerror(rc));
        X509_free(cert);
        ERR_clear_error();
        return rc;
    }
    *out = cert;
    return VIGIL_OK;
}

/* Builds the self-signed CA certificate. Its name carries a random suffix
 * so that clients trusting several vigil installations can tell them apart. */
static X509 *make_ca_cert(EVP_PKEY *key)
{
    unsigned char tag[4];
    char cn[64];
    X509 *cert = X509_new();
    int64_t now = pki_now();
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (cert == NULL || RAND_bytes(tag, sizeof tag) != 1)
        goto out;
    snprintf(cn, sizeof cn, "vigil local CA %02X%02X%02X%02X", tag[0], tag[1], tag[2], tag[3]);
    rc = fill_base(cert, cn, key, now - PKI_BACKDATE_S, now + (int64_t)PKI_CA_DAYS * 86400);
    if (rc == VIGIL_OK && X509_set_issuer_name(cert, X509_get_subject_name(cert)) != 1)
        rc = VIGIL_ERR_NOMEM;
    /* pathlen:0 because this CA signs end-entity certificates only. */
    if (rc == VIGIL_OK)
        rc = add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    if (rc == VIGIL_OK)
        rc = add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    if (rc == VIGIL_OK)
        rc = add_ext(cert, cert, NID_subject_key_identifier, "hash");
    if (rc == VIGIL_OK && X509_sign(cert, key, EVP_sha256()) <= 0)
        rc = VIGIL_ERR_INVALID;

out:
    if (rc != VIGIL_OK) {
        X509_free(cert);
        ERR_clear_error();
        return NULL;
    }
    return cert;
}

/* Creates ca.key and ca.crt. The certificate is written last, so a CA
 * counts as present once ca.crt exists. */
static vigil_err create_ca(struct pki *pki)
{
    EVP_PKEY *key = pki_new_key();
    X509 *cert = key != NULL ? make_ca_cert(key) : NULL;
    char *key_pem = NULL;
    char *cert_pem = NULL;
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (cert == NULL)
        goto out;
    rc = pki_key_pem(key, &key_pem);
    if (rc == VIGIL_OK)
        rc = pki_cert_pem(cert, &cert_pem);
    if (rc == VIGIL_OK)
        rc = pki_write_file(pki->ca_key_path, key_pem, strlen(key_pem), 0600);
    if (rc == VIGIL_OK)
        rc = pki_write_file(pki->ca_cert_path, cert_pem, strlen(cert_pem), 0644);
    if (rc == VIGIL_OK) {
        log_info("pki: created a new CA in %s", pki->dir);
        pki->ca_key = key;
        pki->ca_cert = cert;
        key = NULL;
        cert = NULL;
    }

out:
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    vigil_free(key_pem);
    vigil_free(cert_pem);
    EVP_PKEY_free(key);
    X509_free(cert);
    return rc;
}

static vigil_err load_ca(struct pki *pki)
{
    pki->ca_cert = pki_read_cert(pki->ca_cert_path);
    pki->ca_key = pki_read_key(pki->ca_key_path);
    if (pki->ca_cert == NULL || pki->ca_key == NULL) {
        log_error("pki: reading %s or %s failed; restore both from a backup, or move the pki "
                  "directory away to create a new CA (every certificate must then be reissued)",
                  pki->ca_cert_path, pki->ca_key_path);
        return VIGIL_ERR_INVALID;
    }
    if (X509_check_private_key(pki->ca_cert, pki->ca_key) != 1 || X509_check_ca(pki->ca_cert) == 0) {
        ERR_clear_error();
        log_error("pki: %s is not a CA certificate for the key in %s", pki->ca_cert_path,
                  pki->ca_key_path);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

static vigil_err set_paths(struct pki *pki, const char *dir)
{
    struct {
        char *dst;
        const char *name;
    } files[] = {
        {pki->ca_key_path, "ca.key"},         {pki->ca_cert_path, "ca.crt"},
        {pki->crl_path, "crl.pem"},           {pki->server_cert_path, "server.crt"},
        {pki->server_key_path, "server.key"},
    };

    if (snprintf(pki->dir, sizeof pki->dir, "%s/pki", dir) >= (int)sizeof pki->dir)
        return VIGIL_ERR_INVALID;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (snprintf(files[i].dst, PATH_MAX, "%s/%s", pki->dir, files[i].name) >= PATH_MAX)
            return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

/* Creates the directory and takes an exclusive lock on <dir>/.lock, so that
 * two processes starting at once do not both create a CA. Returns the
 * locked descriptor, or -1. */
static int lock_dir(const struct pki *pki)
{
    char path[PATH_MAX + 8];
    int fd;

    if (mkdir(pki->dir, 0700) != 0 && errno != EEXIST) {
        log_error("pki: creating %s failed: %s", pki->dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/.lock", pki->dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX) != 0) {
        log_error("pki: locking %s failed: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Loads or creates the CA and writes the CRL when it is missing. */
static vigil_err prepare_ca(struct pki *pki)
{
    vigil_err rc;

    if (access(pki->ca_cert_path, F_OK) == 0)
        rc = load_ca(pki);
    else
        rc = create_ca(pki);
    if (rc != VIGIL_OK || access(pki->crl_path, F_OK) == 0)
        return rc;
    device_db_lock(pki->devices);
    rc = pki_crl_write(pki);
    device_db_unlock(pki->devices);
    return rc;
}

vigil_err pki_open(const char *dir, struct device_db *db, struct pki **out)
{
    struct pki *pki = vigil_calloc(1, sizeof *pki);
    vigil_err rc = VIGIL_ERR_NOMEM;
    int lock_fd = -1;

    *out = NULL;
    if (pki == NULL)
        return VIGIL_ERR_NOMEM;
    pki->devices = db;
    rc = set_paths(pki, dir);
    if (rc != VIGIL_OK)
        goto out;
    lock_fd = lock_dir(pki);
    if (lock_fd < 0) {
        rc = VIGIL_ERR_IO;
        goto out;
    }
    device_db_lock(db);
    rc = pki_db_init(pki);
    device_db_unlock(db);
    if (rc == VIGIL_OK)
        rc = prepare_ca(pki);

out:
    if (lock_fd >= 0)
        close(lock_fd); /* releases the flock */
    if (rc != VIGIL_OK) {
        pki_close(pki);
        return rc;
    }
    *out = pki;
    return VIGIL_OK;
}

void pki_close(struct pki *pki)
{
    if (pki == NULL)
        return;
    EVP_PKEY_free(pki->ca_key);
    X509_free(pki->ca_cert);
    vigil_free(pki);
}
