/* SenML CBOR (RFC 8428 section 6): reading packs with the integer labels
 * of table 6, and converting SenML JSON packs to CBOR for clients that ask
 * for Content-Format 112. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "front/coap_internal.h"
#include "proto/mqtt/mqtt.h"

/* Labels of RFC 8428 table 6. */
enum senml_label {
    LABEL_BS = -6,
    LABEL_BV = -5,
    LABEL_BU = -4,
    LABEL_BT = -3,
    LABEL_BN = -2,
    LABEL_BVER = -1,
    LABEL_N = 0,
    LABEL_U = 1,
    LABEL_V = 2,
    LABEL_VS = 3,
    LABEL_VB = 4,
    LABEL_S = 5,
    LABEL_T = 6,
    LABEL_UT = 7,
    LABEL_VD = 8,
};

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Base64url without padding (RFC 4648 section 5), as SenML JSON writes
 * data values. Returns the length, or 0 when out is too small. */
static size_t base64url_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    size_t need = len / 3 * 4 + (len % 3 != 0 ? len % 3 + 1 : 0) + 1;

    if (need > cap)
        return 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t rest = len - i;

        if (rest > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (rest > 2)
            v |= in[i + 2];
        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        if (rest > 1)
            out[n++] = b64url[v >> 6 & 63];
        if (rest > 2)
            out[n++] = b64url[v & 63];
    }
    out[n] = '\0';
    return n;
}

static int base64url_value(char c)
{
    const char *p = c != '\0' ? strchr(b64url, c) : NULL;

    return p != NULL ? (int)(p - b64url) : -1;
}

/* Decodes base64url with or without padding; returns false on invalid
 * input or when out is too small. */
static bool base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *n)
{
    uint32_t acc = 0;
    unsigned bits = 0;

    *n = 0;
    while (len > 0 && in[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        int v = base64url_value(in[i]);

        if (v < 0)
            return false;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (*n == cap)
                return false;
            out[(*n)++] = (uint8_t)(acc >> bits);
        }
    }
    return len % 4 != 1;
}

bool senml_base64url_valid(const char *s, size_t len)
{
    uint8_t scratch[SENML_TEXT_MAX];
    size_t n;

    return base64url_decode(s, len, scratch, sizeof scratch, &n);
}

/* ---- reading ---- */

static vigil_err cbor_fail(const char **why, const char *text)
{
    if (why != NULL)
        *why = text;
    return VIGIL_ERR_INVALID;
}

static bool cbor_text_field(const struct cbor_item *it, const char **s, size_t *len)
{
    if (it->type != CBOR_TEXT || !mqtt_utf8_valid(it->data, it->len))
        return false;
    *s = (const char *)it->data;
    *len = it->len;
    return true;
}

static bool cbor_num_field(const struct cbor_item *it, bool *has, double *out)
{
    *has = cbor_number(it, out);
    return *has;
}

/* Stores the value of label into f; vd_buf receives a data value as
 * base64url. Returns false when the value has the wrong type. */
static bool cbor_label_value(struct senml_fields *f, int64_t label, const struct cbor_item *v,
                             char *vd_buf, size_t vd_cap)
{
    double ignored;

    switch (label) {
    case LABEL_BS: return cbor_num_field(v, &f->has_bs, &f->bs);
    case LABEL_BV: return cbor_num_field(v, &f->has_bv, &f->bv);
    case LABEL_BU: return (f->has_bu = cbor_text_field(v, &f->bu, &f->bu_len));
    case LABEL_BT: return cbor_num_field(v, &f->has_bt, &f->bt);
    case LABEL_BN: return (f->has_bn = cbor_text_field(v, &f->bn, &f->bn_len));
    case LABEL_BVER: return (f->has_bver = cbor_int(v, &f->bver));
    case LABEL_N: return (f->has_n = cbor_text_field(v, &f->n, &f->n_len));
    case LABEL_U: return (f->has_u = cbor_text_field(v, &f->u, &f->u_len));
    case LABEL_V: return cbor_num_field(v, &f->has_v, &f->v);
    case LABEL_VS: return (f->has_vs = cbor_text_field(v, &f->vs, &f->vs_len));
    case LABEL_S: return cbor_num_field(v, &f->has_s, &f->s);
    case LABEL_T: return cbor_num_field(v, &f->has_t, &f->t);
    case LABEL_UT: return cbor_number(v, &ignored);
    case LABEL_VB:
        f->has_vb = v->type == CBOR_TRUE || v->type == CBOR_FALSE;
        f->vb = v->type == CBOR_TRUE;
        return f->has_vb;
    case LABEL_VD:
        if (v->type != CBOR_BYTES)
            return false;
        f->vd_len = base64url_encode(v->data, v->len, vd_buf, vd_cap);
        f->vd = vd_buf;
        f->has_vd = f->vd_len > 0 || v->len == 0;
        return f->has_vd;
    default:
        return true;
    }
}

