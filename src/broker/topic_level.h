/* Private to src/broker: a cursor over the '/'-separated levels of a topic
 * string, able to move both ways without allocating, so the trees can walk
 * topics of any depth iteratively. */
#ifndef VIGIL_BROKER_TOPIC_LEVEL_H
#define VIGIL_BROKER_TOPIC_LEVEL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The current level is s[start, end). A topic always has at least one level,
 * possibly empty, so the cursor is valid right after level_first(). */
struct topic_level {
    const char *s;
    size_t len;
    size_t start;
    size_t end;
};

static inline size_t level_find_end(const char *s, size_t len, size_t from)
{
    const char *slash = from < len ? memchr(s + from, '/', len - from) : NULL;

    return slash != NULL ? (size_t)(slash - s) : len;
}

static inline void level_first(struct topic_level *c, const char *s, size_t len)
{
    c->s = s;
    c->len = len;
    c->start = 0;
    c->end = level_find_end(s, len, 0);
}

static inline bool level_is_last(const struct topic_level *c)
{
    return c->end == c->len;
}

/* Moves to the next level; returns false and stays put on the last one. */
static inline bool level_next(struct topic_level *c)
{
    if (level_is_last(c))
        return false;
    c->start = c->end + 1;
    c->end = level_find_end(c->s, c->len, c->start);
    return true;
}

/* Moves to the previous level; returns false and stays put on the first. */
static inline bool level_prev(struct topic_level *c)
{
    size_t i;

    if (c->start == 0)
        return false;
    c->end = c->start - 1;
    i = c->end;
    while (i > 0 && c->s[i - 1] != '/')
        i--;
    c->start = i;
    return true;
}

static inline size_t level_len(const struct topic_level *c)
{
    return c->end - c->start;
}

static inline const char *level_ptr(const struct topic_level *c)
{
    return c->s + c->start;
}

/* True when the current level is exactly the one character ch. */
static inline bool level_is(const struct topic_level *c, char ch)
{
    return level_len(c) == 1 && c->s[c->start] == ch;
}

/* Orders levels as byte strings: memcmp on the common prefix, then length. */
static inline int level_compare(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int r = n > 0 ? memcmp(a, b, n) : 0;

    if (r != 0)
        return r;
    return (alen > blen) - (alen < blen);
}

#endif
