/* MQTT packet encoder for both versions and both directions. Each body
 * writer runs twice: once on a counting writer to learn the Remaining
 * Length, once into the caller's buffer. */
#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

static struct mqtt_str cstr(const char *s)
{
    return (struct mqtt_str){(const uint8_t *)s, (uint32_t)strlen(s)};
}

static bool props_empty(const struct mqtt_props *props)
{
    return mqtt_props_body_size(props) == 0;
}

static uint8_t connect_flags(const struct mqtt_connect *c)
{
    return (uint8_t)((c->clean_start ? 0x02 : 0) | (c->will ? 0x04 : 0) |
                     (c->will ? (c->will_qos & 0x03) << 3 : 0) |
                     (c->will && c->will_retain ? 0x20 : 0) | (c->has_password ? 0x40 : 0) |
                     (c->has_username ? 0x80 : 0));
}

static bool encode_connect(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w)
{
    const struct mqtt_connect *c = &pkt->connect;
    bool v5 = version == MQTT_V5;
    bool ok;

    if (c->will_qos > 2 || (!v5 && c->has_password && !c->has_username))
        return false;
    mqtt_wr_str(w, cstr(version == MQTT_V31 ? "MQIsdp" : "MQTT"));
    mqtt_wr_u8(w, version);
    mqtt_wr_u8(w, connect_flags(c));
    mqtt_wr_u16(w, c->keep_alive);
    if (v5 && !mqtt_props_encode(w, &pkt->props))
        return false;
    ok = mqtt_wr_str(w, c->client_id);
    if (c->will) {
        if (v5 && !mqtt_props_encode(w, &c->will_props))
            return false;
        ok = ok && mqtt_wr_str(w, c->will_topic) && mqtt_wr_str(w, c->will_payload);
    }
    if (c->has_username)
        ok = ok && mqtt_wr_str(w, c->username);
    if (c->has_password)
        ok = ok && mqtt_wr_str(w, c->password);
    return ok;
}

/* Maps a v5 CONNACK reason code to the closest v3.1.1 return code; codes
 * 0..5 pass unchanged. Returns -1 for codes neither version defines. */
static int connack_code_v311(uint8_t code)
{
    if (code <= MQTT_V311_NOT_AUTHORIZED)
        return code;
    switch (code) {
    case MQTT_RC_UNSUPPORTED_VERSION: return MQTT_V311_BAD_VERSION;
    case MQTT_RC_CLIENT_ID_INVALID: return MQTT_V311_ID_REJECTED;
    case MQTT_RC_BAD_USER_OR_PASSWORD:
    case MQTT_RC_BAD_AUTH_METHOD: return MQTT_V311_BAD_USER_OR_PASSWORD;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED: return MQTT_V311_NOT_AUTHORIZED;
    default: return code >= 0x80 ? MQTT_V311_SERVER_UNAVAILABLE : -1;
    }
}

static bool encode_connack(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w)
{
    int code = pkt->reason_code;

    if (version != MQTT_V5)
        code = connack_code_v311(pkt->reason_code);
    if (code < 0)
        return false;
    mqtt_wr_u8(w, pkt->session_present ? 1 : 0);
    mqtt_wr_u8(w, (uint8_t)code);
    return version != MQTT_V5 || mqtt_props_encode(w, &pkt->props);
}

static bool encode_publish(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w)
{
    const struct mqtt_publish *pub = &pkt->publish;

    if (pub->qos > 2 || (pub->qos > 0 && pkt->packet_id == 0) || (pub->dup && pub->qos == 0))
        return false;
    if (!mqtt_wr_str(w, pub->topic))
        return false;
    if (pub->qos > 0)
        mqtt_wr_u16(w, pkt->packet_id);
    if (version == MQTT_V5 && !mqtt_props_encode(w, &pkt->props))
        return false;
    mqtt_wr_bytes(w, pub->payload.p, pub->payload.len);
    return true;
}

/* Writes the reason code and properties of a v5 packet in its shortest
 * form. with_prop_len_always keeps the property length whenever the reason
 * code is written (AUTH, whose short form without it is not defined). */
static bool encode_reason_props(const struct mqtt_packet *pkt, struct mqtt_writer *w,
                                bool with_prop_len_always)
{
    bool empty = props_empty(&pkt->props);

    if (pkt->reason_code == 0 && empty)
        return true;
    mqtt_wr_u8(w, pkt->reason_code);
    if (empty && !with_prop_len_always)
        return true;
    return mqtt_props_encode(w, &pkt->props);
}

static bool encode_ack(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w)
{
    mqtt_wr_u16(w, pkt->packet_id);
    return version != MQTT_V5 || encode_reason_props(pkt, w, false);
}

