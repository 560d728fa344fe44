/* libFuzzer harness for topic validation, matching, coverage and the split
 * of shared subscriptions. The input is cut into a filter, a pattern and a
 * name at two offsets taken from its first two bytes, and every result is
 * compared with a naive reference written here. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/topic.h"
#include "core/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct range {
    const char *s;
    size_t len;
};

/* A list of levels, split naively at every '/'. */
struct levels {
    struct range *items;
    size_t count;
};

static void levels_split(struct levels *l, const char *s, size_t len)
{
    size_t start = 0;

    l->items = vigil_malloc((len + 1) * sizeof(*l->items));
    if (l->items == NULL)
        abort();
    l->count = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            l->items[l->count++] = (struct range){ s + start, i - start };
            start = i + 1;
        }
    }
}

static bool range_is(struct range r, const char *text)
{
    return r.len == strlen(text) && memcmp(r.s, text, r.len) == 0;
}

static bool range_equal(struct range a, struct range b)
{
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

static bool has_forbidden(struct range r)
{
    for (size_t i = 0; i < r.len; i++) {
        if (r.s[i] == '+' || r.s[i] == '#' || r.s[i] == '\0')
            return true;
    }
    return false;
}

static bool ref_name_valid(struct range r)
{
    return r.len > 0 && !has_forbidden(r);
}

static bool ref_filter_valid(struct range r)
{
    struct levels l;
    bool ok = r.len > 0;

    levels_split(&l, r.s, r.len);
    for (size_t i = 0; ok && i < l.count; i++) {
        if (range_is(l.items[i], "#"))
            ok = i == l.count - 1;
        else if (!range_is(l.items[i], "+"))
            ok = !has_forbidden(l.items[i]);
    }
    vigil_free(l.items);
    return ok;
}

/* Reference matcher: a filter ending in '#' needs at least its prefix
 * levels, any other filter exactly as many levels as the name. */
static bool ref_match(struct range filter, struct range name)
{
    struct levels f;
    struct levels n;
    size_t prefix;
    bool ok;

    levels_split(&f, filter.s, filter.len);
    levels_split(&n, name.s, name.len);
    ok = !(name.len > 0 && name.s[0] == '$' &&
           (range_is(f.items[0], "+") || range_is(f.items[0], "#")));
    prefix = range_is(f.items[f.count - 1], "#") ? f.count - 1 : f.count;
    if (prefix == f.count ? n.count != f.count : n.count < prefix)
        ok = false;
    for (size_t i = 0; ok && i < prefix; i++) {
        if (!range_is(f.items[i], "+") && !range_equal(f.items[i], n.items[i]))
            ok = false;
    }
    vigil_free(f.items);
    vigil_free(n.items);
    return ok;
}

/* Bytes that steer name generation; zeros once the input runs out. */
struct entropy {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static uint8_t entropy_next(struct entropy *e)
{
    return e->pos < e->len ? e->p[e->pos++] : 0;
}

/* Appends one level of up to 3 bytes from a small alphabet. */
static size_t gen_level(char *out, struct entropy *e, bool first)
{
    static const char alphabet[] = { 'a', '$', ' ', 'b' };
    size_t n = entropy_next(e) % 4;

    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[entropy_next(e) % 4];
    if (first && n > 0 && out[0] == '$')
        out[0] = 'a';
    return n;
}

/* Writes into out a name that filter must match, replacing '+' with a
 * generated level and '#' with zero to three generated levels. out must
 * have room for 4 * filter.len + 16 bytes. */
static size_t gen_name(char *out, struct range filter, struct entropy *e)
{
    struct levels f;
    size_t n = 0;

    levels_split(&f, filter.s, filter.len);
    for (size_t i = 0; i < f.count; i++) {
        struct range lv = f.items[i];

        if (i > 0)
            out[n++] = '/';
        if (range_is(lv, "+")) {
            n += gen_level(out + n, e, i == 0);
        } else if (range_is(lv, "#")) {
            size_t extra = entropy_next(e) % 4;

            if (i == 0 && extra == 0)
                extra = 1;
            if (i > 0 && extra == 0)
                n--; /* the prefix alone */
            for (size_t k = 0; k < extra; k++) {
                if (k > 0)
                    out[n++] = '/';
                n += gen_level(out + n, e, i == 0 && k == 0);
            }
        } else {
            memcpy(out + n, lv.s, lv.len);
            n += lv.len;
        }
    }
    vigil_free(f.items);
    return n;
}

static void check_validation(struct range r)
{
    size_t slashes = 0;

    if (topic_name_valid(r.s, r.len) != ref_name_valid(r))
        abort();
    if (topic_filter_valid(r.s, r.len) != ref_filter_valid(r))
        abort();
    for (size_t i = 0; i < r.len; i++)
        slashes += r.s[i] == '/';
    if (topic_levels(r.s, r.len) != slashes + 1)
        abort();
}

static void check_split(struct range r)
{
    const char *group = NULL;
    const char *inner = NULL;
    size_t glen = 0;
    size_t ilen = 0;
    bool prefixed = r.len >= 7 && memcmp(r.s, "$share/", 7) == 0;
    vigil_err rc = topic_split_shared(r.s, r.len, &group, &glen, &inner, &ilen);

    if (rc == VIGIL_ERR_NOT_FOUND && prefixed)
        abort();
    if (rc != VIGIL_ERR_NOT_FOUND && !prefixed)
        abort();
    if (rc != VIGIL_OK)
        return;
    if (group != r.s + 7 || glen == 0 || memchr(group, '/', glen) != NULL ||
        has_forbidden((struct range){ group, glen }))
        abort();
    if (inner != group + glen + 1 || inner + ilen != r.s + r.len ||
        !ref_filter_valid((struct range){ inner, ilen }))
        abort();
}

/* Checks matching of filter f against the name n and against names made
 * from f, and that pattern p, when it covers f, matches those names too. */
static void check_match(struct range f, struct range p, struct range n)
{
    bool p_valid = ref_filter_valid(p);
    bool covered = p_valid && topic_filter_covers(p.s, p.len, f.s, f.len);
    struct entropy e = { (const uint8_t *)n.s, n.len, 0 };
    char *name = vigil_malloc(4 * f.len + 16);

    if (name == NULL)
        abort();
    if (topic_match(f.s, f.len, n.s, n.len) != ref_match(f, n))
        abort();
    if (!topic_filter_covers(f.s, f.len, f.s, f.len))
        abort();
    if (topic_filter_covers("#", 1, f.s, f.len) != (f.s[0] != '$'))
        abort();
    for (int round = 0; round < 4; round++) {
        struct range g = { name, gen_name(name, f, &e) };

        if (!ref_name_valid(g))
            continue;
        if (!ref_match(f, g) || !topic_match(f.s, f.len, g.s, g.len))
            abort();
        if (covered && (!ref_match(p, g) || !topic_match(p.s, p.len, g.s, g.len)))
            abort();
    }
    vigil_free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct range all = { (const char *)data, size };
    struct range f, p, n;
    size_t cut1;
    size_t cut2;

    check_split(all);
    if (size < 2)
        return 0;
    cut1 = 2 + (size > 2 ? data[0] % (size - 1) : 0);
    cut2 = cut1 + (size > cut1 ? data[1] % (size - cut1 + 1) : 0);
    f = (struct range){ (const char *)data + 2, cut1 - 2 };
    p = (struct range){ (const char *)data + cut1, cut2 - cut1 };
    n = (struct range){ (const char *)data + cut2, size - cut2 };
    check_validation(f);
    check_validation(p);
    check_validation(n);
    if (ref_filter_valid(f))
        check_match(f, p, n);
    if (ref_filter_valid(p))
        check_match(p, f, n);
    return 0;
}
