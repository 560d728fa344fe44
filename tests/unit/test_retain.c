/* Tests for the retained message tree: set, replace, clear, pruning,
 * matching with wildcards and the '$' rule, long topics and allocation
 * failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/topic.h"
#include "core/alloc.h"

#define S(lit) (lit), strlen(lit)
#define MAX_SEEN 64

/* Records the names and values a walk reports. */
struct seen {
    char *names[MAX_SEEN];
    void *values[MAX_SEEN];
    size_t count;
};

static void seen_add(void *ctx, const char *name, void *value)
{
    struct seen *s = ctx;

    assert_true(s->count < MAX_SEEN);
    s->names[s->count] = strdup(name);
    s->values[s->count] = value;
    s->count++;
}

static void seen_clear(struct seen *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->names[i]);
    s->count = 0;
}

static size_t seen_times(const struct seen *s, const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < s->count; i++)
        n += strcmp(s->names[i], name) == 0;
    return n;
}

static void test_set_get_replace_clear(void **state)
{
    size_t base = vigil_alloc_in_use();
    struct retain_tree *t = retain_new();
    size_t empty_tree = vigil_alloc_in_use();
    int v1, v2, v3;

    assert_non_null(t);
    assert_null(retain_get(t, S("a/b")));
    assert_null(retain_set(t, S("a/b"), &v1));
    assert_int_equal(retain_count(t), 1);
    assert_ptr_equal(retain_get(t, S("a/b")), &v1);
    assert_null(retain_get(t, S("a")));
    assert_null(retain_get(t, S("a/b/c")));

    assert_ptr_equal(retain_set(t, S("a/b"), &v2), &v1);
    assert_int_equal(retain_count(t), 1);
    assert_ptr_equal(retain_get(t, S("a/b")), &v2);

    assert_null(retain_set(t, S("a"), &v3));
    assert_int_equal(retain_count(t), 2);
    assert_null(retain_set(t, S("a/x"), NULL));
    assert_ptr_equal(retain_set(t, S("a/b"), NULL), &v2);
    assert_null(retain_get(t, S("a/b")));
    assert_ptr_equal(retain_get(t, S("a")), &v3);
    assert_int_equal(retain_count(t), 1);
    assert_ptr_equal(retain_set(t, S("a"), NULL), &v3);
    assert_int_equal(retain_count(t), 0);
    /* Clearing pruned every node. */
    assert_int_equal(vigil_alloc_in_use(), empty_tree);

    retain_free(t);
    assert_int_equal(vigil_alloc_in_use(), base);
}

static void test_prune_keeps_branches(void **state)
{
    struct retain_tree *t = retain_new();
    int v;
    size_t one;

    retain_set(t, S("a/b"), &v);
    one = vigil_alloc_in_use();
    retain_set(t, S("a/b/c/d"), &v);
    retain_set(t, S("a/b/c"), &v);
    retain_set(t, S("a/b/c"), NULL);
    assert_ptr_equal(retain_get(t, S("a/b/c/d")), &v);
    retain_set(t, S("a/b/c/d"), NULL);
    assert_int_equal(vigil_alloc_in_use(), one);
    assert_ptr_equal(retain_get(t, S("a/b")), &v);
    retain_free(t);
}

static const char *const topics[] = {
    "sport",
    "sport/",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/tennis/player1/score/wimbledon",
    "sport/tennis/player2",
    "sport/badminton",
    "/finance",
    "/",
    "//",
    "a//b",
    "a/$x",
    "$SYS",
    "$SYS/broker/uptime",
    "$SYS/broker/clients",
    "$",
    "x",
};

#define NTOPICS (sizeof(topics) / sizeof(topics[0]))

static struct retain_tree *tree_with_topics(int *values)
{
    struct retain_tree *t = retain_new();

    for (size_t i = 0; i < NTOPICS; i++)
        assert_null(retain_set(t, topics[i], strlen(topics[i]), &values[i]));
    assert_int_equal(retain_count(t), NTOPICS);
    return t;
}

