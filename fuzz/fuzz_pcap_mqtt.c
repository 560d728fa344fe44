/* libFuzzer harness for passive analysis: the input is read as a pcap or
 * pcapng file and goes through frame parsing, TCP reassembly and MQTT
 * decoding. Small caps make eviction, gaps and resynchronization frequent,
 * and the harness checks that memory comes back to where it started. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "passive/passive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_event(void *ctx, const struct vigil_event *ev)
{
    (*(uint64_t *)ctx)++;
}

static void on_tick(void *ctx, int64_t now_us)
{
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct passive_config cfg;
    struct passive *p;
    uint64_t events = 0;
    char err[256];
    size_t before = vigil_alloc_in_use();
    FILE *fp;

    if (size == 0)
        return 0;
    fp = fmemopen((void *)data, size, "rb");
    if (fp == NULL)
        return 0;
    passive_config_defaults(&cfg);
    cfg.ports[1] = 80;
    cfg.n_ports = 2;
    cfg.max_flows = 8;
    cfg.ooo_dir_cap = 4096;
    cfg.ooo_dir_segments = 8;
    cfg.ooo_total_cap = 16384;
    cfg.packet_cap = 2048;
    cfg.idle_timeout_s = 30;
    if (passive_new(&cfg, on_event, on_tick, &events, &p) != VIGIL_OK) {
        fclose(fp);
        return 0;
    }
    passive_read_stream(p, fp, err, sizeof err);
    if (passive_get_stats(p)->ooo_bytes_peak > cfg.ooo_total_cap)
        abort();
    passive_free(p);
    if (vigil_alloc_in_use() != before)
        abort();
    return 0;
}
