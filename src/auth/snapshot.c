/* An immutable copy of the inventory (devices, PSKs, access rules) that the
 * I/O loop reads without touching SQLite. */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "auth/acl.h"
#include "auth/acl_internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/map.h"

/* "d:" or "r:", the subject, and the NUL. */
#define SUBJECT_KEY_MAX (2 + DEVICE_ID_MAX + 1)

struct snap_device {
    struct device_info info;
    size_t psk_len;             /* 0 when the device has no PSK */
    uint8_t psk[ACL_PSK_MAX];
};

struct snap_pattern {
    char action;                /* enum acl_action */
    char *pattern;              /* owned */
};

/* The patterns granted to one device or role by stored rules. */
struct snap_subject {
    struct snap_pattern *items; /* owned */
    size_t n;
    size_t cap;
};

struct device_snapshot {
    struct vigil_map devices;   /* id -> struct snap_device *, owned */
    struct vigil_map subjects;  /* "d:<id>" or "r:<role>" -> struct snap_subject *, owned */
};

static size_t subject_key(char kind, const char *subject, char *out)
{
    int n = snprintf(out, SUBJECT_KEY_MAX, "%c:%s", kind, subject);

    return n > 0 && n < SUBJECT_KEY_MAX ? (size_t)n : 0;
}

void device_snapshot_free(struct device_snapshot *snap)
{
    struct vigil_map_slot *slot;
    size_t pos = 0;

    if (snap == NULL)
        return;
    while ((slot = vigil_map_next(&snap->devices, &pos)) != NULL) {
        OPENSSL_cleanse(slot->value, sizeof(struct snap_device));
        vigil_free(slot->value);
    }
    pos = 0;
    while ((slot = vigil_map_next(&snap->subjects, &pos)) != NULL) {
        struct snap_subject *s = slot->value;

        for (size_t i = 0; i < s->n; i++)
            vigil_free(s->items[i].pattern);
        vigil_free(s->items);
        vigil_free(s);
    }
    vigil_map_free(&snap->devices);
    vigil_map_free(&snap->subjects);
    vigil_free(snap);
}

static void copy_text(char *dst, size_t cap, sqlite3_stmt *stmt, int col)
{
    const unsigned char *text = sqlite3_column_text(stmt, col);

    snprintf(dst, cap, "%s", text != NULL ? (const char *)text : "");
}

/* Fills d from columns id, role, type, unit, created_at, psk. A PSK of a
 * length that device_db_set_psk never writes is ignored. */
static void read_device(sqlite3_stmt *stmt, struct snap_device *d)
{
    int psk_len = sqlite3_column_bytes(stmt, 5);
    const void *psk = sqlite3_column_blob(stmt, 5);

    copy_text(d->info.id, sizeof d->info.id, stmt, 0);
    copy_text(d->info.role, sizeof d->info.role, stmt, 1);
    copy_text(d->info.type, sizeof d->info.type, stmt, 2);
    copy_text(d->info.unit, sizeof d->info.unit, stmt, 3);
    d->info.created_at = sqlite3_column_int64(stmt, 4);
    if (psk != NULL && psk_len >= ACL_PSK_MIN && psk_len <= ACL_PSK_MAX) {
        memcpy(d->psk, psk, (size_t)psk_len);
        d->psk_len = (size_t)psk_len;
    } else if (psk != NULL) {
        log_warn("device db: ignoring the PSK of %s: %d bytes, expected %d to %d", d->info.id,
                 psk_len, ACL_PSK_MIN, ACL_PSK_MAX);
    }
}

static vigil_err add_device(struct device_snapshot *snap, sqlite3_stmt *stmt)
{
    struct snap_device *d = vigil_calloc(1, sizeof *d);

    if (d == NULL)
        return VIGIL_ERR_NOMEM;
    read_device(stmt, d);
    if (!device_id_valid(d->info.id)) {
        log_warn("device db: skipping a device row with an invalid id");
        OPENSSL_cleanse(d, sizeof *d);
        vigil_free(d);
        return VIGIL_OK;
    }
    if (vigil_map_put(&snap->devices, d->info.id, strlen(d->info.id), d) != VIGIL_OK) {
        OPENSSL_cleanse(d, sizeof *d);
        vigil_free(d);
        return VIGIL_ERR_NOMEM;
    }
    return VIGIL_OK;
}

