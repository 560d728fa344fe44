/* Audit records of the administrative commands (vigil device, acl,
 * alerts), appended directly or spooled for a running hub. */
#ifndef VIGIL_CLI_ADMIN_RECORD_H
#define VIGIL_CLI_ADMIN_RECORD_H

#include <jansson.h>

#include "config/config.h"

/* Records one change that command ("vigil device add") has made in
 * data_dir, taking the audit settings from cfg (NULL: defaults). fields is
 * stolen and may be NULL after an allocation failure, which is reported.
 * Returns 0, or 1 after printing to stderr that the change was made but
 * not recorded. */
int cli_admin_record(const char *command, const char *data_dir, const struct vigil_config *cfg,
                     const char *type, json_t *fields);

#endif
