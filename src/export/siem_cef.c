/* ArcSight Common Event Format (CEF:0) bodies for events and alerts. */
#include "export/siem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "export/siem_internal.h"

/* CEF severity 0..10 from the syslog severity of the message. */
static unsigned cef_severity(uint8_t syslog_severity)
{
    static const unsigned map[8] = {10, 10, 10, 8, 5, 3, 1, 0};

    return map[syslog_severity & 7];
}

int siem_cef_escape_header(const char *s, char *out, size_t cap)
{
    struct siem_out o;

    siem_out_init(&o, out, cap);
    siem_out_text(&o, s, strlen(s), "|\\", 0);
    return siem_out_finish(&o);
}

int siem_cef_escape_ext(const char *s, char *out, size_t cap)
{
    struct siem_out o;

    siem_out_init(&o, out, cap);
    siem_out_text(&o, s, strlen(s), "=\\", 1);
    return siem_out_finish(&o);
}

static void out_head_field(struct siem_out *o, const char *s, size_t cap)
{
    siem_out_text(o, s, strnlen(s, cap), "|\\", 0);
    siem_out_byte(o, '|');
}

static void out_head(struct siem_out *o, const struct siem_header *h, const char *signature,
                     const char *name, size_t name_cap, uint8_t syslog_severity)
{
    siem_out_str(o, "CEF:0|vigil|vigil|");
    out_head_field(o, h->version != NULL ? h->version : "", 64);
    out_head_field(o, signature, 64);
    out_head_field(o, name, name_cap);
    siem_out_fmt(o, "%u|", cef_severity(syslog_severity));
}

/* " key=value" with the value escaped; nothing when value is empty. */
static void out_ext(struct siem_out *o, const char *key, const char *value, size_t cap)
{
    size_t n = strnlen(value, cap);

    if (n == 0)
        return;
    siem_out_fmt(o, " %s=", key);
    siem_out_text(o, value, n, "=\\", 1);
}

static void out_labeled(struct siem_out *o, int slot, const char *label, const char *value,
                        size_t cap)
{
    char key[8];

    if (strnlen(value, cap) == 0)
        return;
    snprintf(key, sizeof key, "cs%d", slot);
    siem_out_fmt(o, " cs%dLabel=%s", slot, label);
    out_ext(o, key, value, cap);
}

/* src and spt from "address:port", or the text as src when it has no port. */
static void out_source(struct siem_out *o, const char *peer, size_t cap)
{
    char addr[64];
    unsigned port;

    if (siem_split_peer(peer, addr, sizeof addr, &port) == 0) {
        out_ext(o, "src", addr, sizeof addr);
        siem_out_fmt(o, " spt=%u", port);
    } else {
        out_ext(o, "src", peer, cap);
    }
}

int siem_cef_event(const struct siem_header *h, const struct vigil_event *ev, uint64_t seq,
                   char *out, size_t cap)
{
    const char *type = vigil_event_type_name(ev->type);
    struct siem_out o;

    siem_out_init(&o, out, cap);
    out_head(&o, h, type, type, 32, siem_event_severity(ev));
    siem_out_fmt(&o, "externalId=%" PRIu64 " rt=%" PRId64, seq, ev->ts_us / 1000);
    out_source(&o, ev->peer, sizeof ev->peer);
    out_ext(&o, "suser", ev->device, sizeof ev->device);
    out_labeled(&o, 1, "clientId", ev->client_id, sizeof ev->client_id);
    out_labeled(&o, 2, "topic", ev->topic, sizeof ev->topic);
    if (ev->rule != NULL)
        out_labeled(&o, 3, "rule", ev->rule, 256);
    if (ev->conn_id != 0)
        siem_out_fmt(&o, " cn1Label=connectionId cn1=%" PRIu64, ev->conn_id);
    if (ev->reason_code != 0)
        siem_out_fmt(&o, " cn2Label=reasonCode cn2=%u", (unsigned)ev->reason_code);
    if (ev->type == VIGIL_EV_PUBLISH || ev->size != 0)
        siem_out_fmt(&o, " in=%u", (unsigned)ev->size);
    out_ext(&o, "msg", ev->detail, sizeof ev->detail);
    return siem_out_finish(&o);
}

int siem_cef_alert(const struct siem_header *h, const struct secmon_alert *a, uint64_t seq,
                   char *out, size_t cap)
{
    const char *rule = a->rule != NULL ? a->rule : "unknown";
    struct siem_out o;

    siem_out_init(&o, out, cap);
    out_head(&o, h, rule, a->observation, sizeof a->observation, siem_alert_severity(a));
    siem_out_fmt(&o, "externalId=%" PRIu64 " rt=%" PRId64 " start=%" PRId64 " end=%" PRId64
                 " cnt=%" PRIu64 " cat=",
                 seq, a->last_seen_us / 1000, a->first_seen_us / 1000, a->last_seen_us / 1000,
                 a->count);
    siem_out_text(&o, rule, strlen(rule), "=\\", 1);
    out_source(&o, a->source, sizeof a->source);
    out_ext(&o, "suser", a->device, sizeof a->device);
    out_labeled(&o, 1, "alertId", a->alert_id, sizeof a->alert_id);
    out_labeled(&o, 2, "expectation", a->expectation, sizeof a->expectation);
    siem_out_fmt(&o, " cfp1Label=deviation cfp1=%.6g", a->deviation);
    out_ext(&o, "msg", a->explanation, sizeof a->explanation);
    return siem_out_finish(&o);
}
