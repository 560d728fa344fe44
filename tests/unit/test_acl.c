/* Tests for stored access rules, TLS-PSK keys, the change counter of
 * devices.db and the inventory snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth/acl.h"
#include "core/alloc.h"

struct fixture {
    char dir[64];
    struct device_db *db;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    setenv("VIGIL_TEST_PBKDF2_ITERATIONS", "10", 1);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/vigil-acl-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(device_db_open(fx->dir, &fx->db), VIGIL_OK);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[128];

    device_db_close(fx->db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static void add_device(struct device_db *db, const char *id, const char *role)
{
    struct device_info info;
    char password[64];

    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", id);
    snprintf(info.role, sizeof info.role, "%s", role);
    assert_int_equal(device_db_add(db, &info, password, sizeof password), VIGIL_OK);
}

static struct acl_rule make_rule(char kind, const char *subject, char action, const char *pattern)
{
    struct acl_rule rule;

    memset(&rule, 0, sizeof rule);
    rule.subject_kind = kind;
    snprintf(rule.subject, sizeof rule.subject, "%s", subject);
    rule.action = action;
    snprintf(rule.pattern, sizeof rule.pattern, "%s", pattern);
    return rule;
}

/* Rules collected by acl_db_list. */
struct rule_list {
    struct acl_rule rules[16];
    size_t n;
};

static void collect_rule(void *ctx, const struct acl_rule *rule)
{
    struct rule_list *list = ctx;

    if (list->n < 16)
        list->rules[list->n++] = *rule;
}

static void test_rule_add_list_remove(void **state)
{
    struct fixture *fx = *state;
    struct acl_rule a = make_rule(ACL_SUBJECT_DEVICE, "mon-0042", ACL_PUBLISH, "north/icu3/+/%d/#");
    struct acl_rule b = make_rule(ACL_SUBJECT_ROLE, "nurse-call", ACL_SUBSCRIBE, "north/icu3/#");
    struct rule_list list = {0};

    assert_int_equal(acl_db_add(fx->db, &a), VIGIL_OK);
    assert_int_equal(acl_db_add(fx->db, &b), VIGIL_OK);
    assert_true(a.id > 0);
    assert_true(b.id > a.id);
    assert_true(a.created_at > 1700000000);

    assert_int_equal(acl_db_list(fx->db, collect_rule, &list), VIGIL_OK);
    assert_int_equal(list.n, 2);
    assert_int_equal(list.rules[0].id, a.id);
    assert_int_equal(list.rules[0].subject_kind, ACL_SUBJECT_DEVICE);
    assert_string_equal(list.rules[0].subject, "mon-0042");
    assert_int_equal(list.rules[0].action, ACL_PUBLISH);
    assert_string_equal(list.rules[0].pattern, "north/icu3/+/%d/#");
    assert_int_equal(list.rules[0].created_at, a.created_at);
    assert_int_equal(list.rules[1].id, b.id);
    assert_int_equal(list.rules[1].subject_kind, ACL_SUBJECT_ROLE);
    assert_string_equal(list.rules[1].subject, "nurse-call");
    assert_int_equal(list.rules[1].action, ACL_SUBSCRIBE);

    assert_int_equal(acl_db_remove(fx->db, a.id), VIGIL_OK);
    assert_int_equal(acl_db_remove(fx->db, a.id), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(acl_db_remove(fx->db, 999999), VIGIL_ERR_NOT_FOUND);
    list.n = 0;
    assert_int_equal(acl_db_list(fx->db, collect_rule, &list), VIGIL_OK);
    assert_int_equal(list.n, 1);
    assert_int_equal(list.rules[0].id, b.id);
}

static void test_rule_list_empty(void **state)
{
    struct fixture *fx = *state;
    struct rule_list list = {0};

    assert_int_equal(acl_db_list(fx->db, collect_rule, &list), VIGIL_OK);
    assert_int_equal(list.n, 0);
}

static void test_rule_duplicates(void **state)
{
    struct fixture *fx = *state;
    struct acl_rule a = make_rule(ACL_SUBJECT_ROLE, "monitor", ACL_SUBSCRIBE, "a/#");
    struct acl_rule same = a;
    struct acl_rule other_action = make_rule(ACL_SUBJECT_ROLE, "monitor", ACL_PUBLISH, "a/#");
    struct acl_rule other_kind = make_rule(ACL_SUBJECT_DEVICE, "monitor", ACL_SUBSCRIBE, "a/#");
    struct rule_list list = {0};

    assert_int_equal(acl_db_add(fx->db, &a), VIGIL_OK);
    assert_int_equal(acl_db_add(fx->db, &same), VIGIL_ERR_EXISTS);
    assert_int_equal(acl_db_add(fx->db, &other_action), VIGIL_OK);
    assert_int_equal(acl_db_add(fx->db, &other_kind), VIGIL_OK);
    assert_int_equal(acl_db_list(fx->db, collect_rule, &list), VIGIL_OK);
    assert_int_equal(list.n, 3);
}

static void test_rule_invalid_patterns(void **state)
{
    static const char *const patterns[] = {
        "",           "a/b#",         "#/a",         "a+/b",         "a/+b",
        "a/dev-%d/x", "a/%s",         "%d%d/a",      "$share/g/a/#", "a/%",
        "a/%D",
    };
    struct fixture *fx = *state;
    struct acl_rule rule;
    char long_pattern[300];

    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        rule = make_rule(ACL_SUBJECT_DEVICE, "mon-1", ACL_PUBLISH, patterns[i]);
        if (acl_db_add(fx->db, &rule) != VIGIL_ERR_INVALID)
            fail_msg("accepted pattern '%s'", patterns[i]);
    }
    memset(long_pattern, 'a', 255);
    long_pattern[255] = '\0';
    rule = make_rule(ACL_SUBJECT_DEVICE, "mon-1", ACL_PUBLISH, long_pattern);
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_OK);
    /* 256 bytes with no NUL inside the array. */
    memset(rule.pattern, 'b', sizeof rule.pattern);
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
}

