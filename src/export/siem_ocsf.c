/* JSON objects shaped after OCSF 1.1: Authentication (3002) for auth events,
 * Detection Finding (2004) for alerts, Base Event (0) for other events. */
#include "export/siem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "export/siem_internal.h"

#define OCSF_VERSION "1.1.0"

/* OCSF severity_id of an event from its syslog severity: 3 medium for
 * warning and above, 2 low for notice, 1 informational below. */
static int event_severity_id(uint8_t syslog_severity)
{
    if (syslog_severity <= 4)
        return 3;
    if (syslog_severity == 5)
        return 2;
    return 1;
}

/* A JSON string from a fixed-size text field, cleaned to valid UTF-8. */
static json_t *text(const char *field, size_t cap)
{
    char tmp[1600];
    char raw[520];
    size_t n = strnlen(field, cap);

    if (n >= sizeof raw)
        n = sizeof raw - 1;
    memcpy(raw, field, n);
    raw[n] = '\0';
    siem_clean_text(raw, tmp, sizeof tmp);
    return json_string(tmp);
}

static void set_text(json_t *obj, const char *key, const char *field, size_t cap)
{
    if (strnlen(field, cap) > 0)
        json_object_set_new(obj, key, text(field, cap));
}

static json_t *metadata(const struct siem_header *h, uint64_t seq)
{
    json_t *product = json_object();
    json_t *meta = json_object();
    char uid[24];

    json_object_set_new(product, "name", json_string("vigil"));
    json_object_set_new(product, "vendor_name", json_string("vigil"));
    if (h->version != NULL && h->version[0] != '\0')
        json_object_set_new(product, "version", text(h->version, 64));
    snprintf(uid, sizeof uid, "%" PRIu64, seq);
    json_object_set_new(meta, "version", json_string(OCSF_VERSION));
    json_object_set_new(meta, "product", product);
    json_object_set_new(meta, "uid", json_string(uid));
    return meta;
}

/* {"ip": ..., "port": ...} from "address:port", or NULL for an empty peer. */
static json_t *endpoint(const char *peer, size_t cap)
{
    char addr[64];
    unsigned port;
    json_t *ep;

    if (strnlen(peer, cap) == 0)
        return NULL;
    ep = json_object();
    if (siem_split_peer(peer, addr, sizeof addr, &port) == 0) {
        json_object_set_new(ep, "ip", text(addr, sizeof addr));
        json_object_set_new(ep, "port", json_integer(port));
    } else {
        json_object_set_new(ep, "ip", text(peer, cap));
    }
    return ep;
}

static void set_class(json_t *obj, int class_uid, const char *class_name, int category_uid,
                      const char *category_name, int activity_id, const char *activity_name)
{
    json_object_set_new(obj, "class_uid", json_integer(class_uid));
    json_object_set_new(obj, "class_name", json_string(class_name));
    json_object_set_new(obj, "category_uid", json_integer(category_uid));
    json_object_set_new(obj, "category_name", json_string(category_name));
    json_object_set_new(obj, "activity_id", json_integer(activity_id));
    json_object_set_new(obj, "activity_name", json_string(activity_name));
    json_object_set_new(obj, "type_uid", json_integer(class_uid * 100 + activity_id));
}

/* Writes obj compactly into out and releases it. */
static int dump(json_t *obj, char *out, size_t cap)
{
    size_t n = json_dumpb(obj, out, cap, JSON_COMPACT);

    json_decref(obj);
    if (n == 0 || n >= cap)
        return -1;
    out[n] = '\0';
    return (int)n;
}

static void set_auth_fields(json_t *obj, const struct vigil_event *ev)
{
    bool ok = ev->type == VIGIL_EV_AUTH_SUCCESS;
    json_t *user = json_object();

    set_class(obj, 3002, "Authentication", 3, "Identity & Access Management", 1, "Logon");
    json_object_set_new(obj, "status_id", json_integer(ok ? 1 : 2));
    json_object_set_new(obj, "status", json_string(ok ? "Success" : "Failure"));
    set_text(obj, "status_detail", ev->detail, sizeof ev->detail);
    if (ev->device[0] != '\0')
        json_object_set_new(user, "name", text(ev->device, sizeof ev->device));
    else
        set_text(user, "name", ev->client_id, sizeof ev->client_id);
    set_text(user, "uid", ev->client_id, sizeof ev->client_id);
    json_object_set_new(obj, "user", user);
}

