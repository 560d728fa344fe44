/* The hub's security monitoring: the engine, the alert store and the audit
 * log, all driven from the event sink's thread so the I/O loop never waits
 * for them. Every event reaches the engine after it is written to
 * events.jsonl; audited event types are appended to the audit log; alerts
 * go to alerts.db, the audit log and the human log. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_spool.h"
#include "broker/broker.h"
#include "export/siem.h"
#include "core/log.h"
#include "secmon/alerts.h"
#include "secmon/engine.h"

static const char *severity_name(uint8_t sev)
{
    static const char *const names[] = {"info", "low", "medium", "high", "critical"};

    return sev < 5 ? names[sev] : "unknown";
}

static void audit_alert(struct hub *hub, const struct secmon_alert *a)
{
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "alert_id", a->alert_id, "rule",
                               a->rule, "severity", severity_name(a->severity), "device",
                               a->device, "source", a->source, "explanation", a->explanation);
    vigil_err rc;

    if (fields == NULL) {
        log_error("audit: recording alert %s failed: a text is not UTF-8 or memory ran out",
                  a->alert_id);
        return;
    }
    rc = audit_append_deferred(hub->audit, "alert_raised", fields);
    /* The audit log reports failed writes itself, once per run of them. */
    if (rc != VIGIL_OK && rc != VIGIL_ERR_IO)
        log_error("audit: cannot record alert %s: %s", a->alert_id, vigil_strerror(rc));
    json_decref(fields);
}

/* Runs on the event sink's thread. */
static void on_alert(void *ctx, const struct secmon_alert *a, bool update)
{
    struct hub *hub = ctx;

    if (hub->alerts != NULL && alerts_upsert(hub->alerts, a) != VIGIL_OK)
        log_error("alerts: cannot store alert %s (%s)", a->alert_id, a->rule);
    if (update)
        return;
    if (hub->siem != NULL)
        siem_exporter_submit_alert(hub->siem, a);
    log_warn("alert %s %s severity %s device '%s' source %s: %s", a->alert_id, a->rule,
             severity_name(a->severity), a->device, a->source, a->observation);
    if (hub->audit != NULL)
        audit_alert(hub, a);
}

/* Events a SIEM wants: security outcomes, not the traffic itself (publish
 * and subscribe events stay in events.jsonl and the engine). */
static bool siem_wants(uint8_t type)
{
    return type == VIGIL_EV_AUTH_SUCCESS || type == VIGIL_EV_AUTH_FAILURE ||
           type == VIGIL_EV_ACL_DENY || type == VIGIL_EV_MALFORMED ||
           type == VIGIL_EV_TLS_FAILURE || type == VIGIL_EV_CERT ||
           type == VIGIL_EV_RATE_LIMIT || type == VIGIL_EV_ADMIN;
}

static void monitor_feed(void *ctx, const struct vigil_event *ev)
{
    struct hub *hub = ctx;
    vigil_err rc;

    secmon_engine_feed(hub->engine, ev);
    if (hub->siem != NULL && siem_wants(ev->type))
        siem_exporter_submit_event(hub->siem, ev);
    if (hub->audit == NULL || audit_event_type(ev) == NULL)
        return;
    rc = audit_append_event(hub->audit, ev);
    /* The audit log reports failed writes itself, once per run of them. */
    if (rc != VIGIL_OK && rc != VIGIL_ERR_IO)
        log_error("audit: cannot record a %s event: %s",
                  vigil_event_type_name((enum vigil_event_type)ev->type), vigil_strerror(rc));
}

static void monitor_dropped(void *ctx, uint64_t n, int64_t now_us)
{
    struct hub *hub = ctx;

    secmon_engine_dropped(hub->engine, n, now_us);
}

static void monitor_tick(void *ctx, int64_t now_us)
{
    struct hub *hub = ctx;

    secmon_engine_tick(hub->engine, now_us);
    /* One fdatasync() and one commit per batch make its audit records and
     * alert updates durable. One per record kept the disk busy for seconds
     * during an alert storm. The audit log logs a failed sync itself, once
     * per run of them. */
    if (hub->audit != NULL)
        audit_sync(hub->audit);
    if (hub->alerts != NULL && alerts_flush(hub->alerts) != VIGIL_OK)
        log_error("alerts: commit of the batch's alert updates failed");
    /* Records of commands run beside the hub (vigil device, acl, alerts);
     * the sink ticks after every batch, so the spool is read once a second.
     * A due time more than a second ahead means the wall clock went back. */
    if (hub->audit != NULL && (now_us >= hub->audit_spool_due_us ||
                               hub->audit_spool_due_us - now_us > 1000000)) {
        hub->audit_spool_due_us = now_us + 1000000;
        audit_spool_drain(hub->audit, hub->cfg.data_dir, AUDIT_SPOOL_DRAIN_MAX, NULL);
    }
}

