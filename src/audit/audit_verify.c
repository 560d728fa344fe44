/* Audit log verifier: checks every record's hash, the chain of seq and
 * prev across segments, and the Ed25519 checkpoint signatures, and names
 * the first bad record. Reads only. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit_internal.h"
#include "core/alloc.h"

struct verifier {
    struct audit_report *r;
    EVP_PKEY *pub;              /* borrowed; NULL when no key could be read */
    const char *pub_source;     /* where the key was looked for, for messages */
    bool strict;
    bool failed;                /* r->error contains the first error */
    uint64_t expect_seq;
    char prev[AUDIT_HASH_HEX];
    bool last_is_final;
    const char *file;           /* current segment name */
    uint64_t line;              /* current line number, from 1 */
};

/* The fields every record has, read from the parsed line. */
struct record_view {
    json_t *obj;
    uint64_t seq;
    const char *type;
    const char *prev;
    const char *hash;
};

static void verifier_init(struct verifier *v, struct audit_report *r, EVP_PKEY *pub,
                          const char *pub_source, bool strict)
{
    memset(r, 0, sizeof *r);
    memset(v, 0, sizeof *v);
    v->r = r;
    v->pub = pub;
    v->pub_source = pub_source;
    v->strict = strict;
    v->expect_seq = 1;
    memcpy(v->prev, AUDIT_ZERO_HASH, AUDIT_HASH_HEX);
    if (pub != NULL && audit_key_id(pub, r->key_id) != VIGIL_OK)
        r->key_id[0] = '\0';
}

/* Records the first error at the current line; seq 0 leaves it out. */
__attribute__((format(printf, 3, 4))) static void
fail_at(struct verifier *v, uint64_t seq, const char *fmt, ...)
{
    char what[384];
    va_list ap;

    if (v->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    v->failed = true;
    snprintf(v->r->error_file, sizeof v->r->error_file, "%s", v->file ? v->file : "");
    v->r->error_line = v->line;
    v->r->error_seq = seq;
    if (v->file == NULL)
        snprintf(v->r->error, sizeof v->r->error, "%s", what);
    else if (seq > 0)
        snprintf(v->r->error, sizeof v->r->error, "%s:%" PRIu64 " (seq %" PRIu64 "): %s",
                 v->file, v->line, seq, what);
    else
        snprintf(v->r->error, sizeof v->r->error, "%s:%" PRIu64 ": %s", v->file, v->line, what);
}

__attribute__((format(printf, 2, 3))) static void warn(struct verifier *v, const char *fmt, ...)
{
    struct audit_report *r = v->r;
    va_list ap;

    if (r->warning_count < AUDIT_MAX_WARNINGS) {
        va_start(ap, fmt);
        vsnprintf(r->warnings[r->warning_count], sizeof r->warnings[0], fmt, ap);
        va_end(ap);
    }
    r->warning_count++;
}

static bool ts_valid(const char *ts)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";

    if (strlen(ts) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? (ts[i] < '0' || ts[i] > '9') : ts[i] != shape[i])
            return false;
    }
    return true;
}

/* Checks that the members every record carries are present and well formed. */
static bool record_read(struct verifier *v, json_t *obj, struct record_view *rv)
{
    json_t *seq = json_object_get(obj, "seq");
    const char *ts = json_string_value(json_object_get(obj, "ts"));
    json_int_t n = json_integer_value(seq);

    rv->obj = obj;
    rv->seq = n > 0 ? (uint64_t)n : 0;
    rv->type = json_string_value(json_object_get(obj, "type"));
    rv->prev = json_string_value(json_object_get(obj, "prev"));
    rv->hash = json_string_value(json_object_get(obj, "hash"));
    if (!json_is_integer(seq) || n < 1)
        fail_at(v, 0, "missing or invalid \"seq\" (expected an integer of at least 1)");
    else if (ts == NULL || !ts_valid(ts))
        fail_at(v, rv->seq, "missing or invalid \"ts\" (expected RFC 3339 UTC with microseconds)");
    else if (rv->type == NULL || !audit_type_valid(rv->type))
        fail_at(v, rv->seq, "missing or invalid \"type\"");
    else if (rv->prev == NULL || !audit_hash_hex_valid(rv->prev))
        fail_at(v, rv->seq, "missing or invalid \"prev\" (expected 64 lowercase hex digits)");
    else if (rv->hash == NULL || !audit_hash_hex_valid(rv->hash))
        fail_at(v, rv->seq, "missing or invalid \"hash\" (expected 64 lowercase hex digits)");
    return !v->failed;
}

