/* Descriptions for vigil_err values. */
#include "core/error.h"

#include <stddef.h>

const char *vigil_strerror(vigil_err err)
{
    static const char *const text[VIGIL_ERR_COUNT] = {
        [VIGIL_OK] = "success",
        [VIGIL_ERR_NOMEM] = "out of memory",
        [VIGIL_ERR_INVALID] = "invalid argument",
        [VIGIL_ERR_AGAIN] = "incomplete input",
        [VIGIL_ERR_PROTOCOL] = "protocol violation",
        [VIGIL_ERR_LIMIT] = "limit reached",
        [VIGIL_ERR_IO] = "input/output error",
        [VIGIL_ERR_NOT_FOUND] = "not found",
        [VIGIL_ERR_EXISTS] = "already exists",
        [VIGIL_ERR_AUTH] = "authentication failed",
        [VIGIL_ERR_DENIED] = "access denied",
        [VIGIL_ERR_CONFIG] = "invalid configuration",
        [VIGIL_ERR_STORE] = "store failure",
        [VIGIL_ERR_CLOSED] = "closed",
    };

    if ((unsigned)err >= VIGIL_ERR_COUNT || text[err] == NULL)
        return "unknown error";
    return text[err];
}
