/* `vigil audit`: verifies the tamper-evident audit log, prints its last
 * records, and appends operator notes. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "audit/audit_internal.h"
#include "cli/cli.h"
#include "core/alloc.h"
#include "core/log.h"

#define DEFAULT_AUDIT_DIR "./vigil-data/audit"
#define TAIL_MAX 100000

static void audit_usage(FILE *out)
{
    fputs("usage: vigil audit <verify|tail|append> [options] [DIR]\n"
          "\n"
          "Works on the audit log in DIR (default " DEFAULT_AUDIT_DIR "), the\n"
          "audit/ directory inside vigil's data directory.\n"
          "\n"
          "commands:\n"
          "  verify   check every record's hash, the chain and the signed checkpoints\n"
          "  tail     print the last records\n"
          "  append   append one record, for operator notes and tests\n"
          "\n"
          "Run 'vigil audit <command> --help' for the options of a command.\n",
          out);
}

static void verify_usage(FILE *out)
{
    fputs("usage: vigil audit verify [DIR] [--pubkey FILE] [--json] [--strict]\n"
          "\n"
          "Checks that every line of every segment parses, seq rises by exactly 1,\n"
          "prev equals the previous record's hash, hash matches the record, and each\n"
          "checkpoint's Ed25519 signature is valid. Names the first bad record and\n"
          "never changes a file. Exit status: 0 valid, 1 invalid, 2 usage error.\n"
          "\n"
          "options:\n"
          "      --pubkey FILE   verify with this PEM public key instead of DIR/signing.pub;\n"
          "                      a copy kept elsewhere detects a rewrite of the whole log\n"
          "      --json          print the report as one JSON object\n"
          "      --strict        treat warnings (unsigned records, a torn last line) as errors\n"
          "  -h, --help          show this help\n",
          out);
}

static void tail_usage(FILE *out)
{
    fputs("usage: vigil audit tail [DIR] [-n N]\n"
          "\n"
          "Prints the last N complete records (default 10, at most 100000) as stored.\n"
          "\n"
          "options:\n"
          "  -n, --lines N   number of records to print\n"
          "  -h, --help      show this help\n",
          out);
}

static void append_usage(FILE *out)
{
    fputs("usage: vigil audit append --type TYPE [--json OBJECT] [DIR] [options]\n"
          "\n"
          "Appends a record while no hub holds the log open (the log is locked by\n"
          "one process at a time), then writes a final checkpoint.\n"
          "\n"
          "options:\n"
          "      --type TYPE             record type: a-z, 0-9 and _, 1 to 32 bytes\n"
          "      --json OBJECT           members of the record, as a JSON object\n"
          "      --count N               append N such records (default 1)\n"
          "      --segment-size BYTES    rotate segments at this size (default 64 MiB)\n"
          "      --checkpoint-every N    sign a checkpoint every N records (default 1000)\n"
          "  -h, --help                  show this help\n",
          out);
}

/* Parses a positive decimal number of at most max. */
static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}

static int audit_verify_cmd(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "pubkey", required_argument, NULL, 'k' },
        { "json", no_argument, NULL, 'j' },
        { "strict", no_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct audit_verify_opts opts = { 0 };
    struct audit_report *report;
    const char *dir = DEFAULT_AUDIT_DIR;
    bool as_json = false;
    int c;
    int status;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            opts.pubkey_path = optarg;
            break;
        case 'j':
            as_json = true;
            break;
        case 's':
            opts.strict = true;
            break;
        case 'h':
            verify_usage(stdout);
            return 0;
        default:
            verify_usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, "vigil audit verify: expected at most one DIR, got %d arguments\n",
                argc - optind);
        return 2;
    }
    if (optind < argc)
        dir = argv[optind];
    report = vigil_malloc(sizeof *report);
    if (report == NULL || audit_verify_dir(dir, &opts, report) != VIGIL_OK) {
        fprintf(stderr, "vigil audit verify: out of memory\n");
        vigil_free(report);
        return 1;
    }
    if (as_json) {
        json_t *obj = audit_report_json(report);

        json_dumpf(obj, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(obj);
    } else {
        audit_report_print(report, stdout);
    }
    status = report->valid ? 0 : 1;
    vigil_free(report);
    return status;
}

