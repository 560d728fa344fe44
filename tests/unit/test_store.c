/* Tests for the durable store: every op kind, garbage collection of
 * messages, group commit, elision within a batch, failure reporting and
 * durability across a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/alloc.h"
#include "core/time.h"
#include "store/store.h"
#include "store/store_internal.h"

/* A gathering window longer than any test. With it, a batch ends only when
 * STORE_BATCH_MAX ops are queued (see end_batch). */
#define LONG_WINDOW_US 60000000u

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct store *st;
    int ok;     /* done callbacks with VIGIL_OK */
    int failed; /* done callbacks with an error */
    vigil_err last_error;
    int submitted; /* ops passed to submit() with a done callback */
    bool quiet;    /* submit() sets no done callback */
    int batched;   /* of those, ops since the last end_batch() */
};

static void count_done(void *arg, vigil_err rc)
{
    struct fixture *fx = arg;

    if (rc == VIGIL_OK) {
        fx->ok++;
    } else {
        fx->failed++;
        fx->last_error = rc;
    }
}

static void open_store(struct fixture *fx)
{
    assert_int_equal(store_open(fx->dir, &fx->loop, &fx->st), VIGIL_OK);
}

/* Closes the store and runs the loop until the async handle is closed. */
static void close_store(struct fixture *fx)
{
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    snprintf(fx->dir, sizeof fx->dir, "/tmp/vigil-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    open_store(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    if (fx->st != NULL)
        close_store(fx);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Runs the loop until expected done callbacks have run in total. */
static void wait_done(struct fixture *fx, int expected)
{
    uint64_t deadline = vigil_time_mono_ms() + 20000;

    while (fx->ok + fx->failed < expected) {
        if (vigil_time_mono_ms() > deadline)
            fail_msg("%d of %d done callbacks ran", fx->ok + fx->failed, expected);
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(fx->ok + fx->failed, expected);
}

static void submit(struct fixture *fx, struct store_op *op)
{
    if (!fx->quiet) {
        op->done = count_done;
        op->arg = fx;
        fx->submitted++;
    }
    fx->batched++;
    store_submit(fx->st, op);
}

/* Ends the batch being gathered when LONG_WINDOW_US is set. Barriers fill
 * it up to STORE_BATCH_MAX ops, which ends the writer's window, so every op
 * submitted since the last call is in this one batch. Then waits until all
 * of them are done. */
static void end_batch(struct fixture *fx)
{
    assert_true(fx->batched < STORE_BATCH_MAX);
    while (fx->batched < STORE_BATCH_MAX)
        submit(fx, store_op_new(STORE_BARRIER));
    fx->batched = 0;
    wait_done(fx, fx->submitted);
    assert_int_equal(fx->ok, fx->submitted);
    assert_int_equal(store_pending(fx->st), 0);
}

static void put_msg(struct fixture *fx, uint64_t msg_id, const char *topic, const char *payload)
{
    struct store_op *op = store_op_new(STORE_MSG_PUT);

    op->msg_id = msg_id;
    op->topic = vigil_strdup(topic);
    op->payload = vigil_memdup(payload, strlen(payload));
    op->payload_len = (uint32_t)strlen(payload);
    op->props = vigil_memdup("\x01\x01", 2);
    op->props_len = 2;
    op->qos = 1;
    op->retain = 0;
    op->expiry_at = 1767323045;
    submit(fx, op);
}

static void put_queue(struct fixture *fx, const char *client, uint64_t seq, uint64_t msg_id)
{
    struct store_op *op = store_op_new(STORE_QUEUE_PUT);

    op->client_id = vigil_strdup(client);
    op->seq = seq;
    op->msg_id = msg_id;
    op->qos = 1;
    op->state = STORE_Q_PENDING;
    op->packet_id = 0;
    submit(fx, op);
}

/* An update or removal of a queue entry as persist_queue() builds it, with
 * the id of the entry's message. */
static void queue_op(struct fixture *fx, enum store_op_kind kind, const char *client,
                     uint64_t seq, uint64_t msg_id, uint8_t state, uint16_t packet_id)
{
    struct store_op *op = store_op_new(kind);

    op->client_id = vigil_strdup(client);
    op->seq = seq;
    op->msg_id = msg_id;
    op->qos = 1;
    op->state = state;
    op->packet_id = packet_id;
    submit(fx, op);
}

static void client_op(struct fixture *fx, enum store_op_kind kind, const char *client,
                      const char *topic, uint64_t seq, uint16_t packet_id)
{
    struct store_op *op = store_op_new(kind);

    op->client_id = client != NULL ? vigil_strdup(client) : NULL;
    op->topic = topic != NULL ? vigil_strdup(topic) : NULL;
    op->seq = seq;
    op->packet_id = packet_id;
    op->options = 0x12;
    op->sub_id = 7;
    op->version = 5;
    op->session_expiry = 3600;
    op->disconnected_at = 1767323000;
    op->state = STORE_Q_PUBREL;
    submit(fx, op);
}

/* Collects load callbacks as text, one line per row. */
struct loaded {
    char text[8192];
    int rows;
};

static void add_line(struct loaded *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add_line(struct loaded *l, const char *fmt, ...)
{
    size_t used = strlen(l->text);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(l->text + used, sizeof l->text - used, fmt, ap);
    va_end(ap);
    l->rows++;
}

static void on_session(void *ctx, const char *client_id, const char *device, uint8_t version,
                       uint32_t expiry, int64_t disconnected_at)
{
    add_line(ctx, "session %s v%u e%u d%lld%s%s\n", client_id, version, expiry,
             (long long)disconnected_at, device[0] != '\0' ? " dev=" : "", device);
}

static void on_sub(void *ctx, const char *client_id, const char *filter, uint8_t options,
                   uint32_t sub_id)
{
    add_line(ctx, "sub %s %s o%u i%u\n", client_id, filter, options, sub_id);
}

static void on_retained(void *ctx, const char *topic, const uint8_t *payload, uint32_t payload_len,
                        const uint8_t *props, uint32_t props_len, uint8_t qos, int64_t expiry_at)
{
    assert_non_null(payload);
    assert_non_null(props);
    add_line(ctx, "retained %s [%.*s] p%u q%u x%lld\n", topic, (int)payload_len,
             (const char *)payload, props_len, qos, (long long)expiry_at);
}

static void on_queued(void *ctx, const char *client_id, uint64_t seq, uint64_t msg_id,
                      const char *topic, const uint8_t *payload, uint32_t payload_len,
                      const uint8_t *props, uint32_t props_len, uint8_t msg_qos, uint8_t retain,
                      int64_t expiry_at, uint8_t qos, uint8_t state, uint16_t packet_id)
{
    assert_non_null(props);
    add_line(ctx, "queued %s s%llu m%llu %s [%.*s] p%u mq%u r%u x%lld q%u st%u pk%u\n", client_id,
             (unsigned long long)seq, (unsigned long long)msg_id, topic, (int)payload_len,
             (const char *)payload, props_len, msg_qos, retain, (long long)expiry_at, qos, state,
             packet_id);
}

static void on_inqos2(void *ctx, const char *client_id, uint16_t packet_id)
{
    add_line(ctx, "inqos2 %s %u\n", client_id, packet_id);
}

static const struct store_load_cb load_cb = {
    .session = on_session,
    .sub = on_sub,
    .retained = on_retained,
    .queued = on_queued,
    .inqos2 = on_inqos2,
};

/* Closes and reopens the store, then loads everything into l. */
static void reload(struct fixture *fx, struct loaded *l, uint64_t *max_msg, uint64_t *max_seq)
{
    close_store(fx);
    open_store(fx);
    memset(l, 0, sizeof *l);
    assert_int_equal(store_load(fx->st, &load_cb, l, max_msg, max_seq), VIGIL_OK);
}

static void test_roundtrip_every_kind(void **state)
{
    struct fixture *fx = *state;
    struct store_op *op;
    struct loaded l;
    uint64_t max_msg = 99, max_seq = 99;

    client_op(fx, STORE_SESSION_PUT, "c1", "mon1", 0, 0);
    client_op(fx, STORE_SUB_PUT, "c1", "a/+/c", 0, 0);
    client_op(fx, STORE_SUB_PUT, "c1", "x/#", 0, 0);
    client_op(fx, STORE_SUB_DEL, "c1", "x/#", 0, 0);
    op = store_op_new(STORE_RETAIN_SET);
    op->topic = vigil_strdup("r/1");
    op->payload = vigil_memdup("on", 2);
    op->payload_len = 2;
    op->qos = 2;
    op->expiry_at = 1767400000;
    submit(fx, op);
    op = store_op_new(STORE_RETAIN_SET);
    op->topic = vigil_strdup("r/2");
    submit(fx, op);
    client_op(fx, STORE_RETAIN_DEL, NULL, "r/2", 0, 0);
    put_msg(fx, 10, "t/1", "hello");
    put_msg(fx, 11, "t/2", "");
    put_queue(fx, "c1", 1, 10);
    put_queue(fx, "c1", 2, 11);
    client_op(fx, STORE_QUEUE_UPDATE, "c1", NULL, 2, 77);
    client_op(fx, STORE_INQOS2_PUT, "c1", NULL, 0, 5);
    client_op(fx, STORE_INQOS2_PUT, "c1", NULL, 0, 6);
    client_op(fx, STORE_INQOS2_DEL, "c1", NULL, 0, 6);
    wait_done(fx, 15);
    assert_int_equal(fx->ok, 15);
    assert_int_equal(store_pending(fx->st), 0);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session c1 v5 e3600 d1767323000 dev=mon1\n"
                                "sub c1 a/+/c o18 i7\n"
                                "retained r/1 [on] p0 q2 x1767400000\n"
                                "queued c1 s1 m10 t/1 [hello] p2 mq1 r0 x1767323045 q1 st0 pk0\n"
                                "queued c1 s2 m11 t/2 [] p2 mq1 r0 x1767323045 q1 st1 pk77\n"
                                "inqos2 c1 5\n");
    assert_int_equal(max_msg, 11);
    assert_int_equal(max_seq, 2);
}

/* Runs a query returning one integer with a separate connection. */
static int query_int(const char *dir, const char *sql)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int n;

    snprintf(path, sizeof path, "%s/store.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    n = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

/* Counts rows of the messages table. */
static int count_messages(const char *dir)
{
    return query_int(dir, "SELECT COUNT(*) FROM messages");
}

static int count_queue(const char *dir)
{
    return query_int(dir, "SELECT COUNT(*) FROM queue");
}

/* Queue rows naming a message row that does not exist: store_load() drops
 * them, so each is a queued message lost. */
static int count_dangling(const char *dir)
{
    return query_int(dir, "SELECT COUNT(*) FROM queue WHERE NOT EXISTS "
                          "(SELECT 1 FROM messages WHERE messages.id = queue.msg_id)");
}

static void test_queue_del_collects_message(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    put_msg(fx, 1, "t", "shared");
    put_queue(fx, "c1", 1, 1);
    put_queue(fx, "c2", 1, 1);
    client_op(fx, STORE_QUEUE_DEL, "c1", NULL, 1, 0);
    wait_done(fx, 4);
    assert_int_equal(count_messages(fx->dir), 1);

    client_op(fx, STORE_QUEUE_DEL, "c2", NULL, 1, 0);
    client_op(fx, STORE_QUEUE_DEL, "c3", NULL, 9, 0); /* no such entry: a no-op */
    wait_done(fx, 6);
    assert_int_equal(fx->ok, 6);
    assert_int_equal(count_messages(fx->dir), 0);
    reload(fx, &l, &max_msg, &max_seq);
    assert_int_equal(l.rows, 0);
    assert_int_equal(max_msg, 0);
    assert_int_equal(max_seq, 0);
}

static void test_session_del_cascades(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    client_op(fx, STORE_SESSION_PUT, "c1", NULL, 0, 0);
    client_op(fx, STORE_SESSION_PUT, "c2", NULL, 0, 0);
    client_op(fx, STORE_SUB_PUT, "c1", "a/#", 0, 0);
    client_op(fx, STORE_SUB_PUT, "c2", "b/#", 0, 0);
    put_msg(fx, 1, "a/1", "only-c1");
    put_msg(fx, 2, "a/2", "both");
    put_queue(fx, "c1", 1, 1);
    put_queue(fx, "c1", 2, 2);
    put_queue(fx, "c2", 3, 2);
    client_op(fx, STORE_INQOS2_PUT, "c1", NULL, 0, 9);
    client_op(fx, STORE_INQOS2_PUT, "c2", NULL, 0, 8);
    client_op(fx, STORE_SESSION_DEL, "c1", NULL, 0, 0);
    wait_done(fx, 12);
    assert_int_equal(fx->ok, 12);
    assert_int_equal(count_messages(fx->dir), 1);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session c2 v5 e3600 d1767323000\n"
                                "sub c2 b/# o18 i7\n"
                                "queued c2 s3 m2 a/2 [both] p2 mq1 r0 x1767323045 q1 st0 pk0\n"
                                "inqos2 c2 8\n");
    assert_int_equal(max_msg, 2);
    assert_int_equal(max_seq, 3);
}

static void test_load_deletes_orphans(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    put_msg(fx, 5, "t", "never queued");
    put_queue(fx, "c1", 4, 6); /* its message was never stored */
    wait_done(fx, 2);
    assert_int_equal(count_messages(fx->dir), 1);
    reload(fx, &l, &max_msg, &max_seq);
    assert_int_equal(l.rows, 0);
    assert_int_equal(count_messages(fx->dir), 0);
    assert_int_equal(max_msg, 0);
    assert_int_equal(max_seq, 0);
}

static void test_group_commit_batches(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < 1000; i++)
        put_queue(fx, "c1", (uint64_t)i + 1, 1);
    assert_true(store_pending(fx->st) > 0);
    wait_done(fx, 1000);
    assert_int_equal(fx->ok, 1000);
    assert_int_equal(store_pending(fx->st), 0);
    assert_int_equal(store_ops_written(fx->st), 1000);
    assert_true(store_commits(fx->st) >= 1);
    assert_true(store_commits(fx->st) < 1000);
}

/* A batch without done callbacks keeps gathering past its window, so an
 * entry acknowledged after the window is elided with its message. The
 * first op with a done callback ends the hold. */
static void test_hold_elides_after_window(void **state)
{
    struct fixture *fx = *state;

    store_set_commit_interval(fx->st, 1000);
    store_set_hold_max(fx->st, LONG_WINDOW_US);
    fx->quiet = true;
    put_msg(fx, 1, "held/t", "held");
    put_queue(fx, "held-client", 1, 1);
    usleep(50000); /* fifty windows */
    queue_op(fx, STORE_QUEUE_DEL, "held-client", 1, 1, STORE_Q_PENDING, 0);
    fx->quiet = false;
    submit(fx, store_op_new(STORE_BARRIER));
    wait_done(fx, 1);
    assert_int_equal(store_commits(fx->st), 0);
    assert_int_equal(store_ops_written(fx->st), 0);
    assert_int_equal(store_ops_elided(fx->st), 3);
}

/* Without a waiter, the held batch is written when the hold ends. */
static void test_hold_ends(void **state)
{
    struct fixture *fx = *state;
    uint64_t deadline = vigil_time_mono_ms() + 20000;

    store_set_commit_interval(fx->st, 1000);
    store_set_hold_max(fx->st, 20000);
    fx->quiet = true;
    put_msg(fx, 1, "held/t", "held");
    put_queue(fx, "held-client", 1, 1);
    while (store_pending(fx->st) > 0) {
        if (vigil_time_mono_ms() > deadline)
            fail_msg("the held batch was never written");
        uv_run(&fx->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(store_commits(fx->st), 1);
    assert_int_equal(store_ops_written(fx->st), 2);
}

static void test_barrier_needs_no_commit(void **state)
{
    struct fixture *fx = *state;

    submit(fx, store_op_new(STORE_BARRIER));
    wait_done(fx, 1);
    assert_int_equal(fx->ok, 1);
    assert_int_equal(store_commits(fx->st), 0);
    assert_int_equal(store_ops_written(fx->st), 0);
}

/* Adds a trigger that aborts any insert of the retained topic "fail". */
static void install_failing_trigger(const char *dir)
{
    char path[128];
    sqlite3 *db;

    snprintf(path, sizeof path, "%s/store.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TRIGGER fail_retain BEFORE INSERT ON retained "
                                  "WHEN NEW.topic = 'fail' BEGIN SELECT RAISE(ABORT, 'injected'); "
                                  "END",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

static void test_failed_batch_reports_all(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    install_failing_trigger(fx->dir);
    /* A long window keeps the three ops in one transaction. */
    store_set_commit_interval(fx->st, 500000);
    client_op(fx, STORE_SESSION_PUT, "c1", NULL, 0, 0);
    client_op(fx, STORE_RETAIN_SET, NULL, "fail", 0, 0);
    client_op(fx, STORE_SUB_PUT, "c1", "a", 0, 0);
    wait_done(fx, 3);
    assert_int_equal(fx->failed, 3);
    assert_int_equal(fx->last_error, VIGIL_ERR_STORE);
    assert_int_equal(store_commits(fx->st), 0);

    /* The store keeps working after a failed batch. */
    store_set_commit_interval(fx->st, 0);
    client_op(fx, STORE_SESSION_PUT, "c2", NULL, 0, 0);
    wait_done(fx, 4);
    assert_int_equal(fx->ok, 1);
    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session c2 v5 e3600 d1767323000\n");
}

static void test_close_runs_completions(void **state)
{
    struct fixture *fx = *state;

    for (int i = 0; i < 50; i++)
        put_queue(fx, "c1", (uint64_t)i + 1, 1);
    close_store(fx);
    assert_int_equal(fx->ok, 50);
    open_store(fx);
}

static void resubmit_on_done(void *arg, vigil_err rc)
{
    struct fixture *fx = arg;
    struct store_op *op = store_op_new(STORE_BARRIER);

    count_done(fx, rc);
    op->done = count_done;
    op->arg = fx;
    store_submit(fx->st, op);
}

static void test_submit_during_close(void **state)
{
    struct fixture *fx = *state;
    struct store_op *op = store_op_new(STORE_BARRIER);

    op->done = resubmit_on_done;
    op->arg = fx;
    store_submit(fx->st, op);
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(fx->ok, 1);
    assert_int_equal(fx->failed, 1);
    assert_int_equal(fx->last_error, VIGIL_ERR_CLOSED);
    open_store(fx);
}

static void test_open_bad_dir(void **state)
{
    struct fixture *fx = *state;
    struct store *st = (void *)1;

    assert_int_equal(store_open("/nonexistent-dir/x", &fx->loop, &st), VIGIL_ERR_STORE);
    assert_null(st);
}

static void test_newer_schema_rejected(void **state)
{
    struct fixture *fx = *state;
    struct store *st;
    char path[128];
    sqlite3 *db;

    close_store(fx);
    snprintf(path, sizeof path, "%s/store.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(fx->dir, &fx->loop, &st), VIGIL_ERR_STORE);
}

/* A version 1 database, whose sessions had no device column, is upgraded
 * in place: its sessions load with no owner and new ones keep theirs. */
static void test_upgrade_from_version_1(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;
    char path[128];
    sqlite3 *db;

    close_store(fx);
    snprintf(path, sizeof path, "%s/store.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE sessions DROP COLUMN device;"
                                  "UPDATE schema_version SET version = 1;"
                                  "INSERT INTO sessions VALUES ('old', 4, 60, 1767323000);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    open_store(fx);
    client_op(fx, STORE_SESSION_PUT, "new", "pump-7", 0, 0);
    wait_done(fx, 1);
    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session new v5 e3600 d1767323000 dev=pump-7\n"
                                "session old v4 e60 d1767323000\n");
}

/* A queue entry stored, sent and acknowledged within one batch. Its
 * message row, the entry, its updates and its removal cancel out, and a
 * batch left with nothing to write needs no transaction. */
static void test_elide_acked_entry(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    put_msg(fx, 1, "t/1", "qos1");
    put_queue(fx, "c1", 1, 1);
    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 1, 1, STORE_Q_PENDING, 5);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 1, 1, STORE_Q_PENDING, 5);
    put_msg(fx, 2, "t/2", "qos2");
    put_queue(fx, "c1", 2, 2);
    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 2, 2, STORE_Q_PENDING, 6);
    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 2, 2, STORE_Q_PUBREL, 6);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 2, 2, STORE_Q_PUBREL, 6);
    end_batch(fx);
    assert_int_equal(store_ops_elided(fx->st), 9);
    assert_int_equal(store_ops_written(fx->st), 0);
    assert_int_equal(store_commits(fx->st), 0);
    assert_int_equal(count_messages(fx->dir), 0);
    assert_int_equal(count_queue(fx->dir), 0);

    /* Beside other writes the batch commits, still without them. */
    client_op(fx, STORE_SESSION_PUT, "c2", NULL, 0, 0);
    put_msg(fx, 3, "t/3", "acked");
    put_queue(fx, "c2", 3, 3);
    queue_op(fx, STORE_QUEUE_UPDATE, "c2", 3, 3, STORE_Q_PENDING, 7);
    queue_op(fx, STORE_QUEUE_DEL, "c2", 3, 3, STORE_Q_PENDING, 7);
    put_msg(fx, 4, "t/4", "kept");
    put_queue(fx, "c2", 4, 4);
    end_batch(fx);
    assert_int_equal(store_ops_elided(fx->st), 13);
    assert_int_equal(store_ops_written(fx->st), 3);
    assert_int_equal(store_commits(fx->st), 1);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session c2 v5 e3600 d1767323000\n"
                                "queued c2 s4 m4 t/4 [kept] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
    assert_int_equal(max_msg, 4);
    assert_int_equal(max_seq, 4);
}

/* Updates of an entry stored in the same batch are folded into its PUT,
 * and the last one wins. An update of an entry from an earlier batch is
 * written. */
static void test_elide_folds_updates(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    put_msg(fx, 1, "t/1", "sent");
    put_queue(fx, "c1", 1, 1);
    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 1, 1, STORE_Q_PENDING, 9);
    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 1, 1, STORE_Q_PUBREL, 9);
    put_msg(fx, 2, "t/2", "sent later");
    put_queue(fx, "c1", 2, 2);
    end_batch(fx);
    assert_int_equal(store_ops_elided(fx->st), 2);
    assert_int_equal(store_ops_written(fx->st), 4);
    assert_int_equal(store_commits(fx->st), 1);

    queue_op(fx, STORE_QUEUE_UPDATE, "c1", 2, 2, STORE_Q_PENDING, 10);
    end_batch(fx);
    assert_int_equal(store_ops_elided(fx->st), 2);
    assert_int_equal(store_ops_written(fx->st), 5);
    assert_int_equal(store_commits(fx->st), 2);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text,
                        "queued c1 s1 m1 t/1 [sent] p2 mq1 r0 x1767323045 q1 st1 pk9\n"
                        "queued c1 s2 m2 t/2 [sent later] p2 mq1 r0 x1767323045 q1 st0 pk10\n");
}

