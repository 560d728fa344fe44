/* Internal helpers shared by the password hashing and the device database. */
#ifndef VIGIL_AUTH_PASSWORD_H
#define VIGIL_AUTH_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWORD_SALT_LEN 16 /* bytes of salt in new hashes */
#define PASSWORD_SALT_MIN 8  /* shortest salt accepted in a stored hash */
#define PASSWORD_SALT_MAX 64 /* longest salt accepted in a stored hash */
#define PASSWORD_KEY_LEN 32  /* PBKDF2 output bytes, the SHA-256 size */

/* Encodes len bytes as base64url without padding into out (NUL-terminated);
 * returns the text length, or 0 when cap is too small. */
size_t password_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
