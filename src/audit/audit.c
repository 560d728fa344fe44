/* Audit log writer: appends hash-chained records to rotating segments and
 * signs checkpoints, from any thread. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit_internal.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/time.h"

#define DEFAULT_SEGMENT_MAX (64ull * 1024 * 1024)
#define DEFAULT_CHECKPOINT_EVERY 1000
#define DEFAULT_CHECKPOINT_INTERVAL_MS 60000

struct audit_log {
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* signalled by audit_close to stop the timer */
    pthread_t timer;
    bool timer_running;
    bool stopping;
    struct audit_opts opts;
    char *dir;                  /* owned */
    int lock_fd;
    int seg_fd;
    uint32_t seg_index;
    uint64_t seg_size;
    bool rotate_next;           /* the current segment ends in a torn line */
    bool write_failing;         /* set from a failed write to the next one that works */
    uint64_t records_lost;      /* records not written since writing began to fail */
    uint64_t torn_lost;         /* records of those cut short in the file as a torn line */
    uint64_t fsize_noted;       /* the file size limit last logged as ending segments */
    bool unsynced;              /* records written but not yet fdatasync()ed */
    uint64_t synced_seq;        /* of the last record known durable */
    bool sync_failing;          /* set from a failed fdatasync() to the next one that works */
    uint64_t syncs_failed;      /* fdatasync() calls failed since syncing began to fail */
    uint64_t sync_fail_from;    /* first seq that may not be durable since syncing began to fail */
    uint64_t sync_fail_upto;    /* last seq written before the latest failed fdatasync() */
    uint64_t seq;               /* of the last record written, 0 when empty */
    char last_hash[AUDIT_HASH_HEX];
    uint64_t unsigned_count;    /* records after the last checkpoint */
    bool last_is_final;         /* the last record is a final checkpoint */
    uint64_t last_checkpoint_ms;
    EVP_PKEY *key;              /* owned */
    char key_id[AUDIT_KEY_ID];
};

/* The last complete record found when the log is opened. */
struct tail_state {
    uint64_t seq;
    char hash[AUDIT_HASH_HEX];
    uint64_t unsigned_count;
    bool last_is_final;
    bool torn;                  /* the last segment ends in a torn line */
    bool found;
};

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static vigil_err dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int ok;

    if (fd < 0)
        return VIGIL_ERR_IO;
    ok = fsync(fd);
    close(fd);
    return ok == 0 ? VIGIL_OK : VIGIL_ERR_IO;
}

static void segment_path(const struct audit_log *log, uint32_t index, char *out, size_t cap)
{
    char name[AUDIT_SEGMENT_NAME_MAX];

    audit_segment_name(index, name);
    path_join(out, cap, log->dir, name);
}

/* Logs the first failed fdatasync() of a run with err, the path and the
 * first record that may not be durable, and counts every failure, so a
 * disk that keeps failing costs one line instead of one at each sync. */
static void sync_failed(struct audit_log *log, int err)
{
    char path[4096];

    log->syncs_failed++;
    log->sync_fail_upto = log->seq;
    if (log->sync_failing)
        return;
    log->sync_failing = true;
    log->sync_fail_from = log->synced_seq + 1;
    segment_path(log, log->seg_index, path, sizeof path);
    log_error("audit: fdatasync of %s failed: %s; records from seq %" PRIu64 " may not survive "
              "a crash, and failed syncs are counted until one works again",
              path, strerror(err), log->sync_fail_from);
}

/* Records that every record written is durable, and logs the end of a run
 * of failed fdatasync() calls with their count. A sync that works does not
 * show that the records of the failed ones are durable, so the line names
 * them. */
static void sync_works(struct audit_log *log)
{
    char path[4096];

    log->synced_seq = log->seq;
    if (!log->sync_failing)
        return;
    segment_path(log, log->seg_index, path, sizeof path);
    log_warn("audit: fdatasync of %s works again; syncs failed: %" PRIu64 "; records from seq "
             "%" PRIu64 " to %" PRIu64 " may not survive a crash",
             path, log->syncs_failed, log->sync_fail_from, log->sync_fail_upto);
    log->sync_failing = false;
    log->syncs_failed = 0;
}

