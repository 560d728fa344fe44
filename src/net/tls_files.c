/* Reads the PEM files of a TLS server context one by one, and reports the
 * first problem with the file name so that an operator can fix it. */
#include "net/tls_files.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/log.h"
#include "net/tls_internal.h"

#define TLS_TIME_TEXT 40

/* Opens path for reading; on failure writes why into err. */
static FILE *open_file(const char *path, char *err, size_t errcap)
{
    struct stat st;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        if (errno == ENOENT)
            snprintf(err, errcap, "%s: file not found", path);
        else if (errno == EACCES)
            snprintf(err, errcap, "%s: permission denied", path);
        else
            snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errcap, "%s: is a directory, expected a PEM file", path);
        fclose(f);
        return NULL;
    }
    return f;
}

/* True when the last PEM read stopped at the end of the file, not at a
 * damaged block. Clears the error queue either way. */
static bool pem_ended_cleanly(void)
{
    unsigned long e = ERR_peek_last_error();
    bool clean = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);

    ERR_clear_error();
    return clean;
}

/* Reads every certificate of a PEM file into a new stack. */
static vigil_err read_certs(const char *path, STACK_OF(X509) **out, char *err, size_t errcap)
{
    FILE *f = open_file(path, err, errcap);
    STACK_OF(X509) *certs;
    X509 *x;

    if (f == NULL)
        return VIGIL_ERR_CONFIG;
    certs = sk_X509_new_null();
    while (certs != NULL && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(certs, x) == 0) {
            X509_free(x);
            break;
        }
    }
    fclose(f);
    *out = certs;
    if (certs == NULL) {
        snprintf(err, errcap, "%s: out of memory", path);
        return VIGIL_ERR_CONFIG;
    }
    if (!pem_ended_cleanly()) {
        snprintf(err, errcap, "%s: certificate %d is not valid PEM", path, sk_X509_num(certs) + 1);
        return VIGIL_ERR_CONFIG;
    }
    if (sk_X509_num(certs) == 0) {
        snprintf(err, errcap, "%s: no PEM certificate found", path);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

/* Writes "<path>: <what> expired on ..." or "... not valid before ..." for
 * a certificate outside its validity period; returns false then. */
static bool check_validity(const char *path, const char *what, X509 *x, char *err, size_t errcap)
{
    char when[TLS_TIME_TEXT];

    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        tls_format_time(X509_get0_notBefore(x), when, sizeof when);
        snprintf(err, errcap, "%s: %s not valid before %s", path, what, when);
        return false;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0) {
        tls_format_time(X509_get0_notAfter(x), when, sizeof when);
        snprintf(err, errcap, "%s: %s expired on %s", path, what, when);
        return false;
    }
    return true;
}

/* Server chain: the leaf must be valid now, since clients reject it otherwise. */
static vigil_err load_server_cert(const char *path, struct tls_material *m, char *err,
                                  size_t errcap)
{
    vigil_err rc = read_certs(path, &m->chain, err, errcap);

    if (rc != VIGIL_OK)
        return rc;
    m->leaf = sk_X509_shift(m->chain);
    if (!check_validity(path, "certificate", m->leaf, err, errcap))
        return VIGIL_ERR_CONFIG;
    return VIGIL_OK;
}

/* A password callback that rejects every key, so that an encrypted key
 * fails at once instead of prompting on the terminal. */
static int reject_password_prompt(char *buf, int size, int rwflag, void *prompted)
{
    *(bool *)prompted = true;
    return -1;
}

