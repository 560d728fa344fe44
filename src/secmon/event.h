/* Typed security events. Every front end emits them; for now a sink thread
 * writes them as JSON lines, and the security engine will consume the same
 * structs. Fixed size, so the queue between the I/O loop and the consumer
 * copies them into blocks of equal slots and no event allocates. */
#ifndef VIGIL_SECMON_EVENT_H
#define VIGIL_SECMON_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum vigil_event_type {
    VIGIL_EV_CONNECT_ATTEMPT,  /* TCP connection accepted */
    VIGIL_EV_AUTH_SUCCESS,     /* CONNECT accepted */
    VIGIL_EV_AUTH_FAILURE,     /* CONNECT rejected: credentials, unknown device, client id */
    VIGIL_EV_ACL_DENY,         /* publish or subscribe denied by access control */
    VIGIL_EV_SUBSCRIBE,
    VIGIL_EV_UNSUBSCRIBE,
    VIGIL_EV_PUBLISH,          /* a PUBLISH received from a client */
    VIGIL_EV_MALFORMED,        /* a protocol violation; rule names it */
    VIGIL_EV_DISCONNECT,       /* a connection closed; reason in detail */
    VIGIL_EV_LIMIT,            /* a configured limit was hit */
    VIGIL_EV_ADMIN,            /* administrative action (device added, config loaded) */
    VIGIL_EV_TLS_FAILURE,      /* TLS handshake failed: protocol, cipher, certificate, PSK */
    VIGIL_EV_CERT,             /* certificate life cycle: expiring soon, revoked, rotated */
    VIGIL_EV_RATE_LIMIT,       /* a peer or identity blocked after repeated failures */
    VIGIL_EV_TYPE_COUNT
};

enum vigil_proto {
    VIGIL_PROTO_NONE = 0,
    VIGIL_PROTO_MQTT311,
    VIGIL_PROTO_MQTT5,
    VIGIL_PROTO_TLS,           /* a TLS-level event before MQTT started */
    VIGIL_PROTO_COAP,          /* CoAP over UDP or DTLS */
    VIGIL_PROTO_MQTTSN,        /* MQTT-SN 1.2 over UDP or DTLS */
    VIGIL_PROTO_DTLS,          /* a DTLS-level event before CoAP or MQTT-SN started */
};

/* Name of a protocol as events show it ("mqtt5", "coap"), NULL for none. */
const char *vigil_proto_name(uint8_t proto);

struct vigil_event {
    uint8_t type;             /* enum vigil_event_type */
    uint8_t proto;            /* enum vigil_proto */
    uint8_t qos;
    uint8_t reason_code;      /* protocol reason or return code sent, 0 if none */
    bool retain;
    uint32_t size;            /* payload bytes (PUBLISH) or packet bytes */
    int64_t ts_us;            /* wall clock, microseconds since the epoch */
    uint64_t conn_id;
    const char *rule;         /* static: violated rule ("MQTT-3.3.2-2"), NULL if none */
    char peer[64];            /* "address:port" */
    char client_id[64];       /* truncated to fit */
    char device[64];          /* authenticated identity, "" before authentication */
    char device_type[32];     /* inventory type of device ("infusion-pump"), "" if none */
    char topic[192];          /* topic or filter, truncated to fit; never a payload */
    char detail[128];         /* short English explanation */
    uint16_t keep_alive;      /* CONNECT keep-alive in seconds (auth events), 0 if none */
    /* A measurement carried by a PUBLISH on a metric topic, for the
     * engine's physiological checks. Never written to events.jsonl. */
    bool has_value;
    double value;
    char metric[24];
    /* Decoded from captured traffic between other hosts (vigil serve
     * --sniff) rather than produced by this hub's own connections. */
    bool observed;
};

/* Zeroes ev, sets its type and fills ev->ts_us with the current time. */
void vigil_event_init(struct vigil_event *ev, enum vigil_event_type type);
/* Copies len bytes of s (up to a NUL; NULL means "") into a fixed field of
 * cap bytes, truncating at a UTF-8 character boundary and NUL-terminating. */
void vigil_event_set(char *field, size_t cap, const char *s, size_t len);
#define VIGIL_EVENT_SET(ev, field, s, len) vigil_event_set((ev)->field, sizeof (ev)->field, (s), (len))

