/* Durable store for broker state: QoS 1/2 messages, per-session queues,
 * persistent sessions and subscriptions, retained messages and incoming
 * QoS 2 packet ids. SQLite in WAL mode, written by one thread that commits
 * many operations in one transaction (group commit, one fsync).
 *
 * Threading: store_submit() is called from the I/O loop thread; completion
 * callbacks run on that same loop thread (via uv_async) after the
 * transaction holding the operation is durable. store_load() runs before
 * the loop starts. */
#ifndef VIGIL_STORE_STORE_H
#define VIGIL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"

enum store_op_kind {
    STORE_MSG_PUT,       /* msg_id, topic, payload, props, qos, retain, expiry_at */
    STORE_QUEUE_PUT,     /* client_id, seq, msg_id, qos, state, packet_id */
    STORE_QUEUE_UPDATE,  /* client_id, seq, state, packet_id */
    STORE_QUEUE_DEL,     /* client_id, seq; the message row goes when unreferenced */
    STORE_RETAIN_SET,    /* topic, payload, props, qos, expiry_at */
    STORE_RETAIN_DEL,    /* topic */
    STORE_SESSION_PUT,   /* client_id, version, session_expiry, disconnected_at, topic
                          * (the owning device, NULL or "" for none) */
    STORE_SESSION_DEL,   /* client_id; its subscriptions, queue and QoS 2 ids too */
    STORE_SUB_PUT,       /* client_id, topic (filter), options, sub_id */
    STORE_SUB_DEL,       /* client_id, topic (filter) */
    STORE_INQOS2_PUT,    /* client_id, packet_id */
    STORE_INQOS2_DEL,    /* client_id, packet_id */
    STORE_BARRIER,       /* no write; completes when everything before it is durable */
};

/* Queue entry states. */
enum store_queue_state {
    STORE_Q_PENDING = 0,  /* not yet sent, or sent with QoS 1/2 and unacknowledged */
    STORE_Q_PUBREL = 1,   /* QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP */
};

/* One operation. Built with store_op_new(); every pointer field is owned by
 * the op and freed with it after completion. */
struct store_op {
    enum store_op_kind kind;
    char *client_id;
    char *topic;
    uint8_t *payload;
    uint32_t payload_len;
    uint8_t *props;          /* forwardable v5 properties, wire format */
    uint32_t props_len;
    uint64_t msg_id;
    uint64_t seq;
    int64_t expiry_at;       /* Unix seconds when the message expires, 0 = never */
    int64_t disconnected_at; /* Unix seconds, 0 while connected */
    uint32_t session_expiry; /* seconds */
    uint32_t sub_id;
    uint16_t packet_id;
    uint8_t qos;
    uint8_t retain;
    uint8_t options;         /* subscription options byte */
    uint8_t state;           /* enum store_queue_state */
    uint8_t version;         /* MQTT protocol level */

    /* Called on the loop thread once durable (rc VIGIL_OK) or failed. */
    void (*done)(void *arg, vigil_err rc);
    void *arg;

    struct store_op *next;   /* internal */
    vigil_err rc;            /* internal: the result passed to done */
    uint8_t elided;          /* internal: enum store_elision */
};

struct store;

/* What store_load() reports, one callback per row; any may be NULL. All
 * pointers are valid only during the call. */
struct store_load_cb {
    void (*session)(void *ctx, const char *client_id, const char *device, uint8_t version,
                    uint32_t session_expiry, int64_t disconnected_at);
    void (*sub)(void *ctx, const char *client_id, const char *filter, uint8_t options,
                uint32_t sub_id);
    void (*retained)(void *ctx, const char *topic, const uint8_t *payload, uint32_t payload_len,
                     const uint8_t *props, uint32_t props_len, uint8_t qos, int64_t expiry_at);
    /* Queue entries come in seq order per client. */
    void (*queued)(void *ctx, const char *client_id, uint64_t seq, uint64_t msg_id,
                   const char *topic, const uint8_t *payload, uint32_t payload_len,
                   const uint8_t *props, uint32_t props_len, uint8_t msg_qos, uint8_t retain,
                   int64_t expiry_at, uint8_t qos, uint8_t state, uint16_t packet_id);
    void (*inqos2)(void *ctx, const char *client_id, uint16_t packet_id);
};

/* Opens (creating if needed) <dir>/store.db. The completion async handle is
 * bound to loop. */
vigil_err store_open(const char *dir, uv_loop_t *loop, struct store **out);
/* Deletes message rows that no queue entry refers to, then reports the
 * whole state in this order: sessions, subscriptions, retained messages,
 * queue entries (with their messages), incoming QoS 2 packet ids. Also
 * reports the largest msg_id and seq in use (0 when there are none). Blob
 * pointers are never NULL, even for a length of 0. Safe while the writer
 * runs, but meant to run before the first store_submit(). */
vigil_err store_load(struct store *st, const struct store_load_cb *cb, void *ctx,
                     uint64_t *max_msg_id, uint64_t *max_seq);
/* Allocates a zeroed op of the given kind; NULL when out of memory. */
struct store_op *store_op_new(enum store_op_kind kind);
void store_op_free(struct store_op *op);
/* Queues op for the writer thread; takes ownership of op in every case. */
void store_submit(struct store *st, struct store_op *op);
/* Sets the group-commit window: after the first op of a batch arrives, the
 * writer waits up to us microseconds for more before it commits (default
 * 5000; 0 commits at once). Callable from any thread at any time. */
void store_set_commit_interval(struct store *st, uint32_t us);
/* Sets how long after its start a batch that no op waits for (none has a
 * done callback) may keep gathering past its window, so that queue entries
 * acknowledged meanwhile are elided (default 100000). Callable from any
 * thread at any time. */
void store_set_hold_max(struct store *st, uint32_t us);
/* Number of ops queued and not yet committed. */
size_t store_pending(const struct store *st);
/* Commits what is queued, stops the writer, runs the remaining done
 * callbacks itself (on the calling thread, which must be the loop thread)
 * and closes the database. It then uv_close()s the completion async handle,
 * whose memory its close callback frees, so the caller must run the loop
 * again (for example uv_run(loop, UV_RUN_DEFAULT) until it returns) before
 * uv_loop_close(). No callback refers to st after this returns. */
void store_close(struct store *st);

/* Metrics: transactions committed, ops written and ops elided (a queue
 * entry added and removed within one batch, with what only it needed)
 * since open. */
uint64_t store_commits(const struct store *st);
uint64_t store_ops_written(const struct store *st);
uint64_t store_ops_elided(const struct store *st);

#endif
