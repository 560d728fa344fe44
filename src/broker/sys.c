/* $SYS/broker/... metrics, published as retained messages that are not
 * written to the store. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/iothread.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "store/store.h"

#define VIGIL_VERSION "0.1.0"

static void sys_put(struct hub *hub, const char *topic, const char *value)
{
    struct msg *m = msg_new(topic, strlen(topic), (const uint8_t *)value, strlen(value), NULL, 0);

    if (m == NULL)
        return;
    m->retain = true;
    router_retain(hub, m, false);
    router_publish(hub, m, NULL);
    msg_unref(m);
}

static void sys_put_u64(struct hub *hub, const char *topic, uint64_t v)
{
    char buf[32];

    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    sys_put(hub, topic, buf);
}

void sys_publish(struct hub *hub)
{
    const struct hub_stats *st = &hub->stats;
    const struct out_budget *out = &hub->output;

    /* The output figures go first: each publish below adds output for the
     * $SYS subscribers, which the current value would otherwise include. */
    sys_put_u64(hub, "$SYS/broker/output/bytes", out->total);
    sys_put_u64(hub, "$SYS/broker/output/maximum", out->peak);
    sys_put_u64(hub, "$SYS/broker/output/dropped/connection", out->dropped_conn_limit);
    sys_put_u64(hub, "$SYS/broker/output/dropped/budget", out->dropped_budget);
    sys_put_u64(hub, "$SYS/broker/output/aborted", out->aborted);
    sys_put(hub, "$SYS/broker/version", "vigil " VIGIL_VERSION);
    sys_put_u64(hub, "$SYS/broker/uptime", (uint64_t)(hub_now_s() - hub->started_s));
    sys_put_u64(hub, "$SYS/broker/clients/connected", hub->n_conns);
    sys_put_u64(hub, "$SYS/broker/clients/total", hub->sessions.count);
    sys_put_u64(hub, "$SYS/broker/clients/maximum", hub->cfg.limits.max_connections);
    sys_put_u64(hub, "$SYS/broker/connections/total", st->connections_total);
    sys_put_u64(hub, "$SYS/broker/messages/received", st->msgs_received);
    sys_put_u64(hub, "$SYS/broker/messages/sent", st->msgs_sent);
    sys_put_u64(hub, "$SYS/broker/messages/dropped", st->msgs_dropped);
    sys_put_u64(hub, "$SYS/broker/messages/denied", st->publish_denied);
    sys_put_u64(hub, "$SYS/broker/bytes/received", st->bytes_received);
    sys_put_u64(hub, "$SYS/broker/bytes/sent", st->bytes_sent);
    sys_put_u64(hub, "$SYS/broker/subscriptions/count", subtree_count(hub->subs));
    sys_put_u64(hub, "$SYS/broker/retained messages/count", retain_count(hub->retained));
    sys_put_u64(hub, "$SYS/broker/heap/current", vigil_alloc_in_use());
    sys_put_u64(hub, "$SYS/broker/heap/maximum", vigil_alloc_peak());
    sys_put_u64(hub, "$SYS/broker/store/commits", store_commits(hub->store));
    sys_put_u64(hub, "$SYS/broker/store/pending", store_pending(hub->store));
    sys_put_u64(hub, "$SYS/broker/store/written", store_ops_written(hub->store));
    sys_put_u64(hub, "$SYS/broker/store/elided", store_ops_elided(hub->store));
    sys_put_u64(hub, "$SYS/broker/events/written", vigil_event_sink_written(hub->events));
    sys_put_u64(hub, "$SYS/broker/events/dropped", vigil_event_sink_dropped(hub->events));
    sys_put_u64(hub, "$SYS/broker/io/threads", iopool_threads(hub));
    for (size_t i = 0; i < iopool_threads(hub); i++) {
        char topic[64];

        snprintf(topic, sizeof topic, "$SYS/broker/io/%zu/connections", i);
        sys_put_u64(hub, topic, iopool_thread_conns(hub, i));
    }
}
