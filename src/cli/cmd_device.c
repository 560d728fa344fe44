/* `vigil device`: adds, lists and removes devices in the inventory of a data
 * directory (<data-dir>/devices.db); the certificate commands are in
 * cmd_device_cert.c. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/acl.h"
#include "auth/device.h"
#include "cli/admin_record.h"
#include "cli/cli.h"
#include "cli/cmd_device.h"
#include "config/config.h"

/* Room for the generated password, which device_db_add requires to be at
 * least 33 bytes. */
#define PASSWORD_CAP 64
#define PSK_BYTES 32

static void device_usage(FILE *out)
{
    fputs("usage: vigil device <add|list|remove|rotate|revoke|certs> [options]\n"
          "\n"
          "Manages the devices allowed to connect, stored in <data-dir>/devices.db,\n"
          "and their certificates from the local CA in <data-dir>/pki.\n"
          "\n"
          "commands:\n"
          "  add ID      create a device, print its new password and issue a certificate\n"
          "  list        print every device\n"
          "  remove ID   delete a device and revoke its certificates\n"
          "  rotate ID   issue a new certificate; the old one stays valid for an overlap\n"
          "  revoke ID   revoke every certificate of a device, rewrite the CRL and\n"
          "              delete its pre-shared key\n"
          "  certs [ID]  print the certificate records\n"
          "\n"
          "Run 'vigil device <command> --help' for the options of a command.\n",
          out);
}

static const char common_options[] =
    "  -c, --config FILE     read data_dir and roles from FILE (YAML)\n"
    "      --data-dir DIR    data directory; overrides the configuration\n"
    "                        (default ./vigil-data)\n"
    "  -h, --help            show this help\n";

static void cert_action_usage(const struct device_opts *o, FILE *out)
{
    if (o->action == ACTION_ROTATE)
        fputs("usage: vigil device rotate ID [options]\n"
              "\n"
              "Issues a new certificate for device ID into DIR/ID.crt (and a new key in\n"
              "DIR/ID.key unless --csr is given). The previous certificate stays valid\n"
              "for the overlap and is revoked after it.\n"
              "\n"
              "options:\n"
              "      --csr FILE        certify the key of this PEM certificate request\n"
              "      --out DIR         directory for ID.crt and ID.key (default\n"
              "                        <data-dir>/provision)\n"
              "      --overlap SECONDS how long the previous certificate stays valid\n"
              "                        (default tls.rotation_overlap, 604800; 0 revokes it\n"
              "                        at once)\n",
              out);
    else if (o->action == ACTION_REVOKE)
        fputs("usage: vigil device revoke ID [options]\n"
              "\n"
              "Revokes every certificate of device ID, rewrites <data-dir>/pki/crl.pem,\n"
              "which a running vigil serve reloads, and deletes the device's pre-shared\n"
              "key. Sessions keyed by either end within about a second; the password\n"
              "stays (use remove to delete the device).\n"
              "\n"
              "options:\n",
              out);
    else
        fputs("usage: vigil device certs [ID] [options]\n"
              "\n"
              "Prints serial, device, status, validity (UTC) and the end of the overlap\n"
              "or the revocation time of every certificate, or of device ID only.\n"
              "\n"
              "options:\n"
              "      --json            print a JSON array instead of a table (times in\n"
              "                        Unix seconds, 0 when unset)\n",
              out);
}

