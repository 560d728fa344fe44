/* CoAP front end (RFC 7252, Observe of RFC 7641, block-wise transfers of
 * RFC 7959): the state its files share. A client is identified by its UDP
 * source address (struct udp_peer). Its struct coap_peer is udp_peer.user
 * and embeds the struct gw_client through which it reaches the broker. The first half of this header is pure code (SenML, CBOR,
 * block-wise reassembly, deduplication, timers) that the unit tests and
 * fuzzers call without a hub. Everything runs on the I/O loop thread. */
#ifndef VIGIL_FRONT_COAP_INTERNAL_H
#define VIGIL_FRONT_COAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "broker/gateway.h"
#include "broker/udp.h"
#include "core/buf.h"
#include "proto/coap/coap.h"

/* Transmission parameters of RFC 7252 section 4.8, with the default values. */
#define COAP_ACK_TIMEOUT_MS 2000u
#define COAP_ACK_RANDOM_PERMILLE 1500u /* ACK_RANDOM_FACTOR 1.5 */
#define COAP_MAX_RETRANSMIT 4u
/* Derived times of RFC 7252 section 4.8.2. */
#define COAP_EXCHANGE_LIFETIME_MS 247000u
#define COAP_NON_LIFETIME_MS 145000u

/* Content-Format numbers of the CoAP registry. */
#define COAP_FORMAT_TEXT 0u
#define COAP_FORMAT_LINK 40u        /* application/link-format, RFC 6690 */
#define COAP_FORMAT_OCTETS 42u
#define COAP_FORMAT_JSON 50u
#define COAP_FORMAT_SENML_JSON 110u /* RFC 8428 */
#define COAP_FORMAT_SENML_CBOR 112u
#define COAP_FORMAT_NONE 0xFFFFFFFFu /* no Content-Format option */

/* Largest block size the front end uses (SZX 6, 1024 bytes): it keeps a
 * block with its header inside the 1152 bytes a DTLS record may carry. */
#define COAP_BLOCK_SZX_MAX 6u
/* Joined Uri-Path of a request, without the leading '/'. */
#define COAP_PATH_MAX 1100u
/* A request body reassembled from Block1 blocks is dropped after this
 * time without a further block. */
#define COAP_BLOCK1_TIMEOUT_MS 60000u

/* ---- SenML (coap_senml.c, coap_senml_cbor.c; pure) ---- */

#define SENML_MAX_RECORDS 64u
/* Resolved name, NUL included: room for a device id as base name and a
 * metric, the names this front end writes itself. */
#define SENML_NAME_MAX 160u
#define SENML_METRIC_MAX 63u  /* bytes of a metric, the last topic level */
#define SENML_UNIT_MAX 24u
#define SENML_TEXT_MAX 256u   /* string value, or a data value as base64url */
/* SenML times below 2^28 are relative to now (RFC 8428 section 4.5.3). */
#define SENML_RELATIVE_LIMIT 268435456.0
/* Resolved times from this one on (about the year 5138) are rejected, so
 * that every accepted time prints as a JSON integer any reader takes. */
#define SENML_TIME_MAX 1e11

enum senml_kind {
    SENML_NONE = 0, /* only a sum */
    SENML_NUMBER,   /* "v" */
    SENML_STRING,   /* "vs" */
    SENML_BOOL,     /* "vb" */
    SENML_DATA,     /* "vd", kept as base64url text */
};

/* One record after base values were applied (RFC 8428 section 4.6). */
struct senml_record {
    char name[SENML_NAME_MAX]; /* base name + name */
    char unit[SENML_UNIT_MAX]; /* "" when none */
    double time;               /* absolute, Unix seconds */
    uint8_t kind;              /* enum senml_kind */
    bool boolean;
    bool has_sum;
    double value;              /* SENML_NUMBER, base value added */
    double sum;                /* base sum added */
    char text[SENML_TEXT_MAX]; /* SENML_STRING and SENML_DATA */
};

/* Records of one pack; recs (capacity cap) belongs to the caller. */
struct senml_pack {
    struct senml_record *recs;
    size_t n;
    size_t cap;
};

/* The fields of one record as a parser read them, before base values are
 * applied. Strings point into the parser's input and are not
 * NUL-terminated. A "vd" is base64url text (the CBOR reader encodes the
 * bytes it reads). */
