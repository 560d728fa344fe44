/* libFuzzer harness for measurement extraction. The first byte sets where
 * the input is cut into a topic and a payload. Any extracted value must be
 * finite, and its metric a known, NUL-terminated name. */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secmon/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char metric[24];
    double value = 0;
    size_t cut;
    double lo, hi;

    if (size < 1)
        return 0;
    cut = 1 + data[0] % size;
    memset(metric, 'x', sizeof metric);
    if (!secmon_extract_value((const char *)data + 1, cut - 1, data + cut, size - cut, metric,
                              sizeof metric, &value))
        return 0;
    if (memchr(metric, '\0', sizeof metric) == NULL || !isfinite(value))
        abort();
    if (!secmon_metric_range(metric, &lo, &hi, NULL))
        abort();
    return 0;
}
