/* Bounded output and text cleaning for the SIEM formatters. */
#include "export/siem_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secmon/engine.h"

void siem_out_init(struct siem_out *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->cap = cap;
    o->len = 0;
}

void siem_out_byte(struct siem_out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

void siem_out_str(struct siem_out *o, const char *s)
{
    while (*s != '\0')
        siem_out_byte(o, *s++);
}

void siem_out_fmt(struct siem_out *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    siem_out_str(o, tmp);
}

int siem_out_finish(struct siem_out *o)
{
    if (o->cap == 0 || o->len >= o->cap) {
        if (o->cap > 0)
            o->buf[0] = '\0';
        return -1;
    }
    o->buf[o->len] = '\0';
    return (int)o->len;
}

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when
 * the bytes are not valid UTF-8 (overlong, surrogate, above U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1Fu;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0Fu;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

void siem_out_text(struct siem_out *o, const char *s, size_t n, const char *escape, int newlines)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t seq = utf8_len(p + i, n - i);

        if (seq == 0) {
            siem_out_str(o, "\xEF\xBF\xBD");
            i++;
        } else if (newlines && (p[i] == '\n' || p[i] == '\r')) {
            siem_out_str(o, p[i] == '\n' ? "\\n" : "\\r");
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7F) {
            siem_out_byte(o, ' ');
            i++;
        } else if (escape != NULL && seq == 1 && strchr(escape, p[i]) != NULL) {
            siem_out_byte(o, '\\');
            siem_out_byte(o, (char)p[i++]);
        } else {
            for (size_t k = 0; k < seq; k++)
                siem_out_byte(o, (char)p[i++]);
        }
    }
}

void siem_clean_text(const char *s, char *out, size_t cap)
{
    struct siem_out o;
    size_t cut;

    if (cap == 0)
        return;
    siem_out_init(&o, out, cap);
    siem_out_text(&o, s, strlen(s), NULL, 0);
    if (o.len < cap) {
        out[o.len] = '\0';
        return;
    }
    /* The cursor kept the first cap bytes. Cutting at cap - 1 may split a
     * character, so the cut moves back to that character's first byte. */
    cut = cap - 1;
    while (cut > 0 && ((unsigned char)out[cut] & 0xC0) == 0x80)
        cut--;
    out[cut] = '\0';
}

int siem_split_peer(const char *peer, char *addr, size_t cap, unsigned *port)
{
    const char *colon;
    const char *host = peer;
    size_t hlen;
    char *end;
    unsigned long p;

    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');

        if (close == NULL || close[1] != ':')
            return -1;
        host = peer + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(peer, ':');
        if (colon == NULL || strchr(peer, ':') != colon)
            return -1;
        hlen = (size_t)(colon - peer);
    }
    if (hlen == 0 || hlen >= cap)
        return -1;
    p = strtoul(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p > 65535)
        return -1;
    memcpy(addr, host, hlen);
    addr[hlen] = '\0';
    *port = (unsigned)p;
    return 0;
}

const char *siem_alert_severity_name(uint8_t severity)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};

    return severity < sizeof names / sizeof names[0] ? names[severity] : "unknown";
}