struct senml_fields {
    const char *bn, *bu, *n, *u, *vs, *vd;
    size_t bn_len, bu_len, n_len, u_len, vs_len, vd_len;
    bool has_bn, has_bt, has_bu, has_bv, has_bs, has_bver;
    bool has_n, has_u, has_v, has_vs, has_vb, has_vd, has_s, has_t;
    bool vb;
    double bt, bv, bs, v, s, t;
    int64_t bver;
};

/* Base values carried from record to record of one pack. */
struct senml_base {
    char bn[SENML_NAME_MAX];
    char bu[SENML_UNIT_MAX];
    double bt, bv, bs;
    bool has_bv, has_bs;
};

/* Applies the base values of f to base, then resolves f into out. Sets
 * *skip for a record of base fields alone, which carries no measurement. */
vigil_err senml_resolve(struct senml_base *base, const struct senml_fields *f, double now_s,
                        struct senml_record *out, bool *skip, const char **why);

/* Parses a SenML JSON (RFC 8428 section 5) or CBOR (section 6) pack into
 * pack->recs. now_s (Unix seconds) resolves relative and missing times.
 * Returns VIGIL_OK, VIGIL_ERR_INVALID for a payload that is no valid pack
 * (with *why a static reason), or VIGIL_ERR_LIMIT when it has more than
 * pack->cap records or a field longer than its maximum above. */
vigil_err senml_parse_json(const uint8_t *payload, size_t len, double now_s,
                           struct senml_pack *pack, const char **why);
vigil_err senml_parse_cbor(const uint8_t *payload, size_t len, double now_s,
                           struct senml_pack *pack, const char **why);

/* Reads a text/plain payload that is a decimal number into a record named
 * metric. A metric of the vital-sign table (src/sim/vitals.h) is taken in
 * its clinical unit and converted to its SenML unit, as `vigil sim`
 * publishes it. Returns VIGIL_ERR_INVALID when the payload is no finite
 * number. */
vigil_err senml_from_text(const uint8_t *payload, size_t len, const char *metric, double now_s,
                          struct senml_record *out, const char **why);

/* Gives a number record of a known vital sign without a unit the SenML
 * unit `vigil sim` uses for it. */
void senml_default_unit(struct senml_record *r, const char *metric);

/* Returns the metric a resolved name stands for: the part after its last
 * '/' or ':' ("mon-0042/heart_rate" gives "heart_rate"), with *len set;
 * *len is 0 when nothing follows. */
const char *senml_metric(const char *name, size_t *len);

/* True for a metric usable as one topic level and SenML name: 1 to 63
 * bytes of letters, digits, '_', '-' and '.'. */
bool senml_metric_valid(const char *metric, size_t len);

/* Formats r as the one-record pack `vigil sim` publishes:
 * [{"bn":"<device>/","bt":<time>,"n":"<metric>","u":"<unit>","v":<value>}]
 * with "u" left out when r has no unit, "vs", "vb" or "vd" in place of "v"
 * for those kinds, and "s" after the value when r has a sum. Returns the
 * length (NUL excluded), or 0 when out is too small. */
size_t senml_format_record(char *out, size_t cap, const char *device, const char *metric,
                           const struct senml_record *r);

/* True when s is base64url (RFC 4648 section 5, padding optional) that
 * decodes to at most SENML_TEXT_MAX bytes. */
bool senml_base64url_valid(const char *s, size_t len);

/* Converts a SenML JSON pack to SenML CBOR with the labels of RFC 8428
 * table 6, for a client that sent Accept 112. Returns the length, or 0
 * when json is no pack this front end can convert or out is too small. */
size_t senml_json_to_cbor(const uint8_t *json, size_t len, uint8_t *out, size_t cap);

/* ---- CBOR (coap_cbor.c; pure) ---- */

/* Nesting allowed while skipping an unknown value, and the cap on items of
 * one array or map, so a hostile payload cannot make the reader recurse or
 * loop without bound. */
#define CBOR_MAX_DEPTH 8u
#define CBOR_MAX_ITEMS 1024u

