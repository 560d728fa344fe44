/* MQTT-SN 1.2 codec (MQTT For Sensor Networks Protocol Specification
 * Version 1.2, IBM, November 2013): pure functions over one UDP datagram,
 * no I/O and no global state.
 *
 * Decoding is zero-copy: every struct sn_str of a decoded message points
 * into the input buffer, which must outlive the message. One datagram
 * carries exactly one message, so the Length field must equal the datagram
 * length, except for an Encapsulated message, whose Length covers only the
 * encapsulation header and whose inner message follows it.
 *
 * Rule names in struct sn_error.rule are "MQTT-SN-1.2:<section>" with the
 * section of the 1.2 specification that states the violated format. */
#ifndef VIGIL_PROTO_MQTTSN_H
#define VIGIL_PROTO_MQTTSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* MsgType values (section 5.2.2). */
enum sn_msg_type {
    SN_ADVERTISE = 0x00,
    SN_SEARCHGW = 0x01,
    SN_GWINFO = 0x02,
    SN_CONNECT = 0x04,
    SN_CONNACK = 0x05,
    SN_WILLTOPICREQ = 0x06,
    SN_WILLTOPIC = 0x07,
    SN_WILLMSGREQ = 0x08,
    SN_WILLMSG = 0x09,
    SN_REGISTER = 0x0A,
    SN_REGACK = 0x0B,
    SN_PUBLISH = 0x0C,
    SN_PUBACK = 0x0D,
    SN_PUBCOMP = 0x0E,
    SN_PUBREC = 0x0F,
    SN_PUBREL = 0x10,
    SN_SUBSCRIBE = 0x12,
    SN_SUBACK = 0x13,
    SN_UNSUBSCRIBE = 0x14,
    SN_UNSUBACK = 0x15,
    SN_PINGREQ = 0x16,
    SN_PINGRESP = 0x17,
    SN_DISCONNECT = 0x18,
    SN_WILLTOPICUPD = 0x1A,
    SN_WILLTOPICRESP = 0x1B,
    SN_WILLMSGUPD = 0x1C,
    SN_WILLMSGRESP = 0x1D,
    SN_ENCAPSULATED = 0xFE,
};

/* TopicIdType of the Flags field (section 5.3.4); 0b11 is reserved. */
enum sn_topic_id_type {
    SN_TOPIC_NORMAL = 0,
    SN_TOPIC_PREDEFINED = 1,
    SN_TOPIC_SHORT = 2,
};

/* ReturnCode values (section 5.3.10); 0x04..0xFF are reserved. */
enum sn_return_code {
    SN_RC_ACCEPTED = 0x00,
    SN_RC_CONGESTION = 0x01,
    SN_RC_INVALID_TOPIC_ID = 0x02,
    SN_RC_NOT_SUPPORTED = 0x03,
};

#define SN_PROTOCOL_ID 0x01
/* ClientId is 1 to 23 characters (section 5.3.1). */
#define SN_MAX_CLIENT_ID 23
/* Largest message the 3-byte Length form can express. */
#define SN_MAX_LENGTH 65535u

/* A string or binary field; not NUL-terminated. */
struct sn_str {
    const uint8_t *p;
    uint16_t len;
};

/* The Flags byte (section 5.3.4) split into its fields. Every bit of the
 * byte maps to one field, so decoding and encoding round-trip exactly. */
struct sn_flags {
    bool dup;
    int8_t qos;            /* 0, 1, 2, or -1 (0b11, PUBLISH only) */
    bool retain;
    bool will;
    bool clean_session;
    uint8_t topic_id_type; /* enum sn_topic_id_type */
};

/* One message. Which fields are meaningful depends on type; the comment of
 * each field lists the types that carry it. */
struct sn_msg {
    uint8_t type;             /* enum sn_msg_type */
    bool long_length;         /* the 3-byte Length form was used (or is wanted) */
    struct sn_flags flags;    /* CONNECT, WILLTOPIC, WILLTOPICUPD, PUBLISH, SUBSCRIBE,
                                 SUBACK, UNSUBSCRIBE */
    uint8_t gw_id;            /* ADVERTISE, GWINFO */
    uint8_t radius;           /* SEARCHGW, ENCAPSULATED (Ctrl bits 0-1) */
    uint8_t protocol_id;      /* CONNECT */
    uint8_t return_code;      /* CONNACK, REGACK, PUBACK, SUBACK, WILLTOPICRESP, WILLMSGRESP */
    bool has_duration;        /* DISCONNECT: the optional Duration is present */
    uint16_t duration;        /* ADVERTISE, CONNECT, DISCONNECT (seconds) */
    uint16_t topic_id;        /* REGISTER, REGACK, PUBLISH, PUBACK, SUBACK, and SUBSCRIBE and
                                 UNSUBSCRIBE with a predefined id or short name */
    uint16_t msg_id;          /* REGISTER, REGACK, PUBLISH, PUBACK, PUBCOMP, PUBREC, PUBREL,
                                 SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK */
    bool empty_will;          /* WILLTOPIC, WILLTOPICUPD without Flags and WillTopic */
    struct sn_str client_id;  /* CONNECT; PINGREQ (len 0 when absent) */
    struct sn_str topic_name; /* REGISTER, WILLTOPIC, WILLTOPICUPD, and SUBSCRIBE and
                                 UNSUBSCRIBE with a normal topic name */
    struct sn_str data;       /* PUBLISH Data, WILLMSG and WILLMSGUPD WillMsg */
    struct sn_str gw_add;     /* GWINFO (len 0 when sent by a gateway) */
    struct sn_str node_id;    /* ENCAPSULATED Wireless Node Id */
    struct sn_str inner;      /* ENCAPSULATED message, to decode with sn_decode() */
};

/* Reason for a rejected message: the violated rule and a static text. */
struct sn_error {
    const char *rule;
    const char *text;
};

/* Decodes the datagram buf of len bytes into *out. Returns VIGIL_OK, or
 * VIGIL_ERR_PROTOCOL with err filled. An Encapsulated message is decoded
 * to its header; decode out->inner with another call. */
vigil_err sn_decode(const uint8_t *buf, size_t len, struct sn_msg *out, struct sn_error *err);

/* Returns the encoded size of msg, or 0 when msg cannot be encoded (unknown
 * type, a field out of range, or more than SN_MAX_LENGTH bytes). The 3-byte
 * Length form is used when long_length is set or the message needs it. */
size_t sn_encoded_size(const struct sn_msg *msg);

/* Encodes msg into out (capacity cap). Returns the length written, or 0
 * when msg cannot be encoded or does not fit. */
size_t sn_encode(const struct sn_msg *msg, uint8_t *out, size_t cap);

/* Returns the specification's name of a MsgType ("PUBLISH"), or NULL for a
 * reserved value. */
const char *sn_type_name(unsigned type);

/* Returns the rule name of the section that defines a MsgType's format
 * ("MQTT-SN-1.2:5.4.12"), or the MsgType rule for a reserved value. */
const char *sn_type_rule(unsigned type);

#endif
