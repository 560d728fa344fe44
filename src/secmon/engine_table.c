/* Tracked-key tables with least-recently-seen eviction, sliding window
 * counters and small distinct sets for the security engine. */
#include <string.h>

#include "core/alloc.h"
#include "core/map.h"
#include "secmon/engine_internal.h"

void engine_table_init(struct engine_table *t, size_t cap, size_t obj_size,
                       void (*on_evict)(struct secmon_engine *, struct engine_node *))
{
    memset(t, 0, sizeof *t);
    t->cap = cap > 0 ? cap : 1;
    t->obj_size = obj_size;
    t->on_evict = on_evict;
}

void engine_table_free(struct engine_table *t)
{
    struct engine_node *n = t->head;

    while (n != NULL) {
        struct engine_node *next = n->next;

        if (t->release != NULL)
            t->release(n);
        vigil_free(n);
        n = next;
    }
    vigil_free(t->buckets);
    t->buckets = NULL;
    t->n_buckets = 0;
    t->head = t->tail = NULL;
    t->count = 0;
}

const char *engine_node_key(const struct engine_node *n)
{
    return (const char *)n + n->key_off;
}

static uint32_t key_hash(const char *key, size_t len)
{
    return (uint32_t)vigil_hash_bytes(key, len);
}

static struct engine_node **bucket_of(const struct engine_table *t, uint32_t hash)
{
    return &t->buckets[hash & (t->n_buckets - 1)];
}

static struct engine_node *bucket_find(const struct engine_table *t, const char *key, size_t len,
                                       uint32_t hash)
{
    if (t->n_buckets == 0)
        return NULL;
    for (struct engine_node *n = *bucket_of(t, hash); n != NULL; n = n->hnext)
        if (n->hash == hash && n->key_len == len && memcmp(engine_node_key(n), key, len) == 0)
            return n;
    return NULL;
}

static void bucket_unlink(struct engine_table *t, struct engine_node *n)
{
    struct engine_node **p = bucket_of(t, n->hash);

    while (*p != n)
        p = &(*p)->hnext;
    *p = n->hnext;
    n->hnext = NULL;
}

/* Doubles the bucket array once there are ENGINE_BUCKET_LOAD keys per
 * bucket. False when memory runs out; the table then keeps working with
 * longer chains. */
static bool buckets_grow(struct engine_table *t)
{
    size_t n = t->n_buckets ? t->n_buckets * 2 : 16;
    struct engine_node **b = vigil_calloc(n, sizeof *b);

    if (b == NULL)
        return t->n_buckets > 0;
    for (struct engine_node *node = t->head; node != NULL; node = node->next) {
        node->hnext = b[node->hash & (n - 1)];
        b[node->hash & (n - 1)] = node;
    }
    vigil_free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
    return true;
}

static void list_unlink(struct engine_table *t, struct engine_node *n)
{
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        t->head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        t->tail = n->prev;
    n->prev = n->next = NULL;
}

static void list_push_front(struct engine_table *t, struct engine_node *n)
{
    n->prev = NULL;
    n->next = t->head;
    if (t->head != NULL)
        t->head->prev = n;
    t->head = n;
    if (t->tail == NULL)
        t->tail = n;
}

void *engine_table_get(struct engine_table *t, const char *key, size_t len)
{
    struct engine_node *n = bucket_find(t, key, len, key_hash(key, len));

    if (n != NULL && t->head != n) {
        list_unlink(t, n);
        list_push_front(t, n);
    }
    return n;
}

size_t engine_key_join(char *out, const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    size_t len = 0;

    if (alen > ENGINE_KEY_MAX - 1)
        alen = ENGINE_KEY_MAX - 1;
    memcpy(out, a, alen);
    len = alen;
    if (len < ENGINE_KEY_MAX - 1)
        out[len++] = '|';
    if (blen > ENGINE_KEY_MAX - 1 - len)
        blen = ENGINE_KEY_MAX - 1 - len;
    memcpy(out + len, b, blen);
    len += blen;
    out[len] = '\0';
    return len;
}

size_t engine_conn_key(char *out, uint64_t id)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = '\0';
    return n;
}

void engine_table_remove(struct engine_table *t, struct engine_node *n)
{
    bucket_unlink(t, n);
    list_unlink(t, n);
    t->count--;
    if (t->release != NULL)
        t->release(n);
    vigil_free(n);
}

