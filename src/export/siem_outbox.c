/* The durable outbox of one SIEM destination: an SQLite WAL file of
 * formatted messages, appended by the exporter and deleted once the
 * receiver accepted them. */
#include "export/siem.h"

#include <sqlite3.h>
#include <string.h>

#include "core/alloc.h"
#include "core/log.h"

/* AUTOINCREMENT keeps sequence numbers growing after the table was emptied,
 * so an id is never reused and receivers can deduplicate by it. */
static const char SCHEMA[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS outbox("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_us INTEGER NOT NULL,"
    " payload BLOB NOT NULL);";

struct siem_outbox {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *insert, *select, *delete;
    uint64_t max_rows;
    uint64_t rows;      /* rows stored, including the open transaction */
    uint64_t next_seq;
    char *buf;          /* SIEM_MSG_MAX bytes for formatting */
};

static vigil_err db_fail(struct siem_outbox *ob, const char *what)
{
    log_error("siem outbox %s: %s failed: %s", ob->path, what, sqlite3_errmsg(ob->db));
    return VIGIL_ERR_STORE;
}

static vigil_err query_u64(struct siem_outbox *ob, const char *sql, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    vigil_err rc = VIGIL_OK;
    int r;

    *out = 0;
    if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(ob, "prepare");
    r = sqlite3_step(st);
    if (r == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    else if (r != SQLITE_DONE)
        rc = db_fail(ob, "query");
    sqlite3_finalize(st);
    return rc;
}

/* Loads the row count and the next sequence number. */
static vigil_err load_state(struct siem_outbox *ob)
{
    uint64_t last = 0, max_seq = 0;
    vigil_err rc;

    rc = query_u64(ob, "SELECT count(*) FROM outbox", &ob->rows);
    if (rc == VIGIL_OK)
        rc = query_u64(ob, "SELECT seq FROM sqlite_sequence WHERE name='outbox'", &last);
    if (rc == VIGIL_OK)
        rc = query_u64(ob, "SELECT coalesce(max(seq),0) FROM outbox", &max_seq);
    ob->next_seq = (last > max_seq ? last : max_seq) + 1;
    return rc;
}

static vigil_err prepare_all(struct siem_outbox *ob)
{
    if (sqlite3_prepare_v2(ob->db, "INSERT INTO outbox(seq, created_us, payload) VALUES(?,?,?)",
                           -1, &ob->insert, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ob->db, "SELECT seq, created_us, payload FROM outbox WHERE seq > ? "
                           "ORDER BY seq LIMIT ?", -1, &ob->select, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ob->db, "DELETE FROM outbox WHERE seq <= ?", -1, &ob->delete,
                           NULL) != SQLITE_OK)
        return db_fail(ob, "prepare");
    return VIGIL_OK;
}

vigil_err siem_outbox_open(const char *path, uint64_t max_rows, struct siem_outbox **out)
{
    struct siem_outbox *ob = vigil_calloc(1, sizeof *ob);
    vigil_err rc = VIGIL_ERR_NOMEM;

    *out = NULL;
    if (ob == NULL)
        return VIGIL_ERR_NOMEM;
    ob->max_rows = max_rows;
    ob->path = vigil_strdup(path);
    ob->buf = vigil_malloc(SIEM_MSG_MAX);
    if (ob->path == NULL || ob->buf == NULL)
        goto fail;
    rc = VIGIL_ERR_STORE;
    if (sqlite3_open_v2(path, &ob->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        db_fail(ob, "open");
        goto fail;
    }
    sqlite3_busy_timeout(ob->db, 5000);
    if (sqlite3_exec(ob->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        db_fail(ob, "create schema");
        goto fail;
    }
    rc = prepare_all(ob);
    if (rc == VIGIL_OK)
        rc = load_state(ob);
    if (rc != VIGIL_OK)
        goto fail;
    *out = ob;
    return VIGIL_OK;

fail:
    siem_outbox_close(ob);
    return rc;
}

void siem_outbox_close(struct siem_outbox *ob)
{
    if (ob == NULL)
        return;
    sqlite3_finalize(ob->insert);
    sqlite3_finalize(ob->select);
    sqlite3_finalize(ob->delete);
    sqlite3_close(ob->db);
    vigil_free(ob->buf);
    vigil_free(ob->path);
    vigil_free(ob);
}

vigil_err siem_outbox_begin(struct siem_outbox *ob)
{
    if (sqlite3_exec(ob->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(ob, "begin");
    return VIGIL_OK;
}

vigil_err siem_outbox_commit(struct siem_outbox *ob)
{
    if (sqlite3_exec(ob->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return VIGIL_OK;
    db_fail(ob, "commit");
    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL);
    load_state(ob);
    return VIGIL_ERR_STORE;
}

vigil_err siem_outbox_append(struct siem_outbox *ob, int64_t created_us,
                             siem_outbox_format_fn format, void *ctx, uint64_t *seq_out)
{
    uint64_t seq = ob->next_seq;
    int len;
    int r;

    if (ob->rows >= ob->max_rows)
        return VIGIL_ERR_LIMIT;
    len = format(ctx, seq, ob->buf, SIEM_MSG_MAX);
    if (len < 0)
        return VIGIL_ERR_INVALID;
    sqlite3_reset(ob->insert);
    sqlite3_bind_int64(ob->insert, 1, (sqlite3_int64)seq);
    sqlite3_bind_int64(ob->insert, 2, created_us);
    sqlite3_bind_blob(ob->insert, 3, ob->buf, len, SQLITE_STATIC);
    r = sqlite3_step(ob->insert);
    sqlite3_clear_bindings(ob->insert);
    if (r != SQLITE_DONE)
        return db_fail(ob, "insert");
    ob->next_seq++;
    ob->rows++;
    if (seq_out != NULL)
        *seq_out = seq;
    return VIGIL_OK;
}

static vigil_err copy_row(sqlite3_stmt *st, struct siem_outbox_row *row)
{
    const void *blob = sqlite3_column_blob(st, 2);
    int len = sqlite3_column_bytes(st, 2);

    row->seq = (uint64_t)sqlite3_column_int64(st, 0);
    row->created_us = sqlite3_column_int64(st, 1);
    row->len = (size_t)len;
    row->payload = vigil_malloc(row->len + 1);
    if (row->payload == NULL)
        return VIGIL_ERR_NOMEM;
    if (len > 0)
        memcpy(row->payload, blob, row->len);
    row->payload[row->len] = '\0';
    return VIGIL_OK;
}

vigil_err siem_outbox_read(struct siem_outbox *ob, uint64_t after, size_t max,
                           struct siem_outbox_row *rows, size_t *n)
{
    vigil_err rc = VIGIL_OK;
    int r = SQLITE_DONE;

    *n = 0;
    sqlite3_reset(ob->select);
    sqlite3_bind_int64(ob->select, 1, (sqlite3_int64)after);
    sqlite3_bind_int64(ob->select, 2, (sqlite3_int64)max);
    while (*n < max && (r = sqlite3_step(ob->select)) == SQLITE_ROW) {
        rc = copy_row(ob->select, &rows[*n]);
        if (rc != VIGIL_OK)
            break;
        (*n)++;
    }
    if (rc == VIGIL_OK && *n < max && r != SQLITE_DONE)
        rc = db_fail(ob, "select");
    sqlite3_reset(ob->select);
    if (rc != VIGIL_OK) {
        siem_outbox_rows_free(rows, *n);
        *n = 0;
    }
    return rc;
}

void siem_outbox_rows_free(struct siem_outbox_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        vigil_free(rows[i].payload);
        rows[i].payload = NULL;
    }
}

vigil_err siem_outbox_delete_upto(struct siem_outbox *ob, uint64_t upto)
{
    int changes;

    sqlite3_reset(ob->delete);
    sqlite3_bind_int64(ob->delete, 1, (sqlite3_int64)upto);
    if (sqlite3_step(ob->delete) != SQLITE_DONE) {
        sqlite3_reset(ob->delete);
        return db_fail(ob, "delete");
    }
    sqlite3_reset(ob->delete);
    changes = sqlite3_changes(ob->db);
    ob->rows = ob->rows >= (uint64_t)changes ? ob->rows - (uint64_t)changes : 0;
    return VIGIL_OK;
}

uint64_t siem_outbox_count(struct siem_outbox *ob)
{
    return ob->rows;
}

uint64_t siem_outbox_last_seq(struct siem_outbox *ob)
{
    return ob->next_seq - 1;
}