enum cbor_type {
    CBOR_UINT,
    CBOR_NEGINT, /* value -1 - u */
    CBOR_BYTES,
    CBOR_TEXT,
    CBOR_ARRAY,
    CBOR_MAP,
    CBOR_FALSE,
    CBOR_TRUE,
    CBOR_NULL,
    CBOR_UNDEFINED,
    CBOR_FLOAT,
};

/* One data item header. For bytes and text, data points to the len bytes
 * in the input. For an array or map, len counts the items (pairs for a
 * map) that follow. */
struct cbor_item {
    uint8_t type;  /* enum cbor_type */
    uint64_t u;    /* unsigned value, or the argument of a negative one */
    double f;      /* CBOR_FLOAT */
    uint64_t len;
    const uint8_t *data;
};

struct cbor_reader {
    const uint8_t *p;
    const uint8_t *end;
};

/* Reads the next item header (and a string's bytes). Tags are skipped.
 * Returns VIGIL_ERR_INVALID for truncated input, reserved additional
 * information, indefinite lengths or a simple value other than
 * false/true/null/undefined. */
vigil_err cbor_read(struct cbor_reader *r, struct cbor_item *it);
/* Skips one whole item including nested ones, at most CBOR_MAX_DEPTH deep. */
vigil_err cbor_skip(struct cbor_reader *r);
/* True when it is an integer; *out is its value (false when it does not fit). */
bool cbor_int(const struct cbor_item *it, int64_t *out);
/* True when it is an integer or a float; *out is its value. */
bool cbor_number(const struct cbor_item *it, double *out);

/* Writers; each returns false when out (at *n, capacity cap) is full. */
bool cbor_put_head(uint8_t *out, size_t cap, size_t *n, uint8_t major, uint64_t arg);
bool cbor_put_int(uint8_t *out, size_t cap, size_t *n, int64_t v);
bool cbor_put_text(uint8_t *out, size_t cap, size_t *n, const char *s, size_t len);
bool cbor_put_double(uint8_t *out, size_t cap, size_t *n, double v);

/* ---- block-wise transfers (coap_block.c; pure) ---- */

/* A request body being reassembled from Block1 blocks (RFC 7959 section
 * 2.5). One per peer: a new block 0 replaces a sequence in progress. */
struct coap_reassembly {
    bool active;
    uint8_t code;              /* request method */
    char path[COAP_PATH_MAX];  /* the sequence belongs to this Uri-Path */
    uint64_t last_ms;          /* time of the last block */
    struct vigil_buf body;     /* limit: the maximum body size */
};

enum coap_block1_status {
    COAP_B1_CONTINUE,   /* send 2.31 Continue */
    COAP_B1_DONE,       /* body complete in r->body */
    COAP_B1_INCOMPLETE, /* 4.08: a block out of sequence */
    COAP_B1_TOO_LARGE,  /* 4.13 with Size1 */
    COAP_B1_BAD,        /* 4.00: block size and payload length disagree */
    COAP_B1_NOMEM,      /* 5.03 */
};

/* Adds one Block1 block of a request to r. A block already added (the
 * same offset and length as the last one) is accepted again without
 * copying. size1 is the Size1 option (0 when absent). On every status but
 * CONTINUE and DONE the sequence is dropped. */
enum coap_block1_status coap_reassembly_feed(struct coap_reassembly *r, const char *path,
                                             uint8_t code, const struct coap_block *b,
                                             const uint8_t *payload, size_t len,
                                             uint32_t max_body, uint32_t size1, uint64_t now_ms);
void coap_reassembly_reset(struct coap_reassembly *r);
bool coap_reassembly_expired(const struct coap_reassembly *r, uint64_t now_ms);

/* Selects the block of a representation of len bytes that req requests
 * (NULL: none requested), with szx capped at COAP_BLOCK_SZX_MAX. Sets *out,
 * *off and *n. Returns false when req->num lies past the end. */
bool coap_block2_slice(size_t len, const struct coap_block *req, struct coap_block *out,
                       size_t *off, size_t *n);

/* ---- deduplication (coap_dedup.c; pure) ---- */

/* Message IDs remembered per peer, and the bytes of cached responses. */
#define COAP_DEDUP_SLOTS 32u
#define COAP_DEDUP_BYTES 16384u

/* A request seen from the peer. A CON request keeps its response until
 * EXCHANGE_LIFETIME so a retransmission gets the same bytes again. */
