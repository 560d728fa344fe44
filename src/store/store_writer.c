/* The store's writer thread: gathers queued ops for one group-commit
 * window, applies them in one transaction and hands them back to the loop
 * thread for their done callbacks. */
#include <errno.h>
#include <time.h>

#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"
#include "store/store_internal.h"

/* Non-NULL stand-in for an empty blob, so SQLite stores an empty BLOB
 * rather than NULL. */
static const uint8_t store_empty_blob[1];

static void bind_text(sqlite3_stmt *stmt, int idx, const char *s)
{
    sqlite3_bind_text(stmt, idx, s != NULL ? s : "", -1, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *stmt, int idx, const uint8_t *p, uint32_t len)
{
    sqlite3_bind_blob(stmt, idx, p != NULL ? p : store_empty_blob, p != NULL ? (int)len : 0,
                      SQLITE_STATIC);
}

/* Steps stmt to completion and resets it for reuse. */
static vigil_err run(struct store *st, enum store_stmt which)
{
    sqlite3_stmt *stmt = st->stmt[which];
    int step = sqlite3_step(stmt);
    vigil_err rc = step == SQLITE_DONE ? VIGIL_OK : VIGIL_ERR_STORE;

    if (rc != VIGIL_OK)
        store_log_sqlite(st, sqlite3_sql(stmt));
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc;
}

static vigil_err apply_msg_put(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_MSG_PUT];

    sqlite3_bind_int64(stmt, 1, (sqlite3_int64)op->msg_id);
    bind_text(stmt, 2, op->topic);
    bind_blob(stmt, 3, op->payload, op->payload_len);
    bind_blob(stmt, 4, op->props, op->props_len);
    sqlite3_bind_int(stmt, 5, op->qos);
    sqlite3_bind_int(stmt, 6, op->retain);
    sqlite3_bind_int64(stmt, 7, op->expiry_at);
    return run(st, STMT_MSG_PUT);
}

static vigil_err apply_queue_put(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_QUEUE_PUT];

    bind_text(stmt, 1, op->client_id);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)op->seq);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)op->msg_id);
    sqlite3_bind_int(stmt, 4, op->qos);
    sqlite3_bind_int(stmt, 5, op->state);
    sqlite3_bind_int(stmt, 6, op->packet_id);
    return run(st, STMT_QUEUE_PUT);
}

static vigil_err apply_queue_update(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_QUEUE_UPDATE];

    bind_text(stmt, 1, op->client_id);
    sqlite3_bind_int64(stmt, 2, (sqlite3_int64)op->seq);
    sqlite3_bind_int(stmt, 3, op->state);
    sqlite3_bind_int(stmt, 4, op->packet_id);
    return run(st, STMT_QUEUE_UPDATE);
}

/* Notes msg_id for collect_messages() at the end of the batch. A queue
 * entry elided in this batch is never written, so a message that only it
 * refers to looks unreferenced here, although a later entry may name it. */
static void collect_later(struct store *st, uint64_t msg_id)
{
    if (st->gc_len == st->gc_cap) {
        size_t cap = st->gc_cap != 0 ? 2 * st->gc_cap : 64;
        uint64_t *ids = vigil_realloc(st->gc_ids, cap * sizeof *ids);

        if (ids == NULL) {
            /* store_load() removes the unreferenced row at the next start. */
            log_error("store: out of memory; unreferenced message %llu stays until the next start",
                      (unsigned long long)msg_id);
            return;
        }
        st->gc_ids = ids;
        st->gc_cap = cap;
    }
    st->gc_ids[st->gc_len++] = msg_id;
}

/* Deletes the messages noted by collect_later() that no queue row refers
 * to, once every op of the batch has been applied. */
static vigil_err collect_messages(struct store *st)
{
    vigil_err rc = VIGIL_OK;

    for (size_t i = 0; rc == VIGIL_OK && i < st->gc_len; i++) {
        sqlite3_bind_int64(st->stmt[STMT_MSG_GC], 1, (sqlite3_int64)st->gc_ids[i]);
        rc = run(st, STMT_MSG_GC);
    }
    st->gc_len = 0;
    return rc;
}

/* Runs a queue DELETE ... RETURNING msg_id (STMT_QUEUE_DEL, or
 * STMT_SESSION_DEL_QUEUE without a seq) and notes each message it
 * returns for collection. */
