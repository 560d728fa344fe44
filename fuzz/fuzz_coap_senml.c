/* libFuzzer harness for the SenML readers of the CoAP front end: the input
 * is parsed as a JSON and as a CBOR pack. Every accepted record must format
 * as the JSON MQTT subscribers receive, and that JSON, converted to CBOR,
 * must parse back to the same record. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "front/coap_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct senml_record recs[SENML_MAX_RECORDS];
static struct senml_record back[SENML_MAX_RECORDS];

static void check_record(const struct senml_record *r)
{
    struct senml_pack again = {.recs = back, .cap = SENML_MAX_RECORDS};
    char json[4096];
    uint8_t cbor[4096];
    const char *why;
    size_t metric_len, n, c;
    const char *metric = senml_metric(r->name, &metric_len);

    if (!senml_metric_valid(metric, metric_len))
        return;
    n = senml_format_record(json, sizeof json, "dev-1", metric, r);
    if (n == 0 || strlen(json) != n)
        abort();
    if (senml_parse_json((const uint8_t *)json, n, 0, &again, &why) != VIGIL_OK || again.n != 1)
        abort();
    if (again.recs[0].kind != r->kind || strcmp(again.recs[0].unit, r->unit) != 0)
        abort();
    c = senml_json_to_cbor((const uint8_t *)json, n, cbor, sizeof cbor);
    if (c == 0)
        abort();
    if (senml_parse_cbor(cbor, c, 0, &again, &why) != VIGIL_OK || again.n != 1 ||
        again.recs[0].kind != r->kind)
        abort();
}

static void check_pack(vigil_err rc, const struct senml_pack *pack, const char *why)
{
    if (rc != VIGIL_OK) {
        if (why == NULL)
            abort();
        return;
    }
    if (pack->n == 0 || pack->n > pack->cap)
        abort();
    for (size_t i = 0; i < pack->n; i++)
        check_record(&pack->recs[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct senml_pack pack = {.recs = recs, .cap = SENML_MAX_RECORDS};
    const char *why = NULL;
    vigil_err rc;

    if (size > 65536)
        return 0;
    rc = senml_parse_json(data, size, 1700000000.0, &pack, &why);
    check_pack(rc, &pack, why);
    why = NULL;
    rc = senml_parse_cbor(data, size, 1700000000.0, &pack, &why);
    check_pack(rc, &pack, why);
    return 0;
}