/* Makes segment index the one appended to, creating it when missing. On
 * failure the current segment stays and errno is set. */
static vigil_err segment_open(struct audit_log *log, uint32_t index)
{
    char path[4096];
    struct stat st;
    int fd, err;

    segment_path(log, index, path, sizeof path);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || fstat(fd, &st) != 0) {
        err = errno;
        if (fd >= 0)
            close(fd);
        errno = err;
        return VIGIL_ERR_IO;
    }
    if (log->seg_fd >= 0) {
        /* Deferred records of the segment being left become durable now;
         * later syncs only reach the new segment. */
        if (log->unsynced && fdatasync(log->seg_fd) != 0)
            sync_failed(log, errno);
        else if (log->unsynced)
            sync_works(log);
        log->unsynced = false;
        close(log->seg_fd);
    }
    log->seg_fd = fd;
    log->seg_index = index;
    log->seg_size = (uint64_t)st.st_size;
    log->rotate_next = false;
    if (st.st_size == 0 && dir_sync(log->dir) != VIGIL_OK)
        log_warn("audit: fsync of directory %s failed: %s", log->dir, strerror(errno));
    return VIGIL_OK;
}

/* Reads the fields of one complete line that the writer continues from. */
static vigil_err tail_take_line(struct tail_state *t, const char *line, size_t len,
                                const char *name)
{
    json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *seq = json_object_get(rec, "seq");
    const char *hash = json_string_value(json_object_get(rec, "hash"));
    const char *type = json_string_value(json_object_get(rec, "type"));

    if (!json_is_integer(seq) || json_integer_value(seq) < 1 || hash == NULL ||
        !audit_hash_hex_valid(hash) || type == NULL) {
        log_error("audit: a record in %s is invalid; run 'vigil audit verify' on the log", name);
        json_decref(rec);
        return VIGIL_ERR_INVALID;
    }
    t->seq = (uint64_t)json_integer_value(seq);
    memcpy(t->hash, hash, AUDIT_HASH_HEX);
    t->found = true;
    if (strcmp(type, "checkpoint") == 0) {
        t->unsigned_count = 0;
        t->last_is_final = json_is_true(json_object_get(rec, "final"));
    } else {
        t->unsigned_count++;
        t->last_is_final = false;
    }
    json_decref(rec);
    return VIGIL_OK;
}

/* Scans one segment for its last complete record. */
static vigil_err tail_scan(const char *dir, uint32_t index, struct tail_state *t)
{
    char name[AUDIT_SEGMENT_NAME_MAX];
    char path[4096];
    char *line = vigil_malloc(AUDIT_MAX_LINE);
    size_t len;
    enum audit_line kind;
    FILE *f;
    vigil_err rc = VIGIL_OK;

    audit_segment_name(index, name);
    path_join(path, sizeof path, dir, name);
    if (line == NULL)
        return VIGIL_ERR_NOMEM;
    f = fopen(path, "r");
    if (f == NULL) {
        vigil_free(line);
        return VIGIL_ERR_IO;
    }
    t->torn = false;
    while (rc == VIGIL_OK && (kind = audit_line_read(f, line, AUDIT_MAX_LINE, &len)) !=
                                 AUDIT_LINE_EOF) {
        if (kind == AUDIT_LINE_TORN)
            t->torn = true;
        else if (kind == AUDIT_LINE_LONG)
            rc = VIGIL_ERR_INVALID;
        else
            rc = tail_take_line(t, line, len, name);
    }
    fclose(f);
    vigil_free(line);
    return rc;
}

/* Finds where the chain continues: the last complete record of the newest
 * segment that has one. */
static vigil_err tail_find(const char *dir, const uint32_t *segs, size_t count,
                           struct tail_state *t)
{
    vigil_err rc;
    bool newest_torn = false;

    for (size_t i = count; i-- > 0;) {
        rc = tail_scan(dir, segs[i], t);
        if (rc != VIGIL_OK)
            return rc;
        if (i == count - 1)
            newest_torn = t->torn;
        if (t->found)
            break;
    }
    t->torn = newest_torn;
    return VIGIL_OK;
}

