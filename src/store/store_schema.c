/* Store database setup: pragmas, schema creation and versioning, and the
 * prepared statements the writer thread uses. */
#include <stdio.h>

#include "core/log.h"
#include "store/store_internal.h"

static const char store_schema_sql[] =
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " props BLOB NOT NULL,"
    " qos INTEGER NOT NULL,"
    " retain INTEGER NOT NULL,"
    " expiry_at INTEGER NOT NULL);"
    "CREATE TABLE queue ("
    " client_id TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " msg_id INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " packet_id INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, seq));"
    "CREATE INDEX queue_msg_id ON queue (msg_id);"
    "CREATE TABLE retained ("
    " topic TEXT PRIMARY KEY NOT NULL,"
    " payload BLOB NOT NULL,"
    " props BLOB NOT NULL,"
    " qos INTEGER NOT NULL,"
    " expiry_at INTEGER NOT NULL);"
    "CREATE TABLE sessions ("
    " client_id TEXT PRIMARY KEY NOT NULL,"
    " version INTEGER NOT NULL,"
    " session_expiry INTEGER NOT NULL,"
    " disconnected_at INTEGER NOT NULL,"
    " device TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE subs ("
    " client_id TEXT NOT NULL,"
    " filter TEXT NOT NULL,"
    " options INTEGER NOT NULL,"
    " sub_id INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, filter));"
    "CREATE TABLE inqos2 ("
    " client_id TEXT NOT NULL,"
    " packet_id INTEGER NOT NULL,"
    " PRIMARY KEY (client_id, packet_id));";

static const char *const store_stmt_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_MSG_PUT] = "INSERT OR REPLACE INTO messages "
                     "(id, topic, payload, props, qos, retain, expiry_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [STMT_MSG_GC] = "DELETE FROM messages WHERE id = ?1 "
                    "AND NOT EXISTS (SELECT 1 FROM queue WHERE msg_id = ?1)",
    [STMT_QUEUE_PUT] = "INSERT OR REPLACE INTO queue "
                       "(client_id, seq, msg_id, qos, state, packet_id) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [STMT_QUEUE_UPDATE] = "UPDATE queue SET state = ?3, packet_id = ?4 "
                          "WHERE client_id = ?1 AND seq = ?2",
    [STMT_QUEUE_DEL] = "DELETE FROM queue WHERE client_id = ?1 AND seq = ?2 RETURNING msg_id",
    [STMT_RETAIN_SET] = "INSERT OR REPLACE INTO retained (topic, payload, props, qos, expiry_at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_RETAIN_DEL] = "DELETE FROM retained WHERE topic = ?1",
    [STMT_SESSION_PUT] = "INSERT OR REPLACE INTO sessions "
                         "(client_id, version, session_expiry, disconnected_at, device) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
    [STMT_SESSION_DEL] = "DELETE FROM sessions WHERE client_id = ?1",
    [STMT_SESSION_DEL_SUBS] = "DELETE FROM subs WHERE client_id = ?1",
    [STMT_SESSION_DEL_QUEUE] = "DELETE FROM queue WHERE client_id = ?1 RETURNING msg_id",
    [STMT_SESSION_DEL_INQOS2] = "DELETE FROM inqos2 WHERE client_id = ?1",
    [STMT_SUB_PUT] = "INSERT OR REPLACE INTO subs (client_id, filter, options, sub_id) "
                     "VALUES (?1, ?2, ?3, ?4)",
    [STMT_SUB_DEL] = "DELETE FROM subs WHERE client_id = ?1 AND filter = ?2",
    [STMT_INQOS2_PUT] = "INSERT OR REPLACE INTO inqos2 (client_id, packet_id) VALUES (?1, ?2)",
    [STMT_INQOS2_DEL] = "DELETE FROM inqos2 WHERE client_id = ?1 AND packet_id = ?2",
};

void store_log_sqlite(struct store *st, const char *what)
{
    log_error("store: %s failed: %s (SQLite code %d)", what, sqlite3_errmsg(st->db),
              sqlite3_extended_errcode(st->db));
}

