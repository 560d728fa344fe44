/* MQTT-SN encoder: one body writer per message type, run once to count the
 * body and once to write it after the Length and MsgType header. */
#include <string.h>

#include "proto/mqttsn/mqttsn_internal.h"

/* Output cursor. With p NULL it only counts. */
struct sn_enc {
    uint8_t *p;
    size_t n;
};

static void put_u8(struct sn_enc *e, uint8_t v)
{
    if (e->p != NULL)
        e->p[e->n] = v;
    e->n++;
}

static void put_u16(struct sn_enc *e, uint16_t v)
{
    put_u8(e, (uint8_t)(v >> 8));
    put_u8(e, (uint8_t)v);
}

static void put_str(struct sn_enc *e, struct sn_str s)
{
    if (e->p != NULL && s.len > 0)
        memcpy(e->p + e->n, s.p, s.len);
    e->n += s.len;
}

static uint8_t flags_byte(const struct sn_flags *f)
{
    uint8_t qos = f->qos < 0 ? 3 : (uint8_t)f->qos;

    return (uint8_t)((f->dup ? SN_FLAG_DUP : 0) | qos << SN_FLAG_QOS_SHIFT |
                     (f->retain ? SN_FLAG_RETAIN : 0) | (f->will ? SN_FLAG_WILL : 0) |
                     (f->clean_session ? SN_FLAG_CLEAN : 0) |
                     (f->topic_id_type & SN_FLAG_TOPIC_MASK));
}

static void put_flags(struct sn_enc *e, const struct sn_msg *m)
{
    put_u8(e, flags_byte(&m->flags));
}

/* Bodies that are all fixed fields or one trailing string. */
static void put_simple(struct sn_enc *e, const struct sn_msg *m)
{
    switch (m->type) {
    case SN_ADVERTISE:
        put_u8(e, m->gw_id);
        put_u16(e, m->duration);
        break;
    case SN_SEARCHGW:
        put_u8(e, m->radius);
        break;
    case SN_GWINFO:
        put_u8(e, m->gw_id);
        put_str(e, m->gw_add);
        break;
    case SN_CONNACK:
    case SN_WILLTOPICRESP:
    case SN_WILLMSGRESP:
        put_u8(e, m->return_code);
        break;
    case SN_WILLMSG:
    case SN_WILLMSGUPD:
        put_str(e, m->data);
        break;
    case SN_PUBCOMP:
    case SN_PUBREC:
    case SN_PUBREL:
    case SN_UNSUBACK:
        put_u16(e, m->msg_id);
        break;
    case SN_PINGREQ:
        put_str(e, m->client_id);
        break;
    case SN_DISCONNECT:
        if (m->has_duration)
            put_u16(e, m->duration);
        break;
    case SN_ENCAPSULATED:
        put_u8(e, m->radius & 3);
        put_str(e, m->node_id);
        break;
    default:
        break;
    }
}

/* Bodies with flags, topic ids or message ids. */
static void put_topic_body(struct sn_enc *e, const struct sn_msg *m)
{
    switch (m->type) {
    case SN_CONNECT:
        put_flags(e, m);
        put_u8(e, m->protocol_id);
        put_u16(e, m->duration);
        put_str(e, m->client_id);
        break;
    case SN_WILLTOPIC:
    case SN_WILLTOPICUPD:
        if (m->empty_will)
            break;
        put_flags(e, m);
        put_str(e, m->topic_name);
        break;
    case SN_REGISTER:
        put_u16(e, m->topic_id);
        put_u16(e, m->msg_id);
        put_str(e, m->topic_name);
        break;
    case SN_REGACK:
    case SN_PUBACK:
        put_u16(e, m->topic_id);
        put_u16(e, m->msg_id);
        put_u8(e, m->return_code);
        break;
    case SN_PUBLISH:
        put_flags(e, m);
        put_u16(e, m->topic_id);
        put_u16(e, m->msg_id);
        put_str(e, m->data);
        break;
    case SN_SUBSCRIBE:
    case SN_UNSUBSCRIBE:
        put_flags(e, m);
        put_u16(e, m->msg_id);
        if (m->flags.topic_id_type == SN_TOPIC_NORMAL)
            put_str(e, m->topic_name);
        else
            put_u16(e, m->topic_id);
        break;
    case SN_SUBACK:
        put_flags(e, m);
        put_u16(e, m->topic_id);
        put_u16(e, m->msg_id);
        put_u8(e, m->return_code);
        break;
    default:
        put_simple(e, m);
        break;
    }
}

static bool encodable(const struct sn_msg *m)
{
    if (sn_layout_of(m->type) == NULL)
        return false;
    if (m->flags.qos < -1 || m->flags.qos > 2 || m->flags.topic_id_type > 3)
        return false;
    return true;
}

/* Returns the header size for a body of body bytes, or 0 when too long. */
static size_t header_size(const struct sn_msg *m, size_t body)
{
    if (!m->long_length && body + 2 <= 255)
        return 1;
    if (body + 4 <= SN_MAX_LENGTH)
        return 3;
    return 0;
}

size_t sn_encoded_size(const struct sn_msg *msg)
{
    struct sn_enc e = {0};
    size_t hdr;

    if (!encodable(msg))
        return 0;
    put_topic_body(&e, msg);
    hdr = header_size(msg, e.n);
    if (hdr == 0)
        return 0;
    if (msg->type == SN_ENCAPSULATED)
        return hdr + 1 + e.n + msg->inner.len;
    return hdr + 1 + e.n;
}

size_t sn_encode(const struct sn_msg *msg, uint8_t *out, size_t cap)
{
    size_t size = sn_encoded_size(msg);
    struct sn_enc e = {0};
    size_t total, hdr;

    if (size == 0 || size > cap)
        return 0;

    /* The Length of an Encapsulated message excludes the inner message. */
    put_topic_body(&e, msg);
    hdr = header_size(msg, e.n);
    total = hdr + 1 + e.n;
    if (hdr == 1) {
        out[0] = (uint8_t)total;
    } else {
        out[0] = 0x01;
        out[1] = (uint8_t)(total >> 8);
        out[2] = (uint8_t)total;
    }
    out[hdr] = msg->type;
    e = (struct sn_enc){.p = out + hdr + 1};
    put_topic_body(&e, msg);
    if (msg->type == SN_ENCAPSULATED && msg->inner.len > 0)
        memcpy(out + total, msg->inner.p, msg->inner.len);
    return size;
}
