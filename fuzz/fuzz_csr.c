/* libFuzzer harness for pki_csr_check: any input is parsed as a PEM
 * certificate signing request for device "dev-1". The check must return
 * VIGIL_OK or VIGIL_ERR_INVALID, and on failure a NUL-terminated reason. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/pki.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    vigil_err rc;

    memset(err, 'x', sizeof err);
    rc = pki_csr_check((const char *)data, size, "dev-1", err, sizeof err);
    if (rc != VIGIL_OK && rc != VIGIL_ERR_INVALID)
        abort();
    if (rc == VIGIL_ERR_INVALID && (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0'))
        abort();
    return 0;
}
