/* Device passwords for the simulator and the station, read from a file of
 * "id password" lines ('#' starts a comment). The file is expected to be
 * readable by its owner only. */
#ifndef VIGIL_SIM_CREDENTIALS_H
#define VIGIL_SIM_CREDENTIALS_H

#include "core/error.h"

#define CREDENTIALS_MAX_ENTRIES 100000

struct credentials;

/* Loads path. VIGIL_ERR_IO when it cannot be read, VIGIL_ERR_INVALID with a
 * logged file:line for a malformed line. *out is owned by the caller and
 * released with credentials_free(), which also wipes the passwords. */
vigil_err credentials_load(const char *path, struct credentials **out);
/* Returns the password of id, or NULL. Valid until credentials_free(). */
const char *credentials_find(const struct credentials *c, const char *id);
void credentials_free(struct credentials *c);

#endif
