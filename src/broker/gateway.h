/* The gateway: how the UDP front ends (CoAP and MQTT-SN) reach the broker.
 * A front-end client is a struct gw_client: it logs in as a device of the
 * inventory (or anonymously on a loopback listener that allows it), gets
 * the same role and access rules as an MQTT connection of that device,
 * publishes through the same router and retained store, subscribes with a
 * session the router delivers to, and reports every step as a typed event.
 * Everything here runs on the I/O loop thread. */
#ifndef VIGIL_BROKER_GATEWAY_H
#define VIGIL_BROKER_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker.h"

struct gw_client;

/* What the router needs from a front end. */
struct gw_client_ops {
    /* A message routed to the client's subscriptions. qos is the granted
     * QoS (the lower of the message's and the subscription's), retain the
     * flag to pass on (true when sent because of a new subscription),
     * sub_ids the ids given to gw_subscribe() of every subscription that
     * matched (n_sub_ids >= 1). The front end takes its own reference with
     * msg_ref() when it keeps m after returning. */
    void (*deliver)(struct gw_client *c, struct msg *m, uint8_t qos, bool retain,
                    const uint32_t *sub_ids, uint8_t n_sub_ids);
    /* True while the client can take a message now; a share group passes
     * over members that cannot (asleep, or not keeping up). */
    bool (*online)(const struct gw_client *c);
};

struct gw_client {
    struct hub *hub;
    const struct gw_client_ops *ops;
    uint64_t id;                    /* numbered with the MQTT connections */
    uint8_t proto;                  /* VIGIL_PROTO_COAP or VIGIL_PROTO_MQTTSN */
    bool logged_in;
    bool full_access;               /* anonymous client on a listener allowing it */
    const struct config_role *role; /* role of the device; NULL when full_access */
    char peer[64];                  /* "address:port", IPv6 in brackets */
    char device[DEVICE_ID_MAX + 1]; /* "" when anonymous */
    char device_type[32];
    char device_unit[64];
    char client_id[64];
    uint16_t keep_alive;            /* seconds, for events; 0 when none */
    struct session *session;        /* created by the first gw_subscribe() */
    /* Event budget, as for MQTT connections. */
    uint32_t ev_tokens;
    uint64_t ev_last_ms, ev_suppressed;
};

/* Prepares c (zeroed first) for a peer; not yet logged in. */
void gw_client_init(struct gw_client *c, struct hub *hub, const struct gw_client_ops *ops,
                    uint8_t proto, const char *peer);

/* Logs c in as device id, an identity a DTLS handshake proved (PSK
 * identity or certificate). client_id is the protocol's client id ("" for
 * CoAP, which then uses the device id); as on MQTT it must be the device
 * id or "<device id>:<suffix>". Fails, with an auth_failure event and
 * VIGIL_ERR_AUTH, when the client id names something else, the device is
 * not in the inventory, its role is not configured, or the identity is
 * blocked by the failed-login limits.
 * On success emits auth_success. */
vigil_err gw_login_device(struct gw_client *c, const char *device, const char *client_id);

/* Logs c in without credentials: allowed only when the listener allows
 * anonymous clients (loopback). Returns VIGIL_ERR_AUTH with an
 * auth_failure event otherwise. */
vigil_err gw_login_anonymous(struct gw_client *c, const struct config_listener *l,
                             const char *client_id);

/* Ends c: removes its subscriptions, releases its session and emits a
 * disconnect event with why. c may be freed afterwards. Safe on a client
 * that never logged in. */
void gw_client_close(struct gw_client *c, const char *why);

/* Access control, exactly as for an MQTT connection of the same device. */
bool gw_can_publish(const struct gw_client *c, const char *topic, size_t len);
bool gw_can_subscribe(const struct gw_client *c, const char *filter, size_t len);

enum gw_pub_result {
    GW_PUB_OK = 0,
    GW_PUB_DENIED,        /* access control refused it (acl_deny event emitted) */
    GW_PUB_BAD_TOPIC,     /* empty, wildcard, '$' or over the topic limits (event emitted) */
    GW_PUB_NO_MEMORY,
};

/* Publishes like an MQTT PUBLISH of the device: limits, access control,
 * the publish event with the measurement for the engine, the retained
 * store and routing. The message is durable for offline persistent
 * subscribers once gw_when_durable() calls back. */
enum gw_pub_result gw_publish(struct gw_client *c, const char *topic, size_t len,
                              const uint8_t *payload, size_t payload_len, uint8_t qos,
                              bool retain);

