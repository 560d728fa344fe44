/* Hash map from byte-string keys to pointers, open addressing with linear
 * probing. Keys are copied into the map; values are owned by the caller. */
#ifndef VIGIL_CORE_MAP_H
#define VIGIL_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

struct vigil_map_slot {
    char *key;           /* owned, NUL-terminated copy; NULL = empty */
    size_t key_len;
    uint64_t hash;
    void *value;
    uint8_t tombstone;
};

struct vigil_map {
    struct vigil_map_slot *slots;
    size_t cap;          /* power of two, 0 before the first insert */
    size_t count;
    size_t used;         /* count + tombstones */
};

void vigil_map_init(struct vigil_map *m);
/* Frees the slots and key copies, not the values. */
void vigil_map_free(struct vigil_map *m);
void *vigil_map_get(const struct vigil_map *m, const char *key, size_t len);
/* Inserts or replaces; VIGIL_ERR_NOMEM leaves the map unchanged. */
vigil_err vigil_map_put(struct vigil_map *m, const char *key, size_t len, void *value);
/* Removes the key and returns its value, NULL if absent. */
void *vigil_map_remove(struct vigil_map *m, const char *key, size_t len);
/* Iteration: *pos starts at 0; returns the next occupied slot or NULL. The
 * map must not be modified during iteration, except by removing the slot
 * just returned. */
struct vigil_map_slot *vigil_map_next(const struct vigil_map *m, size_t *pos);

uint64_t vigil_hash_bytes(const void *p, size_t len);

#endif