static vigil_err log_lock(struct audit_log *log)
{
    char path[4096];

    path_join(path, sizeof path, log->dir, "lock");
    log->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (log->lock_fd < 0) {
        log_error("audit: cannot open %s: %s", path, strerror(errno));
        return VIGIL_ERR_IO;
    }
    if (flock(log->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("audit: %s is open in another process", log->dir);
        return VIGIL_ERR_EXISTS;
    }
    return VIGIL_OK;
}

/* Opens the segment to append to at start, logging a failure, which
 * stops audit_open. */
static vigil_err segment_open_first(struct audit_log *log, uint32_t index)
{
    char path[4096];

    if (segment_open(log, index) == VIGIL_OK)
        return VIGIL_OK;
    segment_path(log, index, path, sizeof path);
    log_error("audit: cannot open %s: %s", path, strerror(errno));
    return VIGIL_ERR_IO;
}

/* Picks the segment to append to, continuing the chain from the tail. */
static vigil_err log_resume(struct audit_log *log, const uint32_t *segs, size_t count)
{
    struct tail_state t = { .hash = AUDIT_ZERO_HASH };
    char name[AUDIT_SEGMENT_NAME_MAX];
    vigil_err rc;

    if (count == 0)
        return segment_open_first(log, 1);
    rc = tail_find(log->dir, segs, count, &t);
    if (rc != VIGIL_OK)
        return rc;
    log->seq = t.seq;
    log->synced_seq = t.seq;
    memcpy(log->last_hash, t.hash, AUDIT_HASH_HEX);
    log->unsigned_count = t.unsigned_count;
    log->last_is_final = t.last_is_final;
    if (!t.torn)
        return segment_open_first(log, segs[count - 1]);
    /* The torn line is evidence of a crash during a write. Truncating it
     * would change the file silently, and appending after it would glue
     * the next record to it, so it stays and the chain continues in a new
     * segment from the last complete record. */
    audit_segment_name(segs[count - 1], name);
    log_warn("audit: %s ends in a torn line (crash during a write?); it is kept and the log "
             "continues after seq %" PRIu64 " in a new segment",
             name, t.seq);
    return segment_open_first(log, segs[count - 1] + 1);
}

static void *timer_main(void *arg);

static vigil_err log_start(struct audit_log *log)
{
    uint32_t *segs = NULL;
    size_t count = 0;
    vigil_err rc;

    if (mkdir(log->dir, 0700) != 0 && errno != EEXIST) {
        log_error("audit: cannot create %s: %s", log->dir, strerror(errno));
        return VIGIL_ERR_IO;
    }
    rc = log_lock(log);
    if (rc != VIGIL_OK)
        return rc;
    rc = audit_segments_list(log->dir, &segs, &count);
    if (rc != VIGIL_OK)
        return rc;
    rc = audit_key_load(log->dir, count == 0, &log->key);
    if (rc == VIGIL_ERR_NOT_FOUND)
        log_error("audit: %s/" AUDIT_KEY_FILE " is missing but the log has segments; restore "
                  "the key, or move the directory away to start a new log",
                  log->dir);
    if (rc == VIGIL_OK)
        rc = audit_key_id(log->key, log->key_id);
    if (rc == VIGIL_OK)
        rc = log_resume(log, segs, count);
    vigil_free(segs);
    return rc;
}

static void opts_apply(struct audit_opts *o, const struct audit_opts *requested)
{
    if (requested != NULL)
        *o = *requested;
    if (o->segment_max_bytes == 0)
        o->segment_max_bytes = DEFAULT_SEGMENT_MAX;
    if (o->checkpoint_every == 0)
        o->checkpoint_every = DEFAULT_CHECKPOINT_EVERY;
    if (o->checkpoint_interval_ms == 0)
        o->checkpoint_interval_ms = DEFAULT_CHECKPOINT_INTERVAL_MS;
}

static vigil_err timer_start(struct audit_log *log)
{
    pthread_condattr_t attr;

    if (pthread_condattr_init(&attr) != 0)
        return VIGIL_ERR_NOMEM;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&log->wake, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        return VIGIL_ERR_NOMEM;
    }
    pthread_condattr_destroy(&attr);
    if (log->opts.no_timer)
        return VIGIL_OK;
    if (pthread_create(&log->timer, NULL, timer_main, log) != 0)
        return VIGIL_ERR_NOMEM;
    log->timer_running = true;
    return VIGIL_OK;
}

