/* The UDP devices of the fleet: creation, sampling, heartbeats, shutdown
 * and counters, shared by the CoAP wearables and MQTT-SN sensors. */
#include "sim/udp_fleet.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "sim/udp_fleet_internal.h"

const enum vital simudp_device_metrics[SIMUDP_DEVICE_N_METRICS] = {VITAL_HR, VITAL_SPO2, VITAL_RESP,
                                                             VITAL_TEMP};

/* ---- Pure helpers ------------------------------------------------------- */

size_t simudp_expand_topic_base(const char *pattern, const char *unit, const char *type,
                                const char *id, char *out, size_t cap)
{
    size_t n = 0;

    for (const char *p = pattern; *p != '\0'; p++) {
        const char *piece = NULL;
        size_t len;

        if (*p == '%') {
            p++;
            if (*p == 'd')
                piece = id;
            else if (*p == 't')
                piece = type && *type ? type : "device";
            else if (*p == 'u')
                piece = unit && *unit ? unit : "unassigned";
            else
                return 0;
        }
        len = piece ? strlen(piece) : 1;
        if (n + len + 1 > cap)
            return 0;
        memcpy(out + n, piece ? piece : p, len);
        n += len;
    }
    if (cap == 0)
        return 0;
    out[n] = '\0';
    return n;
}

static int append_record(char *out, size_t cap, bool first, const char *base_name, double time_s,
                         enum vital v, double value)
{
    const struct vital_info *info = vital_info(v);
    double senml = value * info->senml_scale;

    if (first)
        return snprintf(out, cap,
                        "[{\"bn\":\"%s\",\"bt\":%.3f,\"n\":\"%s\",\"u\":\"%s\",\"v\":%.10g}",
                        base_name, time_s, info->name, info->senml_unit, senml);
    return snprintf(out, cap, ",{\"n\":\"%s\",\"u\":\"%s\",\"v\":%.10g}", info->name,
                    info->senml_unit, senml);
}

size_t simudp_senml_pack(char *out, size_t cap, const char *base_name, double time_s,
                         const double values[VITAL_COUNT], const enum vital *metrics,
                         size_t n_metrics)
{
    size_t used = 0;
    int n;

    if (!isfinite(time_s))
        return 0;
    for (size_t i = 0; i < n_metrics; i++) {
        if (!isfinite(values[metrics[i]]))
            continue;
        n = append_record(out + used, cap - used, used == 0, base_name, time_s, metrics[i],
                          values[metrics[i]]);
        if (n < 0 || (size_t)n >= cap - used)
            return 0;
        used += (size_t)n;
    }
    if (used == 0 || used + 2 > cap)
        return 0;
    out[used++] = ']';
    out[used] = '\0';
    return used;
}

/* ---- Link callbacks ----------------------------------------------------- */

static void on_link_up(struct sim_link *l, void *user)
{
    struct simudp_device *d = user;

    (void)l;
    log_debug("%s: %s link up", d->id, d->ops->protocol);
    d->ops->up(d);
}

static void on_link_down(struct sim_link *l, void *user, bool was_up, const char *why)
{
    struct simudp_device *d = user;
    struct simudp_fleet *u = d->fleet;
    bool *logged = &u->problem_logged[d->ops->kind];
    char addr[64];

    if (!*logged && !u->stopping) {
        sim_link_format_address((const struct sockaddr *)d->hub, addr, sizeof addr);
        log_warn("%s: %s%s link to %s %s: %s; devices retry with backoff", d->id,
                 d->ops->protocol, sim_link_is_dtls(l) ? " over DTLS" : "", addr,
                 was_up ? "lost" : "failed", why);
        *logged = true;
    }
    d->ops->down(d, was_up);
}

static void on_link_datagram(struct sim_link *l, void *user, const uint8_t *data, size_t len)
{
    struct simudp_device *d = user;

    (void)l;
    d->ops->datagram(d, data, len);
}

static const struct sim_link_callbacks link_callbacks = {on_link_up, on_link_down,
                                                         on_link_datagram};

/* ---- Devices ------------------------------------------------------------ */

