/* Tests for the device inventory and password hashing. */
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

#include "auth/device.h"

struct fixture {
    char dir[64];
    struct device_db *db;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);

    snprintf(fx->dir, sizeof fx->dir, "/tmp/vigil-device-XXXXXX");
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

static struct device_info make_info(const char *id)
{
    struct device_info info;

    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", id);
    snprintf(info.type, sizeof info.type, "bedside-monitor");
    snprintf(info.unit, sizeof info.unit, "icu3");
    return info;
}

static vigil_err verify_text(struct device_db *db, const char *id, const char *pw,
                             struct device_info *info)
{
    return device_db_verify(db, id, (const uint8_t *)pw, strlen(pw), info);
}

static void test_add_then_verify(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("mon-0042");
    struct device_info got;
    char pw[33];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(strlen(pw), 32);
    assert_int_equal(strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     32);
    memset(&got, 0xAA, sizeof got);
    assert_int_equal(verify_text(fx->db, "mon-0042", pw, &got), VIGIL_OK);
    assert_string_equal(got.id, "mon-0042");
    assert_string_equal(got.role, "device");
    assert_string_equal(got.type, "bedside-monitor");
    assert_string_equal(got.unit, "icu3");
    assert_true(got.created_at > 1700000000);
}

static void test_verify_wrong_password(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("pump-1");
    char pw[33];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(verify_text(fx->db, "pump-1", "not-the-password", NULL), VIGIL_ERR_AUTH);
    assert_int_equal(verify_text(fx->db, "pump-1", "", NULL), VIGIL_ERR_AUTH);
    pw[31] = pw[31] == 'A' ? 'B' : 'A';
    assert_int_equal(verify_text(fx->db, "pump-1", pw, NULL), VIGIL_ERR_AUTH);
    pw[31] = '\0';
    assert_int_equal(verify_text(fx->db, "pump-1", pw, NULL), VIGIL_ERR_AUTH);
}

static void test_verify_unknown_device(void **state)
{
    struct fixture *fx = *state;

    assert_int_equal(verify_text(fx->db, "ghost", "whatever", NULL), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(verify_text(fx->db, "a/b", "whatever", NULL), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(verify_text(fx->db, "", "whatever", NULL), VIGIL_ERR_NOT_FOUND);
}

static void test_add_duplicate_id(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("dup");
    char pw[33];
    char pw2[33];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(device_db_add(fx->db, &info, pw2, sizeof pw2), VIGIL_ERR_EXISTS);
    /* The first password still works. */
    assert_int_equal(verify_text(fx->db, "dup", pw, NULL), VIGIL_OK);
}

static void test_id_validation(void **state)
{
    struct fixture *fx = *state;
    static const char *const bad[] = {
        "", "a+b", "a#b", "a/b", "a\x01", "a b", "caf\xc3\xa9", "a$b", "a\\b",
        "0123456789012345678901234567890123456789012345678901234567890123X",
    };
    char pw[33];

    assert_true(device_id_valid("a"));
    assert_true(device_id_valid("Mon_01.icu-3"));
    assert_true(device_id_valid("0123456789012345678901234567890123456789012345678901234567890123"));
    assert_false(device_id_valid(NULL));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct device_info info;

        assert_false(device_id_valid(bad[i]));
        memset(&info, 0, sizeof info);
        memcpy(info.id, bad[i], strnlen(bad[i], DEVICE_ID_MAX));
        if (strlen(bad[i]) > DEVICE_ID_MAX)
            continue; /* too long to fit in info.id at all */
        assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_ERR_INVALID);
    }
}

static void test_add_small_password_buffer(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("small");
    char pw[32];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_ERR_INVALID);
    assert_int_equal(device_db_get(fx->db, "small", &info), VIGIL_ERR_NOT_FOUND);
}

static void collect_ids(void *ctx, const struct device_info *info)
{
    char *out = ctx;

    strcat(out, info->id);
    strcat(out, ",");
}

