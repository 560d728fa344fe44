/* Non-blocking MQTT 3.1.1/5.0 client on a libuv loop: one loop drives any
 * number of connections. Used by the fleet simulator, the central station
 * and the benchmark tool.
 *
 * Each connection owns two output buffers that it reuses (one being written
 * by libuv, one collecting new packets) and one input buffer, all capped.
 * The only per-message allocation is a copy of each outgoing QoS 1/2 PUBLISH,
 * kept until it is acknowledged so it can be resent after a reconnect that
 * resumes the session. */
#ifndef VIGIL_CLIENT_MQTTC_H
#define VIGIL_CLIENT_MQTTC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/error.h"
#include "proto/mqtt/mqtt.h"

struct mqttc;

/* Outcome of a QoS 1/2 publish, reported through on_publish_done. */
enum mqttc_outcome {
    MQTTC_DELIVERED = 0, /* PUBACK or PUBCOMP received with a success reason code */
    MQTTC_REJECTED,      /* the server acknowledged with a reason code >= 0x80 */
    MQTTC_LOST,          /* the connection ended and the session was not resumed */
};

struct mqttc_counters {
    uint64_t published[3];   /* PUBLISH packets queued for sending, by QoS */
    uint64_t delivered[3];   /* QoS 1/2 publishes acknowledged (index 0 unused) */
    uint64_t rejected;       /* QoS 1/2 publishes the server refused */
    uint64_t lost;           /* QoS 1/2 publishes dropped with a session */
    uint64_t received;       /* PUBLISH packets received */
    uint64_t connects;       /* CONNACKs accepting the connection */
    uint64_t refused;        /* CONNACKs refusing the connection */
    uint64_t disconnects;    /* connections lost or closed after CONNACK */
    uint64_t errors;         /* socket, protocol and timeout errors */
};

/* Options copied by mqttc_create(); strings need not outlive the call. */
struct mqttc_options {
    const char *host;            /* numeric IPv4/IPv6 address or "localhost" */
    uint16_t port;
    const char *client_id;       /* required, 1..64 bytes */
    const char *username;        /* NULL for none */
    const char *password;        /* NULL for none; never logged */
    uint8_t version;             /* MQTT_V311 or MQTT_V5 (default when 0) */
    uint16_t keep_alive;         /* seconds; 0 disables PINGREQ */
    bool clean_start;
    uint32_t session_expiry;     /* v5 only, seconds; 0 = ends with the connection */
    uint16_t max_inflight;       /* outgoing QoS 1/2 window; default 32 */
    uint32_t max_packet_size;    /* largest packet accepted from the server; default 256 KiB */
    size_t max_output;           /* bytes queued for sending; default 1 MiB */
    uint32_t reconnect_min_ms;   /* first retry delay; default 500 */
    uint32_t reconnect_max_ms;   /* backoff ceiling; default 30000 */
    uint32_t connect_timeout_ms; /* TCP connect + CONNACK; default 10000 */
    /* Will message, sent by the server if the connection drops. */
    const char *will_topic;      /* NULL for none */
    const void *will_payload;
    size_t will_len;
    uint8_t will_qos;
    bool will_retain;

    /* Callbacks, each optional. user is passed back unchanged. */
    void *user;
    /* CONNACK received: reason is the v5 reason code or v3.1.1 return code. */
    void (*on_connack)(struct mqttc *c, uint8_t reason, bool session_present, void *user);
    /* A connection attempt failed or an established connection ended; a
     * reconnect follows unless the client was stopped. detail is a static
     * English phrase ("connection refused", "keep-alive timed out", ...). */
    void (*on_disconnect)(struct mqttc *c, vigil_err why, const char *detail, void *user);
    /* An incoming PUBLISH. msg points into the input buffer and is valid only
     * during the call. */
    void (*on_message)(struct mqttc *c, const struct mqtt_publish *msg, void *user);
    void (*on_publish_done)(struct mqttc *c, uint16_t packet_id, uint8_t qos,
                            enum mqttc_outcome outcome, void *user);
    /* SUBACK: codes contains one reason code per filter. */
    void (*on_suback)(struct mqttc *c, uint16_t packet_id, const uint8_t *codes, size_t n,
                      void *user);
};

/* Creates a client on loop without connecting. *out is owned by the caller
 * and released with mqttc_close(). */
vigil_err mqttc_create(uv_loop_t *loop, const struct mqttc_options *opt, struct mqttc **out);

/* Starts connecting; on any failure the client retries with exponential
 * backoff (reconnect_min_ms doubling up to reconnect_max_ms, with jitter)
 * until mqttc_stop() or mqttc_close(). */
vigil_err mqttc_start(struct mqttc *c);

/* Queues a PUBLISH. Works only while connected (VIGIL_ERR_CLOSED otherwise).
 * VIGIL_ERR_LIMIT when the QoS 1/2 window or the output cap is full, or the
 * packet exceeds the server's Maximum Packet Size. *packet_id (may be NULL)
 * receives the id of a QoS 1/2 publish. */
vigil_err mqttc_publish(struct mqttc *c, const char *topic, const void *payload, size_t len,
                        uint8_t qos, bool retain, uint16_t *packet_id);

/* Queues a SUBSCRIBE of n filters, each with the same options byte
 * (QoS in the low two bits). Works only while connected. */
vigil_err mqttc_subscribe(struct mqttc *c, const char *const *filters, size_t n, uint8_t options,
                          uint16_t *packet_id);

/* Sends DISCONNECT (when connected), closes the socket and stops
 * reconnecting. The client can be started again. */
void mqttc_stop(struct mqttc *c);

/* Stops the client and releases it once libuv has closed its handles; then
 * on_closed (may be NULL) is called. c must not be used after this call. */
void mqttc_close(struct mqttc *c, void (*on_closed)(void *arg), void *arg);

bool mqttc_connected(const struct mqttc *c);
/* QoS 1/2 publishes sent and not yet acknowledged. */
size_t mqttc_inflight(const struct mqttc *c);
/* Bytes queued for writing and not yet written. */
size_t mqttc_pending_output(const struct mqttc *c);
const struct mqttc_counters *mqttc_counters(const struct mqttc *c);
const char *mqttc_client_id(const struct mqttc *c);

#endif
