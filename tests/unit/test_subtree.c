/* Tests for the subscription tree: add, replace, remove, pruning, matching,
 * shared round robin and allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "broker/topic.h"
#include "core/alloc.h"

#define S(lit) (lit), strlen(lit)
#define MAX_CALLS 4096

struct call {
    void *subscriber;
    uint8_t options;
    uint32_t sub_id;
    bool shared;
};

/* Records every callback of one or more subtree_match calls. */
struct recorder {
    struct call calls[MAX_CALLS];
    size_t ncalls;
    size_t total; /* calls counted past MAX_CALLS too */
    void *ineligible[8];
    size_t nineligible;
};

static void record(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id, bool shared)
{
    struct recorder *r = ctx;

    if (r->ncalls < MAX_CALLS)
        r->calls[r->ncalls++] = (struct call){ subscriber, options, sub_id, shared };
    r->total++;
}

static bool eligible(void *ctx, void *subscriber)
{
    struct recorder *r = ctx;

    for (size_t i = 0; i < r->nineligible; i++) {
        if (r->ineligible[i] == subscriber)
            return false;
    }
    return true;
}

static void match_into(struct sub_tree *t, const char *name, struct recorder *r)
{
    r->ncalls = 0;
    r->total = 0;
    subtree_match(t, name, strlen(name), eligible, record, r);
}

static size_t calls_for(const struct recorder *r, void *subscriber)
{
    size_t n = 0;

    for (size_t i = 0; i < r->ncalls; i++)
        n += r->calls[i].subscriber == subscriber;
    return n;
}

static void add_ok(struct sub_tree *t, const char *filter, void *subscriber, uint8_t options,
                   uint32_t sub_id)
{
    bool replaced = true;

    assert_int_equal(subtree_add(t, filter, strlen(filter), subscriber, options, sub_id, &replaced),
                     VIGIL_OK);
    assert_false(replaced);
}

/* Distinct subscriber pointers. */
static char subs[2048];

static void test_add_replace_remove(void **state)
{
    size_t base = vigil_alloc_in_use();
    struct sub_tree *t = subtree_new();
    size_t empty_tree = vigil_alloc_in_use();
    struct recorder *r = calloc(1, sizeof(*r));
    bool replaced = false;

    assert_non_null(t);
    add_ok(t, "a/b/c", &subs[1], 1, 10);
    assert_int_equal(subtree_count(t), 1);

    assert_int_equal(subtree_add(t, S("a/b/c"), &subs[1], 2, 20, &replaced), VIGIL_OK);
    assert_true(replaced);
    assert_int_equal(subtree_count(t), 1);
    match_into(t, "a/b/c", r);
    assert_int_equal(r->ncalls, 1);
    assert_ptr_equal(r->calls[0].subscriber, &subs[1]);
    assert_int_equal(r->calls[0].options, 2);
    assert_int_equal(r->calls[0].sub_id, 20);
    assert_false(r->calls[0].shared);

    assert_false(subtree_remove(t, S("a/b"), &subs[1]));
    assert_false(subtree_remove(t, S("a/b/c"), &subs[2]));
    assert_false(subtree_remove(t, S("a/b/c/d"), &subs[1]));
    assert_true(subtree_remove(t, S("a/b/c"), &subs[1]));
    assert_false(subtree_remove(t, S("a/b/c"), &subs[1]));
    assert_int_equal(subtree_count(t), 0);
    match_into(t, "a/b/c", r);
    assert_int_equal(r->ncalls, 0);
    /* Pruning released every node the subscription created. */
    assert_int_equal(vigil_alloc_in_use(), empty_tree);

    subtree_free(t);
    assert_int_equal(vigil_alloc_in_use(), base);
    free(r);
}

