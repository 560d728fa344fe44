/* Option parsing and path helpers shared by `vigil sim` and `vigil station`. */
#include "sim/cli_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "proto/mqtt/mqtt.h"

int simcli_parse_ulong(const char *option, const char *arg, unsigned long min, unsigned long max,
                       unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(arg, &end, 10);
    if (arg[0] == '-' || end == arg || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "vigil: invalid value '%s' for %s: expected an integer from %lu to %lu\n",
                arg, option, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int simcli_parse_double(const char *option, const char *arg, double min, double max, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(arg, &end);
    if (end == arg || *end != '\0' || errno != 0 || !(v >= min && v <= max)) {
        fprintf(stderr, "vigil: invalid value '%s' for %s: expected a number from %g to %g\n",
                arg, option, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int simcli_parse_port(const char *arg, uint16_t *out)
{
    unsigned long v;

    if (simcli_parse_ulong("--port", arg, 1, 65535, &v) != 0)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

int simcli_parse_mqtt_version(const char *arg, uint8_t *out)
{
    if (strcmp(arg, "5") == 0 || strcmp(arg, "5.0") == 0) {
        *out = MQTT_V5;
        return 0;
    }
    if (strcmp(arg, "3.1.1") == 0 || strcmp(arg, "4") == 0) {
        *out = MQTT_V311;
        return 0;
    }
    fprintf(stderr, "vigil: invalid value '%s' for --mqtt-version: expected 5 or 3.1.1\n", arg);
    return -1;
}

int simcli_check_topic_level(const char *option, const char *arg)
{
    size_t len = strlen(arg);

    if (len == 0 || len > 64 || strspn(arg, "abcdefghijklmnopqrstuvwxyz"
                                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != len) {
        fprintf(stderr,
                "vigil: invalid value '%s' for %s: expected 1 to 64 characters of "
                "A-Z, a-z, 0-9, '.', '_' or '-'\n",
                arg, option);
        return -1;
    }
    return 0;
}

int simcli_set_log_level(const char *arg)
{
    int level = vigil_log_parse_level(arg);

    if (level < 0) {
        fprintf(stderr, "vigil: invalid value '%s' for --log-level: expected error, warn, "
                        "info or debug\n",
                arg);
        return -1;
    }
    vigil_log_set_level((enum vigil_log_level)level);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int simcli_find_recordings(const char *explicit_dir, char *dir, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n;
    char *cut;

    if (explicit_dir) {
        snprintf(dir, cap, "%s", explicit_dir);
        return is_dir(dir) ? 0 : -1;
    }
    snprintf(dir, cap, "../shared/data/vitals");
    if (is_dir(dir))
        return 0;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    /* Drop the file name and the build folder: <repo>/build/vigil -> <repo>. */
    for (int i = 0; i < 2 && (cut = strrchr(exe, '/')) != NULL; i++)
        *cut = '\0';
    if (snprintf(dir, cap, "%s/../shared/data/vitals", exe) >= (int)cap)
        return -1;
    return is_dir(dir) ? 0 : -1;
}
