/* Issuing certificates: the server certificate of the TLS listeners and
 * device certificates, from a new key pair or from a device's CSR. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "auth/pki_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#define SAN_MAX 4096

/* The subjectAltName of the server certificate, as OpenSSL config text and
 * as the list of checks an existing certificate has to pass. */
struct server_names {
    char san[SAN_MAX];
    size_t len;
    unsigned char ips[32][16];
    size_t ip_len[32];
    size_t n_ips;
    const char *dns[32];
    size_t n_dns;
};

static void append_san(struct server_names *names, const char *kind, const char *value)
{
    int n = snprintf(names->san + names->len, sizeof names->san - names->len, "%s%s:%s",
                     names->len > 0 ? "," : "", kind, value);

    if (n > 0 && (size_t)n < sizeof names->san - names->len)
        names->len += (size_t)n;
}

/* Adds a numeric address unless it is a wildcard or already listed. */
static void add_ip(struct server_names *names, const unsigned char *ip, size_t len,
                   const char *text)
{
    static const unsigned char zero[16];

    if (memcmp(ip, zero, len) == 0 || names->n_ips == sizeof names->ips / sizeof names->ips[0])
        return;
    for (size_t i = 0; i < names->n_ips; i++) {
        if (names->ip_len[i] == len && memcmp(names->ips[i], ip, len) == 0)
            return;
    }
    memcpy(names->ips[names->n_ips], ip, len);
    names->ip_len[names->n_ips++] = len;
    append_san(names, "IP", text);
}

static int hostname_valid(const char *host)
{
    size_t n = strlen(host);

    if (n == 0 || n > 253 || host[0] == '.' || host[0] == '-')
        return 0;
    return strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

/* Adds host as an IP address when it is numeric, else as a DNS name. */
static void add_host(struct server_names *names, const char *host)
{
    unsigned char ip[16];
    char text[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET, host, ip) == 1) {
        add_ip(names, ip, 4, host);
    } else if (inet_pton(AF_INET6, host, ip) == 1) {
        inet_ntop(AF_INET6, ip, text, sizeof text);
        add_ip(names, ip, 16, text);
    } else if (hostname_valid(host) && names->n_dns < sizeof names->dns / sizeof names->dns[0]) {
        for (size_t i = 0; i < names->n_dns; i++) {
            if (strcmp(names->dns[i], host) == 0)
                return;
        }
        names->dns[names->n_dns++] = host;
        append_san(names, "DNS", host);
    } else {
        log_warn("pki: host \"%s\" is left out of the server certificate: not an IP address "
                 "or host name", host);
    }
}

static void collect_names(struct server_names *names, const char *const *hosts, size_t n_hosts)
{
    memset(names, 0, sizeof *names);
    add_host(names, "localhost");
    add_host(names, "127.0.0.1");
    add_host(names, "::1");
    for (size_t i = 0; i < n_hosts; i++) {
        if (hosts[i] != NULL)
            add_host(names, hosts[i]);
    }
}

/* Checks that the existing server certificate comes from this CA, lasts
 * more than PKI_SERVER_RENEW_S, matches its key and covers every name. */
static int server_cert_usable(struct pki *pki, const struct server_names *names)
{
    X509 *cert = pki_read_cert(pki->server_cert_path);
    EVP_PKEY *key = cert != NULL ? pki_read_key(pki->server_key_path) : NULL;
    int ok = cert != NULL && key != NULL && X509_check_private_key(cert, key) == 1 &&
             X509_check_issued(pki->ca_cert, cert) == X509_V_OK &&
             X509_verify(cert, pki->ca_key) == 1 &&
             pki_asn1_time(X509_get0_notAfter(cert)) - pki_now() > PKI_SERVER_RENEW_S;

    for (size_t i = 0; ok && i < names->n_ips; i++)
        ok = X509_check_ip(cert, names->ips[i], names->ip_len[i], 0) == 1;
    for (size_t i = 0; ok && i < names->n_dns; i++)
        ok = X509_check_host(cert, names->dns[i], 0, 0, NULL) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ok;
}

