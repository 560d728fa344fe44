/* vigil's certificate authority: the local CA created on first start, the
 * server certificate of the TLS listeners, device certificates (generated
 * key pair or a CSR the device made), rotation with an overlap, revocation
 * and the CRL. Files live in <data-dir>/pki/ (keys with mode 0600); the
 * certificate records live in devices.db next to the inventory.
 *
 * Keys are ECDSA P-256, signatures SHA-256. Device certificates carry the
 * identity twice: subject CN=<device id> and the URI SAN
 * "urn:vigil:device:<device id>". Thread-safe like device.h. */
#ifndef VIGIL_AUTH_PKI_H
#define VIGIL_AUTH_PKI_H

#include <stddef.h>
#include <stdint.h>

#include "auth/device.h"
#include "core/error.h"

#define PKI_SERIAL_MAX 41   /* 20 bytes as hex, NUL */
#define PKI_URI_PREFIX "urn:vigil:device:"

enum pki_cert_status {
    PKI_CERT_ACTIVE,      /* the device's current certificate */
    PKI_CERT_SUPERSEDED,  /* replaced by a rotation; valid until overlap_until */
    PKI_CERT_REVOKED,     /* listed in the CRL */
};

struct pki_cert_info {
    char serial[PKI_SERIAL_MAX];   /* upper-case hex */
    char device[DEVICE_ID_MAX + 1];
    int64_t not_before, not_after; /* Unix seconds */
    int64_t overlap_until;         /* superseded: end of the overlap, else 0 */
    int64_t revoked_at;            /* revoked: when, else 0 */
    enum pki_cert_status status;
};

struct pki;

/* Opens <dir>/pki, creating the CA (key, self-signed certificate valid 10
 * years, an empty CRL) when none exists. Certificate records go into the
 * devices.db of db. */
vigil_err pki_open(const char *dir, struct device_db *db, struct pki **out);
void pki_close(struct pki *pki);

/* Paths of the CA certificate, the CRL and the local server certificate
 * and key (the latter two exist after pki_ensure_server_cert()). */
const char *pki_ca_file(const struct pki *pki);
const char *pki_crl_file(const struct pki *pki);
const char *pki_server_cert_file(const struct pki *pki);
const char *pki_server_key_file(const struct pki *pki);

/* Issues the server certificate when missing or expiring within 30 days:
 * subject CN=vigil, SAN DNS:localhost, IP:127.0.0.1, IP:::1 and each
 * address in hosts (numeric IPv4/IPv6; wildcards like 0.0.0.0 skipped). */
vigil_err pki_ensure_server_cert(struct pki *pki, const char *const *hosts, size_t n_hosts);

/* Issues a device certificate valid for days. With csr_pem NULL a new key
 * pair is generated and its PEM key written to key_pem_out (caller frees
 * with vigil_free); otherwise the CSR is parsed and checked (pki_csr_check)
 * and *key_pem_out is NULL. cert_pem_out receives the PEM certificate
 * (caller frees). The record is stored as PKI_CERT_ACTIVE; a previous
 * active certificate of the device becomes PKI_CERT_REVOKED (use
 * pki_rotate to keep it valid for an overlap). */
vigil_err pki_issue_device(struct pki *pki, const char *device_id, uint32_t days,
                           const char *csr_pem, size_t csr_len, char **cert_pem_out,
                           char **key_pem_out, struct pki_cert_info *info, char *err,
                           size_t errcap);
/* Like pki_issue_device, but the previous active certificate becomes
 * PKI_CERT_SUPERSEDED with overlap_until = now + overlap_s. */
vigil_err pki_rotate(struct pki *pki, const char *device_id, uint32_t days, uint32_t overlap_s,
                     const char *csr_pem, size_t csr_len, char **cert_pem_out,
                     char **key_pem_out, struct pki_cert_info *info, char *err, size_t errcap);
/* Revokes every certificate of the device and rewrites the CRL. */
vigil_err pki_revoke_device(struct pki *pki, const char *device_id);
/* Revokes superseded certificates whose overlap ended before now and
 * rewrites the CRL when anything changed; *changed tells. */
vigil_err pki_expire_overlaps(struct pki *pki, int64_t now, int *changed);
/* Calls fn for every certificate record, ordered by device then not_before. */
vigil_err pki_list(struct pki *pki, void (*fn)(void *ctx, const struct pki_cert_info *), void *ctx);
/* Looks up one record by serial. */
vigil_err pki_get(struct pki *pki, const char *serial, struct pki_cert_info *info);

/* Parses and checks a PEM certificate signing request: well-formed, its
 * signature verifies, the key is EC P-256/P-384 or RSA of at least 2048
 * bits, and its CN, when present, equals device_id. Pure: no files, no
 * state; the parser fuzz harness calls it directly. */
vigil_err pki_csr_check(const char *csr_pem, size_t len, const char *device_id, char *err,
                        size_t errcap);

#endif
