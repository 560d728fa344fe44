/* Human log for operators. Security events are typed structs (secmon/event.h)
 * and never go through this log. Never pass a secret or a vital-sign value. */
#ifndef VIGIL_CORE_LOG_H
#define VIGIL_CORE_LOG_H

enum vigil_log_level {
    VIGIL_LOG_ERROR = 0,
    VIGIL_LOG_WARN,
    VIGIL_LOG_INFO,
    VIGIL_LOG_DEBUG,
};

extern int vigil_log_threshold;

void vigil_log_set_level(enum vigil_log_level level);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int vigil_log_parse_level(const char *name);
void vigil_log_write(enum vigil_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The level is checked before the arguments are evaluated or formatted. */
#define VIGIL_LOG(level, ...)                         \
    do {                                              \
        if ((int)(level) <= vigil_log_threshold)      \
            vigil_log_write((level), __VA_ARGS__);    \
    } while (0)

#define log_error(...) VIGIL_LOG(VIGIL_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) VIGIL_LOG(VIGIL_LOG_WARN, __VA_ARGS__)
#define log_info(...) VIGIL_LOG(VIGIL_LOG_INFO, __VA_ARGS__)
#define log_debug(...) VIGIL_LOG(VIGIL_LOG_DEBUG, __VA_ARGS__)

#endif
