/* Hub life cycle: listeners, the periodic tick, signals, events. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker.h"
#include "broker/gateway.h"
#include "broker/iothread.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/sched.h"
#include "core/time.h"
#include "passive/live.h"
#include "store/store.h"

void hub_peer_host(const char *peer, char *out, size_t cap)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);

    if (n >= cap)
        n = cap - 1;
    memcpy(out, peer, n);
    out[n] = '\0';
}

char hub_no_name[1];

bool hub_name_set(char **name, const char *s, size_t len, size_t max)
{
    size_t n = strnlen(s, len < max ? len : max);
    char *copy = hub_no_name;

    if (n > 0) {
        copy = vigil_malloc(n + 1);
        if (copy == NULL)
            return false;
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    hub_name_free(name);
    *name = copy;
    return true;
}

void hub_name_free(char **name)
{
    if (*name != hub_no_name)
        vigil_free(*name);
    *name = hub_no_name;
}

int64_t hub_now_s(void)
{
    return vigil_time_now_us() / 1000000;
}

/* Per-connection event budget: a burst of 1000, refilled at 200 a second. */
#define EVENT_BURST 1000u
#define EVENT_RATE_PER_S 200u

bool hub_event_always_kept(uint8_t type)
{
    return type == VIGIL_EV_CONNECT_ATTEMPT || type == VIGIL_EV_AUTH_SUCCESS ||
           type == VIGIL_EV_AUTH_FAILURE || type == VIGIL_EV_DISCONNECT ||
           type == VIGIL_EV_TLS_FAILURE || type == VIGIL_EV_CERT ||
           type == VIGIL_EV_RATE_LIMIT || type == VIGIL_EV_ADMIN;
}

bool hub_event_budget_take(struct hub *hub, uint32_t *tokens, uint64_t *last_ms)
{
    uint64_t now = uv_now(hub->loop);
    uint64_t cap = (uint64_t)EVENT_BURST * 1000;
    uint64_t have = *tokens;

    if (*last_ms == 0)
        have = cap;
    else
        have += (now - *last_ms) * EVENT_RATE_PER_S;
    if (have > cap)
        have = cap;
    *last_ms = now;
    if (have < 1000) {
        *tokens = (uint32_t)have;
        return false;
    }
    *tokens = (uint32_t)(have - 1000);
    return true;
}

/* Fills the connection fields of ev and queues it, outside any budget. */
static void hub_emit_send(struct hub *hub, const struct conn *c, struct vigil_event *ev)
{
    if (hub->events == NULL)
        return;
    if (c != NULL) {
        ev->conn_id = c->id;
        ev->proto = c->version == MQTT_V5 ? VIGIL_PROTO_MQTT5
                    : c->version ? VIGIL_PROTO_MQTT311 : VIGIL_PROTO_NONE;
        VIGIL_EVENT_SET(ev, peer, c->peer, strlen(c->peer));
        VIGIL_EVENT_SET(ev, client_id, c->client_id, strlen(c->client_id));
        VIGIL_EVENT_SET(ev, device, c->device, strlen(c->device));
        VIGIL_EVENT_SET(ev, device_type, c->device_type, strlen(c->device_type));
        if (ev->keep_alive == 0)
            ev->keep_alive = c->keep_alive_requested;
    }
    vigil_event_sink_emit(hub->events, ev);
}

/* Emits the summary of suppressed events of c, if any. */
void hub_emit_suppressed(struct hub *hub, struct conn *c)
{
    struct vigil_event ev;
    char detail[96];

    if (c->ev_suppressed == 0)
        return;
    vigil_event_init(&ev, VIGIL_EV_LIMIT);
    snprintf(detail, sizeof detail, "%llu events of this connection suppressed (event rate limit)",
             (unsigned long long)c->ev_suppressed);
    VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    c->ev_suppressed = 0;
    hub_emit_send(hub, c, &ev);
}

void hub_emit_ev(struct hub *hub, const struct conn *cc, struct vigil_event *ev)
{
    struct conn *c = (struct conn *)cc;

    if (hub->events == NULL || !hub->cfg.secmon_enabled)
        return;
    if (c != NULL && !hub_event_always_kept(ev->type)) {
        if (!hub_event_budget_take(hub, &c->ev_tokens, &c->ev_last_ms)) {
            if (c->ev_suppressed < UINT32_MAX)
                c->ev_suppressed++;
            return;
        }
        if (c->ev_suppressed > 0)
            hub_emit_suppressed(hub, c);
    }
    hub_emit_send(hub, c, ev);
}