static void action_usage(const struct device_opts *o, FILE *out)
{
    if (o->action == ACTION_ADD)
        fputs("usage: vigil device add ID [options]\n"
              "\n"
              "Creates device ID (1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '-')\n"
              "with a new random password, printed once; only its hash is stored.\n"
              "It also issues a certificate from the local CA (created on first use)\n"
              "into DIR/ID.crt, with a new key in DIR/ID.key (mode 0600) unless --csr\n"
              "is given. The data directory is created with mode 0700 if it does not\n"
              "exist.\n"
              "\n"
              "options:\n"
              "      --role ROLE       access role from the configuration (default device)\n"
              "      --type TYPE       device type, such as bedside-monitor (at most 31 bytes)\n"
              "      --unit UNIT       care unit, such as icu3 (at most 63 bytes)\n"
              "      --csr FILE        certify the key of this PEM certificate request\n"
              "      --out DIR         directory for ID.crt and ID.key (default\n"
              "                        <data-dir>/provision, created with mode 0700)\n"
              "      --no-cert         issue no certificate\n"
              "      --psk             also create a 32-byte pre-shared key for TLS and DTLS\n"
              "                        and print it as hex and as text (the key bytes\n"
              "                        are printable)\n"
              "  -q, --quiet           print only the password (and the PSK on a second\n"
              "                        line), for scripts\n",
              out);
    else if (o->action == ACTION_LIST)
        fputs("usage: vigil device list [options]\n"
              "\n"
              "Prints id, role, type, unit and creation time (UTC) of every device.\n"
              "\n"
              "options:\n"
              "      --json            print a JSON array instead of a table\n",
              out);
    else if (o->action == ACTION_REMOVE)
        fputs("usage: vigil device remove ID [options]\n"
              "\n"
              "Deletes device ID and its password hash, and revokes its certificates.\n"
              "\n"
              "options:\n",
              out);
    else
        cert_action_usage(o, out);
    fputs(common_options, out);
}

/* Rejects an option that the action does not take. */
static bool option_allowed(const struct device_opts *o, int ch)
{
    switch (ch) {
    case 'r':
    case 't':
    case 'u':
    case 'q':
    case 'n':
    case 'p':
        return o->action == ACTION_ADD;
    case 'C':
    case 'o':
        return o->action == ACTION_ADD || o->action == ACTION_ROTATE;
    case 'O':
        return o->action == ACTION_ROTATE;
    case 'j':
        return o->action == ACTION_LIST || o->action == ACTION_CERTS;
    default:
        return true;
    }
}

static void store_option(struct device_opts *o, int ch, const char *arg)
{
    switch (ch) {
    case 'c': o->config = arg; break;
    case 'd': o->data_dir = arg; break;
    case 'r': o->role = arg; break;
    case 't': o->type = arg; break;
    case 'u': o->unit = arg; break;
    case 'q': o->quiet = true; break;
    case 'j': o->json = true; break;
    case 'C': o->csr = arg; break;
    case 'o': o->out = arg; break;
    case 'O': o->overlap = arg; break;
    case 'n': o->no_cert = true; break;
    case 'p': o->psk = true; break;
    default: break;
    }
}

/* Parses the options after the action name. Returns an exit status, or -1
 * to go on. */
static int parse_options(int argc, char **argv, struct device_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"data-dir", required_argument, NULL, 'd'},
        {"role", required_argument, NULL, 'r'},   {"type", required_argument, NULL, 't'},
        {"unit", required_argument, NULL, 'u'},   {"quiet", no_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {"csr", required_argument, NULL, 'C'},    {"out", required_argument, NULL, 'o'},
        {"overlap", required_argument, NULL, 'O'}, {"no-cert", no_argument, NULL, 'n'},
        {"psk", no_argument, NULL, 'p'},          {NULL, 0, NULL, 0},
    };
    static char prog[48];
    int index = -1;
    int ch;

    /* getopt starts its own messages with argv[0], which is the action name. */
    snprintf(prog, sizeof prog, "vigil device %s", o->name);
    argv[0] = prog;
    optind = 0;  /* 0 makes glibc's getopt forget the state of an earlier parse */
    while ((ch = getopt_long(argc, argv, "c:qh", longopts, &index)) != -1) {
        if (ch == 'h') {
            action_usage(o, stdout);
            return 0;
        }
        if (ch == '?' || !option_allowed(o, ch)) {
            if (ch != '?')
                fprintf(stderr, "vigil device %s: option %s%s does not apply to %s\n", o->name,
                        index >= 0 ? "--" : "-", index >= 0 ? longopts[index].name : "q",
                        o->name);
            action_usage(o, stderr);
            return 2;
        }
        store_option(o, ch, optarg);
        index = -1;
    }
    if (o->action != ACTION_LIST && optind < argc)
        o->id = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "vigil device %s: unexpected argument '%s'\n", o->name, argv[optind]);
        return 2;
    }
    return -1;
}

