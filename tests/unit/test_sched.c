/* Tests for the scheduling hints: the time slice a thread requests and the
 * policies it leaves alone. Each test runs in its own thread, so the
 * settings it makes end with that thread. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/sched.h"

/* Returns the calling thread's se.slice in ns, or -1 when the kernel does
 * not print it (kernels before commit 9065ce69 "sched/debug: Provide slice
 * length for fair tasks"). */
static long long own_slice_ns(void)
{
    char path[64];
    char line[256];
    long long ns = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/self/task/%ld/sched", (long)syscall(SYS_gettid));
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "se.slice", 8) == 0) {
            const char *colon = strchr(line, ':');

            if (colon != NULL)
                ns = strtoll(colon + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return ns;
}

struct slice_run {
    int policy;         /* set before the request, with its flags */
    int rc;             /* of vigil_sched_set_slice(100) */
    int setup_errno;    /* errno of sched_setscheduler(), 0 on success */
    long long before_ns;
    long long after_ns;
    int policy_after;   /* sched_getscheduler() after the request */
};

static void *slice_thread(void *arg)
{
    struct slice_run *run = arg;
    struct sched_param param = {0};

    if (sched_setscheduler(0, run->policy, &param) != 0) {
        run->setup_errno = errno;
        return NULL;
    }
    run->before_ns = own_slice_ns();
    run->rc = vigil_sched_set_slice(100);
    run->after_ns = own_slice_ns();
    run->policy_after = sched_getscheduler(0);
    return NULL;
}

static void run_in_thread(struct slice_run *run)
{
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, slice_thread, run), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
}

static void test_slice_normal(void **state)
{
    struct slice_run run = {.policy = SCHED_OTHER};

    (void)state;
    run_in_thread(&run);
    assert_int_equal(run.setup_errno, 0);
    if (run.after_ns < 0)
        skip();
    assert_int_equal(run.rc, 0);
    assert_int_equal(run.after_ns, 100000);
    assert_int_equal(run.policy_after, SCHED_OTHER | SCHED_RESET_ON_FORK);
}

/* A process started with reset-on-fork (chrt --reset-on-fork) reads its
 * policy with SCHED_RESET_ON_FORK set. It is still a normal thread, so
 * it takes the slice. */
static void test_slice_reset_on_fork_policy(void **state)
{
    struct slice_run batch = {.policy = SCHED_BATCH | SCHED_RESET_ON_FORK};
    struct slice_run other = {.policy = SCHED_OTHER | SCHED_RESET_ON_FORK};

    (void)state;
    run_in_thread(&batch);
    run_in_thread(&other);
    assert_int_equal(batch.setup_errno, 0);
    assert_int_equal(other.setup_errno, 0);
    if (other.after_ns < 0)
        skip();
    assert_int_equal(other.rc, 0);
    assert_int_equal(other.after_ns, 100000);
    assert_int_equal(batch.rc, 0);
    assert_int_equal(batch.after_ns, 100000);
    assert_int_equal(batch.policy_after, SCHED_BATCH | SCHED_RESET_ON_FORK);
}

/* SCHED_IDLE threads are left as they are. */
static void test_slice_idle_untouched(void **state)
{
    struct slice_run run = {.policy = SCHED_IDLE};

    (void)state;
    run_in_thread(&run);
    assert_int_equal(run.setup_errno, 0);
    assert_int_equal(run.rc, ENOTSUP);
    assert_int_equal(run.policy_after, SCHED_IDLE);
    assert_true(run.after_ns == run.before_ns);
}

static void test_slice_zero_does_nothing(void **state)
{
    (void)state;
    assert_int_equal(vigil_sched_set_slice(0), 0);
    assert_int_equal(sched_getscheduler(0), SCHED_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slice_normal),
        cmocka_unit_test(test_slice_reset_on_fork_policy),
        cmocka_unit_test(test_slice_idle_untouched),
        cmocka_unit_test(test_slice_zero_does_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
