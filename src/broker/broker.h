/* The MQTT broker: hub state, connections, sessions and messages. Internal
 * to src/broker; the serve command uses hub_create/hub_run/hub_destroy. All
 * of this state belongs to the I/O loop thread. */
#ifndef VIGIL_BROKER_BROKER_H
#define VIGIL_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "auth/acl.h"
#include "auth/device.h"
#include "auth/pki.h"
#include "auth/ratelimit.h"
#include "config/config.h"
#include "core/buf.h"
#include "core/map.h"
#include "core/timer_heap.h"
#include "net/tls.h"
#include "proto/mqtt/mqtt.h"
#include "secmon/event.h"
#include "store/store.h"

struct hub;
struct session;
struct secmon_engine;
struct alerts_db;
struct audit_log;
struct siem_exporter;
struct conn;
struct gw_front;
struct gw_client;

/* An application message, immutable once routed, shared by reference
 * between the deliveries, the retained tree and pending publishes. Topic,
 * payload and forwardable properties live in the same allocation. */
struct msg {
    uint32_t refs;
    uint8_t qos;
    bool retain;
    uint16_t topic_len;
    uint32_t payload_len;
    uint32_t props_len;
    uint64_t id;               /* store row id, 0 when not stored */
    uint32_t store_refs;       /* stored queue entries submitted for id */
    /* The publisher's PUBACK or PUBREC while it waits for these entries to be
     * acknowledged or written (handle_publish.c); NULL otherwise. */
    struct pending_ack *ack_waiter;
    int64_t expiry_at;         /* Unix seconds, 0 = never */
    const struct session *origin; /* publisher, for No Local; not a reference */
    char *topic;               /* NUL-terminated, points into data */
    uint8_t *payload;
    uint8_t *props;
    uint8_t data[];
};

struct msg *msg_new(const char *topic, size_t topic_len, const uint8_t *payload,
                    size_t payload_len, const uint8_t *props, size_t props_len);
struct msg *msg_ref(struct msg *m);
void msg_unref(struct msg *m);
bool msg_expired(const struct msg *m, int64_t now_s);

/* One message on its way to one session. */
struct delivery {
    struct delivery *next;
    struct msg *msg;
    uint64_t seq;              /* store queue key; 0 when not stored */
    uint16_t packet_id;        /* 0 until sent with QoS 1/2 */
    uint8_t qos;               /* granted: min(message, subscription) */
    uint8_t state;             /* enum store_queue_state */
    bool retain;               /* RETAIN flag to send */
    bool sent;
    uint8_t n_sub_ids;
    uint32_t sub_ids[];
};

struct session_sub {
    char *filter;              /* as subscribed, "$share/..." included */
    uint8_t options;
    uint32_t sub_id;
};

/* Parts of a session that few clients use, allocated at their first use
 * (session_cold()) and kept until the session is freed: the will,
 * incoming QoS 2 state and the place in the offline list. A persistent
 * session gets it when it connects or is loaded, so that it can go
 * offline without allocating. */
struct session_cold {
    uint64_t offline_since_ms; /* monotonic; valid while conn == NULL */
    struct session *offline_next, *offline_prev;
    /* Will of the current or last connection, and when to send it. */
    struct msg *will;
    uint64_t will_due_ms;      /* monotonic, 0 = not scheduled */
    uint32_t will_delay;
    /* Incoming QoS 2 packet ids awaiting PUBREL. */
    uint32_t n_inqos2, cap_inqos2;
    uint16_t *inqos2;
};

/* One client's session. Every connected client has one, so fields are
 * ordered to leave no padding and rarely used state is in struct
 * session_cold. */
struct session {
    struct hub *hub;
    struct conn *conn;         /* NULL while offline */
    uint32_t refs;             /* held by the session map and pending publishes */
    uint32_t expiry_interval;  /* seconds, UINT32_MAX = never */
    uint8_t version;
    bool removed : 1;          /* no longer in the session map */
    bool persistent : 1;       /* state is kept in the store */
    bool stored : 1;           /* a session row exists in the store */
    bool in_offline_list : 1;  /* in hub->offline_head; s->cold is set */
    uint16_t next_packet_id;
    /* Per-publish scratch for merging overlapping subscriptions. */
    uint32_t match_slot;
    uint64_t match_gen;

