/* Hash map from byte-string keys to pointers, open addressing with linear
 * probing. Keys are copied into the map unless the map borrows them;
 * values are owned by the caller. */
#ifndef VIGIL_CORE_MAP_H
#define VIGIL_CORE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* 24 bytes, so a map of many small entries stays small: at the maximum
 * load of 3/4 an entry costs 32 to 64 bytes of slots. */
struct vigil_map_slot {
    const char *key;     /* NUL-terminated; NULL = empty or tombstone */
    void *value;         /* a tombstone stores the map's sentinel here */
    uint32_t hash;       /* low 32 bits of vigil_hash_bytes() */
    uint32_t key_len;
};

struct vigil_map {
    struct vigil_map_slot *slots;
    size_t cap;          /* power of two, 0 before the first insert */
    size_t count;
    size_t used;         /* count + tombstones */
    bool borrow_keys;    /* keys are the caller's, not copies */
};

void vigil_map_init(struct vigil_map *m);
/* A map that stores the key pointers it is given instead of copies: each
 * key must stay valid and unchanged until its entry is removed or the map
 * is freed. Saves one allocation per entry when the value contains its key. */
void vigil_map_init_borrowed(struct vigil_map *m);
/* Frees the slots and key copies, not the values. */
void vigil_map_free(struct vigil_map *m);
void *vigil_map_get(const struct vigil_map *m, const char *key, size_t len);
/* Inserts or replaces; VIGIL_ERR_NOMEM leaves the map unchanged, and
 * VIGIL_ERR_INVALID rejects a key of 4 GiB or more. Replacing keeps the
 * key copy of a copying map and stores the new key pointer in a borrowing
 * one. */
vigil_err vigil_map_put(struct vigil_map *m, const char *key, size_t len, void *value);
/* Removes the key and returns its value, NULL if absent. */
void *vigil_map_remove(struct vigil_map *m, const char *key, size_t len);
/* Iteration: *pos starts at 0; returns the next occupied slot or NULL. The
 * map must not be modified during iteration, except by removing the slot
 * just returned. */
struct vigil_map_slot *vigil_map_next(const struct vigil_map *m, size_t *pos);

uint64_t vigil_hash_bytes(const void *p, size_t len);

#endif
