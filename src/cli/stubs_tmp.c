/* Temporary entry points until each subcommand lands. */
#include <stdio.h>
#include "cli/cli.h"
