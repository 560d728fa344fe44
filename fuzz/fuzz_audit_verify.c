/* libFuzzer harness for the audit log verifier: the input is one segment
 * file, checked as the whole log against a fixed Ed25519 public key. The
 * seeds in fuzz/corpus/audit_verify/ were signed with its private key, so
 * mutations reach the signature and chain checks. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char pubkey_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                                 "MCowBQYDK2VwAyEA6GVlqz0JbvKWu8/tUmMZOgjD4nzb2fQtZtRoD6l6LPI=\n"
                                 "-----END PUBLIC KEY-----\n";

static size_t count_newlines(const uint8_t *data, size_t size)
{
    size_t n = 0;

    for (size_t i = 0; i < size; i++)
        n += data[i] == '\n';
    return n;
}

/* Invariants of every report, whatever the input. */
static void check_report(const struct audit_report *r, size_t newlines)
{
    json_t *obj;

    if (r->valid != (r->error[0] == '\0'))
        abort();
    if (r->records > newlines || r->checkpoints > r->records)
        abort();
    if (r->valid && r->records > 0 && r->last_seq != r->records)
        abort();
    if (r->last_checkpoint_seq > r->last_seq || r->unsigned_records > r->records)
        abort();
    obj = audit_report_json(r);
    if (obj == NULL)
        abort();
    json_decref(obj);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct audit_report lax;
    static struct audit_report strict;
    size_t newlines = count_newlines(data, size);

    if (audit_verify_buffer("audit-000001.jsonl", data, size, pubkey_pem, false, &lax) !=
        VIGIL_OK)
        abort();
    check_report(&lax, newlines);
    if (audit_verify_buffer("audit-000001.jsonl", data, size, pubkey_pem, true, &strict) !=
        VIGIL_OK)
        abort();
    check_report(&strict, newlines);
    /* Strict mode only adds failures, and never a different first error. */
    if (strict.valid && !lax.valid)
        abort();
    if (!lax.valid && strcmp(lax.error, strict.error) != 0)
        abort();
    return 0;
}
