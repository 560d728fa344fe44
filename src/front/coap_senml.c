/* SenML (RFC 8428) for the CoAP front end: resolving records against their
 * base values, reading JSON packs and plain numbers, and writing the
 * one-record JSON pack that `vigil sim` publishes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "front/coap_internal.h"
#include "sim/vitals.h"

/* Copies a counted string into a fixed field; false when it does not fit. */
static bool senml_copy(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap)
        return false;
    if (len > 0)
        memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

/* RFC 8428 section 4.5.1: a name starts with a letter or digit and has
 * only letters, digits and "-:./_". */
static bool senml_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (i == 0 && !alnum)
            return false;
        if (!alnum && strchr("-:./_", c) == NULL)
            return false;
    }
    return true;
}

static vigil_err senml_fail(const char **why, const char *text)
{
    if (why != NULL)
        *why = text;
    return VIGIL_ERR_INVALID;
}

/* Takes the base fields of f into base (section 4.1: they apply to this
 * record and every later one until replaced). */
static vigil_err senml_take_base(struct senml_base *base, const struct senml_fields *f,
                                 const char **why)
{
    /* Version 10 is RFC 8428's. A later one may change the meaning of
     * fields this reader reads. */
    if (f->has_bver && (f->bver < 1 || f->bver > 10))
        return senml_fail(why, "unsupported SenML version (bver)");
    if (f->has_bn && !senml_copy(base->bn, sizeof base->bn, f->bn, f->bn_len)) {
        if (why != NULL)
            *why = "base name is too long";
        return VIGIL_ERR_LIMIT;
    }
    if (f->has_bu && !senml_copy(base->bu, sizeof base->bu, f->bu, f->bu_len)) {
        if (why != NULL)
            *why = "base unit is too long";
        return VIGIL_ERR_LIMIT;
    }
    if (f->has_bt)
        base->bt = f->bt;
    if (f->has_bv) {
        base->bv = f->bv;
        base->has_bv = true;
    }
    if (f->has_bs) {
        base->bs = f->bs;
        base->has_bs = true;
    }
    return VIGIL_OK;
}

static unsigned senml_value_count(const struct senml_fields *f)
{
    return (unsigned)f->has_v + (unsigned)f->has_vs + (unsigned)f->has_vb + (unsigned)f->has_vd;
}

static vigil_err senml_resolve_value(const struct senml_base *base, const struct senml_fields *f,
                                     struct senml_record *out, const char **why)
{
    if (f->has_v || (base->has_bv && senml_value_count(f) == 0)) {
        out->kind = SENML_NUMBER;
        out->value = (f->has_v ? f->v : 0) + (base->has_bv ? base->bv : 0);
        if (!isfinite(out->value))
            return senml_fail(why, "value is not a finite number");
    } else if (f->has_vs) {
        out->kind = SENML_STRING;
        if (!senml_copy(out->text, sizeof out->text, f->vs, f->vs_len))
            return senml_fail(why, "string value is too long");
    } else if (f->has_vb) {
        out->kind = SENML_BOOL;
        out->boolean = f->vb;
    } else if (f->has_vd) {
        out->kind = SENML_DATA;
        if (!senml_base64url_valid(f->vd, f->vd_len) ||
            !senml_copy(out->text, sizeof out->text, f->vd, f->vd_len))
            return senml_fail(why, "data value is not base64url or is too long");
    }
    if (f->has_s || base->has_bs) {
        out->has_sum = true;
        out->sum = (f->has_s ? f->s : 0) + (base->has_bs ? base->bs : 0);
        if (!isfinite(out->sum))
            return senml_fail(why, "sum is not a finite number");
    }
    return VIGIL_OK;
}

static vigil_err senml_resolve_name(const struct senml_base *base, const struct senml_fields *f,
                                    struct senml_record *out, const char **why)
{
    size_t blen = strlen(base->bn);

    if (blen + (f->has_n ? f->n_len : 0) >= sizeof out->name)
        return senml_fail(why, "name is too long");
    memcpy(out->name, base->bn, blen);
    if (f->has_n && f->n_len > 0)
        memcpy(out->name + blen, f->n, f->n_len);
    out->name[blen + (f->has_n ? f->n_len : 0)] = '\0';
    if (!senml_name_valid(out->name))
        return senml_fail(why, "name is empty or has characters SenML does not allow");
    return VIGIL_OK;
}

