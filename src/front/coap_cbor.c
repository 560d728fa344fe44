/* A bounded CBOR (RFC 8949) reader and writer for the SenML subset:
 * definite-length items only, nesting capped by CBOR_MAX_DEPTH. */
#include <math.h>
#include <string.h>

#include "front/coap_internal.h"

/* Reads the argument of a head with additional information ai. */
static vigil_err cbor_arg(struct cbor_reader *r, uint8_t ai, uint64_t *out)
{
    size_t n;

    if (ai < 24) {
        *out = ai;
        return VIGIL_OK;
    }
    if (ai > 27)
        return VIGIL_ERR_INVALID; /* 28-30 reserved, 31 indefinite length */
    n = (size_t)1 << (ai - 24);
    if ((size_t)(r->end - r->p) < n)
        return VIGIL_ERR_INVALID;
    *out = 0;
    for (size_t i = 0; i < n; i++)
        *out = *out << 8 | r->p[i];
    r->p += n;
    return VIGIL_OK;
}

/* IEEE 754 half precision to double (RFC 8949 appendix D). */
static double cbor_half(uint16_t h)
{
    int exp = (h >> 10) & 0x1F;
    double mant = h & 0x3FF;
    double v;

    if (exp == 0)
        v = ldexp(mant, -24);
    else if (exp != 31)
        v = ldexp(mant + 1024, exp - 25);
    else
        v = mant == 0 ? INFINITY : NAN;
    return (h & 0x8000) != 0 ? -v : v;
}

static vigil_err cbor_simple(struct cbor_item *it, uint8_t ai, uint64_t arg)
{
    if (ai == 25) {
        it->type = CBOR_FLOAT;
        it->f = cbor_half((uint16_t)arg);
    } else if (ai == 26) {
        uint32_t bits = (uint32_t)arg;
        float f;

        memcpy(&f, &bits, sizeof f);
        it->type = CBOR_FLOAT;
        it->f = f;
    } else if (ai == 27) {
        it->type = CBOR_FLOAT;
        memcpy(&it->f, &arg, sizeof it->f);
    } else if (arg == 20) {
        it->type = CBOR_FALSE;
    } else if (arg == 21) {
        it->type = CBOR_TRUE;
    } else if (arg == 22) {
        it->type = CBOR_NULL;
    } else if (arg == 23) {
        it->type = CBOR_UNDEFINED;
    } else {
        return VIGIL_ERR_INVALID;
    }
    return VIGIL_OK;
}

vigil_err cbor_read(struct cbor_reader *r, struct cbor_item *it)
{
    unsigned tags = 0;

    memset(it, 0, sizeof *it);
    for (;;) {
        uint8_t major, ai;
        uint64_t arg;

        if (r->p >= r->end)
            return VIGIL_ERR_INVALID;
        major = r->p[0] >> 5;
        ai = r->p[0] & 0x1F;
        r->p++;
        if (cbor_arg(r, ai, &arg) != VIGIL_OK)
            return VIGIL_ERR_INVALID;
        switch (major) {
        case 0: it->type = CBOR_UINT; it->u = arg; return VIGIL_OK;
        case 1: it->type = CBOR_NEGINT; it->u = arg; return VIGIL_OK;
        case 2:
        case 3:
            if (arg > (uint64_t)(r->end - r->p))
                return VIGIL_ERR_INVALID;
            it->type = major == 2 ? CBOR_BYTES : CBOR_TEXT;
            it->len = arg;
            it->data = r->p;
            r->p += arg;
            return VIGIL_OK;
        case 4:
        case 5:
            if (arg > CBOR_MAX_ITEMS)
                return VIGIL_ERR_INVALID;
            it->type = major == 4 ? CBOR_ARRAY : CBOR_MAP;
            it->len = arg;
            return VIGIL_OK;
        case 6:
            /* A tag only annotates the item after it; a chain of them is
             * capped like nesting. */
            if (++tags > CBOR_MAX_DEPTH)
                return VIGIL_ERR_INVALID;
            continue;
        default:
            return cbor_simple(it, ai, arg);
        }
    }
}

static vigil_err cbor_skip_depth(struct cbor_reader *r, unsigned depth)
{
    struct cbor_item it;
    uint64_t n;

    if (depth > CBOR_MAX_DEPTH)
        return VIGIL_ERR_INVALID;
    if (cbor_read(r, &it) != VIGIL_OK)
        return VIGIL_ERR_INVALID;
    if (it.type != CBOR_ARRAY && it.type != CBOR_MAP)
        return VIGIL_OK;
    n = it.type == CBOR_MAP ? it.len * 2 : it.len;
    for (uint64_t i = 0; i < n; i++)
        if (cbor_skip_depth(r, depth + 1) != VIGIL_OK)
            return VIGIL_ERR_INVALID;
    return VIGIL_OK;
}

vigil_err cbor_skip(struct cbor_reader *r)
{
    return cbor_skip_depth(r, 1);
}

bool cbor_int(const struct cbor_item *it, int64_t *out)
{
    if (it->type == CBOR_UINT && it->u <= INT64_MAX) {
        *out = (int64_t)it->u;
        return true;
    }
    if (it->type == CBOR_NEGINT && it->u <= INT64_MAX) {
        *out = -1 - (int64_t)it->u;
        return true;
    }
    return false;
}

bool cbor_number(const struct cbor_item *it, double *out)
{
    if (it->type == CBOR_UINT) {
        *out = (double)it->u;
        return true;
    }
    if (it->type == CBOR_NEGINT) {
        *out = -1.0 - (double)it->u;
        return true;
    }
    if (it->type == CBOR_FLOAT) {
        *out = it->f;
        return true;
    }
    return false;
}

bool cbor_put_head(uint8_t *out, size_t cap, size_t *n, uint8_t major, uint64_t arg)
{
    uint8_t ai;
    size_t len;

    if (arg < 24) {
        ai = (uint8_t)arg;
        len = 0;
    } else if (arg <= 0xFF) {
        ai = 24;
        len = 1;
    } else if (arg <= 0xFFFF) {
        ai = 25;
        len = 2;
    } else if (arg <= 0xFFFFFFFFu) {
        ai = 26;
        len = 4;
    } else {
        ai = 27;
        len = 8;
    }
    if (*n > cap || cap - *n < len + 1)
        return false;
    out[(*n)++] = (uint8_t)(major << 5 | ai);
    for (size_t i = len; i > 0; i--)
        out[(*n)++] = (uint8_t)(arg >> (8 * (i - 1)));
    return true;
}

bool cbor_put_int(uint8_t *out, size_t cap, size_t *n, int64_t v)
{
    if (v >= 0)
        return cbor_put_head(out, cap, n, 0, (uint64_t)v);
    return cbor_put_head(out, cap, n, 1, (uint64_t)(-1 - v));
}

bool cbor_put_text(uint8_t *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (!cbor_put_head(out, cap, n, 3, len) || cap - *n < len)
        return false;
    if (len > 0)
        memcpy(out + *n, s, len);
    *n += len;
    return true;
}

/* Writes an integral value as an integer and anything else as a double,
 * the shortest exact forms this writer knows. */
bool cbor_put_double(uint8_t *out, size_t cap, size_t *n, double v)
{
    uint64_t bits;

    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return cbor_put_int(out, cap, n, (int64_t)v);
    memcpy(&bits, &v, sizeof bits);
    if (*n > cap || cap - *n < 9)
        return false;
    out[(*n)++] = 0xFB;
    for (int i = 7; i >= 0; i--)
        out[(*n)++] = (uint8_t)(bits >> (8 * i));
    return true;
}