    struct session_sub *subs;
    uint32_t n_subs, cap_subs;

    /* Deliveries: inflight ones (sent, QoS 1/2, unacknowledged) first, then
     * the ones waiting to be sent. One list keeps the order of arrival. */
    struct delivery *queue_head, *queue_tail;
    uint32_t n_queued;         /* all deliveries in the list */
    uint32_t n_inflight;

    struct session_cold *cold; /* owned; NULL until first needed */

    /* Set for a client of a UDP front end: deliveries go to it instead of
     * an MQTT connection, and the session is in no session map. */
    struct gw_client *gw;

    /* The client id, NUL-terminated, then the device that owns the
     * session (session_device()), set at creation. */
    char client_id[];
};

/* The device that owns s, "" for an anonymous client. */
const char *session_device(const struct session *s);
/* The cold part of s, allocated at the first call; NULL when memory runs
 * out. */
struct session_cold *session_cold(struct session *s);
/* The will of s, NULL when none. */
static inline struct msg *session_will(const struct session *s)
{
    return s->cold != NULL ? s->cold->will : NULL;
}

enum conn_state {
    CONN_NEW,          /* waiting for CONNECT */
    CONN_AUTH,         /* CONNECT received, credentials being checked */
    CONN_ACTIVE,
    CONN_CLOSING,
};

/* An acknowledgement that must wait for the store, kept in arrival order
 * because PUBACKs must go out in the order the PUBLISHes came in. */
struct pending_ack {
    struct pending_ack *next;
    struct conn *conn;         /* holds a reference while the ack waits */
    /* While waiting for its message's subscribers (handle_publish.c): the
     * message (a reference), the hub list it is on and when it stops
     * waiting for them and waits for the store instead. */
    struct msg *msg;
    struct pending_ack *wprev, *wnext;
    uint64_t due_ms;
    uint8_t type;              /* MQTT_PUBACK, MQTT_PUBREC or MQTT_PUBREL */
    uint8_t reason;
    uint16_t packet_id;
    bool ready;
};

/* State only some connections need, allocated at its first use
 * (conn_extra()): topic aliases, QoS 1/2 acknowledgements on their way and
 * the time of the last output drop event. Kept until the connection is
 * freed. */
struct conn_extra {
    /* Incoming topic aliases, index alias-1; alias_in_cap entries, each owned. */
    char **alias_in;
    uint16_t alias_in_cap;
    uint16_t alias_out_next;       /* outgoing aliases assigned so far */
    uint32_t in_qos_pending;       /* received QoS 1/2 PUBLISHes not yet completed */
    struct vigil_map alias_out;    /* outgoing: topic -> alias */
    struct pending_ack *acks_head, *acks_tail;
    /* When the last limit event about QoS 0 messages dropped for this
     * connection was emitted (monotonic ms, 0 = never; outbudget.c). */
    uint64_t out_drop_event_ms;
};

/* The TLS part of a connection: the session and the ciphertext to send.
 * The identity the handshake proved is conn_tls_identity(). */
struct conn_tls {
    struct tls_session *session; /* owned */
    struct vigil_buf wire;
};

/* One MQTT connection. Idle connections are the common case, so state
 * that only some connections need lives in struct conn_extra, and names
 * are sized to fit. */
