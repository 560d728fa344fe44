/* Tamper-evident audit log: hash-chained JSON-lines segments with Ed25519
 * signed checkpoints, and the verifier behind `vigil audit verify`. The
 * format is specified in docs/audit.md. */
#ifndef VIGIL_AUDIT_AUDIT_H
#define VIGIL_AUDIT_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "secmon/event.h"

/* Maximum length of a record line the writer produces, newline excluded. */
#define AUDIT_MAX_RECORD 65536
/* Maximum line length the verifier reads; longer lines are reported as invalid. */
#define AUDIT_MAX_LINE (1024 * 1024)
/* A SHA-256 digest as lowercase hex, with its NUL. */
#define AUDIT_HASH_HEX 65

struct audit_opts {
    uint64_t segment_max_bytes;    /* rotate once a segment reaches this size; 0: 64 MiB */
    uint32_t checkpoint_every;     /* records between checkpoints; 0: 1000 */
    uint32_t checkpoint_interval_ms; /* time between checkpoints while records are
                                      * unsigned; 0: 60000 */
    bool no_timer;                 /* no checkpoint thread: only checkpoint_every,
                                    * audit_checkpoint and audit_close sign */
};

struct audit_log;

/* Opens the audit log in <data_dir>/audit, creating the directory (0700),
 * the Ed25519 key pair signing.key (0600) and signing.pub, and the first
 * segment when they are missing. opts may be NULL for the defaults.
 * Continues the chain after the last complete record. A torn last line is
 * kept as it is, logged, and the log continues in a new segment. Only one
 * process may hold the log open (flock on <dir>/lock): a second open fails
 * with VIGIL_ERR_EXISTS. Fails with VIGIL_ERR_NOT_FOUND when signing.key is
 * missing but segments exist, because a new key would break verification.
 * On success the caller owns *out and releases it with audit_close(). */
vigil_err audit_open(const char *data_dir, const struct audit_opts *opts, struct audit_log **out);
/* Same as audit_open, with the audit directory itself (<data_dir>/audit). */
vigil_err audit_open_dir(const char *audit_dir, const struct audit_opts *opts,
                         struct audit_log **out);

/* Appends one record of type (lowercase letters, digits and '_', 1 to 32
 * bytes, not "checkpoint") with the members of fields (a JSON object or
 * NULL; borrowed, the caller keeps its reference). fields must not contain
 * seq, ts, type, prev or hash. The line is written with one write() and
 * fdatasync()ed before this returns, so a crash leaves at most a torn last
 * line. Thread-safe; blocks on disk I/O, so never call it on an I/O loop.
 * Writes a checkpoint after it when checkpoint_every records are unsigned.
 * Errors: VIGIL_ERR_INVALID (type or fields), VIGIL_ERR_LIMIT (record longer
 * than AUDIT_MAX_RECORD), VIGIL_ERR_IO (the log stays usable; the failed
 * record has no seq), VIGIL_ERR_CLOSED. A failed write is logged here, once
 * for a run of them, with the count when writing works again, so callers
 * need not log VIGIL_ERR_IO. A failed write leaves no new segment unless
 * part of the line reached the file (a torn line, as after a crash). */
vigil_err audit_append(struct audit_log *log, const char *type, json_t *fields);
/* Appends like audit_append() without waiting for the disk. The record is
 * in the file when this returns. It is durable after the next audit_sync(),
 * synchronous append, checkpoint, segment rotation or audit_close(), so
 * many records share one fdatasync(). */
vigil_err audit_append_deferred(struct audit_log *log, const char *type, json_t *fields);
/* Makes every record appended so far durable with one fdatasync(); does
 * nothing when none is pending. VIGIL_ERR_IO when the sync failed. The
 * first failure of a run is logged here, and the count when a sync works
 * again, so callers need not log VIGIL_ERR_IO. */
vigil_err audit_sync(struct audit_log *log);

/* Returns the audit record type for a security event, or NULL when events
 * of its type do not belong in the audit log: auth_success, auth_failure,
 * acl_deny, admin_command (VIGIL_EV_ADMIN), cert (VIGIL_EV_CERT) and
 * rate_limit (VIGIL_EV_RATE_LIMIT). */
const char *audit_event_type(const struct vigil_event *ev);
/* Appends ev as a record of type audit_event_type(ev), with the members of
 * vigil_event_to_json() except "type", and "ts" renamed "event_ts", as
 * audit_append_deferred() does: the caller calls audit_sync() after a batch.
 * VIGIL_ERR_INVALID for events that do not belong in the audit log. */
vigil_err audit_append_event(struct audit_log *log, const struct vigil_event *ev);

/* Writes a signed checkpoint covering every record so far, unless the last
 * record is a checkpoint already. Thread-safe. */
vigil_err audit_checkpoint(struct audit_log *log);

/* Sequence number of the last record written (0 for an empty log). */
uint64_t audit_last_seq(struct audit_log *log);

/* Writes a final checkpoint ("final": true) when any record is unsigned or
 * the last checkpoint is not final, stops the checkpoint thread, closes the
 * files and frees log. NULL is ignored. Returns the error of the final
 * checkpoint; log is freed in every case. */
vigil_err audit_close(struct audit_log *log);

/* Verification. */

#define AUDIT_MAX_WARNINGS 8

struct audit_verify_opts {
    const char *pubkey_path; /* PEM public key to pin; NULL: <dir>/signing.pub */
    bool strict;             /* warnings make the log invalid */
};

struct audit_report {
    bool valid;
    uint64_t records;          /* complete records read, checkpoints included */
    uint64_t checkpoints;
    uint32_t segments;
    uint64_t last_seq;
    uint64_t last_checkpoint_seq;  /* upto_seq of the last valid checkpoint, 0 if none */
    uint64_t unsigned_records;     /* records after the last checkpoint */
    char key_id[17];               /* of the key used to verify, "" if none */
    bool key_pinned;               /* the key came from pubkey_path */
    /* The first error; empty when valid. file is "" for errors that do not
     * belong to a line, line and seq are 0 when unknown. */
    char error[512];
    char error_file[64];
    uint64_t error_line;
    uint64_t error_seq;
    char warnings[AUDIT_MAX_WARNINGS][256];
    size_t warning_count;          /* may exceed AUDIT_MAX_WARNINGS; the rest are dropped */
};

/* Verifies every segment in audit_dir and fills *report. Returns VIGIL_OK
 * when the check ran (report->valid tells the result), or VIGIL_ERR_NOMEM.
 * Reads only; never changes a file. */
vigil_err audit_verify_dir(const char *audit_dir, const struct audit_verify_opts *opts,
                           struct audit_report *report);

/* Verifies one segment held in memory, named name, as the whole log, with
 * the PEM public key pubkey_pem (NULL: every checkpoint is reported as
 * unverifiable). For the fuzzer and tests. */
vigil_err audit_verify_buffer(const char *name, const uint8_t *data, size_t len,
                              const char *pubkey_pem, bool strict, struct audit_report *report);

/* Writes the report as text ("audit log valid: ..." or "audit log invalid:
 * FILE:LINE (seq N): ...", then one "warning: ..." line each). */
void audit_report_print(const struct audit_report *report, FILE *out);
/* Returns the report as a new JSON object (the caller owns the reference). */
json_t *audit_report_json(const struct audit_report *report);

#endif
