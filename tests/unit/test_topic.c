/* Tests for topic validation, matching, filter coverage and the split of
 * shared subscriptions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/topic.h"

#define S(lit) (lit), strlen(lit)

static bool name_ok(const char *s)
{
    return topic_name_valid(s, strlen(s));
}

static bool filter_ok(const char *s)
{
    return topic_filter_valid(s, strlen(s));
}

static bool match(const char *filter, const char *name)
{
    return topic_match(filter, strlen(filter), name, strlen(name));
}

static bool covers(const char *pattern, const char *filter)
{
    return topic_filter_covers(pattern, strlen(pattern), filter, strlen(filter));
}

static void test_name_valid(void **state)
{
    static const char *const good[] = { "a", "a/b", "/", "/a", "a/", "a//b", "$SYS/x", " ",
                                        "sport/tennis/player1", "$", "//" };
    static const char *const bad[] = { "", "+", "#", "a/+", "a/#", "a+", "a#b", "+/a", "#/a" };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!name_ok(good[i]))
            fail_msg("name \"%s\" should be valid", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (name_ok(bad[i]))
            fail_msg("name \"%s\" should be invalid", bad[i]);
    }
    assert_false(topic_name_valid("a\0b", 3));
}

static void test_filter_valid(void **state)
{
    static const char *const good[] = { "#", "+", "a", "a/#", "a/+", "+/+", "/+", "+/", "/#",
                                        "a//b", "/", "sport/tennis/player1/#", "sport/+/player1",
                                        "+/tennis/#", "$SYS/#", "a/+/c/#", "//#", "+/#" };
    static const char *const bad[] = { "", "a#", "a/#/b", "#/a", "a/b#", "sport+", "a/+b",
                                       "a/b+/c", "++", "##", "#/#", "a/#/", "+#", "sport/tennis#" };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (!filter_ok(good[i]))
            fail_msg("filter \"%s\" should be valid", good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (filter_ok(bad[i]))
            fail_msg("filter \"%s\" should be invalid", bad[i]);
    }
    assert_false(topic_filter_valid("a/\0", 3));
}

struct match_case {
    const char *filter;
    const char *name;
    bool expected;
};

static void test_match_table(void **state)
{
    static const struct match_case cases[] = {
        /* Multi-level wildcard examples of the MQTT specification. */
        { "sport/tennis/player1/#", "sport/tennis/player1", true },
        { "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
        { "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
        { "sport/tennis/player1/#", "sport/tennis/player2", false },
        { "sport/tennis/player1/#", "sport/tennis", false },
        { "sport/#", "sport", true },
        { "#", "sport", true },
        { "#", "a/b/c", true },
        { "#", "/", true },
        /* Single-level wildcard examples. */
        { "sport/tennis/+", "sport/tennis/player1", true },
        { "sport/tennis/+", "sport/tennis/player2", true },
        { "sport/tennis/+", "sport/tennis/player1/ranking", false },
        { "sport/+", "sport", false },
        { "sport/+", "sport/", true },
        { "+/+", "/finance", true },
        { "/+", "/finance", true },
        { "+", "/finance", false },
        { "+/tennis/#", "sport/tennis/player1", true },
        { "sport/+/player1", "sport/tennis/player1", true },
        /* Names starting with '$'. */
        { "#", "$SYS/monitor/Clients", false },
        { "+/monitor/Clients", "$SYS/monitor/Clients", false },
        { "$SYS/#", "$SYS/monitor/Clients", true },
        { "$SYS/monitor/+", "$SYS/monitor/Clients", true },
        { "$SYS/#", "$SYS", true },
        { "+", "$SYS", false },
        { "a/#", "a/$x", true },
        { "a/+", "a/$x", true },
        { "/+", "/$x", true },
        /* Literal levels, empty levels and case. */
        { "a/b", "a/b", true },
        { "a/b", "a/B", false },
        { "a/b", "a/b/", false },
        { "a/b/", "a/b/", true },
        { "a//b", "a//b", true },
        { "a/+/b", "a//b", true },
        { "a/b", "a//b", false },
        { "+", "a", true },
        { "+/+", "a", false },
        { "+/#", "a", true },
        { "a/+/#", "a", false },
        { "a/+/#", "a/b", true },
        { "/#", "a", false },
        { "//", "//", true },
        { "+/+/+", "//", true },
        { "a", "ab", false },
        { "ab", "a", false },
        { "north/icu3/+/+/heart_rate", "north/icu3/room305/mon-0042/heart_rate", true },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct match_case *c = &cases[i];

        if (match(c->filter, c->name) != c->expected)
            fail_msg("filter \"%s\" on name \"%s\": expected %s", c->filter, c->name,
                     c->expected ? "match" : "no match");
    }
}

static void test_match_byte_ranges(void **state)
{
    /* Only the given lengths count: the bytes after them are ignored. */
    assert_true(topic_match("a/bXXX", 3, "a/bYYY", 3));
    assert_false(topic_match("a/b", 3, "a/bc", 4));
    assert_true(topic_match("a/#", 3, "a/b/c", 5));
}