struct conn {
    struct hub *hub;
    /* The socket while it is on the hub's loop, -1 once it closed or moved
     * to an I/O thread. It is in the hub's connection epoll set (conn.c)
     * from the end of conn_accept, with ep_events registered. */
    int fd;
    uint8_t ep_events;         /* CONN_EP_* registered for fd */
    uint64_t id;
    uint32_t slot;             /* index in hub->conns */
    uint32_t refs;             /* the TCP handle and in-flight requests */
    uint8_t state;             /* enum conn_state */
    uint8_t version;           /* protocol level after CONNECT */
    /* Bits, so that they take one byte. */
    bool anonymous_allowed : 1; /* the listener's allow_anonymous */
    bool password_allowed : 1;  /* the listener's allow_password */
    bool closing_handles : 1;
    bool write_busy : 1;
    bool reading : 1;           /* input is read from fd */
    bool flush_queued : 1;      /* in hub->flush_list */
    bool request_problem_info : 1;
    bool close_deadline : 1;    /* timer is set to the close deadline */
    bool client_id_shared : 1;  /* client_id points into a session (conn_share_client_id) */
    bool publish_wait : 1;      /* QoS 2 PUBLISHes of a stored session wait for the store */
    uint16_t keep_alive;       /* effective, seconds; 0 = none */
    uint16_t keep_alive_requested; /* as the CONNECT asked, for the engine */
    /* Limits the client announced in CONNECT (v5). */
    uint16_t client_receive_max;
    uint16_t client_alias_max;
    uint32_t client_max_packet;
    uint32_t holds;            /* output waits while > 0 (state not yet durable) */
    /* This connection's part of hub->output.total (outbudget.c). It fits
     * in 32 bits: each of the three output buffers is capped at 64 MiB. */
    uint32_t out_counted;
    /* Connect timeout, then keep-alive, then the close deadline set once
     * by the first conn_close (keepalive.c). */
    struct vigil_timer_node timer;
    uint64_t last_rx_ms;
    struct conn_tls *tls;      /* owned; NULL on a plaintext listener */
    /* Event budget (token bucket in thousandths of an event) so that one
     * connection cannot flood the event log; suppressed events are counted
     * and reported in one summary event. */
    uint32_t ev_tokens;
    uint32_t ev_suppressed;
    uint64_t ev_last_ms;

    struct vigil_buf in;
    struct vigil_buf out;      /* being filled */
    struct conn_write *wr;     /* owned; the write on the hub's loop, NULL when idle */

    struct session *session;
    const struct config_role *role; /* NULL = anonymous full access */
    /* Names, each owned and allocated to fit, or hub_no_name when empty.
     * hub_name_set() sets them. The exception is a shared client id, which
     * is the id stored in a session that c holds a reference on. peer is "host:port" or "[v6]:port". The
     * client id has at most CONN_CLIENT_ID_MAX bytes, the device at most
     * DEVICE_ID_MAX and its inventory type at most CONN_DEVICE_TYPE_MAX. */
    char *peer;
    char *client_id;
    char *device;
    char *device_type;

    struct conn_extra *extra;  /* owned; NULL until first needed */
    /* The password check running in the thread pool, NULL when none. */
    struct connect_auth *auth;

    /* The socket on an I/O thread (iothread.c), NULL while it is on the
     * hub's loop; owned by that thread. */
    struct io_conn *io;
    uint64_t io_unwritten;     /* bytes handed to the thread and not yet written */
    struct conn *reap_next;    /* in hub->reap */
};

#define CONN_CLIENT_ID_MAX 255
#define CONN_DEVICE_TYPE_MAX 31

struct hub_stats {
    uint64_t msgs_received, msgs_sent, bytes_received, bytes_sent;
    uint64_t msgs_dropped, connections_total, publish_denied;
};

/* Unsent output of all MQTT connections of the hub, and the two bounds on
 * it: limits.max_output_bytes per connection and limits.output_budget_bytes
 * for the hub. A connection's unsent output is what conn_backlog() counts:
 * encoded packets not yet handed to libuv, TLS records not yet written and
 * the buffer of the write in progress. */
struct out_budget {
    size_t total;              /* unsent output bytes of all connections */
    size_t peak;               /* highest total since start */
    uint32_t holders;          /* connections with unsent output */
    size_t conn_limit;         /* limits.max_output_bytes */
    size_t budget;             /* limits.output_budget_bytes */
    uint64_t dropped_conn_limit; /* QoS 0 deliveries dropped over conn_limit */
    uint64_t dropped_budget;     /* QoS 0 deliveries dropped over the fair share */
    uint64_t aborted;            /* closing connections reset with output unwritten
                                  * after limits.close_grace_ms (conn.c) */
};

