/* MQTT-SN 1.2 gateway front end: the state its files share. A client is
 * identified by its UDP source address (struct udp_peer); its struct
 * sn_client hangs off udp_peer.user and embeds the struct gw_client through
 * which it reaches the broker. Everything here runs on the I/O loop thread. */
#ifndef VIGIL_FRONT_MQTTSN_INTERNAL_H
#define VIGIL_FRONT_MQTTSN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/gateway.h"
#include "broker/udp.h"
#include "core/map.h"
#include "proto/mqttsn/mqttsn.h"

/* Timers and counters (the specification's T_retry and N_retry, section
 * 7.2 suggests 10-15 s and 3-5). */
#define SN_RETRY_MS 10000u
#define SN_RETRY_MAX 3u
#define SN_TICK_MS 250u
/* A peer without a connection (after DISCONNECT, or that only searched for
 * the gateway or sent QoS -1 messages) is forgotten after this idle time. */
#define SN_IDLE_MS 60000u
/* Normal topic ids per client, registered in either direction. Ids are
 * never reused within one connection, so a client cannot publish to a topic
 * it did not mean because an id changed meaning. */
#define SN_MAX_TOPICS 1024u
/* Subscription identifier given to the gateway: deliveries are mapped back
 * to topic ids by their topic, so one value serves every subscription. */
#define SN_SUB_ID 1u

/* ---- per-client tables (mqttsn_state.c; pure, unit-tested) ---- */

/* A normal topic id and its name. known: the client has this id, because
 * it registered the name itself or acknowledged the gateway's REGISTER. */
struct sn_topic {
    char *name;      /* owned, NUL-terminated */
    uint16_t len;
    bool known;
};

/* Topic ids 1..n of one client; entry i has id i + 1. */
struct sn_topics {
    struct sn_topic *v;
    size_t n, cap;
    size_t max;                /* at most SN_MAX_TOPICS */
    struct vigil_map by_name;  /* name -> (void *)(uintptr_t)id */
};

void sn_topics_init(struct sn_topics *t, size_t max);
void sn_topics_free(struct sn_topics *t);
/* Returns the id of name, or 0 when it has none. */
uint16_t sn_topics_find(const struct sn_topics *t, const char *name, size_t len);
/* Returns the entry of id, or NULL for an id never assigned. */
struct sn_topic *sn_topics_get(const struct sn_topics *t, uint16_t id);
/* Stores *id for name, assigning the next id when name has none. Returns
 * VIGIL_ERR_LIMIT when the table is full, VIGIL_ERR_NOMEM. */
vigil_err sn_topics_add(struct sn_topics *t, const char *name, size_t len, uint16_t *id);

/* One message waiting for a client, holding a reference on msg. */
struct sn_out {
    struct sn_out *next;
    struct msg *msg;
    uint8_t qos;
    bool retain;
};

/* Messages to a client in arrival order. The head is the one being sent
 * when the client's delivery state says so. */
struct sn_outq {
    struct sn_out *head, *tail;
    uint32_t n;
};

/* Appends m (taking a reference). When the queue holds cap messages the
 * oldest one not in flight is dropped first and *dropped is set; head_busy
 * says that the head is in flight. Returns VIGIL_ERR_NOMEM or VIGIL_OK. */
vigil_err sn_outq_push(struct sn_outq *q, struct msg *m, uint8_t qos, bool retain, uint32_t cap,
                       bool head_busy, bool *dropped);
/* Removes the head and releases its reference. */
void sn_outq_pop(struct sn_outq *q);
void sn_outq_clear(struct sn_outq *q);

/* MsgIds of QoS 2 PUBLISHes received and awaiting PUBREL. */
struct sn_idset {
    uint16_t *v;
    size_t n, cap;
};

bool sn_idset_has(const struct sn_idset *s, uint16_t id);
/* Returns VIGIL_ERR_LIMIT when max ids are held already, VIGIL_ERR_NOMEM. */
vigil_err sn_idset_add(struct sn_idset *s, uint16_t id, size_t max);
bool sn_idset_remove(struct sn_idset *s, uint16_t id);
void sn_idset_free(struct sn_idset *s);