void hub_emit(struct hub *hub, const struct conn *c, enum vigil_event_type type,
              const char *topic, size_t topic_len, const char *rule, const char *detail)
{
    struct vigil_event ev;

    vigil_event_init(&ev, type);
    if (topic != NULL)
        VIGIL_EVENT_SET(&ev, topic, topic, topic_len);
    ev.rule = rule;
    if (detail != NULL)
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
    hub_emit_ev(hub, c, &ev);
}

/* Frees a descriptor for one accept when the process has none left:
 * closes the spare, accepts the waiting connection and closes it at once,
 * then takes the spare again. Without this a listener whose backlog cannot
 * be accepted stays readable and the loop spins. Returns false when no
 * connection was shed, with errno set. It is EAGAIN when none was waiting,
 * because Linux reports EMFILE before it looks at the backlog. */
static bool hub_shed_connection(struct hub *hub, int lfd)
{
    int fd, err;

    if (hub->spare_fd < 0) {
        errno = EMFILE;
        return false;
    }
    close(hub->spare_fd);
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    err = errno;
    if (fd >= 0)
        close(fd);
    hub->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    errno = err;
    return fd >= 0;
}

/* Logs how many connections were shed since the last such line, if any. */
static void hub_log_shed_count(struct hub *hub)
{
    if (hub->shed_unlogged == 0)
        return;
    log_warn("accept failed: %s; closed %llu waiting connection(s) without reading them",
             strerror(hub->shed_errno), (unsigned long long)hub->shed_unlogged);
    hub->shed_unlogged = 0;
    hub->shed_logged_ms = uv_now(hub->loop);
}

/* Counts a connection shed because descriptors ran out (error err). The
 * first of a burst is logged at once and the rest by the 1 s tick, so
 * that clients cannot flood the log by connecting. */
static void hub_count_shed(struct hub *hub, int err)
{
    hub->shed_unlogged++;
    hub->shed_errno = err;
    if (hub->shed_logged_ms == 0 || uv_now(hub->loop) - hub->shed_logged_ms >= 1000)
        hub_log_shed_count(hub);
}

/* Accepts what is waiting on a listening socket. The number per callback is
 * capped so that a connection storm does not starve the loop's other work. */
static void on_listener_ready(uv_poll_t *h, int status, int events)
{
    struct hub *hub = h->loop->data;
    struct hub_listener *l = h->data;
    size_t idx = (size_t)(l - hub->listeners);

    (void)events;
    if (status < 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    for (int n = 0; n < 256 && !hub->stopping; n++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            conn_accept(hub, fd, (const struct sockaddr *)&peer, &hub->cfg.listeners[idx]);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EMFILE || errno == ENFILE) {
            int err = errno;

            if (hub_shed_connection(hub, l->fd)) {
                hub_count_shed(hub, err);
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            log_warn("accept failed: %s; cannot close the waiting connection: %s; "
                     "accepting again in 1 s",
                     strerror(err), strerror(errno));
        } else {
            log_warn("accept failed: %s; accepting again in 1 s", strerror(errno));
        }
        /* The waiting connection keeps the socket readable, so polling it
         * again at once would spin. The tick resumes it. */
        uv_poll_stop(&l->poll);
        l->paused = true;
        return;
    }
}

/* Restarts polling the listeners that on_listener_ready paused. */
static void hub_resume_listeners(struct hub *hub)
{
    for (size_t i = 0; i < hub->n_listeners; i++) {
        struct hub_listener *l = &hub->listeners[i];

        if (!hub->listener_open[i] || !l->paused || hub->fronts[i] != NULL)
            continue;
        l->paused = false;
        uv_poll_start(&l->poll, UV_READABLE, on_listener_ready);
    }
}

/* Formats a listener's address as "host:port", with an IPv6 host in brackets. */
static void listener_address(const struct config_listener *l, char *out, size_t cap)
{
    if (strchr(l->host, ':') != NULL)
        snprintf(out, cap, "[%s]:%u", l->host, l->port);
    else
        snprintf(out, cap, "%s:%u", l->host, l->port);
}

/* Opens a listening socket on addr and polls it on the hub's loop. Returns
 * 0 or a libuv error code. */
static int hub_bind_tcp(struct hub *hub, size_t i, const char *host, uint16_t port)
{
    struct hub_listener *l = &hub->listeners[i];
    struct sockaddr_storage addr;
    socklen_t len;
    int on = 1, off = 0, rc;

    if (strchr(host, ':') != NULL) {
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
        len = sizeof(struct sockaddr_in6);
    } else {
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
        len = sizeof(struct sockaddr_in);
    }
    if (rc != 0)
        return rc;
    l->fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0)
        return -errno;
    if (setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        /* "::" takes IPv4 too where the system allows it. */
        (addr.ss_family == AF_INET6 &&
         setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) ||
        bind(l->fd, (const struct sockaddr *)&addr, len) != 0 || listen(l->fd, 1024) != 0) {
        rc = -errno;
        close(l->fd);
        l->fd = -1;
        return rc;
    }
    rc = uv_poll_init(hub->loop, &l->poll, l->fd);
    if (rc != 0) {
        close(l->fd);
        l->fd = -1;
        return rc;
    }
    l->poll.data = l;
    hub->listener_open[i] = true;
    return uv_poll_start(&l->poll, UV_READABLE, on_listener_ready);
}

