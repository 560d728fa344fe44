/* Device inventory and credentials, in <data-dir>/devices.db (SQLite).
 * Passwords are stored only as salted PBKDF2-HMAC-SHA256 hashes and compared
 * in constant time. Every function is thread-safe: the broker calls
 * device_db_verify() from libuv's thread pool because the hash is slow on
 * purpose, and the CLI may add devices while the broker runs. */
#ifndef VIGIL_AUTH_DEVICE_H
#define VIGIL_AUTH_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define DEVICE_ID_MAX 64
#define DEVICE_ROLE_MAX 32

struct device_db;

struct device_info {
    char id[DEVICE_ID_MAX + 1];
    char role[DEVICE_ROLE_MAX + 1];   /* "device" unless set otherwise */
    char type[32];                    /* "bedside-monitor", ... or "" */
    char unit[64];                    /* care unit, "" if unset */
    int64_t created_at;               /* Unix seconds */
};

vigil_err device_db_open(const char *dir, struct device_db **out);
void device_db_close(struct device_db *db);

/* Device ids: 1 to 64 characters of [A-Za-z0-9._-], so an id can never
 * widen a topic pattern it is substituted into. */
int device_id_valid(const char *id);

/* Creates a device with a new random password written to password_out
 * (NUL-terminated, at least 33 bytes of capacity). VIGIL_ERR_EXISTS if the
 * id is taken, VIGIL_ERR_INVALID for a bad id. */
vigil_err device_db_add(struct device_db *db, const struct device_info *info, char *password_out,
                        size_t password_cap);
vigil_err device_db_remove(struct device_db *db, const char *id);
/* Checks a password. VIGIL_OK fills info; VIGIL_ERR_NOT_FOUND for an unknown
 * device and VIGIL_ERR_AUTH for a wrong password (both cost one hash, so
 * timing does not reveal which ids exist). */
vigil_err device_db_verify(struct device_db *db, const char *id, const uint8_t *password,
                           size_t password_len, struct device_info *info);
vigil_err device_db_get(struct device_db *db, const char *id, struct device_info *info);
/* Calls fn for every device in id order. fn runs with the database lock
 * held, so other threads wait; it may call device_db functions itself. */
vigil_err device_db_list(struct device_db *db, void (*fn)(void *ctx, const struct device_info *),
                         void *ctx);

/* For the other files of src/auth that keep tables in devices.db: the
 * SQLite handle (a sqlite3 *) and its recursive lock. Hold the lock for as
 * long as the handle or a statement prepared on it is in use. */
struct sqlite3;
struct sqlite3 *device_db_handle(struct device_db *db);
void device_db_lock(struct device_db *db);
void device_db_unlock(struct device_db *db);

/* Password hashing, exposed for tests: "pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>". */
vigil_err password_hash(const uint8_t *pw, size_t len, uint32_t iterations, char *out, size_t cap);
/* Returns VIGIL_OK on match, VIGIL_ERR_AUTH on mismatch, VIGIL_ERR_INVALID for a bad encoding. */
vigil_err password_verify(const uint8_t *pw, size_t len, const char *encoded);

#endif