static void test_covers_table(void **state)
{
    static const struct match_case cases[] = {
        { "a/#", "a/+/c", true },
        { "a/#", "a", true },
        { "a/#", "a/#", true },
        { "a/#", "a/b/#", true },
        { "a/#", "b", false },
        { "a/#", "#", false },
        { "a/#", "+/b", false },
        { "a", "a/#", false },
        { "a", "a", true },
        { "a", "+", false },
        { "a/+", "a/b", true },
        { "a/+", "a/+", true },
        { "a/+", "a/#", false },
        { "a/+", "a/b/c", false },
        { "a/+", "a", false },
        { "a/+", "a/", true },
        { "+/+/+/dev1/#", "north/icu/r1/dev1/hr", true },
        { "+/+/+/dev1/#", "+/+/+/dev1/#", true },
        { "+/+/+/dev1/#", "+/+/+/+/#", false },
        { "+/+/+/dev1/#", "north/icu/r1/dev1", true },
        { "+/+/+/dev1/#", "north/icu/r1", false },
        { "+/+/+/dev1/#", "$SYS/icu/r1/dev1/hr", false },
        { "#", "a/b", true },
        { "#", "+/#", true },
        { "#", "#", true },
        { "#", "+", true },
        { "#", "/", true },
        { "#", "$SYS/#", false },
        { "#", "$SYS", false },
        { "#", "$", false },
        { "#", "a/$SYS", true },
        { "+/#", "#", true },
        { "+/#", "$SYS/x", false },
        { "+/#", "a", true },
        { "+/+/#", "#", false },
        { "+", "#", false },
        { "+", "+", true },
        { "+", "$SYS", false },
        { "+/x", "$SYS/x", false },
        { "$SYS/#", "$SYS/broker/x", true },
        { "$SYS/#", "$SYS", true },
        { "$SYS/#", "#", false },
        { "$SYS/#", "+/broker", false },
        { "$SYS/+", "$SYS/broker", true },
        { "/+", "/a", true },
        { "/+", "/", true },
        { "/+", "//", false },
        { "/+/#", "/#", true },
        { "+/+/#", "/#", true },
        { "a/+/#", "a/#", false },
        { "/+", "/#", false },
        { "/+", "+/a", false },
        { "//#", "/", true },
        { "/#", "/", true },
        { "/#", "//a", true },
        { "a//b", "a/+/b", false },
        { "a/+/b", "a//b", true },
        { "a/b/#", "a/b/c/#", true },
        { "a/b/c/#", "a/b/#", false },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct match_case *c = &cases[i];

        if (covers(c->filter, c->name) != c->expected)
            fail_msg("pattern \"%s\" on filter \"%s\": expected %s", c->filter, c->name,
                     c->expected ? "covered" : "not covered");
    }
}

/*
 * Exhaustive check of matching and coverage on a small universe. Filters
 * have up to 3 levels from {a, $a, "", +, #}. Names have up to 4 levels from
 * {a, b, $a, ""}, where b stands for every value no filter names. A name one
 * level longer than any filter and one fresh value are enough for a name
 * outside this universe to map to one inside it with the same results, so
 * the brute-force subset test gives the exact coverage result.
 */
#define MAX_UNIVERSE 400
#define MAX_TOPIC 16

struct universe {
    char filters[MAX_UNIVERSE][MAX_TOPIC];
    size_t nfilters;
    char names[MAX_UNIVERSE][MAX_TOPIC];
    size_t nnames;
    bool matches[MAX_UNIVERSE][MAX_UNIVERSE]; /* [filter][name] by the reference */
};

static void join_levels(char *out, const char *const *alphabet, const size_t *pick, size_t n)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, "/");
        strcat(out, alphabet[pick[i]]);
    }
}

/* Appends to out every sequence of 1..max_levels items of alphabet joined by '/'. */
static void enumerate(const char *const *alphabet, size_t nalpha, size_t max_levels,
                      char (*out)[MAX_TOPIC], size_t *count)
{
    size_t pick[4];

    for (size_t n = 1; n <= max_levels; n++) {
        memset(pick, 0, sizeof(pick));
        for (;;) {
            join_levels(out[*count], alphabet, pick, n);
            (*count)++;
            size_t i = 0;
            while (i < n && ++pick[i] == nalpha)
                pick[i++] = 0;
            if (i == n)
                break;
        }
    }
}

/* Splits topic in place at each '/' and returns the number of levels. */
static size_t split_levels(char *topic, char **levels)
{
    size_t n = 0;

    levels[n++] = topic;
    for (char *p = topic; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            levels[n++] = p + 1;
        }
    }
    return n;
}

/* Reference matcher on level lists, written apart from topic_match. */
static bool ref_match(const char *filter, const char *name)
{
    char f[MAX_TOPIC], n[MAX_TOPIC];
    char *flev[8], *nlev[8];
    size_t fn, nn, prefix;

    strcpy(f, filter);
    strcpy(n, name);
    fn = split_levels(f, flev);
    nn = split_levels(n, nlev);

    if (n[0] == '$' && (strcmp(flev[0], "+") == 0 || strcmp(flev[0], "#") == 0))
        return false;
    prefix = strcmp(flev[fn - 1], "#") == 0 ? fn - 1 : fn;
    if (prefix == fn ? nn != fn : nn < prefix)
        return false;
    for (size_t i = 0; i < prefix; i++) {
        if (strcmp(flev[i], "+") != 0 && strcmp(flev[i], nlev[i]) != 0)
            return false;
    }
    return true;
}

