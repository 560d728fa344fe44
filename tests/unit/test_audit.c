/* Tests for the audit log writer and verifier, including each kind of
 * tampering the verifier must name. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>

#include "audit/audit.h"
#include "audit/audit_internal.h"
#include "audit/audit_spool.h"
#include "core/log.h"
#include "core/time.h"

#define MAX_LINES 256

struct fixture {
    char dir[64];   /* the audit directory itself */
    char root[64];  /* the temporary data directory */
};

/* The lines of one segment, newline removed. */
struct lines {
    char *items[MAX_LINES];
    size_t count;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    vigil_log_set_level(VIGIL_LOG_ERROR);
    snprintf(fx->root, sizeof fx->root, "/tmp/vigil-audit-XXXXXX");
    assert_non_null(mkdtemp(fx->root));
    snprintf(fx->dir, sizeof fx->dir, "%s/audit", fx->root);
    *state = fx;
    return 0;
}

static void test_state_restore(void);

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    test_state_restore();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", fx->root);
    free(fx);
    return 0;
}

static const struct audit_opts quiet_opts = { .no_timer = true };

/* fdatasync() calls made by the audit writer, counted by the definition
 * below, which takes the place of the C library's in this executable. */
static unsigned fdatasync_calls;
/* When not 0, every fdatasync() fails with this error, as on a failing disk. */
static int fdatasync_error;

int fdatasync(int fd)
{
    fdatasync_calls++;
    if (fdatasync_error != 0) {
        errno = fdatasync_error;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* When not 0, the next write of an audit line to a file stops after this
 * many bytes, and the write of the rest fails with ENOSPC, as on a full
 * disk. write() below takes the place of the C library's in this
 * executable, like fdatasync(). */
static size_t cut_next_line;
static int cut_fd = -1;

ssize_t write(int fd, const void *buf, size_t n)
{
    struct stat st;

    if (fd == cut_fd) {
        cut_fd = -1;
        errno = ENOSPC;
        return -1;
    }
    if (cut_next_line > 0 && cut_next_line < n && ((const char *)buf)[0] == '{' &&
        fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        n = cut_next_line;
        cut_next_line = 0;
        cut_fd = fd;
    }
    return (ssize_t)syscall(SYS_write, fd, buf, n);
}

/* Writes n auth_failure records and closes the log. */
static void write_log(struct fixture *fx, const struct audit_opts *opts, int n)
{
    struct audit_log *log = NULL;

    assert_int_equal(audit_open(fx->root, opts, &log), VIGIL_OK);
    for (int i = 0; i < n; i++) {
        json_t *fields = json_pack("{sssi}", "device", "mon-0042", "attempt", i);

        assert_int_equal(audit_append(log, "auth_failure", fields), VIGIL_OK);
        json_decref(fields);
    }
    assert_int_equal(audit_close(log), VIGIL_OK);
}

static void verify(struct fixture *fx, const char *pubkey, bool strict, struct audit_report *r)
{
    struct audit_verify_opts opts = { .pubkey_path = pubkey, .strict = strict };

    assert_int_equal(audit_verify_dir(fx->dir, &opts, r), VIGIL_OK);
}

static void segment_path(struct fixture *fx, uint32_t index, char *out, size_t cap)
{
    char name[AUDIT_SEGMENT_NAME_MAX];

    audit_segment_name(index, name);
    snprintf(out, cap, "%s/%s", fx->dir, name);
}

static void lines_read(struct fixture *fx, uint32_t index, struct lines *l)
{
    char path[256];
    char buf[8192];
    FILE *f;

    segment_path(fx, index, path, sizeof path);
    f = fopen(path, "r");
    assert_non_null(f);
    l->count = 0;
    while (fgets(buf, sizeof buf, f) != NULL) {
        assert_true(l->count < MAX_LINES);
        buf[strcspn(buf, "\n")] = '\0';
        l->items[l->count++] = strdup(buf);
    }
    fclose(f);
}

/* Writes the lines back, each with its newline, and frees them. */
static void lines_write(struct fixture *fx, uint32_t index, struct lines *l)
{
    char path[256];
    FILE *f;

    segment_path(fx, index, path, sizeof path);
    f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < l->count; i++) {
        fprintf(f, "%s\n", l->items[i]);
        free(l->items[i]);
    }
    fclose(f);
    l->count = 0;
}

static void lines_delete(struct lines *l, size_t i)
{
    free(l->items[i]);
    memmove(&l->items[i], &l->items[i + 1], (l->count - i - 1) * sizeof l->items[0]);
    l->count--;
}

static void lines_insert(struct lines *l, size_t i, const char *line)
{
    memmove(&l->items[i + 1], &l->items[i], (l->count - i) * sizeof l->items[0]);
    l->items[i] = strdup(line);
    l->count++;
}

/* Replaces line i with rec serialised; with rehash, first recomputes its
 * hash, as a forger who has read the format would. */
static void lines_replace(struct lines *l, size_t i, json_t *rec, bool rehash)
{
    char hash[AUDIT_HASH_HEX];

    if (rehash) {
        assert_int_equal(audit_canonical_hash(rec, hash), VIGIL_OK);
        json_object_set_new(rec, "hash", json_string(hash));
    }
    free(l->items[i]);
    l->items[i] = json_dumps(rec, AUDIT_JSON_FLAGS);
}

static json_t *line_parse(const struct lines *l, size_t i)
{
    json_t *rec = json_loads(l->items[i], 0, NULL);

    assert_non_null(rec);
    return rec;
}

static void assert_error(const struct audit_report *r, const char *text)
{
    assert_false(r->valid);
    if (strstr(r->error, text) == NULL)
        fail_msg("expected an error containing \"%s\", got \"%s\"", text, r->error);
}

static bool has_warning(const struct audit_report *r, const char *text)
{
    for (size_t i = 0; i < r->warning_count && i < AUDIT_MAX_WARNINGS; i++) {
        if (strstr(r->warnings[i], text) != NULL)
            return true;
    }
    return false;
}

static void test_roundtrip_valid(void **state)
{
    struct fixture *fx = *state;
    struct audit_report r;

    write_log(fx, &quiet_opts, 10);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.records, 11);
    assert_int_equal(r.checkpoints, 1);
    assert_int_equal(r.last_seq, 11);
    assert_int_equal(r.last_checkpoint_seq, 10);
    assert_int_equal(r.unsigned_records, 0);
    assert_int_equal(r.warning_count, 0);
    assert_int_equal(r.segments, 1);
}

