/* Shared state and helpers of the pki_*.c files; not part of the contract
 * in pki.h. Functions marked "lock held" expect device_db_lock() of the
 * devices database to be held by the caller. */
#ifndef VIGIL_AUTH_PKI_INTERNAL_H
#define VIGIL_AUTH_PKI_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "auth/pki.h"

#define PKI_CA_DAYS 3650u
#define PKI_SERVER_DAYS 397u          /* the CA/Browser Forum maximum for TLS servers */
#define PKI_SERVER_RENEW_S (30 * 86400)
#define PKI_CRL_VALID_S (30 * 86400)
#define PKI_CRL_REFRESH_S (7 * 86400) /* rewrite an unchanged CRL this long before nextUpdate */
#define PKI_BACKDATE_S 300            /* notBefore lies this far back, for devices with slow clocks */
#define PKI_DAYS_MAX 36500u
#define PKI_CSR_MAX 16384             /* bytes of PEM accepted as a CSR */

struct pki {
    char dir[PATH_MAX];               /* <data-dir>/pki */
    char ca_key_path[PATH_MAX];
    char ca_cert_path[PATH_MAX];
    char crl_path[PATH_MAX];
    char server_cert_path[PATH_MAX];
    char server_key_path[PATH_MAX];
    struct device_db *devices;        /* not owned */
    EVP_PKEY *ca_key;                 /* owned; read-only after pki_open */
    X509 *ca_cert;                    /* owned; read-only after pki_open */
};

/* Contents of an end-entity certificate made by pki_ca_issue. */
struct pki_cert_spec {
    const char *cn;
    EVP_PKEY *key;                    /* public key of the subject; not owned */
    uint32_t days;
    const char *eku;                  /* "serverAuth" or "clientAuth" */
    const char *san;                  /* OpenSSL config syntax, e.g. "URI:urn:..." */
};

/* pki_ca.c: signs with the CA. *out is owned by the caller (X509_free);
 * info gets serial, not_before and not_after. */
vigil_err pki_ca_issue(struct pki *pki, const struct pki_cert_spec *spec, X509 **out,
                       struct pki_cert_info *info);

/* pki_util.c */
int64_t pki_now(void);
int64_t pki_asn1_time(const ASN1_TIME *t);
/* Writes the serial as upper-case hex into out (PKI_SERIAL_MAX bytes). */
vigil_err pki_serial_hex(const ASN1_INTEGER *serial, char *out);
/* Returns a new ASN1_INTEGER for upper-case or lower-case hex, or NULL. */
ASN1_INTEGER *pki_serial_from_hex(const char *hex);
/* Writes data to path through a temporary file in the same directory and
 * rename(), so readers see the old or the new file, never a part. */
vigil_err pki_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* PEM encodings in vigil-allocated, NUL-terminated strings (caller frees);
 * a key's text is cleansed from OpenSSL's buffers. */
vigil_err pki_cert_pem(X509 *cert, char **out);
vigil_err pki_key_pem(EVP_PKEY *key, char **out);
EVP_PKEY *pki_new_key(void);
X509 *pki_read_cert(const char *path);
EVP_PKEY *pki_read_key(const char *path);
/* Formats err like snprintf and clears OpenSSL's error queue. */
void pki_set_err(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* pki_csr.c: the checks of pki_csr_check; on VIGIL_OK *out is the request
 * (caller frees with X509_REQ_free). */
vigil_err pki_csr_parse(const char *csr_pem, size_t len, const char *device_id, X509_REQ **out,
                        char *err, size_t errcap);

/* pki_db.c (lock held) */
vigil_err pki_db_init(struct pki *pki);
vigil_err pki_db_begin(struct pki *pki);
vigil_err pki_db_commit(struct pki *pki);
void pki_db_rollback(struct pki *pki);
vigil_err pki_db_insert(struct pki *pki, const struct pki_cert_info *info);
/* Moves the active certificates of device to superseded with
 * overlap_until, or to revoked when overlap_until is 0. *count gets the
 * number of rows changed. */
/* Revokes every superseded certificate of the device; *count tells how many. */
vigil_err pki_db_revoke_superseded(struct pki *pki, const char *device, int64_t now, int *count);
vigil_err pki_db_retire_active(struct pki *pki, const char *device, int64_t now,
                               int64_t overlap_until, int *count);
/* Revokes every certificate of device that is not revoked yet; *total gets
 * the number of records the device has. */
vigil_err pki_db_revoke_device(struct pki *pki, const char *device, int64_t now, int *count,
                               int *total);
vigil_err pki_db_expire(struct pki *pki, int64_t now, int *count);
/* Calls fn for every record, or only for revoked ones whose certificate
 * has not expired before not_after_min. */
vigil_err pki_db_each(struct pki *pki, int revoked_only, int64_t not_after_min,
                      void (*fn)(void *ctx, const struct pki_cert_info *), void *ctx);
vigil_err pki_db_get(struct pki *pki, const char *serial, struct pki_cert_info *info);

/* pki_crl.c (lock held, inside a transaction when records changed) */
vigil_err pki_crl_write(struct pki *pki);
/* Returns the nextUpdate of the CRL file, or 0 when it cannot be read. */
int64_t pki_crl_next_update(const struct pki *pki);

#endif