struct coap_dedup_entry {
    bool used;
    uint8_t type;          /* COAP_CON or COAP_NON */
    uint16_t mid;
    uint64_t at_ms;
    uint8_t *response;     /* owned; NULL while the response is pending */
    uint16_t response_len;
};

struct coap_dedup {
    struct coap_dedup_entry slots[COAP_DEDUP_SLOTS];
    size_t bytes;          /* response bytes held */
};

/* Returns the entry of mid, or NULL; expired entries are dropped first. */
struct coap_dedup_entry *coap_dedup_find(struct coap_dedup *d, uint16_t mid, uint64_t now_ms);
/* Remembers mid, evicting the oldest entry when every slot is in use. */
struct coap_dedup_entry *coap_dedup_add(struct coap_dedup *d, uint16_t mid, uint8_t type,
                                        uint64_t now_ms);
/* Stores a copy of the response sent for mid. Older responses are dropped
 * while the total would exceed COAP_DEDUP_BYTES; a response that cannot be
 * stored leaves the entry without one. */
void coap_dedup_set_response(struct coap_dedup *d, uint16_t mid, const uint8_t *resp,
                             size_t len);
void coap_dedup_expire(struct coap_dedup *d, uint64_t now_ms);
void coap_dedup_free(struct coap_dedup *d);

/* ---- timers and helpers (coap_util.c; pure) ---- */

/* The first retransmission timeout for a random 32-bit value:
 * ACK_TIMEOUT * (1 + r * (ACK_RANDOM_FACTOR - 1)), in [2000, 3000) ms. */
uint32_t coap_initial_timeout_ms(uint32_t random);
/* The Observe value after seq: 24 bits, wrapping (RFC 7641 section 4.4). */
uint32_t coap_observe_next(uint32_t seq);
/* Guesses the Content-Format of a stored payload: 110 for a JSON array
 * (SenML), 0 for other UTF-8 text, 42 for anything else. */
uint16_t coap_guess_format(const uint8_t *payload, size_t len);
/* Writes the RFC 6690 link format of the resources into out; returns the
 * length or 0 when out is too small. */
size_t coap_core_links(char *out, size_t cap);
/* A 4-byte ETag for a representation (FNV-1a of its bytes). */
uint32_t coap_etag(const uint8_t *payload, size_t len);
/* True when the request path names a topic below "ps": writes the topic
 * (its levels joined with '/') into out and its length into *len. */
bool coap_ps_topic(const char *path, size_t path_len, const char **topic, size_t *len);

/* ---- the front end (coap_front.c, coap_message.c, coap_request.c,
 * coap_observe.c) ---- */

/* Observations per peer, and notifications waiting for the outstanding
 * confirmable one to be acknowledged. */
#define COAP_MAX_OBSERVATIONS 64u
#define COAP_NOTIFY_QUEUE 32u
/* At least every this many notifications of an observation one is
 * confirmable. RFC 7641 section 4.5 requires a check of the client at
 * least every 24 hours, and a count meets that for any message rate. */
#define COAP_CON_EVERY 20u
/* Max-Age of a notification whose message does not expire. */
#define COAP_MAX_AGE_DEFAULT 60u
/* Non-confirmable notifications remembered so that a Reset to one ends
 * its observation. */
#define COAP_RECENT_NON 16u
/* Front-end tick: idle peers, expired reassemblies and cache entries. */
#define COAP_TICK_MS 1000u
/* Retransmission timer resolution. */
#define COAP_RETX_TICK_MS 100u
/* A peer's malformed datagrams and failed logins share the event budget
 * of its client; peers without state get this many events a second. */
#define COAP_PEER_EVENTS_PER_S 20u

struct coap_front;
struct coap_peer;

/* An Observe registration: a token of the peer bound to a topic or filter. */
struct coap_observation {
    uint8_t token[COAP_MAX_TOKEN];
    uint8_t token_len;
    uint32_t sub_id;      /* shared by observations of the same filter; 0 = none */
    char *filter;         /* owned, NUL-terminated topic or filter */
    char *path;           /* owned Uri-Path, for the requests of later blocks */
    uint16_t accept;      /* requested Content-Format, 0xFFFF for any */
    uint8_t szx;          /* Block2 size of the registration */
    uint32_t since_con;   /* notifications sent since the last confirmable one */
};