static void log_free(struct audit_log *log)
{
    if (log->seg_fd >= 0)
        close(log->seg_fd);
    if (log->lock_fd >= 0)
        close(log->lock_fd);
    EVP_PKEY_free(log->key);
    pthread_mutex_destroy(&log->lock);
    vigil_free(log->dir);
    vigil_free(log);
}

vigil_err audit_open_dir(const char *audit_dir, const struct audit_opts *opts,
                         struct audit_log **out)
{
    struct audit_log *log = vigil_calloc(1, sizeof *log);
    vigil_err rc;

    if (log == NULL)
        return VIGIL_ERR_NOMEM;
    log->seg_fd = -1;
    log->lock_fd = -1;
    memcpy(log->last_hash, AUDIT_ZERO_HASH, AUDIT_HASH_HEX);
    log->last_checkpoint_ms = vigil_time_mono_ms();
    opts_apply(&log->opts, opts);
    pthread_mutex_init(&log->lock, NULL);
    log->dir = vigil_strdup(audit_dir);
    rc = log->dir == NULL ? VIGIL_ERR_NOMEM : log_start(log);
    if (rc == VIGIL_OK)
        rc = timer_start(log);
    if (rc != VIGIL_OK) {
        log_free(log);
        return rc;
    }
    log_info("audit: %s open at seq %" PRIu64 ", segment %" PRIu32 ", key %s", audit_dir,
             log->seq, log->seg_index, log->key_id);
    *out = log;
    return VIGIL_OK;
}

vigil_err audit_open(const char *data_dir, const struct audit_opts *opts, struct audit_log **out)
{
    char path[4096];

    path_join(path, sizeof path, data_dir, "audit");
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        log_error("audit: cannot create %s: %s", data_dir, strerror(errno));
        return VIGIL_ERR_IO;
    }
    return audit_open_dir(path, opts, out);
}

static vigil_err write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO; /* write() returned 0 and set no error code */
        if (n <= 0)
            return VIGIL_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return VIGIL_OK;
}

/* The soft file size limit (RLIMIT_FSIZE) in bytes, UINT64_MAX without one. */
static uint64_t file_size_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    return (uint64_t)rl.rlim_cur;
}

/* Serialises rec (with its hash) into a new line ending in '\n'. */
static vigil_err record_serialise(json_t *rec, char **line, size_t *len)
{
    char stack[AUDIT_DUMP_STACK];
    size_t n = 0;
    char *text = audit_dump(rec, stack, sizeof stack, &n);
    char *buf;

    if (text == NULL)
        return VIGIL_ERR_INVALID;
    if (n > AUDIT_MAX_RECORD) {
        if (text != stack)
            vigil_free(text);
        return VIGIL_ERR_LIMIT;
    }
    buf = vigil_malloc(n + 1);
    if (buf != NULL) {
        memcpy(buf, text, n);
        buf[n] = '\n';
    }
    if (text != stack)
        vigil_free(text);
    if (buf == NULL)
        return VIGIL_ERR_NOMEM;
    *line = buf;
    *len = n + 1;
    return VIGIL_OK;
}

/* Builds the record for seq log->seq + 1 with its hash. */
static vigil_err record_build(struct audit_log *log, const char *type, json_t *fields,
                              json_t **out, char hash[AUDIT_HASH_HEX])
{
    char ts[40];
    json_t *rec = json_object();
    vigil_err rc;

    if (rec == NULL)
        return VIGIL_ERR_NOMEM;
    vigil_time_format_rfc3339(vigil_time_now_us(), ts, sizeof ts);
    if ((fields != NULL && json_object_update(rec, fields) != 0) ||
        json_object_set_new(rec, "seq", json_integer((json_int_t)(log->seq + 1))) != 0 ||
        json_object_set_new(rec, "ts", json_string(ts)) != 0 ||
        json_object_set_new(rec, "type", json_string(type)) != 0 ||
        json_object_set_new(rec, "prev", json_string(log->last_hash)) != 0) {
        json_decref(rec);
        return VIGIL_ERR_NOMEM;
    }
    rc = audit_canonical_hash(rec, hash);
    if (rc == VIGIL_OK && json_object_set_new(rec, "hash", json_string(hash)) != 0)
        rc = VIGIL_ERR_NOMEM;
    if (rc != VIGIL_OK) {
        json_decref(rec);
        return rc;
    }
    *out = rec;
    return VIGIL_OK;
}

