/* MQTT topic names and filters (MQTT 5.0 section 4.7, unchanged from 3.1.1):
 * validation, matching, filter coverage for access control and the split of
 * "$share/{group}/{filter}". Pure functions over byte ranges. */
#include "broker/topic.h"

#include <string.h>

#include "broker/topic_level.h"

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN (sizeof(SHARE_PREFIX) - 1)

bool topic_name_valid(const char *name, size_t len)
{
    if (len == 0)
        return false;
    /* U+0000 is forbidden in every MQTT string, and callers pass topics on as
     * NUL-terminated strings, so a NUL byte would truncate them. */
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '+' || name[i] == '#' || name[i] == '\0')
            return false;
    }
    return true;
}

/* Checks one level of a filter: a wildcard must be the whole level. */
static bool filter_level_valid(const struct topic_level *c)
{
    const char *p = level_ptr(c);
    size_t n = level_len(c);

    if (n == 1 && (p[0] == '+' || p[0] == '#'))
        return true;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '+' || p[i] == '#' || p[i] == '\0')
            return false;
    }
    return true;
}

bool topic_filter_valid(const char *filter, size_t len)
{
    struct topic_level c;

    if (len == 0)
        return false;
    level_first(&c, filter, len);
    for (;;) {
        if (!filter_level_valid(&c))
            return false;
        if (level_is(&c, '#') && !level_is_last(&c))
            return false;
        if (!level_next(&c))
            return true;
    }
}

/* True when the first level of filter is '+' or '#'. */
static bool first_level_is_wildcard(const char *filter, size_t len)
{
    return len > 0 && (filter[0] == '+' || filter[0] == '#') && (len == 1 || filter[1] == '/');
}

bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen)
{
    struct topic_level f;
    struct topic_level n;

    if (nlen > 0 && name[0] == '$' && first_level_is_wildcard(filter, flen))
        return false;
    level_first(&f, filter, flen);
    level_first(&n, name, nlen);
    for (;;) {
        /* '#' matches the remaining levels, including none ("a/#" matches "a"). */
        if (level_is(&f, '#'))
            return true;
        if (!level_is(&f, '+') &&
            level_compare(level_ptr(&f), level_len(&f), level_ptr(&n), level_len(&n)) != 0)
            return false;

        bool more_f = level_next(&f);
        bool more_n = level_next(&n);

        if (!more_n)
            return !more_f || (level_is(&f, '#') && level_is_last(&f));
        if (!more_f)
            return false;
    }
}

/*
 * Coverage walks both filters level by level. Write P for pattern, F for
 * filter and i for the level, counting from 1. Level values are unbounded
 * byte strings, so a '+' in F always matches some value that a literal in P
 * does not match, and every valid filter matches at least one name.
 *
 * - P has '#' at i: P matches every continuation of the prefix, including
 *   the prefix alone. The only exception is i = 1 with F's first level a
 *   literal starting with '$', because '#' as first level excludes those names.
 * - F has '#' at i and P does not: F matches the prefix (levels before i)
 *   alone and the prefix followed by more levels. Only '#' in P matches both,
 *   unless the prefix alone is not a valid name because it is the empty
 *   string (i = 1, or i = 2 after an empty first level). Then F matches only
 *   the longer names, and "+/#" at i covers them too: "+/#" covers "#" and
 *   "/+/#" covers "/#".
 * - F ends at i: its names end there too. P must end at the same level (or
 *   have '#' at i, handled above).
 * - P ends at i and F does not: F matches longer names. Not covered.
 * - P has '+' at i: covers a literal or '+' in F, except a literal starting
 *   with '$' at i = 1.
 * - P has a literal at i: F must have the same literal, because '+' in F
 *   matches other values.
 */
static bool covers_at_hash(bool prefix_empty, const struct topic_level *p)
{
    struct topic_level next = *p;

    if (!prefix_empty || !level_is(p, '+'))
        return false;
    return level_next(&next) && level_is(&next, '#');
}

/* True for a level starting with '$', which is always a literal level. */
static bool level_starts_dollar(const struct topic_level *c)
{
    return level_len(c) > 0 && level_ptr(c)[0] == '$';
}

static bool covers_level(bool first, const struct topic_level *p, const struct topic_level *f)
{
    if (level_is(p, '+'))
        return !(first && level_starts_dollar(f));
    if (level_is(f, '+'))
        return false;
    return level_compare(level_ptr(p), level_len(p), level_ptr(f), level_len(f)) == 0;
}

bool topic_filter_covers(const char *pattern, size_t plen, const char *filter, size_t flen)
{
    struct topic_level p;
    struct topic_level f;
    bool first = true;
    bool prefix_empty = true; /* the levels of filter before f join to "" */

    level_first(&p, pattern, plen);
    level_first(&f, filter, flen);
    for (;;) {
        if (level_is(&p, '#'))
            return !(first && level_starts_dollar(&f));
        if (level_is(&f, '#'))
            return covers_at_hash(prefix_empty, &p);
        if (!covers_level(first, &p, &f))
            return false;
        prefix_empty = first && level_len(&f) == 0;

        bool more_p = level_next(&p);
        bool more_f = level_next(&f);

        if (!more_f)
            return !more_p || (level_is(&p, '#') && level_is_last(&p));
        if (!more_p)
            return false;
        first = false;
    }
}

size_t topic_levels(const char *topic, size_t len)
{
    size_t n = 1;

    for (size_t i = 0; i < len; i++) {
        if (topic[i] == '/')
            n++;
    }
    return n;
}

vigil_err topic_split_shared(const char *filter, size_t len, const char **group, size_t *glen,
                             const char **inner, size_t *ilen)
{
    const char *g = filter + SHARE_PREFIX_LEN;
    const char *slash;
    size_t rest;

    if (len < SHARE_PREFIX_LEN || memcmp(filter, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        return VIGIL_ERR_NOT_FOUND;
    rest = len - SHARE_PREFIX_LEN;
    slash = memchr(g, '/', rest);
    if (slash == NULL || slash == g)
        return VIGIL_ERR_INVALID;
    for (const char *q = g; q < slash; q++) {
        if (*q == '+' || *q == '#' || *q == '\0')
            return VIGIL_ERR_INVALID;
    }
    if (!topic_filter_valid(slash + 1, (size_t)(filter + len - (slash + 1))))
        return VIGIL_ERR_INVALID;
    *group = g;
    *glen = (size_t)(slash - g);
    *inner = slash + 1;
    *ilen = (size_t)(filter + len - *inner);
    return VIGIL_OK;
}
