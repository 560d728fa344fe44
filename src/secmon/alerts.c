/* SQLite alert store with the open/acknowledged/resolved life cycle. */
#include "secmon/alerts.h"

#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

struct alerts_db {
    sqlite3 *db;
    pthread_mutex_t lock;
    bool in_batch;              /* alerts_upsert() opened a transaction */
    sqlite3_stmt *upsert;       /* prepared on first use, reset after each */
};

static const char *const state_names[] = {"open", "acknowledged", "resolved"};

static const char *const known_rules[] = {
    SECMON_RULE_UNKNOWN_DEVICE, SECMON_RULE_TOPIC_OUTSIDE, SECMON_RULE_SYS_PROBE,
    SECMON_RULE_WILDCARD_PROBE, SECMON_RULE_BRUTE_FORCE, SECMON_RULE_CONN_CHURN,
    SECMON_RULE_MANY_IDENTITIES, SECMON_RULE_SLOW_CONN, SECMON_RULE_FLOOD,
    SECMON_RULE_QOS_FLOOD, SECMON_RULE_MALFORMED_BURST, SECMON_RULE_TOPIC_CHARS,
    SECMON_RULE_PHYSIO_RANGE, SECMON_RULE_IMPOSSIBLE_RATE, SECMON_RULE_SILENT,
    SECMON_RULE_BASELINE, SECMON_RULE_EVENTS_DROPPED,
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS alerts ("
    " alert_id TEXT PRIMARY KEY, rule TEXT NOT NULL, severity INTEGER NOT NULL,"
    " device TEXT NOT NULL, source TEXT NOT NULL, observation TEXT NOT NULL,"
    " expectation TEXT NOT NULL, deviation REAL NOT NULL, explanation TEXT NOT NULL,"
    " first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL, count INTEGER NOT NULL,"
    " evidence TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'open',"
    " acked_at_us INTEGER, resolved_at_us INTEGER, first_event_us INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS alerts_state ON alerts(state, first_seen_us);";

const char *alerts_state_name(enum alerts_state state)
{
    return (unsigned)state <= ALERTS_RESOLVED ? state_names[state] : "unknown";
}

int alerts_state_parse(const char *name)
{
    for (int i = 0; i <= ALERTS_RESOLVED; i++)
        if (strcmp(name, state_names[i]) == 0)
            return i;
    return -1;
}

vigil_err alerts_open(const char *dir, struct alerts_db **out)
{
    char path[PATH_MAX];
    struct alerts_db *a = NULL;
    char *err = NULL;
    vigil_err rc = VIGIL_ERR_STORE;

    *out = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/alerts.db", dir) >= sizeof path)
        return VIGIL_ERR_INVALID;
    a = vigil_calloc(1, sizeof *a);
    if (a == NULL)
        return VIGIL_ERR_NOMEM;
    pthread_mutex_init(&a->lock, NULL);
    if (sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        NULL) != SQLITE_OK) {
        log_error("alerts: cannot open %s: %s", path, a->db ? sqlite3_errmsg(a->db) : "out of memory");
        goto cleanup;
    }
    sqlite3_busy_timeout(a->db, 5000);
    if (sqlite3_exec(a->db, "PRAGMA journal_mode=WAL", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(a->db, schema, NULL, NULL, &err) != SQLITE_OK) {
        log_error("alerts: cannot prepare %s: %s", path, err ? err : "unknown error");
        goto cleanup;
    }
    *out = a;
    a = NULL;
    rc = VIGIL_OK;
cleanup:
    sqlite3_free(err);
    if (a != NULL)
        alerts_close(a);
    return rc;
}

/* Commits the upserts of the open batch. Called with the lock held. */
static vigil_err batch_commit_locked(struct alerts_db *a)
{
    char *err = NULL;

    if (!a->in_batch)
        return VIGIL_OK;
    if (sqlite3_exec(a->db, "COMMIT", NULL, NULL, &err) != SQLITE_OK) {
        log_error("alerts: commit of alert updates failed: %s", err != NULL ? err : "unknown error");
        sqlite3_free(err);
        /* A failed COMMIT may leave the transaction open. Its rows are
         * rolled back, so they do not stay pending behind every later write. */
        if (!sqlite3_get_autocommit(a->db))
            (void)sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
        a->in_batch = false;
        return VIGIL_ERR_STORE;
    }
    a->in_batch = false;
    return VIGIL_OK;
}

vigil_err alerts_flush(struct alerts_db *a)
{
    vigil_err rc;

    if (a == NULL)
        return VIGIL_OK;
    pthread_mutex_lock(&a->lock);
    rc = batch_commit_locked(a);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

void alerts_close(struct alerts_db *a)
{
    if (a == NULL)
        return;
    (void)alerts_flush(a);
    sqlite3_finalize(a->upsert);
    sqlite3_close(a->db);
    pthread_mutex_destroy(&a->lock);
    vigil_free(a);
}

/* Evidence lines as a JSON array; the caller frees the result with free(). */
static char *evidence_json(const struct secmon_alert *al)
{
    json_t *arr = json_array();
    char *text;

    if (arr == NULL)
        return NULL;
    for (int i = 0; i < al->n_evidence && i < SECMON_EVIDENCE_MAX; i++)
        json_array_append_new(arr, json_string(al->evidence[i]));
    text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

static const char upsert_sql[] =
    "INSERT INTO alerts (alert_id, rule, severity, device, source, observation, expectation,"
    " deviation, explanation, first_seen_us, last_seen_us, count, evidence, first_event_us)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
    " ON CONFLICT(alert_id) DO UPDATE SET severity = excluded.severity,"
    " observation = excluded.observation, expectation = excluded.expectation,"
    " deviation = excluded.deviation, explanation = excluded.explanation,"
    " last_seen_us = excluded.last_seen_us, count = excluded.count, evidence = excluded.evidence";

static void bind_alert(sqlite3_stmt *st, const struct secmon_alert *al, const char *evidence)
{
    sqlite3_bind_text(st, 1, al->alert_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, al->rule != NULL ? al->rule : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, al->severity);
    sqlite3_bind_text(st, 4, al->device, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, al->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, al->observation, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, al->expectation, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 8, al->deviation);
    sqlite3_bind_text(st, 9, al->explanation, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, al->first_seen_us);
    sqlite3_bind_int64(st, 11, al->last_seen_us);
    sqlite3_bind_int64(st, 12, (sqlite3_int64)al->count);
    sqlite3_bind_text(st, 13, evidence, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 14, al->first_event_us != 0 ? al->first_event_us : al->first_seen_us);
}

vigil_err alerts_upsert(struct alerts_db *a, const struct secmon_alert *al)
{
    sqlite3_stmt *st;
    char *evidence = evidence_json(al);
    vigil_err rc = VIGIL_ERR_STORE;

    if (evidence == NULL)
        return VIGIL_ERR_NOMEM;
    pthread_mutex_lock(&a->lock);
    /* Upserts share one transaction until alerts_flush(), so a burst of
     * updates costs one WAL fsync instead of one each. */
    if (!a->in_batch) {
        if (sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            goto cleanup;
        a->in_batch = true;
    }
    /* An alert in a flood is updated once a second, so the statement is
     * kept rather than parsed for each update. */
    if (a->upsert == NULL &&
        sqlite3_prepare_v3(a->db, upsert_sql, -1, SQLITE_PREPARE_PERSISTENT, &a->upsert, NULL) !=
            SQLITE_OK)
        goto cleanup;
    st = a->upsert;
    bind_alert(st, al, evidence);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = VIGIL_OK;
cleanup:
    if (rc != VIGIL_OK)
        log_error("alerts: cannot store alert %s: %s", al->alert_id, sqlite3_errmsg(a->db));
    if (a->upsert != NULL) {
        sqlite3_reset(a->upsert);
        sqlite3_clear_bindings(a->upsert);
    }
    pthread_mutex_unlock(&a->lock);
    free(evidence);
    return rc;
}

/* Runs an UPDATE that changes the state of alert id at now_us; sql binds
 * now_us as ?1 and the id as ?2. */
static vigil_err transition(struct alerts_db *a, const char *id, int64_t now_us, const char *sql)
{
    sqlite3_stmt *st = NULL;
    vigil_err rc = VIGIL_ERR_STORE;

    if (now_us == 0)
        now_us = vigil_time_now_us();
    pthread_mutex_lock(&a->lock);
    /* The change is durable when this returns, so it does not join an
     * open batch of upserts. */
    if (batch_commit_locked(a) != VIGIL_OK)
        goto cleanup;
    if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto cleanup;
    sqlite3_bind_int64(st, 1, now_us);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto cleanup;
    if (sqlite3_changes(a->db) == 1) {
        rc = VIGIL_OK;
        goto cleanup;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(a->db, "SELECT 1 FROM alerts WHERE alert_id = ?1", -1, &st, NULL) != SQLITE_OK)
        goto cleanup;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_ROW ? VIGIL_ERR_INVALID : VIGIL_ERR_NOT_FOUND;
cleanup:
    if (rc == VIGIL_ERR_STORE)
        log_error("alerts: cannot update alert %s: %s", id, sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

vigil_err alerts_ack(struct alerts_db *a, const char *alert_id, int64_t now_us)
{
    return transition(a, alert_id, now_us,
                      "UPDATE alerts SET state = 'acknowledged', acked_at_us = ?1"
                      " WHERE alert_id = ?2 AND state = 'open'");
}

vigil_err alerts_resolve(struct alerts_db *a, const char *alert_id, int64_t now_us)
{
    return transition(a, alert_id, now_us,
                      "UPDATE alerts SET state = 'resolved', resolved_at_us = ?1"
                      " WHERE alert_id = ?2 AND state IN ('open', 'acknowledged')");
}

static void copy_text(char *out, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);

    snprintf(out, cap, "%s", t != NULL ? (const char *)t : "");
}

static void read_evidence(struct secmon_alert *al, const char *text)
{
    json_t *arr = json_loads(text, 0, NULL);
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;

    al->n_evidence = 0;
    for (size_t i = 0; i < n && i < SECMON_EVIDENCE_MAX; i++) {
        const char *line = json_string_value(json_array_get(arr, i));

        snprintf(al->evidence[al->n_evidence++], sizeof al->evidence[0], "%s", line ? line : "");
    }
    json_decref(arr);
}

static void read_row(sqlite3_stmt *st, struct alerts_row *row)
{
    struct secmon_alert *al = &row->alert;
    const unsigned char *evidence = sqlite3_column_text(st, 12);

    memset(row, 0, sizeof *row);
    copy_text(al->alert_id, sizeof al->alert_id, st, 0);
    copy_text(row->rule, sizeof row->rule, st, 1);
    al->rule = row->rule;
    for (size_t i = 0; i < sizeof known_rules / sizeof known_rules[0]; i++)
        if (strcmp(row->rule, known_rules[i]) == 0)
            al->rule = known_rules[i];
    al->severity = (uint8_t)sqlite3_column_int(st, 2);
    copy_text(al->device, sizeof al->device, st, 3);
    copy_text(al->source, sizeof al->source, st, 4);
    copy_text(al->observation, sizeof al->observation, st, 5);
    copy_text(al->expectation, sizeof al->expectation, st, 6);
    al->deviation = sqlite3_column_double(st, 7);
    copy_text(al->explanation, sizeof al->explanation, st, 8);
    al->first_seen_us = sqlite3_column_int64(st, 9);
    al->last_seen_us = sqlite3_column_int64(st, 10);
    al->count = (uint64_t)sqlite3_column_int64(st, 11);
    read_evidence(al, evidence != NULL ? (const char *)evidence : "[]");
    row->state = (enum alerts_state)alerts_state_parse((const char *)sqlite3_column_text(st, 13));
    row->acked_at_us = sqlite3_column_int64(st, 14);
    row->resolved_at_us = sqlite3_column_int64(st, 15);
    al->first_event_us = sqlite3_column_int64(st, 16);
}

vigil_err alerts_list(struct alerts_db *a, int state, void (*fn)(void *ctx, const struct alerts_row *row),
                      void *ctx)
{
    sqlite3_stmt *st = NULL;
    struct alerts_row row;
    vigil_err rc = VIGIL_ERR_STORE;
    int step;

    if (state > ALERTS_RESOLVED)
        return VIGIL_ERR_INVALID;
    pthread_mutex_lock(&a->lock);
    if (sqlite3_prepare_v2(a->db,
                           "SELECT alert_id, rule, severity, device, source, observation, expectation,"
                           " deviation, explanation, first_seen_us, last_seen_us, count, evidence, state,"
                           " acked_at_us, resolved_at_us, first_event_us FROM alerts"
                           " WHERE ?1 IS NULL OR state = ?1 ORDER BY first_seen_us, alert_id",
                           -1, &st, NULL) != SQLITE_OK)
        goto cleanup;
    if (state >= 0)
        sqlite3_bind_text(st, 1, alerts_state_name((enum alerts_state)state), -1, SQLITE_STATIC);
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        read_row(st, &row);
        fn(ctx, &row);
    }
    if (step == SQLITE_DONE)
        rc = VIGIL_OK;
cleanup:
    if (rc != VIGIL_OK)
        log_error("alerts: cannot list alerts: %s", sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

vigil_err alerts_mttd_mttr(struct alerts_db *a, double *mttd_s, double *mttr_s)
{
    sqlite3_stmt *st = NULL;
    vigil_err rc = VIGIL_ERR_STORE;

    *mttd_s = -1;
    *mttr_s = -1;
    pthread_mutex_lock(&a->lock);
    if (sqlite3_prepare_v2(a->db,
                           "SELECT AVG(first_seen_us - first_event_us),"
                           " AVG(CASE WHEN state = 'resolved' THEN resolved_at_us - first_seen_us END)"
                           " FROM alerts",
                           -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW)
        goto cleanup;
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *mttd_s = sqlite3_column_double(st, 0) / 1e6;
    if (sqlite3_column_type(st, 1) != SQLITE_NULL)
        *mttr_s = sqlite3_column_double(st, 1) / 1e6;
    rc = VIGIL_OK;
cleanup:
    if (rc != VIGIL_OK)
        log_error("alerts: cannot compute MTTD and MTTR: %s", sqlite3_errmsg(a->db));
    sqlite3_finalize(st);
    pthread_mutex_unlock(&a->lock);
    return rc;
}
