/* RFC 5424 syslog messages for events and alerts, severities, and RFC 6587
 * octet-counting frames. */
#include "export/siem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/time.h"
#include "export/siem_internal.h"

/* Characters RFC 5424 section 6.3.3 requires escaped in a PARAM-VALUE. */
#define SD_ESCAPE "\"\\]"

uint8_t siem_event_severity(const struct vigil_event *ev)
{
    switch (ev->type) {
    case VIGIL_EV_AUTH_FAILURE:
    case VIGIL_EV_ACL_DENY:
    case VIGIL_EV_MALFORMED:
    case VIGIL_EV_LIMIT:
    case VIGIL_EV_TLS_FAILURE:
    case VIGIL_EV_RATE_LIMIT:
        return 4; /* warning */
    case VIGIL_EV_ADMIN:
    case VIGIL_EV_CERT:
        return 5; /* notice */
    default:
        return 6; /* informational */
    }
}

uint8_t siem_alert_severity(const struct secmon_alert *a)
{
    switch (a->severity) {
    case SECMON_SEV_CRITICAL:
        return 2; /* critical */
    case SECMON_SEV_HIGH:
        return 3; /* error */
    case SECMON_SEV_MEDIUM:
        return 4; /* warning */
    case SECMON_SEV_LOW:
        return 5; /* notice */
    default:
        return 6; /* informational */
    }
}

int siem_sd_escape(const char *s, char *out, size_t cap)
{
    struct siem_out o;

    siem_out_init(&o, out, cap);
    siem_out_text(&o, s, strlen(s), SD_ESCAPE, 0);
    return siem_out_finish(&o);
}

int siem_frame_octet(const char *msg, size_t len, char *out, size_t cap)
{
    int head = snprintf(out, cap, "%zu ", len);

    if (head < 0 || (size_t)head + len >= cap)
        return -1;
    memcpy(out + head, msg, len);
    out[(size_t)head + len] = '\0';
    return head + (int)len;
}

/* Writes a header field of printable US-ASCII (33..126) of at most max
 * bytes; other bytes become '_'; an empty or NULL value is "-". */
static void out_header_field(struct siem_out *o, const char *s, size_t max)
{
    size_t i;

    if (s == NULL || s[0] == '\0') {
        siem_out_byte(o, '-');
        return;
    }
    for (i = 0; s[i] != '\0' && i < max; i++)
        siem_out_byte(o, (s[i] >= 33 && s[i] <= 126) ? s[i] : '_');
}

/* "<PRI>1 TIMESTAMP HOSTNAME vigil PROCID MSGID " */
static void out_header(struct siem_out *o, const struct siem_header *h, uint8_t severity,
                       int64_t ts_us, const char *msgid)
{
    char ts[40];

    siem_out_fmt(o, "<%u>1 ", (unsigned)(h->facility & 0x1F) * 8 + severity);
    siem_out_str(o, vigil_time_format_rfc3339(ts_us, ts, sizeof ts));
    siem_out_byte(o, ' ');
    out_header_field(o, h->hostname, 255);
    siem_out_str(o, " vigil ");
    out_header_field(o, h->procid, 128);
    siem_out_byte(o, ' ');
    out_header_field(o, msgid, 32);
    siem_out_byte(o, ' ');
}

static void out_param(struct siem_out *o, const char *name, const char *value)
{
    siem_out_byte(o, ' ');
    siem_out_str(o, name);
    siem_out_str(o, "=\"");
    siem_out_text(o, value, strlen(value), SD_ESCAPE, 0);
    siem_out_byte(o, '"');
}

static void out_param_text(struct siem_out *o, const char *name, const char *field, size_t cap)
{
    size_t n = strnlen(field, cap);

    if (n == 0)
        return;
    siem_out_byte(o, ' ');
    siem_out_str(o, name);
    siem_out_str(o, "=\"");
    siem_out_text(o, field, n, SD_ESCAPE, 0);
    siem_out_byte(o, '"');
}

static void out_param_uint(struct siem_out *o, const char *name, uint64_t v)
{
    siem_out_fmt(o, " %s=\"%" PRIu64 "\"", name, v);
}

/* [vigil@32473 seq=".." ...] for an event; empty fields are left out. */
static void out_event_sd(struct siem_out *o, const struct vigil_event *ev, uint64_t seq)
{
    bool pub = ev->type == VIGIL_EV_PUBLISH;

    siem_out_str(o, "[" SIEM_SD_ID);
    out_param_uint(o, "seq", seq);
    if (vigil_proto_name(ev->proto) != NULL)
        out_param(o, "proto", vigil_proto_name(ev->proto));
    if (ev->conn_id != 0)
        out_param_uint(o, "conn", ev->conn_id);
    out_param_text(o, "peer", ev->peer, sizeof ev->peer);
    out_param_text(o, "client_id", ev->client_id, sizeof ev->client_id);
    out_param_text(o, "device", ev->device, sizeof ev->device);
    out_param_text(o, "topic", ev->topic, sizeof ev->topic);
    if (pub || ev->type == VIGIL_EV_SUBSCRIBE || ev->qos != 0)
        out_param_uint(o, "qos", ev->qos);
    if (pub || ev->retain)
        out_param(o, "retain", ev->retain ? "true" : "false");
    if (pub || ev->size != 0)
        out_param_uint(o, "size", ev->size);
    if (ev->reason_code != 0)
        out_param_uint(o, "reason_code", ev->reason_code);
    if (ev->keep_alive != 0)
        out_param_uint(o, "keep_alive", ev->keep_alive);
    if (ev->rule != NULL)
        out_param(o, "rule", ev->rule);
    siem_out_byte(o, ']');
}