static vigil_err write_server_files(struct pki *pki, X509 *cert, EVP_PKEY *key)
{
    char *cert_pem = NULL;
    char *key_pem = NULL;
    vigil_err rc = pki_key_pem(key, &key_pem);

    if (rc == VIGIL_OK)
        rc = pki_cert_pem(cert, &cert_pem);
    /* The key first: a reader that sees the new certificate finds its key. */
    if (rc == VIGIL_OK)
        rc = pki_write_file(pki->server_key_path, key_pem, strlen(key_pem), 0600);
    if (rc == VIGIL_OK)
        rc = pki_write_file(pki->server_cert_path, cert_pem, strlen(cert_pem), 0644);
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    vigil_free(key_pem);
    vigil_free(cert_pem);
    return rc;
}

vigil_err pki_ensure_server_cert(struct pki *pki, const char *const *hosts, size_t n_hosts)
{
    struct server_names *names = vigil_malloc(sizeof *names);
    struct pki_cert_spec spec = {"vigil", NULL, PKI_SERVER_DAYS, "serverAuth", NULL};
    struct pki_cert_info info;
    X509 *cert = NULL;
    vigil_err rc = VIGIL_OK;

    if (names == NULL)
        return VIGIL_ERR_NOMEM;
    collect_names(names, hosts, n_hosts);
    spec.san = names->san;
    device_db_lock(pki->devices);
    if (server_cert_usable(pki, names))
        goto out;
    spec.key = pki_new_key();
    rc = spec.key != NULL ? pki_ca_issue(pki, &spec, &cert, &info) : VIGIL_ERR_NOMEM;
    if (rc == VIGIL_OK)
        rc = write_server_files(pki, cert, spec.key);
    if (rc == VIGIL_OK)
        log_info("pki: issued server certificate %s for %s", info.serial, names->san);

out:
    device_db_unlock(pki->devices);
    X509_free(cert);
    EVP_PKEY_free(spec.key);
    vigil_free(names);
    return rc;
}

/* The public key of a device certificate: from the CSR, or a new pair
 * whose private key goes to *key_pem (caller frees). */
static vigil_err device_key(const char *device_id, const char *csr_pem, size_t csr_len,
                            EVP_PKEY **key, char **key_pem, char *err, size_t errcap)
{
    X509_REQ *req = NULL;
    vigil_err rc;

    *key = NULL;
    *key_pem = NULL;
    if (csr_pem == NULL) {
        *key = pki_new_key();
        rc = *key != NULL ? pki_key_pem(*key, key_pem) : VIGIL_ERR_NOMEM;
        if (rc != VIGIL_OK)
            pki_set_err(err, errcap, "generating the device key failed");
        return rc;
    }
    rc = pki_csr_parse(csr_pem, csr_len, device_id, &req, err, errcap);
    if (rc == VIGIL_OK) {
        *key = X509_REQ_get_pubkey(req);
        rc = *key != NULL ? VIGIL_OK : VIGIL_ERR_NOMEM;
    }
    X509_REQ_free(req);
    return rc;
}

/* Stores the new record and retires the device's active certificate: to
 * superseded until overlap_until, or revoked when overlap_until is 0. The
 * CRL is rewritten inside the same transaction when anything was revoked. */
static vigil_err record_issue(struct pki *pki, const struct pki_cert_info *info,
                              int64_t overlap_until)
{
    int retired = 0, older = 0;
    vigil_err rc;

    device_db_lock(pki->devices);
    rc = pki_db_begin(pki);
    if (rc != VIGIL_OK)
        goto out;
    /* Only the certificate just replaced keeps an overlap: generations
     * superseded by earlier rotations are revoked now, so rotating again
     * after a key leak really retires the leaked certificate. */
    rc = pki_db_revoke_superseded(pki, info->device, pki_now(), &older);
    if (rc == VIGIL_OK)
        rc = pki_db_retire_active(pki, info->device, pki_now(), overlap_until, &retired);
    if (rc == VIGIL_OK)
        rc = pki_db_insert(pki, info);
    if (rc == VIGIL_OK && (older > 0 || (retired > 0 && overlap_until == 0)))
        rc = pki_crl_write(pki);
    if (rc == VIGIL_OK)
        rc = pki_db_commit(pki);
    if (rc != VIGIL_OK)
        pki_db_rollback(pki);

out:
    device_db_unlock(pki->devices);
    return rc;
}