/* Checks that retain_match reports exactly the topics topic_match accepts,
 * each once and with its own value. */
static void check_against_topic_match(struct retain_tree *t, const int *values,
                                      const char *filter)
{
    struct seen s = { 0 };
    size_t expected = 0;

    retain_match(t, filter, strlen(filter), seen_add, &s);
    for (size_t i = 0; i < NTOPICS; i++) {
        size_t want = topic_match(S(filter), S(topics[i])) ? 1 : 0;

        if (seen_times(&s, topics[i]) != want)
            fail_msg("filter \"%s\" reported topic \"%s\" %zu times, expected %zu", filter,
                     topics[i], seen_times(&s, topics[i]), want);
        expected += want;
    }
    assert_int_equal(s.count, expected);
    for (size_t i = 0; i < s.count; i++) {
        for (size_t k = 0; k < NTOPICS; k++) {
            if (strcmp(s.names[i], topics[k]) == 0)
                assert_ptr_equal(s.values[i], &values[k]);
        }
    }
    seen_clear(&s);
}

static void test_match_wildcards(void **state)
{
    static const char *const filters[] = {
        "#",          "+",          "sport/#",        "sport/+",           "sport/tennis/+",
        "+/+",        "/+",         "/#",             "+/tennis/#",        "sport/tennis/player1/#",
        "$SYS/#",     "$SYS/+/+",   "+/broker/uptime", "$SYS",             "a/+/b",
        "a//b",       "a/+",        "+/+/+",          "nothing/#",         "sport/+/player1/#",
        "$",          "+/#",        "//#",            "sport/tennis",      "x/#",
    };
    int values[NTOPICS];
    struct retain_tree *t = tree_with_topics(values);

    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        check_against_topic_match(t, values, filters[i]);
    retain_free(t);
}

static void test_match_explicit(void **state)
{
    int values[NTOPICS];
    struct retain_tree *t = tree_with_topics(values);
    struct seen s = { 0 };

    retain_match(t, S("sport/#"), seen_add, &s);
    assert_int_equal(s.count, 7);
    assert_int_equal(seen_times(&s, "sport"), 1);
    assert_int_equal(seen_times(&s, "sport/"), 1);
    seen_clear(&s);

    retain_match(t, S("#"), seen_add, &s);
    assert_int_equal(seen_times(&s, "$SYS"), 0);
    assert_int_equal(seen_times(&s, "$SYS/broker/uptime"), 0);
    assert_int_equal(seen_times(&s, "$"), 0);
    assert_int_equal(seen_times(&s, "a/$x"), 1);
    assert_int_equal(s.count, NTOPICS - 4);
    seen_clear(&s);

    retain_match(t, S("$SYS/#"), seen_add, &s);
    assert_int_equal(s.count, 3);
    seen_clear(&s);

    retain_match(t, S("+/broker/+"), seen_add, &s);
    assert_int_equal(s.count, 0);
    seen_clear(&s);

    retain_match(t, S("sport/+"), seen_add, &s);
    assert_int_equal(s.count, 2);
    assert_int_equal(seen_times(&s, "sport/"), 1);
    assert_int_equal(seen_times(&s, "sport/badminton"), 1);
    seen_clear(&s);

    retain_foreach(t, seen_add, &s);
    assert_int_equal(s.count, NTOPICS);
    for (size_t i = 0; i < NTOPICS; i++)
        assert_int_equal(seen_times(&s, topics[i]), 1);
    seen_clear(&s);
    retain_free(t);
}

static void test_empty_tree_walks(void **state)
{
    struct retain_tree *t = retain_new();
    struct seen s = { 0 };

    retain_match(t, S("#"), seen_add, &s);
    retain_match(t, S("+/+"), seen_add, &s);
    retain_match(t, S("a"), seen_add, &s);
    retain_foreach(t, seen_add, &s);
    assert_int_equal(s.count, 0);
    retain_free(t);
}

