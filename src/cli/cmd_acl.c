/* `vigil acl`: adds, lists and removes the access rules stored in
 * <data-dir>/devices.db, which grant topic patterns to one device or to a
 * role on top of the roles in the configuration. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/acl.h"
#include "auth/acl_internal.h"
#include "cli/admin_record.h"
#include "cli/cli.h"
#include "config/config.h"

enum acl_command { ACL_CMD_ADD, ACL_CMD_LIST, ACL_CMD_REMOVE };

struct acl_opts {
    enum acl_command command;
    const char *name;       /* "add", "list" or "remove", for messages */
    const char *config;
    const char *data_dir;
    const char *device;
    const char *role;
    char action;            /* enum acl_action, 0 until given */
    const char *operand;    /* PATTERN for add, N for remove */
    int64_t id;             /* N, parsed */
    bool json;
};

static const char common_options[] =
    "  -c, --config FILE     read data_dir and roles from FILE (YAML)\n"
    "      --data-dir DIR    data directory; overrides the configuration\n"
    "                        (default ./vigil-data)\n"
    "  -h, --help            show this help\n";

static void acl_usage(FILE *out)
{
    fputs("usage: vigil acl <add|list|remove> [options]\n"
          "\n"
          "Manages access rules stored in <data-dir>/devices.db. A rule grants a topic\n"
          "pattern to one device or to every device of a role, in addition to the\n"
          "patterns of the roles in the configuration. The broker applies changes\n"
          "without a restart.\n"
          "\n"
          "commands:\n"
          "  add (--device ID | --role ROLE) (--publish | --subscribe) PATTERN\n"
          "              add a rule and print its number\n"
          "  list        print every rule\n"
          "  remove N    delete rule N\n"
          "\n"
          "Run 'vigil acl <command> --help' for the options of a command.\n",
          out);
}

static void command_usage(const struct acl_opts *o, FILE *out)
{
    if (o->command == ACL_CMD_ADD)
        fputs("usage: vigil acl add (--device ID | --role ROLE) (--publish | --subscribe) "
              "PATTERN [options]\n"
              "\n"
              "Grants PATTERN, an MQTT topic filter of at most 255 bytes, to a device or a\n"
              "role. \"%d\" as a whole level stands for the connected device's id.\n"
              "\n"
              "options:\n"
              "      --device ID       grant to the device with this id\n"
              "      --role ROLE       grant to every device of this role\n"
              "      --publish         allow publishing to topics matching PATTERN\n"
              "      --subscribe       allow subscribing to filters within PATTERN\n",
              out);
    else if (o->command == ACL_CMD_LIST)
        fputs("usage: vigil acl list [options]\n"
              "\n"
              "Prints number, subject, action, creation time (UTC) and pattern of every rule.\n"
              "\n"
              "options:\n"
              "      --json            print a JSON array instead of a table\n",
              out);
    else
        fputs("usage: vigil acl remove N [options]\n"
              "\n"
              "Deletes rule number N, as shown by 'vigil acl list'.\n"
              "\n"
              "options:\n",
              out);
    fputs(common_options, out);
}

static bool option_allowed(const struct acl_opts *o, int ch)
{
    switch (ch) {
    case 'D':
    case 'r':
    case 'p':
    case 's':
        return o->command == ACL_CMD_ADD;
    case 'j':
        return o->command == ACL_CMD_LIST;
    default:
        return true;
    }
}

/* Stores one option. Returns an exit status for a conflicting option, or -1. */
static int store_option(struct acl_opts *o, int ch, const char *arg)
{
    switch (ch) {
    case 'c': o->config = arg; break;
    case 'd': o->data_dir = arg; break;
    case 'D': o->device = arg; break;
    case 'r': o->role = arg; break;
    case 'j': o->json = true; break;
    case 'p':
    case 's':
        if (o->action != 0 && o->action != (ch == 'p' ? ACL_PUBLISH : ACL_SUBSCRIBE)) {
            fputs("vigil acl add: give one of --publish or --subscribe, not both\n", stderr);
            return 2;
        }
        o->action = ch == 'p' ? ACL_PUBLISH : ACL_SUBSCRIBE;
        break;
    default: break;
    }
    return -1;
}