/* A notification waiting to be sent; obs is NULL once its observation
 * ended. */
struct coap_notify {
    struct coap_observation *obs;
    struct msg *msg;      /* referenced */
    uint8_t qos;
};

/* The confirmable notification in flight to the peer (NSTART 1). */
struct coap_outstanding {
    bool active;
    uint16_t mid;
    uint8_t retries;
    uint32_t timeout_ms;
    uint64_t due_ms;
    struct coap_observation *obs; /* NULL once the observation ended */
    bool check;                   /* sent by coap_observe_check */
    uint8_t *bytes;               /* owned datagram */
    size_t len;
};

/* A response waiting for the store (gw_when_durable). It outlives its
 * peer when the peer closes first: peer is then NULL. */
struct coap_durable {
    struct coap_front *front;
    struct coap_peer *peer;
    struct coap_durable *next;    /* in the peer's list */
    uint16_t mid;
    uint8_t token[COAP_MAX_TOKEN];
    uint8_t token_len;
    uint8_t code;                 /* response code */
    bool has_block1;
    struct coap_block block1;     /* echoed in the response */
};

/* A non-confirmable notification recently sent, so that a Reset to it
 * ends its observation. */
struct coap_recent {
    uint16_t mid;
    struct coap_observation *obs;
};

struct coap_peer {
    struct coap_front *front;
    struct udp_peer *udp;
    struct gw_client client;
    bool closing;
    bool hold_notify;             /* a registration response is not sent yet */
    bool block_reported;          /* rate_limit event sent for the current block */
    const char *close_why;        /* static; reason of a close this front end began */
    uint64_t checked_ms;          /* last coap_observe_check */
    uint16_t next_mid;
    uint32_t observe_seq;
    uint32_t next_sub_id;
    struct coap_dedup dedup;
    struct coap_reassembly block1;
    /* Last representation sent in blocks, for requests of its later blocks. */
    char *b2_path;                /* owned */
    uint8_t *b2_body;             /* owned */
    size_t b2_len;
    uint16_t b2_format;
    uint32_t b2_etag;
    struct coap_observation *obs[COAP_MAX_OBSERVATIONS];
    size_t n_obs;
    struct coap_notify queue[COAP_NOTIFY_QUEUE]; /* ring */
    size_t q_head, q_len;
    struct coap_outstanding con;
    struct coap_recent recent[COAP_RECENT_NON];
    size_t recent_next;
    struct coap_durable *durable;
    struct coap_peer *retx_next, *retx_prev; /* while con.active */
    bool in_retx;
};

struct coap_front {
    struct gw_front base;         /* first, so the hub's struct gw_front * converts back */
    struct hub *hub;
    const struct config_listener *listener;
    struct udp_endpoint *ep;      /* NULL once closing */
    struct udp_handler handler;
    bool dtls;
    bool closing;
    uv_timer_t tick;
    uv_timer_t retx;
    unsigned handles_open;
    bool retx_running;
    uint32_t n_peers;             /* peers with state */
    uint32_t n_logged_in;         /* of those, logged-in clients */
    uint32_t n_durable;           /* struct coap_durable not yet called back */
    struct coap_peer *retx_head;
    uint64_t rng;
    /* Budget of events about peers that have no state. */
    uint64_t peer_ev_window_ms;
    uint32_t peer_ev_count;
};

/* A response being built: header fields, options and the payload. Option
 * values of numbers and blocks live in optbuf; the token and payload are
 * borrowed. */
struct coap_reply {
    struct coap_msg msg;
    uint8_t optbuf[64];
    size_t optlen;
};

/* A representation to send, with the options that describe it. */
struct coap_repr {
    const uint8_t *body;
    size_t len;
    uint32_t format;              /* COAP_FORMAT_NONE: no Content-Format */
    bool has_max_age, has_observe, has_etag;
    uint32_t max_age, observe, etag;
};

/* coap_front.c */
uint64_t coap_now_ms(const struct coap_front *f);
uint32_t coap_random(struct coap_front *f);
/* Emits an event about the peer, through its client when it has state. */
void coap_emit(struct coap_front *f, struct udp_peer *p, enum vigil_event_type type,
               const char *rule, const char *detail, uint32_t size);
