/* CONNECT: version and client id checks, authentication in the thread
 * pool, session takeover and resumption, CONNACK. */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "broker/topic.h"
#include "core/alloc.h"
#include "core/log.h"

#define AUTH_PASSWORD_MAX 256
/* Password checks queued or running at once; more CONNECTs get 0x89. */
#define AUTH_PENDING_MAX 256

/* A CONNECT waiting for its password check. The raw packet is kept and
 * decoded again afterwards, because the input buffer moves on. */
struct connect_auth {
    uv_work_t work;
    struct conn *conn;
    uint8_t *raw;
    size_t raw_len;
    char username[DEVICE_ID_MAX + 1];
    uint8_t password[AUTH_PASSWORD_MAX];
    size_t password_len;
    bool username_ok;
    vigil_err rc;
    struct device_info info;
};

void conn_start_keepalive(struct conn *c);

static uint8_t v311_code(uint8_t v5_reason)
{
    switch (v5_reason) {
    case MQTT_RC_SUCCESS:
        return MQTT_V311_ACCEPTED;
    case MQTT_RC_UNSUPPORTED_VERSION:
        return MQTT_V311_BAD_VERSION;
    case MQTT_RC_CLIENT_ID_INVALID:
        return MQTT_V311_ID_REJECTED;
    case MQTT_RC_BAD_USER_OR_PASSWORD:
        return MQTT_V311_BAD_USER_OR_PASSWORD;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED:
        return MQTT_V311_NOT_AUTHORIZED;
    default:
        return MQTT_V311_SERVER_UNAVAILABLE;
    }
}

/* Sends a refusing CONNACK, records the failure and closes. */
static void connect_refuse(struct conn *c, uint8_t reason, const char *rule, const char *why)
{
    struct mqtt_packet p = {.type = MQTT_CONNACK};
    struct vigil_event ev;

    p.reason_code = c->version == MQTT_V5 ? reason : v311_code(reason);
    if (c->version == MQTT_V5) {
        p.props.present |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        p.props.reason_string = (struct mqtt_str){(const uint8_t *)why, (uint32_t)strlen(why)};
    }
    if (c->version != 0)
        conn_send(c, &p);
    vigil_event_init(&ev, VIGIL_EV_AUTH_FAILURE);
    ev.rule = rule;
    ev.reason_code = p.reason_code;
    VIGIL_EVENT_SET(&ev, detail, why, strlen(why));
    if (c->device[0] == '\0' && conn_tls_identity(c)[0] != '\0')
        hub_name_set(&c->device, conn_tls_identity(c), DEVICE_ID_MAX, DEVICE_ID_MAX);
    hub_emit_ev(c->hub, c, &ev);
    log_info("conn %llu %s client '%s': connection refused: %s", (unsigned long long)c->id, c->peer,
             c->client_id, why);
    c->state = CONN_CLOSING;
    conn_close(c, 0xFF, why);
}

/* Rejects a CONNECT with a protocol level this broker does not speak, with
 * a CONNACK in the MQTT 3.1.1 form that every client version can read. */
static bool connect_bad_version(struct conn *c, uint8_t level)
{
    char why[64];

    c->version = MQTT_V311;
    snprintf(why, sizeof why, "unsupported protocol level %u", level);
    connect_refuse(c, MQTT_RC_UNSUPPORTED_VERSION, "MQTT-3.1.2-2", why);
    return false;
}