/* A message with two entries in one batch keeps its row while one of them
 * is written. When both are removed in the batch, the row is not written
 * either. */
static void test_elide_shared_message(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    put_msg(fx, 1, "t/1", "shared");
    put_queue(fx, "c1", 1, 1);
    put_queue(fx, "c2", 2, 1);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 1, 1, STORE_Q_PENDING, 1);
    put_msg(fx, 2, "t/2", "both acked");
    put_queue(fx, "c1", 3, 2);
    put_queue(fx, "c2", 4, 2);
    queue_op(fx, STORE_QUEUE_DEL, "c2", 4, 2, STORE_Q_PENDING, 2);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 3, 2, STORE_Q_PENDING, 2);
    end_batch(fx);
    /* Written: message 1 and the entry of c2; the rest is elided. */
    assert_int_equal(store_ops_written(fx->st), 2);
    assert_int_equal(store_ops_elided(fx->st), 7);
    assert_int_equal(count_messages(fx->dir), 1);
    assert_int_equal(count_dangling(fx->dir), 0);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text,
                        "queued c2 s2 m1 t/1 [shared] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
    assert_int_equal(max_msg, 1);
    assert_int_equal(max_seq, 2);
}

/* Entries added and removed within a batch whose message row came in an
 * earlier batch. Their removal still collects the row once no entry refers
 * to it, and keeps it while one does. */