static void test_list_in_id_order(void **state)
{
    struct fixture *fx = *state;
    static const char *const ids[] = {"c-3", "a-1", "b-2"};
    char listed[128] = "";
    char pw[33];

    for (size_t i = 0; i < 3; i++) {
        struct device_info info = make_info(ids[i]);

        assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    }
    assert_int_equal(device_db_list(fx->db, collect_ids, listed), VIGIL_OK);
    assert_string_equal(listed, "a-1,b-2,c-3,");
}

static void test_remove_device(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("gone");
    char pw[33];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(device_db_get(fx->db, "gone", &info), VIGIL_OK);
    assert_int_equal(device_db_remove(fx->db, "gone"), VIGIL_OK);
    assert_int_equal(device_db_get(fx->db, "gone", &info), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(verify_text(fx->db, "gone", pw, NULL), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(device_db_remove(fx->db, "gone"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(device_db_remove(fx->db, "a/b"), VIGIL_ERR_NOT_FOUND);
}

static void test_role_kept(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("gw-1");
    struct device_info got;
    char pw[33];

    snprintf(info.role, sizeof info.role, "gateway");
    info.created_at = 1767323045;
    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(device_db_get(fx->db, "gw-1", &got), VIGIL_OK);
    assert_string_equal(got.role, "gateway");
    assert_int_equal(got.created_at, 1767323045);
}

static void test_second_handle_sees_writes(void **state)
{
    struct fixture *fx = *state;
    struct device_db *other;
    struct device_info info = make_info("late-1");
    char pw[33];

    assert_int_equal(device_db_open(fx->dir, &other), VIGIL_OK);
    assert_int_equal(device_db_add(other, &info, pw, sizeof pw), VIGIL_OK);
    assert_int_equal(verify_text(fx->db, "late-1", pw, NULL), VIGIL_OK);
    device_db_close(other);
}

static void test_hash_format(void **state)
{
    char enc[160];
    unsigned iterations = 0;
    char salt[64];
    char hash[64];

    (void)state;
    assert_int_equal(password_hash((const uint8_t *)"secret", 6, 1000, enc, sizeof enc), VIGIL_OK);
    assert_int_equal(strncmp(enc, "pbkdf2-sha256$1000$", 19), 0);
    assert_int_equal(sscanf(enc, "pbkdf2-sha256$%u$%63[^$]$%63s", &iterations, salt, hash), 3);
    assert_int_equal(iterations, 1000);
    assert_int_equal(strlen(salt), 22); /* 16 bytes */
    assert_int_equal(strlen(hash), 43); /* 32 bytes */
    assert_int_equal(password_verify((const uint8_t *)"secret", 6, enc), VIGIL_OK);
    assert_int_equal(password_verify((const uint8_t *)"secreT", 6, enc), VIGIL_ERR_AUTH);
    assert_int_equal(password_hash((const uint8_t *)"x", 1, 0, enc, sizeof enc), VIGIL_ERR_INVALID);
    assert_int_equal(password_hash((const uint8_t *)"x", 1, 1, enc, 20), VIGIL_ERR_LIMIT);
}

static void test_hash_salted(void **state)
{
    char a[160];
    char b[160];

    (void)state;
    assert_int_equal(password_hash((const uint8_t *)"same", 4, 10, a, sizeof a), VIGIL_OK);
    assert_int_equal(password_hash((const uint8_t *)"same", 4, 10, b, sizeof b), VIGIL_OK);
    assert_string_not_equal(a, b);
}

static void test_verify_tampered_hash(void **state)
{
    char enc[160];
    char bad[200];
    char *last;

    (void)state;
    assert_int_equal(password_hash((const uint8_t *)"pw", 2, 50, enc, sizeof enc), VIGIL_OK);

    /* A changed hash character is a well-formed hash that does not match. */
    snprintf(bad, sizeof bad, "%s", enc);
    last = strrchr(bad, '$') + 1;
    last[0] = last[0] == 'A' ? 'B' : 'A';
    assert_int_equal(password_verify((const uint8_t *)"pw", 2, bad), VIGIL_ERR_AUTH);

    /* A changed iteration count derives a different key. */
    snprintf(bad, sizeof bad, "pbkdf2-sha256$51%s", enc + strlen("pbkdf2-sha256$50"));
    assert_int_equal(password_verify((const uint8_t *)"pw", 2, bad), VIGIL_ERR_AUTH);

    /* Broken structure is reported as invalid. */
    static const char *const malformed[] = {
        "",
        "pbkdf2-sha256$",
        "pbkdf2-sha1$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$0$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$-5$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$99999999999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$50$$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAA",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
        "pbkdf2-sha256$50$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$",
        "pbkdf2-sha256$50$A A$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        vigil_err rc = password_verify((const uint8_t *)"pw", 2, malformed[i]);

        if (rc != VIGIL_ERR_INVALID)
            fail_msg("case %zu (%s): got %s", i, malformed[i], vigil_strerror(rc));
    }
}

/* Rewrites the stored hash of id with sqlite directly. */
static void store_hash(const char *dir, const char *id, const char *hash)
{
    char path[128];
    sqlite3 *db;
    char *sql;

    snprintf(path, sizeof path, "%s/devices.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sql = sqlite3_mprintf("UPDATE devices SET pw_hash = %Q WHERE id = %Q", hash, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    sqlite3_close(db);
}

static void test_verify_corrupt_stored_hash(void **state)
{
    struct fixture *fx = *state;
    struct device_info info = make_info("broken");
    char pw[33];

    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    store_hash(fx->dir, "broken", "garbage");
    assert_int_equal(verify_text(fx->db, "broken", pw, NULL), VIGIL_ERR_AUTH);
}

/* Reads the stored hash of id with sqlite directly. */
static void load_hash(const char *dir, const char *id, char *out, size_t cap)
{
    char path[128];
    sqlite3 *db;
    sqlite3_stmt *stmt;

    snprintf(path, sizeof path, "%s/devices.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT pw_hash FROM devices WHERE id = ?1", -1,
                                        &stmt, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

static void test_iterations_default_and_override(void **state)
{
    struct fixture *fx = *state;
    struct device_db *plain;
    struct device_info info = make_info("slow-1");
    char pw[33];
    char hash[160];

    /* The fixture's handle was opened with the test override. */
    info = make_info("fast-1");
    assert_int_equal(device_db_add(fx->db, &info, pw, sizeof pw), VIGIL_OK);
    load_hash(fx->dir, "fast-1", hash, sizeof hash);
    assert_int_equal(strncmp(hash, "pbkdf2-sha256$10$", 17), 0);

    unsetenv("VIGIL_TEST_PBKDF2_ITERATIONS");
    assert_int_equal(device_db_open(fx->dir, &plain), VIGIL_OK);
    setenv("VIGIL_TEST_PBKDF2_ITERATIONS", "10", 1);
    info = make_info("slow-1");
    assert_int_equal(device_db_add(plain, &info, pw, sizeof pw), VIGIL_OK);
    load_hash(fx->dir, "slow-1", hash, sizeof hash);
    assert_int_equal(strncmp(hash, "pbkdf2-sha256$210000$", 21), 0);
    /* Verification reads the count from the hash, whatever the handle. */
    assert_int_equal(verify_text(fx->db, "slow-1", pw, NULL), VIGIL_OK);
    device_db_close(plain);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_then_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_wrong_password, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_unknown_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_duplicate_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_small_password_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_handle_sees_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_corrupt_stored_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterations_default_and_override, setup, teardown),
        cmocka_unit_test(test_hash_format),
        cmocka_unit_test(test_hash_salted),
        cmocka_unit_test(test_verify_tampered_hash),
    };

    /* Cheap hashes keep the suite fast; one test checks the default. */
    setenv("VIGIL_TEST_PBKDF2_ITERATIONS", "10", 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
