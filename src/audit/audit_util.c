/* Canonical hashing, Ed25519 checkpoint signatures, signing keys and
 * segment names for the audit log. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "core/alloc.h"
#include "core/log.h"

#define SIG_PREFIX "vigil-audit-checkpoint\n"
#define ED25519_SIG_LEN 64
#define ED25519_PUB_LEN 32

static void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

void audit_sha256_hex(const void *data, size_t len, char out[AUDIT_HASH_HEX])
{
    unsigned char md[32];
    unsigned int md_len = 0;

    EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    hex_encode(md, sizeof md, out);
}

char *audit_dump(json_t *value, char *stack, size_t cap, size_t *len)
{
    size_t n = json_dumpb(value, stack, cap, AUDIT_JSON_FLAGS);
    char *heap;

    if (n == 0)
        return NULL;
    *len = n;
    if (n <= cap)
        return stack;
    heap = vigil_malloc(n);
    if (heap == NULL)
        return NULL;
    if (json_dumpb(value, heap, n, AUDIT_JSON_FLAGS) != n) {
        vigil_free(heap);
        return NULL;
    }
    return heap;
}

vigil_err audit_canonical_hash(json_t *record, char out[AUDIT_HASH_HEX])
{
    char stack[AUDIT_DUMP_STACK];
    json_t *copy = NULL;
    json_t *canonical = record;
    char *text;
    size_t len = 0;

    /* A record being built has no hash yet and is hashed as it is. */
    if (json_object_get(record, "hash") != NULL) {
        copy = json_copy(record);
        if (copy == NULL)
            return VIGIL_ERR_NOMEM;
        json_object_del(copy, "hash");
        canonical = copy;
    }
    text = audit_dump(canonical, stack, sizeof stack, &len);
    json_decref(copy);
    if (text == NULL)
        return VIGIL_ERR_INVALID;
    audit_sha256_hex(text, len, out);
    if (text != stack)
        vigil_free(text);
    return VIGIL_OK;
}

bool audit_hash_hex_valid(const char *s)
{
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    }
    return n == AUDIT_HASH_HEX - 1;
}

bool audit_type_valid(const char *type)
{
    size_t n = 0;

    for (; type[n] != '\0'; n++) {
        char c = type[n];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return n >= 1 && n <= 32;
}

vigil_err audit_key_id(EVP_PKEY *key, char out[AUDIT_KEY_ID])
{
    unsigned char raw[ED25519_PUB_LEN];
    size_t len = sizeof raw;
    char hex[AUDIT_HASH_HEX];

    if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof raw)
        return VIGIL_ERR_INVALID;
    audit_sha256_hex(raw, len, hex);
    memcpy(out, hex, AUDIT_KEY_ID - 1);
    out[AUDIT_KEY_ID - 1] = '\0';
    return VIGIL_OK;
}

/* The signed message; returns its length or -1 when it does not fit. */
static int checkpoint_message(uint64_t upto_seq, const char *upto_hash, char *out, size_t cap)
{
    int n = snprintf(out, cap, SIG_PREFIX "%" PRIu64 "\n%s", upto_seq, upto_hash);

    return n < 0 || (size_t)n >= cap ? -1 : n;
}

