/* Reads the stored broker state back at startup. */
#include "core/log.h"
#include "store/store_internal.h"

/* Non-NULL stand-in for empty blobs and NULL text handed to callbacks. */
static const uint8_t load_empty[1];

static const char *col_text(sqlite3_stmt *stmt, int col)
{
    const unsigned char *s = sqlite3_column_text(stmt, col);

    return s != NULL ? (const char *)s : "";
}

/* Returns the blob in column col and stores its length in len. */
static const uint8_t *col_blob(sqlite3_stmt *stmt, int col, uint32_t *len)
{
    const uint8_t *p = sqlite3_column_blob(stmt, col);

    *len = (uint32_t)sqlite3_column_bytes(stmt, col);
    return p != NULL ? p : load_empty;
}

typedef void (*load_row_fn)(sqlite3_stmt *stmt, const struct store_load_cb *cb, void *ctx);

/* Runs sql and calls row for every result row. */
static vigil_err load_rows(struct store *st, const char *sql, load_row_fn row,
                           const struct store_load_cb *cb, void *ctx)
{
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;
    int step;

    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        store_log_sqlite(st, sql);
        return VIGIL_ERR_STORE;
    }
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW)
        row(stmt, cb, ctx);
    if (step != SQLITE_DONE) {
        store_log_sqlite(st, sql);
        rc = VIGIL_ERR_STORE;
    }
    sqlite3_finalize(stmt);
    return rc;
}

static void row_session(sqlite3_stmt *s, const struct store_load_cb *cb, void *ctx)
{
    cb->session(ctx, col_text(s, 0), col_text(s, 4), (uint8_t)sqlite3_column_int(s, 1),
                (uint32_t)sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3));
}

static void row_sub(sqlite3_stmt *s, const struct store_load_cb *cb, void *ctx)
{
    cb->sub(ctx, col_text(s, 0), col_text(s, 1), (uint8_t)sqlite3_column_int(s, 2),
            (uint32_t)sqlite3_column_int64(s, 3));
}

static void row_retained(sqlite3_stmt *s, const struct store_load_cb *cb, void *ctx)
{
    uint32_t payload_len, props_len;
    const uint8_t *payload = col_blob(s, 1, &payload_len);
    const uint8_t *props = col_blob(s, 2, &props_len);

    cb->retained(ctx, col_text(s, 0), payload, payload_len, props, props_len,
                 (uint8_t)sqlite3_column_int(s, 3), sqlite3_column_int64(s, 4));
}

static void row_queued(sqlite3_stmt *s, const struct store_load_cb *cb, void *ctx)
{
    uint32_t payload_len, props_len;
    const uint8_t *payload = col_blob(s, 4, &payload_len);
    const uint8_t *props = col_blob(s, 5, &props_len);

    cb->queued(ctx, col_text(s, 0), (uint64_t)sqlite3_column_int64(s, 1),
               (uint64_t)sqlite3_column_int64(s, 2), col_text(s, 3), payload, payload_len, props,
               props_len, (uint8_t)sqlite3_column_int(s, 6), (uint8_t)sqlite3_column_int(s, 7),
               sqlite3_column_int64(s, 8), (uint8_t)sqlite3_column_int(s, 9),
               (uint8_t)sqlite3_column_int(s, 10), (uint16_t)sqlite3_column_int(s, 11));
}

static void row_inqos2(sqlite3_stmt *s, const struct store_load_cb *cb, void *ctx)
{
    cb->inqos2(ctx, col_text(s, 0), (uint16_t)sqlite3_column_int(s, 1));
}

/* Deletes messages no queue entry refers to and queue entries whose message
 * is missing; neither can be delivered. */
static vigil_err load_collect_garbage(struct store *st)
{
    static const char sql[] =
        "BEGIN IMMEDIATE;"
        "DELETE FROM messages WHERE NOT EXISTS "
        "(SELECT 1 FROM queue WHERE queue.msg_id = messages.id);"
        "DELETE FROM queue WHERE NOT EXISTS "
        "(SELECT 1 FROM messages WHERE messages.id = queue.msg_id);"
        "COMMIT;";

    if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        store_log_sqlite(st, "deleting unreferenced messages");
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return VIGIL_ERR_STORE;
    }
    return VIGIL_OK;
}

static vigil_err load_max(struct store *st, const char *sql, uint64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    vigil_err rc = VIGIL_OK;

    if (out == NULL)
        return VIGIL_OK;
    if (sqlite3_prepare_v2(st->db, sql, -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        store_log_sqlite(st, sql);
        rc = VIGIL_ERR_STORE;
    } else {
        *out = (uint64_t)sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return rc;
}

static vigil_err load_all(struct store *st, const struct store_load_cb *cb, void *ctx,
                          uint64_t *max_msg_id, uint64_t *max_seq)
{
    vigil_err rc = VIGIL_OK;

    if (rc == VIGIL_OK && cb->session != NULL)
        rc = load_rows(st,
                       "SELECT client_id, version, session_expiry, disconnected_at, device "
                       "FROM sessions ORDER BY client_id",
                       row_session, cb, ctx);
    if (rc == VIGIL_OK && cb->sub != NULL)
        rc = load_rows(st,
                       "SELECT client_id, filter, options, sub_id FROM subs "
                       "ORDER BY client_id, filter",
                       row_sub, cb, ctx);
    if (rc == VIGIL_OK && cb->retained != NULL)
        rc = load_rows(st,
                       "SELECT topic, payload, props, qos, expiry_at FROM retained "
                       "ORDER BY topic",
                       row_retained, cb, ctx);
    if (rc == VIGIL_OK && cb->queued != NULL)
        rc = load_rows(st,
                       "SELECT q.client_id, q.seq, q.msg_id, m.topic, m.payload, m.props, "
                       "m.qos, m.retain, m.expiry_at, q.qos, q.state, q.packet_id "
                       "FROM queue q JOIN messages m ON m.id = q.msg_id "
                       "ORDER BY q.client_id, q.seq",
                       row_queued, cb, ctx);
    if (rc == VIGIL_OK && cb->inqos2 != NULL)
        rc = load_rows(st,
                       "SELECT client_id, packet_id FROM inqos2 ORDER BY client_id, packet_id",
                       row_inqos2, cb, ctx);
    if (rc == VIGIL_OK)
        rc = load_max(st, "SELECT COALESCE(MAX(id), 0) FROM messages", max_msg_id);
    if (rc == VIGIL_OK)
        rc = load_max(st, "SELECT COALESCE(MAX(seq), 0) FROM queue", max_seq);
    return rc;
}

vigil_err store_load(struct store *st, const struct store_load_cb *cb, void *ctx,
                     uint64_t *max_msg_id, uint64_t *max_seq)
{
    static const struct store_load_cb none = {0};
    vigil_err rc;

    if (cb == NULL)
        cb = &none;
    pthread_mutex_lock(&st->db_mu);
    rc = load_collect_garbage(st);
    /* One read transaction gives every callback the same snapshot. */
    if (rc == VIGIL_OK && sqlite3_exec(st->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        store_log_sqlite(st, "starting the load transaction");
        rc = VIGIL_ERR_STORE;
    }
    if (rc == VIGIL_OK) {
        rc = load_all(st, cb, ctx, max_msg_id, max_seq);
        sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
    }
    pthread_mutex_unlock(&st->db_mu);
    return rc;
}
