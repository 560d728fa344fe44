/* `vigil device`: device certificates from the local CA in <data-dir>/pki
 * (issue on add, rotate, revoke, certs, and revocation on remove). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/acl.h"
#include "cli/admin_record.h"
#include "cli/cmd_device.h"
#include "core/alloc.h"

#define CSR_FILE_MAX 65536
#define DEFAULT_CERT_DAYS 365u
#define DEFAULT_OVERLAP_S (7u * 24 * 3600)
#define OVERLAP_MAX_S 7776000ul /* 90 days, as tls.rotation_overlap allows */

static void format_time(int64_t seconds, char *out, size_t cap)
{
    time_t t = (time_t)seconds;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)seconds);
}

static uint32_t cert_days(const struct vigil_config *cfg)
{
    return cfg->tls.device_cert_days != 0 ? cfg->tls.device_cert_days : DEFAULT_CERT_DAYS;
}

int device_record(const struct device_opts *o, const struct vigil_config *cfg, const char *type,
                  json_t *fields)
{
    char command[48];

    snprintf(command, sizeof command, "vigil device %s", o->name);
    return cli_admin_record(command, cfg->data_dir, cfg, type, fields);
}

/* Fields naming the certificate a job issued; a generated key stays out. */
static json_t *issued_fields(const struct device_cert_job *job)
{
    char until[32];

    format_time(job->info.not_after, until, sizeof until);
    return json_pack("{s:s, s:s, s:s, s:b}", "device", job->info.device, "serial",
                     job->info.serial, "not_after", until, "key_from_csr", job->csr != NULL);
}

int device_record_issued(const struct device_opts *o, const struct vigil_config *cfg,
                         const struct device_cert_job *job)
{
    return device_record(o, cfg, "cert_issued", issued_fields(job));
}

/* Reads --csr FILE into job->csr. */
static int read_csr(const struct device_opts *o, struct device_cert_job *job)
{
    FILE *f = fopen(o->csr, "rb");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "vigil device %s: failed to open CSR file '%s': %s\n", o->name, o->csr,
                strerror(errno));
        return 1;
    }
    job->csr = vigil_malloc(CSR_FILE_MAX);
    n = job->csr != NULL ? fread(job->csr, 1, CSR_FILE_MAX, f) : 0;
    fclose(f);
    if (job->csr == NULL) {
        fprintf(stderr, "vigil device %s: out of memory\n", o->name);
        return 1;
    }
    if (n == 0 || n == CSR_FILE_MAX) {
        fprintf(stderr, "vigil device %s: CSR file '%s' is empty or larger than %d bytes\n",
                o->name, o->csr, CSR_FILE_MAX - 1);
        return 1;
    }
    job->csr_len = n;
    return -1;
}

static int check_csr(const struct device_opts *o, const struct device_cert_job *job)
{
    char err[256];

    if (pki_csr_check(job->csr, job->csr_len, o->id, err, sizeof err) == VIGIL_OK)
        return -1;
    fprintf(stderr, "vigil device %s: rejected CSR '%s': %s\n", o->name, o->csr, err);
    return 1;
}

/* Creates the output directory (mode 0700) unless it exists. */
static int make_out_dir(const struct device_opts *o, const char *dir)
{
    struct stat st;

    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return -1;
    if (mkdir(dir, 0700) == 0)
        return -1;
    fprintf(stderr,
            "vigil device %s: failed to create output directory '%s': %s; check that its "
            "parent exists and is writable, or pass --out DIR\n",
            o->name, dir, strerror(errno));
    return 1;
}

static int set_paths(const struct device_opts *o, const struct vigil_config *cfg,
                     struct device_cert_job *job)
{
    int n;

    if (o->out != NULL)
        n = snprintf(job->out_dir, sizeof job->out_dir, "%s", o->out);
    else
        n = snprintf(job->out_dir, sizeof job->out_dir, "%s/provision", cfg->data_dir);
    if (n <= 0 || (size_t)n >= sizeof job->out_dir - DEVICE_ID_MAX - 8) {
        fprintf(stderr, "vigil device %s: output directory path is empty or too long\n",
                o->name);
        return 2;
    }
    snprintf(job->cert_path, sizeof job->cert_path, "%s/%s.crt", job->out_dir, o->id);
    if (o->csr == NULL)
        snprintf(job->key_path, sizeof job->key_path, "%s/%s.key", job->out_dir, o->id);
    return -1;
}

static int open_pki(const struct device_opts *o, const struct vigil_config *cfg,
                    struct device_db *db, struct pki **pki)
{
    vigil_err rc = pki_open(cfg->data_dir, db, pki);

