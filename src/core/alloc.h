/* Allocation wrappers: every heap byte vigil owns is counted, can be capped,
 * and allocation failures can be injected by tests. */
#ifndef VIGIL_CORE_ALLOC_H
#define VIGIL_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Each returns NULL when the system allocator fails, when the process-wide
 * cap would be exceeded, or when failure injection triggers. The caller owns
 * the result and releases it with vigil_free(). */
void *vigil_malloc(size_t size);
void *vigil_calloc(size_t count, size_t size);
/* On failure the original block is left untouched and still owned by the caller. */
void *vigil_realloc(void *ptr, size_t size);
char *vigil_strdup(const char *s);
char *vigil_strndup(const char *s, size_t n);
void *vigil_memdup(const void *p, size_t n);
void vigil_free(void *ptr);

/* Zeroed memory mapped from the kernel, for large blocks that come and go
 * with load. vigil_pages_free() returns a block to the system at once,
 * whereas free() may keep it in the heap for good. size is rounded up to
 * whole pages, and vigil_pages_free() takes the same size. Counted, capped
 * and failure-injected like the other wrappers. */
void *vigil_pages_alloc(size_t size);
void vigil_pages_free(void *ptr, size_t size);

/* Bytes currently allocated through the wrappers, and the high-water mark. */
size_t vigil_alloc_in_use(void);
size_t vigil_alloc_peak(void);
/* Sets the cap on bytes in use; 0 means no cap. */
void vigil_alloc_set_limit(size_t bytes);
/* Makes the n-th allocation from now fail (1 = the next one); 0 disables. */
void vigil_alloc_fail_after(uint64_t n);

#endif
