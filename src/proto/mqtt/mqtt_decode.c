/* MQTT packet decoder: fixed header, direction and flag checks, and the
 * CONNECT, CONNACK and PUBLISH bodies.
 *
 * Rule names. struct mqtt_error.rule names the violated requirement:
 * - "MQTT-x.y.z-n" is conformance statement x.y.z-n of MQTT 5.0; it is
 *   used on a v5 connection.
 * - "MQTT-3.1.1:x.y.z-n" is conformance statement x.y.z-n of MQTT 3.1.1,
 *   whose numbering differs from 5.0; it is used on a v3.1.1 connection and
 *   for CONNECT with protocol level 3 or 4.
 * - A requirement the specification states without a number is named by
 *   the section that states it: "MQTT-2.2.2.2" (5.0) or "MQTT-3.1.1:2.2.3".
 * - Framing errors found before the level is known use the 5.0 name.
 * Reason codes follow MQTT 5.0: 0x81 Malformed Packet where the
 * specification calls the packet malformed or a field cannot be parsed,
 * 0x82 Protocol Error where it names a Protocol Error, 0x84 for an unsupported
 * protocol name or level, and 0x90 Topic Name invalid for a topic name with
 * wildcards. On a v3.1.1 connection the code only classifies the error. */
#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

vigil_err mqtt_dec_fail(struct mqtt_dec *d, uint8_t reason, const char *rule5,
                        const char *rule311, const char *text)
{
    if (d->err != NULL) {
        d->err->reason_code = reason;
        if (d->version == MQTT_V5)
            d->err->rule = rule5 != NULL ? rule5 : rule311;
        else
            d->err->rule = rule311 != NULL ? rule311 : rule5;
        d->err->text = text;
    }
    return VIGIL_ERR_PROTOCOL;
}

vigil_err mqtt_dec_truncated(struct mqtt_dec *d)
{
    return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.1.4", "MQTT-3.1.1:2.2.3",
                         "field runs past the remaining length");
}

vigil_err mqtt_dec_utf8(struct mqtt_dec *d, struct mqtt_str s)
{
    switch (mqtt_utf8_check(s.p, s.len)) {
    case MQTT_UTF8_OK:
        return VIGIL_OK;
    case MQTT_UTF8_NUL:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.4-2", "MQTT-3.1.1:1.5.3-2",
                             "string contains U+0000");
    case MQTT_UTF8_ILL_FORMED:
    default:
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-1.5.4-1", "MQTT-3.1.1:1.5.3-1",
                             "string is not well-formed UTF-8");
    }
}

vigil_err mqtt_dec_str(struct mqtt_dec *d, struct mqtt_str *out)
{
    if (!mqtt_rd_bin(&d->r, out))
        return mqtt_dec_truncated(d);
    return mqtt_dec_utf8(d, *out);
}

static bool str_is(struct mqtt_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.len == n && memcmp(s.p, lit, n) == 0;
}

/* Reads the protocol name and level and sets d->version to the level
 * whose rule names apply. Level 3 ("MQIsdp", MQTT 3.1) and unknown levels
 * are rejected with 0x84 after connect.version is set, so the caller can
 * reply in the client's own format. */
static vigil_err connect_read_level(struct mqtt_dec *d, struct mqtt_connect *c)
{
    if (!mqtt_rd_bin(&d->r, &c->protocol_name) || !mqtt_rd_u8(&d->r, &c->version))
        return mqtt_dec_truncated(d);

    d->version = c->version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    if (c->version == MQTT_V31) {
        if (!str_is(c->protocol_name, "MQIsdp"))
            return mqtt_dec_fail(d, MQTT_RC_UNSUPPORTED_VERSION, NULL, "MQTT-3.1.1:3.1.2-1",
                                 "protocol name is not MQIsdp for level 3");
        return mqtt_dec_fail(d, MQTT_RC_UNSUPPORTED_VERSION, NULL, "MQTT-3.1.1:3.1.2-2",
                             "protocol level 3 (MQTT 3.1) is not supported");
    }
    if (c->version != MQTT_V311 && c->version != MQTT_V5) {
        d->version = MQTT_V5;
        return mqtt_dec_fail(d, MQTT_RC_UNSUPPORTED_VERSION, "MQTT-3.1.2-2", NULL,
                             "unsupported protocol level");
    }
    if (!str_is(c->protocol_name, "MQTT"))
        return mqtt_dec_fail(d, MQTT_RC_UNSUPPORTED_VERSION, "MQTT-3.1.2-1",
                             "MQTT-3.1.1:3.1.2-1", "protocol name is not MQTT");
    return VIGIL_OK;
}

