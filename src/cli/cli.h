/* Subcommand entry points. Each takes argv starting at the subcommand name
 * and returns the exit status: 0 success, 1 failure, 2 usage error. */
#ifndef VIGIL_CLI_CLI_H
#define VIGIL_CLI_CLI_H

#include "config/config.h"

/* Loads the embedded default, then config_path (may be NULL), then the
 * data_dir override (may be NULL), printing errors as "vigil COMMAND: ...".
 * Returns an exit status, or -1 to go on. */
int cli_load_config(const char *command, const char *config_path, const char *data_dir,
                    struct vigil_config *cfg);

int cli_serve(int argc, char **argv);
int cli_device(int argc, char **argv);
int cli_sim(int argc, char **argv);
int cli_station(int argc, char **argv);
int cli_acl(int argc, char **argv);
int cli_analyze(int argc, char **argv);
int cli_audit(int argc, char **argv);
int cli_alerts(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_siem(int argc, char **argv);  /* siem-send: diagnostic, not in the usage list */
int cli_bench(int argc, char **argv);

#endif
