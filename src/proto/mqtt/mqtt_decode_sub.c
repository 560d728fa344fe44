/* MQTT packet decoder, second part: acknowledgements, SUBSCRIBE and
 * UNSUBSCRIBE with their replies, DISCONNECT and AUTH, and the payload
 * iterators. Rule names follow the scheme described in mqtt_decode.c. */
#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

static const uint8_t puback_codes[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t pubrel_codes[] = {0x00, 0x92};
static const uint8_t suback_codes_v5[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                          0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t suback_codes_v311[] = {0x00, 0x01, 0x02, 0x80};
static const uint8_t unsuback_codes[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t disconnect_codes[] = {
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94,
    0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
};
static const uint8_t auth_codes[] = {0x00, 0x18, 0x19};

/* Reason codes allowed in each v5 packet type, and the section listing them. */
struct code_list {
    const uint8_t *codes;
    size_t n;
    const char *section;
};

static struct code_list codes_for(uint8_t type)
{
    switch (type) {
    case MQTT_PUBACK: return (struct code_list){puback_codes, sizeof puback_codes, "MQTT-3.4.2.1"};
    case MQTT_PUBREC: return (struct code_list){puback_codes, sizeof puback_codes, "MQTT-3.5.2.1"};
    case MQTT_PUBREL: return (struct code_list){pubrel_codes, sizeof pubrel_codes, "MQTT-3.6.2.1"};
    case MQTT_PUBCOMP: return (struct code_list){pubrel_codes, sizeof pubrel_codes, "MQTT-3.7.2.1"};
    case MQTT_SUBACK:
        return (struct code_list){suback_codes_v5, sizeof suback_codes_v5, "MQTT-3.9.3"};
    case MQTT_UNSUBACK:
        return (struct code_list){unsuback_codes, sizeof unsuback_codes, "MQTT-3.11.3"};
    case MQTT_DISCONNECT:
        return (struct code_list){disconnect_codes, sizeof disconnect_codes, "MQTT-3.14.2.1"};
    default: return (struct code_list){auth_codes, sizeof auth_codes, "MQTT-3.15.2.1"};
    }
}

static vigil_err check_reason(struct mqtt_dec *d, uint8_t code)
{
    struct code_list list = codes_for(d->type);

    if (memchr(list.codes, code, list.n) == NULL)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, list.section, NULL,
                             "reason code not valid for this packet type");
    return VIGIL_OK;
}

/* Reads the optional reason code and property block of a v5 packet whose
 * short forms omit them: no byte left means reason 0, one or more bytes
 * after the reason code mean a property block follows. */
static vigil_err read_reason_and_props(struct mqtt_dec *d, struct mqtt_packet *out)
{
    if (mqtt_rd_left(&d->r) == 0)
        return VIGIL_OK;
    mqtt_rd_u8(&d->r, &out->reason_code);
    if (check_reason(d, out->reason_code) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (mqtt_rd_left(&d->r) == 0)
        return VIGIL_OK;
    return mqtt_props_decode(d, d->type, &out->props);
}

vigil_err mqtt_decode_ack(struct mqtt_dec *d, struct mqtt_packet *out)
{
    if (!mqtt_rd_u16(&d->r, &out->packet_id))
        return mqtt_dec_truncated(d);
    if (d->version != MQTT_V5)
        return VIGIL_OK;
    return read_reason_and_props(d, out);
}

vigil_err mqtt_decode_disconnect(struct mqtt_dec *d, struct mqtt_packet *out)
{
    if (d->version != MQTT_V5)
        return VIGIL_OK;
    if (read_reason_and_props(d, out) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (d->type == MQTT_DISCONNECT && !d->is_server &&
        (out->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.14.2-2", NULL,
                             "session expiry interval in a DISCONNECT from the server");
    return VIGIL_OK;
}

/* Checks one level of a topic filter for wildcard placement. */
static vigil_err check_filter_level(struct mqtt_dec *d, const uint8_t *lvl, size_t n, bool last)
{
    if (memchr(lvl, '#', n) != NULL && (n != 1 || !last))
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-4.7.1-1", "MQTT-3.1.1:4.7.1-2",
                             "'#' is not the whole last level of the topic filter");
    if (memchr(lvl, '+', n) != NULL && n != 1)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-4.7.1-2", "MQTT-3.1.1:4.7.1-3",
                             "'+' does not occupy a whole level of the topic filter");
    return VIGIL_OK;
}

/* Checks "$share/{ShareName}/{filter}" (v5 only): the name is at least
 * one character without '+' or '#', and a filter follows. */
static vigil_err check_shared(struct mqtt_dec *d, struct mqtt_str f)
{
    const uint8_t *name = f.p + 7;
    const uint8_t *end = f.p + f.len;
    const uint8_t *slash = memchr(name, '/', (size_t)(end - name));
    size_t name_len = slash != NULL ? (size_t)(slash - name) : (size_t)(end - name);

    if (name_len == 0 || memchr(name, '+', name_len) != NULL || memchr(name, '#', name_len))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-4.8.2-1", NULL,
                             "shared subscription with an empty or invalid share name");
    if (slash == NULL || slash + 1 == end)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-4.8.2-2", NULL,
                             "shared subscription without a topic filter");
    return VIGIL_OK;
}

/* Reads one topic filter and checks it. *shared is set when it is a v5
 * shared subscription. */
static vigil_err read_filter(struct mqtt_dec *d, struct mqtt_str *f, bool *shared)
{
    const uint8_t *lvl, *end;

    if (mqtt_dec_str(d, f) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (f->len == 0)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-4.7.3-1", "MQTT-3.1.1:4.7.3-1",
                             "empty topic filter");
    lvl = f->p;
    end = f->p + f->len;
    for (;;) {
        const uint8_t *slash = memchr(lvl, '/', (size_t)(end - lvl));
        const uint8_t *lvl_end = slash != NULL ? slash : end;

        if (check_filter_level(d, lvl, (size_t)(lvl_end - lvl), slash == NULL) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        if (slash == NULL)
            break;
        lvl = slash + 1;
    }
    *shared = d->version == MQTT_V5 && f->len >= 7 && memcmp(f->p, "$share/", 7) == 0;
    return *shared ? check_shared(d, *f) : VIGIL_OK;
}

static vigil_err check_sub_options(struct mqtt_dec *d, uint8_t o, bool shared)
{
    if (d->version != MQTT_V5) {
        if ((o & 0xFC) != 0 || MQTT_SUBOPT_QOS(o) == 3)
            return mqtt_dec_fail(d, MQTT_RC_MALFORMED, NULL, "MQTT-3.1.1:3.8.3-4",
                                 "reserved bits or QoS 3 in the requested QoS byte");
        return VIGIL_OK;
    }
    if (o & 0xC0)
        return mqtt_dec_fail(d, MQTT_RC_MALFORMED, "MQTT-3.8.3-5", NULL,
                             "reserved bits set in subscription options");
    if (MQTT_SUBOPT_QOS(o) == 3)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.8.3.1", NULL,
                             "maximum QoS 3 in subscription options");
    if (MQTT_SUBOPT_RH(o) == 3)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.8.3.1", NULL,
                             "retain handling 3 in subscription options");
    if (shared && (o & MQTT_SUBOPT_NO_LOCAL))
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.8.3-4", NULL,
                             "no local set on a shared subscription");
    return VIGIL_OK;
}

