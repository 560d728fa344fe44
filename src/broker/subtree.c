/* Subscription tree: a trie by topic level, with the '+' and '#' children of
 * each node kept apart from the literal ones, holding the plain
 * subscriptions and the share groups of each filter. All walks are
 * iterative, so filters and names of any depth need no extra stack. */
#include <stdint.h>
#include <string.h>

#include "broker/topic.h"
#include "broker/topic_level.h"
#include "core/alloc.h"

#define SUB_LIST_FIRST_CAP 4
/* Lists whose capacity reaches this size get a hash index by subscriber, so
 * add and remove stay O(1) on filters with many subscribers. */
#define SUB_INDEX_MIN_CAP 16

struct sub_entry {
    void *subscriber; /* not owned */
    uint32_t sub_id;
    uint8_t options;
};

/* An index slot; subscriber NULL marks a free slot. */
struct sub_slot {
    void *subscriber;
    size_t pos; /* position in sub_list.items */
};

/* The subscriptions of one filter or of one share group: a dense array for
 * matching and, once large, an open-addressing index with linear probing
 * from subscriber to position, kept at most half full. */
struct sub_list {
    struct sub_entry *items; /* owned */
    size_t count;
    size_t cap;
    struct sub_slot *slots; /* owned; NULL below SUB_INDEX_MIN_CAP */
    size_t nslots;          /* power of two, twice cap */
};

struct share_group {
    char *name; /* owned, not NUL-terminated */
    size_t name_len;
    struct sub_list members;
    size_t next; /* position of the first member to try on the next match */
};

struct sub_node {
    struct sub_node *parent;      /* NULL for the root */
    struct sub_node **children;   /* owned; literal levels sorted by level_compare */
    size_t nchildren;
    size_t children_cap;
    struct sub_node *plus;        /* owned; the '+' child */
    struct sub_node *hash;        /* owned; the '#' child, always a leaf */
    struct sub_list subs;         /* plain subscriptions to this filter */
    struct share_group **groups;  /* owned; share groups on this filter */
    size_t ngroups;
    size_t level_len;
    char level[];                 /* this node's level, not NUL-terminated */
};

struct sub_tree {
    struct sub_node *root;
    size_t count;
};

/* State shared by the steps of one subtree_match call. */
struct match_walk {
    const struct sub_node *root;
    bool dollar; /* the name starts with '$' */
    subtree_eligible_fn eligible;
    subtree_match_fn fn;
    void *ctx;
};

/* ---- subscription lists ---- */

static size_t slot_home(const void *subscriber, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)subscriber * UINT64_C(0x9E3779B97F4A7C15);

    return (size_t)(h >> 29) & mask;
}

/* Returns the slot holding subscriber, or the free slot where it belongs. */
static struct sub_slot *slot_find(struct sub_slot *slots, size_t nslots, const void *subscriber)
{
    size_t mask = nslots - 1;

    for (size_t i = slot_home(subscriber, mask);; i = (i + 1) & mask) {
        if (slots[i].subscriber == subscriber || slots[i].subscriber == NULL)
            return &slots[i];
    }
}

/* Deletes a used slot by shifting later entries of its probe run back, so
 * lookups never need tombstones. */
