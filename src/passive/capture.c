/* Reading pcap and pcapng captures with libpcap for passive analysis. */
#include <pcap/pcap.h>
#include <stdio.h>

#include "passive/passive.h"

/* 9999-12-31T23:59:59Z */
#define MAX_CAPTURE_SECONDS INT64_C(253402300799)

static vigil_err read_all(struct passive *p, pcap_t *pc, char *errbuf, size_t errcap)
{
    int link = pcap_datalink(pc);
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int r;

    while ((r = pcap_next_ex(pc, &hdr, &data)) == 1) {
        /* Damaged files carry any timestamp: clamp to years 1970 to 9999. */
        int64_t sec = hdr->ts.tv_sec < 0 ? 0 : hdr->ts.tv_sec;
        int64_t ts;

        if (sec > MAX_CAPTURE_SECONDS)
            sec = MAX_CAPTURE_SECONDS;
        ts = sec * 1000000 + (hdr->ts.tv_usec % 1000000);

        passive_feed_frame(p, link, ts, data, hdr->caplen);
    }
    passive_finish(p);
    if (r == PCAP_ERROR) {
        snprintf(errbuf, errcap, "%s", pcap_geterr(pc));
        return VIGIL_ERR_IO;
    }
    return VIGIL_OK;
}

vigil_err passive_read_file(struct passive *p, const char *path, char *errbuf, size_t errcap)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_MICRO, perr);
    vigil_err rc;

    if (pc == NULL) {
        snprintf(errbuf, errcap, "%s", perr);
        return VIGIL_ERR_IO;
    }
    rc = read_all(p, pc, errbuf, errcap);
    pcap_close(pc);
    return rc;
}

vigil_err passive_read_stream(struct passive *p, FILE *fp, char *errbuf, size_t errcap)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_MICRO, perr);
    vigil_err rc;

    if (pc == NULL) {
        fclose(fp);
        snprintf(errbuf, errcap, "%s", perr);
        return VIGIL_ERR_IO;
    }
    rc = read_all(p, pc, errbuf, errcap);
    pcap_close(pc);
    return rc;
}
