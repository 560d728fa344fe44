/* Connection rules: unknown devices, brute force, connection churn, many
 * identities from one source, slow connections and malformed bursts. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/map.h"
#include "secmon/engine_internal.h"

#define US_PER_S INT64_C(1000000)

static struct engine_conn *conn_lookup(struct secmon_engine *e, uint64_t id, bool create)
{
    char key[24];
    size_t n = engine_conn_key(key, id);

    if (create)
        return engine_table_touch(e, &e->conns, key, n, NULL);
    return engine_table_get(&e->conns, key, n);
}

static struct engine_source *source_of(struct secmon_engine *e, const char *src)
{
    return engine_table_touch(e, &e->sources, src, strlen(src), NULL);
}

/* Raises a windowed rule once the window contains threshold events. The
 * first finding counts every event in the window, later ones add one. */
static void raise_window(struct secmon_engine *e, const struct vigil_event *ev, struct engine_finding *f,
                         const struct engine_window *w, double in_window, uint32_t threshold)
{
    f->deviation = in_window / threshold;
    f->first_event_us = w->first_us;
    f->open_count = (uint64_t)(in_window + 0.5);
    engine_raise(e, ev, f);
}

static void check_brute_force(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    int64_t len = (int64_t)c->auth_fail_window_s * US_PER_S;
    struct engine_source *s = source_of(e, src);
    const char *id = engine_event_identity(ev);
    struct engine_ident *who = id[0] != '\0' ? engine_table_touch(e, &e->idents, id, strlen(id), NULL)
                                             : NULL;
    struct engine_finding f;
    double n;

    if (s != NULL && (n = engine_window_add(&s->auth_fail, e->now_us, len)) >= c->auth_fail_burst) {
        engine_finding_init(&f, SECMON_RULE_BRUTE_FORCE, SECMON_SEV_HIGH, id, src, src);
        snprintf(f.observation, sizeof f.observation, "%.0f failed logins from %s within %" PRIu32 " s",
                 n, src, c->auth_fail_window_s);
        snprintf(f.expectation, sizeof f.expectation,
                 "policy: fewer than %" PRIu32 " failed logins per source within %" PRIu32 " s",
                 c->auth_fail_burst, c->auth_fail_window_s);
        raise_window(e, ev, &f, &s->auth_fail, n, c->auth_fail_burst);
    }
    if (who != NULL && (n = engine_window_add(&who->auth_fail, e->now_us, len)) >= c->auth_fail_burst) {
        engine_finding_init(&f, SECMON_RULE_BRUTE_FORCE, SECMON_SEV_HIGH, id, src, id);
        snprintf(f.observation, sizeof f.observation,
                 "%.0f failed logins as '%s' within %" PRIu32 " s, the latest from %s", n, id,
                 c->auth_fail_window_s, src);
        snprintf(f.expectation, sizeof f.expectation,
                 "policy: fewer than %" PRIu32 " failed logins per identity within %" PRIu32 " s",
                 c->auth_fail_burst, c->auth_fail_window_s);
        raise_window(e, ev, &f, &who->auth_fail, n, c->auth_fail_burst);
    }
}

/* True when a login event leaves the client's identity unverified: a failed
 * or unknown login, or an accepted one without credentials (live events
 * leave device empty then). Passive analysis sees no credential check, so
 * every login counts there. */
static bool login_is_unverified(const struct secmon_engine *e, const struct vigil_event *ev)
{
    if (e->cfg.passive || ev->type != VIGIL_EV_AUTH_SUCCESS)
        return true;
    return ev->device[0] == '\0';
}