static int parse_options(int argc, char **argv, struct acl_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"data-dir", required_argument, NULL, 'd'},
        {"device", required_argument, NULL, 'D'}, {"role", required_argument, NULL, 'r'},
        {"publish", no_argument, NULL, 'p'},      {"subscribe", no_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int index = -1;
    int status;
    int ch;

    optind = 0;  /* 0 makes glibc's getopt forget the state of an earlier parse */
    while ((ch = getopt_long(argc, argv, "c:h", longopts, &index)) != -1) {
        if (ch == 'h') {
            command_usage(o, stdout);
            return 0;
        }
        if (ch == '?' || !option_allowed(o, ch)) {
            if (ch != '?')
                fprintf(stderr, "vigil acl %s: option --%s does not apply to %s\n", o->name,
                        longopts[index].name, o->name);
            command_usage(o, stderr);
            return 2;
        }
        status = store_option(o, ch, optarg);
        if (status >= 0)
            return status;
        index = -1;
    }
    if (o->command != ACL_CMD_LIST && optind < argc)
        o->operand = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "vigil acl %s: unexpected argument '%s'\n", o->name, argv[optind]);
        return 2;
    }
    return -1;
}

static int check_add(const struct acl_opts *o)
{
    if ((o->device == NULL) == (o->role == NULL)) {
        fputs("vigil acl add: give exactly one of --device ID or --role ROLE\n", stderr);
        return 2;
    }
    if (o->action == 0) {
        fputs("vigil acl add: give one of --publish or --subscribe\n", stderr);
        return 2;
    }
    if (o->operand == NULL) {
        fputs("vigil acl add: missing PATTERN, such as 'north/icu3/+/%d/#'\n", stderr);
        return 2;
    }
    if (o->device != NULL && !device_id_valid(o->device)) {
        fprintf(stderr,
                "vigil acl add: invalid device id '%s': use 1 to %d characters of A-Z, a-z, "
                "0-9, '.', '_' or '-'\n",
                o->device, DEVICE_ID_MAX);
        return 2;
    }
    if (!acl_pattern_valid(o->operand)) {
        fprintf(stderr,
                "vigil acl add: invalid pattern '%s': expected an MQTT topic filter of 1 to 255 "
                "bytes with '+' and '#' as whole levels, '#' last, no $share/ prefix, and %%d "
                "only as a whole level\n",
                o->operand);
        return 2;
    }
    return -1;
}

/* Checks the arguments that do not need the configuration, and parses the
 * rule number of remove. */
static int check_arguments(struct acl_opts *o)
{
    char *end;

    if (o->command == ACL_CMD_ADD)
        return check_add(o);
    if (o->command == ACL_CMD_REMOVE) {
        if (o->operand == NULL) {
            fputs("vigil acl remove: missing rule number; usage: vigil acl remove N\n", stderr);
            return 2;
        }
        errno = 0;
        o->id = strtoll(o->operand, &end, 10);
        if (errno != 0 || end == o->operand || *end != '\0' || o->id <= 0) {
            fprintf(stderr, "vigil acl remove: invalid rule number '%s'; expected a positive "
                    "integer from 'vigil acl list'\n", o->operand);
            return 2;
        }
    }
    return -1;
}

static int load_config(const struct acl_opts *o, struct vigil_config *cfg)
{
    char command[48];

    snprintf(command, sizeof command, "acl %s", o->name);
    return cli_load_config(command, o->config, o->data_dir, cfg);
}

/* A rule for a role the configuration does not define would never apply. */
static int check_role(const struct acl_opts *o, const struct vigil_config *cfg)
{
    if (o->role == NULL || config_find_role(cfg, o->role) != NULL)
        return -1;
    fprintf(stderr,
            "vigil acl add: role '%s' is not defined in %s; define it under 'roles' first\n",
            o->role, o->config != NULL ? o->config : "the default configuration");
    return 2;
}

/* Checks that dir exists, and creates it with mode 0700 for add. */
static int prepare_data_dir(const struct acl_opts *o, const char *dir)
{
    struct stat st;

    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return -1;
        fprintf(stderr, "vigil acl %s: data directory '%s' is not a directory\n", o->name, dir);
        return 1;
    }
    if (errno != ENOENT || o->command != ACL_CMD_ADD) {
        fprintf(stderr,
                "vigil acl %s: failed to access data directory '%s': %s; pass --data-dir or -c "
                "with the directory that vigil serve uses\n",
                o->name, dir, strerror(errno));
        return 1;
    }
    if (mkdir(dir, 0700) != 0) {
        fprintf(stderr, "vigil acl add: failed to create data directory '%s': %s\n", dir,
                strerror(errno));
        return 1;
    }
    return -1;
}