static void test_prune_keeps_shared_prefix(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));
    size_t empty_tree = vigil_alloc_in_use();
    size_t one;

    add_ok(t, "a/b", &subs[1], 0, 0);
    one = vigil_alloc_in_use();
    add_ok(t, "a/b/c/d", &subs[2], 0, 0);
    add_ok(t, "a/+/#", &subs[3], 0, 0);
    add_ok(t, "$share/g/a/b/c/d", &subs[4], 0, 0);
    assert_int_equal(subtree_count(t), 4);

    assert_true(subtree_remove(t, S("a/b/c/d"), &subs[2]));
    assert_true(subtree_remove(t, S("a/+/#"), &subs[3]));
    assert_true(subtree_remove(t, S("$share/g/a/b/c/d"), &subs[4]));
    assert_int_equal(vigil_alloc_in_use(), one);
    match_into(t, "a/b", r);
    assert_int_equal(r->ncalls, 1);
    assert_ptr_equal(r->calls[0].subscriber, &subs[1]);

    assert_true(subtree_remove(t, S("a/b"), &subs[1]));
    assert_int_equal(vigil_alloc_in_use(), empty_tree);
    subtree_free(t);
    free(r);
}

static void test_add_rejects_invalid(void **state)
{
    struct sub_tree *t = subtree_new();
    static const char *const bad[] = { "", "a/#/b", "a+", "$share/g", "$share//a", "$share/g+/a",
                                       "$share/g/" };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (subtree_add(t, bad[i], strlen(bad[i]), &subs[1], 0, 0, NULL) != VIGIL_ERR_INVALID)
            fail_msg("filter \"%s\" should be rejected", bad[i]);
    }
    assert_int_equal(subtree_add(t, S("a"), NULL, 0, 0, NULL), VIGIL_ERR_INVALID);
    assert_int_equal(subtree_count(t), 0);
    assert_false(subtree_remove(t, S("a/#/b"), &subs[1]));
    subtree_free(t);
}

struct match_case {
    const char *name;
    size_t expected[10]; /* indexes into filters[], ended by 0 */
};

/* Filter i is subscribed by &subs[i]; index 0 is unused. */
static const char *const filters[] = {
    NULL,        "sport/tennis/player1/#", "sport/tennis/+", "sport/#", "sport/+",
    "+/+",       "/+",                     "+",              "#",       "$SYS/#",
    "$SYS/+/x",  "+/monitor/Clients",      "a//b",           "a/+/b",   "/#",
};

static void test_match_table(void **state)
{
    static const struct match_case cases[] = {
        { "sport/tennis/player1", { 1, 2, 3, 8 } },
        { "sport/tennis/player1/ranking", { 1, 3, 8 } },
        { "sport/tennis/player2", { 2, 3, 8 } },
        { "sport", { 3, 7, 8 } },
        { "sport/", { 3, 4, 5, 8 } },
        { "/finance", { 5, 6, 8, 14 } },
        { "$SYS/monitor/Clients", { 9 } },
        { "$SYS/a/x", { 9, 10 } },
        { "$SYS", { 9 } },
        { "a//b", { 8, 12, 13 } },
        { "a/c/b", { 8, 13 } },
        { "x", { 7, 8 } },
        { "/", { 5, 6, 8, 14 } },
        { "x/monitor/Clients", { 8, 11 } },
    };
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));

    for (size_t i = 1; i < sizeof(filters) / sizeof(filters[0]); i++)
        add_ok(t, filters[i], &subs[i], (uint8_t)i, (uint32_t)i * 100);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t n = 0;

        match_into(t, cases[c].name, r);
        for (; cases[c].expected[n] != 0; n++) {
            size_t k = cases[c].expected[n];

            if (calls_for(r, &subs[k]) != 1)
                fail_msg("name \"%s\" should match filter \"%s\" once", cases[c].name, filters[k]);
        }
        if (r->ncalls != n)
            fail_msg("name \"%s\": %zu matches, expected %zu", cases[c].name, r->ncalls, n);
        for (size_t i = 0; i < r->ncalls; i++) {
            size_t k = (size_t)((char *)r->calls[i].subscriber - subs);

            assert_int_equal(r->calls[i].options, k);
            assert_int_equal(r->calls[i].sub_id, k * 100);
            assert_true(topic_match(S(filters[k]), S(cases[c].name)));
        }
    }
    subtree_free(t);
    free(r);
}

