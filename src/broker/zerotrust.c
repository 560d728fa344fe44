/* Zero trust on the I/O loop: TLS contexts built from the configuration or
 * vigil's local CA, their reload on SIGHUP or when the CRL file changes,
 * closing connections whose certificate was revoked or whose device was
 * removed, the inventory snapshot refreshed from a worker thread,
 * certificate maintenance, and failed-login limits. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "broker/broker.h"
#include "broker/gateway.h"
#include "core/alloc.h"
#include "core/log.h"

/* Ended rotation overlaps are looked for every tick, so an old certificate
 * stops working within about a second of its overlap; coming expiry is
 * checked every minute. */
#define ZT_EXPIRY_CHECK_MS (60u * 1000)

static size_t zt_psk_lookup(void *ctx, const char *identity, uint8_t *key, size_t cap)
{
    struct hub *hub = ctx;

    return hub->snap != NULL ? device_snapshot_psk(hub->snap, identity, key, cap) : 0;
}

static struct zt_file_stamp zt_stamp(const char *path)
{
    struct zt_file_stamp st = {0};
    struct stat sb;

    if (path[0] != '\0' && stat(path, &sb) == 0) {
        st.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        st.size = (int64_t)sb.st_size;
        st.ino = (uint64_t)sb.st_ino;
    }
    return st;
}

/* True when some listener uses TLS or DTLS, so the certificate files and
 * the local CA are needed. */
static bool zt_any_tls(const struct hub *hub)
{
    for (size_t i = 0; i < hub->cfg.n_listeners; i++)
        if (config_listener_is_tls(&hub->cfg.listeners[i]))
            return true;
    return false;
}

/* Decides the certificate, key, CA and CRL files: those configured, or the
 * local CA's. */
static vigil_err zt_resolve_files(struct hub *hub)
{
    const struct config_tls *t = &hub->cfg.tls;
    const char *hosts[CONFIG_MAX_LISTENERS];
    size_t n = 0;
    vigil_err rc;

    if (t->cert_file[0] == '\0' || t->ca_file[0] == '\0') {
        if (hub->pki == NULL) {
            rc = pki_open(hub->cfg.data_dir, hub->devices, &hub->pki);
            if (rc != VIGIL_OK) {
                log_error("TLS: cannot open the local CA in %s/pki: %s", hub->cfg.data_dir,
                          vigil_strerror(rc));
                return rc;
            }
        }
    }
    if (t->cert_file[0] == '\0') {
        for (size_t i = 0; i < hub->cfg.n_listeners; i++)
            if (config_listener_is_tls(&hub->cfg.listeners[i]))
                hosts[n++] = hub->cfg.listeners[i].host;
        rc = pki_ensure_server_cert(hub->pki, hosts, n);
        if (rc != VIGIL_OK) {
            log_error("TLS: cannot issue the server certificate: %s", vigil_strerror(rc));
            return rc;
        }
        snprintf(hub->tls_cert, sizeof hub->tls_cert, "%s", pki_server_cert_file(hub->pki));
        snprintf(hub->tls_key, sizeof hub->tls_key, "%s", pki_server_key_file(hub->pki));
    } else {
        snprintf(hub->tls_cert, sizeof hub->tls_cert, "%s", t->cert_file);
        snprintf(hub->tls_key, sizeof hub->tls_key, "%s", t->key_file);
    }
    if (t->ca_file[0] == '\0') {
        snprintf(hub->tls_ca, sizeof hub->tls_ca, "%s", pki_ca_file(hub->pki));
        snprintf(hub->tls_crl, sizeof hub->tls_crl, "%s",
                 t->crl_file[0] ? t->crl_file : pki_crl_file(hub->pki));
    } else {
        snprintf(hub->tls_ca, sizeof hub->tls_ca, "%s", t->ca_file);
        snprintf(hub->tls_crl, sizeof hub->tls_crl, "%s", t->crl_file);
    }
    return VIGIL_OK;
}

