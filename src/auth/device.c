/* Device inventory in its own SQLite database, with generated passwords. */
#include "auth/device.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "auth/password.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

/* PBKDF2 iterations for new password hashes. OWASP's Password Storage Cheat
 * Sheet (2023) recommends 600,000 for PBKDF2-HMAC-SHA256. We use fewer
 * because every password CONNECT pays one derivation on a libuv thread-pool
 * thread: 210,000 took about 50 ms against 145 ms for 600,000 on one core
 * of the development machine (an AMD EPYC), and a fleet reconnecting after
 * an outage multiplies that. The passwords are 24 random bytes (192 bits)
 * generated here and never chosen by people. An attacker holding a stolen
 * hash therefore cannot guess one at any iteration count, and the work
 * factor is defence in depth. */
#define DEVICE_PBKDF2_ITERATIONS 210000u

#define DEVICE_PASSWORD_BYTES 24 /* 32 characters of base64url */
#define DEVICE_HASH_TEXT_MAX 160

struct device_db {
    pthread_mutex_t mu; /* recursive, so a list callback may call back in */
    sqlite3 *db;
    uint32_t iterations;
    /* A well-formed hash that matches no password; verified against when
     * the id is unknown, so both outcomes cost one derivation. */
    char dummy_hash[DEVICE_HASH_TEXT_MAX];
};

static const char device_schema[] =
    "CREATE TABLE IF NOT EXISTS devices ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL DEFAULT 'device',"
    " type TEXT NOT NULL DEFAULT '',"
    " unit TEXT NOT NULL DEFAULT '',"
    " pw_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL)";

int device_id_valid(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return 0;
    for (; id[n] != '\0'; n++) {
        char c = id[n];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';

        if (!ok || n >= DEVICE_ID_MAX)
            return 0;
    }
    return n > 0;
}

/* Reads VIGIL_TEST_PBKDF2_ITERATIONS, which lets tests use cheap hashes.
 * Verification reads the count from each stored hash, so hashes made with
 * either setting keep working. */
static uint32_t device_iterations(void)
{
    const char *env = getenv("VIGIL_TEST_PBKDF2_ITERATIONS");
    unsigned long n;
    char *end;

    if (env == NULL || env[0] == '\0')
        return DEVICE_PBKDF2_ITERATIONS;
    errno = 0;
    n = strtoul(env, &end, 10);
    if (errno != 0 || *end != '\0' || n == 0 || n > DEVICE_PBKDF2_ITERATIONS) {
        log_warn("device db: ignoring VIGIL_TEST_PBKDF2_ITERATIONS=\"%s\": expected 1 to %u",
                 env, DEVICE_PBKDF2_ITERATIONS);
        return DEVICE_PBKDF2_ITERATIONS;
    }
    log_warn("device db: VIGIL_TEST_PBKDF2_ITERATIONS sets %lu PBKDF2 iterations; "
             "use it in tests only",
             n);
    return (uint32_t)n;
}

static vigil_err device_make_dummy(struct device_db *db)
{
    uint8_t salt[PASSWORD_SALT_LEN];
    uint8_t key[PASSWORD_KEY_LEN];
    char salt_text[32];
    char key_text[48];

    if (RAND_bytes(salt, sizeof salt) != 1 || RAND_bytes(key, sizeof key) != 1)
        return VIGIL_ERR_IO;
    password_b64_encode(salt, sizeof salt, salt_text, sizeof salt_text);
    password_b64_encode(key, sizeof key, key_text, sizeof key_text);
    snprintf(db->dummy_hash, sizeof db->dummy_hash, "pbkdf2-sha256$%u$%s$%s", db->iterations,
             salt_text, key_text);
    return VIGIL_OK;
}

static vigil_err device_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;

    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("device db: \"%s\" failed: %s", sql, msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

static vigil_err device_open_sqlite(const char *path, sqlite3 **out)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;

    if (sqlite3_open_v2(path, out, flags, NULL) != SQLITE_OK) {
        log_error("device db: open of %s failed: %s", path,
                  *out != NULL ? sqlite3_errmsg(*out) : "out of memory");
        return VIGIL_ERR_STORE;
    }
    /* The CLI may write from another process while the broker reads, so a
     * locked database is waited for rather than reported at once. */
    sqlite3_busy_timeout(*out, 5000);
    if (device_exec(*out, "PRAGMA journal_mode=WAL") != VIGIL_OK ||
        device_exec(*out, "PRAGMA synchronous=FULL") != VIGIL_OK ||
        device_exec(*out, device_schema) != VIGIL_OK)
        return VIGIL_ERR_STORE;
    return VIGIL_OK;
}

