/* MQTT-SN gateway tables: topic ids, the output queue, QoS 2 message ids
 * and predefined topics. Pure data structures without I/O. */
#include <string.h>

#include "core/alloc.h"
#include "front/mqttsn_internal.h"

void sn_topics_init(struct sn_topics *t, size_t max)
{
    memset(t, 0, sizeof *t);
    t->max = max < SN_MAX_TOPICS ? max : SN_MAX_TOPICS;
    vigil_map_init(&t->by_name);
}

void sn_topics_free(struct sn_topics *t)
{
    for (size_t i = 0; i < t->n; i++)
        vigil_free(t->v[i].name);
    vigil_free(t->v);
    vigil_map_free(&t->by_name);
    t->v = NULL;
    t->n = t->cap = 0;
}

uint16_t sn_topics_find(const struct sn_topics *t, const char *name, size_t len)
{
    return (uint16_t)(uintptr_t)vigil_map_get(&t->by_name, name, len);
}

struct sn_topic *sn_topics_get(const struct sn_topics *t, uint16_t id)
{
    if (id == 0 || id > t->n)
        return NULL;
    return &t->v[id - 1];
}

static vigil_err topics_grow(struct sn_topics *t)
{
    size_t cap = t->cap == 0 ? 8 : t->cap * 2;
    struct sn_topic *v;

    if (cap > t->max)
        cap = t->max;
    v = vigil_realloc(t->v, cap * sizeof *v);
    if (v == NULL)
        return VIGIL_ERR_NOMEM;
    t->v = v;
    t->cap = cap;
    return VIGIL_OK;
}

vigil_err sn_topics_add(struct sn_topics *t, const char *name, size_t len, uint16_t *id)
{
    struct sn_topic *e;
    char *copy;

    *id = sn_topics_find(t, name, len);
    if (*id != 0)
        return VIGIL_OK;
    if (t->n >= t->max || len > UINT16_MAX)
        return VIGIL_ERR_LIMIT;
    if (t->n == t->cap && topics_grow(t) != VIGIL_OK)
        return VIGIL_ERR_NOMEM;
    copy = vigil_strndup(name, len);
    if (copy == NULL)
        return VIGIL_ERR_NOMEM;
    if (vigil_map_put(&t->by_name, name, len, (void *)(uintptr_t)(t->n + 1)) != VIGIL_OK) {
        vigil_free(copy);
        return VIGIL_ERR_NOMEM;
    }
    e = &t->v[t->n++];
    e->name = copy;
    e->len = (uint16_t)len;
    e->known = false;
    *id = (uint16_t)t->n;
    return VIGIL_OK;
}

/* Unlinks and frees the entry after prev (the head when prev is NULL). */
static void outq_unlink(struct sn_outq *q, struct sn_out *prev)
{
    struct sn_out *o = prev != NULL ? prev->next : q->head;

    if (prev != NULL)
        prev->next = o->next;
    else
        q->head = o->next;
    if (q->tail == o)
        q->tail = prev;
    q->n--;
    msg_unref(o->msg);
    vigil_free(o);
}

vigil_err sn_outq_push(struct sn_outq *q, struct msg *m, uint8_t qos, bool retain, uint32_t cap,
                       bool head_busy, bool *dropped)
{
    struct sn_out *o;

    *dropped = false;
    if (cap == 0)
        cap = 1;
    if (q->n >= cap) {
        /* The message in flight stays; with a cap of 1 it is the one kept. */
        if (!head_busy)
            outq_unlink(q, NULL);
        else if (q->head->next != NULL)
            outq_unlink(q, q->head);
        else {
            *dropped = true;
            return VIGIL_OK;
        }
        *dropped = true;
    }
    o = vigil_malloc(sizeof *o);
    if (o == NULL)
        return VIGIL_ERR_NOMEM;
    o->next = NULL;
    o->msg = msg_ref(m);
    o->qos = qos;
    o->retain = retain;
    if (q->tail != NULL)
        q->tail->next = o;
    else
        q->head = o;
    q->tail = o;
    q->n++;
    return VIGIL_OK;
}

void sn_outq_pop(struct sn_outq *q)
{
    if (q->head != NULL)
        outq_unlink(q, NULL);
}

void sn_outq_clear(struct sn_outq *q)
{
    while (q->head != NULL)
        outq_unlink(q, NULL);
}

bool sn_idset_has(const struct sn_idset *s, uint16_t id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == id)
            return true;
    }
    return false;
}

vigil_err sn_idset_add(struct sn_idset *s, uint16_t id, size_t max)
{
    if (sn_idset_has(s, id))
        return VIGIL_OK;
    if (s->n >= max)
        return VIGIL_ERR_LIMIT;
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 4 : s->cap * 2;
        uint16_t *v = vigil_realloc(s->v, cap * sizeof *v);

        if (v == NULL)
            return VIGIL_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = id;
    return VIGIL_OK;
}

bool sn_idset_remove(struct sn_idset *s, uint16_t id)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == id) {
            s->v[i] = s->v[--s->n];
            return true;
        }
    }
    return false;
}

void sn_idset_free(struct sn_idset *s)
{
    vigil_free(s->v);
    memset(s, 0, sizeof *s);
}

size_t sn_predefined_topic(const struct config_gateway *g, uint16_t id, const char *device,
                           char *out, size_t cap)
{
    for (size_t i = 0; i < g->n_predefined; i++) {
        if (g->predefined[i].id == id)
            return acl_expand_device(g->predefined[i].topic, device, out, cap);
    }
    return 0;
}

bool sn_predefined_find(const struct config_gateway *g, const char *device, const char *topic,
                        size_t len, uint16_t *id)
{
    char buf[512];

    for (size_t i = 0; i < g->n_predefined; i++) {
        size_t n = acl_expand_device(g->predefined[i].topic, device, buf, sizeof buf);

        if (n != 0 && n == len && memcmp(buf, topic, len) == 0) {
            *id = g->predefined[i].id;
            return true;
        }
    }
    return false;
}