static void test_record_format(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    json_t *first;
    json_t *last;
    char hash[AUDIT_HASH_HEX];

    write_log(fx, &quiet_opts, 1);
    lines_read(fx, 1, &l);
    assert_int_equal(l.count, 2);
    first = line_parse(&l, 0);
    last = line_parse(&l, 1);
    assert_int_equal(json_integer_value(json_object_get(first, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(first, "prev")), AUDIT_ZERO_HASH);
    assert_string_equal(json_string_value(json_object_get(first, "device")), "mon-0042");
    assert_int_equal(strlen(json_string_value(json_object_get(first, "ts"))), 27);
    assert_int_equal(audit_canonical_hash(first, hash), VIGIL_OK);
    assert_string_equal(json_string_value(json_object_get(first, "hash")), hash);
    assert_string_equal(json_string_value(json_object_get(last, "type")), "checkpoint");
    assert_int_equal(json_integer_value(json_object_get(last, "upto_seq")), 1);
    assert_string_equal(json_string_value(json_object_get(last, "upto_hash")), hash);
    assert_true(json_is_true(json_object_get(last, "final")));
    json_decref(first);
    json_decref(last);
    lines_write(fx, 1, &l);
}

static void test_key_created_0600(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    struct stat st;
    struct audit_report r1;
    struct audit_report r2;

    write_log(fx, &quiet_opts, 1);
    snprintf(path, sizeof path, "%s/signing.key", fx->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/signing.pub", fx->dir);
    assert_int_equal(stat(path, &st), 0);
    verify(fx, NULL, false, &r1);
    write_log(fx, &quiet_opts, 1);
    verify(fx, path, true, &r2);
    assert_true(r2.valid);
    assert_true(r2.key_pinned);
    assert_string_equal(r1.key_id, r2.key_id);
    assert_int_equal(strlen(r2.key_id), 16);
}

static void test_segments_rotate(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .no_timer = true, .segment_max_bytes = 700 };
    struct audit_report r;

    write_log(fx, &opts, 20);
    write_log(fx, &opts, 5);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_true(r.segments > 3);
    assert_int_equal(r.last_seq, 27);
}

/* Deferred records are written at once and share one fdatasync(): at
 * audit_sync(), at a synchronous append, when their segment is left and
 * at close. The chain stays whole across all of these. */
static void test_deferred_append_syncs_once(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .no_timer = true, .segment_max_bytes = 2000 };
    struct audit_log *log = NULL;
    struct audit_report r;
    struct lines l;

    assert_int_equal(audit_open(fx->root, &opts, &log), VIGIL_OK);
    fdatasync_calls = 0;
    for (int i = 0; i < 3; i++) {
        json_t *fields = json_pack("{sssi}", "device", "mon-0042", "attempt", i);

        assert_int_equal(audit_append_deferred(log, "auth_failure", fields), VIGIL_OK);
        json_decref(fields);
    }
    assert_int_equal(fdatasync_calls, 0);
    lines_read(fx, 1, &l);
    assert_int_equal(l.count, 3);
    while (l.count > 0)
        lines_delete(&l, 0);
    assert_int_equal(audit_sync(log), VIGIL_OK);
    assert_int_equal(fdatasync_calls, 1);
    assert_int_equal(audit_sync(log), VIGIL_OK);
    assert_int_equal(fdatasync_calls, 1);

    /* A synchronous append covers the deferred one before it. */
    assert_int_equal(audit_append_deferred(log, "config_reloaded", NULL), VIGIL_OK);
    assert_int_equal(audit_append(log, "config_reloaded", NULL), VIGIL_OK);
    assert_int_equal(fdatasync_calls, 2);
    assert_int_equal(audit_sync(log), VIGIL_OK);
    assert_int_equal(fdatasync_calls, 2);

    /* Leaving a segment syncs what it holds; the records after the
     * rotation wait for close. */
    fdatasync_calls = 0;
    for (int i = 0; i < 30; i++)
        assert_int_equal(audit_append_deferred(log, "config_reloaded", NULL), VIGIL_OK);
    assert_true(fdatasync_calls >= 1);
    assert_true(fdatasync_calls < 30);
    assert_int_equal(audit_close(log), VIGIL_OK);

    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_true(r.segments >= 2);
    /* 35 records and the final checkpoint. */
    assert_int_equal(r.last_seq, 36);
}

static void test_checkpoint_every(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .no_timer = true, .checkpoint_every = 3 };
    struct audit_report r;

    write_log(fx, &opts, 9);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    /* After records 3, 6 and 9, and the final one at close. */
    assert_int_equal(r.checkpoints, 4);
    assert_int_equal(r.records, 13);
}

static void test_checkpoint_timer(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .checkpoint_interval_ms = 50 };
    struct audit_log *log = NULL;
    struct audit_report r;

    assert_int_equal(audit_open(fx->root, &opts, &log), VIGIL_OK);
    assert_int_equal(audit_append(log, "config_reloaded", NULL), VIGIL_OK);
    for (int i = 0; i < 100 && audit_last_seq(log) < 2; i++)
        usleep(20000);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_int_equal(r.checkpoints, 1);
    assert_int_equal(r.unsigned_records, 0);
    assert_int_equal(audit_close(log), VIGIL_OK);
}

static void test_reopen_continues_chain(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_report r;

    write_log(fx, &quiet_opts, 2);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_last_seq(log), 3);
    assert_int_equal(audit_close(log), VIGIL_OK);
    write_log(fx, &quiet_opts, 2);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 6);
    assert_int_equal(r.segments, 1);
}

