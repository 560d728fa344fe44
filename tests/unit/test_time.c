/* Unit tests for the clock helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/time.h"

static void test_timespec_add_within_second(void **state)
{
    struct timespec t = {.tv_sec = 10, .tv_nsec = 100};
    struct timespec r = vigil_timespec_add_us(t, 5);

    (void)state;
    assert_int_equal(r.tv_sec, 10);
    assert_int_equal(r.tv_nsec, 5100);
}

static void test_timespec_add_carries(void **state)
{
    struct timespec t = {.tv_sec = 10, .tv_nsec = 999999000};
    struct timespec r = vigil_timespec_add_us(t, 2);

    (void)state;
    assert_int_equal(r.tv_sec, 11);
    assert_int_equal(r.tv_nsec, 1000);
}

static void test_timespec_add_whole_seconds(void **state)
{
    struct timespec t = {.tv_sec = 10, .tv_nsec = 999999999};
    struct timespec r = vigil_timespec_add_us(t, 60999999);

    (void)state;
    assert_int_equal(r.tv_sec, 71);
    assert_int_equal(r.tv_nsec, 999998999);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timespec_add_within_second),
        cmocka_unit_test(test_timespec_add_carries),
        cmocka_unit_test(test_timespec_add_whole_seconds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
