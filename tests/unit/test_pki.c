/* Tests for the certificate authority: CA, server and device certificates,
 * CSR checks, rotation, revocation and the CRL file. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "auth/device.h"
#include "auth/pki.h"
#include "core/alloc.h"
#include "core/log.h"

struct fixture {
    char dir[64];
    struct device_db *db;
    struct pki *pki;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    snprintf(fx->dir, sizeof fx->dir, "/tmp/vigil-pki-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(device_db_open(fx->dir, &fx->db), VIGIL_OK);
    assert_int_equal(pki_open(fx->dir, fx->db, &fx->pki), VIGIL_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    pki_close(fx->pki);
    device_db_close(fx->db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static X509 *cert_from_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);

    BIO_free(bio);
    assert_non_null(cert);
    return cert;
}

static X509 *cert_from_file(const char *path)
{
    char *pem = read_text(path);
    X509 *cert = cert_from_pem(pem);

    free(pem);
    return cert;
}

static X509_CRL *crl_from_file(const char *path)
{
    BIO *bio = BIO_new_file(path, "r");
    X509_CRL *crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);

    BIO_free(bio);
    assert_non_null(crl);
    return crl;
}

static mode_t file_mode(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 0777;
}

/* Returns the subject CN of cert in a static buffer. */
static const char *subject_cn(X509 *cert)
{
    static char cn[128];

    cn[0] = '\0';
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    return cn;
}

/* Returns the first URI SAN of cert in a static buffer, or "". */
static const char *uri_san(X509 *cert)
{
    static char uri[256];
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

    uri[0] = '\0';
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);

        if (gn->type == GEN_URI) {
            snprintf(uri, sizeof uri, "%.*s", ASN1_STRING_length(gn->d.uniformResourceIdentifier),
                     (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier));
            break;
        }
    }
    GENERAL_NAMES_free(names);
    return uri;
}

static int verify_with_ca(X509 *cert, X509 *ca, X509_CRL *crl)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok;

    X509_STORE_add_cert(store, ca);
    if (crl != NULL) {
        X509_STORE_add_crl(store, crl);
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    X509_STORE_CTX_init(ctx, store, cert, NULL);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
    ok = X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    return ok;
}

/* Makes a PEM CSR with subject CN=cn (none when cn is NULL) signed by key;
 * caller frees with free(). */
static char *make_csr(EVP_PKEY *key, const char *cn)
{
    X509_REQ *req = X509_REQ_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *data;
    char *pem;
    long len;

    assert_int_equal(X509_REQ_set_pubkey(req, key), 1);
    if (cn != NULL)
        assert_int_equal(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
                                                    MBSTRING_ASC, (const unsigned char *)cn, -1,
                                                    -1, 0),
                         1);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    assert_int_equal(PEM_write_bio_X509_REQ(bio, req), 1);
    len = BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    BIO_free(bio);
    X509_REQ_free(req);
    return pem;
}

/* Makes a CSR and flips one byte of its signature, the last field of the
 * DER encoding. */
static char *make_csr_bad_signature(EVP_PKEY *key)
{
    X509_REQ *req = X509_REQ_new();
    unsigned char *der = NULL;
    const unsigned char *p;
    BIO *bio = BIO_new(BIO_s_mem());
    X509_REQ *broken;
    char *data;
    char *pem;
    int len;

    X509_REQ_set_pubkey(req, key);
    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
                               (const unsigned char *)"dev-1", -1, -1, 0);
    assert_true(X509_REQ_sign(req, key, EVP_sha256()) > 0);
    len = i2d_X509_REQ(req, &der);
    assert_true(len > 10);
    der[len - 3] ^= 0x01;
    p = der;
    broken = d2i_X509_REQ(NULL, &p, len);
    assert_non_null(broken);
    assert_int_equal(PEM_write_bio_X509_REQ(bio, broken), 1);
    len = (int)BIO_get_mem_data(bio, &data);
    pem = strndup(data, (size_t)len);
    BIO_free(bio);
    X509_REQ_free(broken);
    X509_REQ_free(req);
    OPENSSL_free(der);
    return pem;
}

