/* Open-addressing hash map keyed by byte strings. */
#include "core/map.h"

#include <string.h>

#include "core/alloc.h"

/* The value of a tombstone slot: removed, but probing continues past it. */
static char map_tombstone;

uint64_t vigil_hash_bytes(const void *p, size_t len)
{
    /* FNV-1a, 64-bit, followed by a finalizer so low bits mix well. */
    const uint8_t *b = p;
    uint64_t h = UINT64_C(1469598103934665603);

    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static uint32_t map_hash(const char *key, size_t len)
{
    return (uint32_t)vigil_hash_bytes(key, len);
}

static bool slot_is_tombstone(const struct vigil_map_slot *s)
{
    return s->key == NULL && s->value == &map_tombstone;
}

void vigil_map_init(struct vigil_map *m)
{
    memset(m, 0, sizeof *m);
}

void vigil_map_init_borrowed(struct vigil_map *m)
{
    vigil_map_init(m);
    m->borrow_keys = true;
}

void vigil_map_free(struct vigil_map *m)
{
    bool borrow = m->borrow_keys;

    if (!borrow)
        for (size_t i = 0; i < m->cap; i++)
            vigil_free((char *)m->slots[i].key);
    vigil_free(m->slots);
    vigil_map_init(m);
    m->borrow_keys = borrow;
}

static struct vigil_map_slot *map_find(const struct vigil_map *m, const char *key, size_t len,
                                       uint32_t h)
{
    size_t mask = m->cap - 1;

    if (m->cap == 0)
        return NULL;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct vigil_map_slot *s = &m->slots[i];

        if (s->key == NULL && !slot_is_tombstone(s))
            return NULL;
        if (s->key != NULL && s->hash == h && s->key_len == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

static vigil_err map_grow(struct vigil_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct vigil_map_slot *slots;

    /* Mostly tombstones: rehashing at the same size is enough to clear them. */
    if (m->cap > 0 && m->count * 4 < m->cap)
        cap = m->cap;
    slots = vigil_calloc(cap, sizeof *slots);
    if (slots == NULL)
        return VIGIL_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct vigil_map_slot *s = &m->slots[i];
        size_t j;

        if (s->key == NULL)
            continue;
        for (j = s->hash & (cap - 1); slots[j].key != NULL; j = (j + 1) & (cap - 1))
            ;
        slots[j] = *s;
    }
    vigil_free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = m->count;
    return VIGIL_OK;
}

void *vigil_map_get(const struct vigil_map *m, const char *key, size_t len)
{
    struct vigil_map_slot *s = map_find(m, key, len, map_hash(key, len));

    return s ? s->value : NULL;
}

vigil_err vigil_map_put(struct vigil_map *m, const char *key, size_t len, void *value)
{
    uint32_t h = map_hash(key, len);
    struct vigil_map_slot *s = map_find(m, key, len, h);
    const char *stored = key;
    size_t i;

    if (s != NULL) {
        /* A borrowed key belongs to the value, so it moves with it. */
        if (m->borrow_keys)
            s->key = key;
        s->value = value;
        return VIGIL_OK;
    }
    if (len >= UINT32_MAX)
        return VIGIL_ERR_INVALID;
    if ((m->used + 1) * 4 > m->cap * 3 && map_grow(m) != VIGIL_OK)
        return VIGIL_ERR_NOMEM;
    if (!m->borrow_keys) {
        char *copy = vigil_malloc(len + 1);

        if (copy == NULL)
            return VIGIL_ERR_NOMEM;
        memcpy(copy, key, len);
        copy[len] = '\0';
        stored = copy;
    }
    for (i = h & (m->cap - 1); m->slots[i].key != NULL; i = (i + 1) & (m->cap - 1))
        ;
    if (!slot_is_tombstone(&m->slots[i]))
        m->used++;
    m->slots[i] = (struct vigil_map_slot){stored, value, h, (uint32_t)len};
    m->count++;
    return VIGIL_OK;
}

void *vigil_map_remove(struct vigil_map *m, const char *key, size_t len)
{
    struct vigil_map_slot *s = map_find(m, key, len, map_hash(key, len));
    void *value;

    if (s == NULL)
        return NULL;
    value = s->value;
    if (!m->borrow_keys)
        vigil_free((char *)s->key);
    *s = (struct vigil_map_slot){.key = NULL, .value = &map_tombstone};
    m->count--;
    return value;
}

struct vigil_map_slot *vigil_map_next(const struct vigil_map *m, size_t *pos)
{
    while (*pos < m->cap) {
        struct vigil_map_slot *s = &m->slots[(*pos)++];

        if (s->key != NULL)
            return s;
    }
    return NULL;
}
