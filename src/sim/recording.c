/* CSV readers for BIDMC 1 Hz and MIMIC per-minute vital-sign numerics, and
 * the recursive scan of a recordings folder. */
#include "sim/recording.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/log.h"

#define LINE_MAX_BYTES 4096
#define MAX_COLUMNS 32

struct column_name {
    const char *name;
    enum vital vital;
};

static const struct column_name bidmc_columns[] = {
    {"HR", VITAL_HR},
    {"PULSE", VITAL_PULSE},
    {"RESP", VITAL_RESP},
    {"SpO2", VITAL_SPO2},
};

static const struct column_name mimic_columns[] = {
    {"HR_bpm", VITAL_HR},
    {"PULSE_bpm", VITAL_PULSE},
    {"RESP_pm", VITAL_RESP},
    {"SpO2_pct", VITAL_SPO2},
    {"ABPSys_mmHg", VITAL_ABP_SYS},
    {"ABPDias_mmHg", VITAL_ABP_DIA},
    {"ABPMean_mmHg", VITAL_ABP_MEAN},
    {"NBPSys_mmHg", VITAL_NBP_SYS},
    {"NBPDias_mmHg", VITAL_NBP_DIA},
    {"NBPMean_mmHg", VITAL_NBP_MEAN},
};

/* Splits line in place at commas, trimming spaces; returns the field count
 * or -1 when there are more than max fields. */
static int split_fields(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;

    for (;;) {
        char *end = strchr(p, ',');
        char *stop = end ? end : p + strlen(p);

        if (n == max)
            return -1;
        while (*p == ' ' || *p == '\t')
            p++;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        *stop = '\0';
        fields[n++] = p;
        if (end == NULL)
            return n;
        p = end + 1;
    }
}

/* Reads one line without its end-of-line characters. Returns 1 for a line,
 * 0 at end of file, -1 for a line longer than the buffer. */
static int read_line(FILE *f, char *buf, size_t cap)
{
    size_t len;

    if (fgets(buf, (int)cap, f) == NULL)
        return 0;
    len = strlen(buf);
    if (len == cap - 1 && buf[len - 1] != '\n' && !feof(f))
        return -1;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return 1;
}

static int lookup_column(const struct column_name *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return (int)table[i].vital;
    return -1;
}

/* Maps the header's columns to vitals (-1 for the time column and columns
 * that are not used). Returns false when the header is not a numerics file. */
static bool parse_header(char **fields, int n, struct recording *r, int *map)
{
    const struct column_name *table;
    size_t table_len;

    if (strcmp(fields[0], "Time [s]") == 0) {
        r->format = RECORDING_BIDMC;
        r->period_s = 1.0;
        table = bidmc_columns;
        table_len = sizeof bidmc_columns / sizeof bidmc_columns[0];
    } else if (strcmp(fields[0], "minute") == 0) {
        r->format = RECORDING_MIMIC;
        r->period_s = 60.0;
        table = mimic_columns;
        table_len = sizeof mimic_columns / sizeof mimic_columns[0];
    } else {
        return false;
    }
    map[0] = -1;
    r->channels = 0;
    for (int i = 1; i < n; i++) {
        map[i] = lookup_column(table, table_len, fields[i]);
        if (map[i] >= 0)
            r->channels |= 1u << map[i];
    }
    /* Waveform files share the time column but carry neither HR nor SpO2. */
    return (r->channels & ((1u << VITAL_HR) | (1u << VITAL_SPO2))) != 0;
}

/* Parses one cell. "NaN" and empty cells are "no reading". */
static bool parse_cell(const char *s, double *out)
{
    char *end;

    if (*s == '\0' || strcasecmp(s, "nan") == 0) {
        *out = NAN;
        return true;
    }
    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && isfinite(*out);
}

