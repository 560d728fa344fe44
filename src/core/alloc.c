/* Counted allocation. Sizes come from malloc_usable_size(), so no header is
 * added to blocks and memory from the wrappers stays compatible with free()
 * for the sanitizers; page blocks count their rounded size. */
#include "core/alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_size_t alloc_in_use;
static atomic_size_t alloc_peak;
static atomic_size_t alloc_limit;
static atomic_uint_fast64_t alloc_fail_countdown;

static int alloc_should_fail(size_t size)
{
    uint_fast64_t n = atomic_load_explicit(&alloc_fail_countdown, memory_order_relaxed);
    size_t limit = atomic_load_explicit(&alloc_limit, memory_order_relaxed);

    if (n > 0 && atomic_fetch_sub(&alloc_fail_countdown, 1) == 1)
        return 1;
    if (limit != 0 && atomic_load_explicit(&alloc_in_use, memory_order_relaxed) + size > limit)
        return 1;
    return 0;
}

static void account_bytes(size_t n, int sign)
{
    if (sign > 0) {
        size_t now = atomic_fetch_add_explicit(&alloc_in_use, n, memory_order_relaxed) + n;
        size_t peak = atomic_load_explicit(&alloc_peak, memory_order_relaxed);
        while (now > peak && !atomic_compare_exchange_weak(&alloc_peak, &peak, now))
            ;
    } else {
        atomic_fetch_sub_explicit(&alloc_in_use, n, memory_order_relaxed);
    }
}

static void alloc_account(void *p, int sign)
{
    account_bytes(malloc_usable_size(p), sign);
}

void *vigil_malloc(size_t size)
{
    void *p;

    if (alloc_should_fail(size))
        return NULL;
    p = malloc(size ? size : 1);
    if (p != NULL)
        alloc_account(p, 1);
    return p;
}

void *vigil_calloc(size_t count, size_t size)
{
    void *p;

    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    if (alloc_should_fail(count * size))
        return NULL;
    p = calloc(count ? count : 1, size ? size : 1);
    if (p != NULL)
        alloc_account(p, 1);
    return p;
}

void *vigil_realloc(void *ptr, size_t size)
{
    size_t old = ptr ? malloc_usable_size(ptr) : 0;
    void *p;

    if (alloc_should_fail(size > old ? size - old : 0))
        return NULL;
    p = realloc(ptr, size ? size : 1);
    if (p == NULL)
        return NULL;
    atomic_fetch_sub_explicit(&alloc_in_use, old, memory_order_relaxed);
    alloc_account(p, 1);
    return p;
}

char *vigil_strdup(const char *s)
{
    return vigil_memdup(s, strlen(s) + 1);
}

char *vigil_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = vigil_malloc(len + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *vigil_memdup(const void *src, size_t n)
{
    void *p = vigil_malloc(n);

    if (p != NULL && n > 0)
        memcpy(p, src, n);
    return p;
}

void vigil_free(void *ptr)
{
    if (ptr == NULL)
        return;
    alloc_account(ptr, -1);
    free(ptr);
}

static size_t pages_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    return (size + page - 1) / page * page;
}

void *vigil_pages_alloc(size_t size)
{
    size_t n = pages_round(size ? size : 1);
    void *p;

    if (alloc_should_fail(n))
        return NULL;
    p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    account_bytes(n, 1);
    return p;
}

void vigil_pages_free(void *ptr, size_t size)
{
    size_t n = pages_round(size ? size : 1);

    if (ptr == NULL)
        return;
    munmap(ptr, n);
    account_bytes(n, -1);
}

size_t vigil_alloc_in_use(void)
{
    return atomic_load(&alloc_in_use);
}

size_t vigil_alloc_peak(void)
{
    return atomic_load(&alloc_peak);
}

void vigil_alloc_set_limit(size_t bytes)
{
    atomic_store(&alloc_limit, bytes);
}

void vigil_alloc_fail_after(uint64_t n)
{
    atomic_store(&alloc_fail_countdown, n);
}
