/* Records of administrative commands run outside the hub: appended
 * directly when no process holds the audit log, otherwise queued as files
 * in <data_dir>/audit/spool/ that the hub appends (docs/audit.md). */
#ifndef VIGIL_AUDIT_SPOOL_H
#define VIGIL_AUDIT_SPOOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "core/error.h"

/* Maximum size of one spool file in bytes; larger files are rejected. */
#define AUDIT_SPOOL_MAX_FILE 16384
/* Spool files one periodic drain appends at most, so a full spool cannot
 * hold the hub's event thread for long; the rest wait for the next drain. */
#define AUDIT_SPOOL_DRAIN_MAX 64
/* Maximum length of the user name stored with a record. */
#define AUDIT_USER_MAX 64

/* Returns true for the record types an administrative command may spool:
 * device_added, device_removed, cert_issued, cert_rotated, cert_revoked,
 * acl_rule_added, acl_rule_removed, alert_acknowledged, alert_resolved. */
bool audit_admin_type_valid(const char *type);

/* Returns true when fields is a JSON object that may become the fields of
 * an administrative record. It must have no member named seq, ts, type,
 * prev, hash, user, requested_at or spool_file. No member name may
 * contain "password", "psk", "secret" or "private", or be "key". */
bool audit_admin_fields_valid(json_t *fields);

/* Writes the name of the effective user into out ("uid N" when the user
 * has no passwd entry). */
void audit_admin_user(char out[AUDIT_USER_MAX + 1]);

/* Writes one spool file <data_dir>/audit/spool/<unix-us>-<pid>-<n>.json
 * holding {"type", "fields", "requested_at", "user"}, creating the spool
 * directory (0700) when missing. The file is written under a temporary
 * name, fsynced, linked to its final name and the directory fsynced, so
 * the hub never sees a partial file. fields is borrowed. requested_us is
 * Unix microseconds. Errors: VIGIL_ERR_INVALID (type, fields or user),
 * VIGIL_ERR_LIMIT (larger than AUDIT_SPOOL_MAX_FILE), VIGIL_ERR_IO,
 * VIGIL_ERR_NOMEM. */
vigil_err audit_spool_write(const char *data_dir, const char *type, json_t *fields,
                            const char *user, int64_t requested_us);

/* Appends spool files of <data_dir>/audit/spool to log in the order of
 * their names (time, then process id, then counter), at most max files (0:
 * all), and stores the number appended in *n (n may be NULL). Each record
 * has the file's fields plus "user", "requested_at" and "spool_file". A
 * file is deleted only after its record is durable, so a crash in between
 * appends it twice. A file that cannot be read or is invalid is moved to
 * spool/rejected/, logged, and recorded as a "spool_rejected" record. A
 * missing spool directory is an empty spool. Stops at the first append
 * that fails, keeping that file, and returns the error. Blocks on disk
 * I/O: never call it on an I/O loop. */
vigil_err audit_spool_drain(struct audit_log *log, const char *data_dir, size_t max, size_t *n);

/* Destination of a record stored by audit_admin_record. */
enum audit_admin_path {
    AUDIT_ADMIN_APPENDED, /* appended to the log directly */
    AUDIT_ADMIN_SPOOLED,  /* another process holds the log: queued in the spool */
};

/* Records one administrative change with the effective user and the
 * current time. When no process holds the log, opens it with opts (NULL:
 * defaults; no_timer is forced), appends any spooled records first so the
 * log keeps their order, appends this record and closes the log with a
 * final checkpoint. When another process holds it, writes a spool file.
 * fields is borrowed and must pass audit_admin_fields_valid. *path may be
 * NULL. */
vigil_err audit_admin_record(const char *data_dir, const struct audit_opts *opts,
                             const char *type, json_t *fields, enum audit_admin_path *path);

/* Same as audit_open, but while another process holds the log (a command
 * appending directly holds it for a few milliseconds) retries for up to
 * wait_ms before failing with VIGIL_ERR_EXISTS. */
vigil_err audit_open_wait(const char *data_dir, const struct audit_opts *opts, uint32_t wait_ms,
                          struct audit_log **out);

#endif
