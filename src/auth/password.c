/* Password hashing with PBKDF2-HMAC-SHA256 and base64url encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth/device.h"
#include "auth/password.h"

#define PASSWORD_PREFIX "pbkdf2-sha256$"

/* Hash strings with more iterations than this are rejected, so a tampered
 * database row cannot make one verification run for minutes. */
#define PASSWORD_ITERATIONS_MAX 10000000u

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t password_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t need = (len * 4 + 2) / 3;
    size_t o = 0;

    if (cap < need + 1)
        return 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = b64url[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;

    return p != NULL ? (int)(p - b64url) : -1;
}

/* Decodes unpadded base64url; returns the byte count or -1 for invalid text
 * or when the result would exceed cap. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* The unused low bits of the last character must be zero, so each
     * byte string has exactly one encoding. */
    if ((acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (int)o;
}

static vigil_err derive(const uint8_t *pw, size_t len, const uint8_t *salt, size_t salt_len,
                        uint32_t iterations, uint8_t *key, size_t key_len)
{
    static const char empty[1] = "";
    const char *pass = len > 0 ? (const char *)pw : empty;

    if (len > INT32_MAX)
        return VIGIL_ERR_INVALID;
    if (PKCS5_PBKDF2_HMAC(pass, (int)len, salt, (int)salt_len, (int)iterations, EVP_sha256(),
                          (int)key_len, key) != 1)
        return VIGIL_ERR_NOMEM;
    return VIGIL_OK;
}

vigil_err password_hash(const uint8_t *pw, size_t len, uint32_t iterations, char *out, size_t cap)
{
    uint8_t salt[PASSWORD_SALT_LEN];
    uint8_t key[PASSWORD_KEY_LEN];
    char salt_text[32];
    char key_text[48];
    vigil_err rc;
    int n;

    if (iterations == 0 || iterations > PASSWORD_ITERATIONS_MAX)
        return VIGIL_ERR_INVALID;
    if (RAND_bytes(salt, sizeof salt) != 1)
        return VIGIL_ERR_IO;
    rc = derive(pw, len, salt, sizeof salt, iterations, key, sizeof key);
    if (rc != VIGIL_OK)
        goto out;
    password_b64_encode(salt, sizeof salt, salt_text, sizeof salt_text);
    password_b64_encode(key, sizeof key, key_text, sizeof key_text);
    n = snprintf(out, cap, PASSWORD_PREFIX "%u$%s$%s", iterations, salt_text, key_text);
    if (n < 0 || (size_t)n >= cap)
        rc = VIGIL_ERR_LIMIT;

out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* Splits "pbkdf2-sha256$<iterations>$<salt>$<hash>" into its parts. */
static vigil_err parse_encoded(const char *encoded, uint32_t *iterations, uint8_t *salt,
                               int *salt_len, uint8_t *key)
{
    const char *p = encoded + strlen(PASSWORD_PREFIX);
    const char *salt_end;
    char *end;
    unsigned long iter;

    if (strncmp(encoded, PASSWORD_PREFIX, strlen(PASSWORD_PREFIX)) != 0)
        return VIGIL_ERR_INVALID;
    if (*p < '1' || *p > '9')
        return VIGIL_ERR_INVALID;
    iter = strtoul(p, &end, 10);
    if (*end != '$' || iter > PASSWORD_ITERATIONS_MAX || end - p > 8)
        return VIGIL_ERR_INVALID;
    p = end + 1;
    salt_end = strchr(p, '$');
    if (salt_end == NULL)
        return VIGIL_ERR_INVALID;
    *salt_len = b64_decode(p, (size_t)(salt_end - p), salt, PASSWORD_SALT_MAX);
    if (*salt_len < PASSWORD_SALT_MIN)
        return VIGIL_ERR_INVALID;
    p = salt_end + 1;
    if (b64_decode(p, strlen(p), key, PASSWORD_KEY_LEN) != PASSWORD_KEY_LEN)
        return VIGIL_ERR_INVALID;
    *iterations = (uint32_t)iter;
    return VIGIL_OK;
}

vigil_err password_verify(const uint8_t *pw, size_t len, const char *encoded)
{
    uint8_t salt[PASSWORD_SALT_MAX];
    uint8_t expected[PASSWORD_KEY_LEN];
    uint8_t actual[PASSWORD_KEY_LEN];
    uint32_t iterations;
    int salt_len;
    vigil_err rc;

    rc = parse_encoded(encoded, &iterations, salt, &salt_len, expected);
    if (rc != VIGIL_OK)
        return rc;
    rc = derive(pw, len, salt, (size_t)salt_len, iterations, actual, sizeof actual);
    if (rc == VIGIL_OK && CRYPTO_memcmp(expected, actual, sizeof actual) != 0)
        rc = VIGIL_ERR_AUTH;
    OPENSSL_cleanse(actual, sizeof actual);
    return rc;
}