/* The last lines seen, in a ring of n slots. */
struct tail_ring {
    char **lines;
    size_t n;
    size_t count;   /* lines pushed in total */
};

static vigil_err ring_push(struct tail_ring *ring, const char *line, size_t len)
{
    char *copy = vigil_strndup(line, len);
    size_t slot = ring->count % ring->n;

    if (copy == NULL)
        return VIGIL_ERR_NOMEM;
    vigil_free(ring->lines[slot]);
    ring->lines[slot] = copy;
    ring->count++;
    return VIGIL_OK;
}

/* Counts or collects the complete lines of one segment. */
static vigil_err tail_segment(const char *dir, uint32_t index, struct tail_ring *ring,
                              char *buf, uint64_t *lines)
{
    char name[AUDIT_SEGMENT_NAME_MAX];
    char path[4096];
    enum audit_line kind;
    size_t len;
    FILE *f;
    vigil_err rc = VIGIL_OK;

    audit_segment_name(index, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "vigil audit tail: cannot read %s: %s\n", path, strerror(errno));
        return VIGIL_ERR_IO;
    }
    *lines = 0;
    while (rc == VIGIL_OK && (kind = audit_line_read(f, buf, AUDIT_MAX_LINE, &len)) !=
                                 AUDIT_LINE_EOF) {
        if (kind != AUDIT_LINE_OK)
            continue;
        (*lines)++;
        if (ring != NULL)
            rc = ring_push(ring, buf, len);
    }
    fclose(f);
    return rc;
}

/* Prints the last ring->n complete lines of the segments in dir. */
static vigil_err tail_print(const char *dir, struct tail_ring *ring, char *buf)
{
    uint32_t *segs = NULL;
    size_t count = 0;
    size_t first;
    uint64_t total = 0;
    uint64_t lines;
    vigil_err rc = audit_segments_list(dir, &segs, &count);

    if (rc != VIGIL_OK) {
        fprintf(stderr, "vigil audit tail: cannot read %s: %s\n", dir, strerror(errno));
        return rc;
    }
    /* Walk back only as far as needed to find n lines. */
    for (first = count; first > 0 && total < ring->n; first--) {
        rc = tail_segment(dir, segs[first - 1], NULL, buf, &lines);
        if (rc != VIGIL_OK)
            goto out;
        total += lines;
    }
    for (size_t i = first; i < count && rc == VIGIL_OK; i++)
        rc = tail_segment(dir, segs[i], ring, buf, &lines);
    for (size_t i = ring->count > ring->n ? ring->count - ring->n : 0; i < ring->count; i++)
        printf("%s\n", ring->lines[i % ring->n]);
out:
    vigil_free(segs);
    return rc;
}

static int audit_tail_cmd(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "lines", required_argument, NULL, 'n' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct tail_ring ring = { .n = 10 };
    const char *dir = DEFAULT_AUDIT_DIR;
    uint64_t n;
    char *buf;
    int c;
    vigil_err rc;

    while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        if (c == 'n' && parse_count(optarg, TAIL_MAX, &n)) {
            ring.n = (size_t)n;
        } else if (c == 'n') {
            fprintf(stderr, "vigil audit tail: invalid -n '%s': expected 1 to %d\n", optarg,
                    TAIL_MAX);
            return 2;
        } else if (c == 'h') {
            tail_usage(stdout);
            return 0;
        } else {
            tail_usage(stderr);
            return 2;
        }
    }
    if (argc - optind > 1) {
        tail_usage(stderr);
        return 2;
    }
    if (optind < argc)
        dir = argv[optind];
    ring.lines = vigil_calloc(ring.n, sizeof *ring.lines);
    buf = vigil_malloc(AUDIT_MAX_LINE);
    rc = ring.lines == NULL || buf == NULL ? VIGIL_ERR_NOMEM : tail_print(dir, &ring, buf);
    for (size_t i = 0; ring.lines != NULL && i < ring.n; i++)
        vigil_free(ring.lines[i]);
    vigil_free(ring.lines);
    vigil_free(buf);
    return rc == VIGIL_OK ? 0 : 1;
}

