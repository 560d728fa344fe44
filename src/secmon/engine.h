/* The security engine: consumes typed events (struct vigil_event) from every
 * front end or from passive capture analysis, keeps per-device state updated
 * in O(1) per event, and raises explained alerts.
 *
 * The core is single-threaded and deterministic: it never reads the clock,
 * only the timestamps of the events and of secmon_engine_tick(), so replaying
 * a capture gives the same alerts every time. The live hub runs it on its own
 * thread behind a bounded queue (secmon_runner_*); passive analysis calls it
 * directly. */
#ifndef VIGIL_SECMON_ENGINE_H
#define VIGIL_SECMON_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "secmon/event.h"

enum secmon_severity {
    SECMON_SEV_INFO = 0,
    SECMON_SEV_LOW,
    SECMON_SEV_MEDIUM,
    SECMON_SEV_HIGH,
    SECMON_SEV_CRITICAL,
};

/* Rule names (stable identifiers used in alerts, DETECTION.md and config). */
#define SECMON_RULE_UNKNOWN_DEVICE "unknown_device"
#define SECMON_RULE_TOPIC_OUTSIDE "topic_outside_subtree"
#define SECMON_RULE_SYS_PROBE "sys_probe"
#define SECMON_RULE_WILDCARD_PROBE "wildcard_probe"
#define SECMON_RULE_BRUTE_FORCE "brute_force"
#define SECMON_RULE_CONN_CHURN "connection_churn"
#define SECMON_RULE_MANY_IDENTITIES "many_identities"
#define SECMON_RULE_SLOW_CONN "slow_connections"
#define SECMON_RULE_FLOOD "message_flood"
#define SECMON_RULE_QOS_FLOOD "qos_flood"
#define SECMON_RULE_MALFORMED_BURST "malformed_burst"
#define SECMON_RULE_TOPIC_CHARS "suspicious_topic"
#define SECMON_RULE_PHYSIO_RANGE "value_out_of_range"
#define SECMON_RULE_IMPOSSIBLE_RATE "impossible_rate"
#define SECMON_RULE_SILENT "device_silent"
#define SECMON_RULE_BASELINE "baseline_deviation"
#define SECMON_RULE_EVENTS_DROPPED "monitoring_gap"

#define SECMON_EVIDENCE_MAX 8

/* One explained alert. Every text field is NUL-terminated. */
struct secmon_alert {
    char alert_id[40];          /* stable: rule + subject + first_seen, hex */
    const char *rule;           /* one of SECMON_RULE_* */
    uint8_t severity;           /* enum secmon_severity */
    char device[65];            /* device or client id, "" when unknown */
    char source[64];            /* peer address ("ip" or "ip:port") */
    char observation[160];      /* what was seen, with numbers */
    char expectation[160];      /* the baseline and window, or the policy */
    double deviation;           /* size of the deviation (e.g. z-score or ratio) */
    char explanation[512];      /* one paragraph for the analyst */
    int64_t first_seen_us, last_seen_us;
    uint64_t count;             /* events aggregated into this alert */
    /* Short descriptions of the first events behind the alert. */
    char evidence[SECMON_EVIDENCE_MAX][128];
    uint8_t n_evidence;
    /* Time of the earliest event behind the alert; before first_seen_us for
     * rules that count events in a window before they fire. */
    int64_t first_event_us;
};

/* Called for a new alert (update false) and when an open alert aggregates
 * more events (update true), at most once per second per alert. */
typedef void (*secmon_alert_fn)(void *ctx, const struct secmon_alert *alert, bool update);

/* Thresholds; secmon_config_defaults() documents each default. */
struct secmon_config {
    uint32_t learning_s;              /* per-device learning period */
    uint32_t auth_fail_burst;         /* brute force: failures ... */
    uint32_t auth_fail_window_s;      /* ... within this window */
    uint32_t churn_connects;          /* connection churn: connects per source ... */
    uint32_t churn_window_s;
    uint32_t identities_per_source;   /* distinct client ids from one source in churn_window_s */
    uint32_t slow_keepalive_s;        /* keep-alive at or above this is suspicious */
    uint32_t slow_conns;              /* ... from this many connections of one source */
    uint32_t flood_msgs_per_s;        /* publishes per second per device */
    uint32_t qos_flood_msgs_per_s;    /* QoS 1/2 publishes per second per device */
    uint32_t malformed_burst;         /* malformed packets per source ... */
    uint32_t malformed_window_s;
    uint32_t silence_factor;          /* silent past factor x expected interval */
    double baseline_z;                /* z-score that counts as a deviation */
    uint32_t vital_max_msgs_per_s;    /* impossible rate: publishes per second of one metric */
    uint32_t alert_quiet_s;           /* an alert closes after this long without events */
    uint32_t max_tracked;             /* devices, sources, identities, connections each */
    /* Client id prefixes, comma-separated, of monitoring clients that may
     * subscribe with a leading wildcard. Not copied: static or outliving
     * the engine. */
    const char *monitor_prefixes;
    /* Events come from passive capture, where no broker enforced access
     * control: publishes outside <site>/<unit>/<room>/<client id>/... are
     * checked by topic. */
    bool passive;
};

void secmon_config_defaults(struct secmon_config *cfg);

struct secmon_engine;

vigil_err secmon_engine_new(const struct secmon_config *cfg, secmon_alert_fn fn, void *ctx,
                            struct secmon_engine **out);
void secmon_engine_free(struct secmon_engine *e);
/* Per-device-type thresholds: at most SECMON_PROFILES_MAX types. */
#define SECMON_PROFILES_MAX 16
#define SECMON_DEVICE_TYPE_MAX 32         /* bytes of a type name with its NUL */
/* Sets the thresholds of devices whose events carry device_type == type,
 * replacing an earlier profile of that type. The per-device rules (floods,
 * impossible rate, baseline deviation, silence, learning period) read cfg.
 * The per-source rules, alert_quiet_s, max_tracked, monitor_prefixes and
 * passive keep the values given to secmon_engine_new(). cfg is copied.
 * Returns VIGIL_ERR_INVALID for an empty type or one of
 * SECMON_DEVICE_TYPE_MAX bytes or more, VIGIL_ERR_LIMIT when
 * SECMON_PROFILES_MAX other types have profiles. */
vigil_err secmon_engine_set_profile(struct secmon_engine *e, const char *type,
                                    const struct secmon_config *cfg);
/* Feeds one event; ev->ts_us is the time used. */
void secmon_engine_feed(struct secmon_engine *e, const struct vigil_event *ev);
/* Advances time without an event: silence detection, window ends, alert
 * updates. */
void secmon_engine_tick(struct secmon_engine *e, int64_t now_us);
/* Records that the event queue dropped n events (a monitoring gap). */
void secmon_engine_dropped(struct secmon_engine *e, uint64_t n, int64_t now_us);
/* Counters for reports. */
uint64_t secmon_engine_events(const struct secmon_engine *e);
uint64_t secmon_engine_alerts(const struct secmon_engine *e);
/* Alerts open now (not yet closed by the quiet period). */
size_t secmon_engine_open_alerts(const struct secmon_engine *e);

#endif