static void check_identities(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    struct engine_source *s;
    const char *id = engine_event_identity(ev);
    struct engine_finding f;
    uint32_t n;

    if (id[0] == '\0' || !login_is_unverified(e, ev))
        return;
    s = source_of(e, src);
    if (s == NULL)
        return;
    n = engine_idset_add(&s->idents, vigil_hash_bytes(id, strlen(id)), e->now_us,
                         (int64_t)c->churn_window_s * US_PER_S);
    if (n < c->identities_per_source)
        return;
    engine_finding_init(&f, SECMON_RULE_MANY_IDENTITIES, SECMON_SEV_HIGH, id, src, src);
    f.deviation = (double)n / c->identities_per_source;
    f.first_event_us = s->idents.start_us;
    snprintf(f.observation, sizeof f.observation, "%s used %" PRIu32 "%s client ids within %" PRIu32 " s",
             src, n, n >= ENGINE_IDENTS_MAX ? " or more" : "", c->churn_window_s);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: fewer than %" PRIu32 " identities per source within %" PRIu32 " s",
             c->identities_per_source, c->churn_window_s);
    engine_raise(e, ev, &f);
}

static void check_unknown_device(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const char *id = engine_event_identity(ev);
    struct engine_finding f;

    if (strstr(ev->detail, "unknown device") == NULL)
        return;
    engine_finding_init(&f, SECMON_RULE_UNKNOWN_DEVICE, SECMON_SEV_MEDIUM, id, src, id);
    f.deviation = 1;
    snprintf(f.observation, sizeof f.observation, "login as '%s' from %s, which is not in the inventory",
             id, src);
    snprintf(f.expectation, sizeof f.expectation, "policy: only inventoried devices connect");
    engine_raise(e, ev, &f);
}

/* Counts one connection of src toward connection_churn. */
static void count_churn(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    struct engine_source *s = source_of(e, src);
    struct engine_finding f;
    double n;

    if (s == NULL)
        return;
    n = engine_window_add(&s->connects, e->now_us, (int64_t)c->churn_window_s * US_PER_S);
    if (n < c->churn_connects)
        return;
    engine_finding_init(&f, SECMON_RULE_CONN_CHURN, SECMON_SEV_MEDIUM, "", src, src);
    snprintf(f.observation, sizeof f.observation, "%.0f %sconnections from %s within %" PRIu32 " s",
             n, e->cfg.passive ? "" : "unauthenticated ", src, c->churn_window_s);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: fewer than %" PRIu32 " %sconnections per source within %" PRIu32 " s",
             c->churn_connects, e->cfg.passive ? "" : "unauthenticated ", c->churn_window_s);
    raise_window(e, ev, &f, &s->connects, n, c->churn_connects);
}

/* Live, a connection counts toward churn once it is known not to carry
 * credentials that the hub verified: a failed login, a login without
 * credentials, or a close before any login. Devices behind one address,
 * such as a gateway or a simulator, then never count. */
static void count_churn_once(struct secmon_engine *e, const struct vigil_event *ev, const char *src,
                             struct engine_conn *conn)
{
    if (e->cfg.passive)
        return;
    if (conn != NULL) {
        if (conn->churn_counted)
            return;
        conn->churn_counted = true;
    }
    count_churn(e, ev, src);
}

static void on_connect_attempt(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    struct engine_conn *conn = conn_lookup(e, ev->conn_id, true);

    if (conn != NULL) {
        conn->started = true;
        snprintf(conn->source, sizeof conn->source, "%s", src);
    }
    /* Passive analysis cannot tell verified credentials apart, so there
     * every connection counts. */
    if (e->cfg.passive)
        count_churn(e, ev, src);
}

static void on_auth_success(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    struct engine_conn *conn = conn_lookup(e, ev->conn_id, true);
    struct engine_source *s = source_of(e, src);
    const char *id = engine_event_identity(ev);
    struct engine_device *d;
    struct engine_finding f;

    check_identities(e, ev, src);
    if (ev->device[0] == '\0')
        count_churn_once(e, ev, src, conn);
    if (id[0] != '\0' && (d = engine_table_touch(e, &e->devices, id, strlen(id), NULL)) != NULL)
        engine_baseline_login(e, d, ev, src);
    if (conn == NULL || s == NULL)
        return;
    conn->authenticated = true;
    snprintf(conn->source, sizeof conn->source, "%s", src);
    if (ev->keep_alive < c->slow_keepalive_s && !conn->slow) {
        /* Nothing reads the record of a logged-in connection without a
         * long keep-alive again, so it is dropped (struct engine_conn). */
        engine_table_remove(&e->conns, &conn->node);
        return;
    }
    if (conn->slow)
        return;
    conn->slow = true;
    if (++s->slow_open < c->slow_conns)
        return;
    engine_finding_init(&f, SECMON_RULE_SLOW_CONN, SECMON_SEV_MEDIUM, id, src, src);
    f.deviation = (double)s->slow_open / c->slow_conns;
    snprintf(f.observation, sizeof f.observation,
             "%" PRIu32 " open connections from %s with keep-alive of %" PRIu32 " s or more (latest %u s)",
             s->slow_open, src, c->slow_keepalive_s, ev->keep_alive);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: fewer than %" PRIu32 " long keep-alive connections per source", c->slow_conns);
    engine_raise(e, ev, &f);
}