static void test_long_and_deep_topics(void **state)
{
    size_t len = 65535;
    char *longname = malloc(len + 1);
    char *deep = malloc(len + 2);
    struct retain_tree *t = retain_new();
    struct seen s = { 0 };
    int v1, v2;

    /* One level of 65535 bytes, and 65536 empty levels. */
    memset(longname, 'x', len);
    longname[len] = '\0';
    memset(deep, '/', len);
    deep[len] = '\0';
    assert_null(retain_set(t, longname, len, &v1));
    assert_null(retain_set(t, deep, len, &v2));

    retain_match(t, S("+"), seen_add, &s);
    assert_int_equal(s.count, 1);
    assert_int_equal(strlen(s.names[0]), len);
    assert_ptr_equal(s.values[0], &v1);
    seen_clear(&s);

    retain_match(t, S("/#"), seen_add, &s);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.names[0], deep);
    seen_clear(&s);

    retain_match(t, deep, len, seen_add, &s);
    assert_int_equal(s.count, 1);
    seen_clear(&s);
    /* A wildcard appended fills the last empty level; one replacing the
     * last '/' leaves a level too few. */
    deep[len] = '+';
    retain_match(t, deep, len + 1, seen_add, &s);
    assert_int_equal(s.count, 1);
    seen_clear(&s);
    deep[len - 1] = '+';
    retain_match(t, deep, len, seen_add, &s);
    assert_int_equal(s.count, 0);
    seen_clear(&s);
    deep[len - 1] = '/';
    deep[len] = '#';
    retain_match(t, deep, len + 1, seen_add, &s);
    assert_int_equal(s.count, 1);
    seen_clear(&s);

    retain_foreach(t, seen_add, &s);
    assert_int_equal(s.count, 2);
    seen_clear(&s);

    assert_ptr_equal(retain_set(t, deep, len, NULL), &v2);
    assert_int_equal(retain_count(t), 1);
    retain_free(t);
    free(longname);
    free(deep);
}

/* Makes every allocation in turn fail for one retain_set and checks that
 * the tree and the allocator are left exactly as before. Returns the number
 * of allocations the set needed. */
static size_t set_under_failures(struct retain_tree *t, const char *name, void *value)
{
    size_t count = retain_count(t);
    size_t failures = 0;

    for (uint64_t n = 1;; n++) {
        size_t before = vigil_alloc_in_use();
        void *rc;

        vigil_alloc_fail_after(n);
        rc = retain_set(t, name, strlen(name), value);
        vigil_alloc_fail_after(0);
        if (rc != value)
            break;
        assert_int_equal(vigil_alloc_in_use(), before);
        assert_int_equal(retain_count(t), count);
        assert_null(retain_get(t, name, strlen(name)));
        failures++;
    }
    assert_int_equal(retain_count(t), count + 1);
    assert_ptr_equal(retain_get(t, name, strlen(name)), value);
    return failures;
}

static void test_alloc_failure(void **state)
{
    size_t base = vigil_alloc_in_use();
    struct retain_tree *t = retain_new();
    struct seen s = { 0 };
    int v[8];

    assert_null(retain_set(t, S("a/b"), &v[0]));
    /* Nodes c and d, the child array of b and c, and the stored name. */
    assert_int_equal(set_under_failures(t, "a/b/c/d", &v[1]), 5);
    /* A new second child of a fits in its array: node e and the name. */
    assert_int_equal(set_under_failures(t, "a/e", &v[2]), 2);
    /* An existing node only needs the name. */
    assert_int_equal(set_under_failures(t, "a", &v[3]), 1);

    retain_match(t, S("a/#"), seen_add, &s);
    assert_int_equal(s.count, 4);
    seen_clear(&s);
    retain_free(t);
    assert_int_equal(vigil_alloc_in_use(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_replace_clear),
        cmocka_unit_test(test_prune_keeps_branches),
        cmocka_unit_test(test_match_wildcards),
        cmocka_unit_test(test_match_explicit),
        cmocka_unit_test(test_empty_tree_walks),
        cmocka_unit_test(test_long_and_deep_topics),
        cmocka_unit_test(test_alloc_failure),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