/* Logs the first failed write of a run with err and path, and whether part
 * of the line stayed in the file (torn). The caller counts every failure,
 * and write_works() logs the count when the run ends. */
static void write_failed(struct audit_log *log, const char *what, const char *path, int err,
                         bool torn)
{
    char next[AUDIT_SEGMENT_NAME_MAX];

    if (log->write_failing)
        return;
    log->write_failing = true;
    audit_segment_name(log->seg_index + 1, next);
    log_error("audit: %s %s failed: %s%s%s; records that cannot be written are counted until "
              "writing works again",
              what, path, strerror(err),
              torn ? "; part of the record stays in it as a torn line and the log continues in "
                     : "",
              torn ? next : "");
}

/* Logs the end of a run of failed writes, with what it lost. */
static void write_works(struct audit_log *log)
{
    char path[4096];

    if (!log->write_failing)
        return;
    segment_path(log, log->seg_index, path, sizeof path);
    log_warn("audit: writing to %s works again; records not written: %" PRIu64
             ", of them cut short as a torn line: %" PRIu64,
             path, log->records_lost, log->torn_lost);
    log->write_failing = false;
    log->records_lost = 0;
    log->torn_lost = 0;
}

/* Logs once for each file size limit that ends segments before their
 * configured size. */
static void fsize_note(struct audit_log *log, uint64_t fsize)
{
    if (log->fsize_noted == fsize)
        return;
    log->fsize_noted = fsize;
    log_warn("audit: the file size limit (RLIMIT_FSIZE) of %" PRIu64 " bytes is below the "
             "segment size of %" PRIu64 " bytes; segments end at the limit",
             fsize, log->opts.segment_max_bytes);
}

/* Writes one line, moving to a new segment first when the current one is
 * full or ends in a torn line. Called with the lock held.
 *
 * A failed write that left nothing in the file keeps the segment, so a
 * full disk costs no new file per record. The log goes on in the same
 * segment once there is room. A failed write that left part of the line
 * is handled like a crash, and *torn is set. The torn line stays as
 * evidence and the next record starts a new segment, because a record
 * appended to the fragment would make one invalid line of both.
 *
 * A write past the file size limit (RLIMIT_FSIZE) would stop at the limit
 * and leave such a fragment in every new segment, so the limit ends a
 * segment like its size does. A line longer than the limit fails without
 * writing a byte, with the EFBIG the kernel gives, as on a full disk. */
static vigil_err line_write(struct audit_log *log, const char *line, size_t len, bool *torn)
{
    uint64_t fsize = file_size_limit();
    bool over_size = log->seg_size + len > log->opts.segment_max_bytes;
    bool over_fsize = log->seg_size + len > fsize && len <= fsize;
    char path[4096];
    struct stat st;
    int err;

    *torn = false;
    if (log->rotate_next || (log->seg_size > 0 && (over_size || over_fsize))) {
        if (segment_open(log, log->seg_index + 1) != VIGIL_OK) {
            err = errno;
            segment_path(log, log->seg_index + 1, path, sizeof path);
            write_failed(log, "opening", path, err, false);
            return VIGIL_ERR_IO;
        }
        if (over_fsize && !over_size)
            fsize_note(log, fsize);
    }
    if (log->seg_size + len > fsize) {
        segment_path(log, log->seg_index, path, sizeof path);
        write_failed(log, "write to", path, EFBIG, false);
        return VIGIL_ERR_IO;
    }
    if (write_all(log->seg_fd, line, len) == VIGIL_OK) {
        log->seg_size += len;
        write_works(log);
        return VIGIL_OK;
    }
    err = errno;
    /* When the size cannot be read, assume the worst: a torn line. */
    *torn = fstat(log->seg_fd, &st) != 0 || (uint64_t)st.st_size != log->seg_size;
    if (*torn)
        log->rotate_next = true;
    segment_path(log, log->seg_index, path, sizeof path);
    write_failed(log, "write to", path, err, *torn);
    return VIGIL_ERR_IO;
}

