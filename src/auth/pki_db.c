/* Certificate records in the certs table of devices.db. The pki_db_
 * functions expect the devices database lock to be held; pki_list and
 * pki_get take it. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "auth/pki_internal.h"
#include "core/log.h"

static const char certs_schema[] =
    "CREATE TABLE IF NOT EXISTS certs ("
    " serial TEXT PRIMARY KEY NOT NULL,"
    " device_id TEXT NOT NULL,"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),"
    " overlap_until INTEGER NOT NULL DEFAULT 0,"
    " revoked_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS certs_device ON certs (device_id, not_before)";

static const char *const status_names[] = {
    [PKI_CERT_ACTIVE] = "active",
    [PKI_CERT_SUPERSEDED] = "superseded",
    [PKI_CERT_REVOKED] = "revoked",
};

static sqlite3 *handle(struct pki *pki)
{
    return (sqlite3 *)device_db_handle(pki->devices);
}

static vigil_err exec_sql(struct pki *pki, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(handle(pki), sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("pki: \"%s\" failed: %s", sql, msg != NULL ? msg : sqlite3_errmsg(handle(pki)));
        sqlite3_free(msg);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

static sqlite3_stmt *prepare(struct pki *pki, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_prepare_v2(handle(pki), sql, -1, &stmt, NULL) != SQLITE_OK)
        log_error("pki: preparing \"%s\" failed: %s", sql, sqlite3_errmsg(handle(pki)));
    return stmt;
}

/* Steps a statement that returns no rows, finalizes it and stores the
 * number of changed rows in *count when count is not NULL. */
static vigil_err run_update(struct pki *pki, sqlite3_stmt *stmt, int *count)
{
    vigil_err rc = VIGIL_OK;

    if (sqlite3_step(stmt) != SQLITE_DONE) {
        log_error("pki: updating certificate records failed: %s", sqlite3_errmsg(handle(pki)));
        rc = VIGIL_ERR_STORE;
    } else if (count != NULL) {
        *count = sqlite3_changes(handle(pki));
    }
    sqlite3_finalize(stmt);
    return rc;
}

vigil_err pki_db_init(struct pki *pki)
{
    return exec_sql(pki, certs_schema);
}

vigil_err pki_db_begin(struct pki *pki)
{
    /* IMMEDIATE takes the write lock at once, so a vigil CLI and a running
     * broker never build a CRL from records the other is changing. */
    return exec_sql(pki, "BEGIN IMMEDIATE");
}

vigil_err pki_db_commit(struct pki *pki)
{
    return exec_sql(pki, "COMMIT");
}

void pki_db_rollback(struct pki *pki)
{
    exec_sql(pki, "ROLLBACK");
}

vigil_err pki_db_insert(struct pki *pki, const struct pki_cert_info *info)
{
    sqlite3_stmt *stmt = prepare(pki, "INSERT INTO certs (serial, device_id, not_before, "
                                      "not_after, status, overlap_until, revoked_at) "
                                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");

    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, info->serial, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, info->device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, info->not_before);
    sqlite3_bind_int64(stmt, 4, info->not_after);
    sqlite3_bind_text(stmt, 5, status_names[info->status], -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, info->overlap_until);
    sqlite3_bind_int64(stmt, 7, info->revoked_at);
    return run_update(pki, stmt, NULL);
}

vigil_err pki_db_revoke_superseded(struct pki *pki, const char *device, int64_t now, int *count)
{
    sqlite3_stmt *stmt = prepare(pki, "UPDATE certs SET status = 'revoked', revoked_at = ?2, "
                                      "overlap_until = 0 "
                                      "WHERE device_id = ?1 AND status = 'superseded'");

    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, now);
    return run_update(pki, stmt, count);
}

vigil_err pki_db_retire_active(struct pki *pki, const char *device, int64_t now,
                               int64_t overlap_until, int *count)
{
    sqlite3_stmt *stmt;

    if (overlap_until == 0)
        stmt = prepare(pki, "UPDATE certs SET status = 'revoked', revoked_at = ?2 "
                            "WHERE device_id = ?1 AND status = 'active'");
    else
        stmt = prepare(pki, "UPDATE certs SET status = 'superseded', overlap_until = ?3 "
                            "WHERE device_id = ?1 AND status = 'active'");
    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, device, -1, SQLITE_STATIC);
    if (overlap_until == 0)
        sqlite3_bind_int64(stmt, 2, now);
    else
        sqlite3_bind_int64(stmt, 3, overlap_until);
    return run_update(pki, stmt, count);
}

static vigil_err count_device(struct pki *pki, const char *device, int *total)
{
    sqlite3_stmt *stmt = prepare(pki, "SELECT count(*) FROM certs WHERE device_id = ?1");
    vigil_err rc = VIGIL_ERR_STORE;

    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, device, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        *total = sqlite3_column_int(stmt, 0);
        rc = VIGIL_OK;
    } else {
        log_error("pki: counting the certificates of %s failed: %s", device,
                  sqlite3_errmsg(handle(pki)));
    }
    sqlite3_finalize(stmt);
    return rc;
}

