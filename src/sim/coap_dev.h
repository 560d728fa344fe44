/* CoAP client side of a simulated device (RFC 7252): POST requests to the
 * hub, confirmable ones with retransmission and exponential backoff
 * (section 4.2) and at most one outstanding at a time (NSTART 1, section
 * 4.7), non-confirmable ones sent at once. Responses are matched by
 * Message ID and token, piggybacked or separate (section 5.2). No I/O and
 * no clock of its own: the caller passes the time and a send function, so
 * the tests drive it without a network. */
#ifndef VIGIL_SIM_COAP_DEV_H
#define VIGIL_SIM_COAP_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "sim/model.h"

/* Transmission parameters of RFC 7252 section 4.8, default values. */
#define COAP_DEV_ACK_TIMEOUT_MS 2000u
#define COAP_DEV_MAX_RETRANSMIT 4u
/* A request acknowledged with an empty ACK waits this long for its
 * separate response. */
#define COAP_DEV_SEPARATE_WAIT_MS 30000u
/* Confirmable requests waiting behind the outstanding one. */
#define COAP_DEV_QUEUE 32u
#define COAP_DEV_MAX_PAYLOAD 1024u
#define COAP_DEV_MAX_PATH 64u
#define COAP_DEV_TOKEN_LEN 4u

enum coap_dev_outcome {
    COAP_DEV_ACKNOWLEDGED, /* a 2.xx response */
    COAP_DEV_REJECTED,     /* a 4.xx or 5.xx response, or a Reset */
    COAP_DEV_TIMED_OUT,    /* no response after COAP_DEV_MAX_RETRANSMIT retransmissions */
};

struct coap_dev_counters {
    uint64_t con_sent;        /* confirmable requests sent (first transmissions) */
    uint64_t non_sent;        /* non-confirmable requests sent */
    uint64_t retransmissions;
    uint64_t acknowledged;    /* confirmable requests with a 2.xx response */
    uint64_t rejected;        /* requests with a 4.xx/5.xx response or a Reset */
    uint64_t timed_out;       /* confirmable requests given up */
    uint64_t dropped;         /* confirmable requests not queued: queue full */
};

struct coap_dev_config {
    /* Sends one datagram; a failure counts as a lost datagram. */
    vigil_err (*send)(void *user, const uint8_t *data, size_t len);
    /* The outcome of a confirmable request, or of a non-confirmable one that
     * got an error response. code is the response code (0 for a Reset or a
     * timeout); path is the request's Uri-Path joined with '/'. Optional. */
    void (*done)(void *user, enum coap_dev_outcome outcome, uint8_t code, const char *path);
    void *user;
    uint64_t seed;            /* first Message ID, tokens and timeouts */
};

/* A confirmable request waiting to be sent. */
struct coap_dev_request {
    char path[COAP_DEV_MAX_PATH];
    uint16_t format;
    uint8_t *payload;         /* owned */
    size_t len;
};

struct coap_dev {
    struct coap_dev_config cfg;
    struct model_rng rng;
    bool online;              /* the caller's link can carry datagrams */
    uint16_t next_mid;
    uint32_t next_token;
    /* The outstanding confirmable request. */
    bool active;
    bool acked_empty;         /* an empty ACK came; waiting for the separate response */
    uint16_t mid;
    uint8_t token[COAP_DEV_TOKEN_LEN];
    uint8_t retries;
    uint32_t timeout_ms;
    uint64_t due_ms;
    struct coap_dev_request current;
    size_t wire_len;
    uint8_t wire[COAP_DEV_MAX_PAYLOAD + 128];
    /* Waiting confirmable requests, a ring. */
    struct coap_dev_request queue[COAP_DEV_QUEUE];
    size_t q_head, q_len;
    struct coap_dev_counters counters;
};

void coap_dev_init(struct coap_dev *d, const struct coap_dev_config *cfg);
/* Frees the queued payloads. */
void coap_dev_free(struct coap_dev *d);

/* Encodes a POST to path ("t/heart_rate": one Uri-Path option per
 * segment) with Content-Format format into out (capacity cap). Returns the
 * length, or 0 when it does not fit or path is empty or too long. */
size_t coap_dev_encode_post(uint8_t *out, size_t cap, uint8_t type, uint16_t mid,
                            const uint8_t *token, uint8_t token_len, const char *path,
                            uint16_t format, const uint8_t *payload, size_t len);

/* Sends a POST. A non-confirmable one goes out at once and returns
 * VIGIL_ERR_CLOSED while offline. A confirmable one is queued, sent once
 * nothing is outstanding and the device is online, and returns
 * VIGIL_ERR_LIMIT when the queue is full. Returns VIGIL_ERR_INVALID for a
 * payload over COAP_DEV_MAX_PAYLOAD or an invalid path. */
vigil_err coap_dev_post(struct coap_dev *d, bool confirmable, const char *path, uint16_t format,
                        const uint8_t *payload, size_t len, uint64_t now_ms);

/* Handles one datagram from the hub: responses, empty ACKs, Resets, and
 * an empty ACK for a confirmable separate response. */
void coap_dev_input(struct coap_dev *d, const uint8_t *data, size_t len, uint64_t now_ms);

/* Retransmits or gives up the outstanding request when its timer is due. */
void coap_dev_tick(struct coap_dev *d, uint64_t now_ms);

/* Online: sends the next queued request. Offline: the outstanding request
 * goes back to the head of the queue, to be sent again with a new Message
 * ID once online. */
void coap_dev_set_online(struct coap_dev *d, bool online, uint64_t now_ms);

/* True when no confirmable request is outstanding or queued. */
bool coap_dev_idle(const struct coap_dev *d);

#endif