    if (rc == VIGIL_OK)
        return -1;
    fprintf(stderr,
            "vigil device %s: failed to open the CA in %s/pki: %s; check that ca.crt and "
            "ca.key there are readable and belong together\n",
            o->name, cfg->data_dir, vigil_strerror(rc));
    return 1;
}

int device_cert_prepare(const struct device_opts *o, const struct vigil_config *cfg,
                        struct device_db *db, struct device_cert_job *job)
{
    int status = -1;

    memset(job, 0, sizeof *job);
    if (o->csr != NULL) {
        status = read_csr(o, job);
        if (status < 0)
            status = check_csr(o, job);
    }
    if (status < 0)
        status = set_paths(o, cfg, job);
    if (status < 0)
        status = make_out_dir(o, job->out_dir);
    if (status < 0)
        status = open_pki(o, cfg, db, &job->pki);
    if (status >= 0)
        device_cert_release(job);
    return status;
}

void device_cert_release(struct device_cert_job *job)
{
    pki_close(job->pki);
    vigil_free(job->csr);
    job->pki = NULL;
    job->csr = NULL;
}

/* Writes a file with exactly mode, replacing an older one. */
static int write_file(const struct device_opts *o, const char *path, const char *text,
                      mode_t mode)
{
    size_t len = strlen(text);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    int ok = fd >= 0 && fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len;

    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (ok)
        return -1;
    fprintf(stderr, "vigil device %s: failed to write '%s': %s\n", o->name, path,
            strerror(errno));
    return 1;
}

int device_cert_issue(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_cert_job *job, bool rotate, uint32_t overlap_s)
{
    char *cert = NULL;
    char *key = NULL;
    char err[256] = "";
    vigil_err rc;
    int status;

    if (rotate)
        rc = pki_rotate(job->pki, o->id, cert_days(cfg), overlap_s, job->csr, job->csr_len,
                        &cert, &key, &job->info, err, sizeof err);
    else
        rc = pki_issue_device(job->pki, o->id, cert_days(cfg), job->csr, job->csr_len, &cert,
                              &key, &job->info, err, sizeof err);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device %s: failed to issue a certificate for '%s': %s\n",
                o->name, o->id, err[0] != '\0' ? err : vigil_strerror(rc));
        return 1;
    }
    status = -1;
    if (key != NULL)
        status = write_file(o, job->key_path, key, 0600);
    if (status < 0)
        status = write_file(o, job->cert_path, cert, 0644);
    if (key != NULL)
        OPENSSL_cleanse(key, strlen(key));
    vigil_free(key);
    vigil_free(cert);
    return status;
}

void device_cert_print(const struct device_cert_job *job)
{
    printf("certificate: %s\n", job->cert_path);
    if (job->key_path[0] != '\0')
        printf("key: %s\n", job->key_path);
    printf("serial: %s\n", job->info.serial);
    printf("ca: %s\n", pki_ca_file(job->pki));
}

/* Parses --overlap, or takes tls.rotation_overlap (0 there means 7 days). */
static int parse_overlap(const struct device_opts *o, const struct vigil_config *cfg,
                         uint32_t *overlap_s)
{
    unsigned long n;
    char *end;

    if (o->overlap == NULL) {
        *overlap_s = cfg->tls.rotation_overlap_s != 0 ? cfg->tls.rotation_overlap_s
                                                       : DEFAULT_OVERLAP_S;
        return -1;
    }
    errno = 0;
    n = strtoul(o->overlap, &end, 10);
    if (errno != 0 || end == o->overlap || *end != '\0' || o->overlap[0] == '-' ||
        n > OVERLAP_MAX_S) {
        fprintf(stderr, "vigil device rotate: invalid --overlap '%s': use 0 to %lu seconds\n",
                o->overlap, OVERLAP_MAX_S);
        return 2;
    }
    *overlap_s = (uint32_t)n;
    return -1;
}

/* Finds the active certificate of one device. */
struct active_find {
    const char *device;
    struct pki_cert_info found;
    bool any;
};

static void find_active(void *ctx, const struct pki_cert_info *info)
{
    struct active_find *find = ctx;

    if (info->status == PKI_CERT_ACTIVE && strcmp(info->device, find->device) == 0) {
        find->found = *info;
        find->any = true;
    }
}

static int require_device(const struct device_opts *o, const struct vigil_config *cfg,
                          struct device_db *db)
{
    struct device_info info;
    vigil_err rc = device_db_get(db, o->id, &info);

    if (rc == VIGIL_OK)
        return -1;
    if (rc == VIGIL_ERR_NOT_FOUND)
        fprintf(stderr,
                "vigil device %s: device '%s' not found in %s/devices.db; run 'vigil device "
                "list' to see the ids\n",
                o->name, o->id, cfg->data_dir);
    else
        fprintf(stderr, "vigil device %s: failed to read %s/devices.db: %s\n", o->name,
                cfg->data_dir, vigil_strerror(rc));
    return 1;
}

