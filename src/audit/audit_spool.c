/* The audit spool: one JSON file per administrative record, written by
 * commands while the hub holds the audit log and appended by the hub. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "audit/audit_spool.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

#define SPOOL_DIR "spool"
#define REJECTED_DIR "rejected"
#define SPOOL_PATH_MAX 4096
#define SPOOL_NAME_MAX 64
/* Final names already taken in the same microsecond by this process id. */
#define SPOOL_NAME_ATTEMPTS 1000

/* A spool file name parsed into its sort key. */
struct spool_entry {
    int64_t us;
    uint32_t pid;
    uint32_t counter;
    char name[SPOOL_NAME_MAX];
};

static void spool_dir_path(const char *data_dir, char out[SPOOL_PATH_MAX])
{
    snprintf(out, SPOOL_PATH_MAX, "%s/audit/" SPOOL_DIR, data_dir);
}

static vigil_err dir_fsync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ok;

    if (fd < 0)
        return VIGIL_ERR_IO;
    ok = fsync(fd);
    close(fd);
    return ok == 0 ? VIGIL_OK : VIGIL_ERR_IO;
}

/* Creates dir with mode 0700 unless it exists as a directory. */
static vigil_err dir_make(const char *dir)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0 || (errno == EEXIST && lstat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return VIGIL_OK;
    log_error("audit spool: failed to create directory %s: %s", dir,
              errno == EEXIST ? "a file of that name exists" : strerror(errno));
    return VIGIL_ERR_IO;
}

static vigil_err write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VIGIL_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return VIGIL_OK;
}

/* Parses "<unix-us>-<pid>-<counter>.json"; false for any other name,
 * including the temporary files, which start with '.'. */
static bool spool_name_parse(const char *name, struct spool_entry *e)
{
    unsigned long long us;
    unsigned long pid;
    unsigned long counter;
    int used = 0;

    if (name[0] < '0' || name[0] > '9' || strlen(name) >= SPOOL_NAME_MAX)
        return false;
    if (sscanf(name, "%llu-%lu-%lu.json%n", &us, &pid, &counter, &used) != 3 ||
        name[used] != '\0' || us > INT64_MAX || pid > UINT32_MAX || counter > UINT32_MAX)
        return false;
    e->us = (int64_t)us;
    e->pid = (uint32_t)pid;
    e->counter = (uint32_t)counter;
    snprintf(e->name, sizeof e->name, "%s", name);
    return true;
}

static void spool_name_format(char out[SPOOL_NAME_MAX], int64_t us, uint32_t counter)
{
    snprintf(out, SPOOL_NAME_MAX, "%016" PRId64 "-%ld-%06" PRIu32 ".json", us, (long)getpid(),
             counter);
}

/* Serialises the spool file body: {"fields", "requested_at", "type", "user"}. */
static vigil_err spool_body(const char *type, json_t *fields, const char *user,
                            int64_t requested_us, char **out, size_t *len)
{
    char ts[40];
    json_t *doc;
    size_t n;

    vigil_time_format_rfc3339(requested_us, ts, sizeof ts);
    doc = json_pack("{s:s, s:O, s:s, s:s}", "type", type, "fields", fields, "requested_at", ts,
                    "user", user);
    if (doc == NULL)
        return VIGIL_ERR_NOMEM;
    n = json_dumpb(doc, NULL, 0, AUDIT_JSON_FLAGS);
    if (n == 0 || n > AUDIT_SPOOL_MAX_FILE - 1) {
        json_decref(doc);
        return n == 0 ? VIGIL_ERR_INVALID : VIGIL_ERR_LIMIT;
    }
    *out = vigil_malloc(n + 1);
    if (*out == NULL) {
        json_decref(doc);
        return VIGIL_ERR_NOMEM;
    }
    json_dumpb(doc, *out, n, AUDIT_JSON_FLAGS);
    (*out)[n] = '\n';
    *len = n + 1;
    json_decref(doc);
    return VIGIL_OK;
}

/* Writes body to a new temporary file in dir and fsyncs it. A process
 * running as root hands the file to the owner of dir, so a hub running as
 * that user can read and delete it. */
