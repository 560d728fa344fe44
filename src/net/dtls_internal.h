/* Shared state of the DTLS context, listener, sessions and datagram BIO. */
#ifndef VIGIL_NET_DTLS_INTERNAL_H
#define VIGIL_NET_DTLS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "net/dtls.h"
#include "net/tls_internal.h"

#define DTLS_RANDOM_LEN 32
#define DTLS_RECORD_HEADER_LEN 13
#define DTLS_HANDSHAKE_HEADER_LEN 12
#define DTLS_COOKIE_LEN 32 /* HMAC-SHA256 */

struct dtls_server {
    struct tls_server *tls; /* one reference; its SSL_CTX uses DTLS_server_method */
    uint16_t mtu;
};

struct dtls_session {
    /* First member: the SSL's app data points here, so the TLS PSK,
     * certificate and failure-reason code works on DTLS sessions too. Its
     * rbio and wbio stay NULL. */
    struct tls_session ts;
    struct dtls_session_io io;
    struct dtls_listener *listener; /* set while this is a listener's session */
    const uint8_t *in;              /* the datagram being fed, NULL once read */
    size_t in_len;
    uint8_t client_random[DTLS_RANDOM_LEN];
    uint8_t cookie[DTLS_COOKIE_LEN]; /* the cookie the listener verified */
    bool cookie_verified;
    bool resumed;
};

/* Creates a session of srv in accept state, with the datagram BIO and the
 * server's MTU. The caller owns it. */
vigil_err dtls_session_create(struct dtls_server *srv, struct dtls_session **out);

/* A BIO for one session: reads return the datagram being fed, once; each
 * write goes to io.send as one datagram. Shared by every session. */
BIO *dtls_bio_new(struct dtls_session *s);

/* Cookie callbacks of the listener, installed on every DTLS context. */
void dtls_cookie_install(SSL_CTX *ctx);

/* Returns the DTLS session an SSL belongs to. */
struct dtls_session *dtls_session_of(const SSL *ssl);

#endif
