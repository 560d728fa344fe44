/* Binary min-heap of embedded deadline nodes, each knowing its index so
 * that moving or removing one costs O(log n). */
#include "core/timer_heap.h"

#include <stddef.h>

#include "core/alloc.h"

#define NOT_QUEUED UINT32_MAX

void vigil_timer_node_init(struct vigil_timer_node *t)
{
    t->due = 0;
    t->index = NOT_QUEUED;
}

bool vigil_timer_node_queued(const struct vigil_timer_node *t)
{
    return t->index != NOT_QUEUED;
}

void vigil_timer_heap_init(struct vigil_timer_heap *h)
{
    h->items = NULL;
    h->n = 0;
    h->cap = 0;
}

void vigil_timer_heap_free(struct vigil_timer_heap *h)
{
    vigil_free(h->items);
    vigil_timer_heap_init(h);
}

static void heap_place(struct vigil_timer_heap *h, struct vigil_timer_node *t, uint32_t i)
{
    h->items[i] = t;
    t->index = i;
}

static void sift_up(struct vigil_timer_heap *h, uint32_t i)
{
    struct vigil_timer_node *t = h->items[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;

        if (h->items[parent]->due <= t->due)
            break;
        heap_place(h, h->items[parent], i);
        i = parent;
    }
    heap_place(h, t, i);
}

static void sift_down(struct vigil_timer_heap *h, uint32_t i)
{
    struct vigil_timer_node *t = h->items[i];

    for (;;) {
        uint32_t child = 2 * i + 1;

        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->items[child + 1]->due < h->items[child]->due)
            child++;
        if (t->due <= h->items[child]->due)
            break;
        heap_place(h, h->items[child], i);
        i = child;
    }
    heap_place(h, t, i);
}

static vigil_err heap_grow(struct vigil_timer_heap *h)
{
    uint32_t cap = h->cap ? h->cap * 2 : 64;
    struct vigil_timer_node **items;

    if (h->cap >= UINT32_MAX / 2)
        return VIGIL_ERR_NOMEM;
    items = vigil_realloc(h->items, (size_t)cap * sizeof *items);
    if (items == NULL)
        return VIGIL_ERR_NOMEM;
    h->items = items;
    h->cap = cap;
    return VIGIL_OK;
}

vigil_err vigil_timer_heap_set(struct vigil_timer_heap *h, struct vigil_timer_node *t,
                               uint64_t due)
{
    uint64_t old = t->due;

    if (vigil_timer_node_queued(t)) {
        t->due = due;
        if (due < old)
            sift_up(h, t->index);
        else
            sift_down(h, t->index);
        return VIGIL_OK;
    }
    if (h->n == h->cap && heap_grow(h) != VIGIL_OK)
        return VIGIL_ERR_NOMEM;
    t->due = due;
    heap_place(h, t, h->n++);
    sift_up(h, t->index);
    return VIGIL_OK;
}

void vigil_timer_heap_remove(struct vigil_timer_heap *h, struct vigil_timer_node *t)
{
    uint32_t i = t->index;
    struct vigil_timer_node *last;

    if (!vigil_timer_node_queued(t))
        return;
    t->index = NOT_QUEUED;
    last = h->items[--h->n];
    if (i == h->n)
        return;
    /* The last node fills the hole and moves whichever way it must. */
    heap_place(h, last, i);
    if (i > 0 && h->items[(i - 1) / 2]->due > last->due)
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct vigil_timer_node *vigil_timer_heap_peek(const struct vigil_timer_heap *h)
{
    return h->n > 0 ? h->items[0] : NULL;
}
