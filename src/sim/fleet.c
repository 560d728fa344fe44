/* Fleet simulator runtime: device state, sampling clock, publishing,
 * alarms, heartbeats and orderly shutdown on one libuv loop. */
#include "sim/fleet.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "client/mqttc.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "sim/alarm.h"
#include "sim/sampler.h"
#include "sim/vitals.h"

#define TICK_MS 50
#define DRAIN_TIMEOUT_MS 3000

struct fleet;

struct sim_device {
    struct fleet *fleet;
    uint32_t index;
    char id[32];
    char prefix[256];           /* "<site>/<unit>/<room>/<device>/" */
    char base_name[40];         /* SenML base name "<device>/" */
    struct mqttc *client;
    struct sampler src;
    uint64_t next_status_ms;
    bool refused_logged;
};

enum fleet_phase {
    PHASE_RUNNING,
    PHASE_DRAINING, /* waiting for QoS 1/2 acknowledgements */
    PHASE_CLOSING,  /* DISCONNECT sent, closing the clients */
};

struct fleet {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t stop_timer;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    const struct fleet_options *opt;
    struct sim_device *devices;
    uint64_t start_ms;
    double start_epoch;
    double sim_t;
    double last_progress_s;
    enum fleet_phase phase;
    uint64_t drain_deadline;
    bool connect_error_logged;
    uint32_t open_clients;
    uint32_t connected_at_stop;
    struct simudp_fleet *udp;
    struct fleet_summary *sum;
};

static void request_stop(struct fleet *f);

/* ---- Publishing ------------------------------------------------------- */

static void publish_status(struct sim_device *d, const char *state, const char *reason)
{
    struct fleet *f = d->fleet;
    char topic[300], payload[512];
    const char *source = sampler_source_name(&d->src);
    int n;

    snprintf(topic, sizeof topic, "%sstatus", d->prefix);
    n = snprintf(payload, sizeof payload,
                 "{\"device\":\"%s\",\"state\":\"%s\",\"reason\":\"%s\",\"source\":\"%s\","
                 "\"time\":%.3f,\"uptime_s\":%.1f}",
                 d->id, state, reason, source, (double)vigil_time_now_us() / 1e6,
                 (double)(vigil_time_mono_ms() - f->start_ms) / 1000.0);
    if (n < 0 || (size_t)n >= sizeof payload)
        return;
    if (mqttc_publish(d->client, topic, payload, (size_t)n, 1, false, NULL) != VIGIL_OK)
        f->sum->publish_failed++;
}

static void publish_vital(struct sim_device *d, enum vital v, double value, double t)
{
    struct fleet *f = d->fleet;
    char topic[300], payload[256];
    size_t n;
    vigil_err rc;

    n = senml_format(payload, sizeof payload, d->base_name, f->start_epoch + t, v, value);
    if (n == 0)
        return;
    if (!mqttc_connected(d->client)) {
        f->sum->samples_offline++;
        return;
    }
    snprintf(topic, sizeof topic, "%s%s", d->prefix, vital_info(v)->name);
    rc = mqttc_publish(d->client, topic, payload, n, f->opt->qos, false, NULL);
    if (rc != VIGIL_OK)
        f->sum->publish_failed++;
}

static void publish_alarm(struct sim_device *d, enum alarm_kind k, enum alarm_event ev, double t)
{
    struct fleet *f = d->fleet;
    char topic[300], payload[640];
    size_t n;

    if (ev == ALARM_EVENT_RAISED)
        f->sum->alarms_raised++;
    else
        f->sum->alarms_cleared++;
    n = alarm_format(payload, sizeof payload, alarm_rule(k), &d->src.alarms[k], ev, d->id,
                     f->start_epoch + t, f->start_epoch, f->opt->sustain_s);
    snprintf(topic, sizeof topic, "%salarm", d->prefix);
    if (n == 0 || mqttc_publish(d->client, topic, payload, n, 2, false, NULL) != VIGIL_OK) {
        f->sum->alarms_unsent++;
        log_warn("%s: %s alarm %s could not be sent (device offline or window full)", d->id,
                 alarm_rule(k)->name, ev == ALARM_EVENT_RAISED ? "raise" : "clear");
    }
}

/* ---- Sampling --------------------------------------------------------- */

