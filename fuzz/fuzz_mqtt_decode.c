/* libFuzzer harness for the MQTT codec: frames and decodes a byte stream,
 * then re-encodes every accepted packet and requires the result to decode
 * to the same packet and to encode to the same bytes again.
 * The first input byte selects the session: bit 0 set means MQTT 5.0,
 * otherwise 3.1.1; bit 1 set decodes as a client (server-to-client
 * packets), otherwise as the server. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqtt/mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(struct mqtt_str a, struct mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* Writes the user properties of props in wire format, for verbatim. */
static size_t user_props_wire(const struct mqtt_props *props, uint8_t *out)
{
    const uint8_t *cursor = props->raw.p;
    struct mqtt_user_prop up;
    size_t n = 0;
    uint32_t count = 0;

    while (mqtt_user_prop_next(props, &cursor, &up)) {
        out[n++] = MQTT_PROP_USER_PROPERTY;
        out[n++] = (uint8_t)(up.name.len >> 8);
        out[n++] = (uint8_t)up.name.len;
        memcpy(out + n, up.name.p, up.name.len);
        n += up.name.len;
        out[n++] = (uint8_t)(up.value.len >> 8);
        out[n++] = (uint8_t)up.value.len;
        memcpy(out + n, up.value.p, up.value.len);
        n += up.value.len;
        count++;
    }
    if (count != props->n_user)
        abort();
    return n;
}

static void check_props_equal(const struct mqtt_props *a, const struct mqtt_props *b)
{
    if (a->present != b->present || a->n_user != b->n_user || a->n_sub_ids != b->n_sub_ids)
        abort();
    if (!str_eq(a->content_type, b->content_type) || !str_eq(a->reason_string, b->reason_string))
        abort();
    if (a->message_expiry != b->message_expiry || a->topic_alias != b->topic_alias)
        abort();
    if (memcmp(a->sub_ids, b->sub_ids, sizeof a->sub_ids[0] * a->n_sub_ids) != 0)
        abort();
}

static void check_equal(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
    if (a->type != b->type || a->flags != b->flags || a->packet_id != b->packet_id ||
        a->reason_code != b->reason_code || a->session_present != b->session_present ||
        a->n_entries != b->n_entries || !str_eq(a->entries, b->entries))
        abort();
    check_props_equal(&a->props, &b->props);
    if (!str_eq(a->publish.topic, b->publish.topic) ||
        !str_eq(a->publish.payload, b->publish.payload))
        abort();
    if (a->connect.flags != b->connect.flags || a->connect.keep_alive != b->connect.keep_alive ||
        !str_eq(a->connect.client_id, b->connect.client_id) ||
        !str_eq(a->connect.will_topic, b->connect.will_topic) ||
        !str_eq(a->connect.password, b->connect.password))
        abort();
    check_props_equal(&a->connect.will_props, &b->connect.will_props);
}

/* Walks the payload iterators and checks they agree with the decoder. */
static void walk_payload(const struct mqtt_packet *pkt)
{
    const uint8_t *cursor = pkt->entries.p;
    uint32_t n = 0;

    if (pkt->type == MQTT_SUBSCRIBE) {
        struct mqtt_sub_entry e;

        while (mqtt_sub_next(pkt, &cursor, &e))
            n++;
    } else if (pkt->type == MQTT_UNSUBSCRIBE) {
        struct mqtt_str f;

        while (mqtt_unsub_next(pkt, &cursor, &f))
            n++;
    } else {
        return;
    }
    if (n != pkt->n_entries)
        abort();
}

/* Forward properties of a PUBLISH must form a valid property block. */
static void check_forward_props(const struct mqtt_packet *pkt)
{
    uint8_t fwd[4096], buf[8192];
    struct mqtt_packet out = {.type = MQTT_PUBLISH};
    struct mqtt_packet back;
    struct mqtt_error err;
    size_t n;

    if (pkt->type != MQTT_PUBLISH || pkt->props.raw.len > sizeof fwd)
        return;
    n = mqtt_encode_forward_props(&pkt->props, fwd, sizeof fwd);
    out.publish.topic = (struct mqtt_str){(const uint8_t *)"t", 1};
    out.props.verbatim = (struct mqtt_str){fwd, (uint32_t)n};
    n = mqtt_encode(&out, MQTT_V5, buf, sizeof buf);
    if (n == 0 || mqtt_decode(buf, n, MQTT_V5, true, &back, &err) != VIGIL_OK)
        abort();
    if (back.props.n_user != pkt->props.n_user)
        abort();
}

static void roundtrip(const struct mqtt_packet *pkt, uint8_t version, bool is_server)
{
    struct mqtt_packet copy = *pkt, again;
    struct mqtt_error err;
    uint8_t enc_version = pkt->type == MQTT_CONNECT ? pkt->connect.version : version;
    uint8_t *vb = malloc(pkt->props.raw.len + 1);
    uint8_t *wvb = malloc(pkt->connect.will_props.raw.len + 1);
    uint8_t *buf, *buf2;
    size_t size, n;

    copy.props.verbatim = (struct mqtt_str){vb, (uint32_t)user_props_wire(&pkt->props, vb)};
    copy.connect.will_props.verbatim =
        (struct mqtt_str){wvb, (uint32_t)user_props_wire(&pkt->connect.will_props, wvb)};
    size = mqtt_encoded_size(&copy, enc_version);
    if (size == 0)
        abort();
    buf = malloc(size);
    buf2 = malloc(size);
    n = mqtt_encode(&copy, enc_version, buf, size);
    if (n != size || mqtt_encode(&copy, enc_version, buf2, size - 1) != 0)
        abort();
    if (mqtt_decode(buf, n, version, is_server, &again, &err) != VIGIL_OK)
        abort();
    check_equal(pkt, &again);

    /* Encoding the decoded copy again gives the same bytes. */
    copy = again;
    copy.props.verbatim = (struct mqtt_str){vb, (uint32_t)user_props_wire(&again.props, vb)};
    copy.connect.will_props.verbatim =
        (struct mqtt_str){wvb, (uint32_t)user_props_wire(&again.connect.will_props, wvb)};
    if (mqtt_encode(&copy, enc_version, buf2, size) != n || memcmp(buf, buf2, n) != 0)
        abort();
    free(buf2);
    free(buf);
    free(wvb);
    free(vb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t version;
    bool is_server;
    size_t off = 1;

    if (size < 1)
        return 0;
    version = (data[0] & 1) ? MQTT_V5 : MQTT_V311;
    is_server = (data[0] & 2) == 0;

    while (off < size) {
        size_t hdr;
        uint32_t remaining;
        struct mqtt_packet pkt;
        struct mqtt_error err;

        if (mqtt_frame(data + off, size - off, &hdr, &remaining, &err) != VIGIL_OK)
            break;
        if (remaining > size - off - hdr)
            break;
        if (mqtt_decode(data + off, hdr + remaining, version, is_server, &pkt, &err) ==
            VIGIL_OK) {
            walk_payload(&pkt);
            check_forward_props(&pkt);
            mqtt_utf8_has_control(pkt.publish.topic.p, pkt.publish.topic.len);
            roundtrip(&pkt, version, is_server);
            if (pkt.type == MQTT_CONNECT)
                version = pkt.connect.version;
        } else if (err.rule == NULL || err.text == NULL || err.reason_code < 0x80) {
            abort();
        }
        off += hdr + remaining;
    }
    return 0;
}
