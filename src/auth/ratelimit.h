/* Failed-login limiter: one token bucket per key (a peer address or an
 * identity). Each failure takes a token; tokens come back at a fixed rate;
 * a key with no token left is blocked until one returns. Memory is bounded:
 * past max_keys the least recently used key is forgotten. Not thread-safe:
 * used from the I/O loop only. */
#ifndef VIGIL_AUTH_RATELIMIT_H
#define VIGIL_AUTH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ratelimit;

/* burst: failures allowed at once; per_minute: tokens returned per minute
 * (0: never). Returns NULL when out of memory or when burst or max_keys is
 * 0. Keys are compared on their first 128 bytes. */
struct ratelimit *ratelimit_new(uint32_t burst, uint32_t per_minute, size_t max_keys);
void ratelimit_free(struct ratelimit *rl);
/* True when key has no token left at now_ms (monotonic milliseconds). */
bool ratelimit_blocked(struct ratelimit *rl, const char *key, uint64_t now_ms);
/* Records one failure for key. */
void ratelimit_fail(struct ratelimit *rl, const char *key, uint64_t now_ms);
/* Forgets key, after a success. */
void ratelimit_reset(struct ratelimit *rl, const char *key);
size_t ratelimit_keys(const struct ratelimit *rl);

#endif