/* Returns the state of p, created on first use; NULL without memory. */
struct coap_peer *coap_peer_get(struct coap_front *f, struct udp_peer *p);
/* Logs the client in (DTLS identity, or anonymous where the listener
 * allows it) unless it is; false when it is not logged in. */
bool coap_peer_login(struct coap_peer *cp);
/* Closes the peer; cp is freed before this returns. */
void coap_peer_close(struct coap_peer *cp, const char *why);
/* Starts the retransmission timer when it is not running. */
void coap_retx_arm(struct coap_front *f);
/* Frees f once it is closing and nothing refers to it any more. */
void coap_front_release(struct coap_front *f);

/* coap_message.c */
void coap_datagram(void *ctx, struct udp_peer *p, const uint8_t *data, size_t len);
/* Starts a reply to req: an ACK for a CON, a NON otherwise, same token. */
void coap_reply_init(struct coap_reply *r, struct coap_peer *cp, const struct coap_msg *req,
                     uint8_t code);
void coap_reply_init_raw(struct coap_reply *r, uint8_t type, uint16_t mid, const uint8_t *token,
                         uint8_t token_len, uint8_t code);
void coap_reply_uint(struct coap_reply *r, uint16_t num, uint32_t v);
void coap_reply_block(struct coap_reply *r, uint16_t num, const struct coap_block *b);
void coap_reply_bytes(struct coap_reply *r, uint16_t num, const uint8_t *v, uint32_t len);
/* Encodes and sends r; a piggybacked response is kept for duplicates. */
void coap_reply_send(struct coap_peer *cp, struct coap_reply *r);
/* Sends code with a diagnostic payload (may be NULL). */
void coap_reply_error(struct coap_peer *cp, const struct coap_msg *req, uint8_t code,
                      const char *diagnostic);
uint16_t coap_next_mid(struct coap_peer *cp);

/* coap_request.c */
void coap_handle_request(struct coap_peer *cp, const struct coap_msg *req);
void coap_durable_done(void *arg, vigil_err rc);

/* coap_response.c */
/* Adds the options and payload of rep to r, as block req_b2 (NULL for the
 * whole representation when it fits one block). Returns false when req_b2
 * lies past the end. */
bool coap_fill_representation(struct coap_peer *cp, struct coap_reply *r, const char *path,
                              const struct coap_repr *rep, const struct coap_block *req_b2);
/* 2.05 with body (in blocks when large) and an ETag. */
void coap_send_body(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                    const uint8_t *body, size_t len, uint16_t format);
/* 2.05 with block b2 of the peer's last large representation. */
void coap_send_cached_block(struct coap_peer *cp, const struct coap_msg *req,
                            const struct coap_block *b2);
/* 2.05 (or 2.03 Valid for a matching ETag) with the payload of m, NULL
 * meaning an empty representation; with Observe seq when observe. */
void coap_send_message(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                       const struct msg *m, bool observe, uint32_t seq);
/* Max-Age of m: the time to its expiry, else COAP_MAX_AGE_DEFAULT. */
uint32_t coap_max_age(const struct msg *m);
/* Applies Accept to rep, converting SenML JSON to CBOR into *converted
 * (owned by the caller, NULL when not converted); false for 4.06. */
bool coap_negotiate(uint32_t accept, struct coap_repr *rep, uint8_t **converted);

/* coap_observe.c */
extern const struct gw_client_ops coap_client_ops;
/* Registers (observe 0) or deregisters (observe 1) an observation of
 * filter for the request's token, and sends the response. */
void coap_observe_request(struct coap_peer *cp, const struct coap_msg *req, const char *path,
                          const char *filter, size_t flen, uint32_t observe);
/* Sends queued notifications while NSTART allows. */
void coap_notify_pump(struct coap_peer *cp);
void coap_observe_ack(struct coap_peer *cp, uint16_t mid);
void coap_observe_reset(struct coap_peer *cp, uint16_t mid);
void coap_observe_retx(struct coap_front *f, uint64_t now_ms);
/* Sends a confirmable notification to a peer with observations, unless
 * one is in flight, to learn whether it is still there. */
void coap_observe_check(struct coap_peer *cp);
/* Ends every observation and drops queued and in-flight notifications. */
void coap_observe_free_all(struct coap_peer *cp);

#endif