static void test_elide_collects_earlier_message(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    put_msg(fx, 1, "t/1", "still queued");
    put_queue(fx, "c1", 1, 1);
    put_msg(fx, 2, "t/2", "acked later");
    put_queue(fx, "c1", 2, 2);
    put_msg(fx, 3, "t/3", "no entry");
    end_batch(fx);
    assert_int_equal(count_messages(fx->dir), 3);
    assert_int_equal(store_ops_written(fx->st), 5);

    /* Message 1: the entry of c1 still refers to it. */
    put_queue(fx, "c2", 3, 1);
    queue_op(fx, STORE_QUEUE_DEL, "c2", 3, 1, STORE_Q_PENDING, 0);
    /* Message 2: its written entry goes in this batch and its other entry
     * is never written. */
    put_queue(fx, "c2", 4, 2);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 2, 2, STORE_Q_PENDING, 0);
    queue_op(fx, STORE_QUEUE_DEL, "c2", 4, 2, STORE_Q_PENDING, 0);
    /* Message 3: only an elided entry ever referred to it. */
    put_queue(fx, "c2", 5, 3);
    queue_op(fx, STORE_QUEUE_DEL, "c2", 5, 3, STORE_Q_PENDING, 0);
    end_batch(fx);
    /* The three PUTs are elided; the four removals run, three of them
     * only as collections of their message. */
    assert_int_equal(store_ops_elided(fx->st), 3);
    assert_int_equal(store_ops_written(fx->st), 9);
    assert_int_equal(store_commits(fx->st), 2);
    assert_int_equal(count_messages(fx->dir), 1);
    assert_int_equal(count_queue(fx->dir), 1);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text,
                        "queued c1 s1 m1 t/1 [still queued] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
}

