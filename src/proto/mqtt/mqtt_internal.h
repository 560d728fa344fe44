/* Helpers shared by the MQTT codec's source files. They are not part of the
 * public API in mqtt.h. */
#ifndef VIGIL_PROTO_MQTT_INTERNAL_H
#define VIGIL_PROTO_MQTT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/mqtt/mqtt.h"

/* Result of a UTF-8 check: the decoder names a different rule for each. */
enum mqtt_utf8_result {
    MQTT_UTF8_OK,
    MQTT_UTF8_ILL_FORMED,
    MQTT_UTF8_NUL,
};

enum mqtt_utf8_result mqtt_utf8_check(const uint8_t *p, size_t len);

/* Bounds-checked cursor over one packet. Every read fails instead of
 * reading past end. */
struct mqtt_reader {
    const uint8_t *p;
    const uint8_t *end;
};

static inline size_t mqtt_rd_left(const struct mqtt_reader *r)
{
    return (size_t)(r->end - r->p);
}

bool mqtt_rd_u8(struct mqtt_reader *r, uint8_t *v);
bool mqtt_rd_u16(struct mqtt_reader *r, uint16_t *v);
bool mqtt_rd_u32(struct mqtt_reader *r, uint32_t *v);
/* Reads a two-byte length and that many bytes. */
bool mqtt_rd_bin(struct mqtt_reader *r, struct mqtt_str *v);

/* Outcome of reading a Variable Byte Integer. */
enum mqtt_vbi_result {
    MQTT_VBI_OK,
    MQTT_VBI_SHORT,       /* the input ends inside the integer */
    MQTT_VBI_TOO_LONG,    /* a fifth byte would be needed */
    MQTT_VBI_NOT_MINIMAL, /* more bytes than the value needs */
};

/* Reads a VBI at p (at most len bytes); sets *value and *used on MQTT_VBI_OK. */
enum mqtt_vbi_result mqtt_vbi_read(const uint8_t *p, size_t len, uint32_t *value, size_t *used);
/* Number of bytes the minimal encoding of v takes (v <= MQTT_VBI_MAX). */
size_t mqtt_vbi_size(uint32_t v);

/* Output cursor. With buf NULL it only counts, which is how sizes are
 * computed; a write past cap sets overflow and keeps counting. */
struct mqtt_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

void mqtt_wr_bytes(struct mqtt_writer *w, const void *p, size_t n);
void mqtt_wr_u8(struct mqtt_writer *w, uint8_t v);
void mqtt_wr_u16(struct mqtt_writer *w, uint16_t v);
void mqtt_wr_u32(struct mqtt_writer *w, uint32_t v);
void mqtt_wr_vbi(struct mqtt_writer *w, uint32_t v);
/* Writes a two-byte length and the bytes; false when longer than 65535. */
bool mqtt_wr_str(struct mqtt_writer *w, struct mqtt_str s);

/* Decoder state for one packet: the reader, the protocol level that picks
 * the rule names, the direction, and where to report an error. */
struct mqtt_dec {
    struct mqtt_reader r;
    uint8_t version;
    bool is_server;
    uint8_t type;
    struct mqtt_error *err;
};

/* Fills d->err and returns VIGIL_ERR_PROTOCOL. rule5 is the MQTT 5.0 rule,
 * rule311 the MQTT 3.1.1 one; rule311 NULL means the same rule applies. */
vigil_err mqtt_dec_fail(struct mqtt_dec *d, uint8_t reason, const char *rule5,
                        const char *rule311, const char *text);
/* Reports a field that runs past the end of the packet. */
vigil_err mqtt_dec_truncated(struct mqtt_dec *d);
/* Checks s as an MQTT UTF-8 string (rules 1.5.4-1 and 1.5.4-2). */
vigil_err mqtt_dec_utf8(struct mqtt_dec *d, struct mqtt_str s);
/* Reads a length-prefixed UTF-8 string and checks it. */
vigil_err mqtt_dec_str(struct mqtt_dec *d, struct mqtt_str *out);

/* Property context for the Will Properties of CONNECT; packet types use
 * their own number (1..15). */
#define MQTT_PROPCTX_WILL 0

/* Reads a v5 property block (length and properties) for context ctx into
 * props, checking identifiers, types, duplicates and value ranges. */
vigil_err mqtt_props_decode(struct mqtt_dec *d, unsigned ctx, struct mqtt_props *props);
/* Writes the property block (length prefix included) of props. Returns
 * false when a value cannot be encoded. */
bool mqtt_props_encode(struct mqtt_writer *w, const struct mqtt_props *props);
/* Size of the properties without the length prefix. */
size_t mqtt_props_body_size(const struct mqtt_props *props);

/* Per-type body decoders. Each reads the variable header and payload of
 * out->type from d->r; mqtt_decode() checks for bytes left over. */
vigil_err mqtt_decode_ack(struct mqtt_dec *d, struct mqtt_packet *out);
vigil_err mqtt_decode_subscribe(struct mqtt_dec *d, struct mqtt_packet *out);
vigil_err mqtt_decode_unsubscribe(struct mqtt_dec *d, struct mqtt_packet *out);
vigil_err mqtt_decode_suback(struct mqtt_dec *d, struct mqtt_packet *out);
vigil_err mqtt_decode_disconnect(struct mqtt_dec *d, struct mqtt_packet *out);

#endif