/* Returns host, or "0.0.0.0" for the IPv6 wildcard "::" on a system
 * without IPv6, which is logged. */
static const char *hub_wildcard_host(const char *host, const char *where)
{
    int fd;

    if (strcmp(host, "::") != 0)
        return host;
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd >= 0) {
        close(fd);
        return host;
    }
    log_warn("listener %s: IPv6 is not available (%s); listening on IPv4 0.0.0.0 instead", where,
             strerror(errno));
    return "0.0.0.0";
}

static vigil_err hub_listen_udp(struct hub *hub, size_t i, const char *where)
{
    struct config_listener *l = &hub->cfg.listeners[i];
    bool coap = l->transport == CONFIG_TRANSPORT_COAP || l->transport == CONFIG_TRANSPORT_COAPS;
    const char *host = hub_wildcard_host(l->host, where);
    vigil_err rc;

    /* The front end binds the address in the hub's copy of the listener,
     * so the IPv4 fallback for "::" that TCP listeners use goes there.
     * NOTE: no test runs the fallback; it needs a kernel without IPv6. */
    if (host != l->host)
        snprintf(l->host, sizeof l->host, "%s", host);
    hub->n_listeners = i + 1;
    rc = coap ? coap_front_open(hub, l, &hub->fronts[i]) : mqttsn_front_open(hub, l, &hub->fronts[i]);
    if (rc != VIGIL_OK) {
        log_error("listener %s (%s): cannot start: %s", where, config_transport_name(l->transport),
                  vigil_strerror(rc));
        return rc;
    }
    hub->listener_open[i] = true;
    if (!config_listener_is_tls(l) && !config_host_is_loopback(l->host))
        log_warn("listener %s: plaintext %s on a non-loopback address (plaintext_public); "
                 "vital signs cross the network unencrypted",
                 where, config_transport_name(l->transport));
    log_info("listening for %s on UDP %s%s%s", coap ? "CoAP" : "MQTT-SN", where,
             config_listener_is_tls(l) ? (l->allow_psk ? " (DTLS: client certificates, PSK)"
                                                       : " (DTLS: client certificates)")
                                       : "",
             l->allow_anonymous ? " (anonymous access allowed)" : "");
    return VIGIL_OK;
}