static void print_rotation(const struct device_cert_job *job, const struct active_find *old)
{
    struct pki_cert_info now_old;
    char until[32];

    printf("device %s certificate rotated\n", job->info.device);
    device_cert_print(job);
    if (!old->any) {
        printf("previous certificate: none\n");
        return;
    }
    if (pki_get(job->pki, old->found.serial, &now_old) == VIGIL_OK &&
        now_old.status == PKI_CERT_SUPERSEDED) {
        format_time(now_old.overlap_until, until, sizeof until);
        printf("previous certificate: %s valid until %s\n", old->found.serial, until);
    } else {
        printf("previous certificate: %s revoked\n", old->found.serial);
    }
}

static int record_rotated(const struct device_opts *o, const struct vigil_config *cfg,
                          const struct device_cert_job *job, const struct active_find *old,
                          uint32_t overlap_s)
{
    json_t *fields = issued_fields(job);

    if (fields != NULL &&
        (json_object_set_new(fields, "previous_serial",
                             old->any ? json_string(old->found.serial) : json_null()) != 0 ||
         json_object_set_new(fields, "overlap_s", json_integer(overlap_s)) != 0)) {
        json_decref(fields);
        fields = NULL;
    }
    return device_record(o, cfg, "cert_rotated", fields);
}

int device_run_rotate(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_db *db)
{
    struct active_find old = {.device = o->id};
    struct device_cert_job job;
    uint32_t overlap_s = 0;
    int status = parse_overlap(o, cfg, &overlap_s);

    if (status < 0)
        status = require_device(o, cfg, db);
    if (status < 0)
        status = device_cert_prepare(o, cfg, db, &job);
    if (status >= 0)
        return status;
    if (pki_list(job.pki, find_active, &old) != VIGIL_OK) {
        fprintf(stderr, "vigil device rotate: failed to read the certificate records\n");
        status = 1;
    }
    if (status < 0)
        status = device_cert_issue(o, cfg, &job, true, overlap_s);
    if (status < 0) {
        print_rotation(&job, &old);
        status = fflush(stdout) == 0 ? 0 : 1;
    }
    if (status == 0)
        status = record_rotated(o, cfg, &job, &old, overlap_s);
    device_cert_release(&job);
    return status;
}

/* Counts the certificates of one device that are not revoked yet. */
struct revoke_count {
    const char *device;
    int records;
    int live;
};

static void count_live(void *ctx, const struct pki_cert_info *info)
{
    struct revoke_count *count = ctx;

    if (strcmp(info->device, count->device) != 0)
        return;
    count->records++;
    if (info->status != PKI_CERT_REVOKED)
        count->live++;
}

/* Revokes every certificate of o->id; *count gets how many were live. */
static vigil_err revoke_all(struct pki *pki, const char *id, struct revoke_count *count)
{
    vigil_err rc;

    count->device = id;
    count->records = 0;
    count->live = 0;
    rc = pki_list(pki, count_live, count);
    if (rc == VIGIL_OK && count->records > 0)
        rc = pki_revoke_device(pki, id);
    return rc;
}

int device_run_revoke(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_db *db)
{
    struct device_info info;
    struct revoke_count count;
    struct pki *pki = NULL;
    vigil_err rc;
    int status = open_pki(o, cfg, db, &pki);

    if (status >= 0)
        return status;
    rc = revoke_all(pki, o->id, &count);
    if (rc == VIGIL_OK && count.records == 0 && device_db_get(db, o->id, &info) != VIGIL_OK) {
        fprintf(stderr,
                "vigil device revoke: device '%s' not found in %s/devices.db and has no "
                "certificates; run 'vigil device certs' to see them\n",
                o->id, cfg->data_dir);
        status = 1;
    } else if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device revoke: failed to revoke the certificates of '%s': %s\n",
                o->id, vigil_strerror(rc));
        status = 1;
    } else if (device_db_get(db, o->id, &info) == VIGIL_OK &&
               (rc = device_db_set_psk(db, o->id, NULL, 0)) != VIGIL_OK) {
        fprintf(stderr, "vigil device revoke: revoked the certificates of '%s' but failed to "
                "delete its pre-shared key: %s\n", o->id, vigil_strerror(rc));
        status = 1;
    } else {
        printf("revoked %d certificate(s) of device %s\ncrl: %s\npre-shared key: deleted\n",
               count.live, o->id, pki_crl_file(pki));
        status = fflush(stdout) == 0 ? 0 : 1;
        if (status == 0)
            status = device_record(o, cfg, "cert_revoked",
                                   json_pack("{s:s, s:i, s:s}", "device", o->id,
                                             "certificates_revoked", count.live, "reason",
                                             "revoke_command"));
    }
    pki_close(pki);
    return status;
}

