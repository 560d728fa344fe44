/* DTLS 1.2 servers for UDP endpoints. A context is built from the same
 * files and rules as TLS (tls.h). A stateless cookie exchange creates no
 * per-peer state before a client proved its address, and then each peer
 * gets its own session. Everything is driven through memory so that the
 * I/O loop owns the socket: each datagram OpenSSL writes goes to a send
 * callback on its own, which keeps datagram boundaries. No libuv here, so
 * all of it can be tested and fuzzed in memory. Not thread-safe: one
 * thread drives a listener and its sessions. */
#ifndef VIGIL_NET_DTLS_H
#define VIGIL_NET_DTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/error.h"
#include "net/tls.h"

/* UDP payload per datagram by default: the IPv6 minimum link MTU (1280)
 * less the IPv6 (40) and UDP (8) headers, so no datagram is fragmented. */
#define DTLS_MTU_DEFAULT 1232
/* Application data per record that every cipher suite fits into
 * DTLS_MTU_DEFAULT with room to spare. */
#define DTLS_PLAINTEXT_MAX 1152

struct dtls_server_opts {
    struct tls_server_opts tls;  /* files, client certificates, identity source, PSK */
    uint16_t mtu;                /* UDP payload per datagram; 0 = DTLS_MTU_DEFAULT */
    uint32_t session_cache_size; /* resumable sessions kept (oldest evicted); 0 = none */
    uint32_t session_timeout_s;  /* lifetime of a resumable session; 0 = 7200 */
};

/* A server context: DTLS 1.2 only, with AEAD cipher suites only. These are
 * ECDHE suites for certificates and, when PSK is allowed, the PSK suites
 * CoAP clients use, such as PSK-AES128-CCM8. Sessions are resumed by
 * session id, never by tickets. */
struct dtls_server;

/* Builds a context. On failure writes a message naming the file and the
 * problem into err and returns VIGIL_ERR_CONFIG (VIGIL_ERR_NOMEM when out
 * of memory). */
vigil_err dtls_server_new(const struct dtls_server_opts *opts, struct dtls_server **out, char *err,
                          size_t errcap);
/* Frees srv. Sessions made from it keep what they need and stay usable. */
void dtls_server_free(struct dtls_server *srv);
/* Forgets every resumable session, so that each peer's next handshake is a
 * full one, checked against the current inventory and CRL. */
void dtls_server_flush_sessions(struct dtls_server *srv);
/* Resumable sessions currently cached. */
size_t dtls_server_cached_sessions(const struct dtls_server *srv);

/* Sends one datagram to the peer a session or a listener call is about.
 * data is valid during the call only. */
typedef void (*dtls_send_fn)(void *ctx, const uint8_t *data, size_t len);

/* The stateless cookie exchange of one endpoint. */
struct dtls_listener;

/* srv is borrowed and must stay alive until dtls_listener_set_server()
 * replaces it or the listener is freed. */
vigil_err dtls_listener_new(struct dtls_server *srv, struct dtls_listener **out);
void dtls_listener_free(struct dtls_listener *l);
/* Makes new handshakes use srv (after a reload). */
void dtls_listener_set_server(struct dtls_listener *l, struct dtls_server *srv);

enum dtls_listen_result {
    DTLS_LISTEN_DROPPED,     /* not an initial ClientHello; nothing was sent */
    DTLS_LISTEN_VERIFY_SENT, /* a ClientHello without a valid cookie: HelloVerifyRequest sent */
    DTLS_LISTEN_ACCEPTED,    /* a ClientHello with a valid cookie: call dtls_listener_accept */
};

/* Handles one datagram from addr, a source with no session. A ClientHello
 * without a valid cookie gets a HelloVerifyRequest through send, with a
 * cookie that is an HMAC-SHA256 of the address and port under a secret
 * rotated every DTLS_COOKIE_ROTATE_MS (the previous secret is accepted
 * too). now_ms is a monotonic clock in milliseconds. Nothing about addr is
 * kept. */
enum dtls_listen_result dtls_listen(struct dtls_listener *l, const struct sockaddr *addr,
                                    socklen_t addr_len, const uint8_t *data, size_t len,
                                    uint64_t now_ms, dtls_send_fn send, void *send_ctx);