/* Returns false when memory runs out. */
static bool assign_client_id(struct conn *c)
{
    uint8_t rnd[8];
    char id[32];

    if (RAND_bytes(rnd, sizeof rnd) != 1)
        memset(rnd, 0, sizeof rnd);
    snprintf(id, sizeof id, "auto-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    return hub_name_set(&c->client_id, id, sizeof id, CONN_CLIENT_ID_MAX);
}

/* Checks what can be checked before authentication. Returns false after
 * refusing the connection. */
static bool connect_precheck(struct conn *c, const struct mqtt_connect *cn, const struct mqtt_props *pr,
                             bool *assigned)
{
    const struct config_limits *lim = &c->hub->cfg.limits;

    *assigned = false;
    c->keep_alive_requested = cn->keep_alive;
    if (cn->client_id.len == 0) {
        if (c->version == MQTT_V311 && !cn->clean_start) {
            connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "MQTT-3.1.3-8",
                           "empty client id requires a clean session");
            return false;
        }
        if (!assign_client_id(c)) {
            connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
            return false;
        }
        *assigned = true;
    } else if (cn->client_id.len > lim->max_client_id_length ||
               cn->client_id.len > CONN_CLIENT_ID_MAX) {
        /* Its first CONN_CLIENT_ID_MAX bytes, or fewer when the packet
         * ends sooner, name it in the event and the log. */
        hub_name_set(&c->client_id, (const char *)cn->client_id.p, cn->client_id.len,
                     CONN_CLIENT_ID_MAX);
        connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "MQTT-3.1.3-5", "client id too long");
        return false;
    } else if (!hub_name_set(&c->client_id, (const char *)cn->client_id.p, cn->client_id.len,
                             CONN_CLIENT_ID_MAX)) {
        connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
        return false;
    }
    if (pr->present & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)) {
        connect_refuse(c, MQTT_RC_BAD_AUTH_METHOD, "MQTT-3.1.2-enhanced-auth",
                       "enhanced authentication is not supported");
        return false;
    }
    /* MQTT 3.1.1 has no Server Keep Alive, so a client asking for more than
     * the maximum is refused rather than cut off without warning. Keep-alive
     * 0 (none) stays allowed there, as the protocol defines it. */
    if (c->version == MQTT_V311 && cn->keep_alive > lim->max_keep_alive) {
        connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "vigil-keep-alive-limit",
                       "keep-alive is above the server maximum");
        return false;
    }
    if (cn->will && !topic_name_valid((const char *)cn->will_topic.p, cn->will_topic.len)) {
        connect_refuse(c, MQTT_RC_TOPIC_NAME_INVALID, "MQTT-3.1.3-11", "invalid will topic");
        return false;
    }
    return true;
}

/* response_info ("" for none) must live until the CONNACK is encoded. */
static void connack_props(struct conn *c, struct mqtt_packet *p, bool assigned,
                          const struct mqtt_connect *cn, uint32_t expiry, bool expiry_capped,
                          uint16_t server_ka, const char *response_info)
{
    const struct config_limits *lim = &c->hub->cfg.limits;
    struct mqtt_props *o = &p->props;

    o->present |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) |
                  MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX) |
                  MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) |
                  MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
    o->receive_max = lim->receive_maximum;
    o->max_packet_size = lim->max_packet_size;
    o->topic_alias_max = lim->topic_alias_maximum;
    o->retain_available = 1;
    o->wildcard_sub_available = 1;
    o->sub_id_available = 1;
    o->shared_sub_available = 1;
    if (assigned) {
        o->present |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
        o->assigned_client_id = (struct mqtt_str){(const uint8_t *)c->client_id,
                                                  (uint32_t)strlen(c->client_id)};
    }
    if (expiry_capped) {
        o->present |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
        o->session_expiry = expiry;
    }
    if (response_info[0] != '\0') {
        o->present |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFO);
        o->response_info = (struct mqtt_str){(const uint8_t *)response_info,
                                             (uint32_t)strlen(response_info)};
    }
    if (server_ka != cn->keep_alive) {
        o->present |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
        o->server_keep_alive = server_ka;
    }
}

/* Builds the will message of a CONNECT; NULL when there is none. */
static struct msg *connect_will(struct conn *c, const struct mqtt_connect *cn, uint32_t *delay)
{
    uint8_t props[4096];
    size_t plen = 0;
    struct msg *m;

    *delay = 0;
    if (!cn->will)
        return NULL;
    if (c->version == MQTT_V5) {
        plen = mqtt_encode_forward_props(&cn->will_props, props, sizeof props);
        if (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY))
            *delay = cn->will_props.will_delay;
    }
    m = msg_new((const char *)cn->will_topic.p, cn->will_topic.len, cn->will_payload.p,
                cn->will_payload.len, props, plen);
    if (m == NULL)
        return NULL;
    m->qos = cn->will_qos;
    m->retain = cn->will_retain;
    if (cn->will_props.present & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
        m->expiry_at = hub_now_s() + cn->will_props.message_expiry;
    return m;
}