vigil_err simudp_device_setup(struct simudp_fleet *u, struct simudp_device *d, const char *id,
                              uint32_t patient, const struct sockaddr_storage *addr)
{
    const struct fleet_options *o = u->opt;
    uint32_t total = o->devices + o->udp.coap_devices + o->udp.mqttsn_devices;
    struct sim_link_options lo;
    vigil_err rc;

    d->fleet = u;
    d->hub = addr;
    d->patient = patient;
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->base_name, sizeof d->base_name, "%s/", id);
    sampler_init(&d->src, o->recordings, o->seed, patient, total);
    if (o->udp.dtls != NULL) {
        rc = sim_dtls_check_identity(o->udp.dtls, id);
        if (rc != VIGIL_OK)
            return rc;
    }
    memset(&lo, 0, sizeof lo);
    lo.loop = u->loop;
    lo.addr = (const struct sockaddr *)addr;
    lo.identity = d->id;
    lo.dtls = o->udp.dtls;
    lo.cb = &link_callbacks;
    lo.user = d;
    lo.seed = o->seed * 1000003u + patient;
    return sim_link_create(&lo, &d->link);
}

size_t simudp_device_status_json(const struct simudp_device *d, const char *state,
                                 const char *reason, char *out, size_t cap)
{
    const struct simudp_fleet *u = d->fleet;
    int n = snprintf(out, cap,
                     "{\"device\":\"%s\",\"state\":\"%s\",\"reason\":\"%s\",\"source\":\"%s\","
                     "\"protocol\":\"%s\",\"time\":%.3f,\"uptime_s\":%.1f}",
                     d->id, state, reason, sampler_source_name(&d->src), d->ops->protocol,
                     (double)vigil_time_now_us() / 1e6,
                     (double)(vigil_time_mono_ms() - u->start_ms) / 1000.0);

    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

void simudp_device_log_reject(struct simudp_device *d, const char *what)
{
    if (d->reject_logged)
        return;
    d->reject_logged = true;
    log_warn("%s: the hub rejected %s (check the device's role and the hub's log)", d->id, what);
}

/* ---- Sampling hooks ----------------------------------------------------- */

static void on_sample(void *user, double t, const double values[VITAL_COUNT])
{
    struct simudp_device *d = user;

    d->ops->sample(d, t, values);
}

static void on_alarm(void *user, enum alarm_kind k, enum alarm_event ev,
                     const struct alarm_state *st, double t)
{
    struct simudp_device *d = user;
    struct simudp_fleet *u = d->fleet;
    char json[640];
    size_t n;

    if (ev == ALARM_EVENT_RAISED)
        d->alarms_raised++;
    else
        d->alarms_cleared++;
    n = alarm_format(json, sizeof json, alarm_rule(k), st, ev, d->id, u->start_epoch + t,
                     u->start_epoch, u->opt->sustain_s);
    if (n == 0 || !d->ops->alarm(d, json, n)) {
        d->alarms_unsent++;
        log_warn("%s: %s alarm %s could not be sent (device offline or queue full)", d->id,
                 alarm_rule(k)->name, ev == ALARM_EVENT_RAISED ? "raise" : "clear");
    }
}

static const struct sampler_hooks udp_hooks = {on_sample, on_alarm};

static void send_heartbeat(struct simudp_device *d)
{
    struct simudp_fleet *u = d->fleet;
    char json[512];
    size_t n;

    if (u->now_ms < d->next_status_ms || !d->ops->online(d))
        return;
    d->next_status_ms = u->now_ms + (uint64_t)(u->opt->status_interval_s * 1000.0);
    n = simudp_device_status_json(d, "online", "heartbeat", json, sizeof json);
    if (n > 0)
        d->ops->status(d, json, n);
}

/* ---- Fleet -------------------------------------------------------------- */

static vigil_err create_devices(struct simudp_fleet *u)
{
    const struct simudp_options *o = &u->opt->udp;
    uint32_t first = u->opt->devices;
    vigil_err rc = VIGIL_OK;

    for (uint32_t i = 0; i < o->coap_devices && rc == VIGIL_OK; i++) {
        rc = coap_wearable_new(u, i, first + i, &u->devices[u->n]);
        if (u->devices[u->n] != NULL)
            u->n++;
    }
    for (uint32_t i = 0; i < o->mqttsn_devices && rc == VIGIL_OK; i++) {
        rc = sn_sensor_new(u, i, first + o->coap_devices + i, &u->devices[u->n]);
        if (u->devices[u->n] != NULL)
            u->n++;
    }
    return rc;
}

vigil_err simudp_create(uv_loop_t *loop, const struct fleet_options *opt,
                        struct simudp_fleet **out)
{
    uint32_t total = opt->udp.coap_devices + opt->udp.mqttsn_devices;
    struct simudp_fleet *u;

    *out = NULL;
    if (opt->udp.coap_devices > SIMUDP_MAX_DEVICES ||
        opt->udp.mqttsn_devices > SIMUDP_MAX_DEVICES)
        return VIGIL_ERR_INVALID;
    u = vigil_calloc(1, sizeof *u);
    if (u == NULL)
        return VIGIL_ERR_NOMEM;
    u->loop = loop;
    u->opt = opt;
    *out = u;
    if (total == 0)
        return VIGIL_OK;
    u->devices = vigil_calloc(total, sizeof *u->devices);
    if (u->devices == NULL)
        return VIGIL_ERR_NOMEM;
    return create_devices(u);
}

void simudp_start(struct simudp_fleet *u, uint64_t start_ms, double start_epoch)
{
    u->start_ms = start_ms;
    u->now_ms = start_ms;
    u->start_epoch = start_epoch;
    for (uint32_t i = 0; i < u->n; i++)
        sim_link_start(u->devices[i]->link);
}

void simudp_tick(struct simudp_fleet *u, double sim_t, uint64_t now_ms)
{
    u->now_ms = now_ms;
    for (uint32_t i = 0; i < u->n; i++) {
        struct simudp_device *d = u->devices[i];

        if (!u->stopping) {
            sampler_advance(&d->src, sim_t, u->opt->sustain_s, &udp_hooks, d);
            send_heartbeat(d);
        }
        d->ops->tick(d);
    }
}

void simudp_stop(struct simudp_fleet *u)
{
    char json[512];
    size_t n;

    u->stopping = true;
    u->now_ms = vigil_time_mono_ms();
    for (uint32_t i = 0; i < u->n; i++) {
        struct simudp_device *d = u->devices[i];

        if (!d->ops->online(d))
            continue;
        n = simudp_device_status_json(d, "offline", "simulator stopped", json, sizeof json);
        if (n > 0)
            d->ops->status(d, json, n);
    }
}

bool simudp_drained(const struct simudp_fleet *u)
{
    for (uint32_t i = 0; i < u->n; i++)
        if (!u->devices[i]->ops->drained(u->devices[i]))
            return false;
    return true;
}

void simudp_finish(struct simudp_fleet *u)
{
    u->now_ms = vigil_time_mono_ms();
    for (uint32_t i = 0; i < u->n; i++)
        u->devices[i]->ops->finish(u->devices[i]);
}

static void free_fleet(struct simudp_fleet *u)
{
    vigil_free(u->devices);
    vigil_free(u);
}

static void on_link_closed(void *arg)
{
    struct simudp_device *d = arg;
    struct simudp_fleet *u = d->fleet;

    d->ops->destroy(d);
    if (--u->open_links == 0)
        free_fleet(u);
}

void simudp_close(struct simudp_fleet *u)
{
    if (u == NULL)
        return;
    u->closing = true;
    for (uint32_t i = 0; i < u->n; i++) {
        struct simudp_device *d = u->devices[i];

        if (d->link == NULL) {
            d->ops->destroy(d);
            continue;
        }
        u->open_links++;
        sim_link_close(d->link, on_link_closed, d);
    }
    if (u->open_links == 0)
        free_fleet(u);
}

uint32_t simudp_online(const struct simudp_fleet *u)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < u->n; i++)
        n += u->devices[i]->ops->online(u->devices[i]) ? 1 : 0;
    return n;
}

