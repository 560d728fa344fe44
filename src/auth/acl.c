/* Access rules and TLS-PSK keys in devices.db, and the change counter the
 * broker compares to decide when to reload its snapshot. */
#include "auth/acl.h"

#include <string.h>

#include <sqlite3.h>

#include "auth/acl_internal.h"
#include "broker/topic.h"
#include "core/log.h"
#include "core/time.h"

static const char acl_schema[] =
    "CREATE TABLE IF NOT EXISTS acl ("
    " id INTEGER PRIMARY KEY,"
    " subject_kind TEXT NOT NULL CHECK (subject_kind IN ('device', 'role')),"
    " subject TEXT NOT NULL,"
    " action TEXT NOT NULL CHECK (action IN ('publish', 'subscribe')),"
    " pattern TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " UNIQUE (subject_kind, subject, action, pattern))";

/* 2 when the acl table and the psk column both exist. */
static const char schema_check[] =
    "SELECT (SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'acl')"
    " + (SELECT count(*) FROM pragma_table_info('devices') WHERE name = 'psk')";

const char *acl_subject_text(char kind)
{
    if (kind == ACL_SUBJECT_DEVICE)
        return "device";
    if (kind == ACL_SUBJECT_ROLE)
        return "role";
    return NULL;
}

const char *acl_action_text(char action)
{
    if (action == ACL_PUBLISH)
        return "publish";
    if (action == ACL_SUBSCRIBE)
        return "subscribe";
    return NULL;
}

char acl_subject_parse(const char *text)
{
    if (text == NULL)
        return 0;
    if (strcmp(text, "device") == 0)
        return ACL_SUBJECT_DEVICE;
    return strcmp(text, "role") == 0 ? ACL_SUBJECT_ROLE : 0;
}

char acl_action_parse(const char *text)
{
    if (text == NULL)
        return 0;
    if (strcmp(text, "publish") == 0)
        return ACL_PUBLISH;
    return strcmp(text, "subscribe") == 0 ? ACL_SUBSCRIBE : 0;
}

bool acl_role_valid(const char *name)
{
    size_t len = strnlen(name, 32);

    if (len == 0 || len > 31)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';

        if (!ok)
            return false;
    }
    return true;
}

bool acl_pattern_valid(const char *pattern)
{
    size_t len = strnlen(pattern, 256);
    const char *level = pattern;

    if (len == 0 || len > 255 || !topic_filter_valid(pattern, len))
        return false;
    if (strncmp(pattern, "$share/", 7) == 0)
        return false;
    for (;;) {
        const char *slash = strchr(level, '/');
        size_t n = slash != NULL ? (size_t)(slash - level) : strlen(level);

        if (memchr(level, '%', n) != NULL && !(n == 2 && level[0] == '%' && level[1] == 'd'))
            return false;
        if (slash == NULL)
            return true;
        level = slash + 1;
    }
}