vigil_err pki_db_revoke_device(struct pki *pki, const char *device, int64_t now, int *count,
                               int *total)
{
    sqlite3_stmt *stmt;
    vigil_err rc = count_device(pki, device, total);

    if (rc != VIGIL_OK)
        return rc;
    stmt = prepare(pki, "UPDATE certs SET status = 'revoked', revoked_at = ?2 "
                        "WHERE device_id = ?1 AND status != 'revoked'");
    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, device, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, now);
    return run_update(pki, stmt, count);
}

vigil_err pki_db_expire(struct pki *pki, int64_t now, int *count)
{
    sqlite3_stmt *stmt = prepare(pki, "UPDATE certs SET status = 'revoked', revoked_at = ?1 "
                                      "WHERE status = 'superseded' AND overlap_until <= ?1");

    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_int64(stmt, 1, now);
    return run_update(pki, stmt, count);
}

static enum pki_cert_status parse_status(const unsigned char *text)
{
    for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++) {
        if (text != NULL && strcmp((const char *)text, status_names[i]) == 0)
            return (enum pki_cert_status)i;
    }
    /* The CHECK constraint rules this out; revoked is the safe reading. */
    return PKI_CERT_REVOKED;
}

/* Reads the columns of SELECT_COLUMNS into info. */
static void read_row(sqlite3_stmt *stmt, struct pki_cert_info *info)
{
    const unsigned char *serial = sqlite3_column_text(stmt, 0);
    const unsigned char *device = sqlite3_column_text(stmt, 1);

    memset(info, 0, sizeof *info);
    snprintf(info->serial, sizeof info->serial, "%s", serial != NULL ? (const char *)serial : "");
    snprintf(info->device, sizeof info->device, "%s", device != NULL ? (const char *)device : "");
    info->not_before = sqlite3_column_int64(stmt, 2);
    info->not_after = sqlite3_column_int64(stmt, 3);
    info->status = parse_status(sqlite3_column_text(stmt, 4));
    info->overlap_until = sqlite3_column_int64(stmt, 5);
    info->revoked_at = sqlite3_column_int64(stmt, 6);
}

#define SELECT_COLUMNS \
    "SELECT serial, device_id, not_before, not_after, status, overlap_until, revoked_at FROM certs "

vigil_err pki_db_each(struct pki *pki, int revoked_only, int64_t not_after_min,
                      void (*fn)(void *ctx, const struct pki_cert_info *), void *ctx)
{
    struct pki_cert_info info;
    sqlite3_stmt *stmt;
    vigil_err rc = VIGIL_OK;
    int step;

    if (revoked_only) {
        stmt = prepare(pki, SELECT_COLUMNS "WHERE status = 'revoked' AND not_after >= ?1 "
                                           "ORDER BY serial");
        if (stmt != NULL)
            sqlite3_bind_int64(stmt, 1, not_after_min);
    } else {
        stmt = prepare(pki, SELECT_COLUMNS "ORDER BY device_id, not_before, rowid");
    }
    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        read_row(stmt, &info);
        fn(ctx, &info);
    }
    if (step != SQLITE_DONE) {
        log_error("pki: reading certificate records failed: %s", sqlite3_errmsg(handle(pki)));
        rc = VIGIL_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    return rc;
}

vigil_err pki_db_get(struct pki *pki, const char *serial, struct pki_cert_info *info)
{
    sqlite3_stmt *stmt = prepare(pki, SELECT_COLUMNS "WHERE serial = ?1");
    vigil_err rc = VIGIL_OK;
    int step;

    if (stmt == NULL)
        return VIGIL_ERR_STORE;
    sqlite3_bind_text(stmt, 1, serial, -1, SQLITE_STATIC);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        read_row(stmt, info);
    } else if (step == SQLITE_DONE) {
        rc = VIGIL_ERR_NOT_FOUND;
    } else {
        log_error("pki: looking up serial %s failed: %s", serial, sqlite3_errmsg(handle(pki)));
        rc = VIGIL_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    return rc;
}

vigil_err pki_list(struct pki *pki, void (*fn)(void *ctx, const struct pki_cert_info *), void *ctx)
{
    vigil_err rc;

    device_db_lock(pki->devices);
    rc = pki_db_each(pki, 0, 0, fn, ctx);
    device_db_unlock(pki->devices);
    return rc;
}

vigil_err pki_get(struct pki *pki, const char *serial, struct pki_cert_info *info)
{
    char upper[PKI_SERIAL_MAX];
    size_t n = 0;
    vigil_err rc;

    for (; serial[n] != '\0'; n++) {
        if (n + 1 >= sizeof upper || !isxdigit((unsigned char)serial[n]))
            return VIGIL_ERR_NOT_FOUND;
        upper[n] = (char)toupper((unsigned char)serial[n]);
    }
    upper[n] = '\0';
    device_db_lock(pki->devices);
    rc = pki_db_get(pki, upper, info);
    device_db_unlock(pki->devices);
    return rc;
}