/* A session removed between the PUT and the DEL of its entries, in one
 * batch. The removal takes its written entries and the messages only they
 * referred to, and a later DEL finds nothing. A session created again
 * under the same client id keeps its new entries. */
static void test_elide_session_del_between(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    client_op(fx, STORE_SESSION_PUT, "c1", NULL, 0, 0);
    client_op(fx, STORE_SESSION_PUT, "c2", NULL, 0, 0);
    put_msg(fx, 1, "t/1", "shared");
    put_queue(fx, "c1", 1, 1);
    put_queue(fx, "c2", 2, 1);
    put_msg(fx, 2, "t/2", "only c1, acked");
    put_queue(fx, "c1", 3, 2);
    put_msg(fx, 3, "t/3", "only c1, unacked");
    put_queue(fx, "c1", 4, 3);
    client_op(fx, STORE_SESSION_DEL, "c1", NULL, 0, 0);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 1, 1, STORE_Q_PENDING, 0);
    queue_op(fx, STORE_QUEUE_DEL, "c1", 3, 2, STORE_Q_PENDING, 0);
    client_op(fx, STORE_SESSION_PUT, "c1", NULL, 0, 0);
    put_queue(fx, "c1", 5, 1);
    end_batch(fx);
    /* Elided: the PUT and DEL of seqs 1 and 3, and message 2. */
    assert_int_equal(store_ops_elided(fx->st), 5);
    assert_int_equal(count_messages(fx->dir), 1);
    assert_int_equal(count_dangling(fx->dir), 0);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text, "session c1 v5 e3600 d1767323000\n"
                                "session c2 v5 e3600 d1767323000\n"
                                "queued c1 s5 m1 t/1 [shared] p2 mq1 r0 x1767323045 q1 st0 pk0\n"
                                "queued c2 s2 m1 t/1 [shared] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
}

