/* An MQTT-SN sensor: heart rate, SpO2, respiratory rate and temperature as
 * SenML on <site>/<unit>/<room>/<device>/<metric> at QoS 0, its status at
 * QoS 1 (also its will) and alarms at QoS 2. With a sleep period it sleeps
 * between reports: it publishes the newest values, sends DISCONNECT with a
 * Duration, wakes half-way with PINGREQ carrying its client id, and
 * reconnects after the period. A QoS 1/2 message (an alarm or a status)
 * wakes it at once. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "sim/sn_dev.h"
#include "sim/udp_fleet_internal.h"

/* Topic indices: the metrics first, in simudp_device_metrics order. */
#define TOPIC_STATUS SIMUDP_DEVICE_N_METRICS
#define TOPIC_ALARM (SIMUDP_DEVICE_N_METRICS + 1)
#define N_TOPICS (SIMUDP_DEVICE_N_METRICS + 2)

struct sn_sensor {
    struct simudp_device base;       /* first: the fleet stores &base */
    struct sn_dev sn;
    bool announced;               /* "online" status sent on this link */
    /* Sleep cycle; sleep_ms 0 keeps the sensor active. */
    uint64_t sleep_ms;
    bool reported;                /* values published since the last wake */
    bool pinged;                  /* the half-way wake of this sleep is done */
    uint64_t slept_at_ms;
    double latest[VITAL_COUNT];   /* newest value of each metric, NaN when none */
    double latest_time[VITAL_COUNT]; /* its measurement time, Unix seconds */
};

static struct sn_sensor *sensor_of(struct simudp_device *d)
{
    return (struct sn_sensor *)d;
}

static const struct sn_sensor *const_sensor_of(const struct simudp_device *d)
{
    return (const struct sn_sensor *)d;
}

static uint64_t now_of(const struct sn_sensor *s)
{
    return s->base.fleet->now_ms;
}

/* ---- sn_dev callbacks --------------------------------------------------- */

static vigil_err send_datagram(void *user, const uint8_t *data, size_t len)
{
    struct sn_sensor *s = user;

    return sim_link_send(s->base.link, data, len);
}

static void on_connected(void *user)
{
    struct sn_sensor *s = user;
    struct simudp_device *d = &s->base;
    char json[512];
    size_t n;

    s->reported = false;
    if (s->announced || d->fleet->stopping)
        return;
    s->announced = true;
    n = simudp_device_status_json(d, "online", "connected", json, sizeof json);
    if (n > 0)
        sn_dev_publish(&s->sn, TOPIC_STATUS, 1, (const uint8_t *)json, n, now_of(s));
    d->next_status_ms = now_of(s) + (uint64_t)(d->fleet->opt->status_interval_s * 1000.0);
}

static void on_lost(void *user, const char *why)
{
    struct sn_sensor *s = user;

    if (strncmp(why, "connection refused", 18) == 0)
        simudp_device_log_reject(&s->base, "the MQTT-SN CONNECT");
    if (!s->base.fleet->closing)
        sim_link_restart(s->base.link, why);
}

/* ---- Publishing --------------------------------------------------------- */

static void publish_metric(struct sn_sensor *s, size_t topic, double time_s, double value)
{
    char payload[256];
    size_t n = senml_format(payload, sizeof payload, s->base.base_name, time_s,
                            simudp_device_metrics[topic], value);

    if (n > 0)
        sn_dev_publish(&s->sn, topic, 0, (const uint8_t *)payload, n, now_of(s));
}

/* Publishes the newest value of each metric, after a wake. */
static void publish_latest(struct sn_sensor *s)
{
    for (size_t i = 0; i < SIMUDP_DEVICE_N_METRICS; i++) {
        enum vital v = simudp_device_metrics[i];

        publish_metric(s, i, s->latest_time[v], s->latest[v]);
    }
    s->reported = true;
}

