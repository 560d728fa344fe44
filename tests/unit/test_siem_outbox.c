/* Tests for the SIEM outbox: order, deletion, the row cap, sequence numbers
 * that are never reused, and durability across a killed process. */
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

#include "export/siem.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test-siem-outbox.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof path, "%s/outbox-t.db", dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Formats "msg <seq> <tag>"; ctx is the tag. */
static int format_tag(void *ctx, uint64_t seq, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "msg %llu %s", (unsigned long long)seq, (const char *)ctx);

    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static void append_n(struct siem_outbox *ob, int n, const char *tag)
{
    assert_int_equal(siem_outbox_begin(ob), VIGIL_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(siem_outbox_append(ob, 1000 + i, format_tag, (void *)tag, NULL),
                         VIGIL_OK);
    assert_int_equal(siem_outbox_commit(ob), VIGIL_OK);
}

static void test_outbox_order_and_delete(void **state)
{
    struct siem_outbox *ob;
    struct siem_outbox_row rows[10];
    size_t n;

    (void)state;
    assert_int_equal(siem_outbox_open(path, 100, &ob), VIGIL_OK);
    append_n(ob, 5, "a");
    assert_int_equal(siem_outbox_count(ob), 5);
    assert_int_equal(siem_outbox_read(ob, 0, 10, rows, &n), VIGIL_OK);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        char expected[32];

        snprintf(expected, sizeof expected, "msg %zu a", i + 1);
        assert_int_equal(rows[i].seq, i + 1);
        assert_string_equal(rows[i].payload, expected);
        assert_int_equal(rows[i].len, strlen(expected));
        assert_int_equal(rows[i].created_us, 1000 + (int64_t)i);
    }
    siem_outbox_rows_free(rows, n);
    assert_int_equal(siem_outbox_read(ob, 3, 10, rows, &n), VIGIL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].seq, 4);
    siem_outbox_rows_free(rows, n);
    assert_int_equal(siem_outbox_delete_upto(ob, 3), VIGIL_OK);
    assert_int_equal(siem_outbox_count(ob), 2);
    assert_int_equal(siem_outbox_read(ob, 0, 10, rows, &n), VIGIL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0].seq, 4);
    assert_int_equal(rows[1].seq, 5);
    siem_outbox_rows_free(rows, n);
    siem_outbox_close(ob);
}

static void test_outbox_seq_not_reused(void **state)
{
    struct siem_outbox *ob;
    struct siem_outbox_row rows[4];
    size_t n;

    (void)state;
    assert_int_equal(siem_outbox_open(path, 100, &ob), VIGIL_OK);
    append_n(ob, 3, "a");
    assert_int_equal(siem_outbox_delete_upto(ob, 3), VIGIL_OK);
    assert_int_equal(siem_outbox_count(ob), 0);
    siem_outbox_close(ob);

    assert_int_equal(siem_outbox_open(path, 100, &ob), VIGIL_OK);
    append_n(ob, 1, "b");
    assert_int_equal(siem_outbox_read(ob, 0, 4, rows, &n), VIGIL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].seq, 4);
    assert_string_equal(rows[0].payload, "msg 4 b");
    siem_outbox_rows_free(rows, n);
    siem_outbox_close(ob);
}

static void test_outbox_cap(void **state)
{
    struct siem_outbox *ob;

    (void)state;
    assert_int_equal(siem_outbox_open(path, 3, &ob), VIGIL_OK);
    append_n(ob, 3, "a");
    assert_int_equal(siem_outbox_begin(ob), VIGIL_OK);
    assert_int_equal(siem_outbox_append(ob, 1, format_tag, "b", NULL), VIGIL_ERR_LIMIT);
    assert_int_equal(siem_outbox_commit(ob), VIGIL_OK);
    assert_int_equal(siem_outbox_count(ob), 3);
    assert_int_equal(siem_outbox_delete_upto(ob, 1), VIGIL_OK);
    append_n(ob, 1, "c");
    assert_int_equal(siem_outbox_count(ob), 3);
    siem_outbox_close(ob);
}

/* A child commits rows and is killed with SIGKILL before it closes the
 * outbox; the parent reopens the file and finds every committed row. */
static void test_outbox_survives_kill(void **state)
{
    struct siem_outbox *ob;
    struct siem_outbox_row rows[64];
    int pipefd[2];
    int status;
    char ready;
    size_t n;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (siem_outbox_open(path, 100, &ob) != VIGIL_OK)
            _exit(1);
        siem_outbox_begin(ob);
        for (int i = 0; i < 50; i++)
            siem_outbox_append(ob, i, format_tag, "k", NULL);
        siem_outbox_commit(ob);
        if (write(pipefd[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &ready, 1), 1);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    assert_int_equal(siem_outbox_open(path, 100, &ob), VIGIL_OK);
    assert_int_equal(siem_outbox_count(ob), 50);
    assert_int_equal(siem_outbox_read(ob, 0, 64, rows, &n), VIGIL_OK);
    assert_int_equal(n, 50);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rows[i].seq, i + 1);
    siem_outbox_rows_free(rows, n);
    siem_outbox_close(ob);
}

/* Submitted events reach the outbox on the exporter thread; a process
 * killed right after submit and flush of the queue keeps them. The
 * receiver address is a closed local port, so nothing is ever sent. */
static void test_exporter_kill_keeps_submitted(void **state)
{
    struct siem_config cfg;
    struct siem_exporter *exp;
    struct siem_outbox *ob;
    struct siem_outbox_row rows[32];
    char err[128];
    int pipefd[2];
    int status;
    char ready;
    size_t n;
    pid_t pid;

    (void)state;
    siem_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    snprintf(cfg.hostname, sizeof cfg.hostname, "test");
    cfg.n_dests = 1;
    siem_dest_defaults(&cfg.dests[0]);
    assert_int_equal(siem_dest_set(&cfg.dests[0], "name", "k", err, sizeof err), VIGIL_OK);
    assert_int_equal(siem_dest_set(&cfg.dests[0], "address", "127.0.0.1:9", err, sizeof err),
                     VIGIL_OK);
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct siem_stats st;

        close(pipefd[0]);
        if (siem_exporter_start(&cfg, &exp) != VIGIL_OK)
            _exit(1);
        for (int i = 0; i < 20; i++) {
            struct vigil_event ev;

            vigil_event_init(&ev, VIGIL_EV_CONNECT_ATTEMPT);
            snprintf(ev.peer, sizeof ev.peer, "127.0.0.1:%d", 1000 + i);
            siem_exporter_submit_event(exp, &ev);
        }
        do {
            usleep(1000);
            siem_exporter_stats(exp, &st);
        } while (st.dests[0].stored < 20);
        if (write(pipefd[1], "r", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &ready, 1), 1);
    close(pipefd[0]);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    snprintf(path, sizeof path, "%s/outbox-k.db", dir);
    assert_int_equal(siem_outbox_open(path, 100, &ob), VIGIL_OK);
    assert_int_equal(siem_outbox_read(ob, 0, 32, rows, &n), VIGIL_OK);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < n; i++) {
        char peer[64];

        snprintf(peer, sizeof peer, "peer=\"127.0.0.1:%zu\"", 1000 + i);
        assert_int_equal(rows[i].seq, i + 1);
        assert_non_null(strstr(rows[i].payload, peer));
    }
    siem_outbox_rows_free(rows, n);
    siem_outbox_close(ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbox_order_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_seq_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbox_survives_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exporter_kill_keeps_submitted, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