static void test_second_open_rejected(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_log *other = NULL;

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &other), VIGIL_ERR_EXISTS);
    assert_int_equal(audit_close(log), VIGIL_OK);
}

/* Records longer than the serialiser's stack buffer are written and
 * verify. One above AUDIT_MAX_RECORD is rejected and leaves the chain
 * as it was. */
static void test_large_records(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_report r;
    char *text = malloc(AUDIT_MAX_RECORD + 1);
    json_t *fields;

    assert_non_null(text);
    memset(text, 'x', 10000);
    text[10000] = '\0';
    fields = json_pack("{ss}", "detail", text);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_append(log, "admin", fields), VIGIL_OK);
    json_decref(fields);
    memset(text, 'y', AUDIT_MAX_RECORD);
    text[AUDIT_MAX_RECORD] = '\0';
    fields = json_pack("{ss}", "detail", text);
    assert_int_equal(audit_append(log, "admin", fields), VIGIL_ERR_LIMIT);
    json_decref(fields);
    assert_int_equal(audit_last_seq(log), 1);
    assert_int_equal(audit_close(log), VIGIL_OK);
    free(text);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.records, 2);
}

static void test_append_rejects_invalid(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    json_t *reserved = json_pack("{si}", "seq", 5);
    json_t *array = json_array();

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_append(log, "checkpoint", NULL), VIGIL_ERR_INVALID);
    assert_int_equal(audit_append(log, "Auth", NULL), VIGIL_ERR_INVALID);
    assert_int_equal(audit_append(log, "", NULL), VIGIL_ERR_INVALID);
    assert_int_equal(audit_append(log, "auth_success", reserved), VIGIL_ERR_INVALID);
    assert_int_equal(audit_append(log, "auth_success", array), VIGIL_ERR_INVALID);
    assert_int_equal(audit_last_seq(log), 0);
    assert_int_equal(audit_close(log), VIGIL_OK);
    json_decref(reserved);
    json_decref(array);
}

static void test_append_event(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct vigil_event ev;
    struct lines l;
    json_t *rec;

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    vigil_event_init(&ev, VIGIL_EV_AUTH_FAILURE);
    VIGIL_EVENT_SET(&ev, peer, "127.0.0.1:5000", 14);
    VIGIL_EVENT_SET(&ev, client_id, "mon-7", 5);
    assert_int_equal(audit_append_event(log, &ev), VIGIL_OK);
    vigil_event_init(&ev, VIGIL_EV_PUBLISH);
    ev.has_value = true;
    ev.value = 72.0;
    assert_null(audit_event_type(&ev));
    assert_int_equal(audit_append_event(log, &ev), VIGIL_ERR_INVALID);
    assert_int_equal(audit_close(log), VIGIL_OK);

    lines_read(fx, 1, &l);
    rec = line_parse(&l, 0);
    assert_string_equal(json_string_value(json_object_get(rec, "type")), "auth_failure");
    assert_string_equal(json_string_value(json_object_get(rec, "peer")), "127.0.0.1:5000");
    assert_string_equal(json_string_value(json_object_get(rec, "client_id")), "mon-7");
    assert_non_null(json_object_get(rec, "event_ts"));
    assert_null(json_object_get(rec, "value"));
    json_decref(rec);
    lines_write(fx, 1, &l);
}

struct writer_arg {
    struct audit_log *log;
    int count;
};

static void *writer_main(void *arg)
{
    struct writer_arg *w = arg;

    for (int i = 0; i < w->count; i++) {
        if (audit_append(w->log, "admin_command", NULL) != VIGIL_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_threads_keep_chain(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .checkpoint_every = 7, .checkpoint_interval_ms = 5 };
    struct writer_arg w = { .count = 40 };
    pthread_t threads[4];
    struct audit_report r;
    void *result;

    assert_int_equal(audit_open(fx->root, &opts, &w.log), VIGIL_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, writer_main, &w), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(threads[i], &result), 0);
        assert_null(result);
    }
    assert_int_equal(audit_close(w.log), VIGIL_OK);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.records - r.checkpoints, 160);
}

static void test_tamper_field_edit(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    {
        char *p = strstr(l.items[2], "mon-0042");

        assert_non_null(p);
        p[7] = '3';
    }
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:3 (seq 3): hash mismatch: record changed");
    assert_string_equal(r.error_file, "audit-000001.jsonl");
    assert_int_equal(r.error_line, 3);
    assert_int_equal(r.error_seq, 3);
}

static void test_tamper_line_deleted(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    lines_delete(&l, 1);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:2 (seq 3): seq gap: expected 2, found 3");
}

static void test_tamper_lines_reordered(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;
    char *tmp;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    tmp = l.items[2];
    l.items[2] = l.items[3];
    l.items[3] = tmp;
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:3 (seq 4): seq gap: expected 3, found 4");
}

static void test_tamper_line_inserted(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;
    json_t *forged;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    /* A forged seq 3 that links to seq 2 and has a correct hash. */
    forged = line_parse(&l, 2);
    json_object_set_new(forged, "device", json_string("intruder"));
    lines_insert(&l, 2, l.items[2]);
    lines_replace(&l, 2, forged, true);
    json_decref(forged);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:4 (seq 3): seq out of order: expected 4, found 3");
}

static void test_tamper_prev_rewritten(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;
    json_t *rec;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    rec = line_parse(&l, 3);
    json_object_set_new(rec, "prev", json_string(AUDIT_ZERO_HASH));
    lines_replace(&l, 3, rec, true);
    json_decref(rec);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:4 (seq 4): prev mismatch at seq 4");
}

static void test_torn_tail_warns(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    struct stat st;
    struct audit_report r;

    write_log(fx, &quiet_opts, 5);
    segment_path(fx, 1, path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 20), 0);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_true(has_warning(&r, "torn last line at audit-000001.jsonl:6 (crash during write?)"));
    assert_true(has_warning(&r, "5 records after the last checkpoint are not signed yet") ||
                has_warning(&r, "5 records are not signed yet"));
    verify(fx, NULL, true, &r);
    assert_error(&r, "--strict: torn last line");
}

