/* Security event construction and JSON formatting. */
#include "secmon/event.h"

#include <stdio.h>
#include <string.h>

#include "core/time.h"

/* Output cursor: writes past cap are counted in len but not stored, so the
 * caller learns whether the buffer was large enough. */
struct json_out {
    char *buf;
    size_t cap;
    size_t len;
};

static void out_byte(struct json_out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void out_bytes(struct json_out *o, const char *s, size_t n)
{
    if (o->len < o->cap)
        memcpy(o->buf + o->len, s, n <= o->cap - o->len ? n : o->cap - o->len);
    o->len += n;
}

static void out_str(struct json_out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

/* Writes v in decimal without the format parser of snprintf, which took
 * most of the time of a short event's JSON. */
static void out_uint(struct json_out *o, unsigned long long v)
{
    char num[24];
    size_t i = sizeof num;

    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    out_bytes(o, num + i, sizeof num - i);
}

/* Writes the RFC 3339 time of us with microseconds, as
 * vigil_time_format_rfc3339 does. The date and time of day change once a
 * second, so each thread keeps the last second it formatted. */
static void out_timestamp(struct json_out *o, int64_t us)
{
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[40];
    int64_t sec = us / 1000000, frac = us % 1000000;
    char digits[6];

    if (us < 0) {
        char stamp[40];

        out_str(o, vigil_time_format_rfc3339(us, stamp, sizeof stamp));
        return;
    }
    if (sec != cached_sec) {
        /* "YYYY-MM-DDTHH:MM:SS" is the part before the fraction. */
        vigil_time_format_rfc3339(sec * 1000000, cached, sizeof cached);
        cached[strcspn(cached, ".")] = '\0';
        cached_sec = sec;
    }
    out_str(o, cached);
    for (int i = 5; i >= 0; i--) {
        digits[i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    out_byte(o, '.');
    out_bytes(o, digits, sizeof digits);
    out_byte(o, 'Z');
}

void vigil_event_init(struct vigil_event *ev, enum vigil_event_type type)
{
    memset(ev, 0, sizeof *ev);
    ev->type = (uint8_t)type;
    ev->ts_us = vigil_time_now_us();
}

/* Returns the length of the valid UTF-8 sequence at s (at most n bytes
 * available), or 0 when the bytes there are not valid UTF-8. Overlong
 * forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

void vigil_event_set(char *field, size_t cap, const char *s, size_t len)
{
    size_t n = 0;

    if (cap == 0)
        return;
    if (s != NULL) {
        const char *nul = memchr(s, '\0', len);

        if (nul != NULL)
            len = (size_t)(nul - s);
        n = len < cap - 1 ? len : cap - 1;
        /* Truncation backs off to a character boundary (at most 3 bytes,
         * the longest UTF-8 tail) so that a cut never turns a valid
         * multi-byte character into replacement characters. */
        if (n < len) {
            size_t cut = n;

            while (cut > 0 && n - cut < 3 && ((unsigned char)s[cut] & 0xC0) == 0x80)
                cut--;
            if (((unsigned char)s[cut] & 0xC0) != 0x80)
                n = cut;
        }
        memcpy(field, s, n);
    }
    field[n] = '\0';
}

const char *vigil_event_type_name(enum vigil_event_type type)
{
    static const char *const names[VIGIL_EV_TYPE_COUNT] = {
        [VIGIL_EV_CONNECT_ATTEMPT] = "connect_attempt",
        [VIGIL_EV_AUTH_SUCCESS] = "auth_success",
        [VIGIL_EV_AUTH_FAILURE] = "auth_failure",
        [VIGIL_EV_ACL_DENY] = "acl_deny",
        [VIGIL_EV_SUBSCRIBE] = "subscribe",
        [VIGIL_EV_UNSUBSCRIBE] = "unsubscribe",
        [VIGIL_EV_PUBLISH] = "publish",
        [VIGIL_EV_MALFORMED] = "malformed",
        [VIGIL_EV_DISCONNECT] = "disconnect",
        [VIGIL_EV_LIMIT] = "limit",
        [VIGIL_EV_ADMIN] = "admin",
        [VIGIL_EV_TLS_FAILURE] = "tls_failure",
        [VIGIL_EV_CERT] = "cert",
        [VIGIL_EV_RATE_LIMIT] = "rate_limit",
    };

    if ((unsigned)type >= VIGIL_EV_TYPE_COUNT)
        return "unknown";
    return names[type];
}

/* Writes s (n bytes) as a JSON string body: quote, backslash and control
 * characters escaped, invalid UTF-8 bytes replaced by U+FFFD. */
static void out_escaped(struct json_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t run = 0, seq;

        /* Printable ASCII other than quote and backslash is copied as is. */
        while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x7F && p[i + run] != '"' &&
               p[i + run] != '\\')
            run++;
        if (run > 0) {
            out_bytes(o, s + i, run);
            i += run;
            continue;
        }
        seq = utf8_sequence_len(p + i, n - i);

        if (seq == 0) {
            out_str(o, "\xEF\xBF\xBD");
            i++;
        } else if (p[i] == '"' || p[i] == '\\') {
            out_byte(o, '\\');
            out_byte(o, (char)p[i++]);
        } else if (p[i] < 0x20 || p[i] == 0x7F) {
            out_str(o, "\\u00");
            out_byte(o, hex[p[i] >> 4]);
            out_byte(o, hex[p[i] & 0x0F]);
            i++;
        } else {
            for (size_t k = 0; k < seq; k++)
                out_byte(o, (char)p[i++]);
        }
    }
}