static vigil_err spool_temp_write(const char *dir, const char *body, size_t len,
                                  char tmp[SPOOL_PATH_MAX])
{
    struct stat st;
    vigil_err rc = VIGIL_ERR_IO;
    int fd;

    snprintf(tmp, SPOOL_PATH_MAX, "%s/.spool-XXXXXX", dir);
    fd = mkstemp(tmp);
    if (fd < 0) {
        log_error("audit spool: failed to create a file in %s: %s", dir, strerror(errno));
        return VIGIL_ERR_IO;
    }
    if (geteuid() == 0 && stat(dir, &st) == 0 && st.st_uid != 0 &&
        fchown(fd, st.st_uid, st.st_gid) != 0)
        log_warn("audit spool: failed to give %s to uid %ld: %s", tmp, (long)st.st_uid,
                 strerror(errno));
    if (fchmod(fd, 0600) == 0 && write_all(fd, body, len) == VIGIL_OK && fsync(fd) == 0)
        rc = VIGIL_OK;
    else
        log_error("audit spool: failed to write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == VIGIL_OK) {
        log_error("audit spool: failed to write %s: %s", tmp, strerror(errno));
        rc = VIGIL_ERR_IO;
    }
    if (rc != VIGIL_OK)
        unlink(tmp);
    return rc;
}

/* Gives the temporary file its final name. link() fails instead of
 * replacing a file of the same name, which another record of this process
 * id in the same microsecond may have, so the counter moves on then. */
static vigil_err spool_publish(const char *dir, const char *tmp, int64_t us)
{
    char name[SPOOL_NAME_MAX];
    char path[SPOOL_PATH_MAX];

    for (uint32_t counter = 0; counter < SPOOL_NAME_ATTEMPTS; counter++) {
        spool_name_format(name, us, counter);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return VIGIL_OK;
        }
        if (errno != EEXIST)
            break;
    }
    log_error("audit spool: failed to link %s into the spool: %s", tmp, strerror(errno));
    unlink(tmp);
    return VIGIL_ERR_IO;
}

vigil_err audit_spool_write(const char *data_dir, const char *type, json_t *fields,
                            const char *user, int64_t requested_us)
{
    char dir[SPOOL_PATH_MAX];
    char tmp[SPOOL_PATH_MAX];
    char *body = NULL;
    size_t len = 0;
    vigil_err rc;

    if (!audit_admin_type_valid(type) || !audit_admin_fields_valid(fields) || user == NULL ||
        user[0] == '\0' || strlen(user) > AUDIT_USER_MAX)
        return VIGIL_ERR_INVALID;
    snprintf(dir, sizeof dir, "%s/audit", data_dir);
    rc = dir_make(dir);
    spool_dir_path(data_dir, dir);
    if (rc == VIGIL_OK)
        rc = dir_make(dir);
    if (rc == VIGIL_OK)
        rc = spool_body(type, fields, user, requested_us, &body, &len);
    if (rc == VIGIL_OK)
        rc = spool_temp_write(dir, body, len, tmp);
    if (rc == VIGIL_OK)
        rc = spool_publish(dir, tmp, requested_us);
    if (rc == VIGIL_OK && dir_fsync(dir) != VIGIL_OK) {
        log_error("audit spool: fsync of directory %s failed: %s", dir, strerror(errno));
        rc = VIGIL_ERR_IO;
    }
    vigil_free(body);
    return rc;
}

/* Draining. */

static int entry_compare(const void *a, const void *b)
{
    const struct spool_entry *x = a;
    const struct spool_entry *y = b;

    if (x->us != y->us)
        return x->us < y->us ? -1 : 1;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    return (x->counter > y->counter) - (x->counter < y->counter);
}

static vigil_err entries_push(struct spool_entry **list, size_t *n, size_t *cap,
                              const struct spool_entry *e)
{
    if (*n == *cap) {
        size_t grown_cap = *cap != 0 ? *cap * 2 : 16;
        struct spool_entry *grown = vigil_realloc(*list, grown_cap * sizeof **list);

        if (grown == NULL)
            return VIGIL_ERR_NOMEM;
        *list = grown;
        *cap = grown_cap;
    }
    (*list)[(*n)++] = *e;
    return VIGIL_OK;
}

/* Lists the spool files of dir sorted by their names' time, process id and
 * counter. A missing directory is an empty list. The caller owns *out. */