static void test_torn_tail_kept_on_reopen(void **state)
{
    struct fixture *fx = *state;
    char path[256];
    struct stat before;
    struct stat after;
    struct audit_report r;

    write_log(fx, &quiet_opts, 5);
    segment_path(fx, 1, path, sizeof path);
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(truncate(path, before.st_size - 20), 0);
    write_log(fx, &quiet_opts, 2);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size - 20);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_int_equal(r.segments, 2);
    assert_int_equal(r.last_seq, 8);
    assert_true(has_warning(&r, "torn last line at audit-000001.jsonl:6"));
}

/* Standard error, redirected to a pipe while a test captures the log. A
 * pipe, unlike a file, is not limited by RLIMIT_FSIZE. */
struct log_capture {
    int fds[2];
    int saved;
};

/* State that a failed assertion would leave changed for the next tests.
 * Teardown restores it. */
static struct log_capture *capture_active;
static struct rlimit fsize_saved;
static bool fsize_changed;

static void log_capture_start(struct log_capture *c)
{
    assert_int_equal(pipe(c->fds), 0);
    /* Lines past the pipe's buffer are lost rather than blocking the test. */
    assert_int_equal(fcntl(c->fds[1], F_SETFL, O_NONBLOCK), 0);
    fflush(stderr);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(c->fds[1], 2) >= 0);
    capture_active = c;
    vigil_log_set_level(VIGIL_LOG_WARN);
}

static void log_capture_stop(struct log_capture *c)
{
    vigil_log_set_level(VIGIL_LOG_ERROR);
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    close(c->fds[1]);
    capture_active = NULL;
}

static void log_capture_end(struct log_capture *c, char *out, size_t cap)
{
    size_t len = 0;
    ssize_t n;

    log_capture_stop(c);
    while (len < cap - 1 && (n = read(c->fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(c->fds[0]);
}

/* Sets the soft file size limit. SIGXFSZ is ignored, so writes past it
 * fail with EFBIG as they would with ENOSPC on a full disk. */
static void fsize_limit(rlim_t bytes)
{
    struct rlimit cap;

    signal(SIGXFSZ, SIG_IGN);
    if (!fsize_changed)
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &fsize_saved), 0);
    fsize_changed = true;
    cap = fsize_saved;
    cap.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &cap), 0);
}

static void fsize_restore(void)
{
    if (fsize_changed)
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &fsize_saved), 0);
    fsize_changed = false;
}

static void test_state_restore(void)
{
    int fd;

    fdatasync_error = 0;
    if (capture_active != NULL) {
        fd = capture_active->fds[0];
        log_capture_stop(capture_active);
        close(fd);
    }
    if (fsize_changed)
        setrlimit(RLIMIT_FSIZE, &fsize_saved);
    fsize_changed = false;
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static size_t segment_count(struct fixture *fx)
{
    uint32_t *segs = NULL;
    size_t count = 0;

    assert_int_equal(audit_segments_list(fx->dir, &segs, &count), VIGIL_OK);
    free(segs);
    return count;
}

static void append_n(struct audit_log *log, int n, vigil_err expect)
{
    for (int i = 0; i < n; i++) {
        json_t *fields = json_pack("{sssi}", "device", "mon-0042", "attempt", i);

        assert_int_equal(audit_append(log, "auth_failure", fields), expect);
        json_decref(fields);
    }
}

/* Appends that fail on a full disk (the file size limit) create no new
 * segment. The run is logged once with the path and once at its end with
 * the count, and the log goes on in the same segment and verifies. */
static void test_failed_writes_keep_segment(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    struct vigil_event ev;
    struct audit_report r;
    char path[256];
    char logged[16384];

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    append_n(log, 3, VIGIL_OK);
    segment_path(fx, 1, path, sizeof path);
    vigil_event_init(&ev, VIGIL_EV_AUTH_FAILURE);

    /* A limit of 0 fails every write to any file without writing a byte,
     * as a full disk does. */
    log_capture_start(&cap);
    fsize_limit(0);
    append_n(log, 40, VIGIL_ERR_IO);
    assert_int_equal(audit_append_event(log, &ev), VIGIL_ERR_IO);
    fsize_restore();
    assert_int_equal(segment_count(fx), 1);
    append_n(log, 2, VIGIL_OK);
    log_capture_end(&cap, logged, sizeof logged);

    assert_int_equal(segment_count(fx), 1);
    assert_int_equal(count_of(logged, "failed"), 1);
    assert_non_null(strstr(logged, path));
    assert_non_null(strstr(logged, "failed: File too large"));
    assert_non_null(strstr(logged, "works again; records not written: 41, of them cut short as a torn line: 0"));
    assert_int_equal(audit_last_seq(log), 5);
    assert_int_equal(audit_close(log), VIGIL_OK);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 6);
    assert_int_equal(r.segments, 1);
}

/* A write cut short leaves part of its line as a torn line, and the log
 * moves to exactly one new segment for all the failures after it. The
 * chain goes on there, and after a restart. */
static void test_failed_write_torn_line(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    struct audit_report r;
    struct stat st;
    char path[256];
    char logged[16384];

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    append_n(log, 3, VIGIL_OK);
    segment_path(fx, 1, path, sizeof path);
    assert_int_equal(stat(path, &st), 0);

    log_capture_start(&cap);
    cut_next_line = 10;
    append_n(log, 1, VIGIL_ERR_IO);
    fsize_limit(0);
    append_n(log, 30, VIGIL_ERR_IO);
    assert_int_equal(audit_checkpoint(log), VIGIL_ERR_IO);
    fsize_restore();
    append_n(log, 2, VIGIL_OK);
    log_capture_end(&cap, logged, sizeof logged);

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(segment_count(fx), 2);
    assert_int_equal(count_of(logged, "failed"), 1);
    assert_non_null(strstr(logged, "torn line and the log continues in audit-000002.jsonl"));
    assert_non_null(strstr(logged, "works again; records not written: 31, of them cut short as "
                                   "a torn line: 1"));
    assert_int_equal(audit_close(log), VIGIL_OK);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 6);
    assert_true(has_warning(&r, "torn last line at audit-000001.jsonl:4"));

    /* A restart continues the chain in the same segment. */
    write_log(fx, &quiet_opts, 2);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_int_equal(r.segments, 2);
    assert_int_equal(r.last_seq, 9);
    assert_int_equal(r.warning_count, 1);
    assert_true(has_warning(&r, "torn last line at audit-000001.jsonl:4"));
}