vigil_err device_db_open(const char *dir, struct device_db **out)
{
    struct device_db *db;
    pthread_mutexattr_t attr;
    char path[PATH_MAX];
    vigil_err rc;

    *out = NULL;
    if (snprintf(path, sizeof path, "%s/devices.db", dir) >= (int)sizeof path)
        return VIGIL_ERR_INVALID;
    db = vigil_calloc(1, sizeof *db);
    if (db == NULL)
        return VIGIL_ERR_NOMEM;
    db->iterations = device_iterations();
    rc = device_make_dummy(db);
    if (rc == VIGIL_OK)
        rc = device_open_sqlite(path, &db->db);
    if (rc != VIGIL_OK) {
        sqlite3_close(db->db);
        vigil_free(db);
        return rc;
    }
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&db->mu, &attr);
    pthread_mutexattr_destroy(&attr);
    *out = db;
    return VIGIL_OK;
}

void device_db_close(struct device_db *db)
{
    if (db == NULL)
        return;
    if (sqlite3_close(db->db) != SQLITE_OK)
        log_error("device db: close failed: %s", sqlite3_errmsg(db->db));
    pthread_mutex_destroy(&db->mu);
    vigil_free(db);
}

static void copy_column(char *dst, size_t cap, sqlite3_stmt *stmt, int col)
{
    const unsigned char *text = sqlite3_column_text(stmt, col);

    snprintf(dst, cap, "%s", text != NULL ? (const char *)text : "");
}

/* Fills info from columns id, role, type, unit, created_at at 0..4. */
static void read_info(sqlite3_stmt *stmt, struct device_info *info)
{
    memset(info, 0, sizeof *info);
    copy_column(info->id, sizeof info->id, stmt, 0);
    copy_column(info->role, sizeof info->role, stmt, 1);
    copy_column(info->type, sizeof info->type, stmt, 2);
    copy_column(info->unit, sizeof info->unit, stmt, 3);
    info->created_at = sqlite3_column_int64(stmt, 4);
}

static sqlite3_stmt *device_prepare(struct device_db *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;

    if (sqlite3_prepare_v2(db->db, sql, -1, &stmt, NULL) != SQLITE_OK)
        log_error("device db: preparing \"%s\" failed: %s", sql, sqlite3_errmsg(db->db));
    return stmt;
}

/* Looks id up; on VIGIL_OK fills info and, when hash is not NULL, copies
 * the stored password hash into it. */
