/* The hub-wide count of unsent MQTT output and the rule that drops QoS 0
 * deliveries to keep it within limits.max_output_bytes per connection and
 * limits.output_budget_bytes for the hub. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"

/* Unsent output every connection may hold even when the hub is over its
 * budget: four 16 KiB messages, or several hundred vital-sign messages, so
 * that a subscriber that keeps up loses nothing while slow ones are shed. */
#define OUTBUDGET_SHARE_FLOOR (64u * 1024)

/* Minimum time between two limit events about dropped QoS 0 deliveries to
 * one connection, so an overloaded fan-out does not flood the event sink. */
#define OUTBUDGET_EVENT_INTERVAL_MS 10000u

void outbudget_init(struct out_budget *b, size_t conn_limit, size_t budget)
{
    memset(b, 0, sizeof *b);
    b->conn_limit = conn_limit;
    b->budget = budget;
}

void outbudget_account(struct out_budget *b, uint32_t *counted, size_t now)
{
    if (now == *counted)
        return;
    if (*counted == 0)
        b->holders++;
    else if (now == 0)
        b->holders--;
    b->total = b->total - *counted + now;
    if (b->total > b->peak)
        b->peak = b->total;
    *counted = (uint32_t)now;
}

/* The budget split evenly over the connections that hold output, so the
 * subscribers that fall behind give way first and in proportion. */
size_t outbudget_share(const struct out_budget *b)
{
    size_t share = b->holders > 0 ? b->budget / b->holders : b->budget;

    return share > OUTBUDGET_SHARE_FLOOR ? share : OUTBUDGET_SHARE_FLOOR;
}

enum out_verdict outbudget_check(const struct out_budget *b, size_t backlog)
{
    if (backlog > b->conn_limit)
        return OUT_OVER_CONN_LIMIT;
    if (b->total > b->budget && backlog > outbudget_share(b))
        return OUT_OVER_SHARE;
    return OUT_SEND;
}

static void outbudget_emit(struct conn *c, enum out_verdict verdict)
{
    struct hub *hub = c->hub;
    char detail[160];

    if (verdict == OUT_OVER_CONN_LIMIT)
        snprintf(detail, sizeof detail,
                 "QoS 0 messages dropped: %zu bytes of unsent output, over "
                 "limits.max_output_bytes (%zu)",
                 conn_backlog(c), hub->output.conn_limit);
    else
        snprintf(detail, sizeof detail,
                 "QoS 0 messages dropped: %zu bytes of unsent output while the hub holds %zu, "
                 "over limits.output_budget_bytes (%zu)",
                 conn_backlog(c), hub->output.total, hub->output.budget);
    hub_emit(hub, c, VIGIL_EV_LIMIT, NULL, 0, NULL, detail);
}

void outbudget_dropped(struct conn *c, enum out_verdict verdict)
{
    struct hub *hub = c->hub;
    uint64_t now = uv_now(hub->loop);
    struct conn_extra *x;

    hub->stats.msgs_dropped++;
    if (verdict == OUT_OVER_CONN_LIMIT)
        hub->output.dropped_conn_limit++;
    else
        hub->output.dropped_budget++;
    /* When no memory is left to record the time of the last event, no
     * event is sent, but the drop is still counted. */
    x = conn_extra(c);
    if (x == NULL ||
        (x->out_drop_event_ms != 0 && now - x->out_drop_event_ms < OUTBUDGET_EVENT_INTERVAL_MS))
        return;
    x->out_drop_event_ms = now;
    outbudget_emit(c, verdict);
}