vigil_err senml_resolve(struct senml_base *base, const struct senml_fields *f, double now_s,
                        struct senml_record *out, bool *skip, const char **why)
{
    double t;
    vigil_err rc;

    memset(out, 0, sizeof *out);
    *skip = false;
    if (f->has_vb + f->has_v + f->has_vs + f->has_vd > 1)
        return senml_fail(why, "record has more than one value");
    rc = senml_take_base(base, f, why);
    if (rc != VIGIL_OK)
        return rc;
    if (senml_value_count(f) == 0 && !f->has_s && !f->has_n && !f->has_u && !f->has_t &&
        !base->has_bv && !base->has_bs) {
        *skip = true;
        return VIGIL_OK;
    }
    rc = senml_resolve_name(base, f, out, why);
    if (rc != VIGIL_OK)
        return rc;
    rc = senml_resolve_value(base, f, out, why);
    if (rc != VIGIL_OK)
        return rc;
    if (out->kind == SENML_NONE && !out->has_sum)
        return senml_fail(why, "record has neither a value nor a sum");
    if (f->has_u) {
        if (!senml_copy(out->unit, sizeof out->unit, f->u, f->u_len))
            return senml_fail(why, "unit is too long");
    } else {
        memcpy(out->unit, base->bu, sizeof out->unit);
    }
    t = base->bt + (f->has_t ? f->t : 0);
    if (!isfinite(t))
        return senml_fail(why, "time is not a finite number");
    out->time = t < SENML_RELATIVE_LIMIT ? now_s + t : t;
    if (out->time < 0 || out->time >= SENML_TIME_MAX)
        return senml_fail(why, "time is before 1970 or too far in the future");
    return VIGIL_OK;
}

/* ---- JSON ---- */

static bool json_text(json_t *v, const char **s, size_t *len)
{
    if (!json_is_string(v))
        return false;
    *s = json_string_value(v);
    *len = json_string_length(v);
    return true;
}

static bool json_num(json_t *v, bool *has, double *out)
{
    *has = json_is_number(v);
    *out = *has ? json_number_value(v) : 0;
    return *has;
}

/* Reads one key of a record; false when its value has the wrong type. */
static bool senml_json_field(struct senml_fields *f, const char *key, json_t *v)
{
    if (strcmp(key, "bn") == 0)
        return (f->has_bn = json_text(v, &f->bn, &f->bn_len));
    if (strcmp(key, "bt") == 0)
        return json_num(v, &f->has_bt, &f->bt);
    if (strcmp(key, "bu") == 0)
        return (f->has_bu = json_text(v, &f->bu, &f->bu_len));
    if (strcmp(key, "bv") == 0)
        return json_num(v, &f->has_bv, &f->bv);
    if (strcmp(key, "bs") == 0)
        return json_num(v, &f->has_bs, &f->bs);
    if (strcmp(key, "n") == 0)
        return (f->has_n = json_text(v, &f->n, &f->n_len));
    if (strcmp(key, "u") == 0)
        return (f->has_u = json_text(v, &f->u, &f->u_len));
    if (strcmp(key, "v") == 0)
        return json_num(v, &f->has_v, &f->v);
    if (strcmp(key, "vs") == 0)
        return (f->has_vs = json_text(v, &f->vs, &f->vs_len));
    if (strcmp(key, "vd") == 0)
        return (f->has_vd = json_text(v, &f->vd, &f->vd_len));
    if (strcmp(key, "s") == 0)
        return json_num(v, &f->has_s, &f->s);
    if (strcmp(key, "t") == 0)
        return json_num(v, &f->has_t, &f->t);
    if (strcmp(key, "vb") == 0) {
        f->has_vb = json_is_boolean(v);
        f->vb = json_is_true(v);
        return f->has_vb;
    }
    if (strcmp(key, "bver") == 0) {
        f->has_bver = json_is_integer(v);
        f->bver = f->has_bver ? (int64_t)json_integer_value(v) : 0;
        return f->has_bver;
    }
    return true; /* "ut" and extensions: ignored */
}