static void sensor_sample(struct simudp_device *d, double t, const double values[VITAL_COUNT])
{
    struct sn_sensor *s = sensor_of(d);
    double time_s = d->fleet->start_epoch + t;

    for (int i = 0; i < VITAL_COUNT; i++) {
        if (!isnan(values[i])) {
            s->latest[i] = values[i];
            s->latest_time[i] = time_s;
        }
    }
    if (sn_dev_state(&s->sn) != SN_DEV_ACTIVE || !sim_link_is_up(d->link)) {
        d->samples_offline++;
        return;
    }
    for (size_t i = 0; i < SIMUDP_DEVICE_N_METRICS; i++)
        publish_metric(s, i, time_s, values[simudp_device_metrics[i]]);
    s->reported = true;
}

/* Leaves the asleep state so queued messages go out. */
static void wake_to_send(struct sn_sensor *s)
{
    if (sn_dev_state(&s->sn) == SN_DEV_ASLEEP && sim_link_is_up(s->base.link))
        sn_dev_connect(&s->sn, now_of(s));
}

static bool publish_json(struct sn_sensor *s, size_t topic, uint8_t qos, const char *json,
                         size_t len)
{
    if (sn_dev_publish(&s->sn, topic, qos, (const uint8_t *)json, len, now_of(s)) != VIGIL_OK)
        return false;
    wake_to_send(s);
    return true;
}

static bool sensor_alarm(struct simudp_device *d, const char *json, size_t len)
{
    return publish_json(sensor_of(d), TOPIC_ALARM, 2, json, len);
}

static bool sensor_status(struct simudp_device *d, const char *json, size_t len)
{
    return publish_json(sensor_of(d), TOPIC_STATUS, 1, json, len);
}

/* ---- Sleep cycle -------------------------------------------------------- */

static void run_sleep_cycle(struct sn_sensor *s)
{
    uint64_t now = now_of(s);
    uint64_t slept = now - s->slept_at_ms;

    switch (sn_dev_state(&s->sn)) {
    case SN_DEV_ACTIVE:
        if (!sn_dev_idle(&s->sn))
            return;
        if (!s->reported) {
            publish_latest(s);
            return;
        }
        s->slept_at_ms = now;
        s->pinged = false;
        /* The Duration leaves room for a late wake before the gateway
         * counts the sensor as lost. */
        sn_dev_disconnect(&s->sn, (uint16_t)(s->sleep_ms * 2 / 1000 + 1), now);
        break;
    case SN_DEV_ASLEEP:
        /* A message queued while awake for PINGRESP waits until here. */
        if (slept >= s->sleep_ms || s->sn.q_len > 0)
            sn_dev_connect(&s->sn, now);
        else if (!s->pinged && slept >= s->sleep_ms / 2) {
            s->pinged = true;
            sn_dev_wake(&s->sn, now);
        }
        break;
    default:
        break;
    }
}

/* ---- Link and timers ---------------------------------------------------- */

static void sensor_up(struct simudp_device *d)
{
    sn_dev_connect(&sensor_of(d)->sn, d->fleet->now_ms);
}

static void sensor_down(struct simudp_device *d, bool was_up)
{
    struct sn_sensor *s = sensor_of(d);

    (void)was_up;
    s->announced = false;
    sn_dev_link_down(&s->sn);
}

static void sensor_datagram(struct simudp_device *d, const uint8_t *data, size_t len)
{
    sn_dev_input(&sensor_of(d)->sn, data, len, d->fleet->now_ms);
}

static void sensor_tick(struct simudp_device *d)
{
    struct sn_sensor *s = sensor_of(d);

    sn_dev_tick(&s->sn, d->fleet->now_ms);
    if (s->sleep_ms > 0 && !d->fleet->stopping && sim_link_is_up(d->link))
        run_sleep_cycle(s);
}

static bool sensor_online(const struct simudp_device *d)
{
    enum sn_dev_state st = sn_dev_state(&const_sensor_of(d)->sn);

    return sim_link_is_up(d->link) && st != SN_DEV_OFFLINE && st != SN_DEV_CONNECTING;
}

static bool sensor_drained(const struct simudp_device *d)
{
    const struct sn_dev *sn = &const_sensor_of(d)->sn;

    return !sim_link_is_up(d->link) || sn_dev_state(sn) == SN_DEV_OFFLINE ||
           (sn->q_len == 0 && sn->waiting == 0);
}