/* A file size limit (RLIMIT_FSIZE) below the segment size ends segments
 * like their size does, so no write stops at the limit: no torn lines, no
 * lost records, one warning. A record longer than the limit fails without
 * writing a byte and creates no segment. */
static void test_file_size_limit_ends_segments(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    struct audit_report r;
    struct stat st;
    char path[256];
    char logged[16384];
    size_t segs;

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    append_n(log, 3, VIGIL_OK);
    segment_path(fx, 1, path, sizeof path);
    assert_int_equal(stat(path, &st), 0);

    log_capture_start(&cap);
    fsize_limit((rlim_t)st.st_size + 10);
    append_n(log, 12, VIGIL_OK);
    assert_int_equal(audit_checkpoint(log), VIGIL_OK);
    segs = segment_count(fx);
    fsize_limit(100);
    append_n(log, 5, VIGIL_ERR_IO);
    assert_int_equal(segment_count(fx), segs);
    fsize_restore();
    append_n(log, 1, VIGIL_OK);
    log_capture_end(&cap, logged, sizeof logged);

    assert_true(segs >= 4);
    for (uint32_t i = 1; i <= segs; i++) {
        segment_path(fx, i, path, sizeof path);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 0);
    }
    assert_int_equal(count_of(logged, "segments end at the limit"), 1);
    assert_int_equal(count_of(logged, "failed"), 1);
    assert_non_null(strstr(logged, "failed: File too large"));
    assert_non_null(strstr(logged, "records not written: 5, of them cut short as a torn line: 0"));
    assert_int_equal(audit_close(log), VIGIL_OK);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 18);
    assert_int_equal(r.segments, segs);
}

/* A disk whose fdatasync() keeps failing costs one line for the run and
 * one with the count when a sync works again, not one at each sync. */
static void test_failed_syncs_logged_once(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    char path[256];
    char logged[16384];

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    segment_path(fx, 1, path, sizeof path);
    log_capture_start(&cap);
    fdatasync_error = EIO;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(audit_append_deferred(log, "config_reloaded", NULL), VIGIL_OK);
        assert_int_equal(audit_sync(log), VIGIL_ERR_IO);
    }
    fdatasync_error = 0;
    assert_int_equal(audit_sync(log), VIGIL_OK);
    log_capture_end(&cap, logged, sizeof logged);

    assert_int_equal(count_of(logged, " error "), 1);
    assert_int_equal(count_of(logged, "audit: fdatasync of"), 2);
    assert_non_null(strstr(logged, "failed: Input/output error; records from seq 1 may not"));
    assert_non_null(strstr(logged, path));
    assert_non_null(strstr(logged, "works again; syncs failed: 20; records from seq 1 to 20 may "
                                   "not survive a crash"));
    assert_int_equal(audit_close(log), VIGIL_OK);
}

/* A close while writes fail logs the run with its count, and not the
 * failed final checkpoint again. */
static void test_close_while_failing_logs_once(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    char logged[16384];

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    append_n(log, 2, VIGIL_OK);
    log_capture_start(&cap);
    fsize_limit(0);
    append_n(log, 3, VIGIL_ERR_IO);
    assert_int_equal(audit_close(log), VIGIL_ERR_IO);
    fsize_restore();
    log_capture_end(&cap, logged, sizeof logged);

    assert_int_equal(count_of(logged, " error "), 2);
    assert_int_equal(count_of(logged, "failed"), 1);
    assert_non_null(strstr(logged, "closing while writes fail; records not written: 3"));
}

static void test_truncated_records_at_end(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;

    write_log(fx, &quiet_opts, 5);
    lines_read(fx, 1, &l);
    lines_delete(&l, 5);  /* the final checkpoint */
    lines_delete(&l, 4);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 4);
    assert_true(has_warning(&r, "4 records are not signed yet"));
    verify(fx, NULL, true, &r);
    assert_error(&r, "--strict: 4 records are not signed yet");
}

static void test_truncated_to_checkpoint(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .no_timer = true, .checkpoint_every = 3 };
    struct lines l;
    struct audit_report r;

    write_log(fx, &opts, 5);
    lines_read(fx, 1, &l);
    /* Keep records 1-3 and the periodic checkpoint after them. */
    while (l.count > 4)
        lines_delete(&l, l.count - 1);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    assert_true(has_warning(&r, "does not end with the final checkpoint"));
}

static void test_checkpoint_sig_forged(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;
    json_t *rec;
    char sig[AUDIT_SIG_B64];

    write_log(fx, &quiet_opts, 3);
    lines_read(fx, 1, &l);
    rec = line_parse(&l, 3);
    snprintf(sig, sizeof sig, "%s", json_string_value(json_object_get(rec, "sig")));
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    json_object_set_new(rec, "sig", json_string(sig));
    lines_replace(&l, 3, rec, true);
    json_decref(rec);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "signature invalid at checkpoint seq 4");
}

static void test_checkpoint_off_chain(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;
    json_t *rec;

    write_log(fx, &quiet_opts, 3);
    lines_read(fx, 1, &l);
    rec = line_parse(&l, 3);
    json_object_set_new(rec, "upto_seq", json_integer(2));
    lines_replace(&l, 3, rec, true);
    json_decref(rec);
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "(seq 4): checkpoint does not match the chain");
}

/* A rewrite of the whole directory with a new key passes a check with the
 * key in the directory, and fails against the pinned original key. */