static void slot_delete(struct sub_list *l, struct sub_slot *slot)
{
    size_t mask = l->nslots - 1;
    size_t hole = (size_t)(slot - l->slots);

    for (size_t j = (hole + 1) & mask; l->slots[j].subscriber != NULL; j = (j + 1) & mask) {
        size_t home = slot_home(l->slots[j].subscriber, mask);

        /* The entry moves into the hole unless its home slot lies
         * cyclically in (hole, j], where it would no longer be found. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            l->slots[hole] = l->slots[j];
            hole = j;
        }
    }
    l->slots[hole].subscriber = NULL;
}

static struct sub_entry *sublist_find(const struct sub_list *l, const void *subscriber, size_t *pos)
{
    if (l->slots != NULL) {
        struct sub_slot *slot = slot_find(l->slots, l->nslots, subscriber);

        if (slot->subscriber == NULL)
            return NULL;
        *pos = slot->pos;
        return &l->items[slot->pos];
    }
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].subscriber == subscriber) {
            *pos = i;
            return &l->items[i];
        }
    }
    return NULL;
}

/* Doubles the capacity and rebuilds the index. On failure the list is
 * unchanged apart from possibly a larger items array. */
static vigil_err sublist_grow(struct sub_list *l)
{
    size_t cap = l->cap != 0 ? l->cap * 2 : SUB_LIST_FIRST_CAP;
    struct sub_slot *slots = NULL;
    struct sub_entry *items;

    if (cap >= SUB_INDEX_MIN_CAP) {
        slots = vigil_calloc(cap * 2, sizeof(*slots));
        if (slots == NULL)
            return VIGIL_ERR_NOMEM;
    }
    items = vigil_realloc(l->items, cap * sizeof(*items));
    if (items == NULL) {
        vigil_free(slots);
        return VIGIL_ERR_NOMEM;
    }
    l->items = items;
    l->cap = cap;
    if (slots != NULL) {
        vigil_free(l->slots);
        l->slots = slots;
        l->nslots = cap * 2;
        for (size_t i = 0; i < l->count; i++) {
            struct sub_slot *slot = slot_find(slots, l->nslots, items[i].subscriber);

            slot->subscriber = items[i].subscriber;
            slot->pos = i;
        }
    }
    return VIGIL_OK;
}

static vigil_err sublist_put(struct sub_list *l, void *subscriber, uint8_t options,
                             uint32_t sub_id, bool *replaced)
{
    size_t pos;
    struct sub_entry *e = sublist_find(l, subscriber, &pos);
    vigil_err rc;

    *replaced = e != NULL;
    if (e != NULL) {
        e->options = options;
        e->sub_id = sub_id;
        return VIGIL_OK;
    }
    if (l->count == l->cap) {
        rc = sublist_grow(l);
        if (rc != VIGIL_OK)
            return rc;
    }
    l->items[l->count] = (struct sub_entry){ subscriber, sub_id, options };
    if (l->slots != NULL) {
        struct sub_slot *slot = slot_find(l->slots, l->nslots, subscriber);

        slot->subscriber = subscriber;
        slot->pos = l->count;
    }
    l->count++;
    return VIGIL_OK;
}

static void sublist_release(struct sub_list *l)
{
    vigil_free(l->items);
    vigil_free(l->slots);
    memset(l, 0, sizeof(*l));
}

/* Removes subscriber, moving the last entry into its place. */
static bool sublist_remove(struct sub_list *l, const void *subscriber)
{
    size_t pos;
    size_t last;

    if (sublist_find(l, subscriber, &pos) == NULL)
        return false;
    if (l->slots != NULL)
        slot_delete(l, slot_find(l->slots, l->nslots, subscriber));
    last = l->count - 1;
    if (pos != last) {
        l->items[pos] = l->items[last];
        if (l->slots != NULL)
            slot_find(l->slots, l->nslots, l->items[pos].subscriber)->pos = pos;
    }
    l->count--;
    if (l->count == 0)
        sublist_release(l);
    return true;
}

/* ---- share groups ---- */

static void group_free(struct share_group *g)
{
    if (g == NULL)
        return;
    sublist_release(&g->members);
    vigil_free(g->name);
    vigil_free(g);
}

static struct share_group *group_find(const struct sub_node *n, const char *name, size_t len,
                                      size_t *pos)
{
    for (size_t i = 0; i < n->ngroups; i++) {
        struct share_group *g = n->groups[i];

        if (level_compare(g->name, g->name_len, name, len) == 0) {
            *pos = i;
            return g;
        }
    }
    return NULL;
}

static vigil_err group_put(struct sub_node *n, const char *name, size_t len, void *subscriber,
                           uint8_t options, uint32_t sub_id, bool *replaced)
{
    size_t pos;
    struct share_group *g = group_find(n, name, len, &pos);
    struct share_group **groups;
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (g != NULL)
        return sublist_put(&g->members, subscriber, options, sub_id, replaced);

    g = vigil_calloc(1, sizeof(*g));
    if (g == NULL)
        goto fail;
    g->name = vigil_memdup(name, len);
    g->name_len = len;
    if (g->name == NULL)
        goto fail;
    rc = sublist_put(&g->members, subscriber, options, sub_id, replaced);
    if (rc != VIGIL_OK)
        goto fail;
    groups = vigil_realloc(n->groups, (n->ngroups + 1) * sizeof(*groups));
    if (groups == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto fail;
    }
    groups[n->ngroups++] = g;
    n->groups = groups;
    return VIGIL_OK;

fail:
    group_free(g);
    return rc;
}

static bool group_remove(struct sub_node *n, const char *name, size_t len, const void *subscriber)
{
    size_t pos;
    struct share_group *g = group_find(n, name, len, &pos);

    if (g == NULL || !sublist_remove(&g->members, subscriber))
        return false;
    if (g->members.count > 0)
        return true;
    group_free(g);
    n->ngroups--;
    memmove(&n->groups[pos], &n->groups[pos + 1], (n->ngroups - pos) * sizeof(*n->groups));
    if (n->ngroups == 0) {
        vigil_free(n->groups);
        n->groups = NULL;
    }
    return true;
}

/* ---- nodes ---- */

static struct sub_node *node_new(struct sub_node *parent, const char *level, size_t len)
{
    struct sub_node *n = vigil_calloc(1, sizeof(*n) + len);

    if (n == NULL)
        return NULL;
    n->parent = parent;
    n->level_len = len;
    if (len > 0)
        memcpy(n->level, level, len);
    return n;
}

/* Returns the literal child for level, or NULL with *pos set to where it
 * would be inserted. */
static struct sub_node *node_child(const struct sub_node *n, const char *level, size_t len,
                                   size_t *pos)
{
    size_t lo = 0;
    size_t hi = n->nchildren;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct sub_node *c = n->children[mid];
        int r = level_compare(c->level, c->level_len, level, len);

        if (r == 0) {
            *pos = mid;
            return c;
        }
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

static vigil_err node_insert_child(struct sub_node *n, struct sub_node *child, size_t pos)
{
    if (n->nchildren == n->children_cap) {
        size_t cap = n->children_cap != 0 ? n->children_cap * 2 : 2;
        struct sub_node **children = vigil_realloc(n->children, cap * sizeof(*children));

        if (children == NULL)
            return VIGIL_ERR_NOMEM;
        n->children = children;
        n->children_cap = cap;
    }
    memmove(&n->children[pos + 1], &n->children[pos], (n->nchildren - pos) * sizeof(*n->children));
    n->children[pos] = child;
    n->nchildren++;
    return VIGIL_OK;
}

static void node_detach(struct sub_node *parent, const struct sub_node *child)
{
    size_t pos;

    if (parent->plus == child) {
        parent->plus = NULL;
    } else if (parent->hash == child) {
        parent->hash = NULL;
    } else if (node_child(parent, child->level, child->level_len, &pos) == child) {
        parent->nchildren--;
        memmove(&parent->children[pos], &parent->children[pos + 1],
                (parent->nchildren - pos) * sizeof(*parent->children));
        if (parent->nchildren == 0) {
            vigil_free(parent->children);
            parent->children = NULL;
            parent->children_cap = 0;
        }
    }
}

static bool node_is_empty(const struct sub_node *n)
{
    return n->subs.count == 0 && n->ngroups == 0 && n->nchildren == 0 && n->plus == NULL &&
           n->hash == NULL;
}

/* Frees node and its empty ancestors, stopping at the root. */
static void node_prune(struct sub_node *node)
{
    while (node->parent != NULL && node_is_empty(node)) {
        struct sub_node *parent = node->parent;

        node_detach(parent, node);
        vigil_free(node->children);
        vigil_free(node);
        node = parent;
    }
}

/* Sets *child to the child of n for the level at c, creating it if create
 * is true; *child is NULL when it does not exist or cannot be created. */
static vigil_err node_step(struct sub_node *n, const struct topic_level *c, bool create,
                           struct sub_node **child)
{
    struct sub_node **wild = level_is(c, '+') ? &n->plus : level_is(c, '#') ? &n->hash : NULL;
    size_t pos;

    if (wild != NULL) {
        if (*wild == NULL && create)
            *wild = node_new(n, level_ptr(c), level_len(c));
        *child = *wild;
        return *child != NULL || !create ? VIGIL_OK : VIGIL_ERR_NOMEM;
    }
    *child = node_child(n, level_ptr(c), level_len(c), &pos);
    if (*child != NULL || !create)
        return VIGIL_OK;
    *child = node_new(n, level_ptr(c), level_len(c));
    if (*child == NULL)
        return VIGIL_ERR_NOMEM;
    if (node_insert_child(n, *child, pos) != VIGIL_OK) {
        vigil_free(*child);
        *child = NULL;
        return VIGIL_ERR_NOMEM;
    }
    return VIGIL_OK;
}

/* Follows filter from the root. Sets *last to the node for the filter, or,
 * when a node is missing (create false) or cannot be created, to the
 * deepest node reached and returns NOT_FOUND or NOMEM. */
static vigil_err node_path(struct sub_tree *tree, const char *filter, size_t len, bool create,
                           struct sub_node **last)
{
    struct topic_level c;
    struct sub_node *node = tree->root;
    struct sub_node *child;
    vigil_err rc;

    level_first(&c, filter, len);
    do {
        rc = node_step(node, &c, create, &child);
        if (rc != VIGIL_OK || child == NULL) {
            *last = node;
            return rc != VIGIL_OK ? rc : VIGIL_ERR_NOT_FOUND;
        }
        node = child;
    } while (level_next(&c));
    *last = node;
    return VIGIL_OK;
}

/* ---- public interface ---- */

struct sub_tree *subtree_new(void)
{
    struct sub_tree *tree = vigil_calloc(1, sizeof(*tree));

    if (tree == NULL)
        return NULL;
    tree->root = node_new(NULL, "", 0);
    if (tree->root == NULL) {
        vigil_free(tree);
        return NULL;
    }
    return tree;
}

/* Frees a node that has no children left. */
static void node_free_leaf(struct sub_node *n)
{
    sublist_release(&n->subs);
    for (size_t i = 0; i < n->ngroups; i++)
        group_free(n->groups[i]);
    vigil_free(n->groups);
    vigil_free(n->children);
    vigil_free(n);
}

void subtree_free(struct sub_tree *tree)
{
    struct sub_node *node;

    if (tree == NULL)
        return;
    /* Post-order teardown: detach one child at a time and descend into it,
     * free leaves and climb back through the parent pointers. */
    node = tree->root;
    while (node != NULL) {
        struct sub_node *child = NULL;

        if (node->nchildren > 0) {
            child = node->children[--node->nchildren];
        } else if (node->plus != NULL) {
            child = node->plus;
            node->plus = NULL;
        } else if (node->hash != NULL) {
            child = node->hash;
            node->hash = NULL;
        }
        if (child != NULL) {
            node = child;
            continue;
        }
        child = node;
        node = node->parent;
        node_free_leaf(child);
    }
    vigil_free(tree);
}

/* Splits a possibly shared filter and checks it. group is NULL for a plain
 * subscription. */
static vigil_err filter_parse(const char *filter, size_t len, const char **group, size_t *glen,
                              const char **inner, size_t *ilen)
{
    vigil_err rc = topic_split_shared(filter, len, group, glen, inner, ilen);

    if (rc == VIGIL_OK)
        return VIGIL_OK;
    if (rc != VIGIL_ERR_NOT_FOUND)
        return rc;
    *group = NULL;
    *glen = 0;
    *inner = filter;
    *ilen = len;
    return topic_filter_valid(filter, len) ? VIGIL_OK : VIGIL_ERR_INVALID;
}

vigil_err subtree_add(struct sub_tree *tree, const char *filter, size_t len, void *subscriber,
                      uint8_t options, uint32_t sub_id, bool *replaced)
{
    const char *group;
    const char *inner;
    size_t glen;
    size_t ilen;
    struct sub_node *node;
    bool existed = false;
    vigil_err rc;

    rc = filter_parse(filter, len, &group, &glen, &inner, &ilen);
    if (rc != VIGIL_OK || subscriber == NULL)
        return rc != VIGIL_OK ? rc : VIGIL_ERR_INVALID;

    rc = node_path(tree, inner, ilen, true, &node);
    if (rc == VIGIL_OK && group != NULL)
        rc = group_put(node, group, glen, subscriber, options, sub_id, &existed);
    else if (rc == VIGIL_OK)
        rc = sublist_put(&node->subs, subscriber, options, sub_id, &existed);
    if (rc != VIGIL_OK) {
        node_prune(node);
        return rc;
    }
    if (!existed)
        tree->count++;
    if (replaced != NULL)
        *replaced = existed;
    return VIGIL_OK;
}

bool subtree_remove(struct sub_tree *tree, const char *filter, size_t len, void *subscriber)
{
    const char *group;
    const char *inner;
    size_t glen;
    size_t ilen;
    struct sub_node *node;
    bool removed;

    if (filter_parse(filter, len, &group, &glen, &inner, &ilen) != VIGIL_OK)
        return false;
    if (node_path(tree, inner, ilen, false, &node) != VIGIL_OK)
        return false;
    if (group != NULL)
        removed = group_remove(node, group, glen, subscriber);
    else
        removed = sublist_remove(&node->subs, subscriber);
    if (!removed)
        return false;
    tree->count--;
    node_prune(node);
    return true;
}

size_t subtree_count(const struct sub_tree *tree)
{
    return tree->count;
}

/* ---- matching ---- */

/* Reports the next eligible member of g, starting at its cursor, and moves
 * the cursor past it. */
static void group_deliver(struct share_group *g, const struct match_walk *w)
{
    size_t n = g->members.count;

    for (size_t k = 0; k < n; k++) {
        size_t i = (g->next + k) % n;
        struct sub_entry *e = &g->members.items[i];

        if (w->eligible == NULL || w->eligible(w->ctx, e->subscriber)) {
            g->next = (i + 1) % n;
            w->fn(w->ctx, e->subscriber, e->options, e->sub_id, true);
            return;
        }
    }
}

static void node_deliver(struct sub_node *n, const struct match_walk *w)
{
    for (size_t i = 0; i < n->subs.count; i++) {
        struct sub_entry *e = &n->subs.items[i];

        w->fn(w->ctx, e->subscriber, e->options, e->sub_id, false);
    }
    for (size_t i = 0; i < n->ngroups; i++)
        group_deliver(n->groups[i], w);
}

/* Reports the filters ending at node: its '#' child (which also matches the
 * parent level) and, once the name is consumed, the node itself. */
static void match_visit(struct sub_node *node, bool at_end, const struct match_walk *w)
{
    if (node->hash != NULL && !(node == w->root && w->dollar))
        node_deliver(node->hash, w);
    if (at_end)
        node_deliver(node, w);
}

/* Returns the child to try after prev (NULL for the first): the literal
 * child for the current level, then the '+' child. */
static struct sub_node *match_next_child(struct sub_node *node, const struct sub_node *prev,
                                         const struct topic_level *c, const struct match_walk *w)
{
    struct sub_node *plus = node == w->root && w->dollar ? NULL : node->plus;
    struct sub_node *literal;
    size_t pos;

    if (prev == NULL) {
        literal = node_child(node, level_ptr(c), level_len(c), &pos);
        return literal != NULL ? literal : plus;
    }
    return prev != node->plus ? plus : NULL;
}

/* Depth-first walk over the nodes matching the name's levels. The cursor c
 * is on the level that the current node's children consume; at_end means
 * the current node consumed the last level. fn must not change the tree. */
void subtree_match(struct sub_tree *tree, const char *name, size_t len,
                   subtree_eligible_fn eligible, subtree_match_fn fn, void *ctx)
{
    struct match_walk w = { tree->root, len > 0 && name[0] == '$', eligible, fn, ctx };
    struct sub_node *node = tree->root;
    struct sub_node *prev = NULL;
    struct topic_level c;
    bool at_end = false;

    level_first(&c, name, len);
    match_visit(node, at_end, &w);
    for (;;) {
        struct sub_node *child = at_end ? NULL : match_next_child(node, prev, &c, &w);

        if (child != NULL) {
            node = child;
            prev = NULL;
            at_end = !level_next(&c);
            match_visit(node, at_end, &w);
            continue;
        }
        if (node == tree->root)
            break;
        prev = node;
        node = node->parent;
        if (at_end)
            at_end = false;
        else
            level_prev(&c);
    }
}