/* Writes the topic of predefined id for device (expanding "%d") into out
 * (capacity cap) and returns its length; 0 when the id is not configured,
 * the topic needs a device id and device is "", or it does not fit. */
size_t sn_predefined_topic(const struct config_gateway *g, uint16_t id, const char *device,
                           char *out, size_t cap);
/* Finds the predefined id whose expanded topic is topic. */
bool sn_predefined_find(const struct config_gateway *g, const char *device, const char *topic,
                        size_t len, uint16_t *id);

/* ---- the front end and its clients ---- */

enum sn_state {
    SN_ST_IDLE = 0,    /* no connection */
    SN_ST_WILLTOPIC,   /* CONNECT accepted, WILLTOPICREQ sent */
    SN_ST_WILLMSG,     /* WILLTOPIC received, WILLMSGREQ sent */
    SN_ST_ACTIVE,
    SN_ST_ASLEEP,      /* DISCONNECT with a Duration; messages are buffered */
    SN_ST_AWAKE,       /* PINGREQ with ClientId: buffered messages are being sent */
};

/* What the head of the output queue waits for. */
enum sn_out_state {
    SN_OUT_NONE = 0,   /* nothing in flight */
    SN_OUT_REGACK,     /* REGISTER sent */
    SN_OUT_PUBACK,     /* QoS 1 PUBLISH sent */
    SN_OUT_PUBREC,     /* QoS 2 PUBLISH sent */
    SN_OUT_PUBCOMP,    /* PUBREL sent */
};

struct sn_front;
struct sn_ack;

struct sn_will {
    char *topic;       /* owned; NULL when the client has no will */
    uint16_t topic_len;
    uint8_t *payload;  /* owned; NULL when empty */
    uint16_t payload_len;
    uint8_t qos;
    bool retain;
};

struct sn_client {
    struct gw_client gw;       /* first: the router's callbacks get &gw */
    struct sn_front *f;
    struct udp_peer *peer;     /* NULL once the peer is closing */
    uint8_t state;             /* enum sn_state */
    bool counted;              /* included in f->n_clients */
    bool holding;              /* deliveries wait until the current reply is sent */
    bool clean_session;
    uint16_t duration;         /* keep-alive (active) or sleep duration, seconds */
    uint64_t last_rx_ms;       /* loop time of the last valid message */
    uint64_t deadline_ms;      /* handshake, keep-alive or sleep deadline; 0 = none */
    char client_id[SN_MAX_CLIENT_ID + 1];
    struct sn_will will;
    struct sn_topics topics;

    /* Gateway to client: one message in flight at a time (section 6.6
     * allows a client one outstanding QoS 1 or 2 PUBLISH). */
    struct sn_outq out;
    uint8_t out_state;         /* enum sn_out_state */
    uint16_t out_msg_id;
    uint16_t out_topic_id;
    uint8_t out_topic_type;
    uint8_t out_tries;
    bool out_reregistered;     /* the head was registered again after PUBACK 0x02 */
    uint64_t out_sent_ms;
    uint16_t next_msg_id;

    /* Client to gateway. */
    struct sn_idset inqos2;
    uint32_t in_pending;       /* QoS 1/2 PUBLISHes waiting for the store */
    struct sn_ack *acks;       /* those acknowledgements, oldest first */
};

struct sn_front {
    struct gw_front base;      /* first: the hub holds &base */
    struct hub *hub;
    const struct config_listener *l;
    struct udp_endpoint *ep;
    struct udp_handler handler; /* ctx is this front end */
    uv_timer_t timer;
    bool dtls;
    bool closing;
    uint32_t refs;             /* the timer handle and pending acknowledgements */
    uint32_t n_clients;        /* clients logged in */
    uint64_t next_advertise_ms;
    uint8_t *scratch;          /* encoding buffer of SN_MAX_LENGTH bytes */
};