vigil_err audit_sign(EVP_PKEY *key, uint64_t upto_seq, const char *upto_hash,
                     char sig[AUDIT_SIG_B64])
{
    char msg[160];
    unsigned char raw[ED25519_SIG_LEN];
    size_t raw_len = sizeof raw;
    int msg_len = checkpoint_message(upto_seq, upto_hash, msg, sizeof msg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    vigil_err rc = VIGIL_ERR_INVALID;

    if (ctx == NULL)
        return VIGIL_ERR_NOMEM;
    if (msg_len < 0 || EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) != 1 ||
        EVP_DigestSign(ctx, raw, &raw_len, (unsigned char *)msg, (size_t)msg_len) != 1 ||
        raw_len != sizeof raw)
        goto out;
    EVP_EncodeBlock((unsigned char *)sig, raw, (int)raw_len);
    rc = VIGIL_OK;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Decodes exactly one base64 Ed25519 signature; rejects any other length,
 * padding or alphabet, so one signature has one accepted spelling. */
static bool signature_decode(const char *b64, unsigned char raw[ED25519_SIG_LEN])
{
    /* EVP_DecodeBlock counts the two padding characters as zero bytes. */
    unsigned char buf[(AUDIT_SIG_B64 - 1) / 4 * 3];
    char again[AUDIT_SIG_B64];

    if (strlen(b64) != AUDIT_SIG_B64 - 1)
        return false;
    if (EVP_DecodeBlock(buf, (const unsigned char *)b64, AUDIT_SIG_B64 - 1) !=
        (int)sizeof buf)
        return false;
    memcpy(raw, buf, ED25519_SIG_LEN);
    EVP_EncodeBlock((unsigned char *)again, raw, ED25519_SIG_LEN);
    return strcmp(again, b64) == 0;
}

bool audit_signature_valid(EVP_PKEY *pub, uint64_t upto_seq, const char *upto_hash,
                           const char *sig_b64)
{
    char msg[160];
    unsigned char raw[ED25519_SIG_LEN];
    int msg_len = checkpoint_message(upto_seq, upto_hash, msg, sizeof msg);
    EVP_MD_CTX *ctx;
    bool ok = false;

    if (pub == NULL || msg_len < 0 || !signature_decode(sig_b64, raw))
        return false;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return false;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
        EVP_DigestVerify(ctx, raw, sizeof raw, (unsigned char *)msg, (size_t)msg_len) == 1)
        ok = true;
    EVP_MD_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *require_ed25519(EVP_PKEY *key)
{
    if (key != NULL && EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

EVP_PKEY *audit_pubkey_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *key;

    if (f == NULL)
        return NULL;
    key = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    return require_ed25519(key);
}

EVP_PKEY *audit_pubkey_read_pem(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key;

    if (bio == NULL)
        return NULL;
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    return require_ed25519(key);
}

/* Writes the key in PEM to a temporary file, syncs it and renames it to
 * path. The caller holds the log's lock and found no file at path. A write
 * that fails (a full disk) leaves no file at path, because an empty or
 * partial key file would stop every later open of the log, or its
 * verification. */
static vigil_err key_write(const char *path, EVP_PKEY *key, bool private_key)
{
    char tmp[4096];
    FILE *f;
    bool ok;
    int fd, err = EIO;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* A file left by a process that stopped during this write. */
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              private_key ? 0600 : 0644);
    if (fd < 0) {
        log_error("audit: cannot create %s: %s", tmp, strerror(errno));
        return VIGIL_ERR_IO;
    }
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(tmp);
        return VIGIL_ERR_IO;
    }
    ok = (private_key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
                      : PEM_write_PUBKEY(f, key)) == 1;
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) {
        err = errno;
        ok = false;
    }
    if (fclose(f) != 0 && ok) {
        err = errno;
        ok = false;
    }
    if (ok && rename(tmp, path) != 0) {
        err = errno;
        ok = false;
    }
    if (!ok) {
        unlink(tmp);
        log_error("audit: cannot write %s: %s", path, strerror(err));
        return VIGIL_ERR_IO;
    }
    return VIGIL_OK;
}

/* True when path is a file of 0 bytes, as a key write that failed on a
 * full disk left it before keys were written through a temporary file. */