static vigil_err device_lookup(struct device_db *db, const char *id, struct device_info *info,
                               char *hash, size_t hash_cap)
{
    sqlite3_stmt *stmt;
    vigil_err rc;
    int step;

    pthread_mutex_lock(&db->mu);
    stmt = device_prepare(db, "SELECT id, role, type, unit, created_at, pw_hash "
                              "FROM devices WHERE id = ?1");
    if (stmt == NULL) {
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        read_info(stmt, info);
        if (hash != NULL)
            copy_column(hash, hash_cap, stmt, 5);
        rc = VIGIL_OK;
    } else if (step == SQLITE_DONE) {
        rc = VIGIL_ERR_NOT_FOUND;
    } else {
        log_error("device db: lookup of %s failed: %s", id, sqlite3_errmsg(db->db));
        rc = VIGIL_ERR_STORE;
    }

out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

vigil_err device_db_get(struct device_db *db, const char *id, struct device_info *info)
{
    if (!device_id_valid(id))
        return VIGIL_ERR_NOT_FOUND;
    return device_lookup(db, id, info, NULL, 0);
}

vigil_err device_db_verify(struct device_db *db, const char *id, const uint8_t *password,
                           size_t password_len, struct device_info *info)
{
    char hash[DEVICE_HASH_TEXT_MAX];
    struct device_info found;
    vigil_err lookup = VIGIL_ERR_NOT_FOUND;
    vigil_err rc;

    if (device_id_valid(id))
        lookup = device_lookup(db, id, &found, hash, sizeof hash);
    if (lookup != VIGIL_OK) {
        /* Same cost as a real check, so timing does not reveal the id. */
        password_verify(password, password_len, db->dummy_hash);
        return lookup;
    }
    rc = password_verify(password, password_len, hash);
    OPENSSL_cleanse(hash, sizeof hash);
    if (rc == VIGIL_ERR_INVALID) {
        log_error("device db: stored password hash of %s is malformed; reset its password", id);
        return VIGIL_ERR_AUTH;
    }
    if (rc == VIGIL_OK && info != NULL)
        *info = found;
    return rc;
}

/* Checks that the id is valid and every text field is NUL-terminated
 * within its array. */
static int info_valid(const struct device_info *info)
{
    return device_id_valid(info->id) && strnlen(info->role, sizeof info->role) < sizeof info->role &&
           strnlen(info->type, sizeof info->type) < sizeof info->type &&
           strnlen(info->unit, sizeof info->unit) < sizeof info->unit;
}

static vigil_err device_insert(struct device_db *db, const struct device_info *info,
                               const char *hash)
{
    sqlite3_stmt *stmt;
    int64_t created = info->created_at != 0 ? info->created_at : vigil_time_now_us() / 1000000;
    vigil_err rc = VIGIL_OK;
    int step;

    pthread_mutex_lock(&db->mu);
    stmt = device_prepare(db, "INSERT INTO devices (id, role, type, unit, pw_hash, created_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (stmt == NULL) {
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    sqlite3_bind_text(stmt, 1, info->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, info->role[0] != '\0' ? info->role : "device", -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 3, info->type, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 4, info->unit, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 5, hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 6, created);
    step = sqlite3_step(stmt);
    if (step == SQLITE_CONSTRAINT) {
        rc = VIGIL_ERR_EXISTS;
    } else if (step != SQLITE_DONE) {
        log_error("device db: insert of %s failed: %s", info->id, sqlite3_errmsg(db->db));
        rc = VIGIL_ERR_STORE;
    }

out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

vigil_err device_db_add(struct device_db *db, const struct device_info *info, char *password_out,
                        size_t password_cap)
{
    uint8_t raw[DEVICE_PASSWORD_BYTES];
    char hash[DEVICE_HASH_TEXT_MAX];
    struct device_info existing;
    vigil_err rc;

    if (!info_valid(info) || password_cap < (DEVICE_PASSWORD_BYTES * 4 + 2) / 3 + 1)
        return VIGIL_ERR_INVALID;
    /* Checked first so that a taken id does not cost a derivation; the
     * primary key still decides when two writers race. */
    rc = device_lookup(db, info->id, &existing, NULL, 0);
    if (rc != VIGIL_ERR_NOT_FOUND)
        return rc == VIGIL_OK ? VIGIL_ERR_EXISTS : rc;
    if (RAND_bytes(raw, sizeof raw) != 1)
        return VIGIL_ERR_IO;
    password_b64_encode(raw, sizeof raw, password_out, password_cap);
    rc = password_hash((const uint8_t *)password_out, strlen(password_out), db->iterations, hash,
                       sizeof hash);
    if (rc == VIGIL_OK)
        rc = device_insert(db, info, hash);
    if (rc != VIGIL_OK)
        OPENSSL_cleanse(password_out, password_cap);
    OPENSSL_cleanse(raw, sizeof raw);
    return rc;
}

vigil_err device_db_remove(struct device_db *db, const char *id)
{
    sqlite3_stmt *stmt;
    vigil_err rc = VIGIL_OK;

    if (!device_id_valid(id))
        return VIGIL_ERR_NOT_FOUND;
    pthread_mutex_lock(&db->mu);
    stmt = device_prepare(db, "DELETE FROM devices WHERE id = ?1");
    if (stmt == NULL) {
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        log_error("device db: removal of %s failed: %s", id, sqlite3_errmsg(db->db));
        rc = VIGIL_ERR_STORE;
    } else if (sqlite3_changes(db->db) == 0) {
        rc = VIGIL_ERR_NOT_FOUND;
    }

out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

vigil_err device_db_list(struct device_db *db, void (*fn)(void *ctx, const struct device_info *),
                         void *ctx)
{
    sqlite3_stmt *stmt;
    struct device_info info;
    vigil_err rc = VIGIL_OK;
    int step;

    pthread_mutex_lock(&db->mu);
    stmt = device_prepare(db, "SELECT id, role, type, unit, created_at FROM devices ORDER BY id");
    if (stmt == NULL) {
        rc = VIGIL_ERR_STORE;
        goto out;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        read_info(stmt, &info);
        fn(ctx, &info);
    }
    if (step != SQLITE_DONE) {
        log_error("device db: listing devices failed: %s", sqlite3_errmsg(db->db));
        rc = VIGIL_ERR_STORE;
    }

out:
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&db->mu);
    return rc;
}

sqlite3 *device_db_handle(struct device_db *db)
{
    return db->db;
}

void device_db_lock(struct device_db *db)
{
    pthread_mutex_lock(&db->mu);
}

void device_db_unlock(struct device_db *db)
{
    pthread_mutex_unlock(&db->mu);
}
