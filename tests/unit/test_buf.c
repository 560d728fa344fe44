/* Tests for the capped byte buffer: growth up to its limit, consuming,
 * release, and limits beyond 32 bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_buf_grows_to_limit(void **state)
{
    struct vigil_buf b;
    uint8_t chunk[100];

    (void)state;
    memset(chunk, 'x', sizeof chunk);
    vigil_buf_init(&b, 1000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(vigil_buf_append(&b, chunk, sizeof chunk), VIGIL_OK);
    assert_int_equal(b.len, 1000);
    assert_int_equal(b.cap, 1000);
    assert_int_equal(vigil_buf_append(&b, chunk, 1), VIGIL_ERR_LIMIT);
    assert_int_equal(b.len, 1000);
    vigil_buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.limit, 1000);
}

static void test_buf_consume_moves_rest(void **state)
{
    struct vigil_buf b;

    (void)state;
    vigil_buf_init(&b, 64);
    assert_int_equal(vigil_buf_append(&b, "abcdef", 6), VIGIL_OK);
    vigil_buf_consume(&b, 2);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "cdef", 4);
    vigil_buf_consume(&b, 10);
    assert_int_equal(b.len, 0);
    vigil_buf_release(&b);
}

static void test_buf_huge_request_rejected(void **state)
{
    struct vigil_buf b;

    (void)state;
    /* A limit past 32 bits is lowered to UINT32_MAX, and a request past
     * it fails without wrapping around. */
    vigil_buf_init(&b, (size_t)UINT32_MAX + 100);
    assert_int_equal(b.limit, UINT32_MAX);
    assert_int_equal(vigil_buf_reserve(&b, (size_t)UINT32_MAX + 1), VIGIL_ERR_LIMIT);
    assert_int_equal(vigil_buf_reserve(&b, SIZE_MAX), VIGIL_ERR_LIMIT);
    assert_null(b.data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_grows_to_limit),
        cmocka_unit_test(test_buf_consume_moves_rest),
        cmocka_unit_test(test_buf_huge_request_rejected),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
