/* Connection deadlines (the CONNECT timeout, then keep-alive, then the
 * time a closing connection has to write its output) on one timer of the
 * hub. A heap orders the deadlines of all connections and the timer
 * is armed for the earliest, so a connection carries a 16-byte heap node
 * instead of a 152-byte uv_timer_t. Deadlines fire at the same loop time
 * a per-connection uv_timer_t would. */
#include <stddef.h>

#include "broker/broker.h"
#include "core/log.h"

static struct conn *conn_of(struct vigil_timer_node *t)
{
    return (struct conn *)((char *)t - offsetof(struct conn, timer));
}

/* Arms the hub timer for the earliest deadline when it is earlier than
 * the one the timer waits for. */
static void conn_timers_arm(struct hub *hub);

/* Runs when the deadline of c came: closes it when no CONNECT arrived or
 * the keep-alive ran out, otherwise sets the next keep-alive deadline. A
 * closing connection still writing at its close deadline is reset. */
static void conn_deadline(struct conn *c)
{
    uint64_t now = uv_now(c->hub->loop);
    uint64_t limit;

    if (c->state == CONN_CLOSING) {
        /* Only the close deadline applies once closing. */
        if (c->close_deadline)
            conn_close_expired(c);
        return;
    }
    if (c->state == CONN_NEW || c->state == CONN_AUTH) {
        if (c->state == CONN_NEW) {
            hub_emit(c->hub, c, VIGIL_EV_LIMIT, NULL, 0, "MQTT-3.1.4", "no CONNECT within the connect timeout");
            conn_close(c, 0xFF, "no CONNECT within the connect timeout");
        }
        return;
    }
    if (c->keep_alive == 0)
        return;
    /* One and a half times the keep-alive, as MQTT-3.1.2-24 allows. */
    limit = (uint64_t)c->keep_alive * 1500;
    if (now - c->last_rx_ms >= limit) {
        hub_emit(c->hub, c, VIGIL_EV_LIMIT, NULL, 0, "MQTT-3.1.2-24", "keep-alive timeout");
        conn_close(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep-alive timeout");
        return;
    }
    conn_timer_set(c, limit - (now - c->last_rx_ms));
}

static void on_conn_timers(uv_timer_t *timer)
{
    struct hub *hub = timer->data;
    uint64_t now = uv_now(hub->loop);
    struct vigil_timer_node *t;

    /* Deadlines set meanwhile are armed once, at the end. */
    hub->conn_timers_running = true;
    hub->conn_timer_due = 0;
    while ((t = vigil_timer_heap_peek(&hub->conn_deadlines)) != NULL && t->due <= now) {
        struct conn *c = conn_of(t);

        vigil_timer_heap_remove(&hub->conn_deadlines, t);
        conn_ref(c);
        conn_deadline(c);
        conn_unref(c);
    }
    hub->conn_timers_running = false;
    conn_timers_arm(hub);
}

static void conn_timers_arm(struct hub *hub)
{
    struct vigil_timer_node *t = vigil_timer_heap_peek(&hub->conn_deadlines);
    uint64_t now = uv_now(hub->loop);

    if (t == NULL || hub->stopping_timers || hub->conn_timers_running)
        return;
    if (hub->conn_timer_due != 0 && hub->conn_timer_due <= t->due)
        return;
    hub->conn_timer_due = t->due;
    uv_timer_start(&hub->conn_timer, on_conn_timers, t->due > now ? t->due - now : 0, 0);
}

void conn_timers_init(struct hub *hub)
{
    vigil_timer_heap_init(&hub->conn_deadlines);
    uv_timer_init(hub->loop, &hub->conn_timer);
    hub->conn_timer.data = hub;
    hub->conn_timer_due = 0;
}

void conn_timers_close(struct hub *hub, uv_close_cb done)
{
    hub->stopping_timers = true;
    uv_close((uv_handle_t *)&hub->conn_timer, done);
}

bool conn_timer_set(struct conn *c, uint64_t delay_ms)
{
    struct hub *hub = c->hub;

    if (vigil_timer_heap_set(&hub->conn_deadlines, &c->timer, uv_now(hub->loop) + delay_ms) != VIGIL_OK) {
        log_error("conn %llu %s: cannot set its deadline: out of memory", (unsigned long long)c->id,
                  c->peer);
        return false;
    }
    conn_timers_arm(hub);
    return true;
}

void conn_timer_stop(struct conn *c)
{
    /* The hub timer may still fire for this deadline; it then finds
     * nothing due and waits for the next one. */
    vigil_timer_heap_remove(&c->hub->conn_deadlines, &c->timer);
}

void conn_start_keepalive(struct conn *c)
{
    conn_timer_stop(c);
    if (c->keep_alive > 0 && !conn_timer_set(c, (uint64_t)c->keep_alive * 1500))
        conn_close(c, MQTT_RC_UNSPECIFIED, "out of memory");
}
