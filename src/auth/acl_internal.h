/* Helpers shared by acl.c (rules, PSKs, version) and snapshot.c. Not part
 * of the module's public contract. */
#ifndef VIGIL_AUTH_ACL_INTERNAL_H
#define VIGIL_AUTH_ACL_INTERNAL_H

#include <stdbool.h>

#include "auth/acl.h"

/* TLS-PSK key lengths accepted by device_db_set_psk. */
#define ACL_PSK_MIN 16
#define ACL_PSK_MAX 64

/* Creates the acl table and adds the psk column to devices when either is
 * missing. Cheap when both exist, so every entry point calls it. */
vigil_err acl_schema_ensure(struct device_db *db);

/* Calls fn for every well-formed rule in id order, with the database lock
 * held. Rows that fail the checks of acl_db_add are logged and skipped.
 * The caller must have called acl_schema_ensure. */
vigil_err acl_rules_each(struct device_db *db, void (*fn)(void *ctx, const struct acl_rule *),
                         void *ctx);

/* Column text of enum acl_subject and enum acl_action, and back. The
 * parsers return 0 for unknown text. */
const char *acl_subject_text(char kind);
const char *acl_action_text(char action);
char acl_subject_parse(const char *text);
char acl_action_parse(const char *text);

/* Role names: 1 to 31 characters of [A-Za-z0-9._-], as in the configuration. */
bool acl_role_valid(const char *name);
/* A topic filter of 1 to 255 bytes, not a shared subscription, with "%d"
 * only as a whole level. */
bool acl_pattern_valid(const char *pattern);

#endif