int device_revoke_removed(const struct device_opts *o, const struct vigil_config *cfg,
                          struct device_db *db)
{
    struct revoke_count count;
    struct pki *pki = NULL;
    char ca[PATH_MAX];
    vigil_err rc;
    int status;

    /* Without a CA there are no certificates to revoke, and remove should
     * not create one. */
    snprintf(ca, sizeof ca, "%s/pki/ca.crt", cfg->data_dir);
    if (access(ca, F_OK) != 0)
        return 0;
    status = open_pki(o, cfg, db, &pki);
    if (status >= 0)
        return status;
    rc = revoke_all(pki, o->id, &count);
    if (rc != VIGIL_OK) {
        fprintf(stderr,
                "vigil device remove: device '%s' was removed but revoking its certificates "
                "failed: %s; run 'vigil device revoke %s'\n",
                o->id, vigil_strerror(rc), o->id);
        status = 1;
    } else {
        status = 0;
        if (count.live > 0) {
            printf("revoked %d certificate(s) of device %s\ncrl: %s\n", count.live, o->id,
                   pki_crl_file(pki));
            status = device_record(o, cfg, "cert_revoked",
                                   json_pack("{s:s, s:i, s:s}", "device", o->id,
                                             "certificates_revoked", count.live, "reason",
                                             "device_removed"));
        }
    }
    pki_close(pki);
    return status;
}

static const char *status_name(enum pki_cert_status status)
{
    switch (status) {
    case PKI_CERT_ACTIVE: return "active";
    case PKI_CERT_SUPERSEDED: return "superseded";
    default: return "revoked";
    }
}

/* Records printed by `vigil device certs`, optionally of one device. */
struct certs_print {
    const char *device;     /* NULL: all */
    json_t *array;          /* for --json; owned by run_certs */
    size_t failed;
};

static void print_cert_row(void *ctx, const struct pki_cert_info *info)
{
    struct certs_print *p = ctx;
    char from[32];
    char to[32];
    char detail[48] = "-";

    if (p->device != NULL && strcmp(p->device, info->device) != 0)
        return;
    format_time(info->not_before, from, sizeof from);
    format_time(info->not_after, to, sizeof to);
    if (info->status == PKI_CERT_SUPERSEDED) {
        format_time(info->overlap_until, detail, sizeof detail);
    } else if (info->status == PKI_CERT_REVOKED) {
        format_time(info->revoked_at, detail, sizeof detail);
    }
    printf("%-32s %-20s %-10s %-20s %-20s %s\n", info->serial, info->device,
           status_name(info->status), from, to, detail);
}

static void add_cert_json(void *ctx, const struct pki_cert_info *info)
{
    struct certs_print *p = ctx;
    json_t *obj;

    if (p->device != NULL && strcmp(p->device, info->device) != 0)
        return;
    obj = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "serial", info->serial, "device",
                    info->device, "status", status_name(info->status), "not_before",
                    (json_int_t)info->not_before, "not_after", (json_int_t)info->not_after,
                    "overlap_until", (json_int_t)info->overlap_until, "revoked_at",
                    (json_int_t)info->revoked_at);
    if (obj == NULL || json_array_append_new(p->array, obj) != 0)
        p->failed++;
}

static int print_certs(struct pki *pki, struct certs_print *p, bool json)
{
    vigil_err rc;

    if (!json) {
        printf("%-32s %-20s %-10s %-20s %-20s %s\n", "SERIAL", "DEVICE", "STATUS", "NOT BEFORE",
               "NOT AFTER", "UNTIL/REVOKED");
        rc = pki_list(pki, print_cert_row, p);
    } else {
        p->array = json_array();
        rc = p->array != NULL ? pki_list(pki, add_cert_json, p) : VIGIL_ERR_NOMEM;
        if (rc == VIGIL_OK && p->failed > 0)
            rc = VIGIL_ERR_NOMEM;
        if (rc == VIGIL_OK &&
            (json_dumpf(p->array, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
             fputc('\n', stdout) == EOF))
            rc = VIGIL_ERR_IO;
        json_decref(p->array);
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device certs: failed to list the certificates: %s\n",
                vigil_strerror(rc));
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

int device_run_certs(const struct device_opts *o, const struct vigil_config *cfg,
                     struct device_db *db)
{
    struct certs_print p = {o->id, NULL, 0};
    struct pki *pki = NULL;
    int status = open_pki(o, cfg, db, &pki);

    if (status >= 0)
        return status;
    status = print_certs(pki, &p, o->json);
    pki_close(pki);
    return status;
}