static void on_no_connect(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    struct engine_source *s = source_of(e, src);
    struct engine_finding f;
    double n;

    if (s == NULL)
        return;
    n = engine_window_add(&s->no_connect, e->now_us, (int64_t)c->churn_window_s * US_PER_S);
    if (n < c->slow_conns)
        return;
    engine_finding_init(&f, SECMON_RULE_SLOW_CONN, SECMON_SEV_MEDIUM, "", src, src);
    snprintf(f.observation, sizeof f.observation,
             "%.0f connections from %s sent no CONNECT within the connect timeout in %" PRIu32 " s", n,
             src, c->churn_window_s);
    snprintf(f.expectation, sizeof f.expectation,
             "policy: fewer than %" PRIu32 " idle connections per source within %" PRIu32 " s",
             c->slow_conns, c->churn_window_s);
    raise_window(e, ev, &f, &s->no_connect, n, c->slow_conns);
}

static void on_malformed(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    const struct secmon_config *c = &e->cfg;
    struct engine_source *s = source_of(e, src);
    struct engine_finding f;
    double n;

    if (s == NULL)
        return;
    n = engine_window_add(&s->malformed, e->now_us, (int64_t)c->malformed_window_s * US_PER_S);
    if (n < c->malformed_burst)
        return;
    engine_finding_init(&f, SECMON_RULE_MALFORMED_BURST, SECMON_SEV_MEDIUM, engine_event_identity(ev),
                        src, src);
    snprintf(f.observation, sizeof f.observation,
             "%.0f malformed packets from %s within %" PRIu32 " s, the latest violating %s", n, src,
             c->malformed_window_s, ev->rule != NULL ? ev->rule : "the protocol");
    snprintf(f.expectation, sizeof f.expectation,
             "policy: fewer than %" PRIu32 " malformed packets per source within %" PRIu32 " s",
             c->malformed_burst, c->malformed_window_s);
    raise_window(e, ev, &f, &s->malformed, n, c->malformed_burst);
}

static void on_disconnect(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    struct engine_conn *conn = conn_lookup(e, ev->conn_id, false);

    if (conn == NULL)
        return;
    if (conn->started && !conn->authenticated)
        count_churn_once(e, ev, src, conn);
    e->conns.on_evict(e, &conn->node);
    engine_table_remove(&e->conns, &conn->node);
}

void engine_rules_connection(struct secmon_engine *e, const struct vigil_event *ev, const char *src)
{
    switch (ev->type) {
    case VIGIL_EV_CONNECT_ATTEMPT:
        on_connect_attempt(e, ev, src);
        break;
    case VIGIL_EV_AUTH_SUCCESS:
        on_auth_success(e, ev, src);
        break;
    case VIGIL_EV_AUTH_FAILURE:
        count_churn_once(e, ev, src, conn_lookup(e, ev->conn_id, false));
        check_unknown_device(e, ev, src);
        check_identities(e, ev, src);
        check_brute_force(e, ev, src);
        break;
    case VIGIL_EV_TLS_FAILURE:
        check_brute_force(e, ev, src);
        break;
    case VIGIL_EV_MALFORMED:
        on_malformed(e, ev, src);
        break;
    case VIGIL_EV_LIMIT:
        if (strstr(ev->detail, "no CONNECT") != NULL)
            on_no_connect(e, ev, src);
        break;
    case VIGIL_EV_DISCONNECT:
        on_disconnect(e, ev, src);
        break;
    default:
        break;
    }
}