static void issue_ok(struct fixture *fx, const char *id, struct pki_cert_info *info)
{
    char err[256] = "";
    char *cert = NULL;
    char *key = NULL;
    vigil_err rc = pki_issue_device(fx->pki, id, 30, NULL, 0, &cert, &key, info, err, sizeof err);

    if (rc != VIGIL_OK)
        fail_msg("pki_issue_device(%s): %s: %s", id, vigil_strerror(rc), err);
    vigil_free(cert);
    vigil_free(key);
}

static void rotate_ok(struct fixture *fx, const char *id, uint32_t overlap,
                      struct pki_cert_info *info)
{
    char err[256] = "";
    char *cert = NULL;
    char *key = NULL;
    vigil_err rc =
        pki_rotate(fx->pki, id, 30, overlap, NULL, 0, &cert, &key, info, err, sizeof err);

    if (rc != VIGIL_OK)
        fail_msg("pki_rotate(%s): %s: %s", id, vigil_strerror(rc), err);
    vigil_free(cert);
    vigil_free(key);
}

static int crl_lists(X509_CRL *crl, const char *serial_hex)
{
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial;
    X509_REVOKED *entry = NULL;
    int found;

    assert_true(BN_hex2bn(&bn, serial_hex) > 0);
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    found = X509_CRL_get0_by_serial(crl, &entry, serial) == 1;
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return found;
}

/* Returns the CRL reason code of the entry for serial_hex, or -1 when the
 * entry has none. */
static long crl_reason(X509_CRL *crl, const char *serial_hex)
{
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial;
    X509_REVOKED *entry = NULL;
    ASN1_ENUMERATED *reason;
    long code = -1;

    assert_true(BN_hex2bn(&bn, serial_hex) > 0);
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    assert_int_equal(X509_CRL_get0_by_serial(crl, &entry, serial), 1);
    reason = X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, NULL, NULL);
    if (reason != NULL)
        code = ASN1_ENUMERATED_get(reason);
    ASN1_ENUMERATED_free(reason);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return code;
}

static void test_ca_created_once(void **state)
{
    struct fixture *fx = *state;
    char *first = read_text(pki_ca_file(fx->pki));
    char key_path[128];
    char *again;
    X509 *ca;

    snprintf(key_path, sizeof key_path, "%s/pki/ca.key", fx->dir);
    assert_int_equal(file_mode(key_path), 0600);
    assert_non_null(strstr(pki_crl_file(fx->pki), "/pki/crl.pem"));
    assert_int_equal(access(pki_crl_file(fx->pki), R_OK), 0);

    pki_close(fx->pki);
    assert_int_equal(pki_open(fx->dir, fx->db, &fx->pki), VIGIL_OK);
    again = read_text(pki_ca_file(fx->pki));
    assert_string_equal(first, again);

    ca = cert_from_pem(first);
    assert_int_equal(X509_check_ca(ca), 1);
    assert_int_equal(X509_EXTENSION_get_critical(
                         X509_get_ext(ca, X509_get_ext_by_NID(ca, NID_basic_constraints, -1))),
                     1);
    assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
    assert_true(X509_get_key_usage(ca) & KU_CRL_SIGN);
    assert_non_null(X509_get0_subject_key_id(ca));
    assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
    X509_free(ca);
    free(first);
    free(again);
}