static vigil_err delete_queue_rows(struct store *st, enum store_stmt which, const char *client_id,
                                   uint64_t seq)
{
    sqlite3_stmt *del = st->stmt[which];
    int step;

    bind_text(del, 1, client_id);
    if (which == STMT_QUEUE_DEL)
        sqlite3_bind_int64(del, 2, (sqlite3_int64)seq);
    while ((step = sqlite3_step(del)) == SQLITE_ROW)
        collect_later(st, (uint64_t)sqlite3_column_int64(del, 0));
    if (step != SQLITE_DONE)
        store_log_sqlite(st, sqlite3_sql(del));
    sqlite3_reset(del);
    sqlite3_clear_bindings(del);
    return step == SQLITE_DONE ? VIGIL_OK : VIGIL_ERR_STORE;
}

/* Deletes the queue row. Its message goes at the end of the batch if no
 * queue row refers to it then. */
static vigil_err apply_queue_del(struct store *st, const struct store_op *op)
{
    if (op->elided == STORE_GC_ONLY) {
        collect_later(st, op->msg_id);
        return VIGIL_OK;
    }
    return delete_queue_rows(st, STMT_QUEUE_DEL, op->client_id, op->seq);
}

static vigil_err apply_retain_set(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_RETAIN_SET];

    bind_text(stmt, 1, op->topic);
    bind_blob(stmt, 2, op->payload, op->payload_len);
    bind_blob(stmt, 3, op->props, op->props_len);
    sqlite3_bind_int(stmt, 4, op->qos);
    sqlite3_bind_int64(stmt, 5, op->expiry_at);
    return run(st, STMT_RETAIN_SET);
}

static vigil_err apply_retain_del(struct store *st, const struct store_op *op)
{
    bind_text(st->stmt[STMT_RETAIN_DEL], 1, op->topic);
    return run(st, STMT_RETAIN_DEL);
}

static vigil_err apply_session_put(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_SESSION_PUT];

    bind_text(stmt, 1, op->client_id);
    sqlite3_bind_int(stmt, 2, op->version);
    sqlite3_bind_int64(stmt, 3, op->session_expiry);
    sqlite3_bind_int64(stmt, 4, op->disconnected_at);
    bind_text(stmt, 5, op->topic != NULL ? op->topic : "");
    return run(st, STMT_SESSION_PUT);
}

/* Deletes the session with its subscriptions, queue and incoming QoS 2
 * packet ids. The messages of its queue go at the end of the batch if no
 * queue row refers to them then. */
static vigil_err apply_session_del(struct store *st, const struct store_op *op)
{
    static const enum store_stmt steps[] = {
        STMT_SESSION_DEL,
        STMT_SESSION_DEL_SUBS,
        STMT_SESSION_DEL_INQOS2,
    };

    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        bind_text(st->stmt[steps[i]], 1, op->client_id);
        if (run(st, steps[i]) != VIGIL_OK)
            return VIGIL_ERR_STORE;
    }
    return delete_queue_rows(st, STMT_SESSION_DEL_QUEUE, op->client_id, 0);
}

static vigil_err apply_sub_put(struct store *st, const struct store_op *op)
{
    sqlite3_stmt *stmt = st->stmt[STMT_SUB_PUT];

    bind_text(stmt, 1, op->client_id);
    bind_text(stmt, 2, op->topic);
    sqlite3_bind_int(stmt, 3, op->options);
    sqlite3_bind_int64(stmt, 4, op->sub_id);
    return run(st, STMT_SUB_PUT);
}

static vigil_err apply_sub_del(struct store *st, const struct store_op *op)
{
    bind_text(st->stmt[STMT_SUB_DEL], 1, op->client_id);
    bind_text(st->stmt[STMT_SUB_DEL], 2, op->topic);
    return run(st, STMT_SUB_DEL);
}

static vigil_err apply_inqos2(struct store *st, const struct store_op *op)
{
    enum store_stmt which = op->kind == STORE_INQOS2_PUT ? STMT_INQOS2_PUT : STMT_INQOS2_DEL;

    bind_text(st->stmt[which], 1, op->client_id);
    sqlite3_bind_int(st->stmt[which], 2, op->packet_id);
    return run(st, which);
}

static vigil_err apply_op(struct store *st, const struct store_op *op)
{
    if (op->elided == STORE_SKIP)
        return VIGIL_OK;
    switch (op->kind) {
    case STORE_MSG_PUT:
        return apply_msg_put(st, op);
    case STORE_QUEUE_PUT:
        return apply_queue_put(st, op);
    case STORE_QUEUE_UPDATE:
        return apply_queue_update(st, op);
    case STORE_QUEUE_DEL:
        return apply_queue_del(st, op);
    case STORE_RETAIN_SET:
        return apply_retain_set(st, op);
    case STORE_RETAIN_DEL:
        return apply_retain_del(st, op);
    case STORE_SESSION_PUT:
        return apply_session_put(st, op);
    case STORE_SESSION_DEL:
        return apply_session_del(st, op);
    case STORE_SUB_PUT:
        return apply_sub_put(st, op);
    case STORE_SUB_DEL:
        return apply_sub_del(st, op);
    case STORE_INQOS2_PUT:
    case STORE_INQOS2_DEL:
        return apply_inqos2(st, op);
    case STORE_BARRIER:
        return VIGIL_OK;
    }
    log_error("store: unknown op kind %d", (int)op->kind);
    return VIGIL_ERR_STORE;
}

