/* Bounded, allocation-free extraction of a measurement from SenML JSON or a
 * plain number, and the physiological ranges of the known metrics. */
#include "secmon/value.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MMHG_PA 133.322387415

struct metric_info {
    const char *name;
    double lo, hi;          /* physiological range, clinical unit */
    const char *unit;
};

/* Ranges wide enough for any living patient, so only a broken or forged
 * sensor exceeds them: heart rate 20..300 /min, SpO2 50..100 %, respiration
 * 0..80 /min, core temperature 30..45 Cel, arterial pressures 10..300 mmHg.
 * Respiration starts at 0 because monitors report apnea as 0 breaths per
 * minute; the BIDMC recordings hold such readings. */
static const struct metric_info metrics[] = {
    {"heart_rate", 20, 300, "/min"},
    {"pulse_rate", 20, 300, "/min"},
    {"resp_rate", 0, 80, "/min"},
    {"spo2", 50, 100, "%"},
    {"temperature", 30, 45, "Cel"},
    {"abp_sys", 10, 300, "mmHg"},
    {"abp_dia", 10, 300, "mmHg"},
    {"abp_mean", 10, 300, "mmHg"},
    {"nbp_sys", 10, 300, "mmHg"},
    {"nbp_dia", 10, 300, "mmHg"},
    {"nbp_mean", 10, 300, "mmHg"},
};

static const struct {
    const char *alias;
    const char *name;
} aliases[] = {
    {"hr", "heart_rate"}, {"pr", "pulse_rate"}, {"rr", "resp_rate"},
    {"temp", "temperature"}, {"sp_o2", "spo2"}, {"SpO2", "spo2"},
};

static bool span_is(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

const char *secmon_metric_canonical(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++)
        if (span_is(name, len, metrics[i].name))
            return metrics[i].name;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (span_is(name, len, aliases[i].alias))
            return aliases[i].name;
    return NULL;
}

bool secmon_metric_range(const char *metric, double *lo, double *hi, const char **unit)
{
    for (size_t i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        if (strcmp(metric, metrics[i].name) == 0) {
            *lo = metrics[i].lo;
            *hi = metrics[i].hi;
            if (unit != NULL)
                *unit = metrics[i].unit;
            return true;
        }
    }
    return false;
}

/* Converts a SenML value in unit u to the metric's clinical unit. Returns
 * false for a unit that does not fit the metric. */
static bool to_clinical(const char *metric, const char *u, double *v)
{
    bool pressure = strstr(metric, "bp_") != NULL;

    if (u[0] == '\0')
        return true;
    if (strcmp(metric, "spo2") == 0) {
        /* In the SenML registry "%" is an old name of "/", a plain ratio,
         * but some senders mean percent; a value above 1 is percent. */
        if (strcmp(u, "/") == 0 || (strcmp(u, "%") == 0 && *v <= 1.0))
            *v *= 100.0;
        return strcmp(u, "/") == 0 || strcmp(u, "%") == 0 || strcmp(u, "%EL") == 0;
    }
    if (strcmp(metric, "temperature") == 0) {
        if (strcmp(u, "K") == 0)
            *v -= 273.15;
        return strcmp(u, "K") == 0 || strcmp(u, "Cel") == 0;
    }
    if (pressure) {
        if (strcmp(u, "Pa") == 0)
            *v /= MMHG_PA;
        else if (strcmp(u, "kPa") == 0)
            *v *= 1000.0 / MMHG_PA;
        return strcmp(u, "Pa") == 0 || strcmp(u, "kPa") == 0 || strcmp(u, "mmHg") == 0;
    }
    if (strcmp(u, "1/s") == 0 || strcmp(u, "Hz") == 0)
        *v *= 60.0;
    return strcmp(u, "1/s") == 0 || strcmp(u, "Hz") == 0 || strcmp(u, "beat/min") == 0 ||
           strcmp(u, "1/min") == 0 || strcmp(u, "/min") == 0 || strcmp(u, "breath/min") == 0;
}