static vigil_err senml_json_record(json_t *rec, struct senml_fields *f, const char **why)
{
    const char *key;
    json_t *v;

    memset(f, 0, sizeof *f);
    if (!json_is_object(rec))
        return senml_fail(why, "pack element is not an object");
    json_object_foreach(rec, key, v)
    {
        size_t klen = strlen(key);

        /* Section 4.4: a label ending in '_' must be understood. */
        if (klen > 0 && key[klen - 1] == '_')
            return senml_fail(why, "record has a must-understand field this reader does not know");
        if (!senml_json_field(f, key, v))
            return senml_fail(why, "record field has the wrong type");
    }
    return VIGIL_OK;
}

static vigil_err senml_add(struct senml_pack *pack, struct senml_base *base,
                           const struct senml_fields *f, double now_s, const char **why)
{
    bool skip;
    vigil_err rc;

    if (pack->n == pack->cap) {
        if (why != NULL)
            *why = "pack has too many records";
        return VIGIL_ERR_LIMIT;
    }
    rc = senml_resolve(base, f, now_s, &pack->recs[pack->n], &skip, why);
    if (rc == VIGIL_OK && !skip)
        pack->n++;
    return rc;
}

vigil_err senml_parse_json(const uint8_t *payload, size_t len, double now_s,
                           struct senml_pack *pack, const char **why)
{
    struct senml_base base = {0};
    struct senml_fields f;
    json_error_t jerr;
    json_t *root;
    vigil_err rc = VIGIL_OK;

    pack->n = 0;
    root = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return senml_fail(why, "payload is not valid JSON");
    if (!json_is_array(root) || json_array_size(root) == 0) {
        rc = senml_fail(why, "SenML pack is not a non-empty array");
        goto out;
    }
    for (size_t i = 0; i < json_array_size(root) && rc == VIGIL_OK; i++) {
        rc = senml_json_record(json_array_get(root, i), &f, why);
        if (rc == VIGIL_OK)
            rc = senml_add(pack, &base, &f, now_s, why);
    }
    if (rc == VIGIL_OK && pack->n == 0)
        rc = senml_fail(why, "SenML pack has no measurement");
out:
    json_decref(root);
    return rc;
}

/* ---- plain numbers and units ---- */

vigil_err senml_from_text(const uint8_t *payload, size_t len, const char *metric, double now_s,
                          struct senml_record *out, const char **why)
{
    char tmp[64];
    char *end;
    double v;
    int vital;

    memset(out, 0, sizeof *out);
    while (len > 0 && (payload[len - 1] == ' ' || payload[len - 1] == '\n' ||
                       payload[len - 1] == '\r' || payload[len - 1] == '\t'))
        len--;
    if (len == 0 || len >= sizeof tmp || memchr(payload, '\0', len) != NULL)
        return senml_fail(why, "text/plain payload is not a number");
    memcpy(tmp, payload, len);
    tmp[len] = '\0';
    v = strtod(tmp, &end);
    if (end == tmp || *end != '\0' || !isfinite(v) || tmp[0] == ' ' || tmp[0] == '\t')
        return senml_fail(why, "text/plain payload is not a number");
    if (!senml_copy(out->name, sizeof out->name, metric, strlen(metric)))
        return senml_fail(why, "metric name is too long");
    vital = vital_from_name(metric, strlen(metric));
    if (vital >= 0) {
        const struct vital_info *info = vital_info((enum vital)vital);

        v *= info->senml_scale;
        snprintf(out->unit, sizeof out->unit, "%s", info->senml_unit);
    }
    out->kind = SENML_NUMBER;
    out->value = v;
    out->time = now_s;
    return VIGIL_OK;
}

void senml_default_unit(struct senml_record *r, const char *metric)
{
    int vital = vital_from_name(metric, strlen(metric));

    if (vital >= 0 && r->kind == SENML_NUMBER && r->unit[0] == '\0')
        snprintf(r->unit, sizeof r->unit, "%s", vital_info((enum vital)vital)->senml_unit);
}

