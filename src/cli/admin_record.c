/* Records the administrative commands in the audit log, so changes made
 * beside a running hub are as traceable as the hub's own. */
#include <stdio.h>

#include "audit/audit_spool.h"
#include "cli/admin_record.h"
#include "core/log.h"

int cli_admin_record(const char *command, const char *data_dir, const struct vigil_config *cfg,
                     const char *type, json_t *fields)
{
    struct audit_opts opts = {0};
    int threshold = vigil_log_threshold;
    vigil_err rc = VIGIL_ERR_NOMEM;

    if (cfg != NULL)
        opts.segment_max_bytes = cfg->audit.segment_max_bytes;
    /* The log's open and close lines are for the hub's log, not for the
     * output of a command; warnings and errors still show. */
    if (vigil_log_threshold > VIGIL_LOG_WARN)
        vigil_log_set_level(VIGIL_LOG_WARN);
    if (fields != NULL)
        rc = audit_admin_record(data_dir, &opts, type, fields, NULL);
    vigil_log_set_level((enum vigil_log_level)threshold);
    json_decref(fields);
    if (rc == VIGIL_OK)
        return 0;
    fprintf(stderr,
            "%s: the change was made, but recording it (%s) in the audit log in %s/audit "
            "failed: %s%s\n",
            command, type, data_dir, vigil_strerror(rc),
            rc == VIGIL_ERR_IO ? "; check that this user can write there" : "");
    return 1;
}
