/* MQTT framing: Variable Byte Integers, the fixed header, and the bounded
 * reader and writer the decoder and encoder are built on. */
#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

enum mqtt_vbi_result mqtt_vbi_read(const uint8_t *p, size_t len, uint32_t *value, size_t *used)
{
    uint32_t v = 0;

    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return MQTT_VBI_SHORT;
        v |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            /* A last byte of 0 after another byte adds nothing. */
            if (i > 0 && p[i] == 0)
                return MQTT_VBI_NOT_MINIMAL;
            *value = v;
            *used = i + 1;
            return MQTT_VBI_OK;
        }
    }
    return MQTT_VBI_TOO_LONG;
}

size_t mqtt_vbi_size(uint32_t v)
{
    if (v < 128u)
        return 1;
    if (v < 16384u)
        return 2;
    if (v < 2097152u)
        return 3;
    return 4;
}

/* The rules named here come from MQTT 5.0 section 1.5.5 for both versions,
 * because the fixed header is read before the protocol level is known. */
vigil_err mqtt_frame(const uint8_t *buf, size_t len, size_t *header_len, uint32_t *remaining,
                     struct mqtt_error *err)
{
    uint32_t value;
    size_t used;

    if (len < 2)
        return VIGIL_ERR_AGAIN;
    switch (mqtt_vbi_read(buf + 1, len - 1, &value, &used)) {
    case MQTT_VBI_OK:
        *header_len = 1 + used;
        *remaining = value;
        return VIGIL_OK;
    case MQTT_VBI_SHORT:
        return VIGIL_ERR_AGAIN;
    case MQTT_VBI_TOO_LONG:
        if (err)
            *err = (struct mqtt_error){MQTT_RC_MALFORMED, "MQTT-1.5.5",
                                       "remaining length longer than four bytes"};
        return VIGIL_ERR_PROTOCOL;
    case MQTT_VBI_NOT_MINIMAL:
    default:
        if (err)
            *err = (struct mqtt_error){MQTT_RC_MALFORMED, "MQTT-1.5.5-1",
                                       "remaining length not in its shortest encoding"};
        return VIGIL_ERR_PROTOCOL;
    }
}

bool mqtt_rd_u8(struct mqtt_reader *r, uint8_t *v)
{
    if (mqtt_rd_left(r) < 1)
        return false;
    *v = r->p[0];
    r->p += 1;
    return true;
}

bool mqtt_rd_u16(struct mqtt_reader *r, uint16_t *v)
{
    if (mqtt_rd_left(r) < 2)
        return false;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return true;
}

bool mqtt_rd_u32(struct mqtt_reader *r, uint32_t *v)
{
    if (mqtt_rd_left(r) < 4)
        return false;
    *v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
         r->p[3];
    r->p += 4;
    return true;
}

bool mqtt_rd_bin(struct mqtt_reader *r, struct mqtt_str *v)
{
    uint16_t n;
    struct mqtt_reader save = *r;

    if (!mqtt_rd_u16(r, &n) || mqtt_rd_left(r) < n) {
        *r = save;
        return false;
    }
    v->p = r->p;
    v->len = n;
    r->p += n;
    return true;
}

void mqtt_wr_bytes(struct mqtt_writer *w, const void *p, size_t n)
{
    if (w->buf != NULL && !w->overflow && n <= w->cap - w->len) {
        if (n > 0)
            memcpy(w->buf + w->len, p, n);
    } else if (w->buf != NULL) {
        w->overflow = true;
    }
    w->len += n;
}

void mqtt_wr_u8(struct mqtt_writer *w, uint8_t v)
{
    mqtt_wr_bytes(w, &v, 1);
}

void mqtt_wr_u16(struct mqtt_writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    mqtt_wr_bytes(w, b, sizeof b);
}

void mqtt_wr_u32(struct mqtt_writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    mqtt_wr_bytes(w, b, sizeof b);
}

void mqtt_wr_vbi(struct mqtt_writer *w, uint32_t v)
{
    uint8_t b[4];
    size_t n = 0;

    do {
        b[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v > 0)
            b[n] |= 0x80;
        n++;
    } while (v > 0 && n < sizeof b);
    mqtt_wr_bytes(w, b, n);
}

bool mqtt_wr_str(struct mqtt_writer *w, struct mqtt_str s)
{
    if (s.len > UINT16_MAX)
        return false;
    mqtt_wr_u16(w, (uint16_t)s.len);
    mqtt_wr_bytes(w, s.p, s.len);
    return true;
}