static void test_rule_valid_patterns(void **state)
{
    static const char *const patterns[] = {
        "#", "+", "%d", "a/%d", "%d/#", "+/+/+/%d/#", "$SYS/#", "a//b", "north/icu3/room305/x",
    };
    struct fixture *fx = *state;
    struct acl_rule rule;

    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        rule = make_rule(ACL_SUBJECT_ROLE, "ops", ACL_SUBSCRIBE, patterns[i]);
        if (acl_db_add(fx->db, &rule) != VIGIL_OK)
            fail_msg("rejected pattern '%s'", patterns[i]);
    }
}

static void test_rule_invalid_subjects(void **state)
{
    struct fixture *fx = *state;
    struct acl_rule rule;
    char long_id[80];

    rule = make_rule(ACL_SUBJECT_DEVICE, "", ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
    rule = make_rule(ACL_SUBJECT_DEVICE, "mon/1", ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
    rule = make_rule(ACL_SUBJECT_DEVICE, "mon+1", ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
    rule = make_rule(ACL_SUBJECT_ROLE, "bad name", ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);

    /* Role names stop at 31 characters, device ids at 64. */
    memset(long_id, 'r', 32);
    long_id[32] = '\0';
    rule = make_rule(ACL_SUBJECT_ROLE, long_id, ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
    rule = make_rule(ACL_SUBJECT_DEVICE, long_id, ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_OK);
    memset(long_id, 'd', 65);
    long_id[65] = '\0';
    memset(&rule, 0, sizeof rule);
    rule.subject_kind = ACL_SUBJECT_DEVICE;
    rule.action = ACL_PUBLISH;
    memcpy(rule.subject, long_id, sizeof rule.subject);
    snprintf(rule.pattern, sizeof rule.pattern, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);

    rule = make_rule('x', "mon-1", ACL_PUBLISH, "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
    rule = make_rule(ACL_SUBJECT_DEVICE, "mon-1", 'w', "a");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_ERR_INVALID);
}

static void test_psk_set_clear(void **state)
{
    struct fixture *fx = *state;
    struct device_snapshot *snap = NULL;
    uint8_t key[64];
    uint8_t out[64];

    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    add_device(fx->db, "mon-1", "device");
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 16), VIGIL_OK);
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_int_equal(device_snapshot_psk(snap, "mon-1", out, sizeof out), 16);
    assert_memory_equal(out, key, 16);
    device_snapshot_free(snap);

    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 64), VIGIL_OK);
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_int_equal(device_snapshot_psk(snap, "mon-1", out, sizeof out), 64);
    assert_memory_equal(out, key, 64);
    /* A buffer too small for the key gets nothing rather than a cut key. */
    assert_int_equal(device_snapshot_psk(snap, "mon-1", out, 32), 0);
    device_snapshot_free(snap);

    assert_int_equal(device_db_set_psk(fx->db, "mon-1", NULL, 0), VIGIL_OK);
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_int_equal(device_snapshot_psk(snap, "mon-1", out, sizeof out), 0);
    assert_non_null(device_snapshot_find(snap, "mon-1"));
    device_snapshot_free(snap);
}