/* Makes every record written so far durable. Called with the lock held. */
static vigil_err sync_locked(struct audit_log *log)
{
    if (!log->unsynced)
        return VIGIL_OK;
    if (fdatasync(log->seg_fd) != 0) {
        /* The lines are complete in the file but may not be durable. */
        sync_failed(log, errno);
        return VIGIL_ERR_IO;
    }
    sync_works(log);
    log->unsynced = false;
    return VIGIL_OK;
}

/* Appends one record of any type, durable before it returns when sync is
 * true and at the next sync_locked() otherwise. Called with the lock held. */
static vigil_err record_append(struct audit_log *log, const char *type, json_t *fields, bool sync)
{
    json_t *rec = NULL;
    char hash[AUDIT_HASH_HEX];
    char *line = NULL;
    size_t len = 0;
    bool torn = false;
    vigil_err rc;

    rc = record_build(log, type, fields, &rec, hash);
    if (rc == VIGIL_OK)
        rc = record_serialise(rec, &line, &len);
    if (rc == VIGIL_OK) {
        rc = line_write(log, line, len, &torn);
        /* A failed checkpoint is written again later, so only records,
         * which the caller retries or loses, are counted. */
        if (rc == VIGIL_ERR_IO && strcmp(type, "checkpoint") != 0) {
            log->records_lost++;
            log->torn_lost += torn;
        }
    }
    if (rc != VIGIL_OK)
        goto out;
    log->seq++;
    memcpy(log->last_hash, hash, AUDIT_HASH_HEX);
    log->unsynced = true;
    if (sync)
        rc = sync_locked(log);
out:
    vigil_free(line);
    json_decref(rec);
    return rc;
}

/* Writes a checkpoint over everything up to the last record. Called with
 * the lock held. */
static vigil_err checkpoint_locked(struct audit_log *log, bool final)
{
    char sig[AUDIT_SIG_B64];
    json_t *fields;
    vigil_err rc;

    if (log->seq == 0 || (log->unsigned_count == 0 && (!final || log->last_is_final)))
        return VIGIL_OK;
    rc = audit_sign(log->key, log->seq, log->last_hash, sig);
    if (rc != VIGIL_OK)
        return rc;
    /* "O*" leaves "final" out of the object when the value is NULL. */
    fields = json_pack("{sIsssssssO*}", "upto_seq", (json_int_t)log->seq, "upto_hash",
                       log->last_hash, "sig", sig, "key_id", log->key_id, "final",
                       final ? json_true() : NULL);
    if (fields == NULL)
        return VIGIL_ERR_NOMEM;
    rc = record_append(log, "checkpoint", fields, true);
    json_decref(fields);
    if (rc == VIGIL_OK) {
        log->unsigned_count = 0;
        log->last_is_final = final;
        log->last_checkpoint_ms = vigil_time_mono_ms();
    }
    return rc;
}

static bool fields_valid(json_t *fields)
{
    static const char *const reserved[] = { "seq", "ts", "type", "prev", "hash" };

    if (fields == NULL)
        return true;
    if (!json_is_object(fields))
        return false;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (json_object_get(fields, reserved[i]) != NULL)
            return false;
    }
    return true;
}