static void test_server_cert_sans(void **state)
{
    struct fixture *fx = *state;
    const char *hosts[] = {"0.0.0.0", "192.0.2.10", "::", "2001:db8::1", "vigil.example"};
    struct stat before;
    struct stat after;
    X509 *cert;
    X509 *ca;

    assert_int_equal(pki_ensure_server_cert(fx->pki, hosts, 5), VIGIL_OK);
    assert_int_equal(file_mode(pki_server_key_file(fx->pki)), 0600);
    cert = cert_from_file(pki_server_cert_file(fx->pki));
    ca = cert_from_file(pki_ca_file(fx->pki));
    assert_string_equal(subject_cn(cert), "vigil");
    assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(cert, "vigil.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "::1", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "192.0.2.10", 0), 1);
    assert_int_equal(X509_check_ip_asc(cert, "2001:db8::1", 0), 1);
    assert_int_not_equal(X509_check_ip_asc(cert, "0.0.0.0", 0), 1);
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_int_equal(X509_check_issued(ca, cert), X509_V_OK);
    X509_free(cert);

    /* A second call with the same hosts keeps the files. */
    assert_int_equal(stat(pki_server_cert_file(fx->pki), &before), 0);
    assert_int_equal(pki_ensure_server_cert(fx->pki, hosts, 5), VIGIL_OK);
    assert_int_equal(stat(pki_server_cert_file(fx->pki), &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);

    /* A new address needs a new certificate. */
    hosts[0] = "198.51.100.7";
    assert_int_equal(pki_ensure_server_cert(fx->pki, hosts, 5), VIGIL_OK);
    cert = cert_from_file(pki_server_cert_file(fx->pki));
    assert_int_equal(X509_check_ip_asc(cert, "198.51.100.7", 0), 1);
    X509_free(cert);
    X509_free(ca);
}

static void test_device_cert_fields(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info info;
    struct pki_cert_info got;
    char err[256] = "";
    char *cert_pem = NULL;
    char *key_pem = NULL;
    X509 *cert;
    X509 *ca;
    EVP_PKEY *key;
    BIO *bio;

    assert_int_equal(pki_issue_device(fx->pki, "mon-0042", 365, NULL, 0, &cert_pem, &key_pem,
                                      &info, err, sizeof err),
                     VIGIL_OK);
    assert_non_null(key_pem);
    cert = cert_from_pem(cert_pem);
    ca = cert_from_file(pki_ca_file(fx->pki));
    assert_string_equal(subject_cn(cert), "mon-0042");
    assert_string_equal(uri_san(cert), "urn:vigil:device:mon-0042");
    assert_true(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT);
    assert_false(X509_get_extended_key_usage(cert) & XKU_SSL_SERVER);
    assert_true(X509_get_key_usage(cert) & KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_check_ca(cert), 0);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca)), 0);
    assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cert),
                                           X509_get0_subject_key_id(ca)),
                     0);
    assert_int_equal(verify_with_ca(cert, ca, NULL), 1);

    bio = BIO_new_mem_buf(key_pem, -1);
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    assert_non_null(key);
    assert_int_equal(X509_check_private_key(cert, key), 1);
    assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);

    assert_int_equal(strlen(info.serial), 32);
    assert_string_equal(info.device, "mon-0042");
    assert_int_equal(info.status, PKI_CERT_ACTIVE);
    assert_true(info.not_after - info.not_before >= 365 * 86400);
    assert_int_equal(pki_get(fx->pki, info.serial, &got), VIGIL_OK);
    assert_string_equal(got.device, "mon-0042");
    assert_int_equal(got.not_after, info.not_after);

    EVP_PKEY_free(key);
    BIO_free(bio);
    X509_free(cert);
    X509_free(ca);
    vigil_free(cert_pem);
    vigil_free(key_pem);
}

static void test_invalid_requests(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info info;
    char err[256] = "";
    char *cert = NULL;
    char *key = NULL;

    assert_int_equal(pki_issue_device(fx->pki, "bad/id", 30, NULL, 0, &cert, &key, &info, err,
                                      sizeof err),
                     VIGIL_ERR_INVALID);
    assert_null(cert);
    assert_null(key);
    assert_int_equal(pki_issue_device(fx->pki, "dev-1", 0, NULL, 0, &cert, &key, &info, err,
                                      sizeof err),
                     VIGIL_ERR_INVALID);
    assert_non_null(strstr(err, "days"));
}

