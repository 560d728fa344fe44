/* Load generator internals shared by loadgen.c (the controlling thread),
 * lg_thread.c (the event loops) and lg_mqtt.c (packets). */
#ifndef VIGIL_BENCH_LG_INTERNAL_H
#define VIGIL_BENCH_LG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "bench/loadgen.h"
#include "core/buf.h"

#define LG_BACKLOG_MAX 1024            /* publishes waiting for the QoS 1/2 window */
#define LG_RBUF_SIZE (256u * 1024u)     /* per-thread read buffer */
#define LG_PACKET_MAX (128u * 1024u)    /* larger packets from the broker are a protocol error */

enum lg_role { LG_PUB, LG_SUB, LG_IDLE };

enum lg_state {
    LG_CLOSED = 0,
    LG_CONNECTING,
    LG_WAIT_CONNACK,
    LG_WAIT_SUBACK,
    LG_READY,
    LG_FAILED,
};

enum lg_command {
    LG_CMD_NONE = 0,
    LG_CMD_CONNECT,   /* open every closed connection */
    LG_CMD_PUBLISH,   /* start the schedule of a step */
    LG_CMD_QUIET,     /* stop publishing and recording */
    LG_CMD_CLOSE,     /* DISCONNECT and close every connection */
};

struct lg_pending {
    uint64_t due_ns;
    uint64_t seq;
    uint8_t qos;
};

/* Ring of publishes waiting for a free slot in the QoS 1/2 window. */
struct lg_backlog {
    struct lg_pending items[LG_BACKLOG_MAX];
    uint32_t head;
    uint32_t count;
};

struct lg_conn {
    int fd;                   /* -1 when closed */
    uint8_t role;             /* enum lg_role */
    uint8_t state;            /* enum lg_state */
    bool dirty;               /* on the thread's flush list */
    bool want_out;            /* EPOLLOUT is registered */
    bool mixed_topics;        /* topics[1] and [2] are separate strings */
    uint16_t next_pid;
    uint16_t inflight;        /* QoS 1/2 publishes not yet acknowledged */
    uint32_t index;           /* within its role */
    uint32_t global;          /* position among all connections */
    char *topics[3];          /* owned: publish topic by QoS, or the filter in [0] */
    uint16_t topic_len[3];
    struct vigil_buf tx;      /* bytes not yet written */
    struct vigil_buf partial; /* an incomplete packet from the last read */
    struct lg_backlog *backlog; /* owned, allocated on first use */
};

/* Written by one loop thread, read by the controlling thread. */
struct lg_shared {
    atomic_uint_fast64_t applied;     /* generation of the last command applied */
    atomic_uint_fast64_t ready;
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t lost;
    atomic_uint_fast64_t sent;        /* window messages handed to a socket or backlog */
    atomic_uint_fast64_t dropped;     /* window messages dropped */
    atomic_uint_fast64_t received;    /* window deliveries */
    atomic_uint_fast64_t outstanding; /* QoS 1/2 unacknowledged plus backlog */
    atomic_bool schedule_done;        /* the step's schedule has passed its stop time */
};

struct lg;

struct lg_thread {
    struct lg *lg;
    unsigned id;
    pthread_t thread;
    bool started;
    int ep;                   /* epoll instance */
    int wake_fd;              /* eventfd the controlling thread writes to */
    struct lg_conn **conns;   /* owned array; the connections belong to lg */
    size_t n_conns;
    struct lg_conn **pubs;    /* owned array, subset of conns */
    size_t n_pubs;
    struct lg_conn **dirty;   /* owned array of n_conns slots */
    size_t n_dirty;
    uint8_t *rbuf;            /* owned, LG_RBUF_SIZE */
    uint8_t *payload;         /* owned, LG_PAYLOAD_MAX */
    char last_error[128];     /* first connection failure, for the report */
    uint64_t gen;             /* generation applied */
    size_t connect_cursor;
    uint32_t connecting;
    /* Step state. */
    bool publishing;
    bool recording;
    uint64_t start_ns, from_ns, to_ns, stop_ns;
    double interval_ns;
    uint64_t next_j;
    uint64_t outstanding;
    uint64_t now_ns;          /* time of the last wake-up */
    struct bench_hist hist;   /* window latencies */
    struct lg_shared sh;
};

struct lg_cmd {
    uint8_t kind;             /* enum lg_command */
    double rate;              /* publishes per second over all publishers */
    uint64_t start_ns, from_ns, to_ns, stop_ns;
};

struct lg {
    struct lg_options opt;
    struct lg_workload wl;
    struct lg_conn *conns;    /* owned array */
    size_t n_conns;
    struct lg_thread threads[LG_MAX_THREADS];
    struct lg_cmd cmd;        /* written before gen is incremented */
    atomic_uint_fast64_t gen;
    atomic_bool quit;
};

/* lg_thread.c */
void *lg_thread_main(void *arg);
void lg_conn_lost(struct lg_thread *t, struct lg_conn *c, const char *reason);
void lg_conn_ready(struct lg_thread *t, struct lg_conn *c);
void lg_mark_dirty(struct lg_thread *t, struct lg_conn *c);

/* lg_mqtt.c */
bool lg_send_connect(struct lg_thread *t, struct lg_conn *c);
/* Handles the complete packets at the start of buf and returns the bytes
 * they take; SIZE_MAX when the connection was closed for a protocol error. */
size_t lg_handle_input(struct lg_thread *t, struct lg_conn *c, const uint8_t *buf, size_t len);
/* Emits message j of the thread's schedule, due at due_ns. */
void lg_emit(struct lg_thread *t, uint64_t j, uint64_t due_ns);
bool lg_send_disconnect(struct lg_conn *c);

#endif
