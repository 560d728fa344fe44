/* TLS for stream connections: server contexts built from files with precise
 * errors, and sessions driven through memory buffers so that the I/O loop
 * owns the socket. OpenSSL 3; TLS 1.2 and 1.3 only, no renegotiation. No
 * libuv here, so sessions can be tested and fuzzed in memory. */
#ifndef VIGIL_NET_TLS_H
#define VIGIL_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* How the device identity is read from a client certificate. */
enum tls_identity_source {
    TLS_IDENTITY_URI = 0,  /* URI SAN "urn:vigil:device:<id>", else refused */
    TLS_IDENTITY_CN,       /* subject Common Name */
};

/* Looks up the pre-shared key of a device for TLS-PSK. Returns the key length
 * (1 to 64) written to key, or 0 when the identity is unknown. Called on the
 * thread that drives the session. */
typedef size_t (*tls_psk_lookup_fn)(void *ctx, const char *identity, uint8_t *key, size_t cap);

struct tls_server_opts {
    const char *cert_file;      /* PEM chain, leaf first; required */
    const char *key_file;       /* PEM private key; must match the leaf */
    const char *ca_file;        /* PEM CA certificates for client certificates; NULL = none */
    const char *crl_file;       /* PEM CRL of that CA; NULL = none. When set, every client
                                 * certificate is checked against it. */
    bool require_client_cert;   /* mutual TLS: a handshake without a valid client
                                 * certificate fails (unless PSK is used) */
    enum tls_identity_source identity;
    tls_psk_lookup_fn psk_lookup;  /* NULL = no TLS-PSK */
    void *psk_ctx;
};

/* A server context, reference-counted so that a reload can replace it while
 * sessions made from the old one live on. */
struct tls_server;

/* Builds a context. On failure writes a message naming the file and the
 * problem (missing, unreadable, not PEM, expired or not yet valid, key does
 * not match the certificate, CRL not signed by the CA ...) into err and
 * returns VIGIL_ERR_CONFIG. */
vigil_err tls_server_new(const struct tls_server_opts *opts, struct tls_server **out, char *err,
                         size_t errcap);
void tls_server_ref(struct tls_server *srv);
void tls_server_unref(struct tls_server *srv);
/* Seconds until the server certificate expires (negative once expired). */
int64_t tls_server_cert_expires_in(const struct tls_server *srv);

struct tls_session;

/* Starts a server-side session. The caller owns it; tls_session_free(). */
vigil_err tls_session_new(struct tls_server *srv, struct tls_session **out);
void tls_session_free(struct tls_session *s);

/* Feeds bytes read from the socket. Decrypted application data is appended
 * to plain (up to its limit: VIGIL_ERR_LIMIT), and bytes the session must
 * send (handshake, alerts) to wire. Returns VIGIL_OK, or VIGIL_ERR_AUTH /
 * VIGIL_ERR_PROTOCOL when the handshake or the record layer failed (then
 * tls_session_error() explains, and wire may hold an alert to send before
 * closing), or VIGIL_ERR_CLOSED after the peer's close_notify. */
vigil_err tls_session_feed(struct tls_session *s, const uint8_t *in, size_t len,
                           struct vigil_buf *plain, struct vigil_buf *wire);
/* Encrypts application data into wire. Only after the handshake is done. */
vigil_err tls_session_write(struct tls_session *s, const uint8_t *data, size_t len,
                            struct vigil_buf *wire);
/* Queues close_notify into wire. */
void tls_session_shutdown(struct tls_session *s, struct vigil_buf *wire);

bool tls_session_established(const struct tls_session *s);
/* A short English reason for the last failure, e.g. "certificate revoked",
 * "no client certificate", "unsupported protocol version TLSv1.1",
 * "no shared cipher", "unknown PSK identity". */
const char *tls_session_error(const struct tls_session *s);

/* After the handshake: the identity the peer proved, from its certificate
 * (per tls_server_opts.identity) or its PSK identity. Empty when none. */
const char *tls_session_identity(const struct tls_session *s);
bool tls_session_used_psk(const struct tls_session *s);
/* Serial number of the client certificate as upper-case hex, "" if none. */
const char *tls_session_cert_serial(const struct tls_session *s);
/* Negotiated protocol ("TLSv1.3") and cipher name. */
const char *tls_session_protocol(const struct tls_session *s);
const char *tls_session_cipher(const struct tls_session *s);

/* Checks whether serial (upper-case hex) is listed in the PEM CRL file.
 * Returns VIGIL_OK when listed, VIGIL_ERR_NOT_FOUND when not, and
 * VIGIL_ERR_IO/VIGIL_ERR_CONFIG when the file cannot be read. */
vigil_err tls_crl_contains(const char *crl_file, const char *serial);

#endif