/* Reads the packet identifier (non-zero) and, in v5, the properties. */
static vigil_err read_id_and_props(struct mqtt_dec *d, struct mqtt_packet *out, bool nonzero)
{
    if (!mqtt_rd_u16(&d->r, &out->packet_id))
        return mqtt_dec_truncated(d);
    if (nonzero && out->packet_id == 0)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-2.2.1-3", "MQTT-3.1.1:2.3.1-1",
                             "packet identifier 0");
    if (d->version == MQTT_V5)
        return mqtt_props_decode(d, d->type, &out->props);
    return VIGIL_OK;
}

static void start_entries(struct mqtt_dec *d, struct mqtt_packet *out)
{
    out->entries.p = d->r.p;
    out->entries.len = (uint32_t)mqtt_rd_left(&d->r);
}

vigil_err mqtt_decode_subscribe(struct mqtt_dec *d, struct mqtt_packet *out)
{
    if (read_id_and_props(d, out, true) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    start_entries(d, out);
    if (out->entries.len == 0)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.8.3-2", "MQTT-3.1.1:3.8.3-3",
                             "SUBSCRIBE without a topic filter");
    while (mqtt_rd_left(&d->r) > 0) {
        struct mqtt_str f;
        bool shared;
        uint8_t options;

        if (read_filter(d, &f, &shared) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        if (!mqtt_rd_u8(&d->r, &options))
            return mqtt_dec_truncated(d);
        if (check_sub_options(d, options, shared) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        out->n_entries++;
    }
    return VIGIL_OK;
}

vigil_err mqtt_decode_unsubscribe(struct mqtt_dec *d, struct mqtt_packet *out)
{
    if (read_id_and_props(d, out, true) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    start_entries(d, out);
    if (out->entries.len == 0)
        return mqtt_dec_fail(d, MQTT_RC_PROTOCOL_ERROR, "MQTT-3.10.3-2", "MQTT-3.1.1:3.10.3-2",
                             "UNSUBSCRIBE without a topic filter");
    while (mqtt_rd_left(&d->r) > 0) {
        struct mqtt_str f;
        bool shared;

        if (read_filter(d, &f, &shared) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
        out->n_entries++;
    }
    return VIGIL_OK;
}

/* SUBACK and UNSUBACK: a packet identifier, v5 properties, then one reason
 * code per filter. A v3.1.1 UNSUBACK has no payload. */
vigil_err mqtt_decode_suback(struct mqtt_dec *d, struct mqtt_packet *out)
{
    bool v5 = d->version == MQTT_V5;

    if (read_id_and_props(d, out, false) != VIGIL_OK)
        return VIGIL_ERR_PROTOCOL;
    if (!v5 && d->type == MQTT_UNSUBACK)
        return VIGIL_OK;
    start_entries(d, out);
    for (uint32_t i = 0; i < out->entries.len; i++) {
        uint8_t code = out->entries.p[i];

        if (!v5 && memchr(suback_codes_v311, code, sizeof suback_codes_v311) == NULL)
            return mqtt_dec_fail(d, MQTT_RC_MALFORMED, NULL, "MQTT-3.1.1:3.9.3-2",
                                 "reserved SUBACK return code");
        if (v5 && check_reason(d, code) != VIGIL_OK)
            return VIGIL_ERR_PROTOCOL;
    }
    out->n_entries = out->entries.len;
    d->r.p = d->r.end;
    return VIGIL_OK;
}

static bool entries_reader(const struct mqtt_packet *pkt, const uint8_t *cursor,
                           struct mqtt_reader *r)
{
    const uint8_t *end = pkt->entries.p + pkt->entries.len;

    if (pkt->entries.p == NULL || cursor == NULL || cursor < pkt->entries.p || cursor >= end)
        return false;
    r->p = cursor;
    r->end = end;
    return true;
}

bool mqtt_sub_next(const struct mqtt_packet *pkt, const uint8_t **cursor,
                   struct mqtt_sub_entry *out)
{
    struct mqtt_reader r;

    if (!entries_reader(pkt, *cursor, &r))
        return false;
    if (!mqtt_rd_bin(&r, &out->filter) || !mqtt_rd_u8(&r, &out->options))
        return false;
    *cursor = r.p;
    return true;
}

bool mqtt_unsub_next(const struct mqtt_packet *pkt, const uint8_t **cursor, struct mqtt_str *out)
{
    struct mqtt_reader r;

    if (!entries_reader(pkt, *cursor, &r))
        return false;
    if (!mqtt_rd_bin(&r, out))
        return false;
    *cursor = r.p;
    return true;
}
