/* Tests for the record queues between the hub and its I/O threads: record
 * layout, order across pushes, flags, storage reuse, the limit, and one
 * producer thread against one consumer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/ioq.h"

#define BIG (64u * 1024 * 1024)

static void test_put_next_round_trip(void **state)
{
    struct vigil_buf b;
    struct ioq_rec rec;
    const uint8_t *data;
    size_t off = 0;
    int x;

    vigil_buf_init(&b, BIG);
    assert_int_equal(ioq_put(&b, 3, &x, 42, "abc", 3), VIGIL_OK);
    assert_int_equal(ioq_put(&b, 4, NULL, 0, NULL, 0), VIGIL_OK);
    assert_int_equal(b.len % 8, 0);
    assert_true(ioq_next(&b, &off, &rec, &data));
    assert_int_equal(rec.kind, 3);
    assert_ptr_equal(rec.ref, &x);
    assert_int_equal(rec.arg, 42);
    assert_int_equal(rec.len, 3);
    assert_memory_equal(data, "abc", 3);
    assert_true(ioq_next(&b, &off, &rec, &data));
    assert_int_equal(rec.kind, 4);
    assert_int_equal(rec.len, 0);
    assert_false(ioq_next(&b, &off, &rec, &data));
    vigil_buf_release(&b);
}

static void test_push_keeps_order(void **state)
{
    struct ioq q;
    struct vigil_buf stage, work;
    struct ioq_rec rec;
    const uint8_t *data;
    size_t off = 0;

    vigil_buf_init(&stage, BIG);
    vigil_buf_init(&work, BIG);
    assert_int_equal(ioq_init(&q, BIG), VIGIL_OK);
    assert_int_equal(ioq_put(&stage, 1, NULL, 1, NULL, 0), VIGIL_OK);
    assert_true(ioq_push(&q, &stage, 0) > 0);
    assert_int_equal(stage.len, 0);
    assert_int_equal(ioq_put(&stage, 1, NULL, 2, "zz", 2), VIGIL_OK);
    assert_true(ioq_push(&q, &stage, 0) > 0);
    assert_int_equal(ioq_take(&q, &work), 0);
    assert_int_equal(ioq_queued(&q), 0);
    for (uint64_t want = 1; want <= 2; want++) {
        assert_true(ioq_next(&work, &off, &rec, &data));
        assert_int_equal(rec.arg, want);
    }
    assert_false(ioq_next(&work, &off, &rec, &data));
    vigil_buf_release(&stage);
    vigil_buf_release(&work);
    ioq_free(&q);
}

static void test_flags_cleared_by_take(void **state)
{
    struct ioq q;
    struct vigil_buf stage, work;

    vigil_buf_init(&stage, BIG);
    vigil_buf_init(&work, BIG);
    assert_int_equal(ioq_init(&q, BIG), VIGIL_OK);
    assert_int_equal(ioq_put(&stage, 1, NULL, 0, NULL, 0), VIGIL_OK);
    ioq_push(&q, &stage, 1);
    assert_int_equal(ioq_put(&stage, 1, NULL, 0, NULL, 0), VIGIL_OK);
    ioq_push(&q, &stage, 2);
    assert_int_equal(ioq_take(&q, &work), 3);
    work.len = 0;
    assert_int_equal(ioq_take(&q, &work), 0);
    vigil_buf_release(&stage);
    vigil_buf_release(&work);
    ioq_free(&q);
}

/* After the first rounds, buffers only change hands: nothing is allocated. */
static void test_steady_flow_allocates_nothing(void **state)
{
    struct ioq q;
    struct vigil_buf stage, work;
    uint8_t payload[100] = {0};
    size_t before = 0;

    vigil_buf_init(&stage, BIG);
    vigil_buf_init(&work, BIG);
    assert_int_equal(ioq_init(&q, BIG), VIGIL_OK);
    for (int round = 0; round < 100; round++) {
        if (round == 10)
            before = vigil_alloc_in_use();
        for (int i = 0; i < 20; i++)
            assert_int_equal(ioq_put(&stage, 1, NULL, 0, payload, sizeof payload), VIGIL_OK);
        assert_true(ioq_push(&q, &stage, 0) > 0);
        ioq_take(&q, &work);
        work.len = 0;
    }
    assert_int_equal(vigil_alloc_in_use(), before);
    vigil_buf_release(&stage);
    vigil_buf_release(&work);
    ioq_free(&q);
}

static void test_push_past_limit_keeps_stage(void **state)
{
    struct ioq q;
    struct vigil_buf stage;
    uint8_t payload[40] = {0};

    vigil_buf_init(&stage, 256);
    assert_int_equal(ioq_init(&q, 256), VIGIL_OK);
    assert_int_equal(ioq_put(&stage, 1, NULL, 0, payload, sizeof payload), VIGIL_OK);
    assert_true(ioq_push(&q, &stage, 0) > 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ioq_put(&stage, 1, NULL, 0, payload, sizeof payload), VIGIL_OK);
    assert_int_equal(ioq_put(&stage, 1, NULL, 0, payload, 300), VIGIL_ERR_LIMIT);
    assert_int_equal(ioq_push(&q, &stage, 0), 0);
    assert_int_equal(stage.len, 4 * (sizeof(struct ioq_rec) + 40));
    vigil_buf_release(&stage);
    ioq_free(&q);
}

#define THREAD_RECORDS 200000u

struct producer {
    struct ioq *q;
};

static void produce(void *arg)
{
    struct producer *p = arg;
    struct vigil_buf stage;

    vigil_buf_init(&stage, BIG);
    for (uint64_t i = 1; i <= THREAD_RECORDS; i++) {
        assert_int_equal(ioq_put(&stage, 1, NULL, i, &i, sizeof i), VIGIL_OK);
        if (i % 37 == 0 || i == THREAD_RECORDS)
            assert_true(ioq_push(p->q, &stage, 0) > 0);
    }
    vigil_buf_release(&stage);
}

/* Every record arrives once, in order, while both threads run. */
static void test_two_threads_in_order(void **state)
{
    struct ioq q;
    struct vigil_buf work;
    struct producer p = {&q};
    uv_thread_t tid;
    uint64_t next = 1;

    vigil_buf_init(&work, BIG);
    assert_int_equal(ioq_init(&q, BIG), VIGIL_OK);
    assert_int_equal(uv_thread_create(&tid, produce, &p), 0);
    while (next <= THREAD_RECORDS) {
        struct ioq_rec rec;
        const uint8_t *data;
        size_t off = 0;

        ioq_take(&q, &work);
        while (ioq_next(&work, &off, &rec, &data)) {
            uint64_t v;

            memcpy(&v, data, sizeof v);
            assert_int_equal(rec.arg, next);
            assert_int_equal(v, next);
            next++;
        }
        work.len = 0;
    }
    uv_thread_join(&tid);
    assert_int_equal(ioq_queued(&q), 0);
    vigil_buf_release(&work);
    ioq_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_next_round_trip),
        cmocka_unit_test(test_push_keeps_order),
        cmocka_unit_test(test_flags_cleared_by_take),
        cmocka_unit_test(test_steady_flow_allocates_nothing),
        cmocka_unit_test(test_push_past_limit_keeps_stage),
        cmocka_unit_test(test_two_threads_in_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
