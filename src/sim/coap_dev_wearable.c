/* A CoAP wearable: heart rate, SpO2 and respiratory rate as one SenML pack
 * a second (POST /t, non-confirmable), temperature as a plain number
 * (POST /t/temperature), and status and alarms as JSON on topics below
 * /ps, confirmable. Without a DTLS identity (plain UDP on an anonymous
 * listener) the hub cannot name the device's topics, so every message goes
 * to /ps/<topic>. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "sim/coap_dev.h"
#include "sim/udp_fleet_internal.h"

/* Content-Format numbers of the CoAP registry. */
#define FORMAT_TEXT 0u
#define FORMAT_JSON 50u
#define FORMAT_SENML_JSON 110u

struct coap_wearable {
    struct simudp_device base;       /* first: the fleet stores &base */
    struct coap_dev coap;
    bool has_identity;            /* DTLS: /t names the device's topics */
};

static struct coap_wearable *wearable_of(struct simudp_device *d)
{
    return (struct coap_wearable *)d;
}

static vigil_err send_datagram(void *user, const uint8_t *data, size_t len)
{
    struct coap_wearable *w = user;

    return sim_link_send(w->base.link, data, len);
}

static void on_done(void *user, enum coap_dev_outcome outcome, uint8_t code, const char *path)
{
    struct coap_wearable *w = user;
    char what[128];

    if (outcome == COAP_DEV_REJECTED) {
        snprintf(what, sizeof what, "a CoAP POST to /%s with %u.%02u", path,
                 (unsigned)(code >> 5), (unsigned)(code & 0x1F));
        simudp_device_log_reject(&w->base, what);
    } else if (outcome == COAP_DEV_TIMED_OUT && !w->base.fleet->closing) {
        /* The hub no longer responds on this session, because it restarted
         * or dropped the DTLS session. A new handshake makes a new one. */
        sim_link_restart(w->base.link, "confirmable request timed out");
    }
}

/* ---- Messages ----------------------------------------------------------- */

/* Writes "ps/<prefix><leaf>" into out. */
static bool ps_path(const struct coap_wearable *w, const char *leaf, char *out, size_t cap)
{
    int n = snprintf(out, cap, "ps/%s%s", w->base.prefix, leaf);

    return n > 0 && (size_t)n < cap && (size_t)n < COAP_DEV_MAX_PATH;
}

static vigil_err post(struct coap_wearable *w, bool con, const char *path, uint16_t format,
                      const char *payload, size_t len)
{
    return coap_dev_post(&w->coap, con, path, format, (const uint8_t *)payload, len,
                         w->base.fleet->now_ms);
}

/* One SenML record per metric on its /ps topic. */
static void send_each_metric(struct coap_wearable *w, double time_s,
                             const double values[VITAL_COUNT])
{
    char path[COAP_DEV_MAX_PATH], payload[256];

    for (int i = 0; i < SIMUDP_DEVICE_N_METRICS; i++) {
        enum vital v = simudp_device_metrics[i];
        size_t n = senml_format(payload, sizeof payload, w->base.base_name, time_s, v, values[v]);

        if (n > 0 && ps_path(w, vital_info(v)->name, path, sizeof path))
            post(w, false, path, FORMAT_SENML_JSON, payload, n);
    }
}

static void send_pack(struct coap_wearable *w, double time_s, const double values[VITAL_COUNT])
{
    static const enum vital pack_metrics[] = {VITAL_HR, VITAL_SPO2, VITAL_RESP};
    char payload[512];
    size_t n = simudp_senml_pack(payload, sizeof payload, w->base.base_name, time_s, values,
                                 pack_metrics, sizeof pack_metrics / sizeof pack_metrics[0]);
    int len;

    if (n > 0)
        post(w, false, "t", FORMAT_SENML_JSON, payload, n);
    if (!isnan(values[VITAL_TEMP])) {
        len = snprintf(payload, sizeof payload, "%.1f", values[VITAL_TEMP]);
        post(w, false, "t/temperature", FORMAT_TEXT, payload, (size_t)len);
    }
}

static void wearable_sample(struct simudp_device *d, double t, const double values[VITAL_COUNT])
{
    struct coap_wearable *w = wearable_of(d);
    double time_s = d->fleet->start_epoch + t;

    if (!sim_link_is_up(d->link)) {
        d->samples_offline++;
        return;
    }
    if (w->has_identity)
        send_pack(w, time_s, values);
    else
        send_each_metric(w, time_s, values);
}