/* Converts a recorded number into a reading, or NaN for "no reading".
 * In the MIMIC numerics a 0 means the monitor sent the parameter without a
 * valid value (sensor not connected, no arterial line, SpO2 probe off), so
 * it is not a measurement; this covers every MIMIC channel, because a whole
 * minute of 0 breaths, 0 beats or 0 mmHg is not physiological either. BIDMC
 * marks missing values only with NaN, so its zeros are kept. Negative
 * numbers are never a vital sign. */
static float to_reading(const struct recording *r, double v)
{
    if (isnan(v) || v < 0.0)
        return NAN;
    if (r->format == RECORDING_MIMIC && v == 0.0)
        return NAN;
    return (float)v;
}

static vigil_err append_row(struct recording *r, size_t *cap_rows, char **fields, int n,
                            const int *map)
{
    float *row;

    if (r->n_rows == *cap_rows) {
        size_t grow = *cap_rows ? *cap_rows * 2 : 512;
        float *p;

        if (grow > RECORDING_MAX_ROWS)
            grow = RECORDING_MAX_ROWS;
        if (grow <= r->n_rows)
            return VIGIL_ERR_LIMIT;
        p = vigil_realloc(r->values, grow * VITAL_COUNT * sizeof *p);
        if (p == NULL)
            return VIGIL_ERR_NOMEM;
        r->values = p;
        *cap_rows = grow;
    }
    row = r->values + r->n_rows * VITAL_COUNT;
    for (int i = 0; i < VITAL_COUNT; i++)
        row[i] = NAN;
    for (int i = 0; i < n; i++) {
        double v;

        if (!parse_cell(fields[i], &v))
            return VIGIL_ERR_INVALID;
        if (map[i] >= 0)
            row[map[i]] = to_reading(r, v);
    }
    r->n_rows++;
    return VIGIL_OK;
}

static vigil_err read_rows(FILE *f, struct recording *r, int n_cols, const int *map)
{
    char line[LINE_MAX_BYTES];
    char *fields[MAX_COLUMNS];
    size_t cap_rows = 0;
    size_t line_no = 1;
    int got;

    while ((got = read_line(f, line, sizeof line)) != 0) {
        vigil_err rc;
        int n;

        line_no++;
        if (got < 0) {
            log_warn("recording %s: line %zu is longer than %d bytes", r->path, line_no,
                     LINE_MAX_BYTES);
            return VIGIL_ERR_INVALID;
        }
        if (line[0] == '\0')
            continue;
        n = split_fields(line, fields, MAX_COLUMNS);
        if (n != n_cols) {
            log_warn("recording %s: line %zu has %d fields, expected %d", r->path, line_no, n,
                     n_cols);
            return VIGIL_ERR_INVALID;
        }
        rc = append_row(r, &cap_rows, fields, n, map);
        if (rc == VIGIL_ERR_INVALID)
            log_warn("recording %s: line %zu has a cell that is not a number or NaN", r->path,
                     line_no);
        if (rc != VIGIL_OK)
            return rc;
    }
    return ferror(f) ? VIGIL_ERR_IO : VIGIL_OK;
}

vigil_err recording_load(const char *path, struct recording *out)
{
    char line[LINE_MAX_BYTES];
    char *fields[MAX_COLUMNS];
    int map[MAX_COLUMNS];
    const char *slash;
    FILE *f;
    int n;
    vigil_err rc;

    memset(out, 0, sizeof *out);
    f = fopen(path, "r");
    if (f == NULL)
        return VIGIL_ERR_IO;
    out->path = vigil_strdup(path);
    if (out->path == NULL) {
        rc = VIGIL_ERR_NOMEM;
        goto done;
    }
    slash = strrchr(out->path, '/');
    out->name = slash ? slash + 1 : out->path;
    if (read_line(f, line, sizeof line) != 1 ||
        (n = split_fields(line, fields, MAX_COLUMNS)) < 2 || !parse_header(fields, n, out, map)) {
        rc = VIGIL_ERR_NOT_FOUND;
        goto done;
    }
    rc = read_rows(f, out, n, map);
    if (rc == VIGIL_OK && out->n_rows == 0)
        rc = VIGIL_ERR_INVALID;

done:
    fclose(f);
    if (rc != VIGIL_OK)
        recording_free(out);
    return rc;
}

