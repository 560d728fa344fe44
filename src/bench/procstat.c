/* /proc readers for the CPU time and memory of the broker under test and of
 * the load generator itself. */
#include "bench/procstat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* utime and stime are fields 14 and 15 of /proc/PID/stat, counted after the
 * command name, which is in parentheses and may itself contain spaces. */
static vigil_err read_cpu(pid_t pid, uint64_t *cpu_ns, uint64_t *sys_ns)
{
    char path[64], line[1024];
    unsigned long long utime, stime;
    const char *p;
    FILE *f;
    long ticks = sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO;
    p = fgets(line, sizeof line, f);
    fclose(f);
    if (p == NULL || (p = strrchr(line, ')')) == NULL)
        return VIGIL_ERR_IO;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2 || ticks <= 0)
        return VIGIL_ERR_IO;
    *cpu_ns = (uint64_t)(utime + stime) * (1000000000u / (uint64_t)ticks);
    *sys_ns = (uint64_t)stime * (1000000000u / (uint64_t)ticks);
    return VIGIL_OK;
}

static vigil_err read_memory(pid_t pid, uint64_t *rss_kb, uint64_t *hwm_kb)
{
    char path[64], line[256];
    unsigned long long kb;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? VIGIL_ERR_NOT_FOUND : VIGIL_ERR_IO;
    *rss_kb = *hwm_kb = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            *rss_kb = kb;
        else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1)
            *hwm_kb = kb;
    }
    fclose(f);
    return VIGIL_OK;
}

vigil_err bench_system_read(struct bench_system_sample *out)
{
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    long ticks = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return VIGIL_ERR_IO;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
               &iowait, &irq, &softirq, &steal);
    fclose(f);
    if (n != 8 || ticks <= 0)
        return VIGIL_ERR_IO;
    out->task_ns = (uint64_t)(user + nice + sys) * (1000000000u / (uint64_t)ticks);
    out->irq_ns = (uint64_t)(irq + softirq) * (1000000000u / (uint64_t)ticks);
    out->steal_ns = (uint64_t)steal * (1000000000u / (uint64_t)ticks);
    return VIGIL_OK;
}

static uint64_t proc_cpu(pid_t pid)
{
    struct bench_proc_sample s;

    return pid > 0 && bench_proc_read(pid, &s) == VIGIL_OK ? s.cpu_ns : 0;
}

double bench_other_cpu_pct(pid_t broker, unsigned window_ms)
{
    struct bench_system_sample s0, s1;
    uint64_t b0 = proc_cpu(broker), g0 = proc_cpu(getpid()), b1, g1;
    struct timespec ts = {(time_t)(window_ms / 1000), (long)(window_ms % 1000) * 1000000L};
    double other;

    if (bench_system_read(&s0) != VIGIL_OK)
        return -1;
    nanosleep(&ts, NULL);
    b1 = proc_cpu(broker);
    g1 = proc_cpu(getpid());
    if (bench_system_read(&s1) != VIGIL_OK)
        return -1;
    other = (double)(s1.task_ns - s0.task_ns) - (double)(b1 - b0) - (double)(g1 - g0);
    return other > 0 ? other / ((double)window_ms * 1e4) : 0;
}

bool bench_wait_machine_quiet(pid_t broker, double max_pct, unsigned max_wait_ms, bool verbose)
{
    double pct = 0;
    bool reported = false;

    for (unsigned waited = 0; waited < max_wait_ms; waited += 250) {
        pct = bench_other_cpu_pct(broker, 250);
        if (pct < max_pct)
            return true;
        if (verbose && !reported) {
            fprintf(stderr, "  waiting for other processes to go quiet (%.0f%% of a core)\n",
                    pct);
            reported = true;
        }
    }
    if (verbose)
        fprintf(stderr, "  other processes still use %.0f%% of a core; measuring anyway\n", pct);
    return false;
}

bool bench_wait_proc_quiet(pid_t pid, double max_pct, unsigned max_wait_ms)
{
    const struct timespec window = {0, 250 * 1000000L};

    for (unsigned waited = 0; waited < max_wait_ms; waited += 250) {
        uint64_t c0 = proc_cpu(pid), c1;

        nanosleep(&window, NULL);
        c1 = proc_cpu(pid);
        if (c0 == 0 || c1 == 0)
            return false;
        if ((double)(c1 - c0) / (250 * 1e4) < max_pct)
            return true;
    }
    return false;
}

vigil_err bench_proc_read(pid_t pid, struct bench_proc_sample *out)
{
    vigil_err rc;

    memset(out, 0, sizeof *out);
    rc = read_cpu(pid, &out->cpu_ns, &out->sys_ns);
    if (rc == VIGIL_OK)
        rc = read_memory(pid, &out->rss_kb, &out->hwm_kb);
    return rc;
}
