/* Scheduling hints for the threads that move messages. */
#ifndef VIGIL_CORE_SCHED_H
#define VIGIL_CORE_SCHED_H

#include <stdint.h>

/* Asks the kernel to give the calling thread time slices of slice_us
 * microseconds (sched_setattr with sched_runtime, which the EEVDF scheduler
 * reads for normal threads since kernel commit 857b158d, merged for Linux
 * 6.12). A thread with a short
 * slice is picked first when it wakes, so it preempts threads with longer
 * slices, such as the event writer or another process's CPU-bound work,
 * instead of waiting for them to use up theirs. The kernel clamps the value
 * to 100 to 100,000 us, and older kernels ignore it. The thread keeps its
 * policy and nice value. slice_us 0 does nothing. Returns 0, ENOTSUP for a
 * thread under a real-time, deadline or idle policy, or the errno value of
 * the failed call. */
int vigil_sched_set_slice(uint32_t slice_us);

#endif