/* Result of outbudget_check for one connection. */
enum out_verdict {
    OUT_SEND,                  /* within both bounds */
    OUT_OVER_CONN_LIMIT,       /* its unsent output is over conn_limit */
    OUT_OVER_SHARE,            /* the hub is over budget and this connection
                                * has more than its fair share */
};

struct hub {
    uv_loop_t *loop;
    struct vigil_config cfg;
    struct store *store;
    struct vigil_event_sink *events;
    /* Security monitoring, used on the event sink's thread only. */
    struct secmon_engine *engine;
    struct alerts_db *alerts;
    struct audit_log *audit;
    int64_t audit_spool_due_us;      /* wall-clock time of the next audit spool drain */
    struct siem_exporter *siem;      /* NULL without SIEM destinations */
    struct live_sniffers *sniffers;  /* captures of vigil serve --sniff; NULL without */
    struct device_db *devices;
    struct sub_tree *subs;
    struct retain_tree *retained;
    struct vigil_map sessions;   /* client id -> struct session; borrows session->client_id */
    struct session *offline_head;
    /* Per configured listener: a listening socket (MQTT, MQTTS) or a front
     * end (CoAP, MQTT-SN); listener_open[i] is set once slot i is open. */
    struct hub_listener {
        uv_poll_t poll;
        int fd;
        bool paused;                 /* after an accept error; the tick resumes it */
    } listeners[CONFIG_MAX_LISTENERS];
    int spare_fd;                    /* /dev/null, given up to shed a connection */
    /* Connections shed since the last log line about them, the error
     * that made them shed, and when that line was logged (uv_now, ms; 0
     * before the first). */
    uint64_t shed_unlogged;
    int shed_errno;
    uint64_t shed_logged_ms;
    struct gw_front *fronts[CONFIG_MAX_LISTENERS];
    bool listener_open[CONFIG_MAX_LISTENERS];
    /* Zero trust: the TLS context of the MQTTS listeners (replaced on
     * reload), the CA, the inventory snapshot read on this thread, and the
     * failed-login limiters. */
    struct tls_server *tls[CONFIG_MAX_LISTENERS];  /* per MQTTS listener */
    struct pki *pki;
    char tls_cert[512], tls_key[512], tls_ca[512], tls_crl[512];
    struct zt_file_stamp { int64_t mtime_ns; int64_t size; uint64_t ino; } crl_stamp;
    struct vigil_map cert_warned;    /* serials already warned about today */
    struct device_snapshot *snap;
    uint64_t snap_version;
    bool snap_loading;
    bool snap_dirty;                 /* a change came in while loading */
    bool maint_running;
    uint64_t last_maint_ms;
    struct ratelimit *rl_peer, *rl_identity;
    uv_signal_t sig_hup;
    uv_fs_event_t devices_watch;     /* changes to devices.db and its WAL */
    bool devices_watch_on;
    uint8_t read_buf[65536];         /* shared input buffer of the loop (conn.c) */
    /* Sockets of the connections on this loop: one epoll set, polled by
     * one handle, so that a connection needs no libuv handle of its own. */
    int conn_epfd;
    uv_poll_t conn_poll;
    bool conn_poll_open;
    struct conn *reap;               /* released, last reference not yet dropped */
    size_t n_listeners;
    uv_timer_t tick;             /* 1 s: expiry, wills, $SYS */
    /* Deadlines of every connection, and the one timer that serves them
     * (keepalive.c): armed for conn_timer_due, 0 when not armed. */
    struct vigil_timer_heap conn_deadlines;
    uv_timer_t conn_timer;
    uint64_t conn_timer_due;
    bool conn_timers_running;    /* its callback runs and arms it when done */
    bool stopping_timers;
    /* The packet being dispatched, inside an input buffer; valid while its
     * handler runs (conn.c). */
    const uint8_t *cur_packet;
    size_t cur_packet_len;
    uv_signal_t sig_int, sig_term;
    int lock_fd;                 /* flock on <data-dir>/vigil.lock */
    uint64_t next_conn_id;
    uint64_t next_msg_id;
    uint64_t next_seq;
    uint64_t match_gen;
    uint32_t n_conns;
    uint32_t n_auth_pending;     /* password checks in the thread pool */
    uint64_t started_ms;
    int64_t started_s;
    uint64_t last_sys_ms;
    bool stopping;
    bool stop_aborted;           /* shutdown stopped waiting for unwritten output */
    uint64_t stop_ms;            /* when shutdown began */
    struct hub_stats stats;
    struct out_budget output;    /* unsent output of all connections (outbudget.c) */
    struct route_match *scratch; /* router: matches of the publish being routed */
    size_t scratch_n, scratch_cap;
    /* Connections with output waiting, written once per loop iteration so
     * that many packets to one client go out in one write. */
    struct conn **flush_list;
    size_t flush_n, flush_cap;
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    /* PUBACKs and PUBRECs waiting for their messages' persistent
     * subscribers, oldest first, and the timer that hands overdue ones to
     * the store. The ready list contains those whose subscribers acknowledged,
     * sent at the next flush (handle_publish.c). */
    struct pending_ack *ack_wait_head, *ack_wait_tail;
    struct pending_ack *ack_ready_head, *ack_ready_tail;
    uv_timer_t ack_timer;
    bool ack_timer_open;
    struct conn **conns;         /* open connections, for shutdown; NULL = free slot */
    size_t n_conn_slots;
    uint32_t *free_slots;        /* indexes of free slots in conns */
    size_t n_free_slots;
    struct io_pool *io;          /* I/O threads; NULL with limits.io_threads 1 */
};