static void test_signing_key_replaced(void **state)
{
    struct fixture *fx = *state;
    char original[256];
    char cmd[512];
    struct audit_report r;

    write_log(fx, &quiet_opts, 3);
    snprintf(original, sizeof original, "%s/original.pub", fx->root);
    snprintf(cmd, sizeof cmd, "cp '%s/signing.pub' '%s' && rm -rf '%s'", fx->dir, original,
             fx->dir);
    assert_int_equal(system(cmd), 0);
    write_log(fx, &quiet_opts, 3);
    verify(fx, NULL, false, &r);
    assert_true(r.valid);
    verify(fx, original, false, &r);
    assert_error(&r, "audit-000001.jsonl:4 (seq 4): checkpoint signed by key");
    assert_error(&r, "(signing key replaced?)");
}

static void test_missing_key_refused(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    char path[256];

    write_log(fx, &quiet_opts, 1);
    snprintf(path, sizeof path, "%s/signing.key", fx->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_ERR_NOT_FOUND);
}

/* A first open that cannot write the signing key (a full disk) leaves no
 * key file, so the next open with room creates the key and the log. */
static void test_key_write_leaves_no_file(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct log_capture cap;
    struct audit_report r;
    struct stat st;
    char path[256];
    char logged[16384];

    log_capture_start(&cap);
    fsize_limit(0);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_ERR_IO);
    fsize_restore();
    log_capture_end(&cap, logged, sizeof logged);

    assert_non_null(strstr(logged, "signing.key: File too large"));
    snprintf(path, sizeof path, "%s/signing.key", fx->dir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/signing.key.tmp", fx->dir);
    assert_int_not_equal(stat(path, &st), 0);
    write_log(fx, &quiet_opts, 2);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 3);
}

/* Empty key files, as a failed write left them before keys were written
 * through a temporary file: signing.pub is written again, and signing.key
 * is replaced while the log has no segment, because it signed nothing. */
static void test_empty_key_files_replaced(void **state)
{
    struct fixture *fx = *state;
    struct audit_report r;
    char path[256];
    FILE *f;

    assert_int_equal(mkdir(fx->dir, 0700), 0);
    snprintf(path, sizeof path, "%s/signing.key", fx->dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    write_log(fx, &quiet_opts, 2);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);

    snprintf(path, sizeof path, "%s/signing.pub", fx->dir);
    assert_int_equal(truncate(path, 0), 0);
    write_log(fx, &quiet_opts, 1);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
    assert_int_equal(r.last_seq, 5);
}

static void test_segment_removed(void **state)
{
    struct fixture *fx = *state;
    struct audit_opts opts = { .no_timer = true, .segment_max_bytes = 700 };
    char path[256];
    struct audit_report r;

    write_log(fx, &opts, 20);
    segment_path(fx, 2, path, sizeof path);
    assert_int_equal(unlink(path), 0);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000002.jsonl is missing (segments removed)");
}

static void test_invalid_json_line(void **state)
{
    struct fixture *fx = *state;
    struct lines l;
    struct audit_report r;

    write_log(fx, &quiet_opts, 2);
    lines_read(fx, 1, &l);
    lines_insert(&l, 1, "{\"seq\": 2,");
    lines_write(fx, 1, &l);
    verify(fx, NULL, false, &r);
    assert_error(&r, "audit-000001.jsonl:2: invalid JSON");
}

static void test_missing_dir_invalid(void **state)
{
    struct fixture *fx = *state;
    struct audit_report r;

    verify(fx, NULL, false, &r);
    assert_error(&r, "cannot read");
}

static void test_buffer_empty_and_torn(void **state)
{
    struct audit_report r;
    static const char torn[] = "{\"seq\":1";

    (void)state;
    assert_int_equal(audit_verify_buffer("x.jsonl", (const uint8_t *)"", 0, NULL, false, &r),
                     VIGIL_OK);
    assert_true(r.valid);
    assert_true(has_warning(&r, "no records"));
    assert_int_equal(audit_verify_buffer("x.jsonl", (const uint8_t *)torn, sizeof torn - 1, NULL,
                                         false, &r),
                     VIGIL_OK);
    assert_true(r.valid);
    assert_true(has_warning(&r, "torn last line at x.jsonl:1"));
}

/* The audit spool. */

static void spool_path(struct fixture *fx, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/spool%s%s", fx->dir, name[0] != '\0' ? "/" : "", name);
}

/* Counts the entries of dir that do not start with '.'; -1 when missing. */
static int dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Reads the records of segment 1 other than checkpoints, in order. The
 * caller owns the array. */
static json_t *records_read(struct fixture *fx)
{
    json_t *out = json_array();
    struct lines l;

    lines_read(fx, 1, &l);
    for (size_t i = 0; i < l.count; i++) {
        json_t *rec = json_loads(l.items[i], 0, NULL);

        assert_non_null(rec);
        if (strcmp(json_string_value(json_object_get(rec, "type")), "checkpoint") == 0)
            json_decref(rec);
        else
            json_array_append_new(out, rec);
        free(l.items[i]);
    }
    return out;
}

static const char *record_str(json_t *records, size_t i, const char *member)
{
    return json_string_value(json_object_get(json_array_get(records, i), member));
}

static void spool_device(struct fixture *fx, const char *device, int64_t us)
{
    json_t *fields = json_pack("{ss}", "device", device);

    assert_int_equal(audit_spool_write(fx->root, "device_added", fields, "alice", us), VIGIL_OK);
    json_decref(fields);
}

static void write_file_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_spool_drain_order(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_report r;
    char dir[128];
    json_t *records;
    size_t n = 99;

    spool_device(fx, "dev-c", 1700000003000000);
    spool_device(fx, "dev-a", 1700000001000000);
    spool_device(fx, "dev-b", 1700000002000000);
    spool_path(fx, "", dir, sizeof dir);
    assert_int_equal(dir_count(dir), 3);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_spool_drain(log, fx->root, 0, &n), VIGIL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(audit_close(log), VIGIL_OK);
    assert_int_equal(dir_count(dir), 0);

    records = records_read(fx);
    assert_int_equal(json_array_size(records), 3);
    assert_string_equal(record_str(records, 0, "device"), "dev-a");
    assert_string_equal(record_str(records, 1, "device"), "dev-b");
    assert_string_equal(record_str(records, 2, "device"), "dev-c");
    assert_string_equal(record_str(records, 0, "type"), "device_added");
    assert_string_equal(record_str(records, 0, "user"), "alice");
    assert_string_equal(record_str(records, 0, "requested_at"), "2023-11-14T22:13:21.000000Z");
    assert_non_null(strstr(record_str(records, 0, "spool_file"), "1700000001000000-"));
    json_decref(records);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
}