static vigil_err hub_listen(struct hub *hub, size_t i)
{
    const struct config_listener *l = &hub->cfg.listeners[i];
    char where[80];
    int rc;

    listener_address(l, where, sizeof where);
    if (config_listener_is_udp(l))
        return hub_listen_udp(hub, i, where);
    hub->n_listeners = i + 1;
    rc = hub_bind_tcp(hub, i, hub_wildcard_host(l->host, where), l->port);
    if (rc != 0) {
        log_error("listener %s: cannot listen: %s", where, uv_strerror(rc));
        return rc == UV_EINVAL ? VIGIL_ERR_CONFIG : VIGIL_ERR_IO;
    }
    if (l->transport == CONFIG_TRANSPORT_MQTT && !config_host_is_loopback(l->host))
        log_warn("listener %s: plaintext MQTT on a non-loopback address (plaintext_public); "
                 "credentials and vital signs cross the network unencrypted",
                 where);
    if (l->transport == CONFIG_TRANSPORT_MQTTS) {
        char methods[64] = "";

        /* Client certificates are accepted whenever offered; required
         * only when neither passwords nor PSK are allowed. */
        snprintf(methods, sizeof methods, "client certificates%s%s",
                 l->allow_psk ? ", TLS-PSK" : "", l->allow_password ? ", passwords" : "");
        log_info("listening for MQTT over TLS on %s (%s)", where, methods);
    } else
        log_info("listening for MQTT on %s%s", where,
                 l->allow_anonymous ? " (anonymous access allowed)" : "");
    return VIGIL_OK;
}

static void close_cb_noop(uv_handle_t *h);

static void on_flush_check(uv_check_t *h)
{
    conn_flush_pending(h->data);
    conn_reap(h->data);
}

/* While stopping, the tick waits for every connection to be released (each
 * may still write its session to the store), then closes the store. After
 * limits.close_grace_ms the remaining sockets are reset, because a peer
 * that stopped reading would otherwise keep the process from exiting. Each
 * connection's own close deadline normally resets it first, and this also
 * covers one whose deadline could not be set. */
static void on_stop_tick(uv_timer_t *t)
{
    struct hub *hub = t->data;
    uint32_t grace_ms = hub->cfg.limits.close_grace_ms;

    if (!hub->stop_aborted && uv_now(hub->loop) - hub->stop_ms >= grace_ms &&
        (hub->n_conns > 0 || !iopool_idle(hub))) {
        hub->stop_aborted = true;
        log_warn("stopping: writing the last output timed out after %u ms "
                 "(limits.close_grace_ms); resetting the remaining connections", grace_ms);
        conn_abort_closing(hub);
        iopool_abort_closing(hub);
    }
    if (hub->n_conns > 0 || !iopool_idle(hub))
        return;
    iopool_stop(hub);
    uv_timer_stop(&hub->tick);
    uv_close((uv_handle_t *)&hub->tick, close_cb_noop);
    conn_timers_close(hub, close_cb_noop);
    publish_ack_wait_close(hub);
    conn_flush_pending(hub);
    conn_sockets_close(hub);
    uv_close((uv_handle_t *)&hub->flush_check, close_cb_noop);
    uv_close((uv_handle_t *)&hub->flush_idle, close_cb_noop);
    store_close(hub->store);
    hub->store = NULL;
}

static void on_tick(uv_timer_t *t)
{
    struct hub *hub = t->data;
    uint64_t now = uv_now(hub->loop);

    session_offline_sweep(hub, now);
    zt_tick(hub, now);
    hub_log_shed_count(hub);
    if (!hub->stopping)
        hub_resume_listeners(hub);
    if (hub->cfg.sys_interval_s > 0 &&
        now - hub->last_sys_ms >= (uint64_t)hub->cfg.sys_interval_s * 1000) {
        hub->last_sys_ms = now;
        sys_publish(hub);
    }
}

static void close_cb_noop(uv_handle_t *h)
{
    (void)h;
}

/* Closes the TCP listeners and the front ends (which close their clients). */
static void hub_close_listeners(struct hub *hub)
{
    for (size_t i = 0; i < hub->n_listeners; i++) {
        if (!hub->listener_open[i])
            continue;
        hub->listener_open[i] = false;
        if (hub->fronts[i] != NULL) {
            struct gw_front *f = hub->fronts[i];

            hub->fronts[i] = NULL;
            f->close(f);
        } else {
            uv_close((uv_handle_t *)&hub->listeners[i].poll, close_cb_noop);
            close(hub->listeners[i].fd);
            hub->listeners[i].fd = -1;
        }
    }
}