/* The last written entry of a message is removed while an entry elided
 * later in the batch still refers to it, and then a new entry names it.
 * The message row must outlive the batch, as it does when every op is
 * written. */
static void test_elide_keeps_message_for_later_put(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    put_msg(fx, 1, "t/1", "retained");
    put_queue(fx, "a", 1, 1);
    end_batch(fx);

    put_queue(fx, "c", 2, 1);
    queue_op(fx, STORE_QUEUE_DEL, "a", 1, 1, STORE_Q_PENDING, 0);
    put_queue(fx, "b", 3, 1);
    queue_op(fx, STORE_QUEUE_DEL, "c", 2, 1, STORE_Q_PENDING, 0);
    end_batch(fx);
    assert_int_equal(count_dangling(fx->dir), 0);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text,
                        "queued b s3 m1 t/1 [retained] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
}

/* The same with the session of the message's last written entry removed
 * in the batch. */
static void test_elide_keeps_message_across_session_del(void **state)
{
    struct fixture *fx = *state;
    struct loaded l;
    uint64_t max_msg, max_seq;

    store_set_commit_interval(fx->st, LONG_WINDOW_US);
    client_op(fx, STORE_SESSION_PUT, "b", NULL, 0, 0);
    put_msg(fx, 1, "t/1", "retained");
    put_queue(fx, "a", 1, 1);
    put_queue(fx, "c", 2, 1);
    client_op(fx, STORE_SESSION_DEL, "a", NULL, 0, 0);
    put_queue(fx, "b", 3, 1);
    queue_op(fx, STORE_QUEUE_DEL, "c", 2, 1, STORE_Q_PENDING, 0);
    end_batch(fx);
    assert_int_equal(count_dangling(fx->dir), 0);

    reload(fx, &l, &max_msg, &max_seq);
    assert_string_equal(l.text,
                        "session b v5 e3600 d1767323000\n"
                        "queued b s3 m1 t/1 [retained] p2 mq1 r0 x1767323045 q1 st0 pk0\n");
}

