/* Reading pcap and pcapng captures with libpcap for passive analysis. */
#include <pcap/pcap.h>
#include <stdio.h>

#include "passive/passive.h"

static vigil_err read_all(struct passive *p, pcap_t *pc, char *errbuf, size_t errcap)
{
    int link = pcap_datalink(pc);
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int r;

    while ((r = pcap_next_ex(pc, &hdr, &data)) == 1) {
        int64_t ts = (int64_t)hdr->ts.tv_sec * 1000000 + hdr->ts.tv_usec;

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