static void on_sample(void *user, double t, const double values[VITAL_COUNT])
{
    for (int i = 0; i < VITAL_COUNT; i++)
        if (!isnan(values[i]))
            publish_vital(user, (enum vital)i, values[i], t);
}

static void on_alarm(void *user, enum alarm_kind k, enum alarm_event ev,
                     const struct alarm_state *st, double t)
{
    (void)st;
    publish_alarm(user, k, ev, t);
}

static const struct sampler_hooks monitor_hooks = {on_sample, on_alarm};

static void print_progress(struct fleet *f)
{
    uint64_t sent = 0;
    uint32_t online = 0;
    uint32_t active = 0;

    for (uint32_t i = 0; i < f->opt->devices; i++) {
        const struct mqttc_counters *c = mqttc_counters(f->devices[i].client);

        sent += c->published[0] + c->published[1] + c->published[2];
        online += mqttc_connected(f->devices[i].client) ? 1 : 0;
        active += sampler_active_alarms(&f->devices[i].src);
    }
    sent += simudp_messages_sent(f->udp);
    online += simudp_online(f->udp);
    active += simudp_active_alarms(f->udp);
    printf("sim: t=%.0fs simulated, %u/%u devices connected, %llu messages sent, "
           "%u alarms active\n",
           f->sim_t, online,
           f->opt->devices + f->opt->udp.coap_devices + f->opt->udp.mqttsn_devices,
           (unsigned long long)sent, active);
    fflush(stdout);
}

static void on_tick(uv_timer_t *t)
{
    struct fleet *f = t->data;
    uint64_t now = vigil_time_mono_ms();

    f->sim_t = (double)(now - f->start_ms) / 1000.0 * f->opt->speed;
    for (uint32_t i = 0; i < f->opt->devices; i++) {
        struct sim_device *d = &f->devices[i];

        sampler_advance(&d->src, f->sim_t, f->opt->sustain_s, &monitor_hooks, d);
        if (now >= d->next_status_ms && mqttc_connected(d->client)) {
            publish_status(d, "online", "heartbeat");
            d->next_status_ms = now + (uint64_t)(f->opt->status_interval_s * 1000.0);
        }
    }
    simudp_tick(f->udp, f->sim_t, now);
    if (f->opt->progress_interval_s > 0 &&
        (double)(now - f->start_ms) / 1000.0 - f->last_progress_s >= f->opt->progress_interval_s) {
        f->last_progress_s = (double)(now - f->start_ms) / 1000.0;
        print_progress(f);
    }
}

/* ---- Client callbacks ------------------------------------------------- */

static void on_connack(struct mqttc *c, uint8_t reason, bool session_present, void *user)
{
    struct sim_device *d = user;
    struct fleet *f = d->fleet;

    (void)c;
    (void)session_present;
    if (reason != 0) {
        if (!d->refused_logged)
            log_warn("%s: connection refused by %s:%u with reason code 0x%02x "
                     "(0x86/4 = bad user name or password, 0x87/5 = not authorized)",
                     d->id, f->opt->host, (unsigned)f->opt->port, reason);
        d->refused_logged = true;
        return;
    }
    if (d->refused_logged)
        log_info("%s: connected", d->id);
    d->refused_logged = false;
    if (f->phase == PHASE_RUNNING) {
        publish_status(d, "online", "connected");
        d->next_status_ms = vigil_time_mono_ms() + (uint64_t)(f->opt->status_interval_s * 1000.0);
    }
}

static void on_disconnect(struct mqttc *c, vigil_err why, const char *detail, void *user)
{
    struct sim_device *d = user;
    struct fleet *f = d->fleet;

    (void)c;
    if (f->phase != PHASE_RUNNING || why == VIGIL_ERR_AUTH)
        return;
    if (!f->connect_error_logged) {
        log_warn("%s: connection to %s:%u failed or ended: %s; devices retry with backoff",
                 d->id, f->opt->host, (unsigned)f->opt->port, detail);
        f->connect_error_logged = true;
    }
}

/* ---- Setup ------------------------------------------------------------ */

