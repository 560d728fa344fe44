/* UTF-8 checks for MQTT strings (RFC 3629 well-formedness plus MQTT's
 * ban on U+0000) and packet type names. */
#include "proto/mqtt/mqtt_internal.h"

/* Decodes one code point at p[0..len) (len >= 1). Returns its length in
 * bytes and sets *cp, or returns 0 for an ill-formed sequence: overlong
 * forms, surrogates U+D800..U+DFFF, values above U+10FFFF, stray or
 * missing continuation bytes. */
static size_t utf8_decode_one(const uint8_t *p, size_t len, uint32_t *cp)
{
    uint8_t b = p[0];
    uint8_t lo = 0x80, hi = 0xBF;
    size_t n;
    uint32_t v;

    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2;
        v = b & 0x1Fu;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        v = b & 0x0Fu;
        if (b == 0xE0)
            lo = 0xA0; /* below is overlong */
        else if (b == 0xED)
            hi = 0x9F; /* above is a surrogate */
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        v = b & 0x07u;
        if (b == 0xF0)
            lo = 0x90; /* below is overlong */
        else if (b == 0xF4)
            hi = 0x8F; /* above is past U+10FFFF */
    } else {
        return 0;
    }
    if (len < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (i > 1 && (p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3Fu);
    }
    *cp = v;
    return n;
}

enum mqtt_utf8_result mqtt_utf8_check(const uint8_t *p, size_t len)
{
    size_t i = 0;
    bool nul = false;

    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode_one(p + i, len - i, &cp);

        if (n == 0)
            return MQTT_UTF8_ILL_FORMED;
        if (cp == 0)
            nul = true;
        i += n;
    }
    return nul ? MQTT_UTF8_NUL : MQTT_UTF8_OK;
}

bool mqtt_utf8_valid(const uint8_t *p, size_t len)
{
    return mqtt_utf8_check(p, len) == MQTT_UTF8_OK;
}

/* Control characters (U+0001..U+001F, U+007F..U+009F) and non-characters
 * (U+FDD0..U+FDEF and the last two code points of every plane). */
static bool utf8_is_flagged(uint32_t cp)
{
    if ((cp >= 0x01 && cp <= 0x1F) || (cp >= 0x7F && cp <= 0x9F))
        return true;
    if (cp >= 0xFDD0 && cp <= 0xFDEF)
        return true;
    return (cp & 0xFFFEu) == 0xFFFEu;
}

/* Reports control characters and non-characters. Ill-formed bytes are
 * skipped one at a time, so any input is safe to pass. */
bool mqtt_utf8_has_control(const uint8_t *p, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp;
        size_t n = utf8_decode_one(p + i, len - i, &cp);

        if (n == 0) {
            i++;
            continue;
        }
        if (utf8_is_flagged(cp))
            return true;
        i += n;
    }
    return false;
}

const char *mqtt_type_name(unsigned type)
{
    static const char *const names[16] = {
        "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
        "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };

    return type < 16 ? names[type] : "RESERVED";
}
