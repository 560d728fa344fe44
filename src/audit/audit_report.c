/* Text and JSON forms of an audit verification report. */
#include <inttypes.h>
#include <stdio.h>

#include "audit/audit.h"

void audit_report_print(const struct audit_report *r, FILE *out)
{
    size_t stored = r->warning_count < AUDIT_MAX_WARNINGS ? r->warning_count : AUDIT_MAX_WARNINGS;

    if (r->valid)
        fprintf(out, "audit log valid: %" PRIu64 " records (%" PRIu64 " checkpoints) in %" PRIu32
                " segments, last seq %" PRIu64 ", signed up to seq %" PRIu64 "\n",
                r->records, r->checkpoints, r->segments, r->last_seq, r->last_checkpoint_seq);
    else
        fprintf(out, "audit log invalid: %s\n", r->error);
    for (size_t i = 0; i < stored; i++)
        fprintf(out, "warning: %s\n", r->warnings[i]);
    if (r->warning_count > stored)
        fprintf(out, "warning: %zu more warnings not stored\n", r->warning_count - stored);
    if (r->valid && r->key_id[0] != '\0' && !r->key_pinned)
        fprintf(out, "note: checkpoints were verified with the key in the log directory (key_id "
                "%s); pass --pubkey FILE with a copy kept elsewhere to detect a rewrite of the "
                "whole log\n", r->key_id);
}

json_t *audit_report_json(const struct audit_report *r)
{
    size_t stored = r->warning_count < AUDIT_MAX_WARNINGS ? r->warning_count : AUDIT_MAX_WARNINGS;
    json_t *warnings = json_array();
    json_t *error = json_null();

    for (size_t i = 0; i < stored; i++)
        json_array_append_new(warnings, json_string(r->warnings[i]));
    if (!r->valid)
        error = json_pack("{sssssIsI}", "message", r->error, "file", r->error_file, "line",
                          (json_int_t)r->error_line, "seq", (json_int_t)r->error_seq);
    return json_pack("{sbsIsIsIsIsIsIsssbsoso}", "valid", r->valid, "records",
                     (json_int_t)r->records, "checkpoints", (json_int_t)r->checkpoints,
                     "segments", (json_int_t)r->segments, "last_seq", (json_int_t)r->last_seq,
                     "last_checkpoint_seq", (json_int_t)r->last_checkpoint_seq,
                     "unsigned_records", (json_int_t)r->unsigned_records, "key_id", r->key_id,
                     "key_pinned", r->key_pinned, "error", error, "warnings", warnings);
}