/* Builds one context per MQTTS listener into fresh; all or nothing. */
static vigil_err zt_build(struct hub *hub, struct tls_server **fresh, char *err, size_t errcap)
{
    for (size_t i = 0; i < hub->cfg.n_listeners; i++) {
        const struct config_listener *l = &hub->cfg.listeners[i];
        struct tls_server_opts o = {
            .cert_file = hub->tls_cert,
            .key_file = hub->tls_key,
            .ca_file = hub->tls_ca,
            .crl_file = hub->tls_crl[0] ? hub->tls_crl : NULL,
            .require_client_cert = l->require_client_cert && !l->allow_password,
            .identity = hub->cfg.tls.identity == 1 ? TLS_IDENTITY_CN : TLS_IDENTITY_URI,
            .psk_lookup = l->allow_psk ? zt_psk_lookup : NULL,
            .psk_ctx = hub,
        };
        vigil_err rc;

        fresh[i] = NULL;
        if (l->transport != CONFIG_TRANSPORT_MQTTS)
            continue;
        rc = tls_server_new(&o, &fresh[i], err, errcap);
        if (rc != VIGIL_OK) {
            for (size_t j = 0; j < i; j++)
                if (fresh[j] != NULL)
                    tls_server_unref(fresh[j]);
            return rc;
        }
    }
    return VIGIL_OK;
}

static void zt_warn_server_expiry(struct hub *hub)
{
    int64_t left;
    char detail[128];

    for (size_t i = 0; i < hub->cfg.n_listeners; i++) {
        if (hub->tls[i] == NULL)
            continue;
        left = tls_server_cert_expires_in(hub->tls[i]);
        if (left > (int64_t)hub->cfg.tls.expiry_warning_days * 86400)
            return;
        snprintf(detail, sizeof detail, "server certificate %s expires in %lld days",
                 hub->tls_cert, (long long)(left / 86400));
        log_warn("TLS: %s", detail);
        hub_emit(hub, NULL, VIGIL_EV_CERT, NULL, 0, NULL, detail);
        return;
    }
}

static void zt_refresh_snapshot(struct hub *hub);

/* A write to devices.db (a `vigil device` or `vigil acl` command) triggers
 * a snapshot refresh at once instead of at the next tick. */
static void on_devices_changed(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    if (status == 0 && name != NULL && strncmp(name, "devices.db", 10) == 0)
        zt_refresh_snapshot(h->data);
}

/* Watches the inventory's write-ahead log, where every change a `vigil
 * device` or `vigil acl` command makes lands first while the hub holds the
 * database open. Watching the whole data directory instead would wake the
 * loop for every write to the event log and the store. Without a watch,
 * changes are picked up by the tick, within a second. */
static void zt_watch_devices(struct hub *hub)
{
    char path[600];

    snprintf(path, sizeof path, "%s/devices.db-wal", hub->cfg.data_dir);
    if (uv_fs_event_start(&hub->devices_watch, on_devices_changed, path, 0) == 0)
        return;
    snprintf(path, sizeof path, "%s/devices.db", hub->cfg.data_dir);
    if (uv_fs_event_start(&hub->devices_watch, on_devices_changed, path, 0) == 0)
        return;
    log_warn("cannot watch %s for inventory changes; they are picked up every second", path);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct hub *hub = h->data;

    (void)signum;
    hub->snap_version = 0; /* the next tick reloads the inventory too */
    /* An external log rotation may have moved events.jsonl away. The event
     * writer opens it anew before its next batch. */
    vigil_event_sink_reopen(hub->events);
    zt_reload(hub, "SIGHUP");
}