/* hub.c */
vigil_err hub_create(const struct vigil_config *cfg, struct hub **out);
int hub_run(struct hub *hub);
void hub_destroy(struct hub *hub);
void hub_emit(struct hub *hub, const struct conn *c, enum vigil_event_type type,
              const char *topic, size_t topic_len, const char *rule, const char *detail);
void hub_emit_ev(struct hub *hub, const struct conn *c, struct vigil_event *ev);
void hub_emit_suppressed(struct hub *hub, struct conn *c);
/* Event types kept whatever the budget (logins, disconnects, TLS). */
bool hub_event_always_kept(uint8_t type);
/* Takes one event from a client's token bucket (thousandths of an event);
 * false when none is left. */
bool hub_event_budget_take(struct hub *hub, uint32_t *tokens, uint64_t *last_ms);
int64_t hub_now_s(void);
/* Writes the address part of peer ("host:port" or "[v6]:port") into out. */
void hub_peer_host(const char *peer, char *out, size_t cap);
/* The empty name that names point to when unset; never freed. */
extern char hub_no_name[1];
/* Replaces *name by a copy of s and frees the old one. The copy ends at the
 * first NUL of s, after len bytes or after max bytes, whichever comes
 * first, and an empty copy is hub_no_name. Returns false when memory runs
 * out, and *name is then unchanged. */
bool hub_name_set(char **name, const char *s, size_t len, size_t max);
void hub_name_free(char **name);

/* conn.c */
/* Takes the accepted socket fd from peer (its address) on listener. */
void conn_accept(struct hub *hub, int fd, const struct sockaddr *peer,
                 const struct config_listener *listener);
/* The epoll set of the hub's connections and the handle that polls it on
 * the loop; conn_sockets_close closes both once no connection is left. */
vigil_err conn_sockets_open(struct hub *hub);
void conn_sockets_close(struct hub *hub);
/* Drops the last reference of connections released since the last call,
 * once no callback of this loop iteration can still hold them. */
void conn_reap(struct hub *hub);
/* Appends an encoded packet to the output buffer; false when it cannot. */
bool conn_send(struct conn *c, const struct mqtt_packet *pkt);
void conn_flush(struct conn *c);
/* Holds all output of c until everything submitted to the store so far is
 * durable, so a CONNACK or SUBACK never promises state a crash could lose. */
void conn_hold_until_durable(struct conn *c);
/* Ends one hold of c's output once its store barrier completed with rc:
 * closes c when the write failed, and otherwise flushes what waited. */