static vigil_err store_exec(struct store *st, const char *sql, const char *what)
{
    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        store_log_sqlite(st, what);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

/* Sets WAL mode and full sync. In WAL mode synchronous=NORMAL fsyncs only
 * at checkpoints, so the last commits can be lost on power failure even
 * though they were reported done. With FULL the WAL is fsynced at every
 * commit, so an op whose done callback ran survives a crash or power cut. */
static vigil_err store_set_pragmas(struct store *st)
{
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_ERR_STORE;

    sqlite3_busy_timeout(st->db, 5000);
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        store_log_sqlite(st, "setting WAL mode");
        goto out;
    }
    if (sqlite3_stricmp((const char *)sqlite3_column_text(stmt, 0), "wal") != 0) {
        log_error("store: switching to WAL mode failed (journal mode is %s)",
                  (const char *)sqlite3_column_text(stmt, 0));
        goto out;
    }
    rc = store_exec(st, "PRAGMA synchronous=FULL", "setting synchronous=FULL");

out:
    sqlite3_finalize(stmt);
    return rc;
}

/* Reads the schema version; 0 when the database is new. */
static vigil_err store_read_version(struct store *st, int *version)
{
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;
    int step;

    *version = 0;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                           "AND name = 'schema_version'",
                           -1, &stmt, NULL) != SQLITE_OK) {
        store_log_sqlite(st, "reading the schema version");
        return VIGIL_ERR_STORE;
    }
    step = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (step == SQLITE_DONE)
        return VIGIL_OK;
    if (sqlite3_prepare_v2(st->db, "SELECT MAX(version) FROM schema_version", -1, &stmt, NULL) !=
            SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        store_log_sqlite(st, "reading the schema version");
        rc = VIGIL_ERR_STORE;
    } else {
        *version = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return rc;
}

static vigil_err store_create_schema(struct store *st)
{
    char sql[sizeof store_schema_sql + 160];

    snprintf(sql, sizeof sql,
             "BEGIN IMMEDIATE;"
             "CREATE TABLE schema_version (version INTEGER NOT NULL);"
             "%s"
             "INSERT INTO schema_version (version) VALUES (%d);"
             "COMMIT;",
             store_schema_sql, STORE_SCHEMA_VERSION);
    if (store_exec(st, sql, "creating the schema") != VIGIL_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

/* Version 1 stored no owning device with a session. Its sessions keep an
 * empty owner, so a device that logs in with such a client id still gets
 * a fresh session once. Sessions stored from now on keep their device. */
static vigil_err store_upgrade_1(struct store *st)
{
    static const char sql[] = "BEGIN IMMEDIATE;"
                              "ALTER TABLE sessions ADD COLUMN device TEXT NOT NULL DEFAULT '';"
                              "UPDATE schema_version SET version = 2;"
                              "COMMIT;";

    if (store_exec(st, sql, "upgrading the schema from version 1") != VIGIL_OK) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return VIGIL_ERR_STORE;
    }
    log_info("store: schema upgraded from version 1 to 2 (sessions record their device)");
    return VIGIL_OK;
}

static vigil_err store_check_schema(struct store *st, const char *path)
{
    vigil_err rc;
    int version;

    rc = store_read_version(st, &version);
    if (rc != VIGIL_OK)
        return rc;
    if (version == 0)
        return store_create_schema(st);
    if (version == 1 && STORE_SCHEMA_VERSION == 2)
        return store_upgrade_1(st);
    if (version != STORE_SCHEMA_VERSION) {
        log_error("store: %s has schema version %d but this build reads version %d; "
                  "use a matching vigil build",
                  path, version, STORE_SCHEMA_VERSION);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

static vigil_err store_prepare_all(struct store *st)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        if (sqlite3_prepare_v3(st->db, store_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &st->stmt[i], NULL) != SQLITE_OK) {
            log_error("store: preparing \"%s\" failed: %s", store_stmt_sql[i],
                      sqlite3_errmsg(st->db));
            return VIGIL_ERR_STORE;
        }
    }
    return VIGIL_OK;
}

vigil_err store_db_open(struct store *st, const char *path)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    vigil_err rc;

    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        log_error("store: open of %s failed: %s", path,
                  st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory");
        return VIGIL_ERR_STORE;
    }
    rc = store_set_pragmas(st);
    if (rc == VIGIL_OK)
        rc = store_check_schema(st, path);
    if (rc == VIGIL_OK)
        rc = store_prepare_all(st);
    return rc;
}

void store_db_close(struct store *st)
{
    for (int i = 0; i < STMT_COUNT; i++) {
        sqlite3_finalize(st->stmt[i]);
        st->stmt[i] = NULL;
    }
    if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
        store_log_sqlite(st, "closing the database");
    st->db = NULL;
}