static vigil_err connect_check_flags(struct mqtt_dec *d, struct mqtt_connect *c)
{
    uint8_t f = c->flags;

    c->clean_start = (f & 0x02) != 0;
    c->will = (f & 0x04) != 0;
    c->will_qos = (f >> 3) & 0x03;
    c->will_retain = (f & 0x20) != 0;
    c->has_password = (f & 0x40) != 0;
    c->has_username = (f & 0x80) != 0;

    if (f & 0x01)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.1.2-3", "MQTT-3.1.1:3.1.2-3",
                             "reserved connect flag is set");
    if (c->will_qos == 3)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.1.2-12", "MQTT-3.1.1:3.1.2-14",
                             "will QoS 3");
    if (!c->will && c->will_qos != 0)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.1.2-11", "MQTT-3.1.1:3.1.2-13",
                             "will QoS set without the will flag");
    if (!c->will && c->will_retain)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.1.2-13", "MQTT-3.1.1:3.1.2-15",
                             "will retain set without the will flag");
    if (d->version != MQTT_V5 && c->has_password && !c->has_username)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, NULL, "MQTT-3.1.1:3.1.2-22",
                             "password flag set without the user name flag");
    return VIGIL_OK;
}

/* Topic name rules shared by PUBLISH and the will topic. */
static bool has_wildcard(struct mqtt_str s)
{
    return memchr(s.p, '+', s.len) != NULL || memchr(s.p, '#', s.len) != NULL;
}

