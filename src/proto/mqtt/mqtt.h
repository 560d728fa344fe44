/* MQTT 3.1.1 and 5.0 codec: pure functions over byte buffers, no I/O and no
 * global state, shared by the broker, the client tools and passive analysis.
 *
 * Decoding is zero-copy: every struct mqtt_str in a decoded packet points
 * into the input buffer, which must outlive the packet. The decoder checks
 * every rule of the specification that can be checked on one packet alone
 * (fixed-header flags, lengths, UTF-8, property identifiers and duplicates,
 * reserved bits, packet identifier 0, wildcards in PUBLISH topics, ...).
 * Rules that need session state (topic alias range, Receive Maximum, packet
 * order) are checked by the broker. */
#ifndef VIGIL_PROTO_MQTT_H
#define VIGIL_PROTO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

enum mqtt_packet_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* Protocol level byte of CONNECT. */
enum mqtt_version {
    MQTT_V31 = 3, /* accepted only to reject it with the right CONNACK */
    MQTT_V311 = 4,
    MQTT_V5 = 5,
};

/* MQTT 5.0 reason codes (section 2.4). */
enum mqtt_reason {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1.1 CONNACK return codes. */
enum mqtt_v311_connack {
    MQTT_V311_ACCEPTED = 0,
    MQTT_V311_BAD_VERSION = 1,
    MQTT_V311_ID_REJECTED = 2,
    MQTT_V311_SERVER_UNAVAILABLE = 3,
    MQTT_V311_BAD_USER_OR_PASSWORD = 4,
    MQTT_V311_NOT_AUTHORIZED = 5,
};

/* Property identifiers (MQTT 5.0 section 2.2.2.2). */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
    MQTT_PROP_SESSION_EXPIRY = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTH_METHOD = 0x15,
    MQTT_PROP_AUTH_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_PROP_WILL_DELAY = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_PROP_RESPONSE_INFO = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAX = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAX_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit for property id in struct mqtt_props.present: MQTT_PROP_BIT(MQTT_PROP_...).
 * All property ids are below 64. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))

/* Largest value of a Variable Byte Integer, and so of Remaining Length. */
#define MQTT_VBI_MAX 268435455u
/* Subscription identifiers kept per decoded or encoded PUBLISH. */
#define MQTT_MAX_SUB_IDS 32

/* A length-prefixed string or binary value; not NUL-terminated. */
struct mqtt_str {
    const uint8_t *p;
    uint32_t len;
};

/* Properties of one packet. Only fields whose bit is set in present are valid.
 * User properties are read from raw with mqtt_user_prop_next(). */
struct mqtt_props {
    uint64_t present;
    struct mqtt_str raw;      /* the whole property block (decoding only) */
    uint32_t n_user;          /* number of user properties in raw */

    uint8_t payload_format;
    uint32_t message_expiry;
    struct mqtt_str content_type;
    struct mqtt_str response_topic;
    struct mqtt_str correlation_data;
    uint32_t sub_ids[MQTT_MAX_SUB_IDS];
    uint8_t n_sub_ids;
    uint32_t session_expiry;
    struct mqtt_str assigned_client_id;
    uint16_t server_keep_alive;
    struct mqtt_str auth_method;
    struct mqtt_str auth_data;
    uint8_t request_problem_info;
    uint32_t will_delay;
    uint8_t request_response_info;
    struct mqtt_str response_info;
    struct mqtt_str server_reference;
    struct mqtt_str reason_string;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t max_qos;
    uint8_t retain_available;
    uint32_t max_packet_size;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;

    /* Encoding only: property bytes (already in wire format, identifiers
     * included) appended after the fields above. The broker uses this to pass
     * user properties, content type and the like through unchanged. */
    struct mqtt_str verbatim;
};

struct mqtt_user_prop {
    struct mqtt_str name;
    struct mqtt_str value;
};

struct mqtt_connect {
    struct mqtt_str protocol_name;
    uint8_t version;          /* enum mqtt_version */
    uint8_t flags;            /* the raw Connect Flags byte */
    bool clean_start;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keep_alive;
    struct mqtt_str client_id;
    struct mqtt_props will_props;
    struct mqtt_str will_topic;
    struct mqtt_str will_payload;
    struct mqtt_str username;
    struct mqtt_str password;
};

struct mqtt_publish {
    uint8_t qos;
    bool retain;
    bool dup;
    struct mqtt_str topic;    /* may be empty in v5 when a topic alias is set */
    struct mqtt_str payload;
};

/* One entry of a SUBSCRIBE payload. options holds the Subscription Options
 * byte (v3.1.1: the requested QoS only). */
struct mqtt_sub_entry {
    struct mqtt_str filter;
    uint8_t options;
};

