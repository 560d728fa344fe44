/* Link-layer, IP and TCP header parsing for passive analysis. */
#include <string.h>

#include "passive/passive.h"

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_IPV6 0x86DD
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_QINQ 0x88A8
#define IPPROTO_TCP_NUM 6
#define MAX_VLAN_TAGS 4
#define MAX_IPV6_EXT_HEADERS 8

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static vigil_err parse_tcp(const uint8_t *p, size_t len, struct passive_segment *out)
{
    size_t off;

    if (len < 20)
        return VIGIL_ERR_INVALID;
    off = (size_t)(p[12] >> 4) * 4;
    if (off < 20 || off > len)
        return VIGIL_ERR_INVALID;
    out->sport = rd16(p);
    out->dport = rd16(p + 2);
    out->seq = rd32(p + 4);
    out->flags = p[13];
    out->payload = p + off;
    out->len = len - off;
    return VIGIL_OK;
}

static vigil_err parse_ipv4(const uint8_t *p, size_t len, struct passive_segment *out)
{
    size_t ihl, total;
    uint16_t frag;

    if (len < 20 || (p[0] >> 4) != 4)
        return VIGIL_ERR_INVALID;
    ihl = (size_t)(p[0] & 0x0F) * 4;
    total = rd16(p + 2);
    if (ihl < 20 || total < ihl || ihl > len)
        return VIGIL_ERR_INVALID;
    /* Ethernet padding follows short packets, and a capture may cut the
     * frame: the smaller of the two lengths bounds the payload. */
    if (total < len)
        len = total;
    frag = rd16(p + 6);
    if ((frag & 0x3FFF) != 0)
        return VIGIL_ERR_NOT_FOUND; /* a fragment: not reassembled */
    if (p[9] != IPPROTO_TCP_NUM)
        return VIGIL_ERR_NOT_FOUND;
    memset(&out->src, 0, sizeof out->src);
    memset(&out->dst, 0, sizeof out->dst);
    out->src.family = out->dst.family = 4;
    memcpy(out->src.ip, p + 12, 4);
    memcpy(out->dst.ip, p + 16, 4);
    return parse_tcp(p + ihl, len - ihl, out);
}

/* Skips IPv6 extension headers; a Fragment header ends the search. */
static vigil_err ipv6_skip_ext(const uint8_t *p, size_t len, uint8_t *next, size_t *off)
{
    for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
        size_t hlen;

        switch (*next) {
        case 0:   /* Hop-by-Hop Options */
        case 43:  /* Routing */
        case 60:  /* Destination Options */
            if (*off + 8 > len)
                return VIGIL_ERR_INVALID;
            hlen = ((size_t)p[*off + 1] + 1) * 8;
            break;
        case 44:  /* Fragment */
            return VIGIL_ERR_NOT_FOUND;
        default:
            return VIGIL_OK;
        }
        if (*off + hlen > len)
            return VIGIL_ERR_INVALID;
        *next = p[*off];
        *off += hlen;
    }
    return VIGIL_ERR_NOT_FOUND;
}

static vigil_err parse_ipv6(const uint8_t *p, size_t len, struct passive_segment *out)
{
    size_t payload_len, off = 40;
    uint8_t next;
    vigil_err rc;

    if (len < 40 || (p[0] >> 4) != 6)
        return VIGIL_ERR_INVALID;
    payload_len = rd16(p + 4);
    if (40 + payload_len < len)
        len = 40 + payload_len;
    next = p[6];
    rc = ipv6_skip_ext(p, len, &next, &off);
    if (rc != VIGIL_OK)
        return rc;
    if (next != IPPROTO_TCP_NUM)
        return VIGIL_ERR_NOT_FOUND;
    out->src.family = out->dst.family = 6;
    memcpy(out->src.ip, p + 8, 16);
    memcpy(out->dst.ip, p + 24, 16);
    return parse_tcp(p + off, len - off, out);
}

static vigil_err parse_ethertype(uint16_t type, const uint8_t *p, size_t len,
                                 struct passive_segment *out)
{
    if (type == ETHERTYPE_IPV4)
        return parse_ipv4(p, len, out);
    if (type == ETHERTYPE_IPV6)
        return parse_ipv6(p, len, out);
    return VIGIL_ERR_NOT_FOUND;
}

/* Dispatches on the IP version nibble, for link types without a type field. */
static vigil_err parse_ip(const uint8_t *p, size_t len, struct passive_segment *out)
{
    if (len < 1)
        return VIGIL_ERR_INVALID;
    if ((p[0] >> 4) == 4)
        return parse_ipv4(p, len, out);
    if ((p[0] >> 4) == 6)
        return parse_ipv6(p, len, out);
    return VIGIL_ERR_INVALID;
}

static vigil_err parse_ethernet(const uint8_t *p, size_t len, struct passive_segment *out)
{
    size_t off = 12;
    uint16_t type;

    if (len < 14)
        return VIGIL_ERR_INVALID;
    type = rd16(p + off);
    for (int i = 0; i < MAX_VLAN_TAGS && (type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ); i++) {
        off += 4;
        if (off + 2 > len)
            return VIGIL_ERR_INVALID;
        type = rd16(p + off);
    }
    off += 2;
    return parse_ethertype(type, p + off, len - off, out);
}

/* BSD null and OpenBSD loop headers: a 4-byte address family, in the byte
 * order of the capturing machine (null) or network order (loop). AF_INET6
 * differs between systems, so the IP version nibble decides instead. */
static vigil_err parse_null(const uint8_t *p, size_t len, struct passive_segment *out)
{
    if (len < 4)
        return VIGIL_ERR_INVALID;
    return parse_ip(p + 4, len - 4, out);
}

vigil_err passive_parse_frame(int link, const uint8_t *frame, size_t caplen,
                              struct passive_segment *out)
{
    memset(out, 0, sizeof *out);
    switch (link) {
    case PASSIVE_LINK_ETHERNET:
        return parse_ethernet(frame, caplen, out);
    case PASSIVE_LINK_NULL:
    case PASSIVE_LINK_LOOP:
        return parse_null(frame, caplen, out);
    case PASSIVE_LINK_RAW_DLT:
    case PASSIVE_LINK_RAW_DLT_BSD:
    case PASSIVE_LINK_RAW:
        return parse_ip(frame, caplen, out);
    case PASSIVE_LINK_IPV4:
        return parse_ipv4(frame, caplen, out);
    case PASSIVE_LINK_IPV6:
        return parse_ipv6(frame, caplen, out);
    case PASSIVE_LINK_SLL:
        /* 16 bytes: packet type, ARPHRD, address length, 8 address bytes, protocol. */
        if (caplen < 16)
            return VIGIL_ERR_INVALID;
        return parse_ethertype(rd16(frame + 14), frame + 16, caplen - 16, out);
    case PASSIVE_LINK_SLL2:
        /* 20 bytes: protocol first, then interface index, ARPHRD, packet
         * type, address length and 8 address bytes. */
        if (caplen < 20)
            return VIGIL_ERR_INVALID;
        return parse_ethertype(rd16(frame), frame + 20, caplen - 20, out);
    default:
        return VIGIL_ERR_INVALID;
    }
}
