/* MQTT 5.0 properties: decoding with every check that one property block
 * allows, encoding, and the iterator over user properties. */
#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

enum prop_type {
    PT_NONE,
    PT_BYTE,
    PT_U16,
    PT_U32,
    PT_VBI,
    PT_STR,
    PT_BIN,
    PT_PAIR,
};

/* Bit of a property context (MQTT_PROPCTX_WILL or a packet type) in
 * prop_desc.contexts. */
#define CTX(n) (1u << (n))
#define C_WILL CTX(MQTT_PROPCTX_WILL)
#define C_CONNECT CTX(MQTT_CONNECT)
#define C_CONNACK CTX(MQTT_CONNACK)
#define C_PUBLISH CTX(MQTT_PUBLISH)
#define C_ACKS (CTX(MQTT_PUBACK) | CTX(MQTT_PUBREC) | CTX(MQTT_PUBREL) | CTX(MQTT_PUBCOMP))
#define C_SUBSCRIBE CTX(MQTT_SUBSCRIBE)
#define C_SUBACK CTX(MQTT_SUBACK)
#define C_UNSUBSCRIBE CTX(MQTT_UNSUBSCRIBE)
#define C_UNSUBACK CTX(MQTT_UNSUBACK)
#define C_DISCONNECT CTX(MQTT_DISCONNECT)
#define C_AUTH CTX(MQTT_AUTH)

/* One row of the property table of MQTT 5.0 section 2.2.2.2. section names
 * the section that defines the property, used as the rule for duplicates
 * and out-of-range values, which the specification does not number. */
struct prop_desc {
    uint8_t type;
    uint16_t contexts;
    const char *section;
};

static const struct prop_desc prop_table[0x2B] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, C_PUBLISH | C_WILL, "MQTT-3.3.2.3.2"},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, C_PUBLISH | C_WILL, "MQTT-3.3.2.3.3"},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STR, C_PUBLISH | C_WILL, "MQTT-3.3.2.3.9"},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, C_PUBLISH | C_WILL, "MQTT-3.3.2.3.5"},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, C_PUBLISH | C_WILL, "MQTT-3.3.2.3.6"},
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VBI, C_PUBLISH | C_SUBSCRIBE, "MQTT-3.8.2.1.2"},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32, C_CONNECT | C_CONNACK | C_DISCONNECT,
                                  "MQTT-3.1.2.11.2"},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_STR, C_CONNACK, "MQTT-3.2.2.3.7"},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, C_CONNACK, "MQTT-3.2.2.3.14"},
    [MQTT_PROP_AUTH_METHOD] = {PT_STR, C_CONNECT | C_CONNACK | C_AUTH, "MQTT-3.1.2.11.9"},
    [MQTT_PROP_AUTH_DATA] = {PT_BIN, C_CONNECT | C_CONNACK | C_AUTH, "MQTT-3.1.2.11.10"},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, C_CONNECT, "MQTT-3.1.2.11.7"},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, C_WILL, "MQTT-3.1.3.2.2"},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, C_CONNECT, "MQTT-3.1.2.11.6"},
    [MQTT_PROP_RESPONSE_INFO] = {PT_STR, C_CONNACK, "MQTT-3.2.2.3.15"},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, C_CONNACK | C_DISCONNECT, "MQTT-3.2.2.3.16"},
    [MQTT_PROP_REASON_STRING] = {PT_STR,
                                 C_CONNACK | C_ACKS | C_SUBACK | C_UNSUBACK | C_DISCONNECT |
                                     C_AUTH,
                                 "MQTT-3.2.2.3.9"},
    [MQTT_PROP_RECEIVE_MAX] = {PT_U16, C_CONNECT | C_CONNACK, "MQTT-3.1.2.11.3"},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {PT_U16, C_CONNECT | C_CONNACK, "MQTT-3.1.2.11.5"},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, C_PUBLISH, "MQTT-3.3.2.3.4"},
    [MQTT_PROP_MAX_QOS] = {PT_BYTE, C_CONNACK, "MQTT-3.2.2.3.4"},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, C_CONNACK, "MQTT-3.2.2.3.5"},
    [MQTT_PROP_USER_PROPERTY] = {PT_PAIR,
                                 C_WILL | C_CONNECT | C_CONNACK | C_PUBLISH | C_ACKS |
                                     C_SUBSCRIBE | C_SUBACK | C_UNSUBSCRIBE | C_UNSUBACK |
                                     C_DISCONNECT | C_AUTH,
                                 "MQTT-3.1.2.11.8"},
    [MQTT_PROP_MAX_PACKET_SIZE] = {PT_U32, C_CONNECT | C_CONNACK, "MQTT-3.1.2.11.4"},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, C_CONNACK, "MQTT-3.2.2.3.11"},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, C_CONNACK, "MQTT-3.2.2.3.12"},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, C_CONNACK, "MQTT-3.2.2.3.13"},
};

