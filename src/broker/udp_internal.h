/* State of UDP endpoints and their peers, shared by the socket and peer
 * table (udp.c) and the DTLS path (udp_dtls.c). */
#ifndef VIGIL_BROKER_UDP_INTERNAL_H
#define VIGIL_BROKER_UDP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/ratelimit.h"
#include "broker/udp.h"
#include "core/map.h"
#include "net/dtls.h"

/* Largest UDP payload over IPv4 (65535 less the IP and UDP headers). */
#define UDP_DATAGRAM_MAX 65507
/* Address family, scope id, port and an IPv6 address. */
#define UDP_KEY_MAX (1 + 4 + 2 + 16)

struct udp_peer_state {
    struct udp_peer pub;                /* first: front ends see only this */
    struct dtls_session *dtls;          /* DTLS endpoints; owned */
    uint8_t key[UDP_KEY_MAX];           /* the peer table key */
    size_t key_len;
    bool seen;                          /* the front end has seen it (see udp.h closing) */
    bool closed;                        /* udp_peer_close ran; waits in ep->dead */
    bool in_handshakes;
    uint64_t deadline_ms;               /* end of the handshake time, loop time */
    struct udp_peer_state *hs_prev, *hs_next; /* ep->handshakes */
    struct udp_peer_state *dead_next;   /* ep->dead */
};

struct udp_endpoint {
    struct hub *hub;
    const struct config_listener *l;
    uint8_t proto;                      /* labels events of front-end traffic */
    struct udp_handler h;
    uv_udp_t sock;
    uv_timer_t timer;                   /* frees closed peers, drives DTLS timers */
    uint64_t timer_due_ms;              /* 0 = not armed */
    int handles_open;                   /* sock and timer until their close callbacks */
    bool closing;
    uint16_t port;                      /* bound port */
    struct vigil_map peers;             /* key -> struct udp_peer_state * */
    uint32_t n_peers;
    uint32_t max_peers;
    uint64_t idle_ms;                   /* see udp_endpoint_set_idle_ms; 0 = never evict */
    struct udp_peer_state *handshakes;  /* DTLS peers in handshake */
    struct udp_peer_state *dead;        /* closed, freed by the timer */
    /* DTLS endpoints only. */
    struct dtls_server *dtls;
    struct dtls_listener *listener;
    struct ratelimit *rl_handshake;     /* per source address */
    uint64_t handshake_timeout_ms;
    /* Event budget of the endpoint's peer events. */
    uint32_t ev_tokens;
    uint64_t ev_last_ms, ev_suppressed;
    /* Datagrams copied for uv_udp_send because the socket was busy. */
    size_t queued_bytes;
    uint64_t send_dropped;
    uint8_t recv_buf[UDP_DATAGRAM_MAX];
};

/* udp.c */
/* Sends one datagram to addr, queued when the socket is busy, dropped
 * (and counted) when the queue is full. */
vigil_err udp_transmit(struct udp_endpoint *ep, const struct sockaddr *addr, const uint8_t *data,
                       size_t len);
/* Ends the least recently active peer that has been idle for at least the
 * endpoint's idle time, to make room in a full table. Returns false when
 * no peer has been idle that long. */
bool udp_evict_idle(struct udp_endpoint *ep);
/* Creates a peer for addr in the table; NULL when the table is full or
 * memory runs out (the caller emits the event). */
struct udp_peer_state *udp_peer_new(struct udp_endpoint *ep, const struct sockaddr *addr,
                                    const uint8_t *key, size_t key_len);
/* Arms the endpoint timer to fire within delay_ms unless it fires sooner. */
void udp_timer_schedule(struct udp_endpoint *ep, uint64_t delay_ms);
/* Emits an event about a peer or about the endpoint (peer NULL) within the
 * endpoint's event budget; returns false when the budget suppressed it. */
bool udp_emit(struct udp_endpoint *ep, uint8_t proto, const char *peer, enum vigil_event_type type,
              const char *rule, const char *detail, uint32_t size);
/* Writes "address:port" or "[v6]:port" of addr. */
void udp_format_addr(const struct sockaddr *addr, char *out, size_t cap);

/* udp_dtls.c */
vigil_err udp_dtls_open(struct udp_endpoint *ep);
void udp_dtls_free(struct udp_endpoint *ep);
/* Handles a datagram on a DTLS endpoint; p is the peer of the source or NULL. */
void udp_dtls_input(struct udp_endpoint *ep, struct udp_peer_state *p,
                    const struct sockaddr *addr, const uint8_t *key, size_t key_len,
                    const uint8_t *data, size_t len);
/* Drives DTLS retransmissions and handshake deadlines; returns the delay
 * in milliseconds until the next one is due, UINT64_MAX when none is. */
uint64_t udp_dtls_on_timer(struct udp_endpoint *ep, uint64_t now);
void udp_dtls_handshake_unlink(struct udp_endpoint *ep, struct udp_peer_state *p);

#endif
