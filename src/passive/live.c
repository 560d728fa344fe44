/* Live capture with libpcap for `vigil serve --sniff`: a thread per
 * interface, each with its own passive analyser, emitting observed events. */
#include "passive/live.h"

#include <pcap/pcap.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

/* Maximum wait in pcap_dispatch(), in milliseconds, before a capture thread
 * advances capture time and checks for a stop request. */
#define LIVE_POLL_MS 250
#define LIVE_SNAPLEN 65535
/* How often the kernel drop counters are read, in microseconds. */
#define LIVE_STATS_INTERVAL_US 1000000

struct live_capture {
    char iface[64];
    pcap_t *pc;                   /* owned */
    int link;                     /* DLT_* of the interface */
    struct passive *passive;      /* owned; used only on the capture thread once started */
    passive_event_fn on_event;
    void *ctx;
    uint64_t conn_base;           /* added to every flow id */
    pthread_t thread;
    bool started;
    bool failed;                  /* the thread stopped on a capture error; read after join */
    atomic_bool stop;
    unsigned kernel_drops;        /* ps_drop + ps_ifdrop at the last check */
    int64_t next_stats_us;
};

struct live_sniffers {
    struct live_capture *captures[CONFIG_MAX_SNIFF_INTERFACES];  /* owned */
    size_t n;
};

/* Marks an event of the analyser as observed and passes it on. */
static void live_on_event(void *ctx, const struct vigil_event *ev)
{
    struct live_capture *lc = ctx;
    struct vigil_event copy = *ev;

    copy.observed = true;
    copy.conn_id = lc->conn_base | (ev->conn_id & ((UINT64_C(1) << LIVE_CONN_ID_SHIFT) - 1));
    if (lc->on_event != NULL)
        lc->on_event(lc->ctx, &copy);
}

/* Emits an event about the capture itself (started, stopped, frames lost). */
static void live_emit_status(struct live_capture *lc, enum vigil_event_type type,
                             const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    ev.observed = true;
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    if (lc->on_event != NULL)
        lc->on_event(lc->ctx, &ev);
}

/* Writes "tcp and (port A or port B ...)" into out. */
static void live_filter_text(const struct config_sniff *sniff, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "tcp and (");

    for (size_t i = 0; i < sniff->n_ports && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%sport %u", i > 0 ? " or " : "",
                                (unsigned)sniff->ports[i]);
    if (len < cap)
        snprintf(out + len, cap - len, ")");
}

/* Turns the result of pcap_activate() into a message with the fix. */
static vigil_err live_activate_error(struct live_capture *lc, int status, char *err,
                                     size_t errcap)
{
    const char *reason = pcap_geterr(lc->pc);
    const char *name = lc->iface;

    if (reason == NULL || reason[0] == '\0')
        reason = pcap_statustostr(status);
    switch (status) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
        snprintf(err, errcap, "sniff interface '%s': no such interface (%s); list the "
                 "interfaces with 'ip link show' and fix the name", name, reason);
        return VIGIL_ERR_NOT_FOUND;
    case PCAP_ERROR_PERM_DENIED:
    case PCAP_ERROR_PROMISC_PERM_DENIED:
        snprintf(err, errcap, "sniff interface '%s': permission denied (%s); run vigil serve "
                 "as root or grant the binary CAP_NET_RAW%s, for example with 'setcap "
                 "cap_net_raw%s+ep PATH-TO-VIGIL'", name, reason,
                 status == PCAP_ERROR_PROMISC_PERM_DENIED ? " and CAP_NET_ADMIN" : "",
                 status == PCAP_ERROR_PROMISC_PERM_DENIED ? ",cap_net_admin" : "");
        return VIGIL_ERR_DENIED;
    case PCAP_ERROR_IFACE_NOT_UP:
        snprintf(err, errcap, "sniff interface '%s': the interface is down; bring it up with "
                 "'ip link set %s up'", name, name);
        return VIGIL_ERR_IO;
    default:
        snprintf(err, errcap, "sniff interface '%s': failed to start the capture: %s", name,
                 reason);
        return VIGIL_ERR_IO;
    }
}