static void test_spool_drain_max(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    char dir[128];
    size_t n = 0;

    spool_device(fx, "dev-a", 1700000001000000);
    spool_device(fx, "dev-b", 1700000002000000);
    spool_device(fx, "dev-c", 1700000003000000);
    spool_path(fx, "", dir, sizeof dir);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_spool_drain(log, fx->root, 2, &n), VIGIL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(dir_count(dir), 1);
    assert_int_equal(audit_spool_drain(log, fx->root, 2, &n), VIGIL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(dir_count(dir), 0);
    assert_int_equal(audit_spool_drain(log, fx->root, 2, &n), VIGIL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(audit_close(log), VIGIL_OK);
}

/* A failed append keeps the spool file, so the next drain appends it. */
static void test_spool_kept_on_append_failure(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct rlimit old;
    struct rlimit cap;
    struct stat st;
    char segment[128];
    char dir[128];
    json_t *records;
    size_t n = 99;

    spool_device(fx, "dev-a", 1700000001000000);
    spool_path(fx, "", dir, sizeof dir);
    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_append(log, "config_reloaded", NULL), VIGIL_OK);
    segment_path(fx, 1, segment, sizeof segment);
    assert_int_equal(stat(segment, &st), 0);

    /* With the file size limit at the segment's size every write fails. */
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    cap = old;
    cap.rlim_cur = (rlim_t)st.st_size;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &cap), 0);
    assert_int_equal(audit_spool_drain(log, fx->root, 0, &n), VIGIL_ERR_IO);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(n, 0);
    assert_int_equal(dir_count(dir), 1);

    assert_int_equal(audit_spool_drain(log, fx->root, 0, &n), VIGIL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(dir_count(dir), 0);
    assert_int_equal(audit_close(log), VIGIL_OK);
    /* The failed write left nothing, so the record went to the same segment. */
    records = records_read(fx);
    assert_int_equal(json_array_size(records), 2);
    assert_string_equal(record_str(records, 1, "type"), "device_added");
    json_decref(records);
}

static void test_spool_corrupt_rejected(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_report r;
    char path[192];
    char dir[128];
    json_t *records;
    size_t n = 0;

    spool_device(fx, "dev-b", 1700000002000000);
    spool_path(fx, "0000000000000001-1-000000.json", path, sizeof path);
    write_file_text(path, "{\"type\": \"device_added\", \"fields\": ");
    spool_path(fx, "0000000000000002-1-000000.json", path, sizeof path);
    write_file_text(path, "{\"type\":\"device_added\",\"fields\":{\"password\":\"x\"},"
                          "\"requested_at\":\"2023-11-14T22:13:21Z\",\"user\":\"eve\"}");
    spool_path(fx, "0000000000000003-1-000000.json", path, sizeof path);
    write_file_text(path, "{\"type\":\"auth_success\",\"fields\":{},"
                          "\"requested_at\":\"2023-11-14T22:13:21Z\",\"user\":\"eve\"}");
    spool_path(fx, ".spool-tmp123", path, sizeof path);
    write_file_text(path, "partial");

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    assert_int_equal(audit_spool_drain(log, fx->root, 0, &n), VIGIL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(audit_close(log), VIGIL_OK);

    spool_path(fx, "rejected", dir, sizeof dir);
    assert_int_equal(dir_count(dir), 3);
    spool_path(fx, "", dir, sizeof dir);
    assert_int_equal(dir_count(dir), 1); /* rejected/ itself; the temporary file is skipped */
    records = records_read(fx);
    assert_int_equal(json_array_size(records), 4);
    assert_string_equal(record_str(records, 0, "type"), "spool_rejected");
    assert_string_equal(record_str(records, 0, "spool_file"), "0000000000000001-1-000000.json");
    assert_non_null(strstr(record_str(records, 0, "reason"), "invalid JSON"));
    assert_non_null(strstr(record_str(records, 1, "reason"), "secret"));
    assert_non_null(strstr(record_str(records, 2, "reason"), "type"));
    assert_string_equal(record_str(records, 3, "type"), "device_added");
    assert_string_equal(record_str(records, 3, "device"), "dev-b");
    json_decref(records);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
}

static void test_spool_rejects_secrets(void **state)
{
    static const char *const names[] = {"password", "psk", "psk_hex", "private_key", "key",
                                        "client_secret"};
    struct fixture *fx = *state;
    char dir[128];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *fields = json_pack("{ss, ss}", "device", "dev-a", names[i], "hunter2");

        assert_false(audit_admin_fields_valid(fields));
        assert_int_equal(audit_spool_write(fx->root, "device_added", fields, "alice", 1),
                         VIGIL_ERR_INVALID);
        assert_int_equal(audit_admin_record(fx->root, NULL, "device_added", fields, NULL),
                         VIGIL_ERR_INVALID);
        json_decref(fields);
    }
    spool_path(fx, "", dir, sizeof dir);
    assert_true(dir_count(dir) <= 0);
}

/* The spool file holds exactly type, fields, requested_at and user. */
static void test_spool_file_format(void **state)
{
    struct fixture *fx = *state;
    struct dirent *de;
    char path[256];
    char dir[128];
    json_t *doc = NULL;
    DIR *d;

    spool_device(fx, "dev-a", 1700000001000000);
    spool_path(fx, "", dir, sizeof dir);
    d = opendir(dir);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        assert_non_null(strstr(de->d_name, "1700000001000000-"));
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    }
    closedir(d);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 4);
    assert_string_equal(json_string_value(json_object_get(doc, "type")), "device_added");
    assert_string_equal(json_string_value(json_object_get(doc, "user")), "alice");
    assert_string_equal(json_string_value(json_object_get(doc, "requested_at")),
                        "2023-11-14T22:13:21.000000Z");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "fields"),
                                                          "device")),
                        "dev-a");
    json_decref(doc);
}