vigil_err zt_init(struct hub *hub)
{
    char err[512];
    vigil_err rc;

    vigil_map_init(&hub->cert_warned);
    hub->rl_peer = ratelimit_new(hub->cfg.auth.failure_burst, hub->cfg.auth.failures_per_minute, 65536);
    hub->rl_identity = ratelimit_new(hub->cfg.auth.failure_burst, hub->cfg.auth.failures_per_minute, 65536);
    if (hub->rl_peer == NULL || hub->rl_identity == NULL)
        return VIGIL_ERR_NOMEM;
    /* The version is read first: a change made during the load then shows
     * as a newer version at the next tick. */
    hub->snap_version = device_db_version(hub->devices);
    rc = device_snapshot_load(hub->devices, &hub->snap);
    if (rc != VIGIL_OK) {
        log_error("cannot read the device inventory: %s", vigil_strerror(rc));
        return rc;
    }
    uv_signal_init(hub->loop, &hub->sig_hup);
    hub->sig_hup.data = hub;
    uv_signal_start(&hub->sig_hup, on_sighup, SIGHUP);
    uv_fs_event_init(hub->loop, &hub->devices_watch);
    hub->devices_watch.data = hub;
    hub->devices_watch_on = true;
    zt_watch_devices(hub);
    if (!zt_any_tls(hub))
        return VIGIL_OK;
    rc = zt_resolve_files(hub);
    if (rc != VIGIL_OK)
        return rc;
    rc = zt_build(hub, hub->tls, err, sizeof err);
    if (rc != VIGIL_OK) {
        log_error("TLS: %s", err);
        return rc;
    }
    hub->crl_stamp = zt_stamp(hub->tls_crl);
    log_info("TLS: certificate %s, client CA %s, CRL %s", hub->tls_cert, hub->tls_ca,
             hub->tls_crl[0] ? hub->tls_crl : "(none)");
    zt_warn_server_expiry(hub);
    return VIGIL_OK;
}

static void close_handle_noop(uv_handle_t *h)
{
    (void)h;
}

void zt_shutdown(struct hub *hub)
{
    if (hub->sig_hup.data != NULL) {
        uv_close((uv_handle_t *)&hub->sig_hup, close_handle_noop);
        hub->sig_hup.data = NULL;
    }
    if (hub->devices_watch_on) {
        uv_close((uv_handle_t *)&hub->devices_watch, close_handle_noop);
        hub->devices_watch_on = false;
    }
}

void zt_free(struct hub *hub)
{
    for (size_t i = 0; i < CONFIG_MAX_LISTENERS; i++)
        if (hub->tls[i] != NULL)
            tls_server_unref(hub->tls[i]);
    if (hub->pki != NULL)
        pki_close(hub->pki);
    if (hub->snap != NULL)
        device_snapshot_free(hub->snap);
    ratelimit_free(hub->rl_peer);
    ratelimit_free(hub->rl_identity);
    vigil_map_free(&hub->cert_warned);
}

/* Asks every front end to close the clients whose identity was revoked. */
static void zt_fronts_revoked(struct hub *hub)
{
    for (size_t i = 0; i < hub->n_listeners; i++)
        if (hub->fronts[i] != NULL && hub->fronts[i]->revoked != NULL)
            hub->fronts[i]->revoked(hub->fronts[i], NULL, NULL);
}

/* Closes connections whose certificate the CRL now lists. */
static void zt_close_revoked(struct hub *hub)
{
    zt_fronts_revoked(hub);
    for (size_t i = 0; i < hub->n_conn_slots; i++) {
        struct conn *c = hub->conns[i];
        const char *serial =
            c != NULL && c->tls != NULL ? tls_session_cert_serial(c->tls->session) : "";

        if (serial[0] == '\0' || c->state == CONN_CLOSING)
            continue;
        if (tls_crl_contains(hub->tls_crl, serial) != VIGIL_OK)
            continue;
        hub_emit(hub, c, VIGIL_EV_CERT, NULL, 0, NULL, "certificate revoked; connection closed");
        log_info("conn %llu %s device '%s': certificate %s revoked; closing",
                 (unsigned long long)c->id, c->peer, conn_tls_identity(c), serial);
        conn_close(c, MQTT_RC_ADMIN_ACTION, "certificate revoked");
    }
}