static vigil_err spool_list(const char *dir, struct spool_entry **out, size_t *count)
{
    DIR *d = opendir(dir);
    struct spool_entry *list = NULL;
    struct spool_entry e;
    struct dirent *de;
    size_t n = 0;
    size_t cap = 0;
    vigil_err rc = VIGIL_OK;

    *out = NULL;
    *count = 0;
    if (d == NULL) {
        if (errno == ENOENT)
            return VIGIL_OK;
        log_error("audit spool: failed to read directory %s: %s", dir, strerror(errno));
        return VIGIL_ERR_IO;
    }
    while (rc == VIGIL_OK && (de = readdir(d)) != NULL) {
        if (spool_name_parse(de->d_name, &e))
            rc = entries_push(&list, &n, &cap, &e);
    }
    closedir(d);
    if (rc != VIGIL_OK) {
        vigil_free(list);
        return rc;
    }
    if (n > 1)
        qsort(list, n, sizeof *list, entry_compare);
    *out = list;
    *count = n;
    return VIGIL_OK;
}

/* Reads a spool file of at most AUDIT_SPOOL_MAX_FILE bytes. On failure
 * writes why into reason. The caller owns *out (json_decref). */
static vigil_err spool_read(const char *path, json_t **out, char *reason, size_t cap)
{
    char *buf = vigil_malloc(AUDIT_SPOOL_MAX_FILE + 1);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t len = -1;
    json_error_t jerr;

    if (buf == NULL) {
        if (fd >= 0)
            close(fd);
        return VIGIL_ERR_NOMEM;
    }
    if (fd >= 0) {
        len = read(fd, buf, AUDIT_SPOOL_MAX_FILE + 1);
        close(fd);
    }
    *out = NULL;
    if (len < 0)
        snprintf(reason, cap, "read failed: %s", strerror(errno));
    else if (len > AUDIT_SPOOL_MAX_FILE)
        snprintf(reason, cap, "larger than %d bytes", AUDIT_SPOOL_MAX_FILE);
    else if ((*out = json_loadb(buf, (size_t)len, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        snprintf(reason, cap, "invalid JSON at line %d: %s", jerr.line, jerr.text);
    vigil_free(buf);
    return *out != NULL ? VIGIL_OK : VIGIL_ERR_INVALID;
}

static bool text_valid(const char *s, size_t max)
{
    size_t len = s != NULL ? strlen(s) : 0;

    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Checks a parsed spool file and builds the record's fields from it. On
 * failure writes why into reason. The caller owns *fields_out. */
static vigil_err spool_fields(json_t *doc, const char *name, const char **type_out,
                              json_t **fields_out, char *reason, size_t cap)
{
    const char *type = json_string_value(json_object_get(doc, "type"));
    json_t *fields = json_object_get(doc, "fields");
    const char *requested = json_string_value(json_object_get(doc, "requested_at"));
    const char *user = json_string_value(json_object_get(doc, "user"));
    json_t *out;

    if (!json_is_object(doc) || json_object_size(doc) != 4 || type == NULL ||
        requested == NULL || user == NULL || !json_is_object(fields)) {
        snprintf(reason, cap, "expected an object of exactly type, fields, requested_at and user");
        return VIGIL_ERR_INVALID;
    }
    if (!audit_admin_type_valid(type)) {
        snprintf(reason, cap, "type is not an administrative record type");
        return VIGIL_ERR_INVALID;
    }
    if (!audit_admin_fields_valid(fields)) {
        snprintf(reason, cap, "fields contain a reserved or secret member name");
        return VIGIL_ERR_INVALID;
    }
    if (!text_valid(requested, 40) || !text_valid(user, AUDIT_USER_MAX)) {
        snprintf(reason, cap, "requested_at or user is empty, too long or has control characters");
        return VIGIL_ERR_INVALID;
    }
    out = json_deep_copy(fields);
    if (out == NULL || json_object_set_new(out, "user", json_string(user)) != 0 ||
        json_object_set_new(out, "requested_at", json_string(requested)) != 0 ||
        json_object_set_new(out, "spool_file", json_string(name)) != 0) {
        json_decref(out);
        return VIGIL_ERR_NOMEM;
    }
    *type_out = type;
    *fields_out = out;
    return VIGIL_OK;
}

/* Moves an unusable spool file to spool/rejected/ and records that. */
static vigil_err spool_reject(struct audit_log *log, const char *dir, const char *name,
                              const char *reason)
{
    char rejected[SPOOL_PATH_MAX];
    char from[SPOOL_PATH_MAX];
    char to[SPOOL_PATH_MAX];
    json_t *fields;
    vigil_err rc;

    snprintf(rejected, sizeof rejected, "%s/" REJECTED_DIR, dir);
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s/%s", rejected, name);
    rc = dir_make(rejected);
    if (rc != VIGIL_OK)
        return rc;
    if (rename(from, to) != 0) {
        log_error("audit spool: failed to move %s to %s: %s", from, rejected, strerror(errno));
        return VIGIL_ERR_IO;
    }
    dir_fsync(rejected);
    dir_fsync(dir);
    log_warn("audit spool: rejected %s (%s); it was moved to %s", name, reason, rejected);
    fields = json_pack("{s:s, s:s}", "spool_file", name, "reason", reason);
    if (fields == NULL)
        return VIGIL_ERR_NOMEM;
    rc = audit_append(log, "spool_rejected", fields);
    json_decref(fields);
    return rc;
}

/* Appends one spool file and deletes it. A file that cannot become a
 * record is rejected; a failed append keeps the file for the next drain. */
static vigil_err spool_take(struct audit_log *log, const char *dir, const char *name)
{
    char path[SPOOL_PATH_MAX];
    char reason[256] = "";
    const char *type = NULL;
    json_t *fields = NULL;
    json_t *doc = NULL;
    vigil_err rc;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    rc = spool_read(path, &doc, reason, sizeof reason);
    if (rc == VIGIL_OK)
        rc = spool_fields(doc, name, &type, &fields, reason, sizeof reason);
    if (rc == VIGIL_OK) {
        rc = audit_append(log, type, fields);
        if (rc == VIGIL_ERR_INVALID || rc == VIGIL_ERR_LIMIT)
            snprintf(reason, sizeof reason, "not a valid audit record: %s", vigil_strerror(rc));
    }
    if (rc == VIGIL_ERR_INVALID || rc == VIGIL_ERR_LIMIT)
        rc = spool_reject(log, dir, name, reason);
    else if (rc == VIGIL_OK && unlink(path) != 0) {
        log_error("audit spool: %s was appended but deleting it failed: %s", path,
                  strerror(errno));
        rc = VIGIL_ERR_IO;
    }
    json_decref(fields);
    json_decref(doc);
    return rc;
}

vigil_err audit_spool_drain(struct audit_log *log, const char *data_dir, size_t max, size_t *n)
{
    char dir[SPOOL_PATH_MAX];
    struct spool_entry *list = NULL;
    size_t count = 0;
    size_t done = 0;
    vigil_err rc;

    if (n != NULL)
        *n = 0;
    spool_dir_path(data_dir, dir);
    rc = spool_list(dir, &list, &count);
    if (rc != VIGIL_OK || count == 0)
        return rc;
    /* A file is deleted after its append, so appending while it cannot be
     * deleted would append it again at every drain. */
    if (access(dir, W_OK | X_OK) != 0) {
        log_error("audit spool: %s is not writable (%s); %zu spooled record(s) wait", dir,
                  strerror(errno), count);
        vigil_free(list);
        return VIGIL_ERR_IO;
    }
    for (size_t i = 0; i < count && (max == 0 || done < max) && rc == VIGIL_OK; i++) {
        rc = spool_take(log, dir, list[i].name);
        if (rc == VIGIL_OK)
            done++;
    }
    if (done > 0 && dir_fsync(dir) != VIGIL_OK)
        log_warn("audit spool: fsync of directory %s failed: %s", dir, strerror(errno));
    if (done > 0)
        log_info("audit spool: appended %zu spooled record(s) from %s", done, dir);
    /* Each I/O failure below is logged where it happens, and a failed
     * append once per run of them, so a full disk does not log here at
     * every drain. */
    if (rc != VIGIL_OK && rc != VIGIL_ERR_IO)
        log_error("audit spool: draining %s stopped at %s: %s", dir, list[done].name,
                  vigil_strerror(rc));
    vigil_free(list);
    if (n != NULL)
        *n = done;
    return rc;
}
