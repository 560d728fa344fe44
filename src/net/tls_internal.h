/* Shared state of the TLS server context, sessions and PSK callbacks. */
#ifndef VIGIL_NET_TLS_INTERNAL_H
#define VIGIL_NET_TLS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "auth/device.h"
#include "net/tls.h"

#define TLS_ERROR_MAX 160
#define TLS_SERIAL_MAX 65 /* 32 bytes as hex, NUL; longer serials are cut */
/* Key exchange groups of every server context, TLS and DTLS. */
#define TLS_GROUPS "X25519:P-256:P-384"

struct tls_server {
    SSL_CTX *ctx;                 /* owned; its app data points back here */
    atomic_int refs;
    enum tls_identity_source identity;
    tls_psk_lookup_fn psk_lookup; /* NULL = no TLS-PSK */
    void *psk_ctx;
    int64_t not_after;            /* leaf certificate expiry, Unix seconds */
};

struct tls_session {
    struct tls_server *srv;       /* one reference held */
    SSL *ssl;                     /* owned; its app data points back here */
    BIO *rbio;                    /* ciphertext from the peer, owned by ssl */
    BIO *wbio;                    /* ciphertext to the peer, owned by ssl */
    bool established;
    bool used_psk;                /* set when the handshake completed with a PSK */
    bool closed;                  /* the peer sent close_notify */
    bool shut;                    /* our close_notify is queued */
    vigil_err failure;            /* VIGIL_OK until the session failed */
    char error[TLS_ERROR_MAX];
    char identity[DEVICE_ID_MAX + 1];      /* from the client certificate */
    char psk_identity[DEVICE_ID_MAX + 1];  /* claimed in the PSK extension */
    char serial[TLS_SERIAL_MAX];
};

/* Protocol family of a server context: its SSL_METHOD, and the function
 * that sets versions, options, cipher suites and groups. apply allows the
 * PSK suites too when psk is true, and writes a message into err on failure. */
struct tls_policy {
    const SSL_METHOD *(*method)(void);
    vigil_err (*apply)(SSL_CTX *ctx, bool psk, char *err, size_t errcap);
};

/* Builds a server context as tls_server_new does, with the given policy in
 * place of the TLS one. */
vigil_err tls_server_build(const struct tls_server_opts *opts, const struct tls_policy *policy,
                           struct tls_server **out, char *err, size_t errcap);
/* Writes "what: OpenSSL reason" for a call that left an error queued, and
 * clears the queue. */
void tls_format_openssl_error(char *err, size_t errcap, const char *what);

/* Returns the session an SSL belongs to. */
struct tls_session *tls_session_of(const SSL *ssl);
/* Records the first failure reason of a session; later reasons are ignored. */
void tls_session_set_error(struct tls_session *s, const char *reason);

/* Marks the session failed after an SSL call returned ssl_error, with a
 * reason from the callbacks, the verify result or the error queue (which
 * it empties). Returns VIGIL_ERR_AUTH or VIGIL_ERR_PROTOCOL. */
vigil_err tls_session_fail(struct tls_session *s, int ssl_error);

/* Completes a session after its handshake: marks it established, decides
 * whether a PSK was used and records the identity and certificate serial. */
void tls_session_finish_handshake(struct tls_session *s);

/* Reads the device identity of a client certificate into id from the URI
 * SAN or the CN, as source selects. Returns NULL on success, else the
 * reason the certificate has no usable identity (id is then ""). */
const char *tls_cert_identity(X509 *cert, enum tls_identity_source source,
                              char id[DEVICE_ID_MAX + 1]);

/* Installs the PSK callbacks for TLS 1.2 and 1.3 on srv->ctx. */
vigil_err tls_psk_install(struct tls_server *srv);
/* Installs the client certificate check (chain result, then identity). */
void tls_verify_install(struct tls_server *srv, int mode);

/* Formats an ASN1_TIME as "2026-01-02 03:04:05 UTC". */
void tls_format_time(const ASN1_TIME *t, char *out, size_t cap);
/* Converts an ASN1_TIME to Unix seconds; returns false if it cannot. */
bool tls_time_to_unix(const ASN1_TIME *t, int64_t *out);

#endif