static void sensor_finish(struct simudp_device *d)
{
    struct sn_sensor *s = sensor_of(d);

    if (sim_link_is_up(d->link))
        sn_dev_disconnect(&s->sn, 0, d->fleet->now_ms);
}

static void sensor_collect(const struct simudp_device *d, struct simudp_summary *sum)
{
    const struct sn_dev_counters *c = &const_sensor_of(d)->sn.counters;
    struct sn_dev_counters *t = &sum->mqttsn;

    for (int q = 0; q < 3; q++) {
        t->published[q] += c->published[q];
        t->delivered[q] += c->delivered[q];
    }
    t->rejected += c->rejected;
    t->lost += c->lost;
    t->unregistered += c->unregistered;
    t->retries += c->retries;
    t->connects += c->connects;
    t->refused += c->refused;
    t->sleeps += c->sleeps;
    t->wakes += c->wakes;
    t->pings += c->pings;
}

static void sensor_destroy(struct simudp_device *d)
{
    struct sn_sensor *s = sensor_of(d);

    sn_dev_free(&s->sn);
    vigil_free(s);
}

static const struct simudp_device_ops sensor_ops = {
    .kind = SIMUDP_MQTTSN,
    .protocol = "MQTT-SN",
    .up = sensor_up,
    .down = sensor_down,
    .datagram = sensor_datagram,
    .sample = sensor_sample,
    .alarm = sensor_alarm,
    .status = sensor_status,
    .tick = sensor_tick,
    .online = sensor_online,
    .drained = sensor_drained,
    .finish = sensor_finish,
    .collect = sensor_collect,
    .destroy = sensor_destroy,
};

/* Configures the MQTT-SN client: topics under the sensor's prefix, the
 * offline status as will. */
static vigil_err init_client(struct sn_sensor *s, const struct fleet_options *o)
{
    char topics[N_TOPICS][320];
    char will[160];
    struct sn_dev_config c;

    memset(&c, 0, sizeof c);
    for (size_t i = 0; i < N_TOPICS; i++) {
        const char *leaf = i == TOPIC_STATUS  ? "status"
                           : i == TOPIC_ALARM ? "alarm"
                                              : vital_info(simudp_device_metrics[i])->name;

        snprintf(topics[i], sizeof topics[i], "%s%s", s->base.prefix, leaf);
        c.topics[i] = topics[i];
    }
    snprintf(will, sizeof will,
             "{\"device\":\"%s\",\"state\":\"offline\",\"reason\":\"connection lost\"}",
             s->base.id);
    c.client_id = s->base.id;
    c.keep_alive_s = o->keep_alive;
    c.n_topics = N_TOPICS;
    c.will_topic = TOPIC_STATUS;
    c.will_msg = will;
    c.send = send_datagram;
    c.connected = on_connected;
    c.lost = on_lost;
    c.user = s;
    c.seed = o->seed * 104729u + s->base.patient;
    return sn_dev_init(&s->sn, &c);
}

vigil_err sn_sensor_new(struct simudp_fleet *u, uint32_t index, uint32_t patient,
                        struct simudp_device **out)
{
    const struct fleet_options *o = u->opt;
    struct sn_sensor *s = vigil_calloc(1, sizeof *s);
    char id[32];
    vigil_err rc;

    *out = NULL;
    if (s == NULL)
        return VIGIL_ERR_NOMEM;
    s->base.ops = &sensor_ops;
    *out = &s->base;
    snprintf(id, sizeof id, "sens-%04u", index + 1);
    snprintf(s->base.prefix, sizeof s->base.prefix, "%s/%s/room%u/%s/", o->site, o->unit,
             o->first_room + o->devices + index, id);
    s->sleep_ms = (uint64_t)(o->udp.mqttsn_sleep_s * 1000.0);
    for (int i = 0; i < VITAL_COUNT; i++)
        s->latest[i] = NAN;
    rc = simudp_device_setup(u, &s->base, id, patient, &o->udp.mqttsn_addr);
    if (rc == VIGIL_OK)
        rc = init_client(s, o);
    return rc;
}
