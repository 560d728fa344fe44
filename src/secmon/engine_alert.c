/* Alert aggregation of the security engine: one alert per rule and subject
 * while active, evidence lines, explanations, throttled callbacks and the
 * quiet period that closes an alert. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/time.h"
#include "secmon/engine_internal.h"

static const char *const severity_names[] = {"info", "low", "medium", "high", "critical"};

static const char *severity_name(uint8_t sev)
{
    return sev <= SECMON_SEV_CRITICAL ? severity_names[sev] : "unknown";
}

void engine_finding_init(struct engine_finding *f, const char *rule, uint8_t severity,
                         const char *device, const char *source, const char *subject)
{
    memset(f, 0, sizeof *f);
    f->rule = rule;
    f->severity = severity;
    f->device = device != NULL ? device : "";
    f->source = source != NULL ? source : "";
    f->subject = subject != NULL ? subject : "";
    f->count = 1;
}

/* Stable id: the first 128 bits of SHA-256 over rule, subject and the
 * opening time, in hex, so a replay gives the same ids. */
static void alert_make_id(struct secmon_alert *a, const char *key, size_t key_len)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char input[ENGINE_KEY_MAX + 32];
    int n = snprintf(input, sizeof input, "%.*s|%" PRId64, (int)key_len, key, a->first_seen_us);

    if (n < 0 || EVP_Digest(input, (size_t)n, digest, &dlen, EVP_sha256(), NULL) != 1 || dlen < 16)
        memset(digest, 0, 16);
    for (int i = 0; i < 16; i++)
        snprintf(a->alert_id + 2 * i, 3, "%02x", digest[i]);
}

/* Ends s before a UTF-8 character that a truncating snprintf cut short,
 * because the JSON of the alert list and of the audit log rejects it. */
static void text_end_whole(char *s)
{
    size_t len = strlen(s), i = len;
    unsigned char lead;
    size_t need;

    while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    lead = (unsigned char)s[i - 1];
    if (lead < 0xC0)
        return;
    if (lead >= 0xF0)
        need = 4;
    else if (lead >= 0xE0)
        need = 3;
    else
        need = 2;
    if (len - (i - 1) < need)
        s[i - 1] = '\0';
}

static void evidence_from_event(const struct vigil_event *ev, const char *src, char *out, size_t cap)
{
    char ts[40];
    const char *type = vigil_event_type_name((enum vigil_event_type)ev->type);

    vigil_time_format_rfc3339(ev->ts_us, ts, sizeof ts);
    if (ev->type == VIGIL_EV_PUBLISH)
        snprintf(out, cap, "%s publish %s qos%u %" PRIu32 "B from %s", ts, ev->topic, ev->qos, ev->size,
                 src);
    else if (ev->topic[0] != '\0')
        snprintf(out, cap, "%s %s %s client '%s' from %s", ts, type, ev->topic, ev->client_id, src);
    else if (ev->detail[0] != '\0')
        snprintf(out, cap, "%s %s client '%s' from %s: %s", ts, type, ev->client_id, src, ev->detail);
    else
        snprintf(out, cap, "%s %s client '%s' from %s", ts, type, ev->client_id, src);
}

static void alert_explain(struct secmon_alert *a)
{
    char first[40];

    vigil_time_format_rfc3339(a->first_seen_us, first, sizeof first);
    snprintf(a->explanation, sizeof a->explanation,
             "%s: device '%s' from source '%s'. Observed: %s. Expected: %s. Deviation %.2f. "
             "%" PRIu64 " events since %s. Severity %s.",
             a->rule, a->device[0] != '\0' ? a->device : "unknown",
             a->source[0] != '\0' ? a->source : "unknown", a->observation, a->expectation, a->deviation,
             a->count, first, severity_name(a->severity));
    text_end_whole(a->explanation);
}

static void alert_notify(struct secmon_engine *e, struct engine_alert *al, bool update)
{
    alert_explain(&al->pub);
    al->last_callback_us = e->now_us;
    al->dirty = false;
    if (e->fn != NULL)
        e->fn(e->ctx, &al->pub, update);
}

static void alert_add_evidence(struct secmon_alert *a, const struct vigil_event *ev,
                               const struct engine_finding *f)
{
    char src[64];

    if (a->n_evidence >= SECMON_EVIDENCE_MAX)
        return;
    if (ev != NULL) {
        engine_peer_address(ev->peer, src, sizeof src);
        evidence_from_event(ev, src, a->evidence[a->n_evidence], sizeof a->evidence[0]);
    } else {
        snprintf(a->evidence[a->n_evidence], sizeof a->evidence[0], "%s", f->evidence);
    }
    text_end_whole(a->evidence[a->n_evidence]);
    a->n_evidence++;
}

