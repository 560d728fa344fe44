/* Tests for the open-addressing hash map: copied and borrowed keys,
 * replacement, removal with tombstones, growth and iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/map.h"

#define MANY 5000

static void test_map_copies_keys(void **state)
{
    struct vigil_map m;
    char key[16] = "alpha";
    int a = 1;

    (void)state;
    vigil_map_init(&m);
    assert_int_equal(vigil_map_put(&m, key, strlen(key), &a), VIGIL_OK);
    /* The caller's buffer changes; the map still finds the old key. */
    strcpy(key, "beta");
    assert_ptr_equal(vigil_map_get(&m, "alpha", 5), &a);
    assert_null(vigil_map_get(&m, "beta", 4));
    vigil_map_free(&m);
}

static void test_map_borrows_keys(void **state)
{
    struct vigil_map m;
    char *key = vigil_strdup("gamma");
    size_t before = vigil_alloc_in_use();
    struct vigil_map_slot *slot;
    size_t pos = 0;
    int a = 1;

    (void)state;
    vigil_map_init_borrowed(&m);
    assert_int_equal(vigil_map_put(&m, key, 5, &a), VIGIL_OK);
    /* Only the slot array was allocated, no key copy (the allocator may
     * round the array up by less than one small block). */
    assert_true(vigil_alloc_in_use() - before >= 16 * sizeof(struct vigil_map_slot));
    assert_true(vigil_alloc_in_use() - before < 16 * sizeof(struct vigil_map_slot) + 16);
    slot = vigil_map_next(&m, &pos);
    assert_non_null(slot);
    assert_ptr_equal(slot->key, key);
    assert_ptr_equal(vigil_map_get(&m, "gamma", 5), &a);
    assert_ptr_equal(vigil_map_remove(&m, "gamma", 5), &a);
    vigil_map_free(&m);
    assert_true(m.borrow_keys);
    vigil_free(key);
}

static void test_map_borrowed_replace_moves_key(void **state)
{
    struct vigil_map m;
    char *first = vigil_strdup("delta");
    char *second = vigil_strdup("delta");
    struct vigil_map_slot *slot;
    size_t pos = 0;
    int a = 1, b = 2;

    (void)state;
    vigil_map_init_borrowed(&m);
    assert_int_equal(vigil_map_put(&m, first, 5, &a), VIGIL_OK);
    assert_int_equal(vigil_map_put(&m, second, 5, &b), VIGIL_OK);
    vigil_free(first);
    slot = vigil_map_next(&m, &pos);
    assert_ptr_equal(slot->key, second);
    assert_ptr_equal(vigil_map_get(&m, "delta", 5), &b);
    assert_int_equal(m.count, 1);
    vigil_map_free(&m);
    vigil_free(second);
}

static void test_map_many_keys(void **state)
{
    static int values[MANY];
    struct vigil_map m;
    char key[32];
    size_t pos = 0, seen = 0;

    (void)state;
    vigil_map_init(&m);
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(key, sizeof key, "client-%d", i);

        assert_int_equal(vigil_map_put(&m, key, (size_t)n, &values[i]), VIGIL_OK);
    }
    assert_int_equal(m.count, MANY);
    /* Remove every other key, leaving tombstones between the rest. */
    for (int i = 0; i < MANY; i += 2) {
        int n = snprintf(key, sizeof key, "client-%d", i);

        assert_ptr_equal(vigil_map_remove(&m, key, (size_t)n), &values[i]);
    }
    for (int i = 0; i < MANY; i++) {
        int n = snprintf(key, sizeof key, "client-%d", i);

        if (i % 2 == 0)
            assert_null(vigil_map_get(&m, key, (size_t)n));
        else
            assert_ptr_equal(vigil_map_get(&m, key, (size_t)n), &values[i]);
    }
    while (vigil_map_next(&m, &pos) != NULL)
        seen++;
    assert_int_equal(seen, MANY / 2);
    vigil_map_free(&m);
}

static void test_map_tombstones_reused(void **state)
{
    struct vigil_map m;
    int a = 1;
    size_t cap;

    (void)state;
    vigil_map_init(&m);
    assert_int_equal(vigil_map_put(&m, "k", 1, &a), VIGIL_OK);
    cap = m.cap;
    /* Adding and removing one key many times must not grow the map. */
    for (int i = 0; i < 10000; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "t%d", i);

        assert_int_equal(vigil_map_put(&m, key, (size_t)n, &a), VIGIL_OK);
        assert_ptr_equal(vigil_map_remove(&m, key, (size_t)n), &a);
    }
    assert_int_equal(m.cap, cap);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(vigil_map_get(&m, "k", 1), &a);
    vigil_map_free(&m);
}

static void test_map_slot_size(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct vigil_map_slot), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_copies_keys),
        cmocka_unit_test(test_map_borrows_keys),
        cmocka_unit_test(test_map_borrowed_replace_moves_key),
        cmocka_unit_test(test_map_many_keys),
        cmocka_unit_test(test_map_tombstones_reused),
        cmocka_unit_test(test_map_slot_size),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