#define DTLS_COOKIE_ROTATE_MS (60u * 1000)

struct dtls_session;

/* Callbacks of a session, called from dtls_session_* calls on the same
 * thread. A callback may call dtls_session_write() and
 * dtls_session_shutdown() on its session, never dtls_session_free(). */
struct dtls_session_io {
    dtls_send_fn send;
    /* The handshake completed; identity, serial and cipher are readable.
     * Called once, before the first received(). May be NULL. */
    void (*established)(void *ctx);
    /* One record of application data, valid during the call. */
    void (*received)(void *ctx, const uint8_t *data, size_t len);
    void *ctx;
};

/* Takes the session of the ClientHello that dtls_listen() just accepted;
 * it must be called before the next dtls_listen() on l. The caller owns
 * *out and frees it with dtls_session_free(). The handshake continues with
 * dtls_session_feed(*out, NULL, 0). Returns VIGIL_ERR_INVALID when nothing
 * was accepted. */
vigil_err dtls_listener_accept(struct dtls_listener *l, const struct dtls_session_io *io,
                               struct dtls_session **out);

/* Feeds one datagram from the peer; len 0 drives the handshake with what
 * is already buffered. Sends through io.send what the session must send,
 * and passes application data to io.received. Returns VIGIL_OK,
 * VIGIL_ERR_AUTH or VIGIL_ERR_PROTOCOL when the handshake failed
 * (dtls_session_error() explains; an alert may have been sent), or
 * VIGIL_ERR_CLOSED once the peer sent close_notify. Records that fail to
 * decrypt are dropped as RFC 6347 4.1.2.7 requires, except for a PSK
 * client's Finished, which fails the handshake as "PSK key mismatch". */
vigil_err dtls_session_feed(struct dtls_session *s, const uint8_t *data, size_t len);

/* Milliseconds until dtls_session_on_timer() is due (0 = now), or -1 while
 * no sent flight waits for the peer's reply. */
int64_t dtls_session_timeout_ms(const struct dtls_session *s);
/* Retransmits the last flight when its timer expired. Returns
 * VIGIL_ERR_PROTOCOL once OpenSSL gives up after its retransmission
 * limit. */
vigil_err dtls_session_on_timer(struct dtls_session *s);

/* Encrypts data as one record in one datagram. Only once established.
 * Returns VIGIL_ERR_LIMIT when len exceeds dtls_session_max_write(). */
vigil_err dtls_session_write(struct dtls_session *s, const uint8_t *data, size_t len);
/* Application data that fits one datagram with the negotiated cipher, at
 * most DTLS_PLAINTEXT_MAX; 0 before the handshake completed. */
size_t dtls_session_max_write(const struct dtls_session *s);
/* Sends close_notify once, if the session is established and not failed.
 * The session stays resumable. */
void dtls_session_shutdown(struct dtls_session *s);
/* Removes the session from the resumption cache (revocation). */
void dtls_session_forget(struct dtls_session *s);
void dtls_session_free(struct dtls_session *s);

bool dtls_session_established(const struct dtls_session *s);
/* A short English reason for the failure, as tls_session_error(). */
const char *dtls_session_error(const struct dtls_session *s);
/* After the handshake: the device identity (PSK identity or certificate,
 * as for TLS), "" when none. */
const char *dtls_session_identity(const struct dtls_session *s);
bool dtls_session_used_psk(const struct dtls_session *s);
/* Client certificate serial as upper-case hex, "" if none. */
const char *dtls_session_cert_serial(const struct dtls_session *s);
bool dtls_session_resumed(const struct dtls_session *s);
const char *dtls_session_cipher(const struct dtls_session *s);
/* The PSK identity a client claimed in a handshake that failed, "" if
 * none; for failed-login accounting. */
const char *dtls_session_claimed_identity(const struct dtls_session *s);

/* True when data starts with an epoch 0 ClientHello record: a new
 * handshake, which on an address with a session goes to dtls_listen(). */
bool dtls_is_client_hello(const uint8_t *data, size_t len);
/* True when the ClientHello in data has the client random of the one that
 * began s: a late copy of it, not a new handshake. */
bool dtls_session_same_hello(const struct dtls_session *s, const uint8_t *data, size_t len);

#endif