static void test_psk_length_checks(void **state)
{
    struct fixture *fx = *state;
    uint8_t key[65] = {1};

    add_device(fx->db, "mon-1", "device");
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 15), VIGIL_ERR_INVALID);
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 65), VIGIL_ERR_INVALID);
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 0), VIGIL_ERR_INVALID);
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, 16), VIGIL_OK);
    assert_int_equal(device_db_set_psk(fx->db, "mon-2", key, 16), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(device_db_set_psk(fx->db, "mon-2", NULL, 0), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(device_db_set_psk(fx->db, "bad id", key, 16), VIGIL_ERR_NOT_FOUND);
}

static void test_psk_column_added_once(void **state)
{
    struct fixture *fx = *state;
    struct device_db *second = NULL;
    char path[128];
    sqlite3 *raw = NULL;
    sqlite3_stmt *stmt = NULL;
    uint8_t key[16] = {9};

    /* Two handles both upgrade the same file, and the column exists once. */
    assert_int_equal(device_db_open(fx->dir, &second), VIGIL_OK);
    add_device(fx->db, "mon-1", "device");
    assert_int_equal(device_db_set_psk(second, "mon-1", key, sizeof key), VIGIL_OK);
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", NULL, 0), VIGIL_OK);
    device_db_close(second);

    snprintf(path, sizeof path, "%s/devices.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(raw,
                                        "SELECT count(*) FROM pragma_table_info('devices') "
                                        "WHERE name = 'psk'",
                                        -1, &stmt, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(stmt, 0), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(raw);
}

static void test_version_own_writes(void **state)
{
    struct fixture *fx = *state;
    struct acl_rule rule = make_rule(ACL_SUBJECT_ROLE, "ops", ACL_PUBLISH, "a/#");
    uint8_t key[16] = {1};
    uint64_t v0 = device_db_version(fx->db);
    uint64_t v1;
    uint64_t v2;
    uint64_t v3;
    uint64_t v4;
    uint64_t v5;

    assert_int_equal(device_db_version(fx->db), v0);
    add_device(fx->db, "mon-1", "device");
    v1 = device_db_version(fx->db);
    assert_true(v1 != v0);
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_OK);
    v2 = device_db_version(fx->db);
    assert_true(v2 != v1);
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, sizeof key), VIGIL_OK);
    v3 = device_db_version(fx->db);
    assert_true(v3 != v2);
    assert_int_equal(acl_db_remove(fx->db, rule.id), VIGIL_OK);
    v4 = device_db_version(fx->db);
    assert_true(v4 != v3);
    assert_int_equal(device_db_remove(fx->db, "mon-1"), VIGIL_OK);
    v5 = device_db_version(fx->db);
    assert_true(v5 != v4);
    /* Reads and failed writes change nothing. */
    assert_int_equal(acl_db_remove(fx->db, rule.id), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(device_db_version(fx->db), v5);
}

static void test_version_other_handle(void **state)
{
    struct fixture *fx = *state;
    struct device_db *second = NULL;
    struct acl_rule rule = make_rule(ACL_SUBJECT_DEVICE, "mon-9", ACL_SUBSCRIBE, "x/%d");
    uint64_t v0;
    uint64_t v1;
    uint64_t v2;

    assert_int_equal(device_db_open(fx->dir, &second), VIGIL_OK);
    v0 = device_db_version(fx->db);
    assert_int_equal(acl_db_add(second, &rule), VIGIL_OK);
    v1 = device_db_version(fx->db);
    assert_true(v1 != v0);
    assert_int_equal(device_db_version(fx->db), v1);
    add_device(second, "mon-9", "device");
    v2 = device_db_version(fx->db);
    assert_true(v2 != v1);
    device_db_close(second);
}

/* Patterns collected by device_snapshot_patterns. */
struct pattern_list {
    char patterns[8][256];
    size_t n;
};

static void collect_pattern(void *ctx, const char *pattern)
{
    struct pattern_list *list = ctx;

    if (list->n < 8)
        snprintf(list->patterns[list->n++], 256, "%s", pattern);
}

static void test_snapshot_find_devices(void **state)
{
    struct fixture *fx = *state;
    struct device_snapshot *snap = NULL;
    const struct device_info *info;
    uint8_t out[64];

    add_device(fx->db, "mon-1", "device");
    add_device(fx->db, "station-1", "monitor");
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_int_equal(device_snapshot_count(snap), 2);
    info = device_snapshot_find(snap, "station-1");
    assert_non_null(info);
    assert_string_equal(info->id, "station-1");
    assert_string_equal(info->role, "monitor");
    assert_true(info->created_at > 0);
    assert_null(device_snapshot_find(snap, "mon-2"));
    assert_null(device_snapshot_find(snap, NULL));
    assert_int_equal(device_snapshot_psk(snap, "mon-1", out, sizeof out), 0);
    assert_int_equal(device_snapshot_psk(snap, "mon-2", out, sizeof out), 0);

    /* The snapshot is a copy: later writes do not change it. */
    assert_int_equal(device_db_remove(fx->db, "mon-1"), VIGIL_OK);
    assert_non_null(device_snapshot_find(snap, "mon-1"));
    device_snapshot_free(snap);
}

