/* Fuzzes the reader of the siem: section of vigil.yaml with arbitrary
 * files. The input goes through a memfd so the reader sees a real path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export/siem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct siem_config cfg;
    char path[64], err[512];
    int fd = memfd_create("siem-config", 0);

    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        siem_config_defaults(&cfg);
        siem_config_load_file(&cfg, path, err, sizeof err);
    }
    close(fd);
    return 0;
}