/* Crash test: the child stores QoS messages and reports each acknowledged
 * seq through a pipe, then exits without closing inside the done callback
 * of op CRASH_AFTER, as kill -9 right after an acknowledgement would. */
#define CRASH_TOTAL 600
#define CRASH_AFTER 400

struct crash_ctx {
    int fd;
    int acked;
    int crash_after; /* done callbacks before the exit */
};

struct crash_ack {
    struct crash_ctx *ctx;
    uint32_t seq;
};

static void crash_ack_done(void *arg, vigil_err rc)
{
    struct crash_ack *ack = arg;

    if (rc != VIGIL_OK)
        _exit(3);
    if (write(ack->ctx->fd, &ack->seq, sizeof ack->seq) != (ssize_t)sizeof ack->seq)
        _exit(4);
    if (++ack->ctx->acked == ack->ctx->crash_after)
        _exit(0);
}

static void crash_child(const char *dir, int fd)
{
    static struct crash_ack acks[CRASH_TOTAL];
    struct crash_ctx ctx = {fd, 0, CRASH_AFTER};
    uv_loop_t loop;
    struct store *st;

    if (uv_loop_init(&loop) != 0 || store_open(dir, &loop, &st) != VIGIL_OK)
        _exit(2);
    store_set_commit_interval(st, 500);
    for (uint32_t i = 0; i < CRASH_TOTAL; i++) {
        struct store_op *msg = store_op_new(STORE_MSG_PUT);
        struct store_op *q = store_op_new(STORE_QUEUE_PUT);

        msg->msg_id = i + 1;
        msg->topic = vigil_strdup("crash/t");
        msg->qos = 1;
        store_submit(st, msg);
        q->client_id = vigil_strdup("c1");
        q->seq = i + 1;
        q->msg_id = i + 1;
        q->qos = 1;
        acks[i].ctx = &ctx;
        acks[i].seq = i + 1;
        q->done = crash_ack_done;
        q->arg = &acks[i];
        store_submit(st, q);
        if (i % 50 == 49)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(5); /* never reached: the loop runs until the crash */
}

static void on_queued_mark(void *ctx, const char *client_id, uint64_t seq, uint64_t msg_id,
                           const char *topic, const uint8_t *payload, uint32_t payload_len,
                           const uint8_t *props, uint32_t props_len, uint8_t msg_qos,
                           uint8_t retain, int64_t expiry_at, uint8_t qos, uint8_t state,
                           uint16_t packet_id)
{
    uint8_t *present = ctx;

    assert_int_equal(seq, msg_id);
    assert_true(seq >= 1 && seq <= CRASH_TOTAL);
    present[seq] = 1;
}

static void test_acked_ops_survive_crash(void **state)
{
    struct fixture *fx = *state;
    static uint8_t acked[CRASH_TOTAL + 1];
    static uint8_t present[CRASH_TOTAL + 1];
    struct store_load_cb cb = {.queued = on_queued_mark};
    uint64_t max_msg, max_seq;
    uint32_t seq;
    int fds[2];
    int status;
    int count = 0;
    pid_t pid;

    close_store(fx); /* no writer thread may exist across fork() */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        crash_child(fx->dir, fds[1]);
    }
    close(fds[1]);
    while (read(fds[0], &seq, sizeof seq) == (ssize_t)sizeof seq) {
        assert_true(seq >= 1 && seq <= CRASH_TOTAL);
        acked[seq] = 1;
        count++;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count, CRASH_AFTER);

    open_store(fx);
    assert_int_equal(store_load(fx->st, &cb, present, &max_msg, &max_seq), VIGIL_OK);
    for (int i = 1; i <= CRASH_TOTAL; i++)
        if (acked[i] && !present[i])
            fail_msg("seq %d was acknowledged but is missing after the crash", i);
}