static const struct prop_desc *prop_lookup(uint8_t id)
{
    if (id >= sizeof prop_table / sizeof prop_table[0] || prop_table[id].type == PT_NONE)
        return NULL;
    return &prop_table[id];
}

/* Malformed property block: MQTT 5.0 section 2.2.2.2 makes an unknown
 * identifier, one not valid for the packet type, or a value of the wrong
 * type a Malformed Packet. */
static vigil_err prop_malformed(struct mqtt_dec *d, const char *text)
{
    return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.2.2.2", NULL, text);
}

static vigil_err prop_read_vbi(struct mqtt_dec *d, uint32_t *v)
{
    size_t used;

    switch (mqtt_vbi_read(d->r.p, mqtt_rd_left(&d->r), v, &used)) {
    case MQTT_VBI_OK:
        d->r.p += used;
        return VIGIL_OK;
    case MQTT_VBI_NOT_MINIMAL:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.5-1", NULL,
                             "variable byte integer not in its shortest encoding");
    case MQTT_VBI_TOO_LONG:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.5", NULL,
                             "variable byte integer longer than four bytes");
    case MQTT_VBI_SHORT:
    default:
        return prop_malformed(d, "property value runs past the property block");
    }
}

/* The raw value of one property, before it is stored. */
struct prop_value {
    uint32_t num;
    struct mqtt_str str;
    struct mqtt_str str2;
};

static vigil_err prop_read_value(struct mqtt_dec *d, uint8_t type, struct prop_value *v)
{
    uint8_t b;
    uint16_t h;
    bool ok = true;

    switch (type) {
    case PT_BYTE:
        ok = mqtt_rd_u8(&d->r, &b);
        v->num = b;
        break;
    case PT_U16:
        ok = mqtt_rd_u16(&d->r, &h);
        v->num = h;
        break;
    case PT_U32:
        ok = mqtt_rd_u32(&d->r, &v->num);
        break;
    case PT_VBI:
        return prop_read_vbi(d, &v->num);
    case PT_BIN:
        ok = mqtt_rd_bin(&d->r, &v->str);
        break;
    case PT_STR:
        if (!mqtt_rd_bin(&d->r, &v->str))
            return prop_malformed(d, "property value runs past the property block");
        return mqtt_dec_utf8(d, v->str);
    case PT_PAIR:
        if (!mqtt_rd_bin(&d->r, &v->str) || !mqtt_rd_bin(&d->r, &v->str2))
            return prop_malformed(d, "property value runs past the property block");
        if (mqtt_dec_utf8(d, v->str) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        return mqtt_dec_utf8(d, v->str2);
    default:
        ok = false;
        break;
    }
    if (!ok)
        return prop_malformed(d, "property value runs past the property block");
    return VIGIL_OK;
}

static bool topic_has_wildcard(struct mqtt_str s)
{
    return memchr(s.p, '+', s.len) != NULL || memchr(s.p, '#', s.len) != NULL;
}

/* Checks the value range of properties whose range is narrower than their
 * type. */
static vigil_err prop_check_range(struct mqtt_dec *d, uint8_t id, const struct prop_desc *desc,
                                  const struct prop_value *v)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
    case MQTT_PROP_MAX_QOS:
    case MQTT_PROP_RETAIN_AVAILABLE:
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
    case MQTT_PROP_SUB_ID_AVAILABLE:
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        if (v->num > 1)
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, desc->section, NULL,
                                 "property value other than 0 or 1");
        break;
    case MQTT_PROP_RECEIVE_MAX:
    case MQTT_PROP_MAX_PACKET_SIZE:
    case MQTT_PROP_SUBSCRIPTION_ID:
        if (v->num == 0)
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, desc->section, NULL,
                                 "property value 0 is not allowed");
        break;
    case MQTT_PROP_TOPIC_ALIAS:
        if (v->num == 0)
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.2-8", NULL,
                                 "topic alias 0 is not allowed");
        break;
    case MQTT_PROP_RESPONSE_TOPIC:
        if (topic_has_wildcard(v->str))
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.2-14", NULL,
                                 "response topic contains a wildcard");
        break;
    default:
        break;
    }
    return VIGIL_OK;
}