/* Checks the values of the options that do not need the configuration. */
static int check_arguments(const struct device_opts *o)
{
    if (o->action != ACTION_LIST && o->action != ACTION_CERTS && o->id == NULL) {
        fprintf(stderr, "vigil device %s: missing device id; usage: vigil device %s ID\n",
                o->name, o->name);
        return 2;
    }
    if (o->id != NULL && !device_id_valid(o->id)) {
        fprintf(stderr,
                "vigil device %s: invalid device id '%s': use 1 to %d characters of A-Z, "
                "a-z, 0-9, '.', '_' or '-'\n",
                o->name, o->id, DEVICE_ID_MAX);
        return 2;
    }
    if (o->type != NULL && strlen(o->type) >= sizeof ((struct device_info *)0)->type) {
        fprintf(stderr, "vigil device add: --type is longer than %zu bytes\n",
                sizeof ((struct device_info *)0)->type - 1);
        return 2;
    }
    if (o->unit != NULL && strlen(o->unit) >= sizeof ((struct device_info *)0)->unit) {
        fprintf(stderr, "vigil device add: --unit is longer than %zu bytes\n",
                sizeof ((struct device_info *)0)->unit - 1);
        return 2;
    }
    if (o->no_cert && (o->csr != NULL || o->out != NULL)) {
        fputs("vigil device add: --no-cert cannot be combined with --csr or --out\n", stderr);
        return 2;
    }
    return -1;
}

/* Loads the embedded default, then -c FILE, then --data-dir. Returns an
 * exit status, or -1 to go on. */
static int load_config(const struct device_opts *o, struct vigil_config *cfg)
{
    char command[48];

    snprintf(command, sizeof command, "device %s", o->name);
    return cli_load_config(command, o->config, o->data_dir, cfg);
}

static int check_role(const struct device_opts *o, const struct vigil_config *cfg)
{
    const char *role = o->role != NULL ? o->role : "device";
    char names[CONFIG_MAX_ROLES * 34] = "";
    size_t used = 0;

    if (strlen(role) <= DEVICE_ROLE_MAX && config_find_role(cfg, role) != NULL)
        return -1;
    for (size_t i = 0; i < cfg->n_roles && used < sizeof names; i++)
        used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i > 0 ? ", " : "",
                                 cfg->roles[i].name);
    fprintf(stderr, "vigil device add: role '%s' is not defined in %s; defined roles: %s\n", role,
            o->config != NULL ? o->config : "the default configuration", names);
    return 2;
}

/* Checks that dir exists, and creates it with mode 0700 when create is set. */
static int prepare_data_dir(const struct device_opts *o, const char *dir, bool create)
{
    struct stat st;

    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return -1;
        fprintf(stderr, "vigil device %s: data directory '%s' is not a directory\n", o->name,
                dir);
        return 1;
    }
    if (errno != ENOENT) {
        fprintf(stderr, "vigil device %s: failed to access data directory '%s': %s\n", o->name,
                dir, strerror(errno));
        return 1;
    }
    if (!create) {
        fprintf(stderr,
                "vigil device %s: data directory '%s' does not exist; pass --data-dir or -c "
                "with the directory that vigil serve uses\n",
                o->name, dir);
        return 1;
    }
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr,
                "vigil device %s: failed to create data directory '%s': %s; check that "
                "its parent directory exists and is writable\n",
                o->name,
                dir, strerror(errno));
        return 1;
    }
    return -1;
}

static int open_db(const struct device_opts *o, const char *dir, struct device_db **db)
{
    vigil_err rc = device_db_open(dir, db);

    if (rc == VIGIL_OK)
        return -1;
    fprintf(stderr,
            "vigil device %s: failed to open %s/devices.db: %s; check that the directory is "
            "writable and the file is a vigil device database\n",
            o->name, dir, vigil_strerror(rc));
    return 1;
}

static void fill_info(const struct device_opts *o, struct device_info *info)
{
    memset(info, 0, sizeof *info);
    snprintf(info->id, sizeof info->id, "%s", o->id);
    snprintf(info->role, sizeof info->role, "%s", o->role != NULL ? o->role : "device");
    snprintf(info->type, sizeof info->type, "%s", o->type != NULL ? o->type : "");
    snprintf(info->unit, sizeof info->unit, "%s", o->unit != NULL ? o->unit : "");
}