/* An acknowledgement waiting for gw_when_durable(). c is NULL once the
 * client is gone; the front end stays allocated until every one ran. */
struct sn_ack {
    struct sn_ack *next;
    struct sn_front *f;
    struct sn_client *c;
    uint8_t type;              /* SN_PUBACK or SN_PUBREC */
    uint16_t msg_id;
    uint16_t topic_id;
};

/* mqttsn_front.c */
uint64_t sn_now(const struct sn_front *f);
/* Encodes and sends m to c; false when it could not be sent (logged). */
bool sn_send(struct sn_client *c, const struct sn_msg *m);
bool sn_send_simple(struct sn_client *c, uint8_t type);
/* Events about c: a protocol violation with its rule, and any other type. */
void sn_malformed(struct sn_client *c, const char *rule, const char *detail, size_t size);
void sn_event(struct sn_client *c, enum vigil_event_type type, const char *topic, size_t len,
              const char *detail);
/* Whether c may exchange messages that need a connection. */
bool sn_connected(const struct sn_client *c);
void sn_front_unref(struct sn_front *f);

/* mqttsn_session.c: connection, will, keep-alive and sleep. */
void sn_on_connect(struct sn_client *c, const struct sn_msg *m);
void sn_on_willtopic(struct sn_client *c, const struct sn_msg *m);
void sn_on_willmsg(struct sn_client *c, const struct sn_msg *m);
void sn_on_willtopicupd(struct sn_client *c, const struct sn_msg *m);
void sn_on_willmsgupd(struct sn_client *c, const struct sn_msg *m);
void sn_on_pingreq(struct sn_client *c, const struct sn_msg *m);
void sn_on_disconnect(struct sn_client *c, const struct sn_msg *m);
/* Ends the connection of c: publishes the will when lost, logs out and
 * empties every per-connection table. c stays attached to its peer. */
void sn_end(struct sn_client *c, const char *why, bool lost);
/* Checks the deadlines of c; may close its peer. */
void sn_check_timers(struct sn_client *c, uint64_t now);
/* The client is lost: its will is published and its peer closed. */
void sn_lose(struct sn_client *c, const char *why);
/* The awake client's buffered messages are all delivered: PINGRESP. */
void sn_awake_done(struct sn_client *c);
void sn_will_clear(struct sn_will *w);

/* mqttsn_inbound.c: messages from the client. */
void sn_on_publish(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubrel(struct sn_client *c, const struct sn_msg *m);
void sn_on_register(struct sn_client *c, const struct sn_msg *m);
void sn_on_subscribe(struct sn_client *c, const struct sn_msg *m);
void sn_on_unsubscribe(struct sn_client *c, const struct sn_msg *m);
/* Detaches the pending acknowledgements of c before it is freed. */
void sn_acks_detach(struct sn_client *c);
/* Returns the topic that id of TopicIdType type names for c, with its
 * length in *len: a registered name, or a predefined topic or short name
 * built in buf (capacity cap). NULL for an unknown id. */
const char *sn_resolve_topic(struct sn_client *c, uint8_t type, uint16_t id, char *buf,
                             size_t cap, size_t *len);

/* mqttsn_outbound.c: messages to the client. */
extern const struct gw_client_ops sn_client_ops;
void sn_on_regack(struct sn_client *c, const struct sn_msg *m);
void sn_on_puback(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubrec(struct sn_client *c, const struct sn_msg *m);
void sn_on_pubcomp(struct sn_client *c, const struct sn_msg *m);
/* Sends the next queued message when nothing is in flight and the client
 * is active or awake. */
void sn_pump(struct sn_client *c);
/* Retransmits the message in flight after SN_RETRY_MS; after SN_RETRY_MAX
 * tries the client is lost. Returns false when c's connection ended. */
bool sn_retry(struct sn_client *c, uint64_t now);
/* Drops every queued message and the delivery state. */
void sn_out_reset(struct sn_client *c);

#endif