/* Reads one key and its value. Known labels are read, and other integer
 * labels and text keys skipped, except a text key ending in '_', which
 * RFC 8428 section 4.4 requires a reader to understand. */
static vigil_err cbor_pair(struct cbor_reader *r, struct senml_fields *f, uint32_t *seen,
                           char *vd_buf, size_t vd_cap, const char **why)
{
    struct cbor_item key, val;
    int64_t label;

    if (cbor_read(r, &key) != VIGIL_OK)
        return cbor_fail(why, "CBOR record is truncated or malformed");
    if (key.type == CBOR_TEXT) {
        if (key.len > 0 && key.data[key.len - 1] == '_')
            return cbor_fail(why, "record has a must-understand field this reader does not know");
        return cbor_skip(r) == VIGIL_OK ? VIGIL_OK
                                        : cbor_fail(why, "CBOR record is truncated or malformed");
    }
    if (!cbor_int(&key, &label))
        return cbor_fail(why, "CBOR record key is neither an integer nor text");
    if (label < LABEL_BS || label > LABEL_VD)
        return cbor_skip(r) == VIGIL_OK ? VIGIL_OK
                                        : cbor_fail(why, "CBOR record is truncated or malformed");
    if ((*seen & (1u << (label - LABEL_BS))) != 0)
        return cbor_fail(why, "CBOR record has a duplicate label");
    *seen |= 1u << (label - LABEL_BS);
    if (cbor_read(r, &val) != VIGIL_OK)
        return cbor_fail(why, "CBOR record is truncated or malformed");
    if (val.type == CBOR_ARRAY || val.type == CBOR_MAP)
        return cbor_fail(why, "record field has the wrong type");
    if (!cbor_label_value(f, label, &val, vd_buf, vd_cap))
        return cbor_fail(why, "record field has the wrong type");
    return VIGIL_OK;
}

static vigil_err cbor_record(struct cbor_reader *r, struct senml_fields *f, char *vd_buf,
                             size_t vd_cap, const char **why)
{
    struct cbor_item map;
    uint32_t seen = 0;
    vigil_err rc;

    memset(f, 0, sizeof *f);
    if (cbor_read(r, &map) != VIGIL_OK || map.type != CBOR_MAP)
        return cbor_fail(why, "pack element is not a CBOR map");
    for (uint64_t i = 0; i < map.len; i++) {
        rc = cbor_pair(r, f, &seen, vd_buf, vd_cap, why);
        if (rc != VIGIL_OK)
            return rc;
    }
    return VIGIL_OK;
}

vigil_err senml_parse_cbor(const uint8_t *payload, size_t len, double now_s,
                           struct senml_pack *pack, const char **why)
{
    struct cbor_reader r = {.p = payload, .end = payload + len};
    struct senml_base base = {0};
    struct senml_fields f;
    struct cbor_item top;
    char vd_buf[SENML_TEXT_MAX];
    vigil_err rc;