/* Replaces the will of s by the one of cn, and gives a persistent session
 * its cold part, which contains its offline-list links. When memory runs
 * out it rejects the connection, discards s unless it is an offline
 * session that outlives this attempt, and returns false. */
static bool connect_set_will(struct conn *c, struct session *s, const struct mqtt_connect *cn)
{
    struct session_cold *x = s->cold;
    struct msg *will = NULL;
    uint32_t will_delay = 0;

    if (x != NULL) {
        msg_unref(x->will);
        x->will = NULL;
        x->will_due_ms = 0;
    }
    if (!cn->will && !s->persistent)
        return true;
    if (cn->will)
        will = connect_will(c, cn, &will_delay);
    x = will != NULL || !cn->will ? session_cold(s) : NULL;
    if (x == NULL) {
        msg_unref(will);
        if (!s->in_offline_list)
            session_discard(s);
        connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
        return false;
    }
    if (will != NULL)
        will->origin = s;
    x->will = will;
    x->will_delay = will_delay;
    return true;
}

/* Completes an accepted CONNECT: session, CONNACK, events. */
static bool connect_accept(struct conn *c, const struct mqtt_packet *pkt, bool assigned)
{
    struct hub *hub = c->hub;
    const struct mqtt_connect *cn = &pkt->connect;
    const struct config_limits *lim = &hub->cfg.limits;
    struct mqtt_packet ack = {.type = MQTT_CONNACK};
    struct session *s = session_find(hub, c->client_id);
    char response_info[288] = "";
    uint32_t expiry = 0;
    bool capped = false, was_stored;
    uint16_t ka = cn->keep_alive;

    if (c->version == MQTT_V5) {
        if (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))
            expiry = pkt->props.session_expiry;
        if (expiry > lim->max_session_expiry) {
            expiry = lim->max_session_expiry;
            capped = true;
        }
        if (ka == 0 || ka > lim->max_keep_alive)
            ka = lim->max_keep_alive;
    } else if (!cn->clean_start) {
        expiry = lim->max_session_expiry;
    }
    c->keep_alive = ka;
    c->client_receive_max = (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX))
                                ? pkt->props.receive_max : 65535;
    if (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE))
        c->client_max_packet = pkt->props.max_packet_size;
    if (pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX))
        c->client_alias_max = pkt->props.topic_alias_max;
    /* Response Information: the topic prefix "response/<client id>" for the
     * client's response topics. Anonymous clients may use it at once;
     * authenticated ones need a role that grants it. */
    if ((pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO)) &&
        pkt->props.request_response_info == 1)
        snprintf(response_info, sizeof response_info, "response/%s", c->client_id);
    c->request_problem_info = !(pkt->props.present & MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO)) ||
                              pkt->props.request_problem_info != 0;

    if (s != NULL && strcmp(session_device(s), c->device) != 0) {
        /* The session belongs to another identity. An anonymous client may
         * never take it; a device whose own id it is gets a fresh one. */
        if (c->device[0] == '\0') {
            connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "vigil-identity",
                           "client id in use by an authenticated device");
            return false;
        }
        if (s->conn != NULL)
            conn_close(s->conn, MQTT_RC_SESSION_TAKEN_OVER, "session claimed by its device");
        s = session_find(hub, c->client_id);
        if (s != NULL)
            session_discard(s);
        s = NULL;
    }
    if (s != NULL && s->conn != NULL) {
        struct conn *old = s->conn;

        /* Detaching may discard a non-persistent session: hold it meanwhile. */
        session_ref(s);
        conn_close(old, MQTT_RC_SESSION_TAKEN_OVER, "session taken over by a new connection");
        if (s->conn == old)
            session_detach(s);
        if (s->removed) {
            session_unref(s);
            s = NULL;
        } else {
            session_unref(s);
        }
    }
    if (s != NULL && cn->clean_start) {
        session_discard(s);
        s = NULL;
    }
    ack.session_present = s != NULL;
    if (s == NULL) {
        s = session_create(hub, c->client_id, c->device, c->version);
        if (s == NULL) {
            connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
            return false;
        }
    }
    s->version = c->version;
    s->expiry_interval = expiry;
    s->persistent = expiry > 0;
    /* The session's device is c->device here: a session of another
     * identity was refused or discarded above, and a new one was created
     * with it. */
    if (!connect_set_will(c, s, cn))
        return false;

    if (c->version == MQTT_V5)
        connack_props(c, &ack, assigned, cn, expiry, capped, ka, response_info);
    c->state = CONN_ACTIVE;
    conn_send(c, &ack);
    hub_emit(hub, c, VIGIL_EV_AUTH_SUCCESS, NULL, 0, NULL,
             c->role ? c->role->name : "anonymous");
    log_debug("conn %llu %s: client '%s' connected (MQTT %s, keep-alive %u s)",
              (unsigned long long)c->id, c->peer, c->client_id, c->version == MQTT_V5 ? "5.0" : "3.1.1",
              ka);
    was_stored = s->stored;
    persist_session(s);
    /* When Session Expiry 0 has just removed a resumed session from the
     * store, the output also waits for that removal. The session's PUBRELs
     * and PUBLISHes are sent again now, and a restart must not bring back
     * the stored state they replaced (MQTT 4.3.3). */
    if (s->stored || was_stored)
        conn_hold_until_durable(c);
    session_attach(s, c);
    conn_share_client_id(c, s);
    conn_start_keepalive(c);
    return true;
}