void zt_reload(struct hub *hub, const char *why)
{
    struct tls_server *fresh[CONFIG_MAX_LISTENERS];
    char err[512], detail[160];

    for (size_t i = 0; i < hub->n_listeners; i++)
        if (hub->fronts[i] != NULL && hub->fronts[i]->reload != NULL)
            hub->fronts[i]->reload(hub->fronts[i]);
    if (!zt_any_tls(hub)) {
        zt_fronts_revoked(hub);
        return;
    }
    if (zt_build(hub, fresh, err, sizeof err) != VIGIL_OK) {
        log_error("TLS reload (%s) failed, keeping the previous certificates: %s", why, err);
        snprintf(detail, sizeof detail, "TLS reload failed: %s", err);
        hub_emit(hub, NULL, VIGIL_EV_ADMIN, NULL, 0, NULL, detail);
        return;
    }
    for (size_t i = 0; i < hub->cfg.n_listeners; i++) {
        if (hub->tls[i] != NULL)
            tls_server_unref(hub->tls[i]);
        hub->tls[i] = fresh[i];
    }
    hub->crl_stamp = zt_stamp(hub->tls_crl);
    snprintf(detail, sizeof detail, "TLS certificates, CA and CRL reloaded (%s)", why);
    log_info("%s", detail);
    hub_emit(hub, NULL, VIGIL_EV_ADMIN, NULL, 0, NULL, detail);
    zt_close_revoked(hub);
    zt_warn_server_expiry(hub);
}

/* The inventory snapshot is read on a worker thread and swapped here. */
struct zt_snap_work {
    uv_work_t req;
    struct hub *hub;
    uint64_t known_version, version;
    struct device_snapshot *snap;
    vigil_err rc;
};

static void snap_work(uv_work_t *req)
{
    struct zt_snap_work *w = req->data;

    w->version = device_db_version(w->hub->devices);
    if (w->version != w->known_version)
        w->rc = device_snapshot_load(w->hub->devices, &w->snap);
}

/* Closes connections of devices that left the inventory and discards
 * their sessions, so a device provisioned later under the same id starts
 * with nothing of the old one's. */
static bool zt_device_has_psk(const struct hub *hub, const char *device)
{
    uint8_t key[64];
    size_t len = device_snapshot_psk(hub->snap, device, key, sizeof key);

    OPENSSL_cleanse(key, sizeof key);
    return len > 0;
}

static void zt_close_removed(struct hub *hub)
{
    struct vigil_map_slot *slot;
    struct session **gone = NULL;
    size_t n = 0, cap = 0, pos = 0;

    zt_fronts_revoked(hub);
    for (size_t i = 0; i < hub->n_conn_slots; i++) {
        struct conn *c = hub->conns[i];

        if (c == NULL || c->device[0] == '\0' || c->state != CONN_ACTIVE)
            continue;
        if (device_snapshot_find(hub->snap, c->device) == NULL) {
            hub_emit(hub, c, VIGIL_EV_ADMIN, NULL, 0, NULL, "device removed; connection closed");
            conn_close(c, MQTT_RC_ADMIN_ACTION, "device removed from the inventory");
            continue;
        }
        if (c->tls != NULL && tls_session_used_psk(c->tls->session) &&
            !zt_device_has_psk(hub, c->device)) {
            hub_emit(hub, c, VIGIL_EV_CERT, NULL, 0, NULL, "PSK revoked; connection closed");
            conn_close(c, MQTT_RC_ADMIN_ACTION, "pre-shared key revoked");
        }
    }
    while ((slot = vigil_map_next(&hub->sessions, &pos)) != NULL) {
        struct session *s = slot->value;

        if (session_device(s)[0] == '\0' || device_snapshot_find(hub->snap, session_device(s)) != NULL)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct session **p = vigil_realloc(gone, ncap * sizeof *p);

            if (p == NULL)
                break;
            gone = p;
            cap = ncap;
        }
        session_ref(s);
        gone[n++] = s;
    }
    for (size_t i = 0; i < n; i++) {
        if (gone[i]->conn == NULL)
            session_discard(gone[i]);
        session_unref(gone[i]);
    }
    vigil_free(gone);
}

