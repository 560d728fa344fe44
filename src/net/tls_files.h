/* Loading and checking the PEM files of a TLS server context. */
#ifndef VIGIL_NET_TLS_FILES_H
#define VIGIL_NET_TLS_FILES_H

#include <stddef.h>

#include <openssl/x509.h>

#include "core/error.h"
#include "net/tls.h"

/* Everything read from the files of tls_server_opts; owned, released with
 * tls_files_free(). */
struct tls_material {
    X509 *leaf;                 /* first certificate of cert_file */
    STACK_OF(X509) *chain;      /* the rest of cert_file */
    EVP_PKEY *key;
    STACK_OF(X509) *cas;        /* ca_file, NULL without one */
    STACK_OF(X509_CRL) *crls;   /* crl_file, NULL without one */
};

/* Reads and checks each file in turn. On failure writes "<path>: <problem>"
 * into err, returns VIGIL_ERR_CONFIG and leaves m for tls_files_free(). */
vigil_err tls_files_load(const struct tls_server_opts *opts, struct tls_material *m, char *err,
                         size_t errcap);
void tls_files_free(struct tls_material *m);

#endif
