/* Shared parts of `vigil device`: the parsed options, and the certificate
 * commands in cmd_device_cert.c. Every int function returns an exit status
 * (0, 1 or 2), or -1 to go on. */
#ifndef VIGIL_CLI_CMD_DEVICE_H
#define VIGIL_CLI_CMD_DEVICE_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "auth/device.h"
#include "auth/pki.h"
#include "config/config.h"

enum device_action {
    ACTION_ADD,
    ACTION_LIST,
    ACTION_REMOVE,
    ACTION_ROTATE,
    ACTION_REVOKE,
    ACTION_CERTS,
};

struct device_opts {
    enum device_action action;
    const char *name;       /* "add", "list", ..., for messages */
    const char *id;
    const char *config;
    const char *data_dir;
    const char *role;
    const char *type;
    const char *unit;
    const char *csr;        /* --csr FILE */
    const char *out;        /* --out DIR */
    const char *overlap;    /* --overlap SECONDS, as typed */
    bool quiet;
    bool json;
    bool no_cert;
    bool psk;
};

/* A certificate being issued by add or rotate. */
struct device_cert_job {
    struct pki *pki;              /* owned */
    char *csr;                    /* owned (vigil_free), NULL without --csr */
    size_t csr_len;
    char out_dir[PATH_MAX];
    char cert_path[PATH_MAX];
    char key_path[PATH_MAX];      /* "" when the device sent a CSR */
    struct pki_cert_info info;
};

/* Reads and checks --csr, creates the output directory and opens the CA
 * (creating it when needed). On failure the job is already released. */
int device_cert_prepare(const struct device_opts *o, const struct vigil_config *cfg,
                        struct device_db *db, struct device_cert_job *job);
/* Issues the certificate (rotating with overlap_s when rotate is set) and
 * writes ID.crt and, for a generated key, ID.key (mode 0600). */
int device_cert_issue(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_cert_job *job, bool rotate, uint32_t overlap_s);
/* Prints "certificate:", "key:" (generated key only), "serial:" and "ca:"
 * lines. */
void device_cert_print(const struct device_cert_job *job);
void device_cert_release(struct device_cert_job *job);

int device_run_rotate(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_db *db);
int device_run_revoke(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_db *db);
int device_run_certs(const struct device_opts *o, const struct vigil_config *cfg,
                     struct device_db *db);
/* Revokes the certificates of a removed device, when a CA exists. */
int device_revoke_removed(const struct device_opts *o, const struct vigil_config *cfg,
                          struct device_db *db);

/* Records a change of `vigil device <o->name>` in the audit log. fields is
 * stolen. Returns 0, or 1 after printing why it was not recorded. */
int device_record(const struct device_opts *o, const struct vigil_config *cfg, const char *type,
                  json_t *fields);
/* Records the cert_issued record of a certificate issued by add. */
int device_record_issued(const struct device_opts *o, const struct vigil_config *cfg,
                         const struct device_cert_job *job);

#endif
