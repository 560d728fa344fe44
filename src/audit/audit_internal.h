/* Pieces shared by the audit writer and verifier: canonical hashing,
 * checkpoint signatures, keys and segment names. */
#ifndef VIGIL_AUDIT_INTERNAL_H
#define VIGIL_AUDIT_INTERNAL_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "audit/audit.h"

/* prev of the first record. */
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* Serialisation of the canonical form and of the lines the writer emits. */
#define AUDIT_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
/* An Ed25519 signature in base64 is 88 characters. */
#define AUDIT_SIG_B64 89
#define AUDIT_KEY_ID 17
#define AUDIT_KEY_FILE "signing.key"
#define AUDIT_PUB_FILE "signing.pub"
#define AUDIT_SEGMENT_NAME_MAX 32

/* Bytes of the stack buffer callers of audit_dump() use; an event's
 * record is well under this. */
#define AUDIT_DUMP_STACK 4096

void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX]);
/* Serialises value with AUDIT_JSON_FLAGS into stack (cap bytes) when it
 * fits, else into a new allocation, and sets *len. Returns the text, which
 * the caller frees when it is not stack, or NULL when value does not
 * serialise (a string that is not UTF-8) or memory runs out. */
char *audit_dump(json_t *value, char *stack, size_t cap, size_t *len);
/* Hashes the canonical form of record: the object without its "hash"
 * member, serialised with AUDIT_JSON_FLAGS. VIGIL_ERR_INVALID when it does
 * not serialise (a string that is not UTF-8), VIGIL_ERR_NOMEM. */
vigil_err audit_canonical_hash(json_t *record, char out[AUDIT_HASH_HEX]);
bool audit_hash_hex_valid(const char *s);
bool audit_type_valid(const char *type);

/* key_id: the first 16 hex digits of SHA-256 over the raw 32-byte public key. */
vigil_err audit_key_id(EVP_PKEY *key, char out[AUDIT_KEY_ID]);
/* Signs "vigil-audit-checkpoint\n<upto_seq>\n<upto_hash>" and writes the
 * base64 signature into sig. */
vigil_err audit_sign(EVP_PKEY *key, uint64_t upto_seq, const char *upto_hash,
                     char sig[AUDIT_SIG_B64]);
bool audit_signature_valid(EVP_PKEY *pub, uint64_t upto_seq, const char *upto_hash,
                           const char *sig_b64);
/* Loads <dir>/signing.key, or creates it (0600) when create is true and it
 * is missing; writes <dir>/signing.pub when missing. The caller owns *out
 * (EVP_PKEY_free). VIGIL_ERR_NOT_FOUND when missing and create is false. */
vigil_err audit_key_load(const char *dir, bool create, EVP_PKEY **out);
/* Reads an Ed25519 public key from a PEM file or buffer; NULL when it is
 * missing, unreadable or not Ed25519. The caller owns the result. */
EVP_PKEY *audit_pubkey_read_file(const char *path);
EVP_PKEY *audit_pubkey_read_pem(const char *pem);

/* "audit-000001.jsonl" for index 1. */
void audit_segment_name(uint32_t index, char out[AUDIT_SEGMENT_NAME_MAX]);
/* Parses a segment file name; false for any other name. */
bool audit_segment_parse(const char *name, uint32_t *index);
/* Lists the segment indexes in dir in ascending order. The caller owns
 * *out (vigil_free). VIGIL_ERR_IO when dir cannot be read. */
vigil_err audit_segments_list(const char *dir, uint32_t **out, size_t *count);

enum audit_line {
    AUDIT_LINE_OK,   /* a line ended by a newline */
    AUDIT_LINE_TORN, /* bytes at the end of the file without a newline */
    AUDIT_LINE_LONG, /* longer than cap - 1 bytes; skipped up to its newline */
    AUDIT_LINE_EOF,
};

/* Reads one line into buf (cap bytes, NUL-terminated, newline removed) and
 * stores its length in *len. A NUL byte inside the line is kept, so use len. */
enum audit_line audit_line_read(FILE *f, char *buf, size_t cap, size_t *len);

#endif