static void test_snapshot_patterns(void **state)
{
    struct fixture *fx = *state;
    struct device_snapshot *snap = NULL;
    struct pattern_list list = {0};
    struct acl_rule rules[] = {
        make_rule(ACL_SUBJECT_DEVICE, "mon-1", ACL_PUBLISH, "north/icu3/+/%d/alarm"),
        make_rule(ACL_SUBJECT_DEVICE, "mon-1", ACL_SUBSCRIBE, "north/icu3/+/%d/cmd"),
        make_rule(ACL_SUBJECT_ROLE, "device", ACL_PUBLISH, "fleet/%d/status"),
        make_rule(ACL_SUBJECT_ROLE, "monitor", ACL_PUBLISH, "north/ack/#"),
        make_rule(ACL_SUBJECT_DEVICE, "mon-2", ACL_PUBLISH, "other/#"),
    };

    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        assert_int_equal(acl_db_add(fx->db, &rules[i]), VIGIL_OK);
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_int_equal(device_snapshot_count(snap), 0);

    device_snapshot_patterns(snap, "mon-1", "device", ACL_PUBLISH, collect_pattern, &list);
    assert_int_equal(list.n, 2);
    assert_string_equal(list.patterns[0], "north/icu3/+/%d/alarm");
    assert_string_equal(list.patterns[1], "fleet/%d/status");

    list.n = 0;
    device_snapshot_patterns(snap, "mon-1", "device", ACL_SUBSCRIBE, collect_pattern, &list);
    assert_int_equal(list.n, 1);
    assert_string_equal(list.patterns[0], "north/icu3/+/%d/cmd");

    list.n = 0;
    device_snapshot_patterns(snap, NULL, "monitor", ACL_PUBLISH, collect_pattern, &list);
    assert_int_equal(list.n, 1);
    assert_string_equal(list.patterns[0], "north/ack/#");

    /* A device named like a role gets only its own rules, and the reverse. */
    list.n = 0;
    device_snapshot_patterns(snap, "monitor", "mon-1", ACL_PUBLISH, collect_pattern, &list);
    assert_int_equal(list.n, 0);
    device_snapshot_patterns(snap, "mon-3", NULL, ACL_PUBLISH, collect_pattern, &list);
    assert_int_equal(list.n, 0);
    device_snapshot_free(snap);
}

static void test_snapshot_free_releases_memory(void **state)
{
    struct fixture *fx = *state;
    struct device_snapshot *snap = NULL;
    struct acl_rule rule = make_rule(ACL_SUBJECT_ROLE, "ops", ACL_PUBLISH, "a/#");
    uint8_t key[32] = {5};
    size_t before;

    add_device(fx->db, "mon-1", "device");
    assert_int_equal(device_db_set_psk(fx->db, "mon-1", key, sizeof key), VIGIL_OK);
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_OK);
    before = vigil_alloc_in_use();
    assert_int_equal(device_snapshot_load(fx->db, &snap), VIGIL_OK);
    assert_true(vigil_alloc_in_use() > before);
    device_snapshot_free(snap);
    device_snapshot_free(NULL);
    assert_int_equal(vigil_alloc_in_use(), before);
}

static void test_snapshot_load_out_of_memory(void **state)
{
    struct fixture *fx = *state;
    struct device_snapshot *snap = NULL;
    struct acl_rule rule = make_rule(ACL_SUBJECT_ROLE, "ops", ACL_PUBLISH, "a/#");
    size_t before;
    vigil_err rc = VIGIL_ERR_NOMEM;

    add_device(fx->db, "mon-1", "device");
    add_device(fx->db, "mon-2", "device");
    assert_int_equal(acl_db_add(fx->db, &rule), VIGIL_OK);
    before = vigil_alloc_in_use();
    /* Fails each allocation in turn until the load succeeds; every failed
     * load releases what it took. */
    for (uint64_t n = 1; rc == VIGIL_ERR_NOMEM && n < 100; n++) {
        vigil_alloc_fail_after(n);
        rc = device_snapshot_load(fx->db, &snap);
        vigil_alloc_fail_after(0);
        if (rc == VIGIL_ERR_NOMEM) {
            assert_null(snap);
            assert_int_equal(vigil_alloc_in_use(), before);
        }
    }
    assert_int_equal(rc, VIGIL_OK);
    assert_int_equal(device_snapshot_count(snap), 2);
    device_snapshot_free(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rule_add_list_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_invalid_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_valid_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rule_invalid_subjects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_psk_set_clear, setup, teardown),
        cmocka_unit_test_setup_teardown(test_psk_length_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_psk_column_added_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_own_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_other_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_find_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_patterns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_free_releases_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_load_out_of_memory, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