/* SUBSCRIBE, UNSUBSCRIBE, SUBACK, UNSUBACK: identifier, v5 properties and
 * the entries bytes. */
static bool encode_sub(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w)
{
    bool request = pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE;

    if (request && (pkt->packet_id == 0 || pkt->entries.len == 0))
        return false;
    mqtt_wr_u16(w, pkt->packet_id);
    if (version == MQTT_V5 && !mqtt_props_encode(w, &pkt->props))
        return false;
    if (version != MQTT_V5 && pkt->type == MQTT_UNSUBACK)
        return true;
    mqtt_wr_bytes(w, pkt->entries.p, pkt->entries.len);
    return true;
}

static bool encode_disconnect(const struct mqtt_packet *pkt, uint8_t version,
                              struct mqtt_writer *w)
{
    if (version != MQTT_V5)
        return pkt->type == MQTT_DISCONNECT; /* AUTH does not exist in v3.1.1 */
    return encode_reason_props(pkt, w, pkt->type == MQTT_AUTH);
}

/* Writes the body of pkt and sets *first to the first header byte. */
static bool encode_body(const struct mqtt_packet *pkt, uint8_t version, struct mqtt_writer *w,
                        uint8_t *first)
{
    uint8_t flags = 0;

    if (pkt->type == MQTT_PUBREL || pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE)
        flags = 0x02;
    else if (pkt->type == MQTT_PUBLISH)
        flags = (uint8_t)((pkt->publish.dup ? 0x08 : 0) | (pkt->publish.qos & 0x03) << 1 |
                          (pkt->publish.retain ? 0x01 : 0));
    *first = (uint8_t)(pkt->type << 4 | flags);

    switch (pkt->type) {
    case MQTT_CONNECT: return encode_connect(pkt, version, w);
    case MQTT_CONNACK: return encode_connack(pkt, version, w);
    case MQTT_PUBLISH: return encode_publish(pkt, version, w);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return encode_ack(pkt, version, w);
    case MQTT_SUBSCRIBE:
    case MQTT_SUBACK:
    case MQTT_UNSUBSCRIBE:
    case MQTT_UNSUBACK: return encode_sub(pkt, version, w);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: return true;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: return encode_disconnect(pkt, version, w);
    default: return false;
    }
}

/* Returns the body length, or SIZE_MAX when pkt cannot be encoded. */
static size_t body_size(const struct mqtt_packet *pkt, uint8_t version, uint8_t *first)
{
    struct mqtt_writer w = {0};

    if (version != MQTT_V31 && version != MQTT_V311 && version != MQTT_V5)
        return SIZE_MAX;
    if (pkt->type != MQTT_CONNECT && version == MQTT_V31)
        version = MQTT_V311; /* only CONNECT differs between 3.1 and 3.1.1 here */
    if (!encode_body(pkt, version, &w, first) || w.len > MQTT_VBI_MAX)
        return SIZE_MAX;
    return w.len;
}

size_t mqtt_encoded_size(const struct mqtt_packet *pkt, uint8_t version)
{
    uint8_t first;
    size_t body = body_size(pkt, version, &first);

    if (body == SIZE_MAX)
        return 0;
    return 1 + mqtt_vbi_size((uint32_t)body) + body;
}

size_t mqtt_encode(const struct mqtt_packet *pkt, uint8_t version, uint8_t *out, size_t cap)
{
    uint8_t first;
    size_t body = body_size(pkt, version, &first);
    struct mqtt_writer w = {.buf = out, .cap = cap};

    if (body == SIZE_MAX || out == NULL || 1 + mqtt_vbi_size((uint32_t)body) + body > cap)
        return 0;
    if (pkt->type != MQTT_CONNECT && version == MQTT_V31)
        version = MQTT_V311;
    mqtt_wr_u8(&w, first);
    mqtt_wr_vbi(&w, (uint32_t)body);
    if (!encode_body(pkt, version, &w, &first) || w.overflow)
        return 0;
    return w.len;
}

size_t mqtt_encode_sub_entry(const char *filter, int options, uint8_t *out, size_t cap)
{
    struct mqtt_writer w = {.buf = out, .cap = cap};
    size_t n = filter != NULL ? strlen(filter) : 0;

    if (out == NULL || filter == NULL || n > UINT16_MAX || options > 0xFF)
        return 0;
    mqtt_wr_str(&w, (struct mqtt_str){(const uint8_t *)filter, (uint32_t)n});
    if (options >= 0)
        mqtt_wr_u8(&w, (uint8_t)options);
    return w.overflow ? 0 : w.len;
}