static void test_overlap_reported_per_filter(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));

    add_ok(t, "a/b", &subs[1], 0, 1);
    add_ok(t, "a/+", &subs[1], 1, 2);
    add_ok(t, "a/#", &subs[1], 2, 3);
    add_ok(t, "#", &subs[1], 0, 4);
    add_ok(t, "+/b", &subs[1], 1, 5);
    add_ok(t, "a/c", &subs[1], 1, 6);
    assert_int_equal(subtree_count(t), 6);

    match_into(t, "a/b", r);
    assert_int_equal(r->ncalls, 5);
    for (uint32_t id = 1; id <= 5; id++) {
        size_t seen = 0;

        for (size_t i = 0; i < r->ncalls; i++)
            seen += r->calls[i].sub_id == id;
        assert_int_equal(seen, 1);
    }
    subtree_free(t);
    free(r);
}

static void test_shared_round_robin(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));
    size_t per_member[3] = { 0 };
    void *order[9];

    add_ok(t, "$share/g/x/+", &subs[1], 1, 7);
    add_ok(t, "$share/g/x/+", &subs[2], 1, 7);
    add_ok(t, "$share/g/x/+", &subs[3], 1, 7);
    add_ok(t, "x/+", &subs[4], 0, 0);
    assert_int_equal(subtree_count(t), 4);

    for (size_t m = 0; m < 9; m++) {
        size_t shared = 0;

        match_into(t, "x/1", r);
        assert_int_equal(r->ncalls, 2);
        assert_int_equal(calls_for(r, &subs[4]), 1);
        for (size_t i = 0; i < r->ncalls; i++) {
            if (!r->calls[i].shared)
                continue;
            shared++;
            order[m] = r->calls[i].subscriber;
            per_member[(char *)r->calls[i].subscriber - &subs[1]]++;
            assert_int_equal(r->calls[i].sub_id, 7);
        }
        assert_int_equal(shared, 1);
    }
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(per_member[i], 3);
    /* Strict rotation: the same member comes back every third message. */
    for (size_t m = 3; m < 9; m++)
        assert_ptr_equal(order[m], order[m - 3]);
    assert_ptr_not_equal(order[0], order[1]);
    assert_ptr_not_equal(order[1], order[2]);
    assert_ptr_not_equal(order[0], order[2]);
    subtree_free(t);
    free(r);
}

static void test_shared_eligibility(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));

    add_ok(t, "$share/g/q", &subs[1], 0, 0);
    add_ok(t, "$share/g/q", &subs[2], 0, 0);
    add_ok(t, "$share/g/q", &subs[3], 0, 0);

    /* One member ineligible: the other two alternate. */
    r->ineligible[r->nineligible++] = &subs[2];
    for (size_t m = 0; m < 6; m++) {
        match_into(t, "q", r);
        assert_int_equal(r->ncalls, 1);
        assert_ptr_not_equal(r->calls[0].subscriber, &subs[2]);
        assert_true(r->calls[0].shared);
    }

    /* No member eligible: the group is skipped. */
    r->ineligible[r->nineligible++] = &subs[1];
    r->ineligible[r->nineligible++] = &subs[3];
    match_into(t, "q", r);
    assert_int_equal(r->ncalls, 0);

    /* NULL eligible means every member is eligible. */
    r->ncalls = 0;
    for (size_t m = 0; m < 3; m++)
        subtree_match(t, S("q"), NULL, record, r);
    assert_int_equal(r->ncalls, 3);
    assert_int_equal(calls_for(r, &subs[1]), 1);
    assert_int_equal(calls_for(r, &subs[2]), 1);
    assert_int_equal(calls_for(r, &subs[3]), 1);
    subtree_free(t);
    free(r);
}

