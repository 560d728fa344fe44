/* Records administrative commands in the audit log: directly when the log
 * is free, through the spool while the hub holds it. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_spool.h"
#include "core/log.h"
#include "core/time.h"

#define LOCK_PATH_MAX 4096
#define OPEN_RETRY_MS 50

bool audit_admin_type_valid(const char *type)
{
    static const char *const types[] = {
        "device_added",   "device_removed",   "cert_issued",
        "cert_rotated",   "cert_revoked",     "acl_rule_added",
        "acl_rule_removed", "alert_acknowledged", "alert_resolved",
    };

    if (type == NULL)
        return false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* A member name that could carry a credential. Administrative records
 * name devices, serials and rules; they never need such a member. */
static bool name_secret(const char *name)
{
    static const char *const parts[] = {"password", "psk", "secret", "private"};

    if (strcmp(name, "key") == 0)
        return true;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if (strstr(name, parts[i]) != NULL)
            return true;
    return false;
}

bool audit_admin_fields_valid(json_t *fields)
{
    static const char *const reserved[] = {"seq",  "ts",           "type",      "prev",
                                           "hash", "requested_at", "user", "spool_file"};
    const char *name;
    json_t *value;

    if (!json_is_object(fields))
        return false;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (json_object_get(fields, reserved[i]) != NULL)
            return false;
    json_object_foreach(fields, name, value) {
        if (name_secret(name))
            return false;
    }
    return true;
}

void audit_admin_user(char out[AUDIT_USER_MAX + 1])
{
    struct passwd pw;
    struct passwd *found = NULL;
    char buf[4096];
    uid_t uid = geteuid();

    if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != NULL &&
        found->pw_name[0] != '\0' && strlen(found->pw_name) <= AUDIT_USER_MAX)
        snprintf(out, AUDIT_USER_MAX + 1, "%s", found->pw_name);
    else
        snprintf(out, AUDIT_USER_MAX + 1, "uid %lu", (unsigned long)uid);
}

/* Returns true when another process holds the flock of <data_dir>/audit/lock.
 * A missing or unreadable lock file counts as free: audit_open then reports
 * what is wrong. */
static bool log_held(const char *data_dir)
{
    char path[LOCK_PATH_MAX];
    bool held = false;
    int fd;

    snprintf(path, sizeof path, "%s/audit/lock", data_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        held = errno == EWOULDBLOCK;
    close(fd);
    return held;
}

/* Appends spooled records, then this one, to a log opened here. */
static vigil_err append_direct(struct audit_log *log, const char *data_dir, const char *type,
                               json_t *fields, const char *user, const char *requested_at)
{
    json_t *record = json_deep_copy(fields);
    vigil_err rc;

    if (record == NULL || json_object_set_new(record, "user", json_string(user)) != 0 ||
        json_object_set_new(record, "requested_at", json_string(requested_at)) != 0) {
        json_decref(record);
        return VIGIL_ERR_NOMEM;
    }
    /* A failed drain leaves the spool for the hub; this record still goes in. */
    audit_spool_drain(log, data_dir, 0, NULL);
    rc = audit_append(log, type, record);
    json_decref(record);
    return rc;
}

vigil_err audit_admin_record(const char *data_dir, const struct audit_opts *opts,
                             const char *type, json_t *fields, enum audit_admin_path *path)
{
    struct audit_opts local = {0};
    struct audit_log *log = NULL;
    char user[AUDIT_USER_MAX + 1];
    char requested_at[40];
    int64_t now_us = vigil_time_now_us();
    vigil_err rc = VIGIL_ERR_EXISTS;
    vigil_err crc;

    if (!audit_admin_type_valid(type) || !audit_admin_fields_valid(fields))
        return VIGIL_ERR_INVALID;
    if (opts != NULL)
        local = *opts;
    local.no_timer = true;
    audit_admin_user(user);
    vigil_time_format_rfc3339(now_us, requested_at, sizeof requested_at);
    if (!log_held(data_dir))
        rc = audit_open(data_dir, &local, &log);
    if (rc == VIGIL_ERR_EXISTS) {
        if (path != NULL)
            *path = AUDIT_ADMIN_SPOOLED;
        return audit_spool_write(data_dir, type, fields, user, now_us);
    }
    if (rc != VIGIL_OK)
        return rc;
    if (path != NULL)
        *path = AUDIT_ADMIN_APPENDED;
    rc = append_direct(log, data_dir, type, fields, user, requested_at);
    crc = audit_close(log);
    if (rc == VIGIL_OK && crc != VIGIL_OK)
        log_warn("audit: the record is appended but the final checkpoint failed: %s",
                 vigil_strerror(crc));
    return rc;
}

vigil_err audit_open_wait(const char *data_dir, const struct audit_opts *opts, uint32_t wait_ms,
                          struct audit_log **out)
{
    uint64_t deadline = vigil_time_mono_ms() + wait_ms;
    struct timespec pause = {0, OPEN_RETRY_MS * 1000000L};
    vigil_err rc;

    /* Probing the lock first keeps audit_open from logging an error for
     * each retry; a process can still take the lock between the probe and
     * the open, so EXISTS is retried too. */
    for (;;) {
        bool last = vigil_time_mono_ms() >= deadline;

        if (last || !log_held(data_dir)) {
            rc = audit_open(data_dir, opts, out);
            if (rc != VIGIL_ERR_EXISTS || last)
                return rc;
        }
        nanosleep(&pause, NULL);
    }
}