void conn_hold_end(struct conn *c, vigil_err rc);
/* Runs the queued flushes; called by the hub once per loop iteration. */
void conn_flush_pending(struct hub *hub);
/* Sends DISCONNECT with reason (v5 only, when reason != 0xFF) and closes
 * once the output is written, or resets the connection when the output is
 * still unwritten limits.close_grace_ms later (conn_close_expired). */
void conn_close(struct conn *c, uint8_t reason, const char *why);
/* Resets c, whose close deadline passed, when its output is still being
 * written: the peer stopped reading. Counted in hub->output.aborted, with
 * a limit event. */
void conn_close_expired(struct conn *c);
/* Resets the closing connections of the hub's loop whose last write has
 * not completed (shutdown after limits.close_grace_ms); their unwritten
 * output is dropped. */
void conn_abort_closing(struct hub *hub);
/* Makes the close of socket fd reset the connection (SO_LINGER 0), so the
 * kernel discards the output the peer did not read instead of keeping it.
 * Nothing happens for fd < 0. */
void conn_sock_reset_on_close(int fd);
/* Bounds how long the kernel keeps fd's unacknowledged output, also after
 * the socket is closed (TCP_USER_TIMEOUT), so that a peer that does not
 * read cannot hold an orphaned socket and its send queue for longer than
 * ms. Nothing happens for fd < 0. */
void conn_sock_bound_unread(int fd, uint32_t ms);
/* Replaces c's copy of the client id by the same id stored in s, so that
 * a connected client's id is kept once. c keeps a reference on s until c
 * is freed. */
void conn_share_client_id(struct conn *c, struct session *s);
void conn_ref(struct conn *c);
void conn_unref(struct conn *c);
void conn_resume_read(struct conn *c);
/* Stops reading from c while its login is checked. */
void conn_pause_read(struct conn *c);
void conn_protocol_error(struct conn *c, const struct mqtt_error *err, uint8_t type);
/* Bytes of output buffered for c that the peer has not received yet. */
size_t conn_backlog(const struct conn *c);

/* outbudget.c: the count of unsent output and the QoS 0 drop policy. */
void outbudget_init(struct out_budget *b, size_t conn_limit, size_t budget);
/* Moves one connection's part of the total from *counted to now bytes. */
void outbudget_account(struct out_budget *b, uint32_t *counted, size_t now);
/* Unsent output a connection may have while the hub is over budget. */
size_t outbudget_share(const struct out_budget *b);
/* Decides whether a connection with backlog unsent bytes may take more. */
enum out_verdict outbudget_check(const struct out_budget *b, size_t backlog);
/* Counts a QoS 0 delivery to c dropped for verdict, and emits a limit event
 * about it at most once every 10 s per connection. */
void outbudget_dropped(struct conn *c, enum out_verdict verdict);

/* The identity the TLS handshake proved, "" when none (zerotrust.c). */
const char *conn_tls_identity(const struct conn *c);
/* The extra state of c, allocated at the first call; NULL when memory
 * runs out (handle_publish.c). */
struct conn_extra *conn_extra(struct conn *c);
void conn_extra_free(struct conn *c);
/* Publisher acknowledgements that wait for persistent subscribers: m's
 * last stored entry is gone, so its PUBACK or PUBREC needs nothing written. */
void publish_ack_released(struct msg *m);
/* Queues a PUBACK, PUBREC or PUBREL (reason is sent to MQTT 5 clients
 * only): it goes out once everything submitted to the store before it is
 * durable, after the acknowledgements queued before it, and without
 * holding other output. */
void conn_send_when_durable(struct conn *c, uint8_t type, uint16_t packet_id, uint8_t reason);
/* Sends the acknowledgements released since the last call; run once per loop
 * iteration, where no handler is on the stack. */
void publish_acks_ready(struct hub *hub);
void publish_ack_wait_init(struct hub *hub);
/* An idle callback that does nothing: an active idle handle keeps the
 * next poll from blocking (conn.c). */
void hub_keep_polling(uv_idle_t *h);
/* Hands every waiting acknowledgement to the store and closes the timer. */
void publish_ack_wait_close(struct hub *hub);