/* Fields describing a rule in acl_rule_added and acl_rule_removed records. */
static json_t *rule_fields(const struct acl_rule *rule)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s}", "rule_id", (json_int_t)rule->id,
                     "subject_kind", acl_subject_text(rule->subject_kind), "subject",
                     rule->subject, "action", acl_action_text(rule->action), "pattern",
                     rule->pattern);
}

static int record_rule(const struct acl_opts *o, const struct vigil_config *cfg,
                       const char *type, json_t *fields)
{
    char command[32];

    snprintf(command, sizeof command, "vigil acl %s", o->name);
    return cli_admin_record(command, cfg->data_dir, cfg, type, fields);
}

static int run_add(const struct acl_opts *o, struct device_db *db,
                   const struct vigil_config *cfg)
{
    const char *dir = cfg->data_dir;
    struct acl_rule rule;
    struct device_info info;
    vigil_err rc;

    memset(&rule, 0, sizeof rule);
    rule.subject_kind = o->device != NULL ? ACL_SUBJECT_DEVICE : ACL_SUBJECT_ROLE;
    snprintf(rule.subject, sizeof rule.subject, "%s", o->device != NULL ? o->device : o->role);
    rule.action = o->action;
    snprintf(rule.pattern, sizeof rule.pattern, "%s", o->operand);
    rc = acl_db_add(db, &rule);
    if (rc == VIGIL_ERR_EXISTS) {
        fprintf(stderr, "vigil acl add: the same rule exists already in %s/devices.db; see "
                "'vigil acl list'\n", dir);
        return 1;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil acl add: failed to add the rule to %s/devices.db: %s\n", dir,
                vigil_strerror(rc));
        return 1;
    }
    if (o->device != NULL && device_db_get(db, o->device, &info) == VIGIL_ERR_NOT_FOUND)
        fprintf(stderr, "vigil acl add: device '%s' is not in the inventory yet; the rule "
                "applies once it is added\n", o->device);
    printf("rule %" PRId64 " added\n", rule.id);
    if (fflush(stdout) != 0)
        return 1;
    return record_rule(o, cfg, "acl_rule_added", rule_fields(&rule));
}

static void format_created(int64_t seconds, char *out, size_t cap)
{
    time_t t = (time_t)seconds;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%lld", (long long)seconds);
}

static void print_row(void *ctx, const struct acl_rule *rule)
{
    char created[32];
    char subject[80];

    (void)ctx;
    format_created(rule->created_at, created, sizeof created);
    snprintf(subject, sizeof subject, "%s:%s", acl_subject_text(rule->subject_kind),
             rule->subject);
    printf("%-6" PRId64 " %-30s %-10s %-21s %s\n", rule->id, subject,
           acl_action_text(rule->action), created, rule->pattern);
}

/* Rules collected for --json. */
struct json_list {
    json_t *array;      /* owned; released by the caller */
    size_t failed;      /* rows that could not be added (out of memory) */
};

static void add_json_row(void *ctx, const struct acl_rule *rule)
{
    struct json_list *list = ctx;
    char created[32];
    json_t *obj;

    format_created(rule->created_at, created, sizeof created);
    obj = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I}", "id", (json_int_t)rule->id,
                    "subject_kind", acl_subject_text(rule->subject_kind), "subject",
                    rule->subject, "action", acl_action_text(rule->action), "pattern",
                    rule->pattern, "created", created, "created_at",
                    (json_int_t)rule->created_at);
    if (obj == NULL || json_array_append_new(list->array, obj) != 0)
        list->failed++;
}

