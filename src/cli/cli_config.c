/* Configuration loading shared by the administrative subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cli_load_config(const char *command, const char *config_path, const char *data_dir,
                    struct vigil_config *cfg)
{
    char err[512];

    config_defaults(cfg);
    if (config_path != NULL && (config_load_file(cfg, config_path, err, sizeof err) != VIGIL_OK ||
                                config_validate(cfg, err, sizeof err) != VIGIL_OK)) {
        fprintf(stderr, "vigil %s: %s\n", command, err);
        return 1;
    }
    if (data_dir != NULL) {
        if (data_dir[0] == '\0' || strlen(data_dir) >= sizeof cfg->data_dir) {
            fprintf(stderr, "vigil %s: --data-dir must be 1 to %zu bytes long\n", command,
                    sizeof cfg->data_dir - 1);
            return 2;
        }
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", data_dir);
    }
    return -1;
}