int siem_ocsf_event(const struct siem_header *h, const struct vigil_event *ev, uint64_t seq,
                    char *out, size_t cap)
{
    bool auth = ev->type == VIGIL_EV_AUTH_SUCCESS || ev->type == VIGIL_EV_AUTH_FAILURE;
    uint8_t sev = siem_event_severity(ev);
    json_t *obj = json_object();
    json_t *src = endpoint(ev->peer, sizeof ev->peer);
    json_t *unmapped = json_object();

    if (auth)
        set_auth_fields(obj, ev);
    else
        set_class(obj, 0, "Base Event", 0, "Uncategorized", 0, "Unknown");
    json_object_set_new(obj, "time", json_integer(ev->ts_us / 1000));
    json_object_set_new(obj, "severity_id", json_integer(event_severity_id(sev)));
    json_object_set_new(obj, "message", json_string(vigil_event_type_name(ev->type)));
    if (src != NULL)
        json_object_set_new(obj, "src_endpoint", src);
    json_object_set_new(obj, "metadata", metadata(h, seq));
    json_object_set_new(unmapped, "event_type", json_string(vigil_event_type_name(ev->type)));
    if (!auth) {
        set_text(unmapped, "client_id", ev->client_id, sizeof ev->client_id);
        set_text(unmapped, "device", ev->device, sizeof ev->device);
        set_text(unmapped, "detail", ev->detail, sizeof ev->detail);
    }
    set_text(unmapped, "topic", ev->topic, sizeof ev->topic);
    if (ev->rule != NULL)
        set_text(unmapped, "rule", ev->rule, 256);
    if (ev->conn_id != 0)
        json_object_set_new(unmapped, "conn", json_integer((json_int_t)ev->conn_id));
    json_object_set_new(obj, "unmapped", unmapped);
    return dump(obj, out, cap);
}

static json_t *finding_info(const struct secmon_alert *a, const char *rule)
{
    json_t *info = json_object();
    json_t *types = json_array();

    json_array_append_new(types, json_string(rule));
    json_object_set_new(info, "uid", text(a->alert_id, sizeof a->alert_id));
    json_object_set_new(info, "title", text(a->observation, sizeof a->observation));
    json_object_set_new(info, "desc", text(a->explanation, sizeof a->explanation));
    json_object_set_new(info, "types", types);
    json_object_set_new(info, "first_seen_time", json_integer(a->first_seen_us / 1000));
    json_object_set_new(info, "last_seen_time", json_integer(a->last_seen_us / 1000));
    return info;
}

static json_t *evidences(const struct secmon_alert *a)
{
    json_t *list = json_array();
    json_t *src = endpoint(a->source, sizeof a->source);

    for (uint8_t i = 0; i < a->n_evidence && i < SECMON_EVIDENCE_MAX; i++) {
        json_t *item = json_object();
        json_t *data = json_object();

        json_object_set_new(data, "event", text(a->evidence[i], sizeof a->evidence[i]));
        json_object_set_new(item, "data", data);
        if (src != NULL)
            json_object_set(item, "src_endpoint", src);
        json_array_append_new(list, item);
    }
    json_decref(src);
    return list;
}

int siem_ocsf_alert(const struct siem_header *h, const struct secmon_alert *a, uint64_t seq,
                    char *out, size_t cap)
{
    const char *rule = a->rule != NULL ? a->rule : "unknown";
    json_t *obj = json_object();
    json_t *unmapped = json_object();

    set_class(obj, 2004, "Detection Finding", 2, "Findings", 1, "Create");
    json_object_set_new(obj, "time", json_integer(a->last_seen_us / 1000));
    /* OCSF severity_id 1..5 is informational..critical, one above secmon's. */
    json_object_set_new(obj, "severity_id", json_integer(a->severity <= 4 ? a->severity + 1 : 99));
    json_object_set_new(obj, "status_id", json_integer(1));
    json_object_set_new(obj, "status", json_string("New"));
    json_object_set_new(obj, "message", text(a->observation, sizeof a->observation));
    json_object_set_new(obj, "count", json_integer((json_int_t)a->count));
    json_object_set_new(obj, "finding_info", finding_info(a, rule));
    json_object_set_new(obj, "evidences", evidences(a));
    if (a->device[0] != '\0')
        json_object_set_new(obj, "device", json_pack("{s:o}", "name",
                                                     text(a->device, sizeof a->device)));
    json_object_set_new(obj, "metadata", metadata(h, seq));
    json_object_set_new(unmapped, "rule", json_string(rule));
    json_object_set_new(unmapped, "expectation", text(a->expectation, sizeof a->expectation));
    json_object_set_new(unmapped, "deviation", json_real(a->deviation));
    json_object_set_new(obj, "unmapped", unmapped);
    return dump(obj, out, cap);
}