static bool post_json(struct coap_wearable *w, const char *leaf, const char *json, size_t len)
{
    char path[COAP_DEV_MAX_PATH];

    return ps_path(w, leaf, path, sizeof path) &&
           post(w, true, path, FORMAT_JSON, json, len) == VIGIL_OK;
}

static bool wearable_alarm(struct simudp_device *d, const char *json, size_t len)
{
    return post_json(wearable_of(d), "alarm", json, len);
}

static bool wearable_status(struct simudp_device *d, const char *json, size_t len)
{
    return post_json(wearable_of(d), "status", json, len);
}

/* ---- Link and timers ---------------------------------------------------- */

static void wearable_up(struct simudp_device *d)
{
    struct coap_wearable *w = wearable_of(d);
    char json[512];
    size_t n;

    coap_dev_set_online(&w->coap, true, d->fleet->now_ms);
    if (d->fleet->stopping)
        return;
    n = simudp_device_status_json(d, "online", "connected", json, sizeof json);
    if (n > 0)
        wearable_status(d, json, n);
    d->next_status_ms = d->fleet->now_ms + (uint64_t)(d->fleet->opt->status_interval_s * 1000.0);
}

static void wearable_down(struct simudp_device *d, bool was_up)
{
    (void)was_up;
    coap_dev_set_online(&wearable_of(d)->coap, false, d->fleet->now_ms);
}

static void wearable_datagram(struct simudp_device *d, const uint8_t *data, size_t len)
{
    coap_dev_input(&wearable_of(d)->coap, data, len, d->fleet->now_ms);
}

static void wearable_tick(struct simudp_device *d)
{
    coap_dev_tick(&wearable_of(d)->coap, d->fleet->now_ms);
}

static bool wearable_online(const struct simudp_device *d)
{
    return sim_link_is_up(d->link);
}

static bool wearable_drained(const struct simudp_device *d)
{
    const struct coap_wearable *w = (const struct coap_wearable *)d;

    return !sim_link_is_up(d->link) || coap_dev_idle(&w->coap);
}

static void wearable_finish(struct simudp_device *d)
{
    (void)d; /* CoAP has no connection to end; the link sends close_notify. */
}

static void wearable_collect(const struct simudp_device *d, struct simudp_summary *s)
{
    const struct coap_dev_counters *c = &((const struct coap_wearable *)d)->coap.counters;

    s->coap.con_sent += c->con_sent;
    s->coap.non_sent += c->non_sent;
    s->coap.retransmissions += c->retransmissions;
    s->coap.acknowledged += c->acknowledged;
    s->coap.rejected += c->rejected;
    s->coap.timed_out += c->timed_out;
    s->coap.dropped += c->dropped;
}

static void wearable_destroy(struct simudp_device *d)
{
    struct coap_wearable *w = wearable_of(d);

    coap_dev_free(&w->coap);
    vigil_free(w);
}

static const struct simudp_device_ops wearable_ops = {
    .kind = SIMUDP_COAP,
    .protocol = "CoAP",
    .up = wearable_up,
    .down = wearable_down,
    .datagram = wearable_datagram,
    .sample = wearable_sample,
    .alarm = wearable_alarm,
    .status = wearable_status,
    .tick = wearable_tick,
    .online = wearable_online,
    .drained = wearable_drained,
    .finish = wearable_finish,
    .collect = wearable_collect,
    .destroy = wearable_destroy,
};

vigil_err coap_wearable_new(struct simudp_fleet *u, uint32_t index, uint32_t patient,
                            struct simudp_device **out)
{
    const struct fleet_options *o = u->opt;
    struct coap_wearable *w = vigil_calloc(1, sizeof *w);
    struct coap_dev_config cc;
    char id[32];

    *out = NULL;
    if (w == NULL)
        return VIGIL_ERR_NOMEM;
    w->base.ops = &wearable_ops;
    w->has_identity = o->udp.dtls != NULL;
    memset(&cc, 0, sizeof cc);
    cc.send = send_datagram;
    cc.done = on_done;
    cc.user = w;
    cc.seed = o->seed * 7919u + patient;
    coap_dev_init(&w->coap, &cc);
    *out = &w->base;
    snprintf(id, sizeof id, "wear-%04u", index + 1);
    if (simudp_expand_topic_base(o->udp.coap_topic_base, o->unit, o->udp.coap_type, id,
                                 w->base.prefix, sizeof w->base.prefix) == 0) {
        log_error("--coap-topic-base %s: only %%d, %%t and %%u may follow '%%'",
                  o->udp.coap_topic_base);
        return VIGIL_ERR_INVALID;
    }
    return simudp_device_setup(u, &w->base, id, patient, &o->udp.coap_addr);
}