static bool connect_names_device(const struct conn *c)
{
    return acl_client_id_names_device(c->hub, c->client_id);
}

/* Applies the identity rules once the credentials are known. */
static bool connect_authorize(struct conn *c, const struct mqtt_packet *pkt, bool assigned,
                              const struct device_info *info)
{
    const struct mqtt_connect *cn = &pkt->connect;

    if (info != NULL) {
        if (!hub_name_set(&c->device, info->id, sizeof info->id, DEVICE_ID_MAX) ||
            !hub_name_set(&c->device_type, info->type, sizeof info->type, CONN_DEVICE_TYPE_MAX)) {
            connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
            return false;
        }
        c->role = config_find_role(&c->hub->cfg, info->role);
        if (c->role == NULL) {
            connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "vigil-acl-role", "device role is not configured");
            return false;
        }
        /* One identity per device: the client id is the device id, or
         * "<device id>:<suffix>" for further connections of the same device.
         * Device ids cannot contain ':', so no device can use a client id
         * (and so take over a session) of another. */
        size_t idlen = strlen(info->id);

        if (assigned) {
            if (!hub_name_set(&c->client_id, info->id, sizeof info->id, CONN_CLIENT_ID_MAX)) {
                connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
                return false;
            }
        } else if (strncmp(c->client_id, info->id, idlen) != 0 ||
                   (c->client_id[idlen] != '\0' && c->client_id[idlen] != ':')) {
            zt_login_failed(c, info->id);
            connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "vigil-identity",
                           "client id does not match the authenticated device");
            return false;
        }
    }
    if (info == NULL && connect_names_device(c)) {
        connect_refuse(c, MQTT_RC_CLIENT_ID_INVALID, "vigil-identity",
                       "client id belongs to a provisioned device; anonymous clients may not use it");
        return false;
    }
    if (cn->will && !acl_can_publish(c, (const char *)cn->will_topic.p, cn->will_topic.len)) {
        hub_emit(c->hub, c, VIGIL_EV_ACL_DENY, (const char *)cn->will_topic.p, cn->will_topic.len,
                 NULL, "will topic not allowed");
        connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "vigil-acl", "will topic not allowed");
        return false;
    }
    return connect_accept(c, pkt, assigned && info == NULL);
}

static void connect_finish(struct conn *c, struct connect_auth *a);

void connect_cancel_auth(struct conn *c)
{
    if (c->auth != NULL)
        uv_cancel((uv_req_t *)&c->auth->work);
}

static void auth_work(uv_work_t *req)
{
    struct connect_auth *a = req->data;

    if (!a->username_ok) {
        a->rc = VIGIL_ERR_NOT_FOUND;
        /* Spend one hash anyway so timing does not reveal the reason. */
        device_db_verify(a->conn->hub->devices, "", a->password, a->password_len, &a->info);
        return;
    }
    a->rc = device_db_verify(a->conn->hub->devices, a->username, a->password, a->password_len,
                             &a->info);
}