/* Applies every op of batch that store_elide() left, in one transaction.
 * Returns VIGIL_OK once the commit returned, which with synchronous=FULL
 * means the WAL was fsynced. */
static vigil_err apply_batch(struct store *st, struct store_op *batch, size_t writes)
{
    vigil_err rc;

    /* Only barriers and elided ops: everything before them is durable
     * already, and the elided ops had no net effect. */
    if (writes == 0)
        return VIGIL_OK;
    pthread_mutex_lock(&st->db_mu);
    st->gc_len = 0;
    rc = run(st, STMT_BEGIN);
    for (struct store_op *op = batch; rc == VIGIL_OK && op != NULL; op = op->next)
        rc = apply_op(st, op);
    if (rc == VIGIL_OK)
        rc = collect_messages(st);
    if (rc == VIGIL_OK)
        rc = run(st, STMT_COMMIT);
    if (rc != VIGIL_OK) {
        log_error("store: transaction of %zu ops rolled back; reporting failure to each", writes);
        if (!sqlite3_get_autocommit(st->db))
            run(st, STMT_ROLLBACK);
    }
    pthread_mutex_unlock(&st->db_mu);
    if (rc == VIGIL_OK) {
        atomic_fetch_add(&st->commits, 1);
        atomic_fetch_add(&st->ops_written, writes);
    }
    return rc;
}

/* Waits, with mu held, up to the commit interval for more ops to arrive.
 * If no queued op has a done callback by then, the batch keeps gathering
 * until one arrives, up to the hold limit from its start. Ends early when
 * the batch is full or the store is closing. */
static void gather_window(struct store *st)
{
    unsigned interval = atomic_load(&st->commit_interval_us);
    unsigned hold = atomic_load(&st->hold_max_us);
    struct timespec start, deadline;

    if (interval == 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline = vigil_timespec_add_us(start, interval);
    while (!st->stopping && st->queue_len < STORE_BATCH_MAX)
        if (pthread_cond_timedwait(&st->cond, &st->mu, &deadline) == ETIMEDOUT)
            break;
    if (hold <= interval)
        return;
    deadline = vigil_timespec_add_us(start, hold);
    while (!st->stopping && st->queue_len < STORE_BATCH_MAX && st->queue_waiters == 0)
        if (pthread_cond_timedwait(&st->cond, &st->mu, &deadline) == ETIMEDOUT)
            break;
}

/* Records rc on every op of batch and moves them to the done list; called
 * with mu held. */
static void finish_batch(struct store *st, struct store_op *batch, struct store_op *tail,
                         vigil_err rc)
{
    for (struct store_op *op = batch; op != NULL; op = op->next)
        op->rc = rc;
    if (st->done_tail != NULL)
        st->done_tail->next = batch;
    else
        st->done_head = batch;
    st->done_tail = tail;
}

void *store_writer_main(void *arg)
{
    struct store *st = arg;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        struct store_op *batch, *tail;
        size_t count, writes;
        vigil_err rc;

        while (st->queue_head == NULL && !st->stopping)
            pthread_cond_wait(&st->cond, &st->mu);
        if (st->queue_head == NULL)
            break; /* stopping and drained */
        gather_window(st);
        batch = st->queue_head;
        tail = st->queue_tail;
        count = st->queue_len;
        st->queue_head = st->queue_tail = NULL;
        st->queue_len = 0;
        st->queue_waiters = 0;
        pthread_mutex_unlock(&st->mu);

        writes = store_elide(st, batch, count);
        rc = apply_batch(st, batch, writes);

        pthread_mutex_lock(&st->mu);
        finish_batch(st, batch, tail, rc);
        atomic_fetch_sub(&st->pending, count);
        uv_async_send(st->async);
    }
    pthread_mutex_unlock(&st->mu);
    store_elide_free(st);
    vigil_free(st->gc_ids);
    st->gc_ids = NULL;
    st->gc_len = st->gc_cap = 0;
    return NULL;
}

void store_run_completions(struct store *st)
{
    struct store_op *op;

    pthread_mutex_lock(&st->mu);
    op = st->done_head;
    st->done_head = st->done_tail = NULL;
    pthread_mutex_unlock(&st->mu);

    while (op != NULL) {
        struct store_op *next = op->next;

        if (op->done != NULL)
            op->done(op->arg, op->rc);
        store_op_free(op);
        op = next;
    }
}