static void out_event_msg(struct siem_out *o, const struct vigil_event *ev)
{
    size_t n = strnlen(ev->detail, sizeof ev->detail);

    siem_out_byte(o, ' ');
    if (n == 0)
        siem_out_str(o, vigil_event_type_name(ev->type));
    else
        siem_out_text(o, ev->detail, n, NULL, 0);
}

static void out_alert_sd(struct siem_out *o, const struct secmon_alert *a, uint64_t seq)
{
    char ts[40];

    siem_out_str(o, "[" SIEM_SD_ID);
    out_param_uint(o, "seq", seq);
    out_param_text(o, "alert_id", a->alert_id, sizeof a->alert_id);
    out_param(o, "rule", a->rule != NULL ? a->rule : "unknown");
    out_param(o, "severity", siem_alert_severity_name(a->severity));
    out_param_text(o, "device", a->device, sizeof a->device);
    out_param_text(o, "source", a->source, sizeof a->source);
    out_param_text(o, "observation", a->observation, sizeof a->observation);
    out_param_text(o, "expectation", a->expectation, sizeof a->expectation);
    siem_out_fmt(o, " deviation=\"%.6g\"", a->deviation);
    out_param_uint(o, "count", a->count);
    out_param(o, "first_seen", vigil_time_format_rfc3339(a->first_seen_us, ts, sizeof ts));
    out_param(o, "last_seen", vigil_time_format_rfc3339(a->last_seen_us, ts, sizeof ts));
    for (uint8_t i = 0; i < a->n_evidence && i < SECMON_EVIDENCE_MAX; i++)
        out_param_text(o, "evidence", a->evidence[i], sizeof a->evidence[i]);
    siem_out_byte(o, ']');
}

static void out_alert_msg(struct siem_out *o, const struct secmon_alert *a)
{
    const char *text = a->explanation[0] != '\0' ? a->explanation : a->observation;
    size_t cap = a->explanation[0] != '\0' ? sizeof a->explanation : sizeof a->observation;

    siem_out_byte(o, ' ');
    siem_out_text(o, text, strnlen(text, cap), NULL, 0);
}

/* Appends " " and the body made by fn (CEF or OCSF), or fails the cursor
 * when the body does not fit. */
static void out_body(struct siem_out *o, int len)
{
    if (len < 0) {
        o->len = o->cap; /* forces siem_out_finish to report -1 */
        return;
    }
    o->len += (size_t)len;
}

int siem_format_event(enum siem_format fmt, const struct siem_header *h,
                      const struct vigil_event *ev, uint64_t seq, char *out, size_t cap)
{
    struct siem_out o;

    siem_out_init(&o, out, cap);
    out_header(&o, h, siem_event_severity(ev), ev->ts_us, vigil_event_type_name(ev->type));
    if (fmt == SIEM_FORMAT_RFC5424) {
        out_event_sd(&o, ev, seq);
        out_event_msg(&o, ev);
        return siem_out_finish(&o);
    }
    siem_out_str(&o, "- ");
    if (o.len >= cap)
        return siem_out_finish(&o);
    if (fmt == SIEM_FORMAT_CEF)
        out_body(&o, siem_cef_event(h, ev, seq, out + o.len, cap - o.len));
    else
        out_body(&o, siem_ocsf_event(h, ev, seq, out + o.len, cap - o.len));
    return siem_out_finish(&o);
}

int siem_format_alert(enum siem_format fmt, const struct siem_header *h,
                      const struct secmon_alert *a, uint64_t seq, char *out, size_t cap)
{
    struct siem_out o;

    siem_out_init(&o, out, cap);
    out_header(&o, h, siem_alert_severity(a), a->last_seen_us, "alert");
    if (fmt == SIEM_FORMAT_RFC5424) {
        out_alert_sd(&o, a, seq);
        out_alert_msg(&o, a);
        return siem_out_finish(&o);
    }
    siem_out_str(&o, "- ");
    if (o.len >= cap)
        return siem_out_finish(&o);
    if (fmt == SIEM_FORMAT_CEF)
        out_body(&o, siem_cef_alert(h, a, seq, out + o.len, cap - o.len));
    else
        out_body(&o, siem_ocsf_alert(h, a, seq, out + o.len, cap - o.len));
    return siem_out_finish(&o);
}