static vigil_err prop_store_sub_id(struct mqtt_dec *d, struct mqtt_props *props, uint32_t v)
{
    if (props->n_sub_ids >= MQTT_MAX_SUB_IDS)
        return mqtt_dec_fail(d, MQTT_RC_IMPL_SPECIFIC, "MQTT-3.3.2.3.8", NULL,
                             "more subscription identifiers than this decoder keeps");
    props->sub_ids[props->n_sub_ids++] = v;
    return VIGIL_OK;
}

static vigil_err prop_store(struct mqtt_dec *d, struct mqtt_props *props, uint8_t id,
                            const struct prop_value *v)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT: props->payload_format = (uint8_t)v->num; break;
    case MQTT_PROP_MESSAGE_EXPIRY: props->message_expiry = v->num; break;
    case MQTT_PROP_CONTENT_TYPE: props->content_type = v->str; break;
    case MQTT_PROP_RESPONSE_TOPIC: props->response_topic = v->str; break;
    case MQTT_PROP_CORRELATION_DATA: props->correlation_data = v->str; break;
    case MQTT_PROP_SUBSCRIPTION_ID: return prop_store_sub_id(d, props, v->num);
    case MQTT_PROP_SESSION_EXPIRY: props->session_expiry = v->num; break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID: props->assigned_client_id = v->str; break;
    case MQTT_PROP_SERVER_KEEP_ALIVE: props->server_keep_alive = (uint16_t)v->num; break;
    case MQTT_PROP_AUTH_METHOD: props->auth_method = v->str; break;
    case MQTT_PROP_AUTH_DATA: props->auth_data = v->str; break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO: props->request_problem_info = (uint8_t)v->num; break;
    case MQTT_PROP_WILL_DELAY: props->will_delay = v->num; break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO: props->request_response_info = (uint8_t)v->num; break;
    case MQTT_PROP_RESPONSE_INFO: props->response_info = v->str; break;
    case MQTT_PROP_SERVER_REFERENCE: props->server_reference = v->str; break;
    case MQTT_PROP_REASON_STRING: props->reason_string = v->str; break;
    case MQTT_PROP_RECEIVE_MAX: props->receive_max = (uint16_t)v->num; break;
    case MQTT_PROP_TOPIC_ALIAS_MAX: props->topic_alias_max = (uint16_t)v->num; break;
    case MQTT_PROP_TOPIC_ALIAS: props->topic_alias = (uint16_t)v->num; break;
    case MQTT_PROP_MAX_QOS: props->max_qos = (uint8_t)v->num; break;
    case MQTT_PROP_RETAIN_AVAILABLE: props->retain_available = (uint8_t)v->num; break;
    case MQTT_PROP_USER_PROPERTY: props->n_user++; break;
    case MQTT_PROP_MAX_PACKET_SIZE: props->max_packet_size = v->num; break;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE: props->wildcard_sub_available = (uint8_t)v->num; break;
    case MQTT_PROP_SUB_ID_AVAILABLE: props->sub_id_available = (uint8_t)v->num; break;
    case MQTT_PROP_SHARED_SUB_AVAILABLE: props->shared_sub_available = (uint8_t)v->num; break;
    default: break;
    }
    return VIGIL_OK;
}

/* User Property may repeat anywhere; Subscription Identifier may repeat
 * only in PUBLISH, where each matching subscription adds one. */
static bool prop_may_repeat(uint8_t id, unsigned ctx)
{
    return id == MQTT_PROP_USER_PROPERTY ||
           (id == MQTT_PROP_SUBSCRIPTION_ID && ctx == MQTT_PUBLISH);
}

static vigil_err prop_decode_one(struct mqtt_dec *d, unsigned ctx, struct mqtt_props *props)
{
    uint8_t id;
    const struct prop_desc *desc;
    struct prop_value v = {0};

    /* Identifiers are Variable Byte Integers, but all defined ones are
     * below 0x80, so a first byte with the high bit set is unknown too. */
    if (!mqtt_rd_u8(&d->r, &id))
        return prop_malformed(d, "property identifier missing");
    desc = prop_lookup(id);
    if (desc == NULL)
        return prop_malformed(d, "unknown property identifier");
    if ((desc->contexts & CTX(ctx)) == 0)
        return prop_malformed(d, "property not allowed in this packet");
    if ((props->present & MQTT_PROP_BIT(id)) && !prop_may_repeat(id, ctx))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, desc->section, NULL,
                             "property included more than once");
    if (prop_read_value(d, desc->type, &v) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (prop_check_range(d, id, desc, &v) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    props->present |= MQTT_PROP_BIT(id);
    return prop_store(d, props, id, &v);
}

/* Reads the Property Length. */
static vigil_err props_read_length(struct mqtt_dec *d, uint32_t *len)
{
    size_t used;

    switch (mqtt_vbi_read(d->r.p, mqtt_rd_left(&d->r), len, &used)) {
    case MQTT_VBI_OK:
        d->r.p += used;
        break;
    case MQTT_VBI_NOT_MINIMAL:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.5-1", NULL,
                             "property length not in its shortest encoding");
    case MQTT_VBI_TOO_LONG:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.5", NULL,
                             "property length longer than four bytes");
    case MQTT_VBI_SHORT:
    default:
        return mqtt_dec_truncated(d);
    }
    if (*len > mqtt_rd_left(&d->r))
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.2.2.1", NULL,
                             "property length runs past the end of the packet");
    return VIGIL_OK;
}

