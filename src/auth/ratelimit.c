/* Failed-login limiter: token buckets in a hash map, with a doubly linked
 * list in least-recently-used order for eviction, so every call is O(1). */
#include "auth/ratelimit.h"

#include <string.h>

#include "core/alloc.h"
#include "core/map.h"

/* Keys longer than this are cut. Real keys (an address, a device id of at
 * most 64 characters) are shorter, so only an over-long user name can share
 * a bucket with another over-long user name, and that only blocks sooner. */
#define RATELIMIT_KEY_MAX 128

/* Tokens are counted in units of 1/60000 token. A token is forgiven every
 * 60000 / per_minute ms, so elapsed_ms * per_minute units come back in
 * elapsed_ms, in integer arithmetic without rounding. */
#define UNITS_PER_TOKEN UINT64_C(60000)

struct bucket {
    struct bucket *prev;    /* toward the most recently used */
    struct bucket *next;    /* toward the least recently used */
    uint64_t units;         /* tokens left, in UNITS_PER_TOKEN units */
    uint64_t updated_ms;    /* time of the last refill */
    size_t key_len;
    char key[];             /* copy, to remove the map entry on eviction */
};

struct ratelimit {
    struct vigil_map buckets;   /* key -> struct bucket *, owned */
    struct bucket *head;        /* most recently used */
    struct bucket *tail;        /* least recently used, evicted first */
    uint64_t capacity;          /* burst * UNITS_PER_TOKEN */
    uint32_t per_minute;
    size_t max_keys;
};

struct ratelimit *ratelimit_new(uint32_t burst, uint32_t per_minute, size_t max_keys)
{
    struct ratelimit *rl;

    if (burst == 0 || max_keys == 0)
        return NULL;
    rl = vigil_calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    vigil_map_init(&rl->buckets);
    rl->capacity = (uint64_t)burst * UNITS_PER_TOKEN;
    rl->per_minute = per_minute;
    rl->max_keys = max_keys;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    struct bucket *b;

    if (rl == NULL)
        return;
    while ((b = rl->head) != NULL) {
        rl->head = b->next;
        vigil_free(b);
    }
    vigil_map_free(&rl->buckets);
    vigil_free(rl);
}

static size_t key_length(const char *key)
{
    return strnlen(key, RATELIMIT_KEY_MAX);
}

static void list_unlink(struct ratelimit *rl, struct bucket *b)
{
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        rl->head = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    else
        rl->tail = b->prev;
    b->prev = NULL;
    b->next = NULL;
}

static void list_push_front(struct ratelimit *rl, struct bucket *b)
{
    b->prev = NULL;
    b->next = rl->head;
    if (rl->head != NULL)
        rl->head->prev = b;
    rl->head = b;
    if (rl->tail == NULL)
        rl->tail = b;
}

static void bucket_forget(struct ratelimit *rl, struct bucket *b)
{
    list_unlink(rl, b);
    vigil_map_remove(&rl->buckets, b->key, b->key_len);
    vigil_free(b);
}

/* Adds the tokens that came back since the last refill. A clock that went
 * backwards adds nothing. */
static void bucket_refill(const struct ratelimit *rl, struct bucket *b, uint64_t now_ms)
{
    uint64_t elapsed;
    uint64_t missing;

    if (now_ms <= b->updated_ms)
        return;
    elapsed = now_ms - b->updated_ms;
    b->updated_ms = now_ms;
    missing = rl->capacity - b->units;
    if (rl->per_minute == 0 || missing == 0)
        return;
    /* Compared by division first, so elapsed * per_minute cannot overflow. */
    if (elapsed >= missing / rl->per_minute + 1)
        b->units = rl->capacity;
    else
        b->units += elapsed * rl->per_minute;
}

/* Creates a full bucket for key, evicting the least recently used bucket
 * when max_keys are tracked. Returns NULL when out of memory. */
static struct bucket *bucket_create(struct ratelimit *rl, const char *key, size_t len,
                                    uint64_t now_ms)
{
    struct bucket *b;

    if (rl->buckets.count >= rl->max_keys && rl->tail != NULL)
        bucket_forget(rl, rl->tail);
    b = vigil_calloc(1, sizeof *b + len + 1);
    if (b == NULL)
        return NULL;
    memcpy(b->key, key, len);
    b->key_len = len;
    b->units = rl->capacity;
    b->updated_ms = now_ms;
    if (vigil_map_put(&rl->buckets, b->key, len, b) != VIGIL_OK) {
        vigil_free(b);
        return NULL;
    }
    list_push_front(rl, b);
    return b;
}

bool ratelimit_blocked(struct ratelimit *rl, const char *key, uint64_t now_ms)
{
    size_t len = key_length(key);
    struct bucket *b = vigil_map_get(&rl->buckets, key, len);

    if (b == NULL)
        return false;
    bucket_refill(rl, b, now_ms);
    /* A full bucket is the same as none, so it stops taking a slot. */
    if (b->units == rl->capacity) {
        bucket_forget(rl, b);
        return false;
    }
    list_unlink(rl, b);
    list_push_front(rl, b);
    return b->units < UNITS_PER_TOKEN;
}

void ratelimit_fail(struct ratelimit *rl, const char *key, uint64_t now_ms)
{
    size_t len = key_length(key);
    struct bucket *b = vigil_map_get(&rl->buckets, key, len);

    if (b == NULL) {
        /* NOTE: when out of memory the failure goes uncounted, so the key
         * stays unblocked until an allocation succeeds. */
        b = bucket_create(rl, key, len, now_ms);
        if (b == NULL)
            return;
    } else {
        bucket_refill(rl, b, now_ms);
        list_unlink(rl, b);
        list_push_front(rl, b);
    }
    b->units = b->units >= UNITS_PER_TOKEN ? b->units - UNITS_PER_TOKEN : 0;
}

void ratelimit_reset(struct ratelimit *rl, const char *key)
{
    size_t len = key_length(key);
    struct bucket *b = vigil_map_get(&rl->buckets, key, len);

    if (b != NULL)
        bucket_forget(rl, b);
}

size_t ratelimit_keys(const struct ratelimit *rl)
{
    return rl->buckets.count;
}