/* A command whose record could not be appended does not log that it was
 * appended when the final checkpoint fails too. */
static void test_admin_record_failure_logged(void **state)
{
    struct fixture *fx = *state;
    json_t *fields = json_pack("{ss}", "alert_id", "a-1");
    struct log_capture cap;
    struct lines l;
    char logged[16384];

    /* Without its final checkpoint, as after a crash, the log needs one at
     * the command's close. */
    write_log(fx, &quiet_opts, 2);
    lines_read(fx, 1, &l);
    free(l.items[--l.count]);
    lines_write(fx, 1, &l);

    log_capture_start(&cap);
    fsize_limit(0);
    assert_int_equal(audit_admin_record(fx->root, NULL, "alert_acknowledged", fields, NULL),
                     VIGIL_ERR_IO);
    fsize_restore();
    log_capture_end(&cap, logged, sizeof logged);
    json_decref(fields);

    assert_null(strstr(logged, "the record is appended"));
    assert_non_null(strstr(logged, "closing while writes fail; records not written: 1"));
}

static void test_admin_record_paths(void **state)
{
    struct fixture *fx = *state;
    enum audit_admin_path path = AUDIT_ADMIN_SPOOLED;
    struct audit_log *hub = NULL;
    char user[AUDIT_USER_MAX + 1];
    char dir[128];
    json_t *fields = json_pack("{ss}", "alert_id", "a-1");
    json_t *records;
    size_t n = 0;

    audit_admin_user(user);
    spool_path(fx, "", dir, sizeof dir);
    /* No process holds the log: appended directly. */
    assert_int_equal(audit_admin_record(fx->root, NULL, "alert_acknowledged", fields, &path),
                     VIGIL_OK);
    assert_int_equal(path, AUDIT_ADMIN_APPENDED);

    /* A hub holds the log: spooled, then drained by the hub. */
    assert_int_equal(audit_open(fx->root, &quiet_opts, &hub), VIGIL_OK);
    assert_int_equal(audit_admin_record(fx->root, NULL, "alert_resolved", fields, &path),
                     VIGIL_OK);
    assert_int_equal(path, AUDIT_ADMIN_SPOOLED);
    assert_int_equal(dir_count(dir), 1);
    assert_int_equal(audit_spool_drain(hub, fx->root, 0, &n), VIGIL_OK);
    assert_int_equal(n, 1);
    assert_int_equal(audit_close(hub), VIGIL_OK);

    records = records_read(fx);
    assert_int_equal(json_array_size(records), 2);
    assert_string_equal(record_str(records, 0, "type"), "alert_acknowledged");
    assert_string_equal(record_str(records, 0, "user"), user);
    assert_non_null(record_str(records, 0, "requested_at"));
    assert_null(record_str(records, 0, "spool_file"));
    assert_string_equal(record_str(records, 1, "type"), "alert_resolved");
    assert_string_equal(record_str(records, 1, "user"), user);
    assert_non_null(record_str(records, 1, "spool_file"));
    json_decref(records);
    json_decref(fields);
}

/* A direct append first appends what a hub left in the spool. */
static void test_admin_record_drains_first(void **state)
{
    struct fixture *fx = *state;
    enum audit_admin_path path = AUDIT_ADMIN_SPOOLED;
    struct audit_report r;
    char dir[128];
    json_t *fields = json_pack("{ss}", "device", "dev-z");
    json_t *records;

    spool_device(fx, "dev-a", 1700000001000000);
    assert_int_equal(audit_admin_record(fx->root, NULL, "device_removed", fields, &path),
                     VIGIL_OK);
    assert_int_equal(path, AUDIT_ADMIN_APPENDED);
    spool_path(fx, "", dir, sizeof dir);
    assert_int_equal(dir_count(dir), 0);
    records = records_read(fx);
    assert_int_equal(json_array_size(records), 2);
    assert_string_equal(record_str(records, 0, "device"), "dev-a");
    assert_string_equal(record_str(records, 1, "device"), "dev-z");
    assert_string_equal(record_str(records, 1, "type"), "device_removed");
    json_decref(records);
    json_decref(fields);
    verify(fx, NULL, true, &r);
    assert_true(r.valid);
}

static void test_open_wait_times_out(void **state)
{
    struct fixture *fx = *state;
    struct audit_log *log = NULL;
    struct audit_log *other = NULL;
    uint64_t start;

    assert_int_equal(audit_open(fx->root, &quiet_opts, &log), VIGIL_OK);
    start = vigil_time_mono_ms();
    assert_int_equal(audit_open_wait(fx->root, &quiet_opts, 200, &other), VIGIL_ERR_EXISTS);
    assert_true(vigil_time_mono_ms() - start >= 200);
    assert_int_equal(audit_close(log), VIGIL_OK);
    assert_int_equal(audit_open_wait(fx->root, &quiet_opts, 200, &other), VIGIL_OK);
    assert_int_equal(audit_close(other), VIGIL_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_created_0600, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_append_syncs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_every, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_continues_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_open_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_keep_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_field_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_line_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_lines_reordered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_line_inserted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_prev_rewritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_kept_on_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_writes_keep_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_torn_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_size_limit_ends_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_failing_logs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_syncs_logged_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_records_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_to_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_sig_forged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_off_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signing_key_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_write_leaves_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_key_files_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_json_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_invalid, setup, teardown),
        cmocka_unit_test(test_buffer_empty_and_torn),
        cmocka_unit_test_setup_teardown(test_spool_drain_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_drain_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_kept_on_append_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_corrupt_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_rejects_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_record_failure_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_record_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_record_drains_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_wait_times_out, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