static bool live_link_supported(int link)
{
    switch (link) {
    case DLT_NULL:
    case DLT_EN10MB:
    case DLT_RAW:
    case DLT_LOOP:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_IPV4:
    case DLT_IPV6:
        return true;
    default:
        return false;
    }
}

/* Sets the capture options; returns the first failing pcap status. */
static int live_configure(pcap_t *pc, const struct config_sniff *sniff)
{
    int r = pcap_set_snaplen(pc, LIVE_SNAPLEN);

    if (r == 0)
        r = pcap_set_promisc(pc, sniff->promiscuous ? 1 : 0);
    if (r == 0)
        r = pcap_set_immediate_mode(pc, 1);
    if (r == 0)
        r = pcap_set_timeout(pc, LIVE_POLL_MS);
    if (r == 0)
        r = pcap_set_buffer_size(pc, (int)sniff->buffer_size);
    return r;
}

/* Compiles and installs the port filter. */
static vigil_err live_set_filter(struct live_capture *lc, const struct config_sniff *sniff,
                                 char *err, size_t errcap)
{
    struct bpf_program prog;
    char text[512];

    live_filter_text(sniff, text, sizeof text);
    if (pcap_compile(lc->pc, &prog, text, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errcap, "sniff interface '%s': invalid capture filter '%s': %s", lc->iface,
                 text, pcap_geterr(lc->pc));
        return VIGIL_ERR_INVALID;
    }
    if (pcap_setfilter(lc->pc, &prog) != 0) {
        snprintf(err, errcap, "sniff interface '%s': failed to install the capture filter: %s",
                 lc->iface, pcap_geterr(lc->pc));
        pcap_freecode(&prog);
        return VIGIL_ERR_IO;
    }
    pcap_freecode(&prog);
    return VIGIL_OK;
}

/* Activates the capture and checks its link type. */
static vigil_err live_activate(struct live_capture *lc, const struct config_sniff *sniff,
                               char *err, size_t errcap)
{
    int r = live_configure(lc->pc, sniff);

    if (r != 0) {
        snprintf(err, errcap, "sniff interface '%s': failed to set the capture options: %s",
                 lc->iface, pcap_statustostr(r));
        return VIGIL_ERR_IO;
    }
    r = pcap_activate(lc->pc);
    if (r < 0)
        return live_activate_error(lc, r, err, errcap);
    if (r > 0)
        log_warn("sniff interface '%s': %s: %s", lc->iface, pcap_statustostr(r),
                 pcap_geterr(lc->pc));
    lc->link = pcap_datalink(lc->pc);
    if (!live_link_supported(lc->link)) {
        snprintf(err, errcap, "sniff interface '%s': link type %s (%d) is not supported; "
                 "use an Ethernet, loopback or cooked interface, or the 'any' interface",
                 lc->iface, pcap_datalink_val_to_name(lc->link), lc->link);
        return VIGIL_ERR_INVALID;
    }
    return live_set_filter(lc, sniff, err, errcap);
}

static vigil_err live_new_analyser(struct live_capture *lc, const struct config_sniff *sniff)
{
    struct passive_config pcfg;

    passive_config_defaults(&pcfg);
    memcpy(pcfg.ports, sniff->ports, sniff->n_ports * sizeof sniff->ports[0]);
    pcfg.n_ports = sniff->n_ports;
    return passive_new(&pcfg, live_on_event, NULL, lc, &lc->passive);
}

