/* Writes log lines to standard error with an RFC 3339 UTC timestamp. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/time.h"

int vigil_log_threshold = VIGIL_LOG_INFO;

void vigil_log_set_level(enum vigil_log_level level)
{
    vigil_log_threshold = (int)level;
}

int vigil_log_parse_level(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void vigil_log_write(enum vigil_log_level level, const char *fmt, ...)
{
    static const char *const tags[] = {"error", "warn", "info", "debug"};
    char stamp[40];
    char line[1024];
    va_list ap;

    vigil_time_format_rfc3339(vigil_time_now_us(), stamp, sizeof stamp);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* Peer-controlled text (client ids, topics) must not forge log lines or
     * send terminal escapes: control characters become '?'. */
    for (char *p = line; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    /* One fprintf call per line keeps lines from different threads whole. */
    fprintf(stderr, "%s %s %s\n", stamp, tags[level], line);
}
