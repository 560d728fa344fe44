/* Tests for the counted allocation wrappers: page blocks and failure
 * injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/alloc.h"

static void test_pages_counted_by_page(void **state)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t before = vigil_alloc_in_use();
    uint8_t *p = vigil_pages_alloc(page + 1);

    (void)state;
    assert_non_null(p);
    assert_int_equal(vigil_alloc_in_use() - before, 2 * page);
    /* Mapped memory starts zeroed and all of it is writable. */
    for (size_t i = 0; i < 2 * page; i++)
        assert_int_equal(p[i], 0);
    memset(p, 0xAB, 2 * page);
    vigil_pages_free(p, page + 1);
    assert_int_equal(vigil_alloc_in_use(), before);
}

static void test_pages_failure_injected(void **state)
{
    size_t before = vigil_alloc_in_use();

    (void)state;
    vigil_alloc_fail_after(1);
    assert_null(vigil_pages_alloc(100));
    assert_int_equal(vigil_alloc_in_use(), before);
    vigil_pages_free(NULL, 100);
    assert_int_equal(vigil_alloc_in_use(), before);
}

static void test_pages_capped(void **state)
{
    (void)state;
    vigil_alloc_set_limit(vigil_alloc_in_use() + 1024);
    assert_null(vigil_pages_alloc(8192));
    vigil_alloc_set_limit(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_counted_by_page),
        cmocka_unit_test(test_pages_failure_injected),
        cmocka_unit_test(test_pages_capped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