/* Adds the device and writes its new password into password. */
static int add_device(const struct device_opts *o, struct device_db *db, const char *dir,
                      struct device_info *info, char *password)
{
    vigil_err rc;

    fill_info(o, info);
    rc = device_db_add(db, info, password, PASSWORD_CAP);
    if (rc == VIGIL_ERR_EXISTS) {
        fprintf(stderr,
                "vigil device add: device '%s' already exists in %s/devices.db; choose another "
                "id or remove it first with 'vigil device remove %s'\n",
                o->id, dir, o->id);
        return 1;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device add: failed to add device '%s' to %s/devices.db: %s\n",
                o->id, dir, vigil_strerror(rc));
        return 1;
    }
    return -1;
}

/* Fills key with PSK_BYTES printable characters of the base64url alphabet
 * (6 random bits each, 192 bits in all), so that clients which take a PSK
 * as text (libcoap's coap-client -k) and clients which take it as hex
 * (openssl -psk) can both use the same key. */
static bool psk_generate(uint8_t key[PSK_BYTES])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t rnd[PSK_BYTES];

    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return false;
    for (size_t i = 0; i < PSK_BYTES; i++)
        key[i] = (uint8_t)alphabet[rnd[i] & 63];
    OPENSSL_cleanse(rnd, sizeof rnd);
    return true;
}

/* Stores a new random PSK for the device and writes its bytes as hex into
 * hex and as text into text. */
static int add_psk(const struct device_opts *o, struct device_db *db, char *hex, size_t cap,
                   char *text, size_t text_cap)
{
    uint8_t key[PSK_BYTES];
    vigil_err rc = VIGIL_ERR_IO;

    if (psk_generate(key))
        rc = device_db_set_psk(db, o->id, key, sizeof key);
    if (rc == VIGIL_OK) {
        for (size_t i = 0; i < sizeof key && 2 * i + 2 < cap; i++)
            snprintf(hex + 2 * i, cap - 2 * i, "%02x", key[i]);
        snprintf(text, text_cap, "%.*s", PSK_BYTES, (const char *)key);
    }
    OPENSSL_cleanse(key, sizeof key);
    if (rc == VIGIL_OK)
        return -1;
    fprintf(stderr, "vigil device add: failed to store a PSK for '%s': %s\n", o->id,
            vigil_strerror(rc));
    return 1;
}

static void print_added(const struct device_opts *o, const struct device_info *info,
                        const char *password, const char *psk_hex, const char *psk_text,
                        const struct device_cert_job *job)
{
    if (o->quiet) {
        printf("%s\n", password);
        if (o->psk)
            printf("%s\n", psk_hex);
        return;
    }
    printf("device %s created with role %s\npassword: %s\n", info->id, info->role, password);
    if (o->psk)
        printf("psk: %s\npsk-text: %s\n", psk_hex, psk_text);
    if (!o->no_cert)
        device_cert_print(job);
    fputs("The password is shown only this once; put it in the device's configuration "
          "now.\n",
          stderr);
}

/* Records device_added, and cert_issued when a certificate was issued.
 * The record lists the kinds of credential created, never their values. */
static int record_added(const struct device_opts *o, const struct vigil_config *cfg,
                        const struct device_info *info, const struct device_cert_job *job)
{
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "device", info->id, "role",
                               info->role, "device_type", info->type, "unit", info->unit,
                               "credentials", "password");
    json_t *kinds = json_object_get(fields, "credentials");
    int status;

    if (o->psk)
        json_array_append_new(kinds, json_string("psk"));
    if (!o->no_cert)
        json_array_append_new(kinds, json_string("certificate"));
    status = device_record(o, cfg, "device_added", fields);

    if (status == 0 && !o->no_cert)
        status = device_record_issued(o, cfg, job);
    return status;
}

/* Adds the device, then its PSK and certificate. When a later step fails
 * the device is removed again, so a failed add leaves nothing behind. */
static int run_add(const struct device_opts *o, const struct vigil_config *cfg,
                   struct device_db *db)
{
    struct device_cert_job job = {0};
    struct device_info info;
    char password[PASSWORD_CAP];
    char psk_hex[2 * PSK_BYTES + 1] = "";
    char psk_text[PSK_BYTES + 1] = "";
    int status = -1;

