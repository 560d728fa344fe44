/* Scheduling hints for the threads that move messages. */
#include "core/sched.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's struct sched_attr (include/uapi/linux/sched/types.h), which
 * glibc does not declare. */
struct vigil_sched_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
};

/* SCHED_FLAG_RESET_ON_FORK of the kernel's uapi headers. */
#define VIGIL_SCHED_FLAG_RESET_ON_FORK 0x01u

int vigil_sched_set_slice(uint32_t slice_us)
{
    struct vigil_sched_attr attr;
    int policy;
    int nice_value;

    if (slice_us == 0)
        return 0;
#ifdef SYS_sched_setattr
    policy = sched_getscheduler(0);
    if (policy < 0)
        return errno;
    /* A thread started with reset-on-fork (chrt --reset-on-fork) reads its
     * policy with SCHED_RESET_ON_FORK set. The request below sets that flag
     * itself, so only the policy is kept. */
    policy &= ~SCHED_RESET_ON_FORK;
    /* Real-time, deadline and idle threads do not use slices this way. */
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return ENOTSUP;
    errno = 0;
    nice_value = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (nice_value == -1 && errno != 0)
        return errno;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = (uint32_t)policy;
    attr.sched_nice = nice_value;
    attr.sched_runtime = (uint64_t)slice_us * 1000u;
    /* Threads started later from this one (libuv's pool for password
     * checks, for example) get the default slice back. */
    attr.sched_flags = VIGIL_SCHED_FLAG_RESET_ON_FORK;
    if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0)
        return errno;
    return 0;
#else
    (void)attr;
    (void)policy;
    (void)nice_value;
    return ENOSYS;
#endif
}