static vigil_err connect_read_will(struct mqtt_dec *d, struct mqtt_connect *c)
{
    if (d->version == MQTT_V5 &&
        mqtt_props_decode(d, MQTT_PROPCTX_WILL, &c->will_props) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (mqtt_dec_str(d, &c->will_topic) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (c->will_topic.len == 0)
        return mqtt_dec_fail(d, MQTT_RC_TOPIC_NAME_INVALID, "MQTT-4.7.3-1", "MQTT-3.1.1:4.7.3-1",
                             "empty will topic");
    if (has_wildcard(c->will_topic))
        return mqtt_dec_fail(d, MQTT_RC_TOPIC_NAME_INVALID, "MQTT-4.7.1", "MQTT-3.1.1:4.7.1-1",
                             "will topic contains a wildcard");
    if (!mqtt_rd_bin(&d->r, &c->will_payload))
        return mqtt_dec_truncated(d);
    return VIGIL_OK;
}

static vigil_err decode_connect(struct mqtt_dec *d, struct mqtt_packet *out)
{
    struct mqtt_connect *c = &out->connect;

    if (connect_read_level(d, c) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (!mqtt_rd_u8(&d->r, &c->flags) || !mqtt_rd_u16(&d->r, &c->keep_alive))
        return mqtt_dec_truncated(d);
    if (connect_check_flags(d, c) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (d->version == MQTT_V5 && mqtt_props_decode(d, MQTT_CONNECT, &out->props) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;

    /* The client identifier may be empty; whether to accept that is the
     * server's decision. */
    if (mqtt_dec_str(d, &c->client_id) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (c->will && connect_read_will(d, c) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (c->has_username && mqtt_dec_str(d, &c->username) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (c->has_password && !mqtt_rd_bin(&d->r, &c->password))
        return mqtt_dec_truncated(d);
    return VIGIL_OK;
}

static const uint8_t connack_codes_v5[] = {
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
};

static vigil_err decode_connack(struct mqtt_dec *d, struct mqtt_packet *out)
{
    uint8_t ack;

    if (!mqtt_rd_u8(&d->r, &ack) || !mqtt_rd_u8(&d->r, &out->reason_code))
        return mqtt_dec_truncated(d);
    if (ack & 0xFE)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.2.2-1", "MQTT-3.1.1:3.2.2.1",
                             "reserved connect acknowledge flag is set");
    out->session_present = (ack & 0x01) != 0;

    if (d->version != MQTT_V5) {
        if (out->reason_code > MQTT_V311_NOT_AUTHORIZED)
            return mqtt_dec_fail(d, MQTT_RC_MALFORMED, NULL, "MQTT-3.1.1:3.2.2.3",
                                 "reserved CONNACK return code");
        if (out->session_present && out->reason_code != 0)
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, NULL, "MQTT-3.1.1:3.2.2-4",
                                 "session present with a non-zero return code");
        return VIGIL_OK;
    }
    if (memchr(connack_codes_v5, out->reason_code, sizeof connack_codes_v5) == NULL)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.2.2.2", NULL,
                             "reason code not valid in CONNACK");
    if (out->session_present && out->reason_code >= 0x80)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.2.2-6", NULL,
                             "session present with a failure reason code");
    return mqtt_props_decode(d, MQTT_CONNACK, &out->props);
}

static vigil_err publish_check_flags(struct mqtt_dec *d, struct mqtt_publish *pub, uint8_t flags)
{
    pub->retain = (flags & 0x01) != 0;
    pub->qos = (flags >> 1) & 0x03;
    pub->dup = (flags & 0x08) != 0;

    if (pub->qos == 3)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.3.1-4", "MQTT-3.1.1:3.3.1-4",
                             "PUBLISH with QoS 3");
    if (pub->dup && pub->qos == 0)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.3.1-2", "MQTT-3.1.1:3.3.1-2",
                             "DUP set on a QoS 0 PUBLISH");
    return VIGIL_OK;
}

/* Rules that need the topic and the properties together (v5 only). */
static vigil_err publish_check_props(struct mqtt_dec *d, struct mqtt_packet *out)
{
    uint64_t present = out->props.present;

    if (d->is_server && (present & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.4-6", NULL,
                             "subscription identifier in a PUBLISH from a client");
    if (out->publish.topic.len == 0 && !(present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.3.2.3.4", NULL,
                             "empty topic name without a topic alias");
    return VIGIL_OK;
}

static vigil_err decode_publish(struct mqtt_dec *d, struct mqtt_packet *out)
{
    struct mqtt_publish *pub = &out->publish;

    if (publish_check_flags(d, pub, out->flags) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (mqtt_dec_str(d, &pub->topic) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (has_wildcard(pub->topic))
        return mqtt_dec_fail(d, MQTT_RC_TOPIC_NAME_INVALID, "MQTT-3.3.2-2", "MQTT-3.1.1:3.3.2-2",
                             "PUBLISH topic contains a wildcard");
    if (d->version != MQTT_V5 && pub->topic.len == 0)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, NULL, "MQTT-3.1.1:4.7.3-1",
                             "empty PUBLISH topic");

    if (pub->qos > 0) {
        if (!mqtt_rd_u16(&d->r, &out->packet_id))
            return mqtt_dec_truncated(d);
        if (out->packet_id == 0)
            return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR,
                                 d->is_server ? "MQTT-2.2.1-3" : "MQTT-2.2.1-4",
                                 "MQTT-3.1.1:2.3.1-1", "packet identifier 0");
    }
    if (d->version == MQTT_V5) {
        if (mqtt_props_decode(d, MQTT_PUBLISH, &out->props) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        if (publish_check_props(d, out) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
    }
    pub->payload.p = d->r.p;
    pub->payload.len = (uint32_t)mqtt_rd_left(&d->r);
    d->r.p = d->r.end;
    return VIGIL_OK;
}

static vigil_err decode_empty(struct mqtt_dec *d, struct mqtt_packet *out)
{
    return VIGIL_OK; /* PINGREQ, PINGRESP: mqtt_decode() rejects any body */
}

typedef vigil_err (*decode_fn)(struct mqtt_dec *d, struct mqtt_packet *out);

/* Per packet type: the body decoder, the required fixed-header flags
 * (PUBLISH: any), and who may send it. */
struct type_desc {
    decode_fn decode;
    int8_t flags;
    bool from_client;
    bool from_server;
};

static const struct type_desc type_table[16] = {
    [MQTT_CONNECT] = {decode_connect, 0, true, false},
    [MQTT_CONNACK] = {decode_connack, 0, false, true},
    [MQTT_PUBLISH] = {decode_publish, -1, true, true},
    [MQTT_PUBACK] = {mqtt_decode_ack, 0, true, true},
    [MQTT_PUBREC] = {mqtt_decode_ack, 0, true, true},
    [MQTT_PUBREL] = {mqtt_decode_ack, 2, true, true},
    [MQTT_PUBCOMP] = {mqtt_decode_ack, 0, true, true},
    [MQTT_SUBSCRIBE] = {mqtt_decode_subscribe, 2, true, false},
    [MQTT_SUBACK] = {mqtt_decode_suback, 0, false, true},
    [MQTT_UNSUBSCRIBE] = {mqtt_decode_unsubscribe, 2, true, false},
    [MQTT_UNSUBACK] = {mqtt_decode_suback, 0, false, true},
    [MQTT_PINGREQ] = {decode_empty, 0, true, false},
    [MQTT_PINGRESP] = {decode_empty, 0, false, true},
    [MQTT_DISCONNECT] = {mqtt_decode_disconnect, 0, true, true},
    [MQTT_AUTH] = {mqtt_decode_disconnect, 0, true, true},
};

/* Checks the type, the direction and the fixed-header flags. */
static vigil_err check_fixed_header(struct mqtt_dec *d, const struct type_desc *t, uint8_t flags)
{
    bool v5 = d->version == MQTT_V5;

    if (t->decode == NULL || (d->type == MQTT_AUTH && !v5))
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.1.2", "MQTT-3.1.1:2.2.1",
                             "reserved packet type");
    /* In MQTT 3.1.1 only the client sends DISCONNECT. */
    if ((d->is_server && !t->from_client) ||
        (!d->is_server && (!t->from_server || (d->type == MQTT_DISCONNECT && !v5))))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-2.1.2", "MQTT-3.1.1:2.2.1",
                             "packet type not allowed in this direction");
    if (t->flags >= 0 && flags != (uint8_t)t->flags)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.1.3-1", "MQTT-3.1.1:2.2.2-1",
                             "reserved fixed-header flags have the wrong value");
    return VIGIL_OK;
}

/* Returns the protocol level whose rule names apply to a CONNECT body at r,
 * for errors found before the level is read. */
static uint8_t connect_peek_level(const struct mqtt_reader *r)
{
    size_t left = mqtt_rd_left(r);
    size_t name_len;

    if (left < 2)
        return MQTT_V311;
    name_len = ((size_t)r->p[0] << 8) | r->p[1];
    if (left < 3 + name_len)
        return MQTT_V311;
    return r->p[2 + name_len] == MQTT_V5 ? MQTT_V5 : MQTT_V311;
}

/* Reads and checks the fixed header, then points the reader at the body. */
static vigil_err read_fixed_header(struct mqtt_dec *d, const uint8_t *buf, size_t len)
{
    size_t hdr;
    uint32_t remaining;
    vigil_err rc = mqtt_frame(buf, len, &hdr, &remaining, d->err);

    if (rc == VIGIL_ERR_PROTOCOL)
        return rc;
    if (rc != VIGIL_OK || hdr + remaining != len)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-2.1.4", "MQTT-3.1.1:2.2.3",
                             "remaining length does not match the packet length");
    d->r.p = buf + hdr;
    d->r.end = buf + len;
    return VIGIL_OK;
}

vigil_err mqtt_decode(const uint8_t *buf, size_t len, uint8_t version, bool is_server,
                      struct mqtt_packet *out, struct mqtt_error *err)
{
    struct mqtt_dec d = {
        .version = version == MQTT_V5 ? MQTT_V5 : MQTT_V311,
        .is_server = is_server,
        .err = err,
    };
    const struct type_desc *t;

    memset(out, 0, sizeof *out);
    if (buf == NULL || len < 2)
        return mqtt_dec_truncated(&d);
    out->type = d.type = buf[0] >> 4;
    out->flags = buf[0] & 0x0F;
    t = &type_table[d.type];

    if (read_fixed_header(&d, buf, len) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (d.type == MQTT_CONNECT)
        d.version = connect_peek_level(&d.r);
    if (check_fixed_header(&d, t, out->flags) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (t->decode(&d, out) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (mqtt_rd_left(&d.r) > 0)
        return mqtt_dec_fail(&d, MQTT_RC_MALFORMED, "MQTT-2.1.4", "MQTT-3.1.1:2.2.3",
                             "bytes left after the last field");
    return VIGIL_OK;
}