vigil_err live_capture_open(const char *iface, const struct config_sniff *sniff,
                            char *err, size_t errcap, struct live_capture **out)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    struct live_capture *lc;
    vigil_err rc;

    *out = NULL;
    if (sniff->n_ports == 0 || sniff->n_ports > PASSIVE_MAX_PORTS) {
        snprintf(err, errcap, "sniff interface '%s': expected 1 to %d ports, got %zu", iface,
                 PASSIVE_MAX_PORTS, sniff->n_ports);
        return VIGIL_ERR_INVALID;
    }
    lc = vigil_calloc(1, sizeof *lc);
    if (lc == NULL) {
        snprintf(err, errcap, "sniff interface '%s': out of memory", iface);
        return VIGIL_ERR_NOMEM;
    }
    snprintf(lc->iface, sizeof lc->iface, "%s", iface);
    atomic_init(&lc->stop, false);
    lc->pc = pcap_create(iface, perr);
    if (lc->pc == NULL) {
        snprintf(err, errcap, "sniff interface '%s': failed to open: %s", iface, perr);
        rc = VIGIL_ERR_IO;
        goto fail;
    }
    rc = live_activate(lc, sniff, err, errcap);
    if (rc != VIGIL_OK)
        goto fail;
    rc = live_new_analyser(lc, sniff);
    if (rc != VIGIL_OK) {
        snprintf(err, errcap, "sniff interface '%s': failed to create the analyser: %s", iface,
                 vigil_strerror(rc));
        goto fail;
    }
    *out = lc;
    return VIGIL_OK;
fail:
    live_capture_free(lc);
    return rc;
}

static void live_on_frame(u_char *user, const struct pcap_pkthdr *hdr, const u_char *data)
{
    struct live_capture *lc = (struct live_capture *)user;
    int64_t ts = (int64_t)hdr->ts.tv_sec * 1000000 + hdr->ts.tv_usec;

    passive_feed_frame(lc->passive, lc->link, ts, data, hdr->caplen);
}

/* Reports frames the kernel dropped since the last check, at most once per
 * LIVE_STATS_INTERVAL_US: each is traffic the engine never saw. */
static void live_check_drops(struct live_capture *lc, int64_t now_us)
{
    struct pcap_stat st;
    char detail[128];
    unsigned total;

    if (now_us < lc->next_stats_us || pcap_stats(lc->pc, &st) != 0)
        return;
    lc->next_stats_us = now_us + LIVE_STATS_INTERVAL_US;
    total = st.ps_drop + st.ps_ifdrop;
    if (total == lc->kernel_drops)
        return;
    snprintf(detail, sizeof detail, "sniffing on %s: %u frames lost (capture buffer full); "
             "raise sniff_buffer_size", lc->iface, total - lc->kernel_drops);
    log_warn("%s", detail);
    live_emit_status(lc, VIGIL_EV_LIMIT, detail);
    lc->kernel_drops = total;
}

static void *live_thread_main(void *arg)
{
    struct live_capture *lc = arg;
    char detail[128];

    while (!atomic_load(&lc->stop)) {
        int n = pcap_dispatch(lc->pc, -1, live_on_frame, (u_char *)lc);
        int64_t now = vigil_time_now_us();

        if (n == PCAP_ERROR) {
            snprintf(detail, sizeof detail, "sniffing on %s stopped: %s", lc->iface,
                     pcap_geterr(lc->pc));
            log_error("%s", detail);
            live_emit_status(lc, VIGIL_EV_ADMIN, detail);
            lc->failed = true;
            break;
        }
        /* Without frames, wall-clock time still expires connect timeouts,
         * idle flows and out-of-order waits. */
        passive_advance(lc->passive, now);
        live_check_drops(lc, now);
    }
    passive_finish(lc->passive);
    return NULL;
}