static void alert_open(struct secmon_engine *e, struct engine_alert *al, const struct vigil_event *ev,
                       const struct engine_finding *f)
{
    struct secmon_alert *a = &al->pub;

    memset(a, 0, sizeof *a);
    a->rule = f->rule;
    a->severity = f->severity;
    snprintf(a->device, sizeof a->device, "%s", f->device);
    snprintf(a->source, sizeof a->source, "%s", f->source);
    snprintf(a->observation, sizeof a->observation, "%s", f->observation);
    snprintf(a->expectation, sizeof a->expectation, "%s", f->expectation);
    text_end_whole(a->observation);
    text_end_whole(a->expectation);
    a->deviation = f->deviation;
    a->first_seen_us = a->last_seen_us = e->now_us;
    a->first_event_us = f->first_event_us != 0 && f->first_event_us < e->now_us ? f->first_event_us
                                                                                 : e->now_us;
    a->count = f->open_count != 0 ? f->open_count : f->count;
    alert_make_id(a, engine_node_key(&al->node), al->node.key_len);
    alert_add_evidence(a, ev, f);
    e->alerts_opened++;
    alert_notify(e, al, false);
}

static void alert_update(struct secmon_engine *e, struct engine_alert *al, const struct vigil_event *ev,
                         const struct engine_finding *f)
{
    struct secmon_alert *a = &al->pub;

    a->count += f->count;
    a->last_seen_us = e->now_us;
    if (f->severity > a->severity)
        a->severity = f->severity;
    /* The alert shows the largest deviation of its episode. */
    if (f->deviation > a->deviation) {
        a->deviation = f->deviation;
        snprintf(a->observation, sizeof a->observation, "%s", f->observation);
        snprintf(a->expectation, sizeof a->expectation, "%s", f->expectation);
        text_end_whole(a->observation);
        text_end_whole(a->expectation);
    }
    if (a->source[0] == '\0' && f->source[0] != '\0')
        snprintf(a->source, sizeof a->source, "%s", f->source);
    alert_add_evidence(a, ev, f);
    al->dirty = true;
    if (e->now_us - al->last_callback_us >= 1000000)
        alert_notify(e, al, true);
}

static void alert_close(struct secmon_engine *e, struct engine_alert *al)
{
    if (al->dirty)
        alert_notify(e, al, true);
    engine_table_remove(&e->alerts, &al->node);
}

void engine_alert_evicted(struct secmon_engine *e, struct engine_node *n)
{
    struct engine_alert *al = (struct engine_alert *)n;

    if (al->dirty)
        alert_notify(e, al, true);
}

static bool alert_quiet(const struct secmon_engine *e, const struct engine_alert *al)
{
    return e->now_us - al->pub.last_seen_us >= (int64_t)e->cfg.alert_quiet_s * 1000000;
}

bool engine_raise_repeat(struct secmon_engine *e, const struct vigil_event *ev, const char *rule,
                         const char *subject, uint8_t severity, double deviation)
{
    char key[ENGINE_KEY_MAX];
    size_t len = engine_key_join(key, rule, strlen(rule), subject);
    struct engine_alert *al = engine_table_get(&e->alerts, key, len);
    struct secmon_alert *a;

    if (al == NULL || alert_quiet(e, al))
        return false;
    a = &al->pub;
    if (deviation > a->deviation || severity > a->severity)
        return false;
    a->count++;
    a->last_seen_us = e->now_us;
    if (ev != NULL)
        alert_add_evidence(a, ev, NULL);
    al->dirty = true;
    if (e->now_us - al->last_callback_us >= 1000000)
        alert_notify(e, al, true);
    return true;
}

void engine_raise(struct secmon_engine *e, const struct vigil_event *ev, struct engine_finding *f)
{
    char key[ENGINE_KEY_MAX];
    size_t len = engine_key_join(key, f->rule, strlen(f->rule), f->subject);
    struct engine_alert *al = engine_table_get(&e->alerts, key, len);
    bool created;

    if (al != NULL && alert_quiet(e, al)) {
        alert_close(e, al);
        al = NULL;
    }
    if (al != NULL) {
        alert_update(e, al, ev, f);
        return;
    }
    al = engine_table_touch(e, &e->alerts, key, len, &created);
    if (al != NULL)
        alert_open(e, al, ev, f);
}

void engine_alerts_tick(struct secmon_engine *e)
{
    struct engine_node *n = e->alerts.tail;

    /* The list is ordered by last update, so quiet alerts are at the tail. */
    while (n != NULL && alert_quiet(e, (struct engine_alert *)n)) {
        struct engine_node *prev = n->prev;

        alert_close(e, (struct engine_alert *)n);
        n = prev;
    }
    for (; n != NULL; n = n->prev) {
        struct engine_alert *al = (struct engine_alert *)n;

        if (al->dirty && e->now_us - al->last_callback_us >= 1000000)
            alert_notify(e, al, true);
    }
}
