/* MQTT-SN decoder: Length and MsgType header (section 5.2), then one body
 * decoder per message type (section 5.4) and the forwarder encapsulation
 * (section 5.5). */
#include <string.h>

#include "proto/mqttsn/mqttsn_internal.h"

#define R_LENGTH "MQTT-SN-1.2:5.2.1"
#define R_TYPE "MQTT-SN-1.2:5.2.2"
#define R_CLIENT_ID "MQTT-SN-1.2:5.3.1"
#define R_FLAGS "MQTT-SN-1.2:5.3.4"
#define R_PROTOCOL_ID "MQTT-SN-1.2:5.3.8"
#define R_RETURN_CODE "MQTT-SN-1.2:5.3.10"

/* Cursor over the body of one message. */
struct sn_dec {
    const uint8_t *p;
    const uint8_t *end;
    const struct sn_layout *layout;
    struct sn_error *err;
};

static vigil_err dec_fail(struct sn_dec *d, const char *rule, const char *text)
{
    if (d->err != NULL) {
        d->err->rule = rule;
        d->err->text = text;
    }
    return VIGIL_ERR_PROTOCOL;
}

static size_t left(const struct sn_dec *d)
{
    return (size_t)(d->end - d->p);
}

static uint8_t rd_u8(struct sn_dec *d)
{
    return *d->p++;
}

static uint16_t rd_u16(struct sn_dec *d)
{
    uint16_t v = (uint16_t)(d->p[0] << 8 | d->p[1]);

    d->p += 2;
    return v;
}

/* Takes the rest of the body as a string. */
static struct sn_str rd_rest(struct sn_dec *d)
{
    struct sn_str s = {.p = left(d) > 0 ? d->p : NULL, .len = (uint16_t)left(d)};

    d->p = d->end;
    return s;
}

/* Splits a Flags byte. QoS 0b11 is allowed only where qos_minus_one is set,
 * and TopicIdType 0b11 is always rejected. */
static vigil_err dec_flags(struct sn_dec *d, struct sn_flags *out, bool qos_minus_one)
{
    uint8_t byte = rd_u8(d);
    uint8_t qos = (byte >> SN_FLAG_QOS_SHIFT) & 3;

    out->dup = (byte & SN_FLAG_DUP) != 0;
    out->qos = qos == 3 ? -1 : (int8_t)qos;
    out->retain = (byte & SN_FLAG_RETAIN) != 0;
    out->will = (byte & SN_FLAG_WILL) != 0;
    out->clean_session = (byte & SN_FLAG_CLEAN) != 0;
    out->topic_id_type = byte & SN_FLAG_TOPIC_MASK;
    if (out->topic_id_type == 3)
        return dec_fail(d, R_FLAGS, "TopicIdType 0b11 is reserved");
    if (qos == 3 && !qos_minus_one)
        return dec_fail(d, R_FLAGS, "QoS -1 (0b11) is allowed only in PUBLISH");
    return VIGIL_OK;
}

static vigil_err dec_return_code(struct sn_dec *d, struct sn_msg *out)
{
    out->return_code = rd_u8(d);
    if (out->return_code > SN_RC_NOT_SUPPORTED)
        return dec_fail(d, R_RETURN_CODE, "ReturnCode 0x04-0xFF is reserved");
    return VIGIL_OK;
}

static vigil_err dec_advertise(struct sn_dec *d, struct sn_msg *out)
{
    out->gw_id = rd_u8(d);
    out->duration = rd_u16(d);
    return VIGIL_OK;
}

static vigil_err dec_searchgw(struct sn_dec *d, struct sn_msg *out)
{
    out->radius = rd_u8(d);
    return VIGIL_OK;
}

static vigil_err dec_gwinfo(struct sn_dec *d, struct sn_msg *out)
{
    out->gw_id = rd_u8(d);
    out->gw_add = rd_rest(d);
    return VIGIL_OK;
}

static vigil_err dec_connect(struct sn_dec *d, struct sn_msg *out)
{
    vigil_err rc = dec_flags(d, &out->flags, false);

    if (rc != VIGIL_OK)
        return rc;
    out->protocol_id = rd_u8(d);
    if (out->protocol_id != SN_PROTOCOL_ID)
        return dec_fail(d, R_PROTOCOL_ID, "ProtocolId is not 0x01");
    out->duration = rd_u16(d);
    out->client_id = rd_rest(d);
    return VIGIL_OK;
}

static vigil_err dec_return_only(struct sn_dec *d, struct sn_msg *out)
{
    return dec_return_code(d, out);
}

static vigil_err dec_empty(struct sn_dec *d, struct sn_msg *out)
{
    return VIGIL_OK;
}

