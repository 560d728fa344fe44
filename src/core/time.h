/* Clock helpers. */
#ifndef VIGIL_CORE_TIME_H
#define VIGIL_CORE_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall-clock time in microseconds since the Unix epoch. */
int64_t vigil_time_now_us(void);
/* Monotonic time in milliseconds, for timeouts. */
uint64_t vigil_time_mono_ms(void);
/* Returns t plus us microseconds, normalised; for the absolute deadlines
 * of pthread_cond_timedwait(). */
struct timespec vigil_timespec_add_us(struct timespec t, uint64_t us);
/* Writes "2026-01-02T03:04:05.123456Z" into out; returns out. */
char *vigil_time_format_rfc3339(int64_t us, char *out, size_t cap);

#endif