/* Crash test with elision. Each of ELIDE_MSGS messages is queued for c1
 * and c2. The entry of c1 is removed for two messages in three, and that
 * of c2 for one in three. Removals come zero to three iterations after the
 * PUTs, so they land in the same batch as their PUT or in a later one.
 * The child reports each completed PUT (its seq) and DEL (its seq with
 * ELIDE_DEL_BIT), then exits inside the done callback of op
 * ELIDE_CRASH_AFTER. */
#define ELIDE_MSGS 600
#define ELIDE_CRASH_AFTER 1400
#define ELIDE_DEL_BIT 0x80000000u
#define ELIDE_FIRST 100

/* Whether the entry of seq is ever removed by the child. */
static bool elide_removed(uint32_t seq)
{
    uint32_t i = (seq - 1) / 2;

    return seq % 2 == 1 ? i % 3 != 2 : i % 3 == 1;
}

static void elide_submit(struct store *st, enum store_op_kind kind, const char *client,
                         uint64_t seq, uint64_t msg_id, struct crash_ack *ack)
{
    struct store_op *op = store_op_new(kind);

    if (op == NULL)
        _exit(2);
    op->client_id = client != NULL ? vigil_strdup(client) : NULL;
    op->seq = seq;
    op->msg_id = msg_id;
    op->qos = 1;
    if (kind == STORE_MSG_PUT)
        op->topic = vigil_strdup("crash/e");
    if (ack != NULL) {
        op->done = crash_ack_done;
        op->arg = ack;
    }
    store_submit(st, op);
}

static void set_flag(void *arg, vigil_err rc)
{
    *(int *)arg = rc == VIGIL_OK ? 1 : -1;
}

