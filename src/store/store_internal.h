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
    STMT_SESSION_DEL_QUEUE,
    STMT_SESSION_DEL_INQOS2,
    STMT_SUB_PUT,
    STMT_SUB_DEL,
    STMT_INQOS2_PUT,
    STMT_INQOS2_DEL,
    STMT_COUNT
};

/* The writer's action for one op of a batch (store_op.elided). */
enum store_elision {
    STORE_APPLY = 0,
    STORE_SKIP,    /* its effect is cancelled by a later op of the same batch */
    STORE_GC_ONLY, /* a queue removal whose row was never written: only its
                    * message row, written by an earlier batch, may go */
};

/* Slot of an open-addressing table from a 64-bit key (queue seq or message
 * id) to an op of the batch being elided. The tables are reused from batch
 * to batch. */
struct store_elide_slot {
    uint64_t key; /* 0: empty; seqs and message ids start at 1 */
    struct store_op *op;
    uint32_t live;   /* messages: queue entries of this batch still written */
    uint32_t elided; /* messages: queue entries of this batch elided */
};

struct store_elide_table {
    struct store_elide_slot *slots;
    size_t cap; /* a power of two, or 0 */
};

/* A batch ends its gathering window early once this many ops are queued. */
#define STORE_BATCH_MAX 4096
#define STORE_COMMIT_INTERVAL_DEFAULT_US 5000
/* Default of store_set_hold_max(). */
#define STORE_HOLD_MAX_US 100000
#define STORE_SCHEMA_VERSION 2

struct store {
    sqlite3 *db;
    sqlite3_stmt *stmt[STMT_COUNT];
    /* Serialises use of db between the writer thread and store_load(). */
    pthread_mutex_t db_mu;

    /* Guards the two lists and stopping. */
    pthread_mutex_t mu;
    /* Signalled on the first op of a batch, a full batch, the first op with a
     * done callback, and close. */
    pthread_cond_t cond;
    struct store_op *queue_head;     /* submitted, not yet taken by the writer */
    struct store_op *queue_tail;
    size_t queue_len;
    size_t queue_waiters;            /* queued ops with a done callback */
    struct store_op *done_head;      /* committed or failed, callbacks not yet run */
    struct store_op *done_tail;
    bool stopping;

    pthread_t thread;
    uv_async_t *async;               /* freed by its close callback */

    atomic_uint commit_interval_us;
    atomic_uint hold_max_us;
    atomic_size_t pending;
    atomic_uint_fast64_t commits;
    atomic_uint_fast64_t ops_written;
    atomic_uint_fast64_t ops_elided;

    /* Writer thread only. */
    struct store_elide_table elide_queue; /* seq -> STORE_QUEUE_PUT */
    struct store_elide_table elide_msgs;  /* msg_id -> STORE_MSG_PUT */
    /* Message ids whose queue rows the batch removed, collected at its end. */
    uint64_t *gc_ids;
    size_t gc_len;
    size_t gc_cap;
};

/* store_schema.c: opens the database, creates or checks the schema and
 * prepares the statements. On failure st->db may be set and must still be
 * closed with store_db_close(). */
vigil_err store_db_open(struct store *st, const char *path);
void store_db_close(struct store *st);
/* Logs a failed SQLite call with what was being done. */
void store_log_sqlite(struct store *st, const char *what);

/* store_elide.c: marks the ops of batch (count ops) whose effects cancel
 * out within it, and returns how many of them remain to be written. A
 * queue entry added and removed in the same batch is skipped with its
 * updates. Its message row is skipped too when it came in this batch and
 * no written entry refers to it. This relies on the loop thread never referring to a
 * message id again once no queue entry refers to it (persist.c). */
size_t store_elide(struct store *st, struct store_op *batch, size_t count);
void store_elide_free(struct store *st);

/* store_writer.c */
void *store_writer_main(void *arg);
/* Runs done callbacks of completed ops and frees them; loop thread only. */
void store_run_completions(struct store *st);

#endif