/* Checks the record's own hash, then its place in the chain. */
static bool record_chain(struct verifier *v, const struct record_view *rv)
{
    char hash[AUDIT_HASH_HEX];

    if (audit_canonical_hash(rv->obj, hash) != VIGIL_OK)
        fail_at(v, rv->seq, "record cannot be serialised in canonical form");
    else if (strcmp(hash, rv->hash) != 0)
        fail_at(v, rv->seq, "hash mismatch: record changed");
    else if (rv->seq > v->expect_seq)
        fail_at(v, rv->seq,
                "seq gap: expected %" PRIu64 ", found %" PRIu64 " (records removed or reordered)",
                v->expect_seq, rv->seq);
    else if (rv->seq < v->expect_seq)
        fail_at(v, rv->seq,
                "seq out of order: expected %" PRIu64 ", found %" PRIu64
                " (records duplicated or reordered)",
                v->expect_seq, rv->seq);
    else if (strcmp(rv->prev, v->prev) != 0)
        fail_at(v, rv->seq, "prev mismatch at seq %" PRIu64 ": record inserted or reordered",
                rv->seq);
    return !v->failed;
}

/* Checks a checkpoint: it covers the record before it, names the
 * verifying key, and its signature holds. */
static bool checkpoint_check(struct verifier *v, const struct record_view *rv)
{
    json_t *upto = json_object_get(rv->obj, "upto_seq");
    const char *upto_hash = json_string_value(json_object_get(rv->obj, "upto_hash"));
    const char *sig = json_string_value(json_object_get(rv->obj, "sig"));
    const char *key_id = json_string_value(json_object_get(rv->obj, "key_id"));
    uint64_t seq = rv->seq;

    if (!json_is_integer(upto) || upto_hash == NULL || sig == NULL || key_id == NULL)
        fail_at(v, seq, "checkpoint without upto_seq, upto_hash, sig or key_id");
    else if (json_integer_value(upto) != (json_int_t)(seq - 1) ||
             strcmp(upto_hash, rv->prev) != 0)
        fail_at(v, seq, "checkpoint does not match the chain: it must cover seq %" PRIu64
                " and its hash", seq - 1);
    else if (v->pub == NULL)
        fail_at(v, seq, "cannot verify checkpoint: no Ed25519 public key in %s; pass --pubkey FILE",
                v->pub_source);
    else if (strcmp(key_id, v->r->key_id) != 0)
        fail_at(v, seq, "checkpoint signed by key %.16s, but the verifying key is %s "
                "(signing key replaced?)", key_id, v->r->key_id);
    else if (!audit_signature_valid(v->pub, seq - 1, upto_hash, sig))
        fail_at(v, seq, "signature invalid at checkpoint seq %" PRIu64, seq);
    if (v->failed)
        return false;
    v->r->checkpoints++;
    v->r->last_checkpoint_seq = seq - 1;
    v->r->unsigned_records = 0;
    v->last_is_final = json_is_true(json_object_get(rv->obj, "final"));
    return true;
}

/* Verifies one complete line; returns false after the first error. */
static bool verify_line(struct verifier *v, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    struct record_view rv;
    bool ok = false;

    if (obj == NULL || !json_is_object(obj)) {
        fail_at(v, 0, "invalid JSON: %s", obj == NULL ? jerr.text : "not an object");
        goto out;
    }
    if (!record_read(v, obj, &rv) || !record_chain(v, &rv))
        goto out;
    if (strcmp(rv.type, "checkpoint") == 0) {
        if (!checkpoint_check(v, &rv))
            goto out;
    } else {
        v->r->unsigned_records++;
        v->last_is_final = false;
    }
    v->r->records++;
    v->r->last_seq = rv.seq;
    v->expect_seq = rv.seq + 1;
    memcpy(v->prev, rv.hash, AUDIT_HASH_HEX);
    ok = true;
out:
    json_decref(obj);
    return ok;
}

/* Handles one line as the line reader returned it. */
static bool verify_piece(struct verifier *v, enum audit_line kind, const char *line, size_t len)
{
    v->line++;
    if (kind == AUDIT_LINE_LONG) {
        fail_at(v, 0, "line longer than %d bytes", AUDIT_MAX_LINE - 1);
        return false;
    }
    if (kind == AUDIT_LINE_TORN) {
        warn(v, "torn last line at %s:%" PRIu64 " (crash during write?); the chain continues "
             "from seq %" PRIu64, v->file, v->line, v->expect_seq - 1);
        return true;
    }
    return verify_line(v, line, len);
}

static void verifier_finish(struct verifier *v)
{
    struct audit_report *r = v->r;

    if (!v->failed && r->records == 0)
        warn(v, "the log has no records");
    else if (!v->failed && r->unsigned_records > 0 && r->checkpoints == 0)
        warn(v, "%" PRIu64 " records are not signed yet: the log has no checkpoint",
             r->unsigned_records);
    else if (!v->failed && r->unsigned_records > 0)
        warn(v, "%" PRIu64 " records after the last checkpoint are not signed yet "
             "(the hub is running, crashed, or records were removed at the end)",
             r->unsigned_records);
    else if (!v->failed && !v->last_is_final)
        warn(v, "the log does not end with the final checkpoint of a clean close (the hub is "
             "running, crashed, or records were removed at the end)");
    r->valid = !v->failed;
    if (r->valid && v->strict && r->warning_count > 0) {
        r->valid = false;
        snprintf(r->error, sizeof r->error, "--strict: %s", r->warnings[0]);
    }
}

