/* UDP endpoints for the CoAP and MQTT-SN front ends: one socket per
 * listener (IPv4 or IPv6), a table of peers keyed by source address, and
 * on DTLS listeners a DTLS 1.2 session per peer. A DTLS peer gets state
 * only after the stateless cookie exchange (HelloVerifyRequest) proved its
 * address; handshakes per source address are rate limited; sessions can be
 * resumed; the identity comes from the PSK identity or the client
 * certificate exactly as on MQTTS listeners. Front ends see plaintext
 * datagrams per peer and never touch DTLS. Everything here runs on the I/O
 * loop thread. */
#ifndef VIGIL_BROKER_UDP_H
#define VIGIL_BROKER_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "broker/broker.h"

struct udp_endpoint;

struct udp_peer {
    struct udp_endpoint *ep;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char name[64];                     /* "127.0.0.1:5683" or "[::1]:5683" */
    bool secure;                       /* a DTLS session is established */
    char identity[DEVICE_ID_MAX + 1];  /* proven by DTLS; "" otherwise */
    char cert_serial[PKI_SERIAL_MAX];  /* client certificate serial, "" if none */
    bool used_psk;
    uint64_t last_rx_ms;               /* loop time of the last datagram */
    void *user;                        /* the front end's state for this peer */
};

struct udp_handler {
    /* A datagram from p: plaintext on plain endpoints, decrypted
     * application data on DTLS ones. data is valid during the call. */
    void (*datagram)(void *ctx, struct udp_peer *p, const uint8_t *data, size_t len);
    /* The DTLS handshake of p completed; p->identity is set. */
    void (*secured)(void *ctx, struct udp_peer *p);
    /* p is about to be freed (udp_peer_close, DTLS close_notify or fatal
     * alert, endpoint closing). The front end releases p->user here and
     * must not use p afterwards. Called only for peers the front end has
     * seen: after their first datagram on plain endpoints, after secured
     * on DTLS ones, so a DTLS peer whose handshake fails gets no call. */
    void (*closing)(void *ctx, struct udp_peer *p);
    void *ctx;
};

/* Opens the socket of listener l (transports coap, coaps, mqttsn,
 * mqttsn-dtls; DTLS for coaps and mqttsn-dtls, with the TLS files and PSK
 * settings the hub uses for MQTTS). proto (VIGIL_PROTO_COAP or
 * VIGIL_PROTO_MQTTSN) labels events. Logs and returns an error when the
 * address cannot be bound. */
vigil_err udp_endpoint_open(struct hub *hub, const struct config_listener *l, uint8_t proto,
                            const struct udp_handler *h, struct udp_endpoint **out);

/* Closes every peer (closing callbacks, DTLS close_notify), then the
 * socket; the endpoint frees itself once libuv released the handle. */
void udp_endpoint_close(struct udp_endpoint *ep);

/* Rebuilds the DTLS context from the current files (SIGHUP); existing
 * sessions keep the old one. No effect on plain endpoints. */
void udp_endpoint_reload(struct udp_endpoint *ep);

bool udp_endpoint_is_dtls(const struct udp_endpoint *ep);
const struct config_listener *udp_endpoint_listener(const struct udp_endpoint *ep);
struct hub *udp_endpoint_hub(const struct udp_endpoint *ep);
/* Peers with state, DTLS handshakes in progress included; at most
 * gateway.max_peers. */
uint32_t udp_endpoint_n_peers(const struct udp_endpoint *ep);
/* The bound UDP port (the listener's, or the one the system chose for
 * port 0). */
uint16_t udp_endpoint_port(const struct udp_endpoint *ep);

/* When the peer table is full and a new source arrives, the least
 * recently active peer whose last datagram is at least idle_ms old is
 * ended (closing callback) to make room. 0, the default, never ends a
 * peer for room. */
void udp_endpoint_set_idle_ms(struct udp_endpoint *ep, uint64_t idle_ms);

/* Forgets every resumable DTLS session of the endpoint, so that no revoked
 * identity resumes. Then ends, with closing callbacks, the secured peers
 * of device (any device when NULL or "") whose certificate serial is
 * serial (any serial when NULL or ""). With both NULL or "", no peer is
 * ended. Returns the number of peers ended; 0 on plain endpoints. */
uint32_t udp_endpoint_revoke(struct udp_endpoint *ep, const char *device, const char *serial);

/* Calls fn for every peer the front end has seen (on DTLS endpoints, the
 * secured ones); fn may close the peer it is given. */
void udp_endpoint_foreach(struct udp_endpoint *ep, void (*fn)(void *ctx, struct udp_peer *p),
                          void *ctx);

/* Sends one datagram to p, encrypted on DTLS endpoints (only once p is
 * secure). Returns VIGIL_ERR_LIMIT when the datagram is too large for the
 * path (over 1152 bytes of plaintext on DTLS, 65507 on plain UDP). */
vigil_err udp_send(struct udp_peer *p, const uint8_t *data, size_t len);

/* Sends one plaintext datagram to an address with no peer state; plain
 * endpoints only (RST to an unknown source, GWINFO). */
vigil_err udp_send_to(struct udp_endpoint *ep, const struct sockaddr *addr, const uint8_t *data,
                      size_t len);

/* Ends p: sends close_notify on DTLS, calls closing, and frees it once the
 * current callback has returned. Safe to call more than once. */
void udp_peer_close(struct udp_peer *p, const char *why);

#endif
