/* Internal state of passive analysis shared by its source files. */
#ifndef VIGIL_PASSIVE_INTERNAL_H
#define VIGIL_PASSIVE_INTERNAL_H

#include "core/buf.h"
#include "core/map.h"
#include "passive/passive.h"
#include "passive/reasm.h"

/* Directions of a flow. */
enum { DIR_TO_SERVER = 0, DIR_TO_CLIENT = 1 };

/* A doubly linked list of flows through one pair of link fields. */
struct flow_list {
    struct pflow *head, *tail;
};

struct flow_link {
    struct pflow *prev, *next;
};

/* MQTT decoding state of one direction. */
struct mqtt_dir {
    struct vigil_buf partial;  /* an incomplete packet, capped at packet_cap */
    uint32_t skip;             /* bytes still to drop of an over-cap packet */
    bool lost;                 /* waiting for a segment that starts on a packet */
};

#define FLOW_KEY_LEN 37

struct pflow {
    struct flow_link age;      /* in p->open or p->closed, oldest activity first */
    struct flow_link pending;  /* in p->pending while CONNECT is awaited */
    uint8_t key[FLOW_KEY_LEN];
    uint64_t id;
    struct passive_addr addr[2];  /* client, server */
    uint16_t port[2];
    int64_t first_us, last_us;
    bool closed;
    bool in_pending;
    uint8_t fin;               /* bit per direction that sent FIN */
    struct reasm_dir stream[2];
    struct mqtt_dir mqtt[2];

    /* MQTT session learned from the stream. */
    uint8_t version;           /* 0 until CONNECT or a decoded packet tells */
    bool connect_seen;
    bool connack_seen;
    /* Client events decoded after CONNECT but before its CONNACK, held so
     * that the engine sees them after the authentication result, in the
     * order the broker produces them. */
    struct vigil_event *deferred;  /* owned, SESSION_DEFER_MAX entries */
    uint8_t n_deferred;
    bool disconnect_seen;
    uint8_t disconnect_reason;
    uint16_t keep_alive;
    char peer[64];
    char client_id[64];
};

struct passive {
    struct passive_config cfg;
    passive_event_fn on_event;
    passive_tick_fn on_tick;
    void *ctx;
    struct vigil_map flows;    /* key -> struct pflow (owned) */
    size_t n_flows;
    struct flow_list open, closed, pending;
    struct reasm_pool pool;
    struct passive_stats stats;
    uint64_t next_id;
    size_t deferred_total;     /* events held in all flows' deferred arrays */
    bool started;              /* a frame or passive_advance() set the time */
    int64_t first_us, now_us, next_tick_us;
    /* Set while a direction's bytes are delivered by reassembly. */
    struct pflow *cur_flow;
    int cur_dir;
};

/* session.c */
void session_init(struct passive *p, struct pflow *f);
/* Emits the events f holds back and frees the stream buffers. */
void session_free(struct passive *p, struct pflow *f);
/* Emits the events f holds back (waiting for CONNACK) now. */
void session_flush_deferred(struct passive *p, struct pflow *f);
void session_deliver(struct passive *p, struct pflow *f, int dir, const uint8_t *data, size_t len,
                     bool gap);
/* Emits an event of type about flow f at the current capture time; topic,
 * rule and detail may be NULL. */
void session_emit(struct passive *p, struct pflow *f, enum vigil_event_type type,
                  const char *rule, const char *detail);
void session_emit_ev(struct passive *p, struct pflow *f, struct vigil_event *ev);

/* flows.c */
void flows_segment(struct passive *p, const struct passive_segment *seg);
void flows_expire(struct passive *p);
/* Stops the connect timeout of f: its CONNECT arrived. */
void flows_mark_connected(struct passive *p, struct pflow *f);
void flows_flush_all(struct passive *p);
void flows_free_all(struct passive *p);

#endif