/* keepalive.c: connection deadlines on one hub timer. */
void conn_timers_init(struct hub *hub);
void conn_timers_close(struct hub *hub, uv_close_cb done);
/* Sets the deadline of c delay_ms from now, replacing any earlier one;
 * false (logged) when memory runs out. */
bool conn_timer_set(struct conn *c, uint64_t delay_ms);
void conn_timer_stop(struct conn *c);
/* Replaces the connect timeout by the keep-alive deadline after CONNACK. */
void conn_start_keepalive(struct conn *c);

/* handle_*.c: one per packet type; each returns false when the connection
 * was closed. */
bool handle_connect(struct conn *c, const struct mqtt_packet *pkt);
/* Rejects a CONNECT that failed to decode, as its protocol level requires. */
void connect_malformed(struct conn *c, const struct mqtt_packet *pkt, const struct mqtt_error *err);
/* Cancels a password check that has not started yet. */
void connect_cancel_auth(struct conn *c);
bool handle_publish(struct conn *c, const struct mqtt_packet *pkt);
bool handle_puback(struct conn *c, const struct mqtt_packet *pkt);
bool handle_pubrec(struct conn *c, const struct mqtt_packet *pkt);
bool handle_pubrel(struct conn *c, const struct mqtt_packet *pkt);
bool handle_pubcomp(struct conn *c, const struct mqtt_packet *pkt);
bool handle_subscribe(struct conn *c, const struct mqtt_packet *pkt);
bool handle_unsubscribe(struct conn *c, const struct mqtt_packet *pkt);
bool handle_pingreq(struct conn *c, const struct mqtt_packet *pkt);
bool handle_disconnect(struct conn *c, const struct mqtt_packet *pkt);
bool handle_auth(struct conn *c, const struct mqtt_packet *pkt);
void conn_ack_ready(struct conn *c, struct pending_ack *ack);

/* session.c */
struct session *session_find(struct hub *hub, const char *client_id);
/* device: the owning device, "" for an anonymous client. */
struct session *session_create(struct hub *hub, const char *client_id, const char *device,
                               uint8_t version);
/* A session in no session map and never stored, for a client of a UDP
 * front end; its owner removes its subscriptions and drops the reference. */
struct session *session_new_detached(struct hub *hub, const char *name, const char *device);
void session_ref(struct session *s);
void session_unref(struct session *s);
/* Removes the session from the map, the subscription tree and the store. */
void session_discard(struct session *s);
/* Puts an offline session in the offline list, offline since since_ms
 * (monotonic), where it expires. When memory runs out it logs an error and
 * the session stays out of the list. */
void session_mark_offline(struct session *s, uint64_t since_ms);
void session_attach(struct session *s, struct conn *c);
void session_detach(struct session *s);
vigil_err session_add_sub(struct session *s, const char *filter, size_t len, uint8_t options,
                          uint32_t sub_id, bool *existed);
bool session_remove_sub(struct session *s, const char *filter, size_t len);
/* Adds a delivery (takes a reference on msg); sends it when online. */
void session_enqueue(struct session *s, struct msg *msg, uint8_t qos, bool retain,
                     const uint32_t *sub_ids, uint8_t n_sub_ids);
/* Appends a delivery restored from the store. */
struct delivery *session_restore_delivery(struct session *s, struct msg *msg, uint64_t seq,
                                          uint8_t qos, uint8_t state, uint16_t packet_id);
/* Sends a QoS 0 message straight to the connection, or drops it. */
void session_send_qos0(struct session *s, struct msg *msg, bool retain, const uint32_t *sub_ids,
                       uint8_t n_sub_ids);
/* Sends what the inflight window allows. */
void session_pump(struct session *s);
void session_resend_inflight(struct session *s);
struct delivery *session_find_inflight(struct session *s, uint16_t packet_id);
void session_complete(struct session *s, struct delivery *d);
bool session_has_inqos2(const struct session *s, uint16_t packet_id);
bool session_add_inqos2(struct session *s, uint16_t packet_id);
bool session_remove_inqos2(struct session *s, uint16_t packet_id);
void session_free_all(struct hub *hub);
void session_offline_sweep(struct hub *hub, uint64_t now_ms);
void session_publish_will(struct session *s);