static void auth_done(uv_work_t *req, int status)
{
    struct connect_auth *a = req->data;
    struct conn *c = a->conn;

    OPENSSL_cleanse(a->password, sizeof a->password);
    c->auth = NULL;
    c->hub->n_auth_pending--;
    if (!c->closing_handles && c->state != CONN_CLOSING) {
        if (status != 0)
            a->rc = VIGIL_ERR_IO;
        c->state = CONN_NEW;
        connect_finish(c, a);
    }
    vigil_free(a->raw);
    vigil_free(a);
    conn_unref(c);
}

static void connect_finish(struct conn *c, struct connect_auth *a)
{
    const struct device_info *info = &a->info;
    vigil_err auth_rc = a->rc;
    struct mqtt_packet pkt;
    struct mqtt_error err;
    bool assigned = false;

    if (mqtt_decode(a->raw, a->raw_len, MQTT_V311, true, &pkt, &err) != VIGIL_OK)
        return;
    if (auth_rc != VIGIL_OK) {
        char why[128];

        /* The user name tried is recorded, never the password. */
        snprintf(why, sizeof why, "%s '%s'",
                 auth_rc == VIGIL_ERR_NOT_FOUND ? "unknown device" : "wrong password for device",
                 a->username);
        zt_login_failed(c, a->username);
        connect_refuse(c, MQTT_RC_BAD_USER_OR_PASSWORD, NULL, why);
        return;
    }
    zt_login_succeeded(c, a->username);
    if (!connect_precheck(c, &pkt.connect, &pkt.props, &assigned))
        return;
    if (connect_authorize(c, &pkt, assigned, info))
        conn_resume_read(c);
}

static bool connect_start_auth(struct conn *c, const struct mqtt_packet *pkt, const uint8_t *raw,
                               size_t raw_len)
{
    const struct mqtt_connect *cn = &pkt->connect;
    struct connect_auth *a;

    /* Each check costs a thread-pool slot for tens of milliseconds; a flood
     * of logins must not queue without bound. */
    if (c->hub->n_auth_pending >= AUTH_PENDING_MAX) {
        hub_emit(c->hub, c, VIGIL_EV_LIMIT, NULL, 0, NULL, "too many password checks pending");
        connect_refuse(c, MQTT_RC_SERVER_BUSY, "vigil-auth-pending",
                       "server busy: too many logins being checked; try again later");
        return false;
    }
    a = vigil_calloc(1, sizeof *a);
    if (a == NULL || (a->raw = vigil_memdup(raw, raw_len)) == NULL) {
        vigil_free(a);
        connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "out of memory");
        return false;
    }
    a->conn = c;
    a->raw_len = raw_len;
    a->username_ok = cn->username.len > 0 && cn->username.len <= DEVICE_ID_MAX;
    if (a->username_ok) {
        memcpy(a->username, cn->username.p, cn->username.len);
        a->username[cn->username.len] = '\0';
    }
    a->password_len = cn->password.len <= AUTH_PASSWORD_MAX ? cn->password.len : 0;
    if (a->password_len > 0)
        memcpy(a->password, cn->password.p, a->password_len);
    if (!cn->has_password || cn->password.len > AUTH_PASSWORD_MAX)
        a->username_ok = false;
    c->auth = a;
    a->work.data = a;
    c->state = CONN_AUTH;
    conn_pause_read(c);
    conn_ref(c);
    c->hub->n_auth_pending++;
    if (uv_queue_work(c->hub->loop, &a->work, auth_work, auth_done) != 0) {
        c->hub->n_auth_pending--;
        conn_unref(c);
        c->auth = NULL;
        vigil_free(a->raw);
        vigil_free(a);
        connect_refuse(c, MQTT_RC_SERVER_UNAVAILABLE, NULL, "cannot schedule authentication");
        return false;
    }
    return true;
}

/* A certificate or PSK proved the identity during the TLS handshake; the
 * device must still be in the inventory, and a user name, when sent, must
 * name the same device. */