static void test_shared_groups_apart(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));
    bool replaced = false;

    add_ok(t, "$share/g1/a/#", &subs[1], 0, 0);
    add_ok(t, "$share/g1/a/#", &subs[2], 0, 0);
    add_ok(t, "$share/g2/a/#", &subs[1], 0, 0);
    add_ok(t, "$share/g1/a/b", &subs[1], 0, 0);
    add_ok(t, "a/#", &subs[1], 0, 0);
    assert_int_equal(subtree_count(t), 5);
    assert_int_equal(subtree_add(t, S("$share/g1/a/#"), &subs[2], 3, 9, &replaced), VIGIL_OK);
    assert_true(replaced);
    assert_int_equal(subtree_count(t), 5);

    /* One call each for g1 on a/#, g2 on a/#, g1 on a/b and the plain a/#. */
    match_into(t, "a/b", r);
    assert_int_equal(r->ncalls, 4);
    /* Shared filters do not match names starting with '$' through '#'. */
    assert_int_equal(subtree_add(t, S("$share/g3/#"), &subs[5], 0, 0, NULL), VIGIL_OK);
    match_into(t, "$SYS/x", r);
    assert_int_equal(r->ncalls, 0);

    assert_false(subtree_remove(t, S("$share/g2/a/#"), &subs[2]));
    assert_false(subtree_remove(t, S("$share/g9/a/#"), &subs[1]));
    assert_true(subtree_remove(t, S("$share/g1/a/#"), &subs[1]));
    assert_true(subtree_remove(t, S("$share/g1/a/#"), &subs[2]));
    /* Left: g2 and the plain subscription on a/#, g1 on a/b, g3 on #. */
    match_into(t, "a/b", r);
    assert_int_equal(r->ncalls, 4);
    subtree_free(t);
    free(r);
}

static void test_many_on_one_filter(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));
    size_t n = 1500;

    for (size_t i = 0; i < n; i++)
        add_ok(t, "big/#", &subs[i], 0, (uint32_t)i);
    for (size_t i = 0; i < n; i += 2)
        assert_true(subtree_remove(t, S("big/#"), &subs[i]));
    for (size_t i = 0; i < n; i += 2)
        assert_false(subtree_remove(t, S("big/#"), &subs[i]));
    assert_int_equal(subtree_count(t), n / 2);

    match_into(t, "big/x", r);
    assert_int_equal(r->ncalls, n / 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(calls_for(r, &subs[i]), i % 2);
    for (size_t i = 0; i < r->ncalls; i++)
        assert_int_equal(r->calls[i].sub_id, (char *)r->calls[i].subscriber - subs);

    /* Replacing through the index updates the entry in place. */
    for (size_t i = 1; i < n; i += 2) {
        bool replaced = false;

        assert_int_equal(subtree_add(t, S("big/#"), &subs[i], 2, 5, &replaced), VIGIL_OK);
        assert_true(replaced);
    }
    match_into(t, "big", r);
    assert_int_equal(r->ncalls, n / 2);
    for (size_t i = 0; i < r->ncalls; i++)
        assert_int_equal(r->calls[i].sub_id, 5);
    for (size_t i = 1; i < n; i += 2)
        assert_true(subtree_remove(t, S("big/#"), &subs[i]));
    assert_int_equal(subtree_count(t), 0);
    subtree_free(t);
    free(r);
}

static void test_scale(void **state)
{
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));
    char filter[96];
    char *clients = calloc(100000, 1);
    clock_t start;
    double seconds;

    /* 10,000 device filters, 10 subscribers each: 100,000 subscriptions. */
    for (size_t f = 0; f < 10000; f++) {
        snprintf(filter, sizeof(filter), "site%zu/icu%zu/room%zu/dev%zu/#", f % 4, f % 10,
                 f % 100, f);
        for (size_t k = 0; k < 10; k++)
            add_ok(t, filter, &clients[f * 10 + k], 0, 0);
    }
    add_ok(t, "+/+/+/+/hr", &subs[1], 0, 0);
    assert_int_equal(subtree_count(t), 100001);

    start = clock();
    for (size_t i = 0; i < 20000; i++) {
        size_t f = (i * 7919) % 10000;

        snprintf(filter, sizeof(filter), "site%zu/icu%zu/room%zu/dev%zu/hr", f % 4, f % 10,
                 f % 100, f);
        match_into(t, filter, r);
        assert_int_equal(r->ncalls, 11);
    }
    seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    /* A linear scan over 100,000 subscriptions would take far longer. */
    print_message("20000 matches over 100001 subscriptions: %.3f s\n", seconds);
    assert_true(seconds < 5.0);
    subtree_free(t);
    free(clients);
    free(r);
}