static vigil_err append(struct audit_log *log, const char *type, json_t *fields, bool sync)
{
    uint64_t before;
    vigil_err rc;

    if (log == NULL || type == NULL || !audit_type_valid(type) ||
        strcmp(type, "checkpoint") == 0 || !fields_valid(fields))
        return VIGIL_ERR_INVALID;
    pthread_mutex_lock(&log->lock);
    if (log->stopping) {
        rc = VIGIL_ERR_CLOSED;
        goto out;
    }
    before = log->seq;
    rc = record_append(log, type, fields, sync);
    if (log->seq != before) {
        log->unsigned_count++;
        log->last_is_final = false;
    }
    if (rc == VIGIL_OK && log->unsigned_count >= log->opts.checkpoint_every) {
        vigil_err crc = checkpoint_locked(log, false);

        /* A failed write or sync has been logged where it failed. */
        if (crc != VIGIL_OK && crc != VIGIL_ERR_IO)
            log_error("audit: checkpoint after seq %" PRIu64 " failed: %s", log->seq,
                      vigil_strerror(crc));
    }
out:
    pthread_mutex_unlock(&log->lock);
    return rc;
}

vigil_err audit_append(struct audit_log *log, const char *type, json_t *fields)
{
    return append(log, type, fields, true);
}

vigil_err audit_append_deferred(struct audit_log *log, const char *type, json_t *fields)
{
    return append(log, type, fields, false);
}

vigil_err audit_sync(struct audit_log *log)
{
    vigil_err rc;

    if (log == NULL)
        return VIGIL_OK;
    pthread_mutex_lock(&log->lock);
    rc = sync_locked(log);
    pthread_mutex_unlock(&log->lock);
    return rc;
}

vigil_err audit_checkpoint(struct audit_log *log)
{
    vigil_err rc;

    pthread_mutex_lock(&log->lock);
    rc = log->stopping ? VIGIL_ERR_CLOSED : checkpoint_locked(log, false);
    pthread_mutex_unlock(&log->lock);
    return rc;
}

uint64_t audit_last_seq(struct audit_log *log)
{
    uint64_t seq;

    pthread_mutex_lock(&log->lock);
    seq = log->seq;
    pthread_mutex_unlock(&log->lock);
    return seq;
}

/* Signs unsigned records once checkpoint_interval_ms has passed since the
 * last checkpoint. */
static void *timer_main(void *arg)
{
    struct audit_log *log = arg;
    uint64_t interval = log->opts.checkpoint_interval_ms;

    pthread_mutex_lock(&log->lock);
    while (!log->stopping) {
        uint64_t due = log->last_checkpoint_ms + interval;
        uint64_t now = vigil_time_mono_ms();
        struct timespec ts;

        if (now >= due) {
            vigil_err rc = log->unsigned_count > 0 ? checkpoint_locked(log, false) : VIGIL_OK;

            if (rc != VIGIL_OK && rc != VIGIL_ERR_IO)
                log_error("audit: timed checkpoint failed: %s", vigil_strerror(rc));
            log->last_checkpoint_ms = now;
            continue;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts = vigil_timespec_add_us(ts, (due - now) * 1000);
        pthread_cond_timedwait(&log->wake, &log->lock, &ts);
    }
    pthread_mutex_unlock(&log->lock);
    return NULL;
}

vigil_err audit_close(struct audit_log *log)
{
    vigil_err rc;

    if (log == NULL)
        return VIGIL_OK;
    pthread_mutex_lock(&log->lock);
    rc = checkpoint_locked(log, true);
    /* A failed write or sync has been logged where it failed, and a run of
     * failed writes is logged below with its count. */
    if (rc != VIGIL_OK && rc != VIGIL_ERR_IO)
        log_error("audit: final checkpoint failed: %s", vigil_strerror(rc));
    if (sync_locked(log) != VIGIL_OK && rc == VIGIL_OK)
        rc = VIGIL_ERR_IO;
    if (log->write_failing)
        log_error("audit: closing while writes fail; records not written: %" PRIu64
                  ", of them cut short as a torn line: %" PRIu64,
                  log->records_lost, log->torn_lost);
    if (log->sync_failing)
        log_error("audit: closing while fdatasync fails; syncs failed: %" PRIu64
                  "; records from seq %" PRIu64 " to %" PRIu64 " may not survive a crash",
                  log->syncs_failed, log->sync_fail_from, log->sync_fail_upto);
    log->stopping = true;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    if (log->timer_running)
        pthread_join(log->timer, NULL);
    pthread_cond_destroy(&log->wake);
    log_info("audit: %s closed at seq %" PRIu64, log->dir, log->seq);
    log_free(log);
    return rc;
}