static void snap_done(uv_work_t *req, int status)
{
    struct zt_snap_work *w = req->data;
    struct hub *hub = w->hub;

    hub->snap_loading = false;
    if (status == 0 && w->snap != NULL && w->rc == VIGIL_OK && !hub->stopping) {
        device_snapshot_free(hub->snap);
        hub->snap = w->snap;
        hub->snap_version = w->version;
        log_debug("device inventory reloaded: %zu devices", device_snapshot_count(hub->snap));
        zt_close_removed(hub);
    } else if (w->snap != NULL) {
        device_snapshot_free(w->snap);
    }
    vigil_free(w);
    if (hub->snap_dirty)
        zt_refresh_snapshot(hub);
}

static void zt_refresh_snapshot(struct hub *hub)
{
    struct zt_snap_work *w;

    if (hub->snap_loading) {
        hub->snap_dirty = true;
        return;
    }
    if (hub->stopping)
        return;
    hub->snap_dirty = false;
    w = vigil_calloc(1, sizeof *w);
    if (w == NULL)
        return;
    w->hub = hub;
    w->known_version = hub->snap_version;
    w->req.data = w;
    hub->snap_loading = true;
    if (uv_queue_work(hub->loop, &w->req, snap_work, snap_done) != 0) {
        hub->snap_loading = false;
        vigil_free(w);
    }
}

/* Certificate maintenance on a worker thread: ended overlaps are revoked
 * (which rewrites the CRL that the tick then notices) and device
 * certificates close to expiry are collected for events. */
#define ZT_MAX_EXPIRING 64

struct zt_maint_work {
    uv_work_t req;
    struct hub *hub;
    int64_t now;
    int64_t warn_before;
    bool check_expiry;
    struct pki_cert_info expiring[ZT_MAX_EXPIRING];
    size_t n_expiring;
};

static void collect_expiring(void *ctx, const struct pki_cert_info *ci)
{
    struct zt_maint_work *w = ctx;

    if (ci->status != PKI_CERT_ACTIVE || ci->not_after - w->now > w->warn_before)
        return;
    if (w->n_expiring < ZT_MAX_EXPIRING)
        w->expiring[w->n_expiring++] = *ci;
}

static void maint_work(uv_work_t *req)
{
    struct zt_maint_work *w = req->data;
    int changed = 0;

    if (pki_expire_overlaps(w->hub->pki, w->now, &changed) != VIGIL_OK)
        log_warn("certificate maintenance: ending rotation overlaps failed");
    if (w->check_expiry)
        pki_list(w->hub->pki, collect_expiring, w);
}

static void maint_done(uv_work_t *req, int status)
{
    struct zt_maint_work *w = req->data;
    struct hub *hub = w->hub;
    char detail[128];

    hub->maint_running = false;
    for (size_t i = 0; status == 0 && i < w->n_expiring; i++) {
        const struct pki_cert_info *ci = &w->expiring[i];
        struct vigil_event ev;

        if (vigil_map_get(&hub->cert_warned, ci->serial, strlen(ci->serial)) != NULL)
            continue;
        vigil_map_put(&hub->cert_warned, ci->serial, strlen(ci->serial), (void *)1);
        vigil_event_init(&ev, VIGIL_EV_CERT);
        VIGIL_EVENT_SET(&ev, device, ci->device, strlen(ci->device));
        snprintf(detail, sizeof detail, "certificate %s expires in %lld days", ci->serial,
                 (long long)((ci->not_after - w->now) / 86400));
        VIGIL_EVENT_SET(&ev, detail, detail, strlen(detail));
        hub_emit_ev(hub, NULL, &ev);
        log_warn("device '%s': %s", ci->device, detail);
    }
    vigil_free(w);
}