void *engine_table_touch(struct secmon_engine *e, struct engine_table *t, const char *key,
                         size_t len, bool *created)
{
    uint32_t hash = key_hash(key, len);
    struct engine_node *n = bucket_find(t, key, len, hash);
    char *copy;

    if (created != NULL)
        *created = false;
    if (n != NULL) {
        if (t->head != n) {
            list_unlink(t, n);
            list_push_front(t, n);
        }
        return n;
    }
    if (len >= ENGINE_KEY_MAX)
        return NULL;
    if (t->count >= t->cap && t->tail != NULL) {
        struct engine_node *old = t->tail;

        if (t->on_evict != NULL)
            t->on_evict(e, old);
        engine_table_remove(t, old);
    }
    if (t->count >= ENGINE_BUCKET_LOAD * t->n_buckets && !buckets_grow(t))
        return NULL;
    /* The key follows the object, so a short key costs only its length. */
    n = vigil_calloc(1, t->obj_size + len + 1);
    if (n == NULL)
        return NULL;
    copy = (char *)n + t->obj_size;
    memcpy(copy, key, len);
    copy[len] = '\0';
    n->key_off = (uint16_t)t->obj_size;
    n->key_len = (uint16_t)len;
    n->hash = hash;
    n->hnext = *bucket_of(t, hash);
    *bucket_of(t, hash) = n;
    list_push_front(t, n);
    t->count++;
    if (created != NULL)
        *created = true;
    return n;
}

/* Moves the window forward so that now_us falls in the current one. */
static void window_advance(struct engine_window *w, int64_t now_us, int64_t len_us)
{
    if (w->start_us == 0 || now_us - w->start_us >= 2 * len_us) {
        w->start_us = now_us;
        w->prev = 0;
        w->cur = 0;
    } else if (now_us - w->start_us >= len_us) {
        w->prev = w->cur;
        w->cur = 0;
        w->start_us += len_us;
    }
}

double engine_window_read(const struct engine_window *w, int64_t now_us, int64_t len_us)
{
    struct engine_window copy = *w;
    double overlap;

    if (now_us < copy.start_us)
        now_us = copy.start_us;
    window_advance(&copy, now_us, len_us);
    overlap = 1.0 - (double)(now_us - copy.start_us) / (double)len_us;
    return copy.cur + copy.prev * overlap;
}

double engine_window_add(struct engine_window *w, int64_t now_us, int64_t len_us)
{
    if (now_us < w->start_us)
        now_us = w->start_us;
    window_advance(w, now_us, len_us);
    if (engine_window_read(w, now_us, len_us) < 0.5)
        w->first_us = now_us;
    if (w->cur < UINT32_MAX)
        w->cur++;
    return engine_window_read(w, now_us, len_us);
}

uint32_t engine_idset_add(struct engine_idset *s, uint64_t hash, int64_t now_us, int64_t len_us)
{
    if (s->start_us == 0 || now_us - s->start_us >= len_us) {
        s->start_us = now_us;
        s->count = 0;
    }
    for (uint32_t i = 0; i < s->count; i++)
        if (s->hash[i] == hash)
            return s->count;
    if (s->count < ENGINE_IDENTS_MAX)
        s->hash[s->count++] = hash;
    return s->count;
}

void engine_peer_address(const char *peer, char *out, size_t cap)
{
    const char *end = peer + strlen(peer);
    const char *colon = strrchr(peer, ':');
    size_t len;

    if (peer[0] == '[') {
        const char *close = strchr(peer, ']');

        peer++;
        end = close != NULL ? close : end;
    } else if (colon != NULL && strchr(peer, ':') == colon) {
        end = colon;
    }
    len = (size_t)(end - peer);
    if (len >= cap)
        len = cap - 1;
    memcpy(out, peer, len);
    out[len] = '\0';
}

uint32_t engine_peer_hash(const struct secmon_engine *e, const char *src)
{
    char buf[sizeof e->peer_seed + 64];
    size_t len = strnlen(src, 64);

    memcpy(buf, e->peer_seed, sizeof e->peer_seed);
    memcpy(buf + sizeof e->peer_seed, src, len);
    return (uint32_t)vigil_hash_bytes(buf, sizeof e->peer_seed + len);
}

const char *engine_event_identity(const struct vigil_event *ev)
{
    return ev->device[0] != '\0' ? ev->device : ev->client_id;
}
