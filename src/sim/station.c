/* Central-station state: per-bed latest values and alarms, and the view. */
#include "sim/station.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/alloc.h"

#define INITIAL_CAP 256
#define MAX_LEVEL 64

vigil_err station_state_init(struct station_state *st)
{
    memset(st, 0, sizeof *st);
    st->beds = vigil_calloc(INITIAL_CAP, sizeof *st->beds);
    if (st->beds == NULL)
        return VIGIL_ERR_NOMEM;
    st->cap = INITIAL_CAP;
    st->sys_clients_connected = -1;
    return VIGIL_OK;
}

void station_state_free(struct station_state *st)
{
    vigil_free(st->beds);
    memset(st, 0, sizeof *st);
}

static uint64_t hash_id(const char *s, size_t len)
{
    uint64_t h = UINT64_C(1469598103934665603);

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * UINT64_C(1099511628211);
    return h;
}

static struct station_bed *probe(struct station_bed *beds, size_t cap, const char *id,
                                 size_t len)
{
    size_t i = (size_t)hash_id(id, len) & (cap - 1);

    while (beds[i].device[0] != '\0' &&
           (strlen(beds[i].device) != len || memcmp(beds[i].device, id, len) != 0))
        i = (i + 1) & (cap - 1);
    return &beds[i];
}

static vigil_err grow(struct station_state *st)
{
    size_t cap = st->cap * 2;
    struct station_bed *beds = vigil_calloc(cap, sizeof *beds);

    if (beds == NULL)
        return VIGIL_ERR_NOMEM;
    for (size_t i = 0; i < st->cap; i++) {
        const struct station_bed *b = &st->beds[i];

        if (b->device[0] != '\0')
            *probe(beds, cap, b->device, strlen(b->device)) = *b;
    }
    vigil_free(st->beds);
    st->beds = beds;
    st->cap = cap;
    return VIGIL_OK;
}

/* Finds or adds the bed of device id in room. NULL past the cap. */
static struct station_bed *bed_get(struct station_state *st, const char *id, size_t id_len,
                                   const char *room, size_t room_len)
{
    struct station_bed *b = probe(st->beds, st->cap, id, id_len);

    if (b->device[0] != '\0')
        return b;
    if (st->n_beds >= STATION_MAX_BEDS)
        return NULL;
    if ((st->n_beds + 1) * 2 > st->cap) {
        if (grow(st) != VIGIL_OK)
            return NULL;
        b = probe(st->beds, st->cap, id, id_len);
    }
    memcpy(b->device, id, id_len);
    b->device[id_len] = '\0';
    memcpy(b->room, room, room_len);
    b->room[room_len] = '\0';
    for (int i = 0; i < VITAL_COUNT; i++)
        b->values[i] = NAN;
    st->n_beds++;
    return b;
}

/* ---- Messages --------------------------------------------------------- */

static void apply_status(struct station_bed *b, json_t *root)
{
    const char *state = json_string_value(json_object_get(root, "state"));

    if (state)
        b->offline = strcmp(state, "offline") == 0;
}

static bool apply_alarm(struct station_bed *b, json_t *root)
{
    const char *name = json_string_value(json_object_get(root, "alarm"));
    const char *state = json_string_value(json_object_get(root, "state"));
    struct station_alarm *a;
    int k;

    if (name == NULL || state == NULL || (k = alarm_from_name(name)) < 0)
        return false;
    a = &b->alarms[k];
    a->active = strcmp(state, "raised") == 0;
    a->value = json_number_value(json_object_get(root, "value"));
    a->worst = json_number_value(json_object_get(root, "worst"));
    a->onset = json_number_value(json_object_get(root, "onset"));
    return true;
}

static bool apply_json(struct station_bed *b, bool is_alarm, const char *payload, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb(payload, len, 0, &err);
    bool ok = json_is_object(root);

    if (ok && is_alarm)
        ok = apply_alarm(b, root);
    else if (ok)
        apply_status(b, root);
    json_decref(root);
    return ok;
}