    pack->n = 0;
    if (cbor_read(&r, &top) != VIGIL_OK || top.type != CBOR_ARRAY || top.len == 0)
        return cbor_fail(why, "SenML pack is not a non-empty CBOR array");
    if (top.len > pack->cap) {
        if (why != NULL)
            *why = "pack has too many records";
        return VIGIL_ERR_LIMIT;
    }
    for (uint64_t i = 0; i < top.len; i++) {
        bool skip;

        rc = cbor_record(&r, &f, vd_buf, sizeof vd_buf, why);
        if (rc != VIGIL_OK)
            return rc;
        rc = senml_resolve(&base, &f, now_s, &pack->recs[pack->n], &skip, why);
        if (rc != VIGIL_OK)
            return rc;
        if (!skip)
            pack->n++;
    }
    if (r.p != r.end)
        return cbor_fail(why, "bytes follow the CBOR pack");
    if (pack->n == 0)
        return cbor_fail(why, "SenML pack has no measurement");
    return VIGIL_OK;
}

/* ---- JSON to CBOR ---- */

static const struct {
    const char *key;
    int8_t label;
} json_labels[] = {
    {"bs", LABEL_BS}, {"bv", LABEL_BV}, {"bu", LABEL_BU}, {"bt", LABEL_BT},
    {"bn", LABEL_BN}, {"bver", LABEL_BVER}, {"n", LABEL_N}, {"u", LABEL_U},
    {"v", LABEL_V}, {"vs", LABEL_VS}, {"vb", LABEL_VB}, {"s", LABEL_S},
    {"t", LABEL_T}, {"ut", LABEL_UT}, {"vd", LABEL_VD},
};

static bool json_label(const char *key, int64_t *label)
{
    for (size_t i = 0; i < sizeof json_labels / sizeof json_labels[0]; i++) {
        if (strcmp(key, json_labels[i].key) == 0) {
            *label = json_labels[i].label;
            return true;
        }
    }
    return false;
}

static bool cbor_put_json_value(uint8_t *out, size_t cap, size_t *n, int64_t label, json_t *v)
{
    if (label == LABEL_VD) {
        uint8_t data[SENML_TEXT_MAX];
        size_t len;

        if (!json_is_string(v) || !base64url_decode(json_string_value(v), json_string_length(v),
                                                    data, sizeof data, &len))
            return false;
        if (!cbor_put_head(out, cap, n, 2, len) || cap - *n < len)
            return false;
        memcpy(out + *n, data, len);
        *n += len;
        return true;
    }
    if (json_is_string(v))
        return cbor_put_text(out, cap, n, json_string_value(v), json_string_length(v));
    if (json_is_boolean(v)) {
        if (*n >= cap)
            return false;
        out[(*n)++] = json_is_true(v) ? 0xF5 : 0xF4; /* simple values true, false */
        return true;
    }
    if (json_is_number(v) && isfinite(json_number_value(v)))
        return cbor_put_double(out, cap, n, json_number_value(v));
    return false;
}

static bool cbor_put_json_record(uint8_t *out, size_t cap, size_t *n, json_t *rec)
{
    const char *key;
    json_t *v;
    size_t count = 0;
    int64_t label;

    if (!json_is_object(rec))
        return false;
    json_object_foreach(rec, key, v)
    {
        if (json_label(key, &label))
            count++;
    }
    if (!cbor_put_head(out, cap, n, 5, count))
        return false;
    json_object_foreach(rec, key, v)
    {
        if (!json_label(key, &label))
            continue;
        if (!cbor_put_int(out, cap, n, label) || !cbor_put_json_value(out, cap, n, label, v))
            return false;
    }
    return true;
}

size_t senml_json_to_cbor(const uint8_t *json, size_t len, uint8_t *out, size_t cap)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
    size_t n = 0;
    bool ok;

    if (root == NULL)
        return 0;
    ok = json_is_array(root) && json_array_size(root) > 0 &&
         json_array_size(root) <= SENML_MAX_RECORDS &&
         cbor_put_head(out, cap, &n, 4, json_array_size(root));
    for (size_t i = 0; ok && i < json_array_size(root); i++)
        ok = cbor_put_json_record(out, cap, &n, json_array_get(root, i));
    json_decref(root);
    return ok ? n : 0;
}
