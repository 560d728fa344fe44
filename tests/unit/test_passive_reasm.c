/* Tests for TCP stream reassembly of passive analysis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "passive/reasm.h"

/* What reassembly delivered: the bytes in order and how many gaps. */
struct sink {
    uint8_t out[4096];
    size_t len;
    int gaps;
    int calls;
};

static void collect(void *ctx, const uint8_t *data, size_t len, bool gap)
{
    struct sink *s = ctx;

    assert_true(s->len + len <= sizeof s->out);
    memcpy(s->out + s->len, data, len);
    s->len += len;
    s->gaps += gap;
    s->calls++;
}

static struct reasm_pool pool_default(void)
{
    return (struct reasm_pool){.dir_cap = 4096, .dir_segments = 16, .total_cap = 1 << 20,
                               .hold_us = 2000000};
}

static void push(struct reasm_dir *d, struct reasm_pool *pool, struct sink *s, uint32_t seq,
                 const char *text)
{
    reasm_push(d, pool, 0, seq, (const uint8_t *)text, strlen(text), collect, s);
}

static void test_reasm_in_order(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1000);
    push(&d, &pool, &s, 1000, "abc");
    push(&d, &pool, &s, 1003, "def");
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.out, "abcdef", 6);
    assert_int_equal(s.gaps, 0);
}

static void test_reasm_out_of_order(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1);
    push(&d, &pool, &s, 7, "ghi");
    push(&d, &pool, &s, 4, "def");
    assert_int_equal(s.len, 0);
    assert_true(pool.used > 0);
    push(&d, &pool, &s, 1, "abc");
    assert_int_equal(s.len, 9);
    assert_memory_equal(s.out, "abcdefghi", 9);
    assert_int_equal(pool.used, 0);
    assert_int_equal(d.ooo_count, 0);
}

static void test_reasm_retransmission(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1);
    push(&d, &pool, &s, 1, "abc");
    push(&d, &pool, &s, 1, "abc");
    push(&d, &pool, &s, 10, "xyz");
    push(&d, &pool, &s, 10, "xyz");
    assert_int_equal(d.ooo_count, 1);
    push(&d, &pool, &s, 4, "defghi");
    assert_int_equal(s.len, 12);
    assert_memory_equal(s.out, "abcdefghixyz", 12);
    assert_int_equal(pool.retransmissions, 2);
}

static void test_reasm_overlap_trimmed(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1);
    push(&d, &pool, &s, 1, "abcd");
    push(&d, &pool, &s, 3, "CDEF");   /* overlaps "cd": only "EF" is new */
    assert_int_equal(s.len, 6);
    assert_memory_equal(s.out, "abcdEF", 6);
    assert_int_equal(pool.overlaps, 1);
    /* Buffered segments that overlap each other are trimmed on delivery. */
    push(&d, &pool, &s, 10, "jklm");
    push(&d, &pool, &s, 9, "ijk");
    push(&d, &pool, &s, 7, "gh");
    assert_int_equal(s.len, 13);
    assert_memory_equal(s.out, "abcdEFghijklm", 13);
}

static void test_reasm_gap_over_cap(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    pool.dir_segments = 2;
    reasm_init(&d);
    reasm_sync(&d, 1);
    push(&d, &pool, &s, 1, "ab");
    /* Bytes 3..4 are lost; 5.. arrive and fill the buffer. */
    push(&d, &pool, &s, 5, "ef");
    push(&d, &pool, &s, 7, "gh");
    assert_int_equal(s.len, 2);
    push(&d, &pool, &s, 9, "ij");
    assert_int_equal(pool.gaps, 1);
    assert_int_equal(s.gaps, 1);
    assert_int_equal(s.len, 8);
    assert_memory_equal(s.out, "abefghij", 8);
    assert_int_equal(pool.used, 0);
}

static void test_reasm_total_cap(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir a, b;
    struct sink sa = {0}, sb = {0};

    pool.total_cap = 40;  /* room for one small segment in all */
    reasm_init(&a);
    reasm_init(&b);
    reasm_sync(&a, 1);
    reasm_sync(&b, 1);
    push(&a, &pool, &sa, 10, "later");
    assert_int_equal(a.ooo_count, 1);
    push(&b, &pool, &sb, 10, "other");
    /* b cannot buffer: its stream restarts at the segment, after a gap. */
    assert_int_equal(sb.gaps, 1);
    assert_int_equal(sb.len, 5);
    assert_true(pool.used <= pool.total_cap);
    reasm_clear(&a, &pool);
    assert_int_equal(pool.used, 0);
}

static void test_reasm_hold_timeout(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1);
    reasm_push(&d, &pool, 1000000, 5, (const uint8_t *)"efg", 3, collect, &s);
    reasm_push(&d, &pool, 2000000, 0, NULL, 0, collect, &s);
    assert_int_equal(s.len, 0);
    reasm_push(&d, &pool, 3500000, 0, NULL, 0, collect, &s);
    assert_int_equal(s.len, 3);
    assert_int_equal(s.gaps, 1);
}

static void test_reasm_flush_at_end(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 1);
    push(&d, &pool, &s, 20, "tail");
    push(&d, &pool, &s, 10, "mid");
    reasm_flush(&d, &pool, collect, &s);
    assert_int_equal(s.len, 7);
    assert_memory_equal(s.out, "midtail", 7);
    assert_int_equal(s.gaps, 2);
    assert_int_equal(pool.used, 0);
}

static void test_reasm_unsynced_join(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    push(&d, &pool, &s, 5000, "mid-stream");
    assert_int_equal(s.gaps, 1);
    assert_int_equal(s.len, 10);
    push(&d, &pool, &s, 5010, "!");
    assert_int_equal(s.len, 11);
}

static void test_reasm_sequence_wrap(void **state)
{
    struct reasm_pool pool = pool_default();
    struct reasm_dir d;
    struct sink s = {0};

    reasm_init(&d);
    reasm_sync(&d, 0xFFFFFFFEu);
    push(&d, &pool, &s, 1, "cd");
    push(&d, &pool, &s, 0xFFFFFFFEu, "ab");
    push(&d, &pool, &s, 0, "X");
    assert_int_equal(s.len, 5);
    assert_memory_equal(s.out, "abXcd", 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasm_in_order),
        cmocka_unit_test(test_reasm_out_of_order),
        cmocka_unit_test(test_reasm_retransmission),
        cmocka_unit_test(test_reasm_overlap_trimmed),
        cmocka_unit_test(test_reasm_gap_over_cap),
        cmocka_unit_test(test_reasm_total_cap),
        cmocka_unit_test(test_reasm_hold_timeout),
        cmocka_unit_test(test_reasm_flush_at_end),
        cmocka_unit_test(test_reasm_unsynced_join),
        cmocka_unit_test(test_reasm_sequence_wrap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