static void hub_stop(struct hub *hub, const char *why)
{
    if (hub->stopping)
        return;
    hub->stopping = true;
    hub->stop_ms = uv_now(hub->loop);
    log_info("stopping: %s", why);
    hub_close_listeners(hub);
    for (size_t i = 0; i < hub->n_conn_slots; i++)
        if (hub->conns[i] != NULL)
            conn_close(hub->conns[i], MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down");
    uv_timer_start(&hub->tick, on_stop_tick, 0, 20);
    zt_shutdown(hub);
    uv_close((uv_handle_t *)&hub->sig_int, close_cb_noop);
    uv_close((uv_handle_t *)&hub->sig_term, close_cb_noop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    hub_stop(s->data, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static vigil_err hub_open_stores(struct hub *hub)
{
    char path[600];
    vigil_err rc;

    if (mkdir(hub->cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        log_error("data directory %s: cannot create: %s", hub->cfg.data_dir, strerror(errno));
        return VIGIL_ERR_IO;
    }
    {
        struct stat sb;

        /* An existing directory others can read would expose PSKs, hashes
         * and vital signs: it is tightened, and the change logged. */
        if (stat(hub->cfg.data_dir, &sb) == 0 && (sb.st_mode & 077) != 0) {
            log_warn("data directory %s was readable by other users (mode %03o); setting 0700",
                     hub->cfg.data_dir, (unsigned)(sb.st_mode & 0777));
            if (chmod(hub->cfg.data_dir, 0700) != 0)
                log_error("data directory %s: chmod 0700 failed: %s", hub->cfg.data_dir,
                          strerror(errno));
        }
    }
    /* One hub per data directory: a second one would write the same store. */
    snprintf(path, sizeof path, "%s/vigil.lock", hub->cfg.data_dir);
    hub->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (hub->lock_fd < 0 || flock(hub->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("data directory %s: in use by another vigil serve (lock %s: %s); stop it or "
                  "use another --data-dir", hub->cfg.data_dir, path, strerror(errno));
        return VIGIL_ERR_EXISTS;
    }
    snprintf(path, sizeof path, "%s/events.jsonl", hub->cfg.data_dir);
    rc = vigil_event_sink_open_rotating(path, hub->cfg.event_queue_capacity,
                                        &(struct vigil_event_rotation){
                                            .max_bytes = hub->cfg.event_file_max_bytes,
                                            .keep = hub->cfg.event_files_kept,
                                        },
                                        &hub->events);
    if (rc != VIGIL_OK) {
        log_error("%s: cannot open the event log: %s", path, vigil_strerror(rc));
        return rc;
    }
    rc = device_db_open(hub->cfg.data_dir, &hub->devices);
    if (rc != VIGIL_OK) {
        log_error("%s: cannot open the device inventory: %s", hub->cfg.data_dir, vigil_strerror(rc));
        return rc;
    }
    rc = store_open(hub->cfg.data_dir, hub->loop, &hub->store);
    if (rc != VIGIL_OK) {
        log_error("%s: cannot open the message store: %s", hub->cfg.data_dir, vigil_strerror(rc));
        return rc;
    }
    store_set_commit_interval(hub->store, hub->cfg.store_commit_interval_us);
    return persist_load(hub);
}

vigil_err hub_create(const struct vigil_config *cfg, struct hub **out)
{
    struct hub *hub = vigil_calloc(1, sizeof *hub);
    vigil_err rc = VIGIL_ERR_NOMEM;
    char err[512];

    *out = NULL;
    if (hub == NULL)
        return rc;
    hub->cfg = *cfg;
    outbudget_init(&hub->output, cfg->limits.max_output_bytes,
                   (size_t)cfg->limits.output_budget_bytes);
    hub->lock_fd = -1;
    /* The descriptor hub_shed_connection gives up when none are left. */
    hub->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    hub->conn_epfd = -1;
    hub->loop = uv_default_loop();
    hub->loop->data = hub;
    vigil_map_init_borrowed(&hub->sessions);
    hub->subs = subtree_new();
    hub->retained = retain_new();
    if (hub->subs == NULL || hub->retained == NULL)
        goto fail;
    hub->next_conn_id = 1;
    hub->next_msg_id = 1;
    hub->next_seq = 1;
    hub->started_ms = uv_now(hub->loop);
    hub->started_s = hub_now_s();
    rc = hub_open_stores(hub);
    if (rc == VIGIL_OK)
        rc = monitor_start(hub);
    if (rc == VIGIL_OK)
        rc = zt_init(hub);
    if (rc == VIGIL_OK && iopool_configured(hub) > 1)
        rc = iopool_start(hub, iopool_configured(hub));
    if (rc == VIGIL_OK)
        rc = conn_sockets_open(hub);
    if (rc != VIGIL_OK)
        goto fail;
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        rc = hub_listen(hub, i);
        if (rc != VIGIL_OK)
            goto fail;
    }
    rc = live_sniffers_start(&cfg->sniff, hub->events, err, sizeof err, &hub->sniffers);
    if (rc != VIGIL_OK) {
        log_error("%s", err);
        goto fail;
    }
    uv_check_init(hub->loop, &hub->flush_check);
    uv_idle_init(hub->loop, &hub->flush_idle);
    hub->flush_check.data = hub;
    uv_check_start(&hub->flush_check, on_flush_check);
    publish_ack_wait_init(hub);
    uv_timer_init(hub->loop, &hub->tick);
    hub->tick.data = hub;
    uv_timer_start(&hub->tick, on_tick, 1000, 1000);
    conn_timers_init(hub);
    uv_signal_init(hub->loop, &hub->sig_int);
    uv_signal_init(hub->loop, &hub->sig_term);
    hub->sig_int.data = hub;
    hub->sig_term.data = hub;
    uv_signal_start(&hub->sig_int, on_signal, SIGINT);
    uv_signal_start(&hub->sig_term, on_signal, SIGTERM);
    hub_emit(hub, NULL, VIGIL_EV_ADMIN, NULL, 0, NULL, "hub started");
    *out = hub;
    return VIGIL_OK;
fail:
    hub->stopping = true;
    zt_shutdown(hub);
    hub_close_listeners(hub);
    conn_sockets_close(hub);
    hub_destroy(hub);
    return rc;
}

int hub_run(struct hub *hub)
{
    int rc = vigil_sched_set_slice(hub->cfg.limits.sched_slice_us);

    if (rc == ENOTSUP)
        log_info("hub: limits.sched_slice_us does not apply: the loop thread runs under a "
                 "real-time, deadline or idle scheduling policy");
    else if (rc != 0)
        log_info("hub: the loop thread keeps the kernel's default time slice "
                 "(limits.sched_slice_us %u): %s",
                 (unsigned)hub->cfg.limits.sched_slice_us, strerror(rc));
    else if (hub->cfg.limits.sched_slice_us > 0)
        log_debug("hub: the loop thread runs with %u us time slices",
                  (unsigned)hub->cfg.limits.sched_slice_us);
    sys_publish(hub);
    hub->last_sys_ms = uv_now(hub->loop);
    return uv_run(hub->loop, UV_RUN_DEFAULT);
}

void hub_destroy(struct hub *hub)
{
    if (hub == NULL)
        return;
    live_sniffers_stop(hub->sniffers);
    hub->sniffers = NULL;
    if (hub->ack_timer_open)
        publish_ack_wait_close(hub);
    if (hub->store != NULL)
        store_close(hub->store);
    iopool_stop(hub);
    uv_run(hub->loop, UV_RUN_DEFAULT);
    conn_reap(hub);
    iopool_free(hub);
    session_free_all(hub);
    router_free(hub);
    zt_free(hub);
    subtree_free(hub->subs);
    vigil_map_free(&hub->sessions);
    vigil_free(hub->conns);
    vigil_free(hub->free_slots);
    vigil_timer_heap_free(&hub->conn_deadlines);
    vigil_free(hub->flush_list);
    if (hub->devices != NULL)
        device_db_close(hub->devices);
    if (hub->events != NULL) {
        hub_emit(hub, NULL, VIGIL_EV_ADMIN, NULL, 0, NULL, "hub stopped");
        vigil_event_sink_close(hub->events);
    }
    monitor_stop(hub);
    uv_loop_close(hub->loop);
    if (hub->lock_fd >= 0)
        close(hub->lock_fd);
    if (hub->spare_fd >= 0)
        close(hub->spare_fd);
    vigil_free(hub);
}