void recording_free(struct recording *r)
{
    vigil_free(r->path);
    vigil_free(r->values);
    memset(r, 0, sizeof *r);
}

double recording_value(const struct recording *r, size_t row, enum vital v)
{
    double value;

    if (r->n_rows == 0 || (unsigned)v >= VITAL_COUNT)
        return NAN;
    value = r->values[(row % r->n_rows) * VITAL_COUNT + v];
    /* Both formats have a resolution of 0.1; rounding drops the float
     * storage error (62.8 stored as 62.79999924). */
    return round(value * 10.0) / 10.0;
}

/* ---- Folder scan ------------------------------------------------------ */

struct path_list {
    char **paths;
    size_t n;
    size_t cap;
};

static vigil_err path_list_add(struct path_list *l, const char *path)
{
    if (l->n == RECORDING_MAX_FILES)
        return VIGIL_ERR_LIMIT;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = vigil_realloc(l->paths, cap * sizeof *p);

        if (p == NULL)
            return VIGIL_ERR_NOMEM;
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->n] = vigil_strdup(path);
    if (l->paths[l->n] == NULL)
        return VIGIL_ERR_NOMEM;
    l->n++;
    return VIGIL_OK;
}

static bool is_csv(const char *name)
{
    size_t len = strlen(name);

    return len > 4 && strcasecmp(name + len - 4, ".csv") == 0;
}

static vigil_err collect(const char *dir, int depth, struct path_list *l)
{
    char path[4096];
    struct dirent *e;
    struct stat st;
    vigil_err rc = VIGIL_OK;
    DIR *d = opendir(dir);

    if (d == NULL)
        return depth == 0 ? VIGIL_ERR_NOT_FOUND : VIGIL_OK;
    while (rc == VIGIL_OK && (e = readdir(d)) != NULL) {
        int n;

        if (e->d_name[0] == '.')
            continue;
        n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth + 1 < RECORDING_MAX_DEPTH)
            rc = collect(path, depth + 1, l);
        else if (S_ISREG(st.st_mode) && is_csv(e->d_name))
            rc = path_list_add(l, path);
    }
    closedir(d);
    return rc;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static vigil_err load_all(struct path_list *l, struct recording_set *set)
{
    set->items = vigil_calloc(l->n ? l->n : 1, sizeof *set->items);
    if (set->items == NULL)
        return VIGIL_ERR_NOMEM;
    for (size_t i = 0; i < l->n; i++) {
        struct recording *r = &set->items[set->n];
        vigil_err rc = recording_load(l->paths[i], r);

        if (rc == VIGIL_ERR_NOMEM)
            return rc;
        if (rc != VIGIL_OK) {
            set->n_skipped++;
            continue;
        }
        if (r->format == RECORDING_BIDMC)
            set->n_bidmc++;
        else
            set->n_mimic++;
        set->n++;
    }
    return VIGIL_OK;
}

vigil_err recording_scan(const char *dir, struct recording_set *set)
{
    struct path_list list = {0};
    vigil_err rc;

    memset(set, 0, sizeof *set);
    rc = collect(dir, 0, &list);
    if (rc == VIGIL_ERR_LIMIT) {
        log_warn("recordings: more than %d CSV files under %s; using the first %d found",
                 RECORDING_MAX_FILES, dir, RECORDING_MAX_FILES);
        rc = VIGIL_OK;
    }
    if (rc != VIGIL_OK)
        goto done;
    if (list.n > 1)
        qsort(list.paths, list.n, sizeof *list.paths, compare_paths);
    rc = load_all(&list, set);

done:
    for (size_t i = 0; i < list.n; i++)
        vigil_free(list.paths[i]);
    vigil_free(list.paths);
    if (rc != VIGIL_OK)
        recording_set_free(set);
    return rc;
}

void recording_set_free(struct recording_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        recording_free(&set->items[i]);
    vigil_free(set->items);
    memset(set, 0, sizeof *set);
}
