/* Tests for the failed-login limiter: bursts, refill, reset and the
 * least-recently-used bound on keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/ratelimit.h"
#include "core/alloc.h"

static void fail_times(struct ratelimit *rl, const char *key, int n, uint64_t now_ms)
{
    for (int i = 0; i < n; i++)
        ratelimit_fail(rl, key, now_ms);
}

static void test_new_rejects_zero(void **state)
{
    assert_null(ratelimit_new(0, 6, 10));
    assert_null(ratelimit_new(5, 6, 0));
}

static void test_burst_then_blocked(void **state)
{
    struct ratelimit *rl = ratelimit_new(5, 6, 100);

    assert_non_null(rl);
    assert_false(ratelimit_blocked(rl, "10.0.0.7", 1000));
    for (int i = 0; i < 4; i++) {
        ratelimit_fail(rl, "10.0.0.7", 1000);
        assert_false(ratelimit_blocked(rl, "10.0.0.7", 1000));
    }
    ratelimit_fail(rl, "10.0.0.7", 1000);
    assert_true(ratelimit_blocked(rl, "10.0.0.7", 1000));
    assert_false(ratelimit_blocked(rl, "10.0.0.8", 1000));
    /* More failures while blocked do not go below zero. */
    fail_times(rl, "10.0.0.7", 50, 1000);
    assert_true(ratelimit_blocked(rl, "10.0.0.7", 1000));
    ratelimit_free(rl);
}

static void test_refill_over_time(void **state)
{
    /* 6 per minute: one token every 10 s. */
    struct ratelimit *rl = ratelimit_new(2, 6, 100);

    fail_times(rl, "mon-0042", 2, 0);
    assert_true(ratelimit_blocked(rl, "mon-0042", 0));
    assert_true(ratelimit_blocked(rl, "mon-0042", 9999));
    assert_false(ratelimit_blocked(rl, "mon-0042", 10000));
    ratelimit_fail(rl, "mon-0042", 10000);
    assert_true(ratelimit_blocked(rl, "mon-0042", 10000));

    /* Partial refills add up across calls. */
    assert_true(ratelimit_blocked(rl, "mon-0042", 15000));
    assert_false(ratelimit_blocked(rl, "mon-0042", 20000));
    ratelimit_free(rl);
}

static void test_refill_caps_at_burst(void **state)
{
    struct ratelimit *rl = ratelimit_new(3, 60, 100);

    fail_times(rl, "k", 3, 0);
    assert_true(ratelimit_blocked(rl, "k", 0));
    /* An hour refills at most the burst, and a full bucket is forgotten. */
    assert_false(ratelimit_blocked(rl, "k", 3600000));
    assert_int_equal(ratelimit_keys(rl), 0);
    fail_times(rl, "k", 2, 3600000);
    assert_false(ratelimit_blocked(rl, "k", 3600000));
    ratelimit_fail(rl, "k", 3600000);
    assert_true(ratelimit_blocked(rl, "k", 3600000));
    ratelimit_free(rl);
}

static void test_no_refill_when_zero_rate(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 0, 10);

    ratelimit_fail(rl, "k", 0);
    assert_true(ratelimit_blocked(rl, "k", UINT64_MAX));
    ratelimit_free(rl);
}

static void test_clock_backwards_no_refill(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 60000, 10);

    ratelimit_fail(rl, "k", 5000);
    assert_true(ratelimit_blocked(rl, "k", 1000));
    assert_true(ratelimit_blocked(rl, "k", 5000));
    /* 60000 per minute is one token per millisecond. */
    assert_false(ratelimit_blocked(rl, "k", 5001));
    ratelimit_free(rl);
}

static void test_huge_elapsed_no_overflow(void **state)
{
    struct ratelimit *rl = ratelimit_new(UINT32_MAX, UINT32_MAX, 10);

    fail_times(rl, "k", 3, 0);
    assert_false(ratelimit_blocked(rl, "k", UINT64_MAX));
    assert_int_equal(ratelimit_keys(rl), 0);
    ratelimit_free(rl);
}