/* Opens the audit log with the settings of the audit: section and appends
 * what commands spooled while no hub ran. A command appending directly
 * holds the log for milliseconds, so the open waits up to 5 s for it. */
static vigil_err monitor_open_audit(struct hub *hub)
{
    struct audit_opts opts = {
        .segment_max_bytes = hub->cfg.audit.segment_max_bytes,
        .checkpoint_every = hub->cfg.audit.checkpoint_every,
        .checkpoint_interval_ms = hub->cfg.audit.checkpoint_interval_s * 1000u,
    };
    vigil_err rc = audit_open_wait(hub->cfg.data_dir, &opts, 5000, &hub->audit);

    if (rc != VIGIL_OK) {
        log_error("%s/audit: cannot open the audit log: %s", hub->cfg.data_dir,
                  vigil_strerror(rc));
        return rc;
    }
    audit_spool_drain(hub->audit, hub->cfg.data_dir, 0, NULL);
    return VIGIL_OK;
}

/* Starts the SIEM exporter when the configuration file has destinations;
 * their outboxes live in the data directory. */
static vigil_err monitor_start_siem(struct hub *hub)
{
    struct siem_config sc;
    char err[512];
    vigil_err rc;

    if (hub->cfg.source_path[0] == '\0')
        return VIGIL_OK;
    siem_config_defaults(&sc);
    rc = siem_config_load_file(&sc, hub->cfg.source_path, err, sizeof err);
    if (rc != VIGIL_OK) {
        log_error("SIEM export: %s", err);
        return rc;
    }
    snprintf(sc.data_dir, sizeof sc.data_dir, "%s", hub->cfg.data_dir);
    if (sc.n_dests == 0)
        return VIGIL_OK;
    rc = siem_exporter_start(&sc, &hub->siem);
    if (rc != VIGIL_OK) {
        log_error("SIEM export: cannot start: %s", vigil_strerror(rc));
        return rc;
    }
    log_info("SIEM export: %zu destination(s), outboxes in %s", (size_t)sc.n_dests, sc.data_dir);
    return VIGIL_OK;
}

/* Passes the per-device-type thresholds of vigil.yaml to the engine. */
static vigil_err monitor_set_profiles(struct hub *hub)
{
    struct secmon_config pcfg;
    vigil_err rc;

    for (size_t i = 0; i < hub->cfg.n_secmon_profiles; i++) {
        const char *type = hub->cfg.secmon_profiles[i].type;

        config_secmon_profile(&hub->cfg, i, &pcfg);
        rc = secmon_engine_set_profile(hub->engine, type, &pcfg);
        if (rc != VIGIL_OK) {
            log_error("security engine: cannot set the profile of device type '%s': %s", type,
                      vigil_strerror(rc));
            return rc;
        }
    }
    if (hub->cfg.n_secmon_profiles > 0)
        log_info("security engine: %zu device type profile(s)", hub->cfg.n_secmon_profiles);
    return VIGIL_OK;
}

vigil_err monitor_start(struct hub *hub)
{
    struct vigil_event_consumer cons = {monitor_feed, monitor_dropped, monitor_tick, hub};
    struct secmon_config scfg;
    vigil_err rc;

    config_secmon(&hub->cfg, &scfg);
    rc = secmon_engine_new(&scfg, on_alert, hub, &hub->engine);
    if (rc != VIGIL_OK) {
        log_error("security engine: cannot start: %s", vigil_strerror(rc));
        return rc;
    }
    rc = monitor_set_profiles(hub);
    if (rc != VIGIL_OK)
        return rc;
    rc = alerts_open(hub->cfg.data_dir, &hub->alerts);
    if (rc != VIGIL_OK) {
        log_error("%s/alerts.db: cannot open the alert store: %s", hub->cfg.data_dir,
                  vigil_strerror(rc));
        return rc;
    }
    rc = monitor_open_audit(hub);
    if (rc != VIGIL_OK)
        return rc;
    rc = monitor_start_siem(hub);
    if (rc != VIGIL_OK)
        return rc;
    vigil_event_sink_set_consumer(hub->events, &cons);
    return VIGIL_OK;
}

/* Called after the event sink closed, so nothing feeds the engine any more. */
void monitor_stop(struct hub *hub)
{
    if (hub->siem != NULL)
        siem_exporter_stop(hub->siem);
    hub->siem = NULL;
    if (hub->audit != NULL) {
        audit_spool_drain(hub->audit, hub->cfg.data_dir, 0, NULL);
        audit_close(hub->audit);
    }
    if (hub->alerts != NULL)
        alerts_close(hub->alerts);
    if (hub->engine != NULL)
        secmon_engine_free(hub->engine);
    hub->audit = NULL;
    hub->alerts = NULL;
    hub->engine = NULL;
}
