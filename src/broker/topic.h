/* MQTT topic names and filters: validation, matching, shared subscriptions,
 * and the two trees the router uses (subscriptions and retained messages).
 * Topic strings are byte ranges, not NUL-terminated. */
#ifndef VIGIL_BROKER_TOPIC_H
#define VIGIL_BROKER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* A topic name for PUBLISH: at least one byte, no '+' or '#'. UTF-8 is
 * checked by the codec, not here. */
bool topic_name_valid(const char *name, size_t len);
/* A filter: '#' only as the whole last level, '+' only as a whole level. */
bool topic_filter_valid(const char *filter, size_t len);
/* Matches name against filter. A name starting with '$' is never matched by
 * a filter whose first level is '+' or '#'. */
bool topic_match(const char *filter, size_t flen, const char *name, size_t nlen);
/* True when every topic name matched by filter is also matched by pattern,
 * so access granted on pattern covers a subscription to filter. Both are
 * valid filters without "$share/"; the '$' rule applies. */
bool topic_filter_covers(const char *pattern, size_t plen, const char *filter, size_t flen);
/* Number of levels in a topic (separators + 1). */
size_t topic_levels(const char *topic, size_t len);

/* Splits "$share/{group}/{filter}". Returns VIGIL_OK and sets the out
 * ranges when filter is a valid shared subscription, VIGIL_ERR_NOT_FOUND when
 * it does not start with "$share/", VIGIL_ERR_INVALID when it starts so but
 * is malformed (empty group, group with '+' or '#', no filter). */
vigil_err topic_split_shared(const char *filter, size_t len, const char **group, size_t *glen,
                             const char **inner, size_t *ilen);

/* Subscription tree. Subscribers are opaque pointers owned by the caller; one
 * subscriber has at most one subscription per (share group, filter). */
struct sub_tree;

struct sub_tree *subtree_new(void);
/* Frees the tree, not the subscribers. */
void subtree_free(struct sub_tree *tree);
/* Adds or replaces the subscription of subscriber to filter (which may be a
 * "$share/group/..." filter). *replaced tells whether it existed before.
 * The filter must be valid. */
vigil_err subtree_add(struct sub_tree *tree, const char *filter, size_t len, void *subscriber,
                      uint8_t options, uint32_t sub_id, bool *replaced);
/* Removes it; returns false when the subscriber had no such subscription. */
bool subtree_remove(struct sub_tree *tree, const char *filter, size_t len, void *subscriber);
/* Number of subscriptions in the tree. */
size_t subtree_count(const struct sub_tree *tree);

/* Called once per matching non-shared subscription, and once per matching
 * share group with the member chosen round robin among those for which
 * eligible() returns true (all members when eligible is NULL; the group is
 * skipped when none is eligible). A subscriber matched by several filters
 * is reported once per filter; the caller merges. */
typedef void (*subtree_match_fn)(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id,
                                 bool shared);
typedef bool (*subtree_eligible_fn)(void *ctx, void *subscriber);
void subtree_match(struct sub_tree *tree, const char *name, size_t len,
                   subtree_eligible_fn eligible, subtree_match_fn fn, void *ctx);

/* Retained messages by topic name. Values are opaque pointers owned by the
 * caller. */
struct retain_tree;

struct retain_tree *retain_new(void);
void retain_free(struct retain_tree *tree);
/* Stores value under name and returns the previous value (NULL if none),
 * which the caller releases. value NULL removes the entry. On allocation
 * failure returns value itself and stores nothing. */
void *retain_set(struct retain_tree *tree, const char *name, size_t len, void *value);
void *retain_get(struct retain_tree *tree, const char *name, size_t len);
size_t retain_count(const struct retain_tree *tree);
/* Calls fn for each retained value whose topic matches filter (same '$'
 * rule as topic_match). name is the full topic, NUL-terminated. */
typedef void (*retain_match_fn)(void *ctx, const char *name, void *value);
void retain_match(struct retain_tree *tree, const char *filter, size_t len, retain_match_fn fn,
                  void *ctx);
/* Calls fn for every entry; fn must not modify the tree. */
void retain_foreach(struct retain_tree *tree, retain_match_fn fn, void *ctx);

#endif