uint64_t simudp_messages_sent(const struct simudp_fleet *u)
{
    struct simudp_summary s;

    simudp_summary(u, &s);
    return s.coap.con_sent + s.coap.non_sent + s.mqttsn.published[0] + s.mqttsn.published[1] +
           s.mqttsn.published[2];
}

uint32_t simudp_active_alarms(const struct simudp_fleet *u)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < u->n; i++)
        n += sampler_active_alarms(&u->devices[i]->src);
    return n;
}

static void add_link_counters(struct sim_link_counters *sum, const struct sim_link_counters *c)
{
    sum->sessions += c->sessions;
    sum->resumed += c->resumed;
    sum->failures += c->failures;
    sum->datagrams_sent += c->datagrams_sent;
    sum->datagrams_received += c->datagrams_received;
    sum->send_errors += c->send_errors;
    sum->oversized += c->oversized;
}

void simudp_summary(const struct simudp_fleet *u, struct simudp_summary *s)
{
    memset(s, 0, sizeof *s);
    s->coap_devices = u->opt->udp.coap_devices;
    s->mqttsn_devices = u->opt->udp.mqttsn_devices;
    for (uint32_t i = 0; i < u->n; i++) {
        const struct simudp_device *d = u->devices[i];

        if (d->link != NULL)
            add_link_counters(&s->links, sim_link_counters(d->link));
        s->samples_offline += d->samples_offline;
        s->alarms_raised += d->alarms_raised;
        s->alarms_cleared += d->alarms_cleared;
        s->alarms_unsent += d->alarms_unsent;
        d->ops->collect(d, s);
    }
}
