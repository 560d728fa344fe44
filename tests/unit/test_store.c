/* Tests for the durable store: every op kind, garbage collection of
 * messages, group commit, failure reporting and durability across a crash. */
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

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct store *st;
    int ok;     /* done callbacks with VIGIL_OK */
    int failed; /* done callbacks with an error */
    vigil_err last_error;
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
    op->done = count_done;
    op->arg = fx;
    store_submit(fx->st, op);
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

/* Counts rows of the messages table with a separate connection. */
static int count_messages(const char *dir)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *stmt;
    int n;

    snprintf(path, sizeof path, "%s/store.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM messages", -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    n = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
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

/* Crash test: the child stores QoS messages and reports each acknowledged
 * seq through a pipe, then exits without closing inside the done callback
 * of op CRASH_AFTER, as kill -9 right after an acknowledgement would. */
#define CRASH_TOTAL 600
#define CRASH_AFTER 400

struct crash_ctx {
    int fd;
    int acked;
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
    if (++ack->ctx->acked == CRASH_AFTER)
        _exit(0);
}

static void crash_child(const char *dir, int fd)
{
    static struct crash_ack acks[CRASH_TOTAL];
    struct crash_ctx ctx = {fd, 0};
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_del_collects_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_del_cascades, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_deletes_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_barrier_needs_no_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_reports_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_runs_completions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_during_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_bad_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acked_ops_survive_crash, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