static vigil_err acl_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("device db: \"%s\" failed: %s", sql, msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

/* Returns 1 when the schema is complete, 0 when not, -1 on error. */
static int schema_present(sqlite3 *db)
{
    sqlite3_stmt *stmt = NULL;
    int present = -1;

    if (sqlite3_prepare_v2(db, schema_check, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        present = sqlite3_column_int(stmt, 0) == 2;
    else
        log_error("device db: reading the schema failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    return present;
}

/* Adds what is missing inside one write transaction, so two processes
 * upgrading the same file at once do not both add the column. */
static vigil_err schema_upgrade(sqlite3 *db)
{
    vigil_err rc = acl_exec(db, "BEGIN IMMEDIATE");
    int present;

    if (rc != VIGIL_OK)
        return rc;
    rc = acl_exec(db, acl_schema);
    if (rc == VIGIL_OK) {
        present = schema_present(db);
        if (present < 0)
            rc = VIGIL_ERR_STORE;
        else if (present == 0)
            rc = acl_exec(db, "ALTER TABLE devices ADD COLUMN psk BLOB");
    }
    if (rc == VIGIL_OK)
        return acl_exec(db, "COMMIT");
    acl_exec(db, "ROLLBACK");
    return rc;
}

vigil_err acl_schema_ensure(struct device_db *db)
{
    sqlite3 *sql = device_db_handle(db);
    vigil_err rc = VIGIL_OK;
    int present;

    device_db_lock(db);
    present = schema_present(sql);
    if (present < 0)
        rc = VIGIL_ERR_STORE;
    else if (present == 0)
        rc = schema_upgrade(sql);
    device_db_unlock(db);
    return rc;
}

static bool rule_valid(const struct acl_rule *rule)
{
    if (strnlen(rule->subject, sizeof rule->subject) == sizeof rule->subject ||
        strnlen(rule->pattern, sizeof rule->pattern) == sizeof rule->pattern)
        return false;
    if (acl_action_text(rule->action) == NULL || !acl_pattern_valid(rule->pattern))
        return false;
    if (rule->subject_kind == ACL_SUBJECT_DEVICE)
        return device_id_valid(rule->subject);
    return rule->subject_kind == ACL_SUBJECT_ROLE && acl_role_valid(rule->subject);
}

static vigil_err rule_insert(struct device_db *db, struct acl_rule *rule)
{
    sqlite3 *sql = device_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;
    int step;

    if (sqlite3_prepare_v2(sql,
                           "INSERT INTO acl (subject_kind, subject, action, pattern, created_at) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)",
                           -1, &stmt, NULL) != SQLITE_OK) {
        log_error("device db: preparing the rule insert failed: %s", sqlite3_errmsg(sql));
        return VIGIL_ERR_STORE;
    }
    sqlite3_bind_text(stmt, 1, acl_subject_text(rule->subject_kind), -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, rule->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, acl_action_text(rule->action), -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, rule->pattern, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 5, rule->created_at);
    step = sqlite3_step(stmt);
    if (step == SQLITE_DONE) {
        rule->id = sqlite3_last_insert_rowid(sql);
    } else if (step == SQLITE_CONSTRAINT) {
        rc = VIGIL_ERR_EXISTS;
    } else {
        log_error("device db: adding a rule for %s failed: %s", rule->subject,
                  sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    return rc;
}

vigil_err acl_db_add(struct device_db *db, struct acl_rule *rule)
{
    vigil_err rc;

    if (!rule_valid(rule))
        return VIGIL_ERR_INVALID;
    rc = acl_schema_ensure(db);
    if (rc != VIGIL_OK)
        return rc;
    if (rule->created_at == 0)
        rule->created_at = vigil_time_now_us() / 1000000;
    device_db_lock(db);
    rc = rule_insert(db, rule);
    device_db_unlock(db);
    return rc;
}

/* A one-row UPDATE or DELETE with an int64 or a text at ?1 and a blob or
 * NULL at ?2. run_change returns VIGIL_ERR_NOT_FOUND when no row changed. */
struct change {
    const char *sql;
    const char *operation;      /* for the log */
    int64_t id;
    const char *text;           /* bound at ?1 instead of id when set */
    const uint8_t *blob;        /* bound at ?2 when set, else NULL is bound */
    size_t blob_len;
};

static vigil_err run_change(struct device_db *db, const struct change *c)
{
    sqlite3 *sql = device_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;

    device_db_lock(db);
    if (sqlite3_prepare_v2(sql, c->sql, -1, &stmt, NULL) != SQLITE_OK) {
        log_error("device db: preparing \"%s\" failed: %s", c->sql, sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    if (c->text != NULL)
        sqlite3_bind_text(stmt, 1, c->text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(stmt, 1, c->id);
    if (c->blob != NULL)
        sqlite3_bind_blob(stmt, 2, c->blob, (int)c->blob_len, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        log_error("device db: %s failed: %s", c->operation, sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
    } else if (sqlite3_changes(sql) == 0) {
        rc = VIGIL_ERR_NOT_FOUND;
    }

out:
    sqlite3_finalize(stmt);
    device_db_unlock(db);
    return rc;
}

vigil_err acl_db_remove(struct device_db *db, int64_t id)
{
    struct change c = {.sql = "DELETE FROM acl WHERE id = ?1", .operation = "removing a rule", .id = id};
    vigil_err rc = acl_schema_ensure(db);

    return rc != VIGIL_OK ? rc : run_change(db, &c);
}

/* Fills rule from columns id, subject_kind, subject, action, pattern,
 * created_at. Returns false for a row this version cannot read. */
static bool read_rule(sqlite3_stmt *stmt, struct acl_rule *rule)
{
    const char *subject = (const char *)sqlite3_column_text(stmt, 2);
    const char *pattern = (const char *)sqlite3_column_text(stmt, 4);

    memset(rule, 0, sizeof *rule);
    rule->id = sqlite3_column_int64(stmt, 0);
    rule->subject_kind = acl_subject_parse((const char *)sqlite3_column_text(stmt, 1));
    rule->action = acl_action_parse((const char *)sqlite3_column_text(stmt, 3));
    rule->created_at = sqlite3_column_int64(stmt, 5);
    if (subject == NULL || pattern == NULL || strlen(subject) >= sizeof rule->subject ||
        strlen(pattern) >= sizeof rule->pattern)
        return false;
    memcpy(rule->subject, subject, strlen(subject) + 1);
    memcpy(rule->pattern, pattern, strlen(pattern) + 1);
    return rule_valid(rule);
}

vigil_err acl_rules_each(struct device_db *db, void (*fn)(void *ctx, const struct acl_rule *),
                         void *ctx)
{
    sqlite3 *sql = device_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    struct acl_rule rule;
    vigil_err rc = VIGIL_OK;
    int step;

    device_db_lock(db);
    if (sqlite3_prepare_v2(sql,
                           "SELECT id, subject_kind, subject, action, pattern, created_at "
                           "FROM acl ORDER BY id",
                           -1, &stmt, NULL) != SQLITE_OK) {
        log_error("device db: preparing the rule list failed: %s", sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (read_rule(stmt, &rule))
            fn(ctx, &rule);
        else
            log_warn("device db: skipping access rule %lld, which is malformed; remove it with "
                     "'vigil acl remove %lld'",
                     (long long)rule.id, (long long)rule.id);
    }
    if (step != SQLITE_DONE) {
        log_error("device db: listing rules failed: %s", sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
    }

out:
    sqlite3_finalize(stmt);
    device_db_unlock(db);
    return rc;
}

vigil_err acl_db_list(struct device_db *db, void (*fn)(void *ctx, const struct acl_rule *),
                      void *ctx)
{
    vigil_err rc = acl_schema_ensure(db);

    return rc != VIGIL_OK ? rc : acl_rules_each(db, fn, ctx);
}

vigil_err device_db_set_psk(struct device_db *db, const char *id, const uint8_t *key, size_t len)
{
    struct change c = {.sql = "UPDATE devices SET psk = ?2 WHERE id = ?1",
                       .operation = "setting a PSK",
                       .text = id,
                       .blob = key,
                       .blob_len = len};
    vigil_err rc;

    if (key != NULL && (len < ACL_PSK_MIN || len > ACL_PSK_MAX))
        return VIGIL_ERR_INVALID;
    if (!device_id_valid(id))
        return VIGIL_ERR_NOT_FOUND;
    rc = acl_schema_ensure(db);
    return rc != VIGIL_OK ? rc : run_change(db, &c);
}

/* PRAGMA data_version changes only for commits of other connections, so
 * the rows changed through this handle are added. Both counts only grow,
 * so the sum changes whenever either does. */
uint64_t device_db_version(struct device_db *db)
{
    sqlite3 *sql = device_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    uint64_t version = 0;

    device_db_lock(db);
    if (sqlite3_prepare_v2(sql, "PRAGMA data_version", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        version = (uint64_t)sqlite3_column_int64(stmt, 0);
    else
        log_error("device db: reading data_version failed: %s", sqlite3_errmsg(sql));
    sqlite3_finalize(stmt);
    version += (uint64_t)sqlite3_total_changes64(sql);
    device_db_unlock(db);
    return version;
}