struct issue_request {
    const char *device_id;
    uint32_t days;
    uint32_t overlap_s;                 /* 0: revoke the previous certificate */
    const char *csr_pem;
    size_t csr_len;
};

static vigil_err check_request(const struct issue_request *req, char *err, size_t errcap)
{
    if (!device_id_valid(req->device_id)) {
        pki_set_err(err, errcap, "invalid device id; use 1 to %d characters of A-Z, a-z, 0-9, "
                    "'.', '_' or '-'", DEVICE_ID_MAX);
        return VIGIL_ERR_INVALID;
    }
    if (req->days == 0 || req->days > PKI_DAYS_MAX) {
        pki_set_err(err, errcap, "invalid validity of %u days; use 1 to %u", req->days,
                    PKI_DAYS_MAX);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

static vigil_err issue(struct pki *pki, const struct issue_request *req, char **cert_pem_out,
                       char **key_pem_out, struct pki_cert_info *info_out, char *err,
                       size_t errcap)
{
    struct pki_cert_info record;
    struct pki_cert_info *info = &record;
    char san[sizeof PKI_URI_PREFIX + DEVICE_ID_MAX + 8];
    struct pki_cert_spec spec = {req->device_id, NULL, req->days, "clientAuth", san};
    char *key_pem = NULL;
    X509 *cert = NULL;
    vigil_err rc;

    *cert_pem_out = NULL;
    *key_pem_out = NULL;
    rc = check_request(req, err, errcap);
    if (rc == VIGIL_OK)
        rc = device_key(req->device_id, req->csr_pem, req->csr_len, &spec.key, &key_pem, err,
                        errcap);
    if (rc != VIGIL_OK)
        goto out;
    snprintf(san, sizeof san, "URI:%s%s", PKI_URI_PREFIX, req->device_id);
    rc = pki_ca_issue(pki, &spec, &cert, info);
    if (rc == VIGIL_OK)
        rc = pki_cert_pem(cert, cert_pem_out);
    if (rc != VIGIL_OK) {
        pki_set_err(err, errcap, "signing the certificate failed: %s", vigil_strerror(rc));
        goto out;
    }
    snprintf(info->device, sizeof info->device, "%s", req->device_id);
    info->status = PKI_CERT_ACTIVE;
    rc = record_issue(pki, info, req->overlap_s > 0 ? pki_now() + req->overlap_s : 0);
    if (rc != VIGIL_OK)
        pki_set_err(err, errcap, "storing the certificate record failed: %s", vigil_strerror(rc));

out:
    if (rc != VIGIL_OK) {
        vigil_free(*cert_pem_out);
        *cert_pem_out = NULL;
        if (key_pem != NULL)
            OPENSSL_cleanse(key_pem, strlen(key_pem));
        vigil_free(key_pem);
        key_pem = NULL;
    } else {
        log_info("pki: issued certificate %s for %s", info->serial, req->device_id);
        if (info_out != NULL)
            *info_out = record;
    }
    *key_pem_out = key_pem;
    X509_free(cert);
    EVP_PKEY_free(spec.key);
    return rc;
}

vigil_err pki_issue_device(struct pki *pki, const char *device_id, uint32_t days,
                           const char *csr_pem, size_t csr_len, char **cert_pem_out,
                           char **key_pem_out, struct pki_cert_info *info, char *err,
                           size_t errcap)
{
    struct issue_request req = {device_id, days, 0, csr_pem, csr_len};

    return issue(pki, &req, cert_pem_out, key_pem_out, info, err, errcap);
}

vigil_err pki_rotate(struct pki *pki, const char *device_id, uint32_t days, uint32_t overlap_s,
                     const char *csr_pem, size_t csr_len, char **cert_pem_out,
                     char **key_pem_out, struct pki_cert_info *info, char *err, size_t errcap)
{
    struct issue_request req = {device_id, days, overlap_s, csr_pem, csr_len};

    return issue(pki, &req, cert_pem_out, key_pem_out, info, err, errcap);
}