static void test_deep_filters(void **state)
{
    size_t levels = 20000;
    size_t len = levels * 2 - 1;
    char *filter = malloc(len + 1);
    char *name = malloc(len + 1);
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));

    for (size_t i = 0; i < len; i++) {
        filter[i] = i % 2 ? '/' : '+';
        name[i] = i % 2 ? '/' : 'x';
    }
    filter[len] = name[len] = '\0';
    add_ok(t, filter, &subs[1], 0, 0);
    filter[len - 1] = '#';
    add_ok(t, filter, &subs[2], 0, 0);
    add_ok(t, name, &subs[3], 0, 0);
    match_into(t, name, r);
    assert_int_equal(r->ncalls, 3);
    assert_true(subtree_remove(t, filter, len, &subs[2]));
    subtree_free(t);
    free(filter);
    free(name);
    free(r);
}

/* Makes every allocation in turn fail for one subtree_add and checks that
 * the tree and the allocator are left exactly as before. Returns the number
 * of allocations the add needed. */
static size_t add_under_failures(struct sub_tree *t, const char *filter, void *subscriber)
{
    struct recorder *r = calloc(1, sizeof(*r));
    size_t count = subtree_count(t);
    size_t failures = 0;

    for (uint64_t n = 1;; n++) {
        size_t before = vigil_alloc_in_use();
        vigil_err rc;

        vigil_alloc_fail_after(n);
        rc = subtree_add(t, filter, strlen(filter), subscriber, 0, 0, NULL);
        vigil_alloc_fail_after(0);
        if (rc == VIGIL_OK)
            break;
        assert_int_equal(rc, VIGIL_ERR_NOMEM);
        assert_int_equal(vigil_alloc_in_use(), before);
        assert_int_equal(subtree_count(t), count);
        failures++;
    }
    assert_int_equal(subtree_count(t), count + 1);
    free(r);
    return failures;
}

static void test_alloc_failure(void **state)
{
    size_t base = vigil_alloc_in_use();
    struct sub_tree *t = subtree_new();
    struct recorder *r = calloc(1, sizeof(*r));

    add_ok(t, "a/b", &subs[1], 0, 0);
    /* Three new nodes, the child array of node b and the list of node #. */
    assert_int_equal(add_under_failures(t, "a/b/c/+/#", &subs[2]), 5);
    /* Nodes x and y, the child array of x, the group, its name, its list and
     * the group array of y. */
    assert_int_equal(add_under_failures(t, "$share/g/a/x/y", &subs[3]), 7);
    assert_int_equal(add_under_failures(t, "$share/g/a/x/y", &subs[4]), 0);
    assert_int_equal(add_under_failures(t, "$share/h/a/x/y", &subs[4]), 4);
    /* Growing a list past the size that gets an index, and again after. */
    for (size_t i = 10; i < 30; i++)
        add_under_failures(t, "a/b", &subs[i]);

    match_into(t, "a/b/c/d", r);
    assert_int_equal(r->ncalls, 1);
    match_into(t, "a/x/y", r);
    assert_int_equal(r->ncalls, 2);
    match_into(t, "a/b", r);
    assert_int_equal(r->ncalls, 21);
    subtree_free(t);
    assert_int_equal(vigil_alloc_in_use(), base);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_replace_remove),
        cmocka_unit_test(test_prune_keeps_shared_prefix),
        cmocka_unit_test(test_add_rejects_invalid),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_overlap_reported_per_filter),
        cmocka_unit_test(test_shared_round_robin),
        cmocka_unit_test(test_shared_eligibility),
        cmocka_unit_test(test_shared_groups_apart),
        cmocka_unit_test(test_many_on_one_filter),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_deep_filters),
        cmocka_unit_test(test_alloc_failure),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
