/* A simulated device's datagram link to the hub: a connected UDP socket of
 * its own, plain or with a DTLS 1.2 client session, on a libuv loop. Many
 * links share one loop and one thread. OpenSSL reads and writes the socket
 * itself through a datagram BIO, and libuv only reports readability
 * (uv_poll_t) and drives the handshake retransmission timer. A link that
 * fails or is restarted waits an exponential backoff with jitter, then
 * opens a new socket, so the hub treats it as a new peer, and offers the
 * previous DTLS session for resumption. */
#ifndef VIGIL_SIM_UDP_LINK_H
#define VIGIL_SIM_UDP_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "core/error.h"
#include "sim/udp_link_dtls.h"

/* Largest datagram a link receives; longer ones are dropped and counted. */
#define SIM_LINK_MAX_DATAGRAM 2048
/* A DTLS handshake that has not completed after this time is abandoned.
 * OpenSSL retransmits after 1, 2 and 4 s, so a flight gets four tries. A
 * wrong PSK ends this way, because vigil's DTLS listeners drop the
 * client's Finished they cannot decrypt without sending an alert. */
#define SIM_LINK_HANDSHAKE_TIMEOUT_MS 10000u
#define SIM_LINK_BACKOFF_MIN_MS 500u
#define SIM_LINK_BACKOFF_MAX_MS 30000u

struct sim_link;

struct sim_link_counters {
    uint64_t sessions;           /* links that came up (handshakes completed on DTLS) */
    uint64_t resumed;            /* DTLS handshakes that resumed a session */
    uint64_t failures;           /* connect or handshake attempts that failed */
    uint64_t datagrams_sent;
    uint64_t datagrams_received;
    uint64_t send_errors;        /* datagrams the socket or DTLS refused */
    uint64_t oversized;          /* datagrams over SIM_LINK_MAX_DATAGRAM dropped */
};

struct sim_link_callbacks {
    /* The link can carry datagrams (after the handshake on DTLS). */
    void (*up)(struct sim_link *l, void *user);
    /* The link went down (was_up) or an attempt failed (!was_up); why is a
     * short English phrase. A new attempt follows after the backoff. */
    void (*down)(struct sim_link *l, void *user, bool was_up, const char *why);
    /* A datagram from the hub, decrypted on DTLS; valid during the call.
     * The callback may send, restart or close the link. */
    void (*datagram)(struct sim_link *l, void *user, const uint8_t *data, size_t len);
};

/* Options copied by sim_link_create() except where noted. */
struct sim_link_options {
    uv_loop_t *loop;
    const struct sockaddr *addr;           /* the hub's numeric address */
    const char *identity;                  /* device id, for logs and the DTLS identity */
    struct sim_dtls *dtls;                 /* borrowed, NULL for plain UDP; outlives the link */
    const struct sim_link_callbacks *cb;   /* borrowed */
    void *user;
    uint64_t seed;                         /* jitter of the backoff */
};

/* Parses "ADDR:PORT", "[IPv6]:PORT", "ADDR" or "[IPv6]" (default_port is
 * used without a port); "localhost" stands for 127.0.0.1. Addresses are
 * numeric: no name is resolved. Returns VIGIL_ERR_INVALID for anything
 * else. */
vigil_err sim_link_parse_address(const char *text, uint16_t default_port,
                                 struct sockaddr_storage *out);

/* Formats addr as "127.0.0.1:5683" or "[::1]:5684". */
void sim_link_format_address(const struct sockaddr *addr, char *out, size_t cap);

/* Creates a link; nothing is sent until sim_link_start(). The caller owns
 * it and releases it with sim_link_close(). */
vigil_err sim_link_create(const struct sim_link_options *opt, struct sim_link **out);

/* Opens the socket and starts the handshake (DTLS) or reports up (plain). */
void sim_link_start(struct sim_link *l);

/* Sends one datagram. Returns VIGIL_ERR_CLOSED when the link is not up and
 * VIGIL_ERR_LIMIT above SIM_LINK_MAX_DATAGRAM. VIGIL_ERR_IO means the
 * socket or DTLS rejected it: it is counted and lost, as on a real
 * network. */
vigil_err sim_link_send(struct sim_link *l, const uint8_t *data, size_t len);

/* Drops the current socket and session (the device judged the hub lost
 * it) and reconnects after the backoff, keeping the session for
 * resumption. Calls down when the link was up. */
void sim_link_restart(struct sim_link *l, const char *why);

/* Sends close_notify on an established DTLS session, closes everything and
 * frees l; closed(arg) runs once libuv released the handles. No callback
 * of cb runs after this call. */
void sim_link_close(struct sim_link *l, void (*closed)(void *arg), void *arg);

bool sim_link_is_up(const struct sim_link *l);
bool sim_link_is_dtls(const struct sim_link *l);
const struct sim_link_counters *sim_link_counters(const struct sim_link *l);

#endif