static vigil_err init_client(struct fleet *f, struct sim_device *d)
{
    const struct fleet_options *o = f->opt;
    struct mqttc_options co;
    char will_topic[300], will[160];
    int n;

    memset(&co, 0, sizeof co);
    snprintf(will_topic, sizeof will_topic, "%sstatus", d->prefix);
    n = snprintf(will, sizeof will,
                 "{\"device\":\"%s\",\"state\":\"offline\",\"reason\":\"connection lost\"}",
                 d->id);
    co.host = o->host;
    co.port = o->port;
    co.client_id = d->id;
    if (o->credentials) {
        co.username = d->id;
        co.password = credentials_find(o->credentials, d->id);
        if (co.password == NULL) {
            log_error("no password for %s in the credentials file; add a line \"%s <password>\"",
                      d->id, d->id);
            return VIGIL_ERR_NOT_FOUND;
        }
    }
    co.version = o->version;
    co.keep_alive = o->keep_alive;
    co.clean_start = true;
    co.max_inflight = 64;
    co.will_topic = will_topic;
    co.will_payload = will;
    co.will_len = (size_t)n;
    co.will_qos = 1;
    co.user = d;
    co.on_connack = on_connack;
    co.on_disconnect = on_disconnect;
    return mqttc_create(&f->loop, &co, &d->client);
}

static vigil_err init_devices(struct fleet *f)
{
    const struct fleet_options *o = f->opt;

    if (o->devices == 0)
        return VIGIL_OK;
    f->devices = vigil_calloc(o->devices, sizeof *f->devices);
    if (f->devices == NULL)
        return VIGIL_ERR_NOMEM;
    for (uint32_t i = 0; i < o->devices; i++) {
        struct sim_device *d = &f->devices[i];
        vigil_err rc;

        d->fleet = f;
        d->index = i;
        snprintf(d->id, sizeof d->id, "mon-%04u", i + 1);
        snprintf(d->base_name, sizeof d->base_name, "%s/", d->id);
        snprintf(d->prefix, sizeof d->prefix, "%s/%s/room%u/%s/", o->site, o->unit,
                 o->first_room + i, d->id);
        sampler_init(&d->src, o->recordings, o->seed, i, o->devices);
        rc = init_client(f, d);
        if (rc != VIGIL_OK)
            return rc;
        f->open_clients++;
    }
    return VIGIL_OK;
}

/* ---- Shutdown --------------------------------------------------------- */

static void on_client_closed(void *arg)
{
    struct fleet *f = arg;

    f->open_clients--;
}

static void collect_summary(struct fleet *f)
{
    struct fleet_summary *s = f->sum;

    for (uint32_t i = 0; i < f->opt->devices; i++) {
        const struct mqttc_counters *c = mqttc_counters(f->devices[i].client);

        for (int q = 0; q < 3; q++) {
            s->published[q] += c->published[q];
            s->delivered[q] += c->delivered[q];
        }
        s->rejected += c->rejected;
        s->lost += c->lost;
        s->connects += c->connects;
        s->refused += c->refused;
        s->connection_errors += c->errors;
    }
    s->devices_connected_at_end = f->connected_at_stop;
    simudp_summary(f->udp, &s->udp);
    s->simulated_s = f->sim_t;
    s->elapsed_s = (double)(vigil_time_mono_ms() - f->start_ms) / 1000.0;
}

static void close_all(struct fleet *f)
{
    f->phase = PHASE_CLOSING;
    uv_timer_stop(&f->stop_timer);
    collect_summary(f);
    for (uint32_t i = 0; i < f->opt->devices; i++)
        mqttc_close(f->devices[i].client, on_client_closed, f);
    simudp_close(f->udp);
    f->udp = NULL;
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_close((uv_handle_t *)&f->stop_timer, NULL);
    uv_close((uv_handle_t *)&f->sigint, NULL);
    uv_close((uv_handle_t *)&f->sigterm, NULL);
}

static void on_disconnect_sent(uv_timer_t *t)
{
    close_all(t->data);
}

static bool drained(const struct fleet *f)
{
    for (uint32_t i = 0; i < f->opt->devices; i++) {
        const struct mqttc *c = f->devices[i].client;

        if (mqttc_connected(c) && (mqttc_inflight(c) > 0 || mqttc_pending_output(c) > 0))
            return false;
    }
    return simudp_drained(f->udp);
}

