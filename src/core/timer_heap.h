/* Binary min-heap of deadlines, so one event-loop timer can serve many
 * objects: each object embeds a node (12 bytes plus padding) instead of a
 * timer handle of its own (a uv_timer_t is 152 bytes). */
#ifndef VIGIL_CORE_TIMER_HEAP_H
#define VIGIL_CORE_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

/* Embedded in the object that owns the deadline. Zeroed is invalid: call
 * vigil_timer_node_init() before the first use. */
struct vigil_timer_node {
    uint64_t due;        /* caller's time unit, e.g. loop milliseconds */
    uint32_t index;      /* position in the heap; UINT32_MAX when not in one */
};

/* The heap contains pointers to nodes it does not own, and a node is in at
 * most one heap. The earliest deadline is at the root. */
struct vigil_timer_heap {
    struct vigil_timer_node **items;  /* owned array of cap pointers */
    uint32_t n, cap;
};

void vigil_timer_node_init(struct vigil_timer_node *t);
bool vigil_timer_node_queued(const struct vigil_timer_node *t);

void vigil_timer_heap_init(struct vigil_timer_heap *h);
/* Frees the array; the nodes still in it are left marked as queued. */
void vigil_timer_heap_free(struct vigil_timer_heap *h);
/* Queues t due at due, or moves it there when already queued. Fails only
 * with VIGIL_ERR_NOMEM when growing the array fails; t is then not queued. */
vigil_err vigil_timer_heap_set(struct vigil_timer_heap *h, struct vigil_timer_node *t,
                               uint64_t due);
/* Takes t out of the heap; nothing happens when it is not queued. */
void vigil_timer_heap_remove(struct vigil_timer_heap *h, struct vigil_timer_node *t);
/* The node with the earliest deadline, or NULL when the heap is empty. Of
 * nodes with the same deadline, any may come first. */
struct vigil_timer_node *vigil_timer_heap_peek(const struct vigil_timer_heap *h);

#endif
