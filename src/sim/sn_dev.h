/* MQTT-SN 1.2 client side of a simulated sensor. It sends CONNECT with a
 * will, REGISTERs its topic names, publishes at QoS 0, 1 and 2, keeps the
 * connection alive with PINGREQ, and can sleep (DISCONNECT with a
 * Duration, woken by PINGREQ with the client id). One transaction is
 * outstanding at a time (CONNECT, REGISTER, a QoS 1/2 PUBLISH or
 * DISCONNECT), retried every SN_DEV_RETRY_MS up to SN_DEV_RETRIES times.
 * There is no I/O and no clock of its own: the caller passes the time and
 * a send function, so the tests drive it without a network. */
#ifndef VIGIL_SIM_SN_DEV_H
#define VIGIL_SIM_SN_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "proto/mqttsn/mqttsn.h"

/* T_retry and N_retry of the specification. T_retry is shorter than the
 * gateway's 10 s (src/front/mqttsn_internal.h), so a simulated sensor on
 * loopback notices a lost hub within seconds. */
#define SN_DEV_RETRY_MS 3000u
#define SN_DEV_RETRIES 3u
#define SN_DEV_MAX_TOPICS 8u
#define SN_DEV_MAX_TOPIC_LEN 255u
/* QoS 1/2 messages waiting behind the outstanding transaction. */
#define SN_DEV_QUEUE 32u
#define SN_DEV_MAX_PAYLOAD 512u

enum sn_dev_state {
    SN_DEV_OFFLINE,       /* the link is down, or the last connection ended */
    SN_DEV_CONNECTING,    /* CONNECT sent, will exchange, waiting for CONNACK */
    SN_DEV_ACTIVE,
    SN_DEV_DISCONNECTING, /* DISCONNECT sent, waiting for the gateway's DISCONNECT */
    SN_DEV_ASLEEP,        /* DISCONNECT with a Duration acknowledged */
    SN_DEV_AWAKE,         /* PINGREQ with the client id sent from the asleep state */
};

struct sn_dev_counters {
    uint64_t published[3];  /* PUBLISH messages sent (first transmissions), by QoS */
    uint64_t delivered[3];  /* QoS 1 PUBACK / QoS 2 PUBCOMP received (index 0 unused) */
    uint64_t rejected;      /* PUBACK or REGACK with a return code other than accepted */
    uint64_t lost;          /* QoS 1/2 messages given up or dropped: queue full */
    uint64_t unregistered;  /* QoS 0 messages not sent: topic not registered yet */
    uint64_t retries;       /* retransmissions */
    uint64_t connects;      /* CONNACKs accepting the connection */
    uint64_t refused;       /* CONNACKs refusing it */
    uint64_t sleeps;        /* DISCONNECTs with a Duration acknowledged */
    uint64_t wakes;         /* PINGREQ-PINGRESP cycles from the asleep state */
    uint64_t pings;         /* keep-alive PINGREQs sent */
};

struct sn_dev_config {
    const char *client_id;           /* 1..23 bytes, copied */
    uint16_t keep_alive_s;           /* CONNECT Duration; PINGREQ after this much silence */
    const char *topics[SN_DEV_MAX_TOPICS]; /* full topic names, copied */
    size_t n_topics;
    int will_topic;                  /* index into topics, or -1 for no will */
    const char *will_msg;            /* copied; QoS 1, not retained */
    /* Sends one datagram; a failure counts as a lost datagram. */
    vigil_err (*send)(void *user, const uint8_t *data, size_t len);
    /* CONNACK accepted (every registration still to come). Optional. */
    void (*connected)(void *user);
    /* The gateway rejected the connection, stopped responding, or ended
     * the connection itself. The device is OFFLINE and why is a short
     * phrase. Optional. */
    void (*lost)(void *user, const char *why);
    void *user;
    uint64_t seed;                   /* first MsgId */
};

struct sn_dev_out {
    uint8_t topic;          /* index into the topics */
    uint8_t qos;            /* 1 or 2 */
    uint16_t len;
    uint8_t *payload;       /* owned */
};

