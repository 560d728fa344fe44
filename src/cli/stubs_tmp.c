/* Temporary entry points until each subcommand lands. */
#include <stdio.h>
#include "cli/cli.h"
int cli_station(int argc, char **argv) { (void)argc; (void)argv; fputs("not yet\n", stderr); return 1; }