static void elide_crash_child(const char *dir, int fd)
{
    static struct crash_ack acks[4 * ELIDE_MSGS];
    struct crash_ctx ctx = {fd, 0, ELIDE_CRASH_AFTER};
    struct store_op *op;
    size_t n_acks = 0;
    int first_done = 0;
    uv_loop_t loop;
    struct store *st;

    if (uv_loop_init(&loop) != 0 || store_open(dir, &loop, &st) != VIGIL_OK)
        _exit(2);
    /* First one batch whose entries all cancel out, so that the elision
     * is known to have run before the stream below. */
    store_set_commit_interval(st, LONG_WINDOW_US);
    for (uint64_t k = 0; k < ELIDE_FIRST; k++) {
        elide_submit(st, STORE_MSG_PUT, NULL, 0, 100000 + k, NULL);
        elide_submit(st, STORE_QUEUE_PUT, "c0", 100000 + k, 100000 + k, NULL);
        elide_submit(st, STORE_QUEUE_DEL, "c0", 100000 + k, 100000 + k, NULL);
    }
    for (int k = 3 * ELIDE_FIRST; k < STORE_BATCH_MAX; k++) {
        op = store_op_new(STORE_BARRIER);
        if (k == STORE_BATCH_MAX - 1) {
            op->done = set_flag;
            op->arg = &first_done;
        }
        store_submit(st, op);
    }
    while (first_done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    if (first_done != 1 || store_ops_elided(st) != 3 * ELIDE_FIRST || store_commits(st) != 0)
        _exit(6);

    store_set_commit_interval(st, 500);
    for (uint32_t j = 0; j < ELIDE_MSGS + 3; j++) {
        if (j < ELIDE_MSGS) {
            elide_submit(st, STORE_MSG_PUT, NULL, 0, j + 1, NULL);
            for (uint32_t seq = 2 * j + 1; seq <= 2 * j + 2; seq++) {
                acks[n_acks] = (struct crash_ack){&ctx, seq};
                elide_submit(st, STORE_QUEUE_PUT, seq % 2 ? "c1" : "c2", seq, j + 1,
                             &acks[n_acks++]);
            }
        }
        for (uint32_t i = j >= 3 ? j - 3 : 0; i <= j && i < ELIDE_MSGS; i++) {
            if (i + i % 4 != j)
                continue;
            for (uint32_t seq = 2 * i + 1; seq <= 2 * i + 2; seq++) {
                if (!elide_removed(seq))
                    continue;
                acks[n_acks] = (struct crash_ack){&ctx, seq | ELIDE_DEL_BIT};
                elide_submit(st, STORE_QUEUE_DEL, seq % 2 ? "c1" : "c2", seq, i + 1,
                             &acks[n_acks++]);
            }
        }
        if (j % 50 == 49)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(5); /* never reached: the loop runs until the crash */
}

static void on_queued_elide(void *ctx, const char *client_id, uint64_t seq, uint64_t msg_id,
                            const char *topic, const uint8_t *payload, uint32_t payload_len,
                            const uint8_t *props, uint32_t props_len, uint8_t msg_qos,
                            uint8_t retain, int64_t expiry_at, uint8_t qos, uint8_t state,
                            uint16_t packet_id)
{
    uint8_t *present = ctx;

    assert_true(seq >= 1 && seq <= 2 * ELIDE_MSGS);
    assert_string_equal(client_id, seq % 2 ? "c1" : "c2");
    assert_int_equal(msg_id, (seq + 1) / 2);
    assert_string_equal(topic, "crash/e");
    present[seq] = 1;
}

static void test_elided_ops_survive_crash(void **state)
{
    struct fixture *fx = *state;
    static uint8_t put_acked[2 * ELIDE_MSGS + 1];
    static uint8_t del_acked[2 * ELIDE_MSGS + 1];
    static uint8_t present[2 * ELIDE_MSGS + 1];
    struct store_load_cb cb = {.queued = on_queued_elide};
    uint64_t max_msg, max_seq;
    uint32_t v;
    int fds[2];
    int status;
    int count = 0;
    pid_t pid;

    close_store(fx); /* no writer thread may exist across fork() */
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        elide_crash_child(fx->dir, fds[1]);
    }
    close(fds[1]);
    while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v) {
        uint32_t seq = v & ~ELIDE_DEL_BIT;

        assert_true(seq >= 1 && seq <= 2 * ELIDE_MSGS);
        if (v & ELIDE_DEL_BIT)
            del_acked[seq] = 1;
        else
            put_acked[seq] = 1;
        count++;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(count, ELIDE_CRASH_AFTER);
    assert_int_equal(count_dangling(fx->dir), 0);

    open_store(fx);
    assert_int_equal(store_load(fx->st, &cb, present, &max_msg, &max_seq), VIGIL_OK);
    for (uint32_t seq = 1; seq <= 2 * ELIDE_MSGS; seq++) {
        if (del_acked[seq] && present[seq])
            fail_msg("the removal of seq %u was acknowledged but it is present", seq);
        if (put_acked[seq] && !elide_removed(seq) && !present[seq])
            fail_msg("seq %u was acknowledged, never removed, and is missing", seq);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_del_collects_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_del_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_deletes_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_needs_no_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_elides_after_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_reports_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_runs_completions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_during_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_bad_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_acked_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_folds_updates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_shared_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_collects_earlier_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_session_del_between, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_keeps_message_for_later_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elide_keeps_message_across_session_del, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_acked_ops_survive_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_elided_ops_survive_crash, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