static void test_csr_accepted(void **state)
{
    struct fixture *fx = *state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char *csr = make_csr(key, "dev-1");
    char *csr_no_cn = make_csr(p384, NULL);
    char *csr_rsa = make_csr(rsa, "dev-1");
    struct pki_cert_info info;
    char err[256] = "";
    char *cert_pem = NULL;
    char *key_pem = (char *)"unset";
    X509 *cert;

    assert_int_equal(pki_csr_check(csr, strlen(csr), "dev-1", err, sizeof err), VIGIL_OK);
    assert_int_equal(pki_csr_check(csr_no_cn, strlen(csr_no_cn), "dev-1", err, sizeof err),
                     VIGIL_OK);
    assert_int_equal(pki_csr_check(csr_rsa, strlen(csr_rsa), "dev-1", err, sizeof err), VIGIL_OK);

    assert_int_equal(pki_issue_device(fx->pki, "dev-1", 30, csr, strlen(csr), &cert_pem, &key_pem,
                                      &info, err, sizeof err),
                     VIGIL_OK);
    assert_null(key_pem);
    cert = cert_from_pem(cert_pem);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(cert), key), 1);
    assert_string_equal(subject_cn(cert), "dev-1");
    assert_string_equal(uri_san(cert), "urn:vigil:device:dev-1");

    X509_free(cert);
    vigil_free(cert_pem);
    free(csr);
    free(csr_no_cn);
    free(csr_rsa);
    EVP_PKEY_free(key);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
}