static void zt_maintain(struct hub *hub, bool check_expiry)
{
    struct zt_maint_work *w;

    if (hub->pki == NULL || hub->maint_running || hub->stopping)
        return;
    w = vigil_calloc(1, sizeof *w);
    if (w == NULL)
        return;
    w->hub = hub;
    w->now = hub_now_s();
    w->warn_before = (int64_t)hub->cfg.tls.expiry_warning_days * 86400;
    w->check_expiry = check_expiry;
    w->req.data = w;
    hub->maint_running = true;
    if (uv_queue_work(hub->loop, &w->req, maint_work, maint_done) != 0) {
        hub->maint_running = false;
        vigil_free(w);
    }
}

void zt_tick(struct hub *hub, uint64_t now_ms)
{
    zt_refresh_snapshot(hub);
    if (hub->tls_crl[0] != '\0') {
        struct zt_file_stamp st = zt_stamp(hub->tls_crl);

        if (memcmp(&st, &hub->crl_stamp, sizeof st) != 0)
            zt_reload(hub, "CRL file changed");
    }
    if (hub->last_maint_ms == 0 || now_ms - hub->last_maint_ms >= ZT_EXPIRY_CHECK_MS) {
        hub->last_maint_ms = now_ms;
        zt_maintain(hub, true);
    } else {
        zt_maintain(hub, false);
    }
}

/* The session keeps the identity and serial for its whole life, so the
 * connection keeps no copy. */
const char *conn_tls_identity(const struct conn *c)
{
    return c->tls != NULL ? tls_session_identity(c->tls->session) : "";
}

bool zt_handshake_done(struct conn *c)
{
    log_debug("conn %llu %s: TLS established (%s, %s), identity '%s'", (unsigned long long)c->id,
              c->peer, tls_session_protocol(c->tls->session), tls_session_cipher(c->tls->session),
              conn_tls_identity(c));
    return true;
}

void zt_handshake_failed(struct conn *c, const char *why)
{
    struct vigil_event ev;

    vigil_event_init(&ev, VIGIL_EV_TLS_FAILURE);
    VIGIL_EVENT_SET(&ev, detail, why, strlen(why));
    hub_emit_ev(c->hub, c, &ev);
    log_info("conn %llu %s: TLS handshake failed: %s", (unsigned long long)c->id, c->peer, why);
    zt_login_failed(c, NULL);
}

static void zt_emit_blocked(struct conn *c, const char *what)
{
    char detail[128];

    snprintf(detail, sizeof detail, "%s blocked after repeated failed logins", what);
    hub_emit(c->hub, c, VIGIL_EV_RATE_LIMIT, NULL, 0, NULL, detail);
}

bool zt_peer_blocked(struct conn *c)
{
    char host[64];

    hub_peer_host(c->peer, host, sizeof host);
    if (c->hub->rl_peer == NULL ||
        !ratelimit_blocked(c->hub->rl_peer, host, uv_now(c->hub->loop)))
        return false;
    zt_emit_blocked(c, "peer address");
    return true;
}

bool zt_identity_blocked(struct conn *c, const char *identity)
{
    if (identity == NULL || identity[0] == '\0' || c->hub->rl_identity == NULL ||
        !ratelimit_blocked(c->hub->rl_identity, identity, uv_now(c->hub->loop)))
        return false;
    zt_emit_blocked(c, "identity");
    return true;
}

void zt_login_failed(struct conn *c, const char *identity)
{
    char host[64];
    uint64_t now = uv_now(c->hub->loop);

    hub_peer_host(c->peer, host, sizeof host);
    if (c->hub->rl_peer != NULL)
        ratelimit_fail(c->hub->rl_peer, host, now);
    if (identity != NULL && identity[0] != '\0' && c->hub->rl_identity != NULL)
        ratelimit_fail(c->hub->rl_identity, identity, now);
}

void zt_login_succeeded(struct conn *c, const char *identity)
{
    if (identity != NULL && c->hub->rl_identity != NULL)
        ratelimit_reset(c->hub->rl_identity, identity);
}
