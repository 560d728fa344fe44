/* Access rules managed with `vigil acl`, stored in devices.db, and the
 * snapshot of the inventory that the I/O loop reads without touching
 * SQLite. Rules add to the patterns of the roles in the configuration; a
 * rule's pattern may use "%d" for the device id, as role patterns do. */
#ifndef VIGIL_AUTH_ACL_H
#define VIGIL_AUTH_ACL_H

#include <stddef.h>
#include <stdint.h>

#include "auth/device.h"
#include "core/error.h"

enum acl_subject { ACL_SUBJECT_DEVICE = 'd', ACL_SUBJECT_ROLE = 'r' };
enum acl_action { ACL_PUBLISH = 'p', ACL_SUBSCRIBE = 's' };

struct acl_rule {
    int64_t id;                      /* assigned by acl_db_add */
    char subject_kind;               /* enum acl_subject */
    char subject[DEVICE_ID_MAX + 1]; /* device id or role name */
    char action;                     /* enum acl_action */
    char pattern[256];               /* a valid topic filter, "%d" allowed as a whole level */
    int64_t created_at;
};

/* Adds a rule (VIGIL_ERR_EXISTS for an identical one, VIGIL_ERR_INVALID for
 * a bad pattern or subject) and sets rule->id. */
vigil_err acl_db_add(struct device_db *db, struct acl_rule *rule);
/* Removes the rule with that id; VIGIL_ERR_NOT_FOUND when there is none. */
vigil_err acl_db_remove(struct device_db *db, int64_t id);
vigil_err acl_db_list(struct device_db *db, void (*fn)(void *ctx, const struct acl_rule *),
                      void *ctx);

/* Sets or clears (key NULL) a device's TLS-PSK key (16 to 64 bytes). */
vigil_err device_db_set_psk(struct device_db *db, const char *id, const uint8_t *key, size_t len);

/* Changes whenever any connection commits a change to devices.db
 * (SQLite's PRAGMA data_version seen from this handle), so the broker can
 * reload its snapshot only when needed. */
uint64_t device_db_version(struct device_db *db);

/* An immutable copy of devices, PSKs and rules, built on a worker thread
 * and read on the I/O loop. */
struct device_snapshot;

vigil_err device_snapshot_load(struct device_db *db, struct device_snapshot **out);
void device_snapshot_free(struct device_snapshot *snap);
const struct device_info *device_snapshot_find(const struct device_snapshot *snap, const char *id);
/* Copies the device's PSK into key; returns its length, 0 when none. */
size_t device_snapshot_psk(const struct device_snapshot *snap, const char *id, uint8_t *key,
                           size_t cap);
/* Calls fn with each pattern granted for action to the device directly or
 * to role through stored rules. */
void device_snapshot_patterns(const struct device_snapshot *snap, const char *device,
                              const char *role, char action,
                              void (*fn)(void *ctx, const char *pattern), void *ctx);
size_t device_snapshot_count(const struct device_snapshot *snap);

#endif