static void universe_build(struct universe *u)
{
    static const char *const flevels[] = { "a", "$a", "", "+", "#" };
    static const char *const nlevels[] = { "a", "b", "$a", "" };
    char all[MAX_UNIVERSE][MAX_TOPIC];
    size_t nall = 0;

    enumerate(flevels, 5, 3, all, &nall);
    u->nfilters = 0;
    for (size_t i = 0; i < nall; i++) {
        if (filter_ok(all[i]))
            strcpy(u->filters[u->nfilters++], all[i]);
    }
    nall = 0;
    enumerate(nlevels, 4, 4, all, &nall);
    u->nnames = 0;
    for (size_t i = 0; i < nall; i++) {
        if (name_ok(all[i]))
            strcpy(u->names[u->nnames++], all[i]);
    }
    for (size_t f = 0; f < u->nfilters; f++) {
        for (size_t n = 0; n < u->nnames; n++)
            u->matches[f][n] = ref_match(u->filters[f], u->names[n]);
    }
}

static void test_match_exhaustive(void **state)
{
    static struct universe u;

    universe_build(&u);
    assert_int_equal(u.nnames, 339);
    assert_true(u.nfilters > 60);
    for (size_t f = 0; f < u.nfilters; f++) {
        for (size_t n = 0; n < u.nnames; n++) {
            if (match(u.filters[f], u.names[n]) != u.matches[f][n])
                fail_msg("filter \"%s\" on name \"%s\" differs from the reference",
                         u.filters[f], u.names[n]);
        }
    }
}

static void test_covers_exhaustive(void **state)
{
    static struct universe u;
    size_t covered = 0;

    universe_build(&u);
    for (size_t p = 0; p < u.nfilters; p++) {
        for (size_t f = 0; f < u.nfilters; f++) {
            bool subset = true;

            for (size_t n = 0; n < u.nnames && subset; n++)
                subset = !u.matches[f][n] || u.matches[p][n];
            if (covers(u.filters[p], u.filters[f]) != subset)
                fail_msg("pattern \"%s\" on filter \"%s\": expected %s", u.filters[p],
                         u.filters[f], subset ? "covered" : "not covered");
            covered += subset;
        }
    }
    /* Both results occur often, so the check is not vacuous. */
    assert_true(covered > 500);
    assert_true(covered < u.nfilters * u.nfilters / 2);
}

static void test_levels(void **state)
{
    assert_int_equal(topic_levels(S("a")), 1);
    assert_int_equal(topic_levels(S("a/b/c")), 3);
    assert_int_equal(topic_levels(S("/")), 2);
    assert_int_equal(topic_levels(S("a//b")), 3);
    assert_int_equal(topic_levels(S("")), 1);
    assert_int_equal(topic_levels(S("/a/")), 3);
}

static void expect_split(const char *filter, const char *group, const char *inner)
{
    const char *g = NULL, *f = NULL;
    size_t glen = 0, flen = 0;

    assert_int_equal(topic_split_shared(filter, strlen(filter), &g, &glen, &f, &flen), VIGIL_OK);
    assert_int_equal(glen, strlen(group));
    assert_memory_equal(g, group, glen);
    assert_int_equal(flen, strlen(inner));
    assert_memory_equal(f, inner, flen);
}

static vigil_err split(const char *filter)
{
    const char *g, *f;
    size_t glen, flen;

    return topic_split_shared(filter, strlen(filter), &g, &glen, &f, &flen);
}

static void test_split_shared(void **state)
{
    expect_split("$share/g/f", "g", "f");
    expect_split("$share/group1/sport/+/player1", "group1", "sport/+/player1");
    expect_split("$share/g/#", "g", "#");
    expect_split("$share/g//", "g", "/");
    expect_split("$share/g/$SYS/#", "g", "$SYS/#");

    assert_int_equal(split("$share/g"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/g/"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share//f"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/g+/f"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/+/f"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/g#/f"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/g/a#"), VIGIL_ERR_INVALID);
    assert_int_equal(split("$share/g/#/a"), VIGIL_ERR_INVALID);

    assert_int_equal(split("$shared/x"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(split("$share"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(split("$SHARE/g/f"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(split("a/$share/g/f"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(split("#"), VIGIL_ERR_NOT_FOUND);
    assert_int_equal(split(""), VIGIL_ERR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_valid),        cmocka_unit_test(test_filter_valid),
        cmocka_unit_test(test_match_table),       cmocka_unit_test(test_match_byte_ranges),
        cmocka_unit_test(test_covers_table),      cmocka_unit_test(test_match_exhaustive),
        cmocka_unit_test(test_covers_exhaustive), cmocka_unit_test(test_levels),
        cmocka_unit_test(test_split_shared),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