#define MQTT_SUBOPT_QOS(o) ((o) & 0x03)
#define MQTT_SUBOPT_NO_LOCAL 0x04
#define MQTT_SUBOPT_RAP 0x08
#define MQTT_SUBOPT_RH(o) (((o) >> 4) & 0x03)

/* A decoded packet. packet_id, reason_code and props apply where the packet
 * type has them. For SUBSCRIBE, UNSUBSCRIBE, SUBACK and UNSUBACK, entries
 * holds the validated payload, read with mqtt_sub_next(), mqtt_unsub_next()
 * or directly as reason-code bytes; n_entries counts them. */
struct mqtt_packet {
    uint8_t type;             /* enum mqtt_packet_type */
    uint8_t flags;            /* low nibble of the fixed header */
    uint16_t packet_id;
    uint8_t reason_code;      /* v5 reason code, or the v3.1.1 CONNACK return code */
    bool session_present;     /* CONNACK */
    struct mqtt_props props;
    struct mqtt_connect connect;
    struct mqtt_publish publish;
    struct mqtt_str entries;
    uint32_t n_entries;
};

/* Why a packet was rejected. rule names the violated requirement in the
 * form of the specification's conformance statements, for example
 * "MQTT-3.3.2-2" (v5) or "MQTT-3.1.1:3.3.2-2"; text explains it in a short
 * English phrase. Both are static strings. */
struct mqtt_error {
    uint8_t reason_code;      /* v5 reason code to send in DISCONNECT or CONNACK */
    const char *rule;
    const char *text;
};

/* Reads the fixed header at buf. On VIGIL_OK sets *header_len (2 to 5) and
 * *remaining. Returns VIGIL_ERR_AGAIN when more bytes are needed and
 * VIGIL_ERR_PROTOCOL for an invalid Variable Byte Integer (err filled). */
vigil_err mqtt_frame(const uint8_t *buf, size_t len, size_t *header_len, uint32_t *remaining,
                     struct mqtt_error *err);

/* Decodes one complete packet of exactly len bytes (fixed header included).
 * version is the session's protocol level (MQTT_V311 or MQTT_V5); it is
 * ignored for CONNECT, whose own level decides. is_server selects the
 * direction: true decodes what a client sends (and rejects packets a client
 * must never send, such as CONNACK); false decodes what a server sends.
 * Returns VIGIL_OK, or VIGIL_ERR_PROTOCOL with err filled. */
vigil_err mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, bool is_server,
                      struct mqtt_packet *out, struct mqtt_error *err);

/* Iterators over the payload validated by mqtt_decode(). *cursor starts at
 * entries.p; each returns false when no entry is left. */
bool mqtt_sub_next(const struct mqtt_packet *pkt, const uint8_t **cursor,
                   struct mqtt_sub_entry *out);
bool mqtt_unsub_next(const struct mqtt_packet *pkt, const uint8_t **cursor, struct mqtt_str *out);
bool mqtt_user_prop_next(const struct mqtt_props *props, const uint8_t **cursor,
                         struct mqtt_user_prop *out);

/* Encodes pkt for the given version into out (capacity cap). Returns the
 * encoded length, or 0 when it does not fit or pkt is invalid for that
 * version. Properties are written only for v5. For SUBACK and UNSUBACK,
 * entries holds the reason-code bytes; for SUBSCRIBE and UNSUBSCRIBE it holds
 * the already encoded payload (see mqtt_encode_sub_entry()). */
size_t mqtt_encode(const struct mqtt_packet *pkt, uint8_t version, uint8_t *out, size_t cap);
/* Returns the number of bytes mqtt_encode() would write. */
size_t mqtt_encoded_size(const struct mqtt_packet *pkt, uint8_t version);

/* Appends one SUBSCRIBE payload entry (v3.1.1: the options byte carries the
 * QoS only) or one UNSUBSCRIBE filter (options ignored, pass -1) to out.
 * Returns the bytes written, 0 when it does not fit. */
size_t mqtt_encode_sub_entry(const char *filter, int options, uint8_t *out, size_t cap);

/* Encodes only the forwardable PUBLISH properties of props (payload format,
 * content type, response topic, correlation data, user properties) in wire
 * format, for storing with a message and passing on via props.verbatim.
 * Returns the length, 0 when there are none or they do not fit. */
size_t mqtt_encode_forward_props(const struct mqtt_props *props, uint8_t *out, size_t cap);

/* Checks UTF-8 as MQTT requires: well-formed, no U+0000, no surrogates.
 * U+0001..U+001F and U+007F..U+009F and non-characters are allowed by
 * the protocol; mqtt_utf8_has_control() reports them for the security engine. */
bool mqtt_utf8_valid(const uint8_t *p, size_t len);
bool mqtt_utf8_has_control(const uint8_t *p, size_t len);

/* Human-readable packet type name ("CONNECT", ...), "RESERVED" for 0 and 16+. */
const char *mqtt_type_name(unsigned type);

#endif
