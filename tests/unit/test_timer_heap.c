/* Tests for the deadline heap: ordering, moving and removing nodes, and
 * growth failure, checked against a direct scan of all nodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/timer_heap.h"

#define NODES 500

static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state;
}

/* Every queued node sits at its index and no child is due before its parent. */
static void check_heap(const struct vigil_timer_heap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        assert_int_equal(h->items[i]->index, i);
        if (i > 0)
            assert_true(h->items[(i - 1) / 2]->due <= h->items[i]->due);
    }
}

static uint64_t earliest(const struct vigil_timer_node *nodes, size_t n)
{
    uint64_t min = UINT64_MAX;

    for (size_t i = 0; i < n; i++)
        if (vigil_timer_node_queued(&nodes[i]) && nodes[i].due < min)
            min = nodes[i].due;
    return min;
}

static void test_timer_heap_pops_in_order(void **state)
{
    static struct vigil_timer_node nodes[NODES];
    struct vigil_timer_heap h;
    uint64_t last = 0;

    (void)state;
    vigil_timer_heap_init(&h);
    for (int i = 0; i < NODES; i++) {
        vigil_timer_node_init(&nodes[i]);
        assert_int_equal(vigil_timer_heap_set(&h, &nodes[i], rnd() % 1000), VIGIL_OK);
    }
    check_heap(&h);
    for (int i = 0; i < NODES; i++) {
        struct vigil_timer_node *t = vigil_timer_heap_peek(&h);

        assert_non_null(t);
        assert_true(t->due >= last);
        last = t->due;
        vigil_timer_heap_remove(&h, t);
        assert_false(vigil_timer_node_queued(t));
    }
    assert_null(vigil_timer_heap_peek(&h));
    vigil_timer_heap_free(&h);
}

static void test_timer_heap_random_operations(void **state)
{
    static struct vigil_timer_node nodes[NODES];
    struct vigil_timer_heap h;

    (void)state;
    vigil_timer_heap_init(&h);
    for (int i = 0; i < NODES; i++)
        vigil_timer_node_init(&nodes[i]);
    for (int step = 0; step < 20000; step++) {
        struct vigil_timer_node *t = &nodes[rnd() % NODES];
        struct vigil_timer_node *min;

        /* Queue or move two times out of three, remove otherwise. */
        if (rnd() % 3 != 0)
            assert_int_equal(vigil_timer_heap_set(&h, t, rnd() % 100000), VIGIL_OK);
        else
            vigil_timer_heap_remove(&h, t);
        min = vigil_timer_heap_peek(&h);
        if (min == NULL)
            assert_int_equal(earliest(nodes, NODES), UINT64_MAX);
        else
            assert_int_equal(min->due, earliest(nodes, NODES));
        if (step % 1000 == 0)
            check_heap(&h);
    }
    check_heap(&h);
    vigil_timer_heap_free(&h);
}

static void test_timer_heap_move_keeps_one_entry(void **state)
{
    struct vigil_timer_node a, b;
    struct vigil_timer_heap h;

    (void)state;
    vigil_timer_heap_init(&h);
    vigil_timer_node_init(&a);
    vigil_timer_node_init(&b);
    assert_int_equal(vigil_timer_heap_set(&h, &a, 10), VIGIL_OK);
    assert_int_equal(vigil_timer_heap_set(&h, &b, 20), VIGIL_OK);
    assert_int_equal(vigil_timer_heap_set(&h, &a, 30), VIGIL_OK);
    assert_int_equal(h.n, 2);
    assert_ptr_equal(vigil_timer_heap_peek(&h), &b);
    assert_int_equal(vigil_timer_heap_set(&h, &a, 5), VIGIL_OK);
    assert_ptr_equal(vigil_timer_heap_peek(&h), &a);
    /* Removing a node that is not queued changes nothing. */
    vigil_timer_heap_remove(&h, &a);
    vigil_timer_heap_remove(&h, &a);
    assert_int_equal(h.n, 1);
    assert_ptr_equal(vigil_timer_heap_peek(&h), &b);
    vigil_timer_heap_free(&h);
}

static void test_timer_heap_grow_failure(void **state)
{
    struct vigil_timer_node a;
    struct vigil_timer_heap h;

    (void)state;
    vigil_timer_heap_init(&h);
    vigil_timer_node_init(&a);
    vigil_alloc_fail_after(1);
    assert_int_equal(vigil_timer_heap_set(&h, &a, 1), VIGIL_ERR_NOMEM);
    vigil_alloc_fail_after(0);
    assert_false(vigil_timer_node_queued(&a));
    assert_null(vigil_timer_heap_peek(&h));
    assert_int_equal(vigil_timer_heap_set(&h, &a, 1), VIGIL_OK);
    assert_ptr_equal(vigil_timer_heap_peek(&h), &a);
    vigil_timer_heap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_heap_pops_in_order),
        cmocka_unit_test(test_timer_heap_random_operations),
        cmocka_unit_test(test_timer_heap_move_keeps_one_entry),
        cmocka_unit_test(test_timer_heap_grow_failure),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
