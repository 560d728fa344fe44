/* Retained messages: a trie by topic level from topic name to an opaque
 * value, so a subscription visits only the branches its filter matches.
 * All walks are iterative, so topics of any depth need no extra stack. */
#include <string.h>

#include "broker/topic.h"
#include "broker/topic_level.h"
#include "core/alloc.h"

struct retain_node {
    struct retain_node *parent;     /* NULL for the root */
    struct retain_node **children;  /* owned; sorted by level_compare */
    size_t nchildren;
    size_t children_cap;
    void *value;                    /* not owned; NULL when nothing is retained here */
    char *name;                     /* owned full topic, NUL-terminated; set iff value is */
    size_t level_len;
    char level[];                   /* not NUL-terminated */
};

struct retain_tree {
    struct retain_node *root;
    size_t count;
};

static struct retain_node *node_new(struct retain_node *parent, const char *level, size_t len)
{
    struct retain_node *n = vigil_calloc(1, sizeof(*n) + len);

    if (n == NULL)
        return NULL;
    n->parent = parent;
    n->level_len = len;
    if (len > 0)
        memcpy(n->level, level, len);
    return n;
}

/* Returns the child for level, or NULL with *pos set to where it would be
 * inserted. */
static struct retain_node *node_child(const struct retain_node *n, const char *level, size_t len,
                                      size_t *pos)
{
    size_t lo = 0;
    size_t hi = n->nchildren;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct retain_node *c = n->children[mid];
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

static vigil_err node_insert_child(struct retain_node *n, struct retain_node *child, size_t pos)
{
    if (n->nchildren == n->children_cap) {
        size_t cap = n->children_cap != 0 ? n->children_cap * 2 : 2;
        struct retain_node **children = vigil_realloc(n->children, cap * sizeof(*children));

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

/* Frees node and its empty ancestors, stopping at the root. */
static void node_prune(struct retain_node *node)
{
    while (node->parent != NULL && node->value == NULL && node->nchildren == 0) {
        struct retain_node *parent = node->parent;
        size_t pos;

        if (node_child(parent, node->level, node->level_len, &pos) == node) {
            parent->nchildren--;
            memmove(&parent->children[pos], &parent->children[pos + 1],
                    (parent->nchildren - pos) * sizeof(*parent->children));
        }
        if (parent->nchildren == 0) {
            vigil_free(parent->children);
            parent->children = NULL;
            parent->children_cap = 0;
        }
        vigil_free(node->children);
        vigil_free(node);
        node = parent;
    }
}

/* Follows name from the root, creating missing nodes when create is true.
 * Returns the node, or NULL with *last set to the deepest node reached. */
static struct retain_node *node_path(struct retain_tree *tree, const char *name, size_t len,
                                     bool create, struct retain_node **last)
{
    struct topic_level c;
    struct retain_node *node = tree->root;

    level_first(&c, name, len);
    do {
        size_t pos;
        struct retain_node *child = node_child(node, level_ptr(&c), level_len(&c), &pos);

        if (child == NULL && create) {
            child = node_new(node, level_ptr(&c), level_len(&c));
            if (child != NULL && node_insert_child(node, child, pos) != VIGIL_OK) {
                vigil_free(child);
                child = NULL;
            }
        }
        if (child == NULL) {
            *last = node;
            return NULL;
        }
        node = child;
    } while (level_next(&c));
    *last = node;
    return node;
}

struct retain_tree *retain_new(void)
{
    struct retain_tree *tree = vigil_calloc(1, sizeof(*tree));

    if (tree == NULL)
        return NULL;
    tree->root = node_new(NULL, "", 0);
    if (tree->root == NULL) {
        vigil_free(tree);
        return NULL;
    }
    return tree;
}

void retain_free(struct retain_tree *tree)
{
    struct retain_node *node;

    if (tree == NULL)
        return;
    /* Post-order teardown: detach the last child and descend into it, free
     * leaves and climb back through the parent pointers. */
    node = tree->root;
    while (node != NULL) {
        struct retain_node *leaf;

        if (node->nchildren > 0) {
            node = node->children[--node->nchildren];
            continue;
        }
        leaf = node;
        node = node->parent;
        vigil_free(leaf->children);
        vigil_free(leaf->name);
        vigil_free(leaf);
    }
    vigil_free(tree);
}

static void *retain_remove(struct retain_tree *tree, const char *name, size_t len)
{
    struct retain_node *last;
    struct retain_node *node = node_path(tree, name, len, false, &last);
    void *old;

    if (node == NULL || node->value == NULL)
        return NULL;
    old = node->value;
    node->value = NULL;
    vigil_free(node->name);
    node->name = NULL;
    tree->count--;
    node_prune(node);
    return old;
}

void *retain_set(struct retain_tree *tree, const char *name, size_t len, void *value)
{
    struct retain_node *last;
    struct retain_node *node;
    void *old;

    if (value == NULL)
        return retain_remove(tree, name, len);
    node = node_path(tree, name, len, true, &last);
    if (node == NULL) {
        node_prune(last);
        return value;
    }
    if (node->value != NULL) {
        old = node->value;
        node->value = value;
        return old;
    }
    node->name = vigil_malloc(len + 1);
    if (node->name == NULL) {
        node_prune(node);
        return value;
    }
    memcpy(node->name, name, len);
    node->name[len] = '\0';
    node->value = value;
    tree->count++;
    return NULL;
}

void *retain_get(struct retain_tree *tree, const char *name, size_t len)
{
    struct retain_node *last;
    struct retain_node *node = node_path(tree, name, len, false, &last);

    return node != NULL ? node->value : NULL;
}

size_t retain_count(const struct retain_tree *tree)
{
    return tree->count;
}

/* ---- walks ---- */

static void node_report(const struct retain_node *n, retain_match_fn fn, void *ctx)
{
    if (n->value != NULL)
        fn(ctx, n->name, n->value);
}

/* Returns the first child of parent at position pos or later, skipping
 * levels starting with '$' when skip_dollar is true. */
static struct retain_node *child_from(const struct retain_node *parent, size_t pos,
                                      bool skip_dollar)
{
    for (; pos < parent->nchildren; pos++) {
        struct retain_node *c = parent->children[pos];

        if (!skip_dollar || c->level_len == 0 || c->level[0] != '$')
            return c;
    }
    return NULL;
}

static struct retain_node *next_sibling(const struct retain_node *child, bool skip_dollar)
{
    size_t pos;

    node_child(child->parent, child->level, child->level_len, &pos);
    return child_from(child->parent, pos + 1, skip_dollar);
}

/* Reports top and every node below it in pre-order. skip_dollar leaves out
 * the children of top whose level starts with '$'. */
static void walk_subtree(const struct retain_node *top, bool skip_dollar, retain_match_fn fn,
                         void *ctx)
{
    const struct retain_node *cur = top;
    struct retain_node *child = child_from(top, 0, skip_dollar);

    node_report(top, fn, ctx);
    for (;;) {
        if (child != NULL) {
            node_report(child, fn, ctx);
            cur = child;
            child = child_from(cur, 0, false);
            continue;
        }
        if (cur == top)
            break;
        child = next_sibling(cur, skip_dollar && cur->parent == top);
        cur = cur->parent;
    }
}

/* Returns the child to try after prev (NULL for the first) for the filter
 * level at c: every child for '+', the equal one for a literal. A wildcard
 * at the first level skips levels starting with '$'. */
static struct retain_node *match_next_child(const struct retain_tree *tree,
                                            const struct retain_node *node,
                                            const struct retain_node *prev,
                                            const struct topic_level *c)
{
    size_t pos;

    if (level_is(c, '+')) {
        bool skip_dollar = node == tree->root;

        return prev == NULL ? child_from(node, 0, skip_dollar) : next_sibling(prev, skip_dollar);
    }
    if (prev != NULL || level_is(c, '#'))
        return NULL;
    return node_child(node, level_ptr(c), level_len(c), &pos);
}

/* Depth-first walk over the nodes matching the filter's levels. The cursor
 * c is on the level that the current node's children consume; at_end means
 * the current node consumed the last level. A '#' level reports the whole
 * subtree below the current node, that node included. */
void retain_match(struct retain_tree *tree, const char *filter, size_t len, retain_match_fn fn,
                  void *ctx)
{
    const struct retain_node *node = tree->root;
    const struct retain_node *prev = NULL;
    struct topic_level c;
    bool at_end = false;

    level_first(&c, filter, len);
    if (level_is(&c, '#'))
        walk_subtree(node, true, fn, ctx);
    for (;;) {
        struct retain_node *child = at_end ? NULL : match_next_child(tree, node, prev, &c);

        if (child != NULL) {
            node = child;
            prev = NULL;
            at_end = !level_next(&c);
            if (at_end)
                node_report(node, fn, ctx);
            else if (level_is(&c, '#'))
                walk_subtree(node, false, fn, ctx);
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

void retain_foreach(struct retain_tree *tree, retain_match_fn fn, void *ctx)
{
    walk_subtree(tree->root, false, fn, ctx);
}