static bool connect_tls_identity(struct conn *c, const struct mqtt_packet *pkt, bool assigned)
{
    const struct mqtt_connect *cn = &pkt->connect;
    const char *identity = conn_tls_identity(c);
    const struct device_info *found = device_snapshot_find(c->hub->snap, identity);
    struct device_info info;

    if (found == NULL) {
        zt_login_failed(c, identity);
        connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "vigil-unknown-device",
                       "the certificate names a device that is not in the inventory");
        return false;
    }
    if (cn->has_username &&
        (cn->username.len != strlen(identity) ||
         memcmp(cn->username.p, identity, cn->username.len) != 0)) {
        zt_login_failed(c, identity);
        connect_refuse(c, MQTT_RC_BAD_USER_OR_PASSWORD, "vigil-identity",
                       "the user name does not match the certificate identity");
        return false;
    }
    info = *found;
    zt_login_succeeded(c, identity);
    return connect_authorize(c, pkt, assigned, &info);
}

bool handle_connect(struct conn *c, const struct mqtt_packet *pkt)
{
    const struct mqtt_connect *cn = &pkt->connect;
    bool assigned = false;

    if (cn->version != MQTT_V311 && cn->version != MQTT_V5)
        return connect_bad_version(c, cn->version);
    c->version = cn->version;
    if (!connect_precheck(c, cn, &pkt->props, &assigned))
        return false;
    if (conn_tls_identity(c)[0] != '\0')
        return connect_tls_identity(c, pkt, assigned);
    if (c->tls != NULL && !c->password_allowed) {
        connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "vigil-mtls-required",
                       "this listener accepts only certificate or PSK identities");
        return false;
    }
    if (cn->has_username) {
        char user[DEVICE_ID_MAX + 1];
        size_t n = cn->username.len < sizeof user ? cn->username.len : sizeof user - 1;

        memcpy(user, cn->username.p, n);
        user[n] = '\0';
        if (zt_identity_blocked(c, user)) {
            connect_refuse(c, MQTT_RC_CONNECTION_RATE_EXCEEDED, "vigil-rate-limit",
                           "too many failed logins for this identity; try again later");
            return false;
        }
        /* pkt points into the input buffer; the raw bytes are kept for later.
         * The connection stays open in CONN_AUTH while the check runs. */
        return connect_start_auth(c, pkt, c->hub->cur_packet, c->hub->cur_packet_len);
    }
    if (!c->anonymous_allowed) {
        connect_refuse(c, MQTT_RC_NOT_AUTHORIZED, "vigil-auth-required",
                       "anonymous access is not allowed on this listener");
        return false;
    }
    return connect_authorize(c, pkt, assigned, NULL);
}

void connect_malformed(struct conn *c, const struct mqtt_packet *pkt, const struct mqtt_error *err)
{
    const struct mqtt_str *name = &pkt->connect.protocol_name;
    bool known_name = (name->len == 4 && memcmp(name->p, "MQTT", 4) == 0) ||
                      (name->len == 6 && memcmp(name->p, "MQIsdp", 6) == 0);
    uint8_t level = pkt->connect.version;
    size_t hdr;
    uint32_t rem;
    struct mqtt_error ferr;

    /* When decoding stopped before the protocol level (bad fixed-header
     * flags, for example), the raw bytes still tell whether it is v5. */
    if (level == 0 && mqtt_frame(c->hub->cur_packet, c->hub->cur_packet_len, &hdr, &rem, &ferr) == VIGIL_OK &&
        c->hub->cur_packet_len > hdr + 6 && memcmp(c->hub->cur_packet + hdr, "\x00\x04MQTT", 6) == 0)
        level = c->hub->cur_packet[hdr + 6];
    if (level == MQTT_V5) {
        /* MQTT 5.0 lets the server send a CONNACK with the reason first
         * (0x84 for a wrong protocol name, section 3.1.2.1). */
        struct mqtt_packet ack = {.type = MQTT_CONNACK, .reason_code = err->reason_code};

        c->version = MQTT_V5;
        conn_send(c, &ack);
    } else if (known_name && err->reason_code == MQTT_RC_UNSUPPORTED_VERSION) {
        /* A level this broker does not speak: return code 1 in the 3.1.1
         * CONNACK form, which clients of every level can read. */
        struct mqtt_packet ack = {.type = MQTT_CONNACK, .reason_code = MQTT_V311_BAD_VERSION};

        c->version = MQTT_V311;
        conn_send(c, &ack);
    }
    /* Anything else closes without a CONNACK, because with an unknown
     * protocol name the peer may not speak MQTT at all (MQTT-3.1.2-1). */
    conn_protocol_error(c, err, MQTT_CONNECT);
}
