/* A hub for unit tests of sessions and routing: no loop I/O, store or
 * event sink, which offline sessions and held connections never touch. */
#ifndef VIGIL_TESTS_UNIT_HUB_H
#define VIGIL_TESTS_UNIT_HUB_H

#include "broker/broker.h"
#include "core/alloc.h"

static inline struct hub *unit_hub_new(void)
{
    struct hub *hub = vigil_calloc(1, sizeof *hub);

    config_defaults(&hub->cfg);
    hub->loop = uv_default_loop();
    vigil_map_init_borrowed(&hub->sessions);
    hub->subs = subtree_new();
    hub->retained = retain_new();
    hub->next_seq = 1;
    hub->next_msg_id = 1;
    return hub;
}

static inline void unit_hub_free(struct hub *hub)
{
    session_free_all(hub);
    router_free(hub);
    subtree_free(hub->subs);
    vigil_map_free(&hub->sessions);
    vigil_free(hub->flush_list);
    vigil_free(hub);
}

#endif