struct sn_dev {
    char client_id[SN_MAX_CLIENT_ID + 1];
    char *topics[SN_DEV_MAX_TOPICS]; /* owned */
    uint16_t topic_ids[SN_DEV_MAX_TOPICS]; /* 0 = not registered */
    bool topic_refused[SN_DEV_MAX_TOPICS]; /* REGACK refused it: never publish there */
    size_t n_topics;
    int will_topic;
    char *will_msg;         /* owned */
    uint16_t keep_alive_s;
    struct sn_dev_config cfg; /* callbacks and user */

    uint8_t state;          /* enum sn_dev_state */
    bool sleeping;          /* the DISCONNECT sent carries a Duration */
    uint16_t next_msg_id;
    /* The type of the message whose reply the outstanding transaction
     * waits for (SN_CONNECT, SN_REGISTER, SN_PUBLISH, SN_PUBREL,
     * SN_DISCONNECT, SN_PINGREQ when waking), or 0. */
    uint8_t waiting;
    uint16_t msg_id;
    uint8_t topic_index;    /* of a REGISTER */
    uint8_t tries;
    uint64_t due_ms;
    size_t wire_len;
    uint8_t wire[SN_DEV_MAX_PAYLOAD + SN_DEV_MAX_TOPIC_LEN + 16];
    /* Keep-alive. */
    bool ping_outstanding;
    uint8_t ping_tries;
    uint64_t ping_due_ms;
    uint64_t last_rx_ms;
    /* QoS 1/2 messages, a ring; the head is in flight while waiting is
     * SN_PUBLISH or SN_PUBREL. */
    struct sn_dev_out queue[SN_DEV_QUEUE];
    size_t q_head, q_len;
    struct sn_dev_counters counters;
};

/* Copies cfg. VIGIL_ERR_INVALID for a client id of the wrong length, too
 * many or too long topics, or a will topic index out of range;
 * VIGIL_ERR_NOMEM. sn_dev_free() releases what init allocated, also after
 * a failure. */
vigil_err sn_dev_init(struct sn_dev *d, const struct sn_dev_config *cfg);
void sn_dev_free(struct sn_dev *d);

/* Sends CONNECT: with CleanSession and the will on a first connection,
 * without both when resuming from the asleep state, so the gateway keeps
 * the will and the topic registrations. */
void sn_dev_connect(struct sn_dev *d, uint64_t now_ms);

/* The link went down: the device is OFFLINE; a QoS 1/2 message in flight
 * stays at the head of the queue and the registrations are forgotten. */
void sn_dev_link_down(struct sn_dev *d);

/* Publishes payload on topic (an index into the configured topics). QoS 0
 * goes out at once and returns VIGIL_ERR_CLOSED unless ACTIVE with the
 * topic registered. QoS 1/2 is queued (VIGIL_ERR_LIMIT when full) and sent
 * in order while ACTIVE. VIGIL_ERR_INVALID for a bad index, QoS or size. */
vigil_err sn_dev_publish(struct sn_dev *d, size_t topic, uint8_t qos, const uint8_t *payload,
                         size_t len, uint64_t now_ms);

/* Handles one datagram from the gateway. */
void sn_dev_input(struct sn_dev *d, const uint8_t *data, size_t len, uint64_t now_ms);

/* Retransmits or gives up the outstanding transaction, and sends PINGREQ
 * when the gateway has been silent for the keep-alive period. */
void sn_dev_tick(struct sn_dev *d, uint64_t now_ms);

/* Sends DISCONNECT: with a Duration (seconds, 1..65535) to sleep, or
 * without one (0) to end the connection. Only while ACTIVE. */
void sn_dev_disconnect(struct sn_dev *d, uint16_t sleep_s, uint64_t now_ms);

/* From ASLEEP: sends PINGREQ with the client id, so the gateway sends what
 * it buffered and then PINGRESP, after which the device is ASLEEP again. */
void sn_dev_wake(struct sn_dev *d, uint64_t now_ms);

/* True when every topic has an id (or was refused) and nothing is
 * outstanding or queued. */
bool sn_dev_idle(const struct sn_dev *d);

enum sn_dev_state sn_dev_state(const struct sn_dev *d);

#endif
