/* vigil: the one binary. Dispatches to the subcommands. */
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
    fputs("usage: vigil <command> [options]\n"
          "\n"
          "commands:\n"
          "  serve     run the hub (MQTT broker, store, events)\n"
          "  device    manage devices and their certificates (add, list, remove,\n"
          "            rotate, revoke, certs)\n"
          "  acl       manage stored access rules for devices and roles\n"
          "  audit     verify and read the tamper-evident audit log\n"
          "  sim       replay recorded vital signs as a fleet of bedside monitors\n"
          "  station   central-station subscriber with a live view\n"
          "  analyze   passive analysis of a pcap or pcapng capture\n"
          "  alerts    list, acknowledge and resolve security alerts\n"
          "  report    alert counts, mean time to detect and to resolve\n"
          "  bench     benchmarks beside a peer broker (mosquitto) on loopback\n"
          "\n"
          "Run 'vigil <command> --help' for the options of a command.\n",
          out);
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } commands[] = {
        {"serve", cli_serve},
        {"device", cli_device},
        {"acl", cli_acl},
        {"audit", cli_audit},
        {"sim", cli_sim},
        {"station", cli_station},
        {"analyze", cli_analyze},
        {"alerts", cli_alerts},
        {"report", cli_report},
        {"siem-send", cli_siem},
        {"bench", cli_bench},
    };

    /* A peer that closes its socket must cost only its own connection: a
     * write to it returns EPIPE instead of killing the process. */
    signal(SIGPIPE, SIG_IGN);
    /* With SIGXFSZ ignored, a write past the file size limit (RLIMIT_FSIZE)
     * fails with EFBIG instead of killing the process, and each writer
     * handles that error as it handles a full disk. */
    signal(SIGXFSZ, SIG_IGN);
    /* Every file vigil writes (databases with PSKs and vital signs, keys,
     * logs) is for its own user only. */
    umask(077);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vigil: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
