/* Reads the `siem:` section of vigil.yaml (and the top-level data_dir)
 * into a struct siem_config. Other top-level keys belong to the main
 * configuration reader and are skipped here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "export/siem.h"

struct yaml_ctx {
    yaml_document_t *doc;
    const char *name;    /* file name for messages */
    char *err;
    size_t errcap;
};

static vigil_err fail_at(struct yaml_ctx *y, const yaml_node_t *node, const char *msg)
{
    snprintf(y->err, y->errcap, "%s:%zu: %s", y->name, node->start_mark.line + 1, msg);
    return VIGIL_ERR_CONFIG;
}

static const char *scalar(const yaml_node_t *node)
{
    return node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static vigil_err load_dest(struct yaml_ctx *y, yaml_node_t *map, struct siem_dest *d)
{
    char why[300];

    if (map->type != YAML_MAPPING_NODE)
        return fail_at(y, map, "a siem destination must be a mapping of keys such as name, "
                               "transport and address");
    siem_dest_defaults(d);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);

        if (scalar(k) == NULL || scalar(v) == NULL)
            return fail_at(y, k, "siem destination keys and values must be scalars");
        if (siem_dest_set(d, scalar(k), scalar(v), why, sizeof why) != VIGIL_OK)
            return fail_at(y, v, why);
    }
    if (siem_dest_validate(d, why, sizeof why) != VIGIL_OK)
        return fail_at(y, map, why);
    return VIGIL_OK;
}

static vigil_err load_dests(struct yaml_ctx *y, yaml_node_t *seq, struct siem_config *cfg)
{
    vigil_err rc;

    if (seq->type != YAML_SEQUENCE_NODE)
        return fail_at(y, seq, "siem destinations must be a list");
    cfg->n_dests = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start;
         it < seq->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(y->doc, *it);

        if (cfg->n_dests == SIEM_MAX_DESTINATIONS)
            return fail_at(y, item, "too many siem destinations: at most 8");
        rc = load_dest(y, item, &cfg->dests[cfg->n_dests]);
        if (rc != VIGIL_OK)
            return rc;
        for (size_t i = 0; i < cfg->n_dests; i++)
            if (strcmp(cfg->dests[i].name, cfg->dests[cfg->n_dests].name) == 0)
                return fail_at(y, item, "siem destination name is used twice; names pick "
                                        "the outbox file and must differ");
        cfg->n_dests++;
    }
    return VIGIL_OK;
}

static vigil_err load_number(struct yaml_ctx *y, yaml_node_t *v, size_t *out)
{
    const char *s = scalar(v);
    char *end;
    unsigned long long n;

    if (s == NULL || s[0] == '\0' || s[0] == '-')
        return fail_at(y, v, "siem queue_capacity must be an integer from 1 to 1000000");
    n = strtoull(s, &end, 10);
    if (*end != '\0' || n < 1 || n > 1000000)
        return fail_at(y, v, "siem queue_capacity must be an integer from 1 to 1000000");
    *out = (size_t)n;
    return VIGIL_OK;
}

static vigil_err load_siem(struct yaml_ctx *y, yaml_node_t *map, struct siem_config *cfg)
{
    vigil_err rc = VIGIL_OK;

    if (map->type != YAML_MAPPING_NODE)
        return fail_at(y, map, "siem must be a mapping with queue_capacity, hostname and "
                               "destinations");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
         rc == VIGIL_OK && p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *key = scalar(k);

        if (key != NULL && strcmp(key, "destinations") == 0)
            rc = load_dests(y, v, cfg);
        else if (key != NULL && strcmp(key, "queue_capacity") == 0)
            rc = load_number(y, v, &cfg->queue_capacity);
        else if (key != NULL && strcmp(key, "hostname") == 0 && scalar(v) != NULL &&
                 strlen(scalar(v)) < sizeof cfg->hostname)
            snprintf(cfg->hostname, sizeof cfg->hostname, "%s", scalar(v));
        else if (key != NULL && strcmp(key, "hostname") == 0)
            rc = fail_at(y, v, "siem hostname must be a string of at most 255 bytes");
        else
            rc = fail_at(y, k, "unknown key in siem: expected queue_capacity, hostname or "
                               "destinations");
    }
    return rc;
}

/* Applies the top-level data_dir and siem keys of the root mapping. */
static vigil_err load_root(struct yaml_ctx *y, struct siem_config *cfg)
{
    yaml_node_t *root = yaml_document_get_root_node(y->doc);

    if (root == NULL)
        return VIGIL_OK; /* an empty file */
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(y, root, "the configuration must be a mapping");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
        const char *key = scalar(k);

        if (key != NULL && strcmp(key, "data_dir") == 0 && scalar(v) != NULL)
            snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", scalar(v));
        if (key != NULL && strcmp(key, "siem") == 0)
            return load_siem(y, v, cfg);
    }
    return VIGIL_OK;
}

vigil_err siem_config_load_file(struct siem_config *cfg, const char *path, char *err,
                                size_t errcap)
{
    struct siem_config tmp = *cfg;
    struct yaml_ctx y = {NULL, path, err, errcap};
    yaml_parser_t parser;
    yaml_document_t doc;
    FILE *f = fopen(path, "rb");
    vigil_err rc;

    if (f == NULL) {
        snprintf(err, errcap, "%s: cannot open: %m", path);
        return VIGIL_ERR_IO;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errcap, "%s:%zu: invalid YAML: %s", path, parser.problem_mark.line + 1,
                 parser.problem != NULL ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        fclose(f);
        return VIGIL_ERR_CONFIG;
    }
    y.doc = &doc;
    rc = load_root(&y, &tmp);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc == VIGIL_OK)
        *cfg = tmp;
    return rc;
}
