/* Durable store: lifecycle, op submission and completion delivery. */
#include "store/store.h"

#include <limits.h>
#include <stdio.h>

#include "core/alloc.h"
#include "core/log.h"
#include "store/store_internal.h"

static void store_async_cb(uv_async_t *handle)
{
    store_run_completions(handle->data);
}

static void store_async_close_cb(uv_handle_t *handle)
{
    vigil_free(handle);
}

/* Releases everything but the async handle; used by open's failure path
 * and by close. */
static void store_free(struct store *st)
{
    store_db_close(st);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->db_mu);
    vigil_free(st);
}

static void store_init_sync(struct store *st)
{
    pthread_condattr_t attr;

    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->db_mu, NULL);
    pthread_condattr_init(&attr);
    /* The group-commit deadline is measured on the monotonic clock. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &attr);
    pthread_condattr_destroy(&attr);
}

static vigil_err store_start(struct store *st, uv_loop_t *loop)
{
    int err;

    st->async = vigil_calloc(1, sizeof *st->async);
    if (st->async == NULL)
        return VIGIL_ERR_NOMEM;
    err = uv_async_init(loop, st->async, store_async_cb);
    if (err != 0) {
        log_error("store: uv_async_init failed: %s", uv_strerror(err));
        vigil_free(st->async);
        st->async = NULL;
        return VIGIL_ERR_IO;
    }
    st->async->data = st;
    err = pthread_create(&st->thread, NULL, store_writer_main, st);
    if (err != 0) {
        log_error("store: starting the writer thread failed (error %d)", err);
        uv_close((uv_handle_t *)st->async, store_async_close_cb);
        st->async = NULL;
        return VIGIL_ERR_IO;
    }
    return VIGIL_OK;
}

vigil_err store_open(const char *dir, uv_loop_t *loop, struct store **out)
{
    char path[PATH_MAX];
    struct store *st;
    vigil_err rc;

    *out = NULL;
    if (snprintf(path, sizeof path, "%s/store.db", dir) >= (int)sizeof path)
        return VIGIL_ERR_INVALID;
    st = vigil_calloc(1, sizeof *st);
    if (st == NULL)
        return VIGIL_ERR_NOMEM;
    atomic_init(&st->commit_interval_us, STORE_COMMIT_INTERVAL_DEFAULT_US);
    atomic_init(&st->hold_max_us, STORE_HOLD_MAX_US);
    store_init_sync(st);
    rc = store_db_open(st, path);
    if (rc == VIGIL_OK)
        rc = store_start(st, loop);
    if (rc != VIGIL_OK) {
        store_free(st);
        return rc;
    }
    log_info("store: opened %s", path);
    *out = st;
    return VIGIL_OK;
}

struct store_op *store_op_new(enum store_op_kind kind)
{
    struct store_op *op = vigil_calloc(1, sizeof *op);

    if (op != NULL)
        op->kind = kind;
    return op;
}

void store_op_free(struct store_op *op)
{
    if (op == NULL)
        return;
    vigil_free(op->client_id);
    vigil_free(op->topic);
    vigil_free(op->payload);
    vigil_free(op->props);
    vigil_free(op);
}

void store_submit(struct store *st, struct store_op *op)
{
    bool wake;

    if (op == NULL)
        return;
    op->next = NULL;
    op->rc = VIGIL_OK;
    atomic_fetch_add(&st->pending, 1);
    pthread_mutex_lock(&st->mu);
    if (st->queue_tail != NULL)
        st->queue_tail->next = op;
    else
        st->queue_head = op;
    st->queue_tail = op;
    /* The writer waits for the first op of a batch, then for a full batch
     * or the end of its window, and after the window for the first op with
     * a done callback. Any other signal would only wake it to wait again,
     * at the cost of one futex call and context switch per op. */
    wake = ++st->queue_len == 1 || st->queue_len == STORE_BATCH_MAX;
    if (op->done != NULL && ++st->queue_waiters == 1)
        wake = true;
    pthread_mutex_unlock(&st->mu);
    if (wake)
        pthread_cond_signal(&st->cond);
}

void store_set_commit_interval(struct store *st, uint32_t us)
{
    atomic_store(&st->commit_interval_us, us);
}

void store_set_hold_max(struct store *st, uint32_t us)
{
    atomic_store(&st->hold_max_us, us);
}

size_t store_pending(const struct store *st)
{
    return atomic_load(&((struct store *)st)->pending);
}

uint64_t store_commits(const struct store *st)
{
    return atomic_load(&((struct store *)st)->commits);
}

uint64_t store_ops_written(const struct store *st)
{
    return atomic_load(&((struct store *)st)->ops_written);
}

uint64_t store_ops_elided(const struct store *st)
{
    return atomic_load(&((struct store *)st)->ops_elided);
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->mu);
    st->stopping = true;
    pthread_mutex_unlock(&st->mu);
    pthread_cond_signal(&st->cond);
    pthread_join(st->thread, NULL);

    /* The writer has exited. A done callback run here may still submit, and
     * such ops complete with VIGIL_ERR_CLOSED. */
    store_run_completions(st);
    while (st->queue_head != NULL) {
        struct store_op *op = st->queue_head;

        st->queue_head = op->next;
        if (st->queue_head == NULL)
            st->queue_tail = NULL;
        st->queue_len--;
        atomic_fetch_sub(&st->pending, 1);
        op->next = NULL;
        op->rc = VIGIL_ERR_CLOSED;
        st->done_head = st->done_tail = op;
        store_run_completions(st);
    }
    uv_close((uv_handle_t *)st->async, store_async_close_cb);
    log_info("store: closed after %llu commits of %llu ops",
             (unsigned long long)atomic_load(&st->commits),
             (unsigned long long)atomic_load(&st->ops_written));
    store_free(st);
}