static int run_list(const struct acl_opts *o, struct device_db *db, const char *dir)
{
    struct json_list list = {NULL, 0};
    vigil_err rc;
    int status = 0;

    if (!o->json) {
        printf("%-6s %-30s %-10s %-21s %s\n", "RULE", "SUBJECT", "ACTION", "CREATED", "PATTERN");
        rc = acl_db_list(db, print_row, NULL);
    } else {
        list.array = json_array();
        rc = list.array != NULL ? acl_db_list(db, add_json_row, &list) : VIGIL_ERR_NOMEM;
        if (rc == VIGIL_OK && list.failed > 0)
            rc = VIGIL_ERR_NOMEM;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil acl list: failed to read %s/devices.db: %s\n", dir,
                vigil_strerror(rc));
        status = 1;
    } else if (o->json && (json_dumpf(list.array, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) !=
                               0 ||
                           fputc('\n', stdout) == EOF)) {
        status = 1;
    }
    json_decref(list.array);
    if (status == 0 && fflush(stdout) != 0)
        status = 1;
    return status;
}

/* The rule that remove deletes, read first so its record can name it. */
struct rule_find {
    int64_t id;
    struct acl_rule rule;
    bool found;
};

static void find_rule(void *ctx, const struct acl_rule *rule)
{
    struct rule_find *find = ctx;

    if (rule->id == find->id) {
        find->rule = *rule;
        find->found = true;
    }
}

static int run_remove(const struct acl_opts *o, struct device_db *db,
                      const struct vigil_config *cfg)
{
    struct rule_find find = {.id = o->id};
    const char *dir = cfg->data_dir;
    json_t *fields;
    vigil_err rc;

    if (acl_db_list(db, find_rule, &find) != VIGIL_OK)
        find.found = false;
    rc = acl_db_remove(db, o->id);

    if (rc == VIGIL_ERR_NOT_FOUND) {
        fprintf(stderr, "vigil acl remove: rule %" PRId64 " not found in %s/devices.db; run "
                "'vigil acl list' to see the rule numbers\n", o->id, dir);
        return 1;
    }
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil acl remove: failed to remove rule %" PRId64 " from "
                "%s/devices.db: %s\n", o->id, dir, vigil_strerror(rc));
        return 1;
    }
    printf("rule %" PRId64 " removed\n", o->id);
    if (fflush(stdout) != 0)
        return 1;
    if (find.found)
        fields = rule_fields(&find.rule);
    else
        fields = json_pack("{s:I}", "rule_id", (json_int_t)o->id);
    return record_rule(o, cfg, "acl_rule_removed", fields);
}

static int run_command(const struct acl_opts *o, const struct vigil_config *cfg)
{
    struct device_db *db = NULL;
    vigil_err rc;
    int status;

    if (o->command == ACL_CMD_ADD) {
        status = check_role(o, cfg);
        if (status >= 0)
            return status;
    }
    status = prepare_data_dir(o, cfg->data_dir);
    if (status >= 0)
        return status;
    rc = device_db_open(cfg->data_dir, &db);
    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil acl %s: failed to open %s/devices.db: %s; check that the "
                "directory is writable and the file is a vigil device database\n",
                o->name, cfg->data_dir, vigil_strerror(rc));
        return 1;
    }
    if (o->command == ACL_CMD_ADD)
        status = run_add(o, db, cfg);
    else if (o->command == ACL_CMD_LIST)
        status = run_list(o, db, cfg->data_dir);
    else
        status = run_remove(o, db, cfg);
    device_db_close(db);
    return status;
}

static int select_command(int argc, char **argv, struct acl_opts *o)
{
    static const struct {
        const char *name;
        enum acl_command command;
    } commands[] = {{"add", ACL_CMD_ADD}, {"list", ACL_CMD_LIST}, {"remove", ACL_CMD_REMOVE}};

    if (argc < 2) {
        acl_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        acl_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            o->command = commands[i].command;
            o->name = commands[i].name;
            return -1;
        }
    }
    fprintf(stderr, "vigil acl: unknown command '%s'; expected add, list or remove\n", argv[1]);
    acl_usage(stderr);
    return 2;
}

int cli_acl(int argc, char **argv)
{
    struct acl_opts o = {0};
    static struct vigil_config cfg;
    int status = select_command(argc, argv, &o);

    if (status >= 0)
        return status;
    status = parse_options(argc - 1, argv + 1, &o);
    if (status < 0)
        status = check_arguments(&o);
    if (status < 0)
        status = load_config(&o, &cfg);
    if (status < 0)
        status = run_command(&o, &cfg);
    return status;
}