static vigil_err verify_segment(struct verifier *v, const char *dir, uint32_t index, char *buf)
{
    char name[AUDIT_SEGMENT_NAME_MAX];
    char path[4096];
    enum audit_line kind;
    size_t len;
    FILE *f;

    audit_segment_name(index, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    v->file = name;
    v->line = 0;
    f = fopen(path, "r");
    if (f == NULL) {
        fail_at(v, 0, "cannot read %s: %s", path, strerror(errno));
        v->file = NULL;
        return VIGIL_OK;
    }
    while ((kind = audit_line_read(f, buf, AUDIT_MAX_LINE, &len)) != AUDIT_LINE_EOF) {
        if (!verify_piece(v, kind, buf, len))
            break;
    }
    if (!v->failed && ferror(f))
        fail_at(v, 0, "read error: %s", strerror(errno));
    fclose(f);
    v->file = NULL; /* name goes out of scope */
    return VIGIL_OK;
}

/* Checks that segments are numbered 1, 2, ... without a hole. */
static bool segments_contiguous(struct verifier *v, const uint32_t *segs, size_t count)
{
    char name[AUDIT_SEGMENT_NAME_MAX];

    for (size_t i = 0; i < count; i++) {
        if (segs[i] != i + 1) {
            audit_segment_name((uint32_t)(i + 1), name);
            fail_at(v, 0, "%s is missing (segments removed)", name);
            return false;
        }
    }
    return true;
}

static EVP_PKEY *verify_key(const char *dir, const struct audit_verify_opts *opts,
                            char *source, size_t cap)
{
    if (opts != NULL && opts->pubkey_path != NULL) {
        snprintf(source, cap, "%s", opts->pubkey_path);
        return audit_pubkey_read_file(opts->pubkey_path);
    }
    snprintf(source, cap, "%s/" AUDIT_PUB_FILE, dir);
    return audit_pubkey_read_file(source);
}

vigil_err audit_verify_dir(const char *audit_dir, const struct audit_verify_opts *opts,
                           struct audit_report *report)
{
    struct verifier v;
    char source[4096];
    bool pinned = opts != NULL && opts->pubkey_path != NULL;
    EVP_PKEY *pub = verify_key(audit_dir, opts, source, sizeof source);
    uint32_t *segs = NULL;
    size_t count = 0;
    char *buf = NULL;
    vigil_err rc;

    verifier_init(&v, report, pub, source, opts != NULL && opts->strict);
    report->key_pinned = pinned && pub != NULL;
    rc = audit_segments_list(audit_dir, &segs, &count);
    if (rc == VIGIL_ERR_IO) {
        fail_at(&v, 0, "cannot read %s: %s", audit_dir, strerror(errno));
        rc = VIGIL_OK;
        goto out;
    }
    if (rc != VIGIL_OK)
        goto out;
    if (pinned && pub == NULL) {
        fail_at(&v, 0, "cannot read an Ed25519 public key in PEM from %s", source);
        goto out;
    }
    if (count == 0) {
        fail_at(&v, 0, "no audit segments (audit-NNNNNN.jsonl) in %s", audit_dir);
        goto out;
    }
    buf = vigil_malloc(AUDIT_MAX_LINE);
    if (buf == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto out;
    }
    report->segments = (uint32_t)count;
    if (segments_contiguous(&v, segs, count)) {
        for (size_t i = 0; i < count && !v.failed; i++)
            verify_segment(&v, audit_dir, segs[i], buf);
    }
out:
    verifier_finish(&v);
    vigil_free(buf);
    vigil_free(segs);
    EVP_PKEY_free(pub);
    return rc;
}

vigil_err audit_verify_buffer(const char *name, const uint8_t *data, size_t len,
                              const char *pubkey_pem, bool strict, struct audit_report *report)
{
    struct verifier v;
    EVP_PKEY *pub = pubkey_pem != NULL ? audit_pubkey_read_pem(pubkey_pem) : NULL;
    size_t pos = 0;

    verifier_init(&v, report, pub, "the given PEM", strict);
    report->segments = 1;
    report->key_pinned = pub != NULL;
    v.file = name;
    while (pos < len && !v.failed) {
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - data) : len;
        enum audit_line kind = nl == NULL ? AUDIT_LINE_TORN : AUDIT_LINE_OK;

        if (end - pos > AUDIT_MAX_LINE - 1)
            kind = AUDIT_LINE_LONG;
        verify_piece(&v, kind, (const char *)data + pos, end - pos);
        pos = end + 1;
    }
    verifier_finish(&v);
    EVP_PKEY_free(pub);
    return VIGIL_OK;
}