/* WILLTOPIC and WILLTOPICUPD: empty (delete the will) or Flags + WillTopic. */
static vigil_err dec_willtopic(struct sn_dec *d, struct sn_msg *out)
{
    vigil_err rc;

    if (left(d) == 0) {
        out->empty_will = true;
        return VIGIL_OK;
    }
    rc = dec_flags(d, &out->flags, false);
    if (rc != VIGIL_OK)
        return rc;
    out->topic_name = rd_rest(d);
    return VIGIL_OK;
}

static vigil_err dec_willmsg(struct sn_dec *d, struct sn_msg *out)
{
    out->data = rd_rest(d);
    return VIGIL_OK;
}

static vigil_err dec_register(struct sn_dec *d, struct sn_msg *out)
{
    out->topic_id = rd_u16(d);
    out->msg_id = rd_u16(d);
    out->topic_name = rd_rest(d);
    return VIGIL_OK;
}

/* REGACK and PUBACK: TopicId, MsgId, ReturnCode. */
static vigil_err dec_topic_ack(struct sn_dec *d, struct sn_msg *out)
{
    out->topic_id = rd_u16(d);
    out->msg_id = rd_u16(d);
    return dec_return_code(d, out);
}

static vigil_err dec_publish(struct sn_dec *d, struct sn_msg *out)
{
    vigil_err rc = dec_flags(d, &out->flags, true);

    if (rc != VIGIL_OK)
        return rc;
    if (out->flags.qos == -1 && out->flags.topic_id_type == SN_TOPIC_NORMAL)
        return dec_fail(d, "MQTT-SN-1.2:6.8",
                        "QoS -1 PUBLISH needs a predefined topic id or short topic name");
    out->topic_id = rd_u16(d);
    out->msg_id = rd_u16(d);
    out->data = rd_rest(d);
    return VIGIL_OK;
}

/* PUBCOMP, PUBREC, PUBREL and UNSUBACK: MsgId only. */
static vigil_err dec_msg_id(struct sn_dec *d, struct sn_msg *out)
{
    out->msg_id = rd_u16(d);
    return VIGIL_OK;
}

/* SUBSCRIBE and UNSUBSCRIBE: Flags, MsgId, then a topic name or a 2-byte
 * predefined topic id or short topic name, as TopicIdType selects. */
static vigil_err dec_subscribe(struct sn_dec *d, struct sn_msg *out)
{
    vigil_err rc = dec_flags(d, &out->flags, false);

    if (rc != VIGIL_OK)
        return rc;
    out->msg_id = rd_u16(d);
    if (out->flags.topic_id_type == SN_TOPIC_NORMAL) {
        out->topic_name = rd_rest(d);
        return VIGIL_OK;
    }
    if (left(d) != 2)
        return dec_fail(d, d->layout->rule,
                        "predefined topic id or short topic name is not 2 bytes");
    out->topic_id = rd_u16(d);
    return VIGIL_OK;
}

static vigil_err dec_suback(struct sn_dec *d, struct sn_msg *out)
{
    vigil_err rc = dec_flags(d, &out->flags, false);

    if (rc != VIGIL_OK)
        return rc;
    out->topic_id = rd_u16(d);
    out->msg_id = rd_u16(d);
    return dec_return_code(d, out);
}

static vigil_err dec_pingreq(struct sn_dec *d, struct sn_msg *out)
{
    out->client_id = rd_rest(d);
    return VIGIL_OK;
}

static vigil_err dec_disconnect(struct sn_dec *d, struct sn_msg *out)
{
    if (left(d) == 1)
        return dec_fail(d, d->layout->rule, "Duration of DISCONNECT is not 2 bytes");
    if (left(d) == 2) {
        out->has_duration = true;
        out->duration = rd_u16(d);
    }
    return VIGIL_OK;
}

/* Ctrl byte: bits 0-1 are the broadcast radius, bits 2-7 are reserved. */
static vigil_err dec_encapsulated(struct sn_dec *d, struct sn_msg *out)
{
    uint8_t ctrl = rd_u8(d);

    if ((ctrl & 0xFC) != 0)
        return dec_fail(d, "MQTT-SN-1.2:5.5", "reserved bits of Ctrl are set");
    out->radius = ctrl & 3;
    out->node_id = rd_rest(d);
    return VIGIL_OK;
}

typedef vigil_err (*sn_body_fn)(struct sn_dec *d, struct sn_msg *out);