    if (!o->no_cert)
        status = device_cert_prepare(o, cfg, db, &job);
    if (status >= 0)
        return status;
    status = add_device(o, db, cfg->data_dir, &info, password);
    if (status >= 0)
        goto out;
    if (o->psk)
        status = add_psk(o, db, psk_hex, sizeof psk_hex, psk_text, sizeof psk_text);
    if (status < 0 && !o->no_cert)
        status = device_cert_issue(o, cfg, &job, false, 0);
    if (status >= 0) {
        device_db_remove(db, o->id);
    } else {
        print_added(o, &info, password, psk_hex, psk_text, &job);
        status = fflush(stdout) == 0 ? 0 : 1;
    }
    OPENSSL_cleanse(password, sizeof password);
    OPENSSL_cleanse(psk_hex, sizeof psk_hex);
    OPENSSL_cleanse(psk_text, sizeof psk_text);
    if (status == 0)
        status = record_added(o, cfg, &info, &job);

out:
    device_cert_release(&job);
    return status;
}

static void format_created(int64_t seconds, char *out, size_t cap)
{
    time_t t = (time_t)seconds;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)seconds);
}

static void print_row(void *ctx, const struct device_info *info)
{
    char created[32];

    (void)ctx;
    format_created(info->created_at, created, sizeof created);
    printf("%-20s %-10s %-18s %-12s %s\n", info->id, info->role,
           info->type[0] != '\0' ? info->type : "-", info->unit[0] != '\0' ? info->unit : "-",
           created);
}

/* Devices collected for --json. */
struct json_list {
    json_t *array;      /* owned; released by the caller */
    size_t failed;      /* rows that could not be added (out of memory) */
};

static void add_json_row(void *ctx, const struct device_info *info)
{
    struct json_list *list = ctx;
    char created[32];
    json_t *obj;

    format_created(info->created_at, created, sizeof created);
    obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "id", info->id, "role", info->role, "type",
                    info->type, "unit", info->unit, "created", created, "created_at",
                    (json_int_t)info->created_at);
    if (obj == NULL || json_array_append_new(list->array, obj) != 0)
        list->failed++;
}

static int run_list_json(struct device_db *db, const char *dir)
{
    struct json_list list = {json_array(), 0};
    vigil_err rc;
    int status = 0;

    if (list.array == NULL) {
        fputs("vigil device list: out of memory\n", stderr);
        return 1;
    }
    rc = device_db_list(db, add_json_row, &list);
    if (rc != VIGIL_OK || list.failed > 0) {
        fprintf(stderr, "vigil device list: failed to read %s/devices.db: %s\n", dir,
                vigil_strerror(rc != VIGIL_OK ? rc : VIGIL_ERR_NOMEM));
        status = 1;
    } else if (json_dumpf(list.array, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
               fputc('\n', stdout) == EOF) {
        status = 1;
    }
    json_decref(list.array);
    return status;
}

static int run_list(const struct device_opts *o, struct device_db *db, const char *dir)
{
    vigil_err rc;

    if (o->json)
        return run_list_json(db, dir);
    printf("%-20s %-10s %-18s %-12s %s\n", "ID", "ROLE", "TYPE", "UNIT", "CREATED");
    rc = device_db_list(db, print_row, NULL);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device list: failed to read %s/devices.db: %s\n", dir,
                vigil_strerror(rc));
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

struct rule_ids {
    const char *device;
    int64_t ids[256];
    size_t n;
};

static void collect_rule(void *ctx, const struct acl_rule *r)
{
    struct rule_ids *ri = ctx;

    if (r->subject_kind == ACL_SUBJECT_DEVICE && strcmp(r->subject, ri->device) == 0 &&
        ri->n < sizeof ri->ids / sizeof ri->ids[0])
        ri->ids[ri->n++] = r->id;
}

/* Deletes the access rules of a removed device, so a device provisioned
 * later under the same id does not inherit them; *removed counts them. */
static int remove_device_rules(struct device_db *db, const char *id, size_t *removed)
{
    struct rule_ids ri = {.device = id};

    *removed = 0;

    do {
        ri.n = 0;
        if (acl_db_list(db, collect_rule, &ri) != VIGIL_OK) {
            fprintf(stderr, "vigil device remove: reading the access rules of '%s' failed\n", id);
            return 1;
        }
        for (size_t i = 0; i < ri.n; i++) {
            if (acl_db_remove(db, ri.ids[i]) != VIGIL_OK) {
                fprintf(stderr, "vigil device remove: deleting access rule %lld failed\n",
                        (long long)ri.ids[i]);
                return 1;
            }
            (*removed)++;
        }
        if (ri.n > 0)
            printf("removed %zu access rule(s) of device %s\n", ri.n, id);
    } while (ri.n == sizeof ri.ids / sizeof ri.ids[0]);
    return 0;
}

static int run_remove(const struct device_opts *o, const struct vigil_config *cfg,
                      struct device_db *db)
{
    const char *dir = cfg->data_dir;
    vigil_err rc = device_db_remove(db, o->id);
    size_t rules = 0;
    int record;
    int status;

    if (rc == VIGIL_ERR_NOT_FOUND) {
        fprintf(stderr,
                "vigil device remove: device '%s' not found in %s/devices.db; run 'vigil device "
                "list' to see the ids\n",
                o->id, dir);
        return 1;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil device remove: failed to remove device '%s' from %s/devices.db: "
                "%s\n", o->id, dir, vigil_strerror(rc));
        return 1;
    }
    printf("device %s removed\n", o->id);
    status = remove_device_rules(db, o->id, &rules);
    record = device_record(o, cfg, "device_removed",
                           json_pack("{s:s, s:I, s:b}", "device", o->id, "acl_rules_removed",
                                     (json_int_t)rules, "complete", status == 0));
    if (status != 0)
        return 1;
    status = device_revoke_removed(o, cfg, db);
    return status != 0 ? status : record;
}