static void test_reset_forgets_key(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 1, 10);

    ratelimit_fail(rl, "a", 0);
    ratelimit_fail(rl, "b", 0);
    assert_true(ratelimit_blocked(rl, "a", 0));
    assert_int_equal(ratelimit_keys(rl), 2);
    ratelimit_reset(rl, "a");
    assert_false(ratelimit_blocked(rl, "a", 0));
    assert_true(ratelimit_blocked(rl, "b", 0));
    assert_int_equal(ratelimit_keys(rl), 1);
    ratelimit_reset(rl, "unknown");
    assert_int_equal(ratelimit_keys(rl), 1);
    ratelimit_free(rl);
}

static void test_eviction_order(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 0, 3);

    ratelimit_fail(rl, "a", 0);
    ratelimit_fail(rl, "b", 1);
    ratelimit_fail(rl, "c", 2);
    /* Checking "a" makes it the most recently used, so "b" goes first. */
    assert_true(ratelimit_blocked(rl, "a", 3));
    ratelimit_fail(rl, "d", 4);
    assert_int_equal(ratelimit_keys(rl), 3);
    assert_false(ratelimit_blocked(rl, "b", 5));
    assert_true(ratelimit_blocked(rl, "a", 5));
    assert_true(ratelimit_blocked(rl, "c", 5));
    assert_true(ratelimit_blocked(rl, "d", 5));

    /* A failure also counts as use: "c" is now the oldest after this. */
    ratelimit_fail(rl, "a", 6);
    ratelimit_fail(rl, "d", 6);
    ratelimit_fail(rl, "e", 7);
    assert_false(ratelimit_blocked(rl, "c", 8));
    assert_true(ratelimit_blocked(rl, "a", 8));
    assert_true(ratelimit_blocked(rl, "d", 8));
    assert_true(ratelimit_blocked(rl, "e", 8));
    ratelimit_free(rl);
}

static void test_many_keys_bounded(void **state)
{
    const size_t max_keys = 1000;
    struct ratelimit *rl = ratelimit_new(1, 0, max_keys);
    char key[32];

    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "198.51.100.%d:%d", i % 256, i);
        ratelimit_fail(rl, key, (uint64_t)i);
        assert_true(ratelimit_keys(rl) <= max_keys);
    }
    assert_int_equal(ratelimit_keys(rl), max_keys);
    /* The last max_keys keys are kept, all older ones were evicted. */
    for (int i = 100000 - (int)max_keys; i < 100000; i++) {
        snprintf(key, sizeof key, "198.51.100.%d:%d", i % 256, i);
        assert_true(ratelimit_blocked(rl, key, 200000));
    }
    snprintf(key, sizeof key, "198.51.100.%d:%d", 98999 % 256, 98999);
    assert_false(ratelimit_blocked(rl, key, 200000));
    ratelimit_free(rl);
}

static void test_long_keys_cut(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 0, 10);
    char a[300];
    char b[300];

    memset(a, 'x', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    b[200] = 'y';
    ratelimit_fail(rl, a, 0);
    assert_true(ratelimit_blocked(rl, b, 0));
    assert_false(ratelimit_blocked(rl, "x", 0));
    ratelimit_free(rl);
}

static void test_free_releases_memory(void **state)
{
    size_t before = vigil_alloc_in_use();
    struct ratelimit *rl = ratelimit_new(2, 6, 50);
    char key[16];

    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        ratelimit_fail(rl, key, 0);
    }
    ratelimit_free(rl);
    ratelimit_free(NULL);
    assert_int_equal(vigil_alloc_in_use(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_zero),
        cmocka_unit_test(test_burst_then_blocked),
        cmocka_unit_test(test_refill_over_time),
        cmocka_unit_test(test_refill_caps_at_burst),
        cmocka_unit_test(test_no_refill_when_zero_rate),
        cmocka_unit_test(test_clock_backwards_no_refill),
        cmocka_unit_test(test_huge_elapsed_no_overflow),
        cmocka_unit_test(test_reset_forgets_key),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_many_keys_bounded),
        cmocka_unit_test(test_long_keys_cut),
        cmocka_unit_test(test_free_releases_memory),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
