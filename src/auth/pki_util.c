/* Helpers of the certificate authority: times, serials, PEM and atomic files. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "auth/pki_internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

int64_t pki_now(void)
{
    return vigil_time_now_us() / 1000000;
}

int64_t pki_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

vigil_err pki_serial_hex(const ASN1_INTEGER *serial, char *out)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (hex != NULL && strlen(hex) < PKI_SERIAL_MAX) {
        snprintf(out, PKI_SERIAL_MAX, "%s", hex);
        rc = VIGIL_OK;
    } else if (hex != NULL) {
        rc = VIGIL_ERR_INVALID;
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return rc;
}

ASN1_INTEGER *pki_serial_from_hex(const char *hex)
{
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;

    if (BN_hex2bn(&bn, hex) > 0 && (size_t)BN_num_bytes(bn) <= (PKI_SERIAL_MAX - 1) / 2)
        serial = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    return serial;
}

static vigil_err write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VIGIL_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return VIGIL_OK;
}

/* Makes the rename itself durable; failure only costs durability. */
static void sync_parent(const char *path)
{
    char copy[PATH_MAX];
    int fd;

    snprintf(copy, sizeof copy, "%s", path);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fsync(fd) != 0)
        log_warn("pki: fsync of the directory of %s failed: %s", path, strerror(errno));
    close(fd);
}

vigil_err pki_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    vigil_err rc = VIGIL_ERR_IO;
    int fd;

    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return VIGIL_ERR_INVALID;
    fd = mkstemp(tmp);
    if (fd < 0) {
        log_error("pki: creating a temporary file for %s failed: %s", path, strerror(errno));
        return VIGIL_ERR_IO;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != VIGIL_OK || fsync(fd) != 0)
        goto out;
    if (close(fd) != 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto out;
    sync_parent(path);
    rc = VIGIL_OK;

out:
    if (rc != VIGIL_OK) {
        log_error("pki: writing %s failed: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    }
    return rc;
}

/* Copies the contents of a memory BIO into a NUL-terminated vigil string. */
static vigil_err bio_to_string(BIO *bio, char **out)
{
    char *data;
    long n = BIO_get_mem_data(bio, &data);

    if (n <= 0)
        return VIGIL_ERR_NOMEM;
    *out = vigil_strndup(data, (size_t)n);
    return *out != NULL ? VIGIL_OK : VIGIL_ERR_NOMEM;
}

vigil_err pki_cert_pem(X509 *cert, char **out)
{
    BIO *bio = BIO_new(BIO_s_mem());
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
        rc = bio_to_string(bio, out);
    BIO_free(bio);
    return rc;
}

vigil_err pki_key_pem(EVP_PKEY *key, char **out)
{
    /* Secure memory BIOs clear their buffer when freed. */
    BIO *bio = BIO_new(BIO_s_secmem());
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1)
        rc = bio_to_string(bio, out);
    BIO_free(bio);
    return rc;
}

EVP_PKEY *pki_new_key(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

    if (key == NULL) {
        log_error("pki: generating an EC P-256 key failed");
        ERR_clear_error();
    }
    return key;
}

X509 *pki_read_cert(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    X509 *cert = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    ERR_clear_error();
    return cert;
}

EVP_PKEY *pki_read_key(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

    BIO_free(bio);
    ERR_clear_error();
    return key;
}

void pki_set_err(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;

    ERR_clear_error();
    if (err == NULL || errcap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
}