const char *senml_metric(const char *name, size_t *len)
{
    const char *start = name;

    for (const char *p = name; *p != '\0'; p++)
        if (*p == '/' || *p == ':')
            start = p + 1;
    *len = strlen(start);
    return start;
}

bool senml_metric_valid(const char *metric, size_t len)
{
    if (len == 0 || len > SENML_METRIC_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = metric[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ---- output ---- */

/* Appends s as a JSON string, quotes included, escaping '"', '\\' and
 * control characters. */
static bool json_put_string(char *out, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t i = *n;

    if (i >= cap)
        return false;
    /* The worst case of one input byte is 6 output bytes (\u00XX); 2 more
     * are kept for the closing quote and the NUL. */
    if (cap - i < 1 + 2)
        return false;
    out[i++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (cap - i < 6 + 2)
            return false;
        if (*p == '"' || *p == '\\') {
            out[i++] = '\\';
            out[i++] = (char)*p;
        } else if (*p < 0x20) {
            memcpy(out + i, "\\u00", 4);
            out[i + 4] = hex[*p >> 4];
            out[i + 5] = hex[*p & 0xF];
            i += 6;
        } else {
            out[i++] = (char)*p;
        }
    }
    out[i++] = '"';
    out[i] = '\0';
    *n = i;
    return true;
}

static bool json_put_lit(char *out, size_t cap, size_t *n, const char *s)
{
    size_t len = strlen(s);

    if (*n >= cap || len >= cap - *n)
        return false;
    memcpy(out + *n, s, len + 1);
    *n += len;
    return true;
}

/* Appends a number as `vigil sim` writes values: %.10g. */
static bool json_put_number(char *out, size_t cap, size_t *n, double v)
{
    int w = snprintf(out + *n, cap - *n, "%.10g", v);

    if (w < 0 || (size_t)w >= cap - *n)
        return false;
    *n += (size_t)w;
    return true;
}

/* Appends a time as senml_format() of src/sim/vitals.c does: whole
 * seconds without decimals, anything else with milliseconds. */
static bool json_put_time(char *out, size_t cap, size_t *n, double t)
{
    int w;

    if (t == floor(t))
        w = snprintf(out + *n, cap - *n, "%.0f", t);
    else
        w = snprintf(out + *n, cap - *n, "%.3f", t);
    if (w < 0 || (size_t)w >= cap - *n)
        return false;
    *n += (size_t)w;
    return true;
}

static bool senml_put_value(char *out, size_t cap, size_t *n, const struct senml_record *r)
{
    switch (r->kind) {
    case SENML_NUMBER:
        return json_put_lit(out, cap, n, ",\"v\":") && json_put_number(out, cap, n, r->value);
    case SENML_STRING:
        return json_put_lit(out, cap, n, ",\"vs\":") && json_put_string(out, cap, n, r->text);
    case SENML_BOOL:
        return json_put_lit(out, cap, n, r->boolean ? ",\"vb\":true" : ",\"vb\":false");
    case SENML_DATA:
        return json_put_lit(out, cap, n, ",\"vd\":") && json_put_string(out, cap, n, r->text);
    default:
        return true;
    }
}

size_t senml_format_record(char *out, size_t cap, const char *device, const char *metric,
                           const struct senml_record *r)
{
    char bn[DEVICE_ID_MAX + 2];
    size_t n = 0;
    bool ok;

    if (cap == 0)
        return 0;
    snprintf(bn, sizeof bn, "%s/", device);
    ok = json_put_lit(out, cap, &n, "[{\"bn\":") && json_put_string(out, cap, &n, bn) &&
         json_put_lit(out, cap, &n, ",\"bt\":") && json_put_time(out, cap, &n, r->time) &&
         json_put_lit(out, cap, &n, ",\"n\":") && json_put_string(out, cap, &n, metric);
    if (ok && r->unit[0] != '\0')
        ok = json_put_lit(out, cap, &n, ",\"u\":") && json_put_string(out, cap, &n, r->unit);
    ok = ok && senml_put_value(out, cap, &n, r);
    if (ok && r->has_sum)
        ok = json_put_lit(out, cap, &n, ",\"s\":") && json_put_number(out, cap, &n, r->sum);
    ok = ok && json_put_lit(out, cap, &n, "}]");
    return ok ? n : 0;
}