vigil_err live_capture_start(struct live_capture *lc, size_t idx, passive_event_fn on_event,
                             void *ctx)
{
    sigset_t all, old;
    char detail[128];
    int r;

    lc->on_event = on_event;
    lc->ctx = ctx;
    lc->conn_base = (uint64_t)(idx + 1) << LIVE_CONN_ID_SHIFT;
    lc->next_stats_us = vigil_time_now_us() + LIVE_STATS_INTERVAL_US;
    /* Signals stay with the hub's threads: the capture thread blocks them all. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&lc->thread, NULL, live_thread_main, lc);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        log_error("sniff interface '%s': failed to start the capture thread: %s", lc->iface,
                  strerror(r));
        return VIGIL_ERR_IO;
    }
    lc->started = true;
    snprintf(detail, sizeof detail, "sniffing on %s started", lc->iface);
    live_emit_status(lc, VIGIL_EV_ADMIN, detail);
    return VIGIL_OK;
}

static void live_log_stats(const struct live_capture *lc)
{
    const struct passive_stats *st = passive_get_stats(lc->passive);

    log_info("sniffing on %s stopped: %llu frames, %llu MQTT packets, %llu events, %llu flows, "
             "%llu stream gaps, %u frames lost in the kernel", lc->iface,
             (unsigned long long)st->frames, (unsigned long long)st->mqtt_packets,
             (unsigned long long)st->events, (unsigned long long)st->flows,
             (unsigned long long)st->gaps, lc->kernel_drops);
}

void live_capture_free(struct live_capture *lc)
{
    if (lc == NULL)
        return;
    if (lc->started) {
        atomic_store(&lc->stop, true);
        pcap_breakloop(lc->pc);
        pthread_join(lc->thread, NULL);
        live_log_stats(lc);
    }
    if (lc->started && !lc->failed) {
        char detail[128];

        snprintf(detail, sizeof detail, "sniffing on %s stopped", lc->iface);
        live_emit_status(lc, VIGIL_EV_ADMIN, detail);
    }
    /* Freeing the analyser emits the events its open flows still hold, so
     * on_event must still be valid here. */
    passive_free(lc->passive);
    if (lc->pc != NULL)
        pcap_close(lc->pc);
    vigil_free(lc);
}

static void live_emit_to_sink(void *ctx, const struct vigil_event *ev)
{
    vigil_event_sink_emit(ctx, ev);
}

vigil_err live_sniffers_start(const struct config_sniff *sniff, struct vigil_event_sink *sink,
                              char *err, size_t errcap, struct live_sniffers **out)
{
    struct live_sniffers *s;
    vigil_err rc = VIGIL_OK;
    size_t n = sniff->n_interfaces;

    *out = NULL;
    if (n == 0)
        return VIGIL_OK;
    if (n > CONFIG_MAX_SNIFF_INTERFACES) {
        snprintf(err, errcap, "sniff: %zu interfaces; at most %d are supported", n,
                 CONFIG_MAX_SNIFF_INTERFACES);
        return VIGIL_ERR_INVALID;
    }
    s = vigil_calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errcap, "sniff: out of memory");
        return VIGIL_ERR_NOMEM;
    }
    /* Every interface is opened before any thread starts, so one bad name
     * stops the start before any event is emitted. */
    for (; s->n < n && rc == VIGIL_OK; s->n++)
        rc = live_capture_open(sniff->interfaces[s->n], sniff, err, errcap, &s->captures[s->n]);
    for (size_t i = 0; i < s->n && rc == VIGIL_OK; i++) {
        rc = live_capture_start(s->captures[i], i, live_emit_to_sink, sink);
        if (rc != VIGIL_OK)
            snprintf(err, errcap, "sniff interface '%s': failed to start the capture thread",
                     sniff->interfaces[i]);
    }
    if (rc != VIGIL_OK) {
        live_sniffers_stop(s);
        return rc;
    }
    *out = s;
    return VIGIL_OK;
}

void live_sniffers_stop(struct live_sniffers *s)
{
    if (s == NULL)
        return;
    /* Every thread is asked to stop first, so they wind down together. */
    for (size_t i = 0; i < s->n; i++)
        if (s->captures[i] != NULL && s->captures[i]->started) {
            atomic_store(&s->captures[i]->stop, true);
            pcap_breakloop(s->captures[i]->pc);
        }
    for (size_t i = 0; i < s->n; i++)
        live_capture_free(s->captures[i]);
    vigil_free(s);
}