const char *vigil_event_type_name(enum vigil_event_type type);

/* The sink: a bounded queue drained by its own thread, which appends one
 * JSON object per event to a file. emit never blocks: when the queue is
 * full the event is dropped and counted. */
struct vigil_event_sink;

vigil_err vigil_event_sink_open(const char *path, size_t capacity, struct vigil_event_sink **out);

/* Size-based rotation of the sink's file. When a write would take the file
 * past max_bytes, the whole lines that fit go to it first. Then the new
 * file is created as path.new, path.keep and any higher number are
 * deleted, path.(keep - 1) becomes path.keep and so on down to path.1,
 * path becomes path.1 and path.new becomes path, which takes the rest. A
 * line is never split between two files, and an empty file takes at least
 * one line. When path was deleted or moved away, a new path is opened
 * instead and the rotated files stay as they are. When creating the new
 * file, a deletion or a rename fails, the writer logs it once and keeps
 * appending to the current file, trying again after max_bytes more. Only
 * regular files rotate. */
#define VIGIL_EVENT_KEEP_MAX 1000
struct vigil_event_rotation {
    uint64_t max_bytes;       /* 0: never rotate */
    uint32_t keep;            /* rotated files kept, 1 to VIGIL_EVENT_KEEP_MAX */
};

/* Opens a sink like vigil_event_sink_open, with rotation (NULL for none).
 * Returns VIGIL_ERR_INVALID for a keep out of range while max_bytes is set. */
vigil_err vigil_event_sink_open_rotating(const char *path, size_t capacity,
                                         const struct vigil_event_rotation *rotation,
                                         struct vigil_event_sink **out);
/* Requests that the writer open path anew before its next batch, after an
 * external log rotation moved the file away (SIGHUP). Safe from any thread.
 * The writer keeps the old file when the open fails. */
void vigil_event_sink_reopen(struct vigil_event_sink *sink);
void vigil_event_sink_emit(struct vigil_event_sink *sink, const struct vigil_event *ev);
uint64_t vigil_event_sink_dropped(const struct vigil_event_sink *sink);
uint64_t vigil_event_sink_written(const struct vigil_event_sink *sink);
/* A consumer of every event, called on the sink's thread after each batch
 * is written: feed per event, dropped with the number of events lost since
 * the last call, and tick at least once a second with the wall clock. The
 * security engine is the consumer of the live hub. */
struct vigil_event_consumer {
    void (*feed)(void *ctx, const struct vigil_event *ev);
    void (*dropped)(void *ctx, uint64_t n, int64_t now_us);
    void (*tick)(void *ctx, int64_t now_us);
    void *ctx;
};

/* Sets (or with NULL removes) the consumer; safe while events flow. */
void vigil_event_sink_set_consumer(struct vigil_event_sink *sink,
                                   const struct vigil_event_consumer *consumer);

/* Drains what is queued, stops the thread, closes the file and frees sink. */
void vigil_event_sink_close(struct vigil_event_sink *sink);
/* Test hook: while paused the writer thread takes nothing from the queue, so
 * a test can fill it deterministically. Closing drains a paused sink too. */
void vigil_event_sink_set_paused(struct vigil_event_sink *sink, bool paused);

/* Enough for any event whose rule string is under 64 bytes: every text
 * field escaped at the worst case of 6 output bytes per input byte. */
#define VIGIL_EVENT_JSON_MAX 4096

/* Formats ev as one NUL-terminated JSON object without a newline; returns
 * the length, or -1 when it does not fit in cap bytes. The keys "ts" (RFC
 * 3339 UTC with microseconds) and "type" are always present. The keys
 * "proto", "conn", "peer", "client_id", "device", "device_type", "topic", "qos", "retain",
 * "size", "reason_code", "rule", "detail" and "observed" (true) appear only
 * when set, except that a publish always has qos, retain and size and a
 * subscribe always has qos. Text is escaped for JSON and invalid UTF-8
 * bytes become U+FFFD, so the output is always valid JSON. */
int vigil_event_to_json(const struct vigil_event *ev, char *out, size_t cap);

#endif