static vigil_err load_key(const char *key_path, const char *cert_path, struct tls_material *m,
                          char *err, size_t errcap)
{
    FILE *f = open_file(key_path, err, errcap);
    bool prompted = false;

    if (f == NULL)
        return VIGIL_ERR_CONFIG;
    m->key = PEM_read_PrivateKey(f, NULL, reject_password_prompt, &prompted);
    fclose(f);
    ERR_clear_error();
    if (m->key == NULL && prompted) {
        snprintf(err, errcap, "%s: private key is encrypted; an unencrypted key is needed",
                 key_path);
        return VIGIL_ERR_CONFIG;
    }
    if (m->key == NULL) {
        snprintf(err, errcap, "%s: no PEM private key found", key_path);
        return VIGIL_ERR_CONFIG;
    }
    if (X509_check_private_key(m->leaf, m->key) != 1) {
        ERR_clear_error();
        snprintf(err, errcap, "%s: private key does not match the certificate in %s", key_path,
                 cert_path);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

/* Client CAs. One expired CA among several is a warning, because a bundle
 * may keep an old root during a migration; every CA expired is an error. */
static vigil_err load_ca(const char *path, struct tls_material *m, char *err, size_t errcap)
{
    char problem[TLS_ERROR_MAX + 512];
    int valid = 0;
    int i;
    vigil_err rc = read_certs(path, &m->cas, err, errcap);

    if (rc != VIGIL_OK)
        return rc;
    for (i = 0; i < sk_X509_num(m->cas); i++) {
        if (check_validity(path, "CA certificate", sk_X509_value(m->cas, i), problem,
                           sizeof problem))
            valid++;
        else
            log_warn("%s (certificate %d of the file)", problem, i + 1);
    }
    if (valid == 0) {
        snprintf(err, errcap, "%s", problem);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

static vigil_err read_crls(const char *path, STACK_OF(X509_CRL) **out, char *err, size_t errcap)
{
    FILE *f = open_file(path, err, errcap);
    X509_CRL *crl;

    if (f == NULL)
        return VIGIL_ERR_CONFIG;
    *out = sk_X509_CRL_new_null();
    while (*out != NULL && (crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_CRL_push(*out, crl) == 0) {
            X509_CRL_free(crl);
            break;
        }
    }
    fclose(f);
    if (*out == NULL) {
        snprintf(err, errcap, "%s: out of memory", path);
        return VIGIL_ERR_CONFIG;
    }
    if (!pem_ended_cleanly()) {
        snprintf(err, errcap, "%s: CRL %d is not valid PEM", path, sk_X509_CRL_num(*out) + 1);
        return VIGIL_ERR_CONFIG;
    }
    if (sk_X509_CRL_num(*out) == 0) {
        snprintf(err, errcap, "%s: no PEM CRL found", path);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

/* The CRL must come from a CA of ca_file and be current: an expired CRL
 * makes OpenSSL reject every client certificate. */
static vigil_err check_crl(const char *crl_path, const char *ca_path, X509_CRL *crl,
                           STACK_OF(X509) *cas, char *err, size_t errcap)
{
    char when[TLS_TIME_TEXT];
    bool issuer_found = false;
    int i;

    for (i = 0; i < sk_X509_num(cas); i++) {
        X509 *ca = sk_X509_value(cas, i);

        if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) != 0)
            continue;
        issuer_found = true;
        if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
            break;
    }
    ERR_clear_error();
    if (i == sk_X509_num(cas)) {
        snprintf(err, errcap, issuer_found ? "%s: CRL not signed by the CA in %s"
                                           : "%s: CRL issuer is not a CA in %s",
                 crl_path, ca_path);
        return VIGIL_ERR_CONFIG;
    }
    if (X509_cmp_current_time(X509_CRL_get0_lastUpdate(crl)) > 0) {
        tls_format_time(X509_CRL_get0_lastUpdate(crl), when, sizeof when);
        snprintf(err, errcap, "%s: CRL not valid before %s", crl_path, when);
        return VIGIL_ERR_CONFIG;
    }
    if (X509_CRL_get0_nextUpdate(crl) != NULL &&
        X509_cmp_current_time(X509_CRL_get0_nextUpdate(crl)) < 0) {
        tls_format_time(X509_CRL_get0_nextUpdate(crl), when, sizeof when);
        snprintf(err, errcap, "%s: CRL expired on %s (its next update time)", crl_path, when);
        return VIGIL_ERR_CONFIG;
    }
    return VIGIL_OK;
}

static vigil_err load_crl(const char *crl_path, const char *ca_path, struct tls_material *m,
                          char *err, size_t errcap)
{
    int i;
    vigil_err rc = read_crls(crl_path, &m->crls, err, errcap);

    for (i = 0; rc == VIGIL_OK && i < sk_X509_CRL_num(m->crls); i++)
        rc = check_crl(crl_path, ca_path, sk_X509_CRL_value(m->crls, i), m->cas, err, errcap);
    return rc;
}

vigil_err tls_files_load(const struct tls_server_opts *opts, struct tls_material *m, char *err,
                         size_t errcap)
{
    vigil_err rc = load_server_cert(opts->cert_file, m, err, errcap);

    if (rc == VIGIL_OK)
        rc = load_key(opts->key_file, opts->cert_file, m, err, errcap);
    if (rc == VIGIL_OK && opts->ca_file != NULL)
        rc = load_ca(opts->ca_file, m, err, errcap);
    if (rc == VIGIL_OK && opts->crl_file != NULL)
        rc = load_crl(opts->crl_file, opts->ca_file, m, err, errcap);
    ERR_clear_error();
    return rc;
}

void tls_files_free(struct tls_material *m)
{
    X509_free(m->leaf);
    sk_X509_pop_free(m->chain, X509_free);
    EVP_PKEY_free(m->key);
    sk_X509_pop_free(m->cas, X509_free);
    sk_X509_CRL_pop_free(m->crls, X509_CRL_free);
    memset(m, 0, sizeof *m);
}

/* Looks the serial up in every CRL of the file. */
static vigil_err find_serial(FILE *f, const ASN1_INTEGER *serial)
{
    X509_CRL *crl;
    X509_REVOKED *entry;
    int crls = 0;
    vigil_err rc = VIGIL_ERR_NOT_FOUND;

    while (rc == VIGIL_ERR_NOT_FOUND && (crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
        crls++;
        if (X509_CRL_get0_by_serial(crl, &entry, serial) == 1)
            rc = VIGIL_OK;
        X509_CRL_free(crl);
    }
    if (rc == VIGIL_ERR_NOT_FOUND && (crls == 0 || !pem_ended_cleanly()))
        rc = VIGIL_ERR_CONFIG;
    return rc;
}

vigil_err tls_crl_contains(const char *crl_file, const char *serial)
{
    char err[TLS_ERROR_MAX + 512];
    BIGNUM *bn = NULL;
    ASN1_INTEGER *target = NULL;
    FILE *f = NULL;
    vigil_err rc;

    ERR_clear_error();
    if (serial == NULL || serial[0] == '\0' || BN_hex2bn(&bn, serial) != (int)strlen(serial) ||
        (target = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
        rc = VIGIL_ERR_INVALID;
        goto cleanup;
    }
    f = open_file(crl_file, err, sizeof err);
    if (f == NULL) {
        log_warn("%s", err);
        rc = VIGIL_ERR_IO;
        goto cleanup;
    }
    rc = find_serial(f, target);
    if (rc == VIGIL_ERR_CONFIG)
        log_warn("%s: no valid PEM CRL found", crl_file);

cleanup:
    if (f != NULL)
        fclose(f);
    ASN1_INTEGER_free(target);
    BN_free(bn);
    ERR_clear_error();
    return rc;
}
