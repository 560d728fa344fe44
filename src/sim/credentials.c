/* Reads "id password" lines for the simulator and the station. */
#include "sim/credentials.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "core/log.h"

struct credential {
    char *id;
    char *password;
};

struct credentials {
    struct credential *items;
    size_t n;
    size_t cap;
};

static vigil_err add_entry(struct credentials *c, const char *id, const char *password)
{
    if (c->n == CREDENTIALS_MAX_ENTRIES)
        return VIGIL_ERR_LIMIT;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct credential *p = vigil_realloc(c->items, cap * sizeof *p);

        if (p == NULL)
            return VIGIL_ERR_NOMEM;
        c->items = p;
        c->cap = cap;
    }
    c->items[c->n].id = vigil_strdup(id);
    c->items[c->n].password = vigil_strdup(password);
    if (c->items[c->n].id == NULL || c->items[c->n].password == NULL) {
        vigil_free(c->items[c->n].id);
        vigil_free(c->items[c->n].password);
        return VIGIL_ERR_NOMEM;
    }
    c->n++;
    return VIGIL_OK;
}

/* Parses one line; blank lines and comments add nothing. */
static vigil_err parse_line(struct credentials *c, char *line)
{
    char *id, *password, *extra, *save = NULL;

    line[strcspn(line, "\r\n")] = '\0';
    if (line[strspn(line, " \t")] == '#')
        return VIGIL_OK;
    id = strtok_r(line, " \t", &save);
    if (id == NULL)
        return VIGIL_OK;
    password = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (password == NULL || extra != NULL)
        return VIGIL_ERR_INVALID;
    return add_entry(c, id, password);
}

static void warn_if_shared(const char *path, FILE *f)
{
    struct stat st;

    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
        log_warn("credentials file %s is readable by other users (mode %03o); "
                 "run 'chmod 600 %s'",
                 path, (unsigned)(st.st_mode & 0777), path);
}

vigil_err credentials_load(const char *path, struct credentials **out)
{
    struct credentials *c;
    char line[512];
    unsigned line_no = 0;
    vigil_err rc = VIGIL_OK;
    FILE *f;

    *out = NULL;
    f = fopen(path, "r");
    if (f == NULL)
        return VIGIL_ERR_IO;
    c = vigil_calloc(1, sizeof *c);
    if (c == NULL) {
        fclose(f);
        return VIGIL_ERR_NOMEM;
    }
    warn_if_shared(path, f);
    while (rc == VIGIL_OK && fgets(line, sizeof line, f) != NULL) {
        line_no++;
        rc = parse_line(c, line);
        if (rc == VIGIL_ERR_INVALID)
            log_error("%s:%u: invalid line, expected \"<device-id> <password>\"", path, line_no);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (rc != VIGIL_OK) {
        credentials_free(c);
        return rc;
    }
    *out = c;
    return VIGIL_OK;
}

const char *credentials_find(const struct credentials *c, const char *id)
{
    /* The last line for an id wins, so appending a new password works. */
    for (size_t i = c->n; i > 0; i--)
        if (strcmp(c->items[i - 1].id, id) == 0)
            return c->items[i - 1].password;
    return NULL;
}

void credentials_free(struct credentials *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        memset(c->items[i].password, 0, strlen(c->items[i].password));
        vigil_free(c->items[i].password);
        vigil_free(c->items[i].id);
    }
    vigil_free(c->items);
    vigil_free(c);
}