static sn_body_fn body_decoder(uint8_t type)
{
    switch (type) {
    case SN_ADVERTISE: return dec_advertise;
    case SN_SEARCHGW: return dec_searchgw;
    case SN_GWINFO: return dec_gwinfo;
    case SN_CONNECT: return dec_connect;
    case SN_CONNACK:
    case SN_WILLTOPICRESP:
    case SN_WILLMSGRESP: return dec_return_only;
    case SN_WILLTOPIC:
    case SN_WILLTOPICUPD: return dec_willtopic;
    case SN_WILLMSG:
    case SN_WILLMSGUPD: return dec_willmsg;
    case SN_REGISTER: return dec_register;
    case SN_REGACK:
    case SN_PUBACK: return dec_topic_ack;
    case SN_PUBLISH: return dec_publish;
    case SN_PUBCOMP:
    case SN_PUBREC:
    case SN_PUBREL:
    case SN_UNSUBACK: return dec_msg_id;
    case SN_SUBSCRIBE:
    case SN_UNSUBSCRIBE: return dec_subscribe;
    case SN_SUBACK: return dec_suback;
    case SN_PINGREQ: return dec_pingreq;
    case SN_DISCONNECT: return dec_disconnect;
    case SN_ENCAPSULATED: return dec_encapsulated;
    default: return dec_empty;
    }
}

/* Reads the Length field; sets *hdr to its size and *total to its value. */
static vigil_err dec_length(struct sn_dec *d, const uint8_t *buf, size_t len, size_t *hdr,
                            size_t *total)
{
    if (len < 2)
        return dec_fail(d, R_LENGTH, "datagram is shorter than Length and MsgType");
    if (buf[0] != 0x01) {
        *hdr = 1;
        *total = buf[0];
    } else {
        if (len < 4)
            return dec_fail(d, R_LENGTH, "datagram is shorter than a 3-byte Length and MsgType");
        *hdr = 3;
        *total = (size_t)(buf[1] << 8 | buf[2]);
    }
    if (*total < *hdr + 1)
        return dec_fail(d, R_LENGTH, "Length is smaller than the header");
    return VIGIL_OK;
}

/* Checks the Length against the datagram and the body against the type. */
static vigil_err dec_sizes(struct sn_dec *d, size_t len, size_t total, size_t body)
{
    const struct sn_layout *layout = d->layout;

    if (layout->type == SN_ENCAPSULATED) {
        if (total >= len)
            return dec_fail(d, layout->rule, "Encapsulated message carries no inner message");
        if (len - total > SN_MAX_LENGTH)
            return dec_fail(d, layout->rule, "inner message is longer than 65535 bytes");
    } else if (total != len) {
        return dec_fail(d, R_LENGTH, "Length does not match the datagram length");
    }
    if (body < (size_t)layout->min_body)
        return dec_fail(d, layout->rule, "message is shorter than its type requires");
    if (layout->max_body >= 0 && body > (size_t)layout->max_body)
        return dec_fail(d, layout->rule, "message is longer than its type allows");
    return VIGIL_OK;
}

/* Rules that apply to a decoded body as a whole. */
static vigil_err dec_check_fields(struct sn_dec *d, const struct sn_msg *out)
{
    bool needs_name = out->type == SN_REGISTER ||
                      ((out->type == SN_SUBSCRIBE || out->type == SN_UNSUBSCRIBE) &&
                       out->flags.topic_id_type == SN_TOPIC_NORMAL);

    if (out->type == SN_CONNECT && out->client_id.len == 0)
        return dec_fail(d, R_CLIENT_ID, "ClientId is empty");
    if (needs_name && out->topic_name.len == 0)
        return dec_fail(d, d->layout->rule, "TopicName is empty");
    return VIGIL_OK;
}

vigil_err sn_decode(const uint8_t *buf, size_t len, struct sn_msg *out, struct sn_error *err)
{
    struct sn_dec d = {.err = err};
    size_t hdr, total;
    vigil_err rc;

    memset(out, 0, sizeof *out);
    rc = dec_length(&d, buf, len, &hdr, &total);
    if (rc != VIGIL_OK)
        return rc;
    out->long_length = hdr == 3;
    out->type = buf[hdr];
    d.layout = sn_layout_of(out->type);
    if (d.layout == NULL)
        return dec_fail(&d, R_TYPE, "MsgType is reserved");
    rc = dec_sizes(&d, len, total, total - hdr - 1);
    if (rc != VIGIL_OK)
        return rc;

    d.p = buf + hdr + 1;
    d.end = buf + total;
    rc = body_decoder(out->type)(&d, out);
    if (rc != VIGIL_OK)
        return rc;
    if (out->type == SN_ENCAPSULATED)
        out->inner = (struct sn_str){.p = buf + total, .len = (uint16_t)(len - total)};
    return dec_check_fields(&d, out);
}