vigil_err mqtt_props_decode(struct mqtt_dec *d, unsigned ctx, struct mqtt_props *props)
{
    uint32_t len;
    const uint8_t *outer_end = d->r.end;
    vigil_err rc;

    memset(props, 0, sizeof *props);
    rc = props_read_length(d, &len);
    if (rc != VIGIL_OK)
        return rc;
    props->raw.p = d->r.p;
    props->raw.len = len;

    /* Confine the reader to the block while its properties are read. */
    d->r.end = d->r.p + len;
    while (rc == VIGIL_OK && mqtt_rd_left(&d->r) > 0)
        rc = prop_decode_one(d, ctx, props);
    d->r.end = outer_end;
    if (rc != VIGIL_OK)
        return rc;

    if (props->n_user > 0)
        props->present |= MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
    if ((props->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA)) &&
        !(props->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.1.2.11.10", NULL,
                             "authentication data without an authentication method");
    return VIGIL_OK;
}

/* Skips one property value of the given type at r; false when it does not
 * fit, which cannot happen on a block mqtt_props_decode() accepted. */
static bool prop_skip_value(struct mqtt_reader *r, uint8_t type, struct mqtt_user_prop *pair)
{
    uint8_t b;
    uint16_t h;
    uint32_t w;
    size_t used;
    struct mqtt_str s;

    switch (type) {
    case PT_BYTE: return mqtt_rd_u8(r, &b);
    case PT_U16: return mqtt_rd_u16(r, &h);
    case PT_U32: return mqtt_rd_u32(r, &w);
    case PT_BIN:
    case PT_STR: return mqtt_rd_bin(r, &s);
    case PT_PAIR: return mqtt_rd_bin(r, &pair->name) && mqtt_rd_bin(r, &pair->value);
    case PT_VBI:
        if (mqtt_vbi_read(r->p, mqtt_rd_left(r), &w, &used) != MQTT_VBI_OK)
            return false;
        r->p += used;
        return true;
    default: return false;
    }
}

bool mqtt_user_prop_next(const struct mqtt_props *props, const uint8_t **cursor,
                         struct mqtt_user_prop *out)
{
    struct mqtt_reader r;

    if (props->raw.p == NULL || *cursor == NULL)
        return false;
    r.p = *cursor;
    r.end = props->raw.p + props->raw.len;
    while (mqtt_rd_left(&r) > 0) {
        uint8_t id = 0;
        const struct prop_desc *desc;

        mqtt_rd_u8(&r, &id);
        desc = prop_lookup(id);
        if (desc == NULL || !prop_skip_value(&r, desc->type, out))
            break;
        if (id == MQTT_PROP_USER_PROPERTY) {
            *cursor = r.p;
            return true;
        }
    }
    *cursor = r.end;
    return false;
}

/* Writes property id of props in wire format. False when its value cannot
 * be encoded. */