static vigil_err load_devices(sqlite3 *sql, struct device_snapshot *snap)
{
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;
    int step = SQLITE_DONE;

    if (sqlite3_prepare_v2(sql, "SELECT id, role, type, unit, created_at, psk FROM devices", -1,
                           &stmt, NULL) != SQLITE_OK) {
        log_error("device db: preparing the device snapshot failed: %s", sqlite3_errmsg(sql));
        return VIGIL_ERR_STORE;
    }
    while (rc == VIGIL_OK && (step = sqlite3_step(stmt)) == SQLITE_ROW)
        rc = add_device(snap, stmt);
    if (rc == VIGIL_OK && step != SQLITE_DONE) {
        log_error("device db: reading devices failed: %s", sqlite3_errmsg(sql));
        rc = VIGIL_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static struct snap_subject *subject_get_or_add(struct device_snapshot *snap, const char *key,
                                               size_t len)
{
    struct snap_subject *s = vigil_map_get(&snap->subjects, key, len);

    if (s != NULL)
        return s;
    s = vigil_calloc(1, sizeof *s);
    if (s != NULL && vigil_map_put(&snap->subjects, key, len, s) != VIGIL_OK) {
        vigil_free(s);
        s = NULL;
    }
    return s;
}

static vigil_err subject_append(struct snap_subject *s, char action, const char *pattern)
{
    char *copy;

    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 4;
        struct snap_pattern *items = vigil_realloc(s->items, cap * sizeof *items);

        if (items == NULL)
            return VIGIL_ERR_NOMEM;
        s->items = items;
        s->cap = cap;
    }
    copy = vigil_strdup(pattern);
    if (copy == NULL)
        return VIGIL_ERR_NOMEM;
    s->items[s->n++] = (struct snap_pattern){action, copy};
    return VIGIL_OK;
}

struct rule_load {
    struct device_snapshot *snap;
    vigil_err rc;               /* first failure; later rules are skipped */
};

static void add_rule(void *ctx, const struct acl_rule *rule)
{
    struct rule_load *load = ctx;
    char key[SUBJECT_KEY_MAX];
    size_t len = subject_key(rule->subject_kind, rule->subject, key);
    struct snap_subject *s;

    if (load->rc != VIGIL_OK || len == 0)
        return;
    s = subject_get_or_add(load->snap, key, len);
    load->rc = s != NULL ? subject_append(s, rule->action, rule->pattern) : VIGIL_ERR_NOMEM;
}

/* Reads devices and rules in one read transaction, so the snapshot never
 * mixes states from before and after a concurrent commit. */
static vigil_err load_all(struct device_db *db, struct device_snapshot *snap)
{
    sqlite3 *sql = device_db_handle(db);
    struct rule_load load = {snap, VIGIL_OK};
    char *msg = NULL;
    vigil_err rc;

    if (sqlite3_exec(sql, "BEGIN", NULL, NULL, &msg) != SQLITE_OK) {
        log_error("device db: starting the snapshot read failed: %s", msg);
        sqlite3_free(msg);
        return VIGIL_ERR_STORE;
    }
    rc = load_devices(sql, snap);
    if (rc == VIGIL_OK)
        rc = acl_rules_each(db, add_rule, &load);
    if (rc == VIGIL_OK)
        rc = load.rc;
    /* A read transaction has nothing to undo, so COMMIT ends it either way. */
    if (sqlite3_exec(sql, "COMMIT", NULL, NULL, NULL) != SQLITE_OK && rc == VIGIL_OK)
        rc = VIGIL_ERR_STORE;
    return rc;
}

vigil_err device_snapshot_load(struct device_db *db, struct device_snapshot **out)
{
    struct device_snapshot *snap;
    vigil_err rc;

    *out = NULL;
    rc = acl_schema_ensure(db);
    if (rc != VIGIL_OK)
        return rc;
    snap = vigil_calloc(1, sizeof *snap);
    if (snap == NULL)
        return VIGIL_ERR_NOMEM;
    vigil_map_init(&snap->devices);
    vigil_map_init(&snap->subjects);
    device_db_lock(db);
    rc = load_all(db, snap);
    device_db_unlock(db);
    if (rc != VIGIL_OK) {
        device_snapshot_free(snap);
        return rc;
    }
    *out = snap;
    return VIGIL_OK;
}

static const struct snap_device *find_device(const struct device_snapshot *snap, const char *id)
{
    if (id == NULL)
        return NULL;
    return vigil_map_get(&snap->devices, id, strnlen(id, DEVICE_ID_MAX + 1));
}

const struct device_info *device_snapshot_find(const struct device_snapshot *snap, const char *id)
{
    const struct snap_device *d = find_device(snap, id);

    return d != NULL ? &d->info : NULL;
}

size_t device_snapshot_psk(const struct device_snapshot *snap, const char *id, uint8_t *key,
                           size_t cap)
{
    const struct snap_device *d = find_device(snap, id);

    /* A key that does not fit is not cut: a shorter key would fail the
     * handshake in a way that is harder to explain. */
    if (d == NULL || d->psk_len == 0 || d->psk_len > cap)
        return 0;
    memcpy(key, d->psk, d->psk_len);
    return d->psk_len;
}

static void each_pattern(const struct device_snapshot *snap, char kind, const char *subject,
                         char action, void (*fn)(void *ctx, const char *pattern), void *ctx)
{
    char key[SUBJECT_KEY_MAX];
    size_t len;
    const struct snap_subject *s;

    if (subject == NULL)
        return;
    len = subject_key(kind, subject, key);
    s = len > 0 ? vigil_map_get(&snap->subjects, key, len) : NULL;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (s->items[i].action == action)
            fn(ctx, s->items[i].pattern);
}

void device_snapshot_patterns(const struct device_snapshot *snap, const char *device,
                              const char *role, char action,
                              void (*fn)(void *ctx, const char *pattern), void *ctx)
{
    each_pattern(snap, ACL_SUBJECT_DEVICE, device, action, fn, ctx);
    each_pattern(snap, ACL_SUBJECT_ROLE, role, action, fn, ctx);
}

size_t device_snapshot_count(const struct device_snapshot *snap)
{
    return snap->devices.count;
}