static void on_drain_poll(uv_timer_t *t)
{
    struct fleet *f = t->data;

    if (!drained(f) && vigil_time_mono_ms() < f->drain_deadline)
        return;
    for (uint32_t i = 0; i < f->opt->devices; i++)
        mqttc_stop(f->devices[i].client);
    simudp_finish(f->udp);
    uv_timer_stop(&f->stop_timer);
    /* mqttc_stop() writes DISCONNECT and closes the socket once it is out;
     * the clients are released after that. */
    uv_timer_start(&f->stop_timer, on_disconnect_sent, 300, 0);
}

static void request_stop(struct fleet *f)
{
    if (f->phase != PHASE_RUNNING)
        return;
    f->phase = PHASE_DRAINING;
    uv_timer_stop(&f->tick);
    for (uint32_t i = 0; i < f->opt->devices; i++) {
        if (!mqttc_connected(f->devices[i].client))
            continue;
        f->connected_at_stop++;
        publish_status(&f->devices[i], "offline", "simulator stopped");
    }
    f->connected_at_stop += simudp_online(f->udp);
    simudp_stop(f->udp);
    f->drain_deadline = vigil_time_mono_ms() + DRAIN_TIMEOUT_MS;
    uv_timer_stop(&f->stop_timer);
    uv_timer_start(&f->stop_timer, on_drain_poll, 100, 100);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct fleet *f = s->data;

    (void)signum;
    if (f->phase == PHASE_RUNNING) {
        request_stop(f);
    } else if (f->phase == PHASE_DRAINING) {
        log_warn("second interrupt: closing without waiting for acknowledgements");
        close_all(f);
    }
}

static void on_duration(uv_timer_t *t)
{
    request_stop(t->data);
}

static void start_loop_handles(struct fleet *f)
{
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_init(&f->loop, &f->stop_timer);
    uv_signal_init(&f->loop, &f->sigint);
    uv_signal_init(&f->loop, &f->sigterm);
    f->tick.data = f->stop_timer.data = f;
    f->sigint.data = f->sigterm.data = f;
    uv_signal_start(&f->sigint, on_signal, SIGINT);
    uv_signal_start(&f->sigterm, on_signal, SIGTERM);
    uv_timer_start(&f->tick, on_tick, 0, TICK_MS);
    if (f->opt->duration_s > 0)
        uv_timer_start(&f->stop_timer, on_duration, (uint64_t)(f->opt->duration_s * 1000.0), 0);
}

static vigil_err check_options(const struct fleet_options *o)
{
    uint32_t udp_devices = o->udp.coap_devices + o->udp.mqttsn_devices;

    if ((o->devices == 0 && udp_devices == 0) || o->devices > 9999 || o->qos > 1 ||
        !(o->speed > 0) || o->status_interval_s <= 0 || o->sustain_s < 0 || !o->site ||
        !o->unit)
        return VIGIL_ERR_INVALID;
    return VIGIL_OK;
}

vigil_err fleet_run(const struct fleet_options *opt, struct fleet_summary *summary)
{
    struct fleet f;
    vigil_err rc;

    memset(summary, 0, sizeof *summary);
    rc = check_options(opt);
    if (rc != VIGIL_OK)
        return rc;
    memset(&f, 0, sizeof f);
    f.opt = opt;
    f.sum = summary;
    if (uv_loop_init(&f.loop) != 0)
        return VIGIL_ERR_IO;
    rc = init_devices(&f);
    if (rc == VIGIL_OK)
        rc = simudp_create(&f.loop, opt, &f.udp);
    if (rc != VIGIL_OK)
        goto cleanup;
    f.start_ms = vigil_time_mono_ms();
    f.start_epoch = floor((double)vigil_time_now_us() / 1e6);
    for (uint32_t i = 0; i < opt->devices; i++)
        mqttc_start(f.devices[i].client);
    simudp_start(f.udp, f.start_ms, f.start_epoch);
    start_loop_handles(&f);
    uv_run(&f.loop, UV_RUN_DEFAULT);

cleanup:
    if (rc != VIGIL_OK) {
        for (uint32_t i = 0; i < f.open_clients; i++)
            mqttc_close(f.devices[i].client, on_client_closed, &f);
        simudp_close(f.udp);
        uv_run(&f.loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&f.loop);
    vigil_free(f.devices);
    return rc;
}