struct append_args {
    const char *type;
    const char *json;
    const char *dir;
    uint64_t count;
    struct audit_opts opts;
};

/* Parses append's options; returns -1 to go on, or an exit status. */
static int append_parse(int argc, char **argv, struct append_args *a)
{
    static const struct option longopts[] = {
        { "type", required_argument, NULL, 't' },
        { "json", required_argument, NULL, 'j' },
        { "count", required_argument, NULL, 'c' },
        { "segment-size", required_argument, NULL, 'S' },
        { "checkpoint-every", required_argument, NULL, 'C' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t n;
    int c;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 't') {
            a->type = optarg;
        } else if (c == 'j') {
            a->json = optarg;
        } else if (c == 'c' && parse_count(optarg, 10000000, &n)) {
            a->count = n;
        } else if (c == 'S' && parse_count(optarg, UINT64_MAX, &n)) {
            a->opts.segment_max_bytes = n;
        } else if (c == 'C' && parse_count(optarg, UINT32_MAX, &n)) {
            a->opts.checkpoint_every = (uint32_t)n;
        } else if (c == 'h') {
            append_usage(stdout);
            return 0;
        } else {
            if (c == 'c' || c == 'S' || c == 'C')
                fprintf(stderr, "vigil audit append: invalid number '%s'\n", optarg);
            append_usage(stderr);
            return 2;
        }
    }
    if (a->type == NULL || argc - optind > 1) {
        append_usage(stderr);
        return 2;
    }
    if (optind < argc)
        a->dir = argv[optind];
    return -1;
}

static int audit_append_cmd(int argc, char **argv)
{
    struct append_args a = { .dir = DEFAULT_AUDIT_DIR, .count = 1, .opts.no_timer = true };
    struct audit_log *log = NULL;
    json_t *fields = NULL;
    json_error_t jerr;
    vigil_err rc = VIGIL_OK;
    int status = append_parse(argc, argv, &a);

    if (status >= 0)
        return status;
    vigil_log_set_level(VIGIL_LOG_WARN);
    if (a.json != NULL) {
        fields = json_loads(a.json, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(fields)) {
            fprintf(stderr, "vigil audit append: --json must be a JSON object: %s\n",
                    fields == NULL ? jerr.text : "got another JSON value");
            json_decref(fields);
            return 2;
        }
    }
    rc = audit_open_dir(a.dir, &a.opts, &log);
    if (rc != VIGIL_OK) {
        /* The reason is logged above. An invalid key file is no usage error, so the status is 1. */
        fprintf(stderr, "vigil audit append: cannot open the log in %s: %s\n", a.dir,
                vigil_strerror(rc));
        json_decref(fields);
        return 1;
    }
    for (uint64_t i = 0; rc == VIGIL_OK && i < a.count; i++)
        rc = audit_append(log, a.type, fields);
    if (rc == VIGIL_ERR_INVALID)
        fprintf(stderr, "vigil audit append: invalid --type '%s' (a-z, 0-9 and _, not "
                "\"checkpoint\") or a reserved member in --json (seq, ts, type, prev, hash)\n",
                a.type);
    else if (rc != VIGIL_OK)
        fprintf(stderr, "vigil audit append: %s\n", vigil_strerror(rc));
    else
        printf("seq %" PRIu64 "\n", audit_last_seq(log));
    if (audit_close(log) != VIGIL_OK)
        rc = VIGIL_ERR_IO;
    json_decref(fields);
    if (rc == VIGIL_ERR_INVALID)
        return 2;
    return rc == VIGIL_OK ? 0 : 1;
}

int cli_audit(int argc, char **argv)
{
    if (argc < 2) {
        audit_usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        audit_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "verify") == 0)
        return audit_verify_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "tail") == 0)
        return audit_tail_cmd(argc - 1, argv + 1);
    if (strcmp(argv[1], "append") == 0)
        return audit_append_cmd(argc - 1, argv + 1);
    fprintf(stderr, "vigil audit: unknown command '%s'\n", argv[1]);
    audit_usage(stderr);
    return 2;
}