/* Parses a whole span as a finite decimal number. */
static bool parse_number(const char *s, size_t len, double *out)
{
    char buf[64];
    char *end;
    double v;

    while (len > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
                       s[len - 1] == '\n'))
        len--;
    if (len == 0 || len >= sizeof buf)
        return false;
    for (size_t i = 0; i < len; i++)
        if (strchr("0123456789+-.eE", s[i]) == NULL || s[i] == '\0')
            return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    v = strtod(buf, &end);
    if (end != buf + len || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* A cursor over the payload. */
struct scan {
    const char *p;
    size_t len;
    size_t pos;
};

static void skip_ws(struct scan *s)
{
    while (s->pos < s->len && strchr(" \t\r\n", s->p[s->pos]) != NULL && s->p[s->pos] != '\0')
        s->pos++;
}

static bool expect(struct scan *s, char c)
{
    skip_ws(s);
    if (s->pos < s->len && s->p[s->pos] == c) {
        s->pos++;
        return true;
    }
    return false;
}

/* Reads a JSON string into out (cap bytes, NUL-terminated). An escape is
 * copied as the escaped character, so names with escapes match nothing;
 * a string longer than cap - 1 fails. */
static bool read_string(struct scan *s, char *out, size_t cap)
{
    size_t n = 0;

    if (!expect(s, '"'))
        return false;
    while (s->pos < s->len) {
        char c = s->p[s->pos++];

        if (c == '"') {
            out[n] = '\0';
            return true;
        }
        if ((unsigned char)c < 0x20)
            return false;
        if (c == '\\') {
            if (s->pos >= s->len)
                return false;
            c = s->p[s->pos++];
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    return false;
}

static bool read_number(struct scan *s, double *out)
{
    size_t start;

    skip_ws(s);
    start = s->pos;
    while (s->pos < s->len && s->p[s->pos] != '\0' && strchr("0123456789+-.eE", s->p[s->pos]) != NULL)
        s->pos++;
    return parse_number(s->p + start, s->pos - start, out);
}

/* Skips a literal (true, false, null), a number or a string. Nested arrays
 * and objects are not part of SenML records and fail. */
static bool skip_value(struct scan *s)
{
    char tmp[256];
    double d;

    skip_ws(s);
    if (s->pos >= s->len)
        return false;
    if (s->p[s->pos] == '"')
        return read_string(s, tmp, sizeof tmp);
    if (s->len - s->pos >= 4 && (memcmp(s->p + s->pos, "true", 4) == 0 ||
                                 memcmp(s->p + s->pos, "null", 4) == 0)) {
        s->pos += 4;
        return true;
    }
    if (s->len - s->pos >= 5 && memcmp(s->p + s->pos, "false", 5) == 0) {
        s->pos += 5;
        return true;
    }
    return read_number(s, &d);
}

/* One SenML record; base fields carry over to later records. */
struct record {
    char bn[96];
    char bu[16];
    char n[64];
    char u[16];
    double v;
    bool has_v;
};

static bool read_field(struct scan *s, struct record *r)
{
    char key[8];

    if (!read_string(s, key, sizeof key) || !expect(s, ':'))
        return false;
    if (strcmp(key, "bn") == 0)
        return read_string(s, r->bn, sizeof r->bn);
    if (strcmp(key, "bu") == 0)
        return read_string(s, r->bu, sizeof r->bu);
    if (strcmp(key, "n") == 0)
        return read_string(s, r->n, sizeof r->n);
    if (strcmp(key, "u") == 0)
        return read_string(s, r->u, sizeof r->u);
    if (strcmp(key, "v") == 0) {
        r->has_v = true;
        return read_number(s, &r->v);
    }
    return skip_value(s);
}

static bool read_record(struct scan *s, struct record *r)
{
    r->n[0] = '\0';
    r->u[0] = '\0';
    r->has_v = false;
    if (!expect(s, '{'))
        return false;
    if (expect(s, '}'))
        return true;
    do {
        if (!read_field(s, r))
            return false;
    } while (expect(s, ','));
    return expect(s, '}');
}

/* The last '/' or ':' separated part of n, or of bn when n is empty, or
 * the topic's last level when that part is empty. */
static const char *record_metric(const struct record *r, const char *topic, size_t tlen)
{
    const char *name = r->n[0] != '\0' ? r->n : r->bn;
    size_t len = strlen(name);
    size_t start = len;

    while (start > 0 && name[start - 1] != '/' && name[start - 1] != ':')
        start--;
    if (start < len)
        return secmon_metric_canonical(name + start, len - start);
    start = tlen;
    while (start > 0 && topic[start - 1] != '/')
        start--;
    return secmon_metric_canonical(topic + start, tlen - start);
}

static bool extract_senml(struct scan *s, const char *topic, size_t tlen, const char **metric,
                          double *value)
{
    struct record r;

    memset(&r, 0, sizeof r);
    if (!expect(s, '['))
        return false;
    do {
        if (!read_record(s, &r))
            return false;
        *metric = record_metric(&r, topic, tlen);
        if (*metric != NULL && r.has_v) {
            *value = r.v;
            return to_clinical(*metric, r.u[0] != '\0' ? r.u : r.bu, value);
        }
    } while (expect(s, ','));
    return false;
}

bool secmon_extract_value(const char *topic, size_t tlen, const uint8_t *payload, size_t plen,
                          char *metric, size_t mcap, double *value)
{
    struct scan s = {(const char *)payload, plen, 0};
    const char *name = NULL;
    double v = 0;
    size_t start = tlen;
    bool ok;

    if (payload == NULL || plen == 0 || plen > SECMON_VALUE_PAYLOAD_MAX || mcap == 0)
        return false;
    skip_ws(&s);
    if (s.pos < s.len && s.p[s.pos] == '[') {
        ok = extract_senml(&s, topic, topic != NULL ? tlen : 0, &name, &v);
    } else {
        while (topic != NULL && start > 0 && topic[start - 1] != '/')
            start--;
        name = topic != NULL ? secmon_metric_canonical(topic + start, tlen - start) : NULL;
        ok = name != NULL && parse_number(s.p, s.len, &v);
    }
    if (!ok || name == NULL || !isfinite(v))
        return false;
    strncpy(metric, name, mcap - 1);
    metric[mcap - 1] = '\0';
    *value = v;
    return true;
}