/* Selects the action from argv[1]. Returns an exit status, or -1 to go on. */
static int select_action(int argc, char **argv, struct device_opts *o)
{
    static const struct {
        const char *name;
        enum device_action action;
    } actions[] = {
        {"add", ACTION_ADD},       {"list", ACTION_LIST},     {"remove", ACTION_REMOVE},
        {"rotate", ACTION_ROTATE}, {"revoke", ACTION_REVOKE}, {"certs", ACTION_CERTS},
    };

    if (argc < 2) {
        device_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        device_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        if (strcmp(argv[1], actions[i].name) == 0) {
            o->action = actions[i].action;
            o->name = actions[i].name;
            return -1;
        }
    }
    fprintf(stderr,
            "vigil device: unknown command '%s'; expected add, list, remove, rotate, revoke "
            "or certs\n",
            argv[1]);
    device_usage(stderr);
    return 2;
}

static int run_action(const struct device_opts *o, const struct vigil_config *cfg)
{
    struct device_db *db = NULL;
    int status;

    if (o->action == ACTION_ADD) {
        status = check_role(o, cfg);
        if (status >= 0)
            return status;
    }
    status = prepare_data_dir(o, cfg->data_dir, o->action == ACTION_ADD);
    if (status >= 0)
        return status;
    status = open_db(o, cfg->data_dir, &db);
    if (status >= 0)
        return status;
    switch (o->action) {
    case ACTION_ADD: status = run_add(o, cfg, db); break;
    case ACTION_LIST: status = run_list(o, db, cfg->data_dir); break;
    case ACTION_REMOVE: status = run_remove(o, cfg, db); break;
    case ACTION_ROTATE: status = device_run_rotate(o, cfg, db); break;
    case ACTION_REVOKE: status = device_run_revoke(o, cfg, db); break;
    case ACTION_CERTS: status = device_run_certs(o, cfg, db); break;
    }
    device_db_close(db);
    return status;
}

int cli_device(int argc, char **argv)
{
    struct device_opts o = {0};
    static struct vigil_config cfg;
    int status = select_action(argc, argv, &o);

    if (status >= 0)
        return status;
    status = parse_options(argc - 1, argv + 1, &o);
    if (status < 0)
        status = check_arguments(&o);
    if (status < 0)
        status = load_config(&o, &cfg);
    if (status < 0)
        status = run_action(&o, &cfg);
    return status;
}