static bool prop_write(struct mqtt_writer *w, const struct mqtt_props *props, uint8_t id)
{
    const struct prop_desc *desc = prop_lookup(id);
    uint32_t num = 0;
    struct mqtt_str str = {0};

    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT: num = props->payload_format; break;
    case MQTT_PROP_MESSAGE_EXPIRY: num = props->message_expiry; break;
    case MQTT_PROP_CONTENT_TYPE: str = props->content_type; break;
    case MQTT_PROP_RESPONSE_TOPIC: str = props->response_topic; break;
    case MQTT_PROP_CORRELATION_DATA: str = props->correlation_data; break;
    case MQTT_PROP_SESSION_EXPIRY: num = props->session_expiry; break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID: str = props->assigned_client_id; break;
    case MQTT_PROP_SERVER_KEEP_ALIVE: num = props->server_keep_alive; break;
    case MQTT_PROP_AUTH_METHOD: str = props->auth_method; break;
    case MQTT_PROP_AUTH_DATA: str = props->auth_data; break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO: num = props->request_problem_info; break;
    case MQTT_PROP_WILL_DELAY: num = props->will_delay; break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO: num = props->request_response_info; break;
    case MQTT_PROP_RESPONSE_INFO: str = props->response_info; break;
    case MQTT_PROP_SERVER_REFERENCE: str = props->server_reference; break;
    case MQTT_PROP_REASON_STRING: str = props->reason_string; break;
    case MQTT_PROP_RECEIVE_MAX: num = props->receive_max; break;
    case MQTT_PROP_TOPIC_ALIAS_MAX: num = props->topic_alias_max; break;
    case MQTT_PROP_TOPIC_ALIAS: num = props->topic_alias; break;
    case MQTT_PROP_MAX_QOS: num = props->max_qos; break;
    case MQTT_PROP_RETAIN_AVAILABLE: num = props->retain_available; break;
    case MQTT_PROP_MAX_PACKET_SIZE: num = props->max_packet_size; break;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE: num = props->wildcard_sub_available; break;
    case MQTT_PROP_SUB_ID_AVAILABLE: num = props->sub_id_available; break;
    case MQTT_PROP_SHARED_SUB_AVAILABLE: num = props->shared_sub_available; break;
    default: return false;
    }

    mqtt_wr_u8(w, id);
    switch (desc->type) {
    case PT_BYTE: mqtt_wr_u8(w, (uint8_t)num); return true;
    case PT_U16: mqtt_wr_u16(w, (uint16_t)num); return true;
    case PT_U32: mqtt_wr_u32(w, num); return true;
    default: return mqtt_wr_str(w, str);
    }
}

static bool props_write_sub_ids(struct mqtt_writer *w, const struct mqtt_props *props)
{
    if (props->n_sub_ids > MQTT_MAX_SUB_IDS)
        return false;
    for (unsigned i = 0; i < props->n_sub_ids; i++) {
        if (props->sub_ids[i] == 0 || props->sub_ids[i] > MQTT_VBI_MAX)
            return false;
        mqtt_wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
        mqtt_wr_vbi(w, props->sub_ids[i]);
    }
    return true;
}

/* Writes every present property in identifier order, then verbatim. */
static bool props_write_body(struct mqtt_writer *w, const struct mqtt_props *props)
{
    for (uint8_t id = 1; id < sizeof prop_table / sizeof prop_table[0]; id++) {
        if (!(props->present & MQTT_PROP_BIT(id)) || prop_lookup(id) == NULL)
            continue;
        if (id == MQTT_PROP_USER_PROPERTY)
            continue; /* user properties travel in verbatim */
        if (id == MQTT_PROP_SUBSCRIPTION_ID) {
            if (!props_write_sub_ids(w, props))
                return false;
        } else if (!prop_write(w, props, id)) {
            return false;
        }
    }
    mqtt_wr_bytes(w, props->verbatim.p, props->verbatim.len);
    return true;
}

size_t mqtt_props_body_size(const struct mqtt_props *props)
{
    struct mqtt_writer w = {0};

    if (!props_write_body(&w, props))
        return SIZE_MAX;
    return w.len;
}

bool mqtt_props_encode(struct mqtt_writer *w, const struct mqtt_props *props)
{
    size_t size = mqtt_props_body_size(props);

    if (size > MQTT_VBI_MAX)
        return false;
    mqtt_wr_vbi(w, (uint32_t)size);
    return props_write_body(w, props);
}

size_t mqtt_encode_forward_props(const struct mqtt_props *props, uint8_t *out, size_t cap)
{
    static const uint8_t fields[] = {MQTT_PROP_PAYLOAD_FORMAT, MQTT_PROP_CONTENT_TYPE,
                                     MQTT_PROP_RESPONSE_TOPIC, MQTT_PROP_CORRELATION_DATA};
    struct mqtt_writer w = {.buf = out, .cap = cap};
    const uint8_t *cursor = props->raw.p;
    struct mqtt_user_prop up;

    if (out == NULL)
        return 0;
    for (size_t i = 0; i < sizeof fields; i++) {
        if ((props->present & MQTT_PROP_BIT(fields[i])) && !prop_write(&w, props, fields[i]))
            return 0;
    }
    while (mqtt_user_prop_next(props, &cursor, &up)) {
        mqtt_wr_u8(&w, MQTT_PROP_USER_PROPERTY);
        mqtt_wr_str(&w, up.name);
        mqtt_wr_str(&w, up.value);
    }
    return w.overflow ? 0 : w.len;
}