static void test_csr_rejected(void **state)
{
    struct fixture *fx = *state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    char *bad_sig = make_csr_bad_signature(key);
    char *other_cn = make_csr(key, "dev-2");
    char *prefix_cn = make_csr(key, "dev-10");
    char *weak = make_csr(rsa, "dev-1");
    const char garbage[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                           "-----END CERTIFICATE REQUEST-----\n";
    struct pki_cert_info info;
    char err[256] = "";
    char *cert = (char *)"unset";
    char *key_pem = (char *)"unset";

    assert_int_equal(pki_csr_check(bad_sig, strlen(bad_sig), "dev-1", err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_non_null(strstr(err, "signature"));
    assert_int_equal(pki_csr_check(other_cn, strlen(other_cn), "dev-1", err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_non_null(strstr(err, "CN"));
    assert_int_equal(pki_csr_check(prefix_cn, strlen(prefix_cn), "dev-1", err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_int_equal(pki_csr_check(weak, strlen(weak), "dev-1", err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_non_null(strstr(err, "1024"));
    assert_int_equal(pki_csr_check(garbage, strlen(garbage), "dev-1", err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_int_equal(pki_csr_check("hello", 5, "dev-1", err, sizeof err), VIGIL_ERR_INVALID);
    assert_int_equal(pki_csr_check("", 0, "dev-1", err, sizeof err), VIGIL_ERR_INVALID);

    assert_int_equal(pki_issue_device(fx->pki, "dev-1", 30, other_cn, strlen(other_cn), &cert,
                                      &key_pem, &info, err, sizeof err),
                     VIGIL_ERR_INVALID);
    assert_null(cert);
    assert_null(key_pem);

    free(bad_sig);
    free(other_cn);
    free(prefix_cn);
    free(weak);
    EVP_PKEY_free(key);
    EVP_PKEY_free(rsa);
}

/* Certificate records collected by pki_list. */
struct collected {
    struct pki_cert_info items[16];
    size_t count;
};

static void collect(void *ctx, const struct pki_cert_info *info)
{
    struct collected *c = ctx;

    if (c->count < 16)
        c->items[c->count++] = *info;
}

/* A second rotation revokes the generation the first one superseded, so
 * only the certificate just replaced keeps its overlap. */
static void test_second_rotation_revokes_oldest(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info first, second, third, got;
    X509_CRL *crl;

    issue_ok(fx, "dev-1", &first);
    rotate_ok(fx, "dev-1", 3600, &second);
    rotate_ok(fx, "dev-1", 3600, &third);
    assert_int_equal(pki_get(fx->pki, first.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_REVOKED);
    assert_int_equal(pki_get(fx->pki, second.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_SUPERSEDED);
    assert_int_equal(pki_get(fx->pki, third.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_ACTIVE);
    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_true(crl_lists(crl, first.serial));
    assert_false(crl_lists(crl, second.serial));
    X509_CRL_free(crl);
}

static void test_rotation_records(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info first;
    struct pki_cert_info second;
    struct pki_cert_info got;
    int64_t now = (int64_t)time(NULL);

    issue_ok(fx, "dev-1", &first);
    rotate_ok(fx, "dev-1", 3600, &second);
    assert_string_not_equal(first.serial, second.serial);

    assert_int_equal(pki_get(fx->pki, first.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_SUPERSEDED);
    assert_true(got.overlap_until >= now + 3600 - 5);
    assert_true(got.overlap_until <= now + 3600 + 5);
    assert_int_equal(got.revoked_at, 0);
    assert_int_equal(pki_get(fx->pki, second.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_ACTIVE);
    assert_int_equal(got.overlap_until, 0);
}

static void test_expire_overlaps(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info first;
    struct pki_cert_info second;
    struct pki_cert_info got;
    int64_t now = (int64_t)time(NULL);
    X509_CRL *crl;
    int changed = -1;

    issue_ok(fx, "dev-1", &first);
    rotate_ok(fx, "dev-1", 3600, &second);

    assert_int_equal(pki_expire_overlaps(fx->pki, now, &changed), VIGIL_OK);
    assert_int_equal(changed, 0);
    assert_int_equal(pki_get(fx->pki, first.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_SUPERSEDED);

    assert_int_equal(pki_expire_overlaps(fx->pki, now + 7200, &changed), VIGIL_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(pki_get(fx->pki, first.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_REVOKED);
    assert_int_equal(got.revoked_at, now + 7200);
    assert_int_equal(pki_get(fx->pki, second.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_ACTIVE);

    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_true(crl_lists(crl, first.serial));
    assert_int_equal(crl_reason(crl, first.serial), CRL_REASON_SUPERSEDED);
    assert_false(crl_lists(crl, second.serial));
    X509_CRL_free(crl);
}

/* A missing CRL reads as one whose nextUpdate has passed, so the refresh
 * path writes a new one with nothing else changed. */
static void test_expire_refreshes_crl(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info info;
    X509_CRL *crl;
    int changed = -1;

    issue_ok(fx, "dev-1", &info);
    assert_int_equal(pki_revoke_device(fx->pki, "dev-1"), VIGIL_OK);
    assert_int_equal(unlink(pki_crl_file(fx->pki)), 0);
    assert_int_equal(pki_expire_overlaps(fx->pki, (int64_t)time(NULL), &changed), VIGIL_OK);
    assert_int_equal(changed, 1);
    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_true(crl_lists(crl, info.serial));
    assert_true(X509_cmp_time(X509_CRL_get0_nextUpdate(crl), NULL) > 0);
    X509_CRL_free(crl);
}

static void test_revoke_lists_serials(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info first;
    struct pki_cert_info second;
    struct pki_cert_info other;
    X509 *ca = cert_from_file(pki_ca_file(fx->pki));
    X509_CRL *crl;

    issue_ok(fx, "dev-1", &first);
    rotate_ok(fx, "dev-1", 3600, &second);
    issue_ok(fx, "dev-2", &other);
    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_false(crl_lists(crl, first.serial));
    X509_CRL_free(crl);

    assert_int_equal(pki_revoke_device(fx->pki, "dev-1"), VIGIL_OK);
    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_int_equal(X509_CRL_verify(crl, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)), 0);
    assert_true(crl_lists(crl, first.serial));
    assert_true(crl_lists(crl, second.serial));
    assert_int_equal(crl_reason(crl, first.serial), -1);
    assert_int_equal(crl_reason(crl, second.serial), -1);
    assert_false(crl_lists(crl, other.serial));
    assert_true(X509_cmp_time(X509_CRL_get0_nextUpdate(crl), NULL) > 0);
    X509_CRL_free(crl);

    assert_int_equal(pki_revoke_device(fx->pki, "dev-unknown"), VIGIL_ERR_NOT_FOUND);
    X509_free(ca);
}

static void test_reissue_revokes_previous(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info first;
    struct pki_cert_info second;
    struct pki_cert_info got;
    char *pem;
    X509 *cert;
    X509 *ca = cert_from_file(pki_ca_file(fx->pki));
    X509_CRL *crl;
    char err[256];
    char *key = NULL;

    assert_int_equal(pki_issue_device(fx->pki, "dev-1", 30, NULL, 0, &pem, &key, &first, err,
                                      sizeof err),
                     VIGIL_OK);
    vigil_free(key);
    cert = cert_from_pem(pem);
    vigil_free(pem);
    issue_ok(fx, "dev-1", &second);
    assert_int_equal(pki_get(fx->pki, first.serial, &got), VIGIL_OK);
    assert_int_equal(got.status, PKI_CERT_REVOKED);
    assert_true(got.revoked_at > 0);

    crl = crl_from_file(pki_crl_file(fx->pki));
    assert_true(crl_lists(crl, first.serial));
    assert_int_equal(verify_with_ca(cert, ca, NULL), 1);
    assert_int_equal(verify_with_ca(cert, ca, crl), 0);
    X509_CRL_free(crl);
    X509_free(cert);
    X509_free(ca);
}

/* Reads and parses the CRL file until stop is set. */
struct crl_reader {
    const char *path;
    volatile int stop;
    int reads;
    int failures;
};

static void *read_crl_loop(void *arg)
{
    struct crl_reader *r = arg;

    while (!r->stop) {
        BIO *bio = BIO_new_file(r->path, "r");
        X509_CRL *crl = bio != NULL ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;

        r->reads++;
        if (crl == NULL)
            r->failures++;
        X509_CRL_free(crl);
        BIO_free(bio);
        ERR_clear_error();
    }
    return NULL;
}

static void test_crl_replaced_atomically(void **state)
{
    struct fixture *fx = *state;
    struct crl_reader reader = {pki_crl_file(fx->pki), 0, 0, 0};
    struct pki_cert_info info;
    struct stat before;
    struct stat after;
    struct dirent *entry;
    char pki_dir[128];
    pthread_t thread;
    DIR *dir;
    /* Holding the old file open keeps its inode from being reused. */
    int old_fd = open(reader.path, O_RDONLY);

    assert_true(old_fd >= 0);
    assert_int_equal(fstat(old_fd, &before), 0);
    assert_int_equal(pthread_create(&thread, NULL, read_crl_loop, &reader), 0);
    for (int i = 0; i < 20; i++) {
        char id[16];

        snprintf(id, sizeof id, "dev-%d", i);
        issue_ok(fx, id, &info);
        assert_int_equal(pki_revoke_device(fx->pki, id), VIGIL_OK);
    }
    reader.stop = 1;
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_true(reader.reads > 0);
    assert_int_equal(reader.failures, 0);

    assert_int_equal(stat(reader.path, &after), 0);
    assert_int_not_equal(before.st_ino, after.st_ino);
    close(old_fd);
    snprintf(pki_dir, sizeof pki_dir, "%s/pki", fx->dir);
    dir = opendir(pki_dir);
    assert_non_null(dir);
    while ((entry = readdir(dir)) != NULL)
        assert_null(strstr(entry->d_name, ".tmp"));
    closedir(dir);
}

static void test_list_and_get(void **state)
{
    struct fixture *fx = *state;
    struct pki_cert_info a1;
    struct pki_cert_info a2;
    struct pki_cert_info b1;
    struct pki_cert_info got;
    struct collected list = {.count = 0};
    char lower[PKI_SERIAL_MAX];

    issue_ok(fx, "dev-b", &b1);
    issue_ok(fx, "dev-a", &a1);
    rotate_ok(fx, "dev-a", 60, &a2);
    assert_int_equal(pki_list(fx->pki, collect, &list), VIGIL_OK);
    assert_int_equal(list.count, 3);
    assert_string_equal(list.items[0].serial, a1.serial);
    assert_string_equal(list.items[1].serial, a2.serial);
    assert_string_equal(list.items[2].serial, b1.serial);
    assert_int_equal(list.items[0].status, PKI_CERT_SUPERSEDED);
    assert_int_equal(list.items[1].status, PKI_CERT_ACTIVE);

    for (size_t i = 0; i <= strlen(b1.serial); i++)
        lower[i] = (char)tolower((unsigned char)b1.serial[i]);
    assert_int_equal(pki_get(fx->pki, lower, &got), VIGIL_OK);
    assert_string_equal(got.device, "dev-b");
    assert_int_equal(pki_get(fx->pki, "00", &got), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(pki_get(fx->pki, "not hex", &got), VIGIL_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_created_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_cert_sans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_cert_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csr_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csr_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_rotation_revokes_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_overlaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expire_refreshes_crl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke_lists_serials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reissue_revokes_previous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crl_replaced_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_get, setup, teardown),
    };

    vigil_log_set_level(VIGIL_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