static void apply_sys(struct station_state *st, const char *topic, size_t topic_len,
                      const char *payload, size_t len)
{
    static const char key[] = "$SYS/broker/clients/connected";
    char tmp[32];
    char *end;
    long v;

    if (topic_len != sizeof key - 1 || memcmp(topic, key, topic_len) != 0 || len == 0 ||
        len >= sizeof tmp) {
        return;
    }
    memcpy(tmp, payload, len);
    tmp[len] = '\0';
    v = strtol(tmp, &end, 10);
    if (end != tmp && v >= 0)
        st->sys_clients_connected = v;
}

/* Splits topic into at most 6 levels; returns the count. */
static int split_topic(const char *topic, size_t len, const char **lv, size_t *lv_len)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len && n < 6; i++) {
        if (i == len || topic[i] == '/') {
            lv[n] = topic + start;
            lv_len[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    return start <= len ? 7 : n;
}

void station_state_message(struct station_state *st, const char *topic, size_t topic_len,
                           const char *payload, size_t payload_len, uint64_t now_ms)
{
    const char *lv[6];
    size_t lv_len[6];
    struct station_bed *b;
    bool ok = false;
    int v;

    st->messages++;
    if (topic_len >= 5 && memcmp(topic, "$SYS/", 5) == 0) {
        apply_sys(st, topic, topic_len, payload, payload_len);
        return;
    }
    if (split_topic(topic, topic_len, lv, lv_len) != 5 || lv_len[2] >= MAX_LEVEL ||
        lv_len[3] == 0 || lv_len[3] >= MAX_LEVEL) {
        st->ignored++;
        return;
    }
    b = bed_get(st, lv[3], lv_len[3], lv[2], lv_len[2]);
    if (b == NULL) {
        st->dropped_beds++;
        return;
    }
    b->last_seen_ms = now_ms ? now_ms : 1;
    b->offline = false;
    if (lv_len[4] == 5 && memcmp(lv[4], "alarm", 5) == 0) {
        ok = apply_json(b, true, payload, payload_len);
    } else if (lv_len[4] == 6 && memcmp(lv[4], "status", 6) == 0) {
        ok = apply_json(b, false, payload, payload_len);
    } else if ((v = vital_from_name(lv[4], lv_len[4])) >= 0) {
        double value;

        ok = senml_read_value(payload, payload_len, (enum vital)v, &value) == VIGIL_OK;
        if (ok)
            b->values[v] = value;
    }
    if (!ok)
        st->ignored++;
}

void station_state_tick(struct station_state *st, uint64_t now_ms)
{
    if (st->rate_ms != 0 && now_ms > st->rate_ms)
        st->rate = (double)(st->messages - st->rate_messages) * 1000.0 /
                   (double)(now_ms - st->rate_ms);
    st->rate_ms = now_ms;
    st->rate_messages = st->messages;
}

/* ---- View ------------------------------------------------------------- */

static bool bed_online(const struct station_bed *b, uint64_t now_ms)
{
    return !b->offline && b->last_seen_ms != 0 && now_ms - b->last_seen_ms <= STATION_ONLINE_MS;
}

static int compare_beds(const void *pa, const void *pb)
{
    const struct station_bed *a = *(const struct station_bed *const *)pa;
    const struct station_bed *b = *(const struct station_bed *const *)pb;
    int c = strcmp(a->room, b->room);

    return c ? c : strcmp(a->device, b->device);
}

static void format_value(char *out, size_t cap, double v, int decimals)
{
    if (isnan(v))
        snprintf(out, cap, "-");
    else
        snprintf(out, cap, "%.*f", decimals, v);
}

/* "120/80 (93)" from the cuff, else "A 120/80 (93)" from the arterial line. */
static void format_bp(char *out, size_t cap, const double *v)
{
    int base = VITAL_NBP_SYS;
    const char *tag = "";

    if (isnan(v[VITAL_NBP_SYS]) && !isnan(v[VITAL_ABP_SYS])) {
        base = VITAL_ABP_SYS;
        tag = "A ";
    }
    if (isnan(v[base])) {
        snprintf(out, cap, "-");
        return;
    }
    if (isnan(v[base + 1]))
        snprintf(out, cap, "%s%.0f/-", tag, v[base]);
    else if (isnan(v[base + 2]))
        snprintf(out, cap, "%s%.0f/%.0f", tag, v[base], v[base + 1]);
    else
        snprintf(out, cap, "%s%.0f/%.0f (%.0f)", tag, v[base], v[base + 1], v[base + 2]);
}

static void format_alarm_names(char *out, size_t cap, const struct station_bed *b)
{
    size_t used = 0;

    out[0] = '\0';
    for (int k = 0; k < ALARM_COUNT && used < cap; k++) {
        int n;

        if (!b->alarms[k].active)
            continue;
        n = snprintf(out + used, cap - used, "%s%s", used ? "," : "", alarm_rule(k)->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void render_row(FILE *out, const struct station_bed *b, uint64_t now_ms)
{
    char hr[16], spo2[16], resp[16], temp[16], bp[48], alarms[96];
    const double *v = b->values;

    format_value(hr, sizeof hr, v[VITAL_HR], 0);
    format_value(spo2, sizeof spo2, v[VITAL_SPO2], 0);
    format_value(resp, sizeof resp, v[VITAL_RESP], 0);
    format_value(temp, sizeof temp, v[VITAL_TEMP], 1);
    format_bp(bp, sizeof bp, v);
    format_alarm_names(alarms, sizeof alarms, b);
    fprintf(out, "%-10s %-10s %5s %5s %5s %6s  %-16s %-8s %s\n", b->room, b->device, hr, spo2,
            resp, temp, bp, bed_online(b, now_ms) ? "online" : "offline", alarms);
}

static void format_clock(char *out, size_t cap, double epoch)
{
    time_t t = (time_t)epoch;
    struct tm tm;

    if (epoch > 0 && gmtime_r(&t, &tm))
        strftime(out, cap, "%H:%M:%SZ", &tm);
    else
        snprintf(out, cap, "?");
}

static void render_alarms(FILE *out, const struct station_bed *const *sorted, size_t n)
{
    size_t active = 0;

    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < ALARM_COUNT; k++)
            active += sorted[i]->alarms[k].active ? 1 : 0;
    fprintf(out, "\nactive alarms: %zu\n", active);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < ALARM_COUNT; k++) {
            const struct station_alarm *a = &sorted[i]->alarms[k];
            const struct alarm_rule *r = alarm_rule(k);
            const struct vital_info *info = vital_info(r->metric);
            char since[16];

            if (!a->active)
                continue;
            format_clock(since, sizeof since, a->onset);
            fprintf(out, "  %-10s %-10s %-10s %s %g %s (%s %g), worst %g, since %s\n",
                    sorted[i]->room, sorted[i]->device, r->name, info->name, a->value,
                    info->unit, r->below ? "<" : ">", r->threshold, a->worst, since);
        }
    }
}

void station_state_render(const struct station_state *st, FILE *out, const char *title,
                          uint64_t now_ms, size_t max_rows)
{
    const struct station_bed **sorted = vigil_calloc(st->n_beds ? st->n_beds : 1, sizeof *sorted);
    size_t n = 0, online = 0;

    if (sorted == NULL)
        return;
    for (size_t i = 0; i < st->cap; i++) {
        if (st->beds[i].device[0] == '\0')
            continue;
        sorted[n++] = &st->beds[i];
        online += bed_online(&st->beds[i], now_ms) ? 1 : 0;
    }
    if (n > 1)
        qsort(sorted, n, sizeof *sorted, compare_beds);
    fprintf(out, "%s\n", title);
    fprintf(out, "devices online: %zu of %zu seen (sent within %d s)", online, n,
            STATION_ONLINE_MS / 1000);
    if (st->sys_clients_connected >= 0)
        fprintf(out, "   broker clients connected: %ld", st->sys_clients_connected);
    fprintf(out, "   messages/s: %.1f\n\n", st->rate);
    fprintf(out, "%-10s %-10s %5s %5s %5s %6s  %-16s %-8s %s\n", "ROOM", "DEVICE", "HR", "SpO2",
            "RESP", "TEMP", "BP mmHg", "STATE", "ALARMS");
    for (size_t i = 0; i < n && (max_rows == 0 || i < max_rows); i++)
        render_row(out, sorted[i], now_ms);
    if (max_rows != 0 && n > max_rows)
        fprintf(out, "... %zu more beds\n", n - max_rows);
    render_alarms(out, sorted, n);
    fflush(out);
    vigil_free(sorted);
}
