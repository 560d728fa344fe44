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
static vigil_err read_cpu(pid_t pid, uint64_t *cpu_ns)
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

vigil_err bench_system_busy(uint64_t *busy_ns)
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
    *busy_ns = (uint64_t)(user + nice + sys + irq + softirq + steal) * (1000000000u / (uint64_t)ticks);
    return VIGIL_OK;
}

vigil_err bench_proc_read(pid_t pid, struct bench_proc_sample *out)
{
    vigil_err rc;

    memset(out, 0, sizeof *out);
    rc = read_cpu(pid, &out->cpu_ns);
    if (rc == VIGIL_OK)
        rc = read_memory(pid, &out->rss_kb, &out->hwm_kb);
    return rc;
}
