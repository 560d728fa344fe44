/* libFuzzer harness for the TLS server session: arbitrary bytes go to a
 * fresh session of a context with client certificates, a CRL and TLS-PSK.
 * The session must fail or wait for more input; ASan and LSan catch a
 * crash or a leak, and a failure without a reason aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/support/tls_testpki.h"
#include "core/buf.h"
#include "net/tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tls_server *server;
static char dir[64];
static char files[4][128];

static size_t lookup_psk(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    if (strcmp(identity, "bed-1") != 0)
        return 0;
    memset(key, 0x5a, 32);
    return 32;
}

static void remove_files(void)
{
    size_t i;

    tls_server_unref(server);
    for (i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(dir);
}

/* Writes a CA, a server certificate and key, and a CRL into dir. */
static int write_pki(void)
{
    struct testpki_spec ca_spec = {"Fuzz CA", NULL, NULL, 1, -TESTPKI_DAY, 30 * TESTPKI_DAY, true};
    struct testpki_spec srv_spec = {"vigil", NULL, NULL, 2, -TESTPKI_DAY, 30 * TESTPKI_DAY, false};
    long revoked[] = {3};
    EVP_PKEY *ca_key = testpki_key();
    EVP_PKEY *key = testpki_key();
    X509 *ca = testpki_cert(&ca_spec, ca_key, NULL, NULL);
    X509 *cert = testpki_cert(&srv_spec, key, ca, ca_key);
    X509_CRL *crl = testpki_crl(ca, ca_key, revoked, 1, 30 * TESTPKI_DAY);
    int ok = ca != NULL && cert != NULL && crl != NULL && testpki_write_cert(files[0], ca) &&
             testpki_write_cert(files[1], cert) && testpki_write_key(files[2], key) &&
             testpki_write_crl(files[3], crl);

    X509_CRL_free(crl);
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return ok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct tls_server_opts opts = {0};
    char err[512];

    snprintf(dir, sizeof dir, "/tmp/vigil-fuzz-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(files[0], sizeof files[0], "%s/ca.pem", dir);
    snprintf(files[1], sizeof files[1], "%s/server.pem", dir);
    snprintf(files[2], sizeof files[2], "%s/server.key", dir);
    snprintf(files[3], sizeof files[3], "%s/crl.pem", dir);
    if (!write_pki())
        abort();
    opts.ca_file = files[0];
    opts.cert_file = files[1];
    opts.key_file = files[2];
    opts.crl_file = files[3];
    opts.require_client_cert = true;
    opts.psk_lookup = lookup_psk;
    if (tls_server_new(&opts, &server, err, sizeof err) != VIGIL_OK) {
        fprintf(stderr, "tls_server_new: %s\n", err);
        abort();
    }
    atexit(remove_files);
    return 0;
}

/* The first byte picks the size of the pieces the rest is fed in, so that
 * records split across reads are covered too. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tls_session *s;
    struct vigil_buf plain, wire;
    size_t piece = size > 0 && data[0] != 0 ? data[0] : size;
    size_t at = size > 0 ? 1 : 0;
    vigil_err rc = VIGIL_OK;

    if (tls_session_new(server, &s) != VIGIL_OK)
        return 0;
    vigil_buf_init(&plain, 4096);
    vigil_buf_init(&wire, 64 * 1024);
    while (at < size && (rc == VIGIL_OK || rc == VIGIL_ERR_LIMIT)) {
        size_t n = size - at < piece ? size - at : piece;

        rc = tls_session_feed(s, data + at, n, &plain, &wire);
        at += n;
        vigil_buf_consume(&plain, plain.len);
        vigil_buf_consume(&wire, wire.len);
    }
    if ((rc == VIGIL_ERR_AUTH || rc == VIGIL_ERR_PROTOCOL) && tls_session_error(s)[0] == '\0')
        abort();
    tls_session_shutdown(s, &wire);
    tls_session_free(s);
    vigil_buf_release(&plain);
    vigil_buf_release(&wire);
    return 0;
}