static void out_key(struct json_out *o, const char *key)
{
    out_str(o, ",\"");
    out_str(o, key);
    out_str(o, "\":");
}

/* Writes "key":"value" for a fixed-size text field, or nothing when it is empty. */
static void out_text_field(struct json_out *o, const char *key, const char *field, size_t cap)
{
    size_t n = strnlen(field, cap);

    if (n == 0)
        return;
    out_key(o, key);
    out_byte(o, '"');
    out_escaped(o, field, n);
    out_byte(o, '"');
}

static void out_uint_field(struct json_out *o, const char *key, unsigned long long v)
{
    out_key(o, key);
    out_uint(o, v);
}

const char *vigil_proto_name(uint8_t proto)
{
    switch (proto) {
    case VIGIL_PROTO_MQTT311:
        return "mqtt3.1.1";
    case VIGIL_PROTO_MQTT5:
        return "mqtt5";
    case VIGIL_PROTO_TLS:
        return "tls";
    case VIGIL_PROTO_COAP:
        return "coap";
    case VIGIL_PROTO_MQTTSN:
        return "mqtt-sn";
    case VIGIL_PROTO_DTLS:
        return "dtls";
    default:
        return NULL;
    }
}

/* Writes the numeric fields and flags. A zero value is omitted unless it
 * carries meaning: the QoS of a publish or subscribe, a publish's retain
 * flag and its size. */
static void out_numbers(struct json_out *o, const struct vigil_event *ev)
{
    bool is_publish = ev->type == VIGIL_EV_PUBLISH;
    bool has_qos = is_publish || ev->type == VIGIL_EV_SUBSCRIBE;

    if (ev->qos != 0 || has_qos)
        out_uint_field(o, "qos", ev->qos);
    if (ev->retain || is_publish) {
        out_key(o, "retain");
        out_str(o, ev->retain ? "true" : "false");
    }
    if (ev->size != 0 || is_publish)
        out_uint_field(o, "size", ev->size);
    if (ev->reason_code != 0)
        out_uint_field(o, "reason_code", ev->reason_code);
    if (ev->keep_alive != 0)
        out_uint_field(o, "keep_alive", ev->keep_alive);
}

int vigil_event_to_json(const struct vigil_event *ev, char *out, size_t cap)
{
    struct json_out o = {out, cap, 0};
    const char *proto = vigil_proto_name(ev->proto);

    out_str(&o, "{\"ts\":\"");
    out_timestamp(&o, ev->ts_us);
    out_str(&o, "\",\"type\":\"");
    out_str(&o, vigil_event_type_name((enum vigil_event_type)ev->type));
    out_byte(&o, '"');
    if (proto != NULL) {
        out_key(&o, "proto");
        out_byte(&o, '"');
        out_str(&o, proto);
        out_byte(&o, '"');
    }
    if (ev->conn_id != 0)
        out_uint_field(&o, "conn", ev->conn_id);
    out_text_field(&o, "peer", ev->peer, sizeof ev->peer);
    out_text_field(&o, "client_id", ev->client_id, sizeof ev->client_id);
    out_text_field(&o, "device", ev->device, sizeof ev->device);
    out_text_field(&o, "device_type", ev->device_type, sizeof ev->device_type);
    out_text_field(&o, "topic", ev->topic, sizeof ev->topic);
    out_numbers(&o, ev);
    if (ev->rule != NULL && ev->rule[0] != '\0')
        out_text_field(&o, "rule", ev->rule, strlen(ev->rule) + 1);
    out_text_field(&o, "detail", ev->detail, sizeof ev->detail);
    if (ev->observed)
        out_str(&o, ",\"observed\":true");
    out_byte(&o, '}');

    if (o.len >= cap || o.len > (size_t)INT32_MAX)
        return -1;
    out[o.len] = '\0';
    return (int)o.len;
}
