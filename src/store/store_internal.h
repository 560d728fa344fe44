/* Internal state of the durable store, shared by its source files. */
#ifndef VIGIL_STORE_STORE_INTERNAL_H
#define VIGIL_STORE_STORE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store/store.h"

/* Prepared statements, one per write step. */
enum store_stmt {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_MSG_PUT,
    STMT_MSG_GC,
    STMT_QUEUE_PUT,
    STMT_QUEUE_UPDATE,
    STMT_QUEUE_DEL,
    STMT_RETAIN_SET,
    STMT_RETAIN_DEL,
    STMT_SESSION_PUT,
    STMT_SESSION_DEL,
    STMT_SESSION_DEL_SUBS,
    STMT_SESSION_DEL_MSGS,
    STMT_SESSION_DEL_QUEUE,
    STMT_SESSION_DEL_INQOS2,
    STMT_SUB_PUT,
    STMT_SUB_DEL,
    STMT_INQOS2_PUT,
    STMT_INQOS2_DEL,
    STMT_COUNT
};

/* A batch ends its gathering window early once this many ops are queued. */
#define STORE_BATCH_MAX 4096
#define STORE_COMMIT_INTERVAL_DEFAULT_US 2000
#define STORE_SCHEMA_VERSION 2

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    /* Serialises use of db between the writer thread and store_load(). */
    pthread_mutex_t db_mu;

    /* Guards the two lists and stopping. */
    pthread_mutex_t mu;
    pthread_cond_t cond;             /* signalled on submit and on close */
    struct store_op *queue_head;     /* submitted, not yet taken by the writer */
    struct store_op *queue_tail;
    size_t queue_len;
    struct store_op *done_head;      /* committed or failed, callbacks not yet run */
    struct store_op *done_tail;
    bool stopping;

    pthread_t thread;
    uv_async_t *async;               /* freed by its close callback */

    atomic_uint commit_interval_us;
    atomic_size_t pending;
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t ops_written;
};

/* store_schema.c: opens the database, creates or checks the schema and
 * prepares the statements. On failure st->db may be set and must still be
 * closed with store_db_close(). */
vigil_err store_db_open(struct store *st, const char *path);
void store_db_close(struct store *st);
/* Logs a failed SQLite call with what was being done. */
void store_log_sqlite(struct store *st, const char *what);

/* store_writer.c */
void *store_writer_main(void *arg);
/* Runs done callbacks of completed ops and frees them; loop thread only. */
void store_run_completions(struct store *st);

#endif