static bool file_empty(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

static vigil_err key_read_private(const char *path, EVP_PKEY **out)
{
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO;
    *out = require_ed25519(PEM_read_PrivateKey(f, NULL, NULL, NULL));
    fclose(f);
    if (*out == NULL) {
        log_error("audit: %s is not an Ed25519 private key in PEM", path);
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

vigil_err audit_key_load(const char *dir, bool create, EVP_PKEY **out)
{
    char key_path[4096];
    char pub_path[4096];
    EVP_PKEY *key = NULL;
    vigil_err rc;

    snprintf(key_path, sizeof key_path, "%s/" AUDIT_KEY_FILE, dir);
    snprintf(pub_path, sizeof pub_path, "%s/" AUDIT_PUB_FILE, dir);
    /* An empty key signed nothing, so without segments it is replaced. */
    if (create && file_empty(key_path)) {
        log_warn("audit: %s is empty (a write that failed on a full disk?); a new key replaces it",
                 key_path);
        unlink(key_path);
    }
    rc = key_read_private(key_path, &key);
    if (rc == VIGIL_ERR_NOT_FOUND && create) {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (key == NULL)
            return VIGIL_ERR_NOMEM;
        rc = key_write(key_path, key, true);
        if (rc == VIGIL_OK)
            log_info("audit: created signing key %s", key_path);
    }
    if (rc != VIGIL_OK)
        goto fail;
    /* The public key follows from the private one, so an empty file is
     * written again. */
    if (file_empty(pub_path)) {
        log_warn("audit: %s is empty (a write that failed on a full disk?); it is written again",
                 pub_path);
        unlink(pub_path);
    }
    if (access(pub_path, F_OK) != 0) {
        rc = key_write(pub_path, key, false);
        if (rc != VIGIL_OK)
            goto fail;
    }
    *out = key;
    return VIGIL_OK;
fail:
    EVP_PKEY_free(key);
    return rc;
}

void audit_segment_name(uint32_t index, char out[AUDIT_SEGMENT_NAME_MAX])
{
    snprintf(out, AUDIT_SEGMENT_NAME_MAX, "audit-%06" PRIu32 ".jsonl", index);
}

bool audit_segment_parse(const char *name, uint32_t *index)
{
    size_t len = strlen(name);
    uint64_t value = 0;
    size_t digits;

    if (len < strlen("audit-000001.jsonl") || strncmp(name, "audit-", 6) != 0 ||
        strcmp(name + len - 6, ".jsonl") != 0)
        return false;
    digits = len - 12;
    if (digits > 9)
        return false;
    for (size_t i = 6; i < len - 6; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        value = value * 10 + (uint64_t)(name[i] - '0');
    }
    /* One spelling per index: six digits, or more without a leading zero. */
    if (value == 0 || (digits > 6 && name[6] == '0'))
        return false;
    *index = (uint32_t)value;
    return true;
}

static int index_compare(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

vigil_err audit_segments_list(const char *dir, uint32_t **out, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    uint32_t *list = NULL;
    size_t n = 0;
    size_t cap = 0;
    uint32_t index;

    if (d == NULL)
        return VIGIL_ERR_IO;
    while ((de = readdir(d)) != NULL) {
        if (!audit_segment_parse(de->d_name, &index))
            continue;
        if (n == cap) {
            uint32_t *grown = vigil_realloc(list, (cap ? cap * 2 : 16) * sizeof *list);

            if (grown == NULL) {
                vigil_free(list);
                closedir(d);
                return VIGIL_ERR_NOMEM;
            }
            list = grown;
            cap = cap ? cap * 2 : 16;
        }
        list[n++] = index;
    }
    closedir(d);
    if (n > 0)
        qsort(list, n, sizeof *list, index_compare);
    *out = list;
    *count = n;
    return VIGIL_OK;
}

enum audit_line audit_line_read(FILE *f, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int c;

    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (n + 1 < cap) {
            buf[n++] = (char)c;
            continue;
        }
        while ((c = getc_unlocked(f)) != EOF && c != '\n')
            ;
        *len = n;
        return AUDIT_LINE_LONG;
    }
    buf[n] = '\0';
    *len = n;
    if (c == '\n')
        return AUDIT_LINE_OK;
    return n == 0 ? AUDIT_LINE_EOF : AUDIT_LINE_TORN;
}