/* Publishes a will (MQTT-SN) on behalf of a client that was lost: same
 * checks as gw_publish(), origin is the client's session. */
enum gw_pub_result gw_publish_will(struct gw_client *c, const char *topic, size_t len,
                                   const uint8_t *payload, size_t payload_len, uint8_t qos,
                                   bool retain);

/* Calls done(arg, rc) once everything submitted to the store so far is
 * durable (at once, on the next loop iteration, when nothing is pending).
 * An acknowledgement that promises delivery (CoAP 2.04 to a confirmable
 * POST, MQTT-SN PUBACK/PUBREC) waits for it. */
void gw_when_durable(struct hub *hub, void (*done)(void *arg, vigil_err rc), void *arg);

/* Subscribes c to filter (wildcards allowed) with the maximum QoS qos.
 * sub_id (1..2^28-1) is returned in deliveries. Sends matching retained
 * messages at once when send_retained. Returns VIGIL_OK, VIGIL_ERR_AUTH
 * when access control refuses it (acl_deny event), VIGIL_ERR_INVALID for a
 * malformed filter (malformed event), VIGIL_ERR_LIMIT beyond
 * limits.max_subscriptions, VIGIL_ERR_NOMEM. Subscribing again to the same
 * filter replaces its QoS and id. Emits a subscribe event on success. */
vigil_err gw_subscribe(struct gw_client *c, const char *filter, size_t len, uint8_t qos,
                       uint32_t sub_id, bool send_retained);
/* Returns true when c had the subscription. Emits an unsubscribe event. */
bool gw_unsubscribe(struct gw_client *c, const char *filter, size_t len);

/* The retained message on topic (not expired), or NULL; borrowed. */
struct msg *gw_retained(struct hub *hub, const char *topic, size_t len);

/* Writes the topic of a measurement of c's device, gateway.topic_base
 * expanded ("%d" device id, "%t" device type or "device", "%u" unit or
 * "unassigned") followed by metric, into out (capacity cap). Returns the
 * length, or 0 when it does not fit, c is anonymous or metric is not one
 * topic level. */
size_t gw_device_topic(const struct gw_client *c, const char *metric, size_t metric_len,
                       char *out, size_t cap);

/* Events. gw_emit_ev fills the client fields (peer, client id, device,
 * protocol, conn id) and applies the per-client budget except for the
 * event types that are always kept. */
void gw_emit(struct gw_client *c, enum vigil_event_type type, const char *topic, size_t len,
             const char *rule, const char *detail);
void gw_emit_ev(struct gw_client *c, struct vigil_event *ev);
/* An event about a peer that has no client (a malformed first datagram, a
 * failed DTLS handshake); the caller applies its own budget. */
void gw_emit_peer(struct hub *hub, uint8_t proto, const char *peer, enum vigil_event_type type,
                  const char *rule, const char *detail, uint32_t size);

/* Failed-login limits shared with MQTT, per peer address and identity. */
bool gw_peer_blocked(struct hub *hub, const char *peer);
void gw_login_failed(struct hub *hub, const char *peer, const char *identity);

/* True when a DTLS peer's identity must not stay connected: the device
 * left the inventory, its certificate serial is in the current CRL, or,
 * for a session without a certificate (serial NULL or ""), which a PSK
 * keyed, the device no longer has a PSK. False for device "" (anonymous). */
bool gw_identity_revoked(struct hub *hub, const char *device, const char *serial);

/* Front ends. Each listener of transport coap/coaps or mqttsn/mqttsn-dtls
 * gets one, opened by the hub in configuration order. close stops it:
 * every client is closed, then the sockets, after which the front end
 * frees itself. reload is called on SIGHUP (may be NULL): rebuild the DTLS
 * context. revoked is called after the CRL or the inventory changed: the
 * front end checks every logged-in client with gw_identity_revoked() and
 * closes those it names, with a cert event (the device and serial
 * arguments are the change when known, else NULL; checking every client is
 * always correct). n_clients counts logged-in clients. */
struct gw_front {
    void (*close)(struct gw_front *f);
    void (*reload)(struct gw_front *f);
    void (*revoked)(struct gw_front *f, const char *device, const char *serial);
    uint32_t (*n_clients)(const struct gw_front *f);
};

vigil_err coap_front_open(struct hub *hub, const struct config_listener *l, struct gw_front **out);
vigil_err mqttsn_front_open(struct hub *hub, const struct config_listener *l,
                            struct gw_front **out);

#endif