/* router.c */
/* Routes msg to every matching subscription. */
void router_publish(struct hub *hub, struct msg *msg, const struct session *origin);
/* Stores or clears a retained message (msg->retain set). */
void router_retain(struct hub *hub, struct msg *msg, bool persist);
void router_send_retained(struct hub *hub, struct session *s, const char *filter, size_t len,
                          uint8_t options, uint32_t sub_id);
void router_free(struct hub *hub);

/* acl.c */
bool acl_can_publish(const struct conn *c, const char *topic, size_t len);
bool acl_can_subscribe(const struct conn *c, const char *filter, size_t len);
/* The same checks for any client: role NULL means full access, device ""
 * an anonymous client. */
bool acl_check_publish(const struct hub *hub, const struct config_role *role, const char *device,
                       const char *topic, size_t len);
bool acl_check_subscribe(const struct hub *hub, const struct config_role *role,
                         const char *device, const char *filter, size_t len);
/* Writes pattern with "%d" replaced by device into out (capacity cap);
 * returns the length, or 0 when it does not fit or device is empty. */
size_t acl_expand_device(const char *pattern, const char *device, char *out, size_t cap);
/* True when client_id is a device id of the inventory, alone or followed
 * by ":<suffix>"; such ids are reserved for that device. */
bool acl_client_id_names_device(const struct hub *hub, const char *client_id);

/* persist.c */
vigil_err persist_load(struct hub *hub);
/* Writes the session row (or deletes it when the session stopped being
 * persistent); when it is first written, its subscriptions go too. */
void persist_session(struct session *s);
void persist_delete_session(struct session *s);
/* Makes sure msg has a store row and returns its id. The row lives while a
 * stored queue entry refers to it. When the last goes, msg->id returns to
 * 0, so a later entry stores the message again under a new id and no op
 * ever names a row that could have been removed. */
uint64_t persist_msg(struct hub *hub, struct msg *msg);
void persist_sub(struct session *s, const char *filter, uint8_t options, uint32_t sub_id, bool del);
/* STORE_QUEUE_PUT gives d a seq and stores its message first; UPDATE
 * writes d's state and packet id; DEL removes the entry and sets d->seq
 * back to 0. */
void persist_queue(struct session *s, struct delivery *d, enum store_op_kind kind);
/* A delivery restored from the store refers to msg's row. */
void persist_restored(struct delivery *d);
void persist_inqos2(struct session *s, uint16_t packet_id, bool del);
/* Submits a barrier whose completion calls done(arg). */
void persist_barrier(struct hub *hub, void (*done)(void *arg, vigil_err rc), void *arg);

/* zerotrust.c: TLS contexts and their reload, the inventory snapshot,
 * certificate maintenance and failed-login limits. */
vigil_err zt_init(struct hub *hub);
/* Closes the SIGHUP handle; zt_free releases the rest after the loop ends. */
void zt_shutdown(struct hub *hub);
void zt_free(struct hub *hub);
/* Called every tick: CRL changes, snapshot refresh, maintenance. */
void zt_tick(struct hub *hub, uint64_t now_ms);
/* Reloads certificates, CA and CRL (SIGHUP); keeps the old context on error. */
void zt_reload(struct hub *hub, const char *why);
/* After a completed handshake; returns false when the connection closed. */
bool zt_handshake_done(struct conn *c);
void zt_handshake_failed(struct conn *c, const char *why);
bool zt_peer_blocked(struct conn *c);
/* Records a failed login for the peer and the identity (may be NULL). */
void zt_login_failed(struct conn *c, const char *identity);
bool zt_identity_blocked(struct conn *c, const char *identity);
void zt_login_succeeded(struct conn *c, const char *identity);

/* monitor.c: the security engine, alert store and audit log on the event
 * sink's thread. */
vigil_err monitor_start(struct hub *hub);
void monitor_stop(struct hub *hub);

/* sys.c */
void sys_publish(struct hub *hub);

#endif
