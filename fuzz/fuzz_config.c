/* libFuzzer harness for the YAML configuration loader and the listener
 * parser. A load that succeeds must also leave a configuration that
 * config_validate can check without reading past any field. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct vigil_config cfg;
    struct config_listener listener;
    char spec[128];
    char err[512];

    config_defaults(&cfg);
    if (config_load_buffer(&cfg, "fuzz.yaml", data, size, err, sizeof err) == VIGIL_OK)
        (void)config_validate(&cfg, err, sizeof err);

    if (size < sizeof spec) {
        memcpy(spec, data, size);
        spec[size] = '\0';
        (void)config_parse_listener(spec, &listener, err, sizeof err);
    }
    return 0;
}
