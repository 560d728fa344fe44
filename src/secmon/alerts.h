/* Alert store for the live hub: <data-dir>/alerts.db (SQLite, WAL), with
 * the life cycle open -> acknowledged -> resolved and the mean times to
 * detect and to resolve. Every function is thread-safe, and the CLI may
 * open the same file from another process at the same time. */
#ifndef VIGIL_SECMON_ALERTS_H
#define VIGIL_SECMON_ALERTS_H

#include <stdint.h>

#include "core/error.h"
#include "secmon/engine.h"

enum alerts_state {
    ALERTS_OPEN = 0,
    ALERTS_ACKNOWLEDGED,
    ALERTS_RESOLVED,
};

/* "open", "acknowledged" or "resolved". */
const char *alerts_state_name(enum alerts_state state);
/* Parses a state name; -1 for anything else. */
int alerts_state_parse(const char *name);

/* One stored alert. alert.rule points into rule, so copy the whole row. */
struct alerts_row {
    struct secmon_alert alert;
    char rule[48];
    enum alerts_state state;
    int64_t acked_at_us, resolved_at_us;   /* 0 until then */
};

struct alerts_db;

/* Opens or creates <dir>/alerts.db. The caller owns *out and closes it with
 * alerts_close(); on failure *out is NULL. */
vigil_err alerts_open(const char *dir, struct alerts_db **out);
void alerts_close(struct alerts_db *db);

/* Inserts the alert, or updates the aggregated fields (severity,
 * observation, expectation, deviation, explanation, last_seen_us, count,
 * evidence) of the row with its alert_id. The state is left as it is.
 * Upserts join one transaction that alerts_flush() commits; until then
 * other connections do not see them. */
vigil_err alerts_upsert(struct alerts_db *db, const struct secmon_alert *alert);
/* Commits the upserts since the last flush (one fsync of the WAL for all
 * of them); does nothing when there are none. alerts_close() flushes too. */
vigil_err alerts_flush(struct alerts_db *db);
/* Acknowledges an open alert at now_us (0: the current time).
 * VIGIL_ERR_NOT_FOUND for an unknown id, VIGIL_ERR_INVALID when the alert
 * is not open. */
vigil_err alerts_ack(struct alerts_db *db, const char *alert_id, int64_t now_us);
/* Resolves an open or acknowledged alert at now_us (0: the current time);
 * errors as alerts_ack(). */
vigil_err alerts_resolve(struct alerts_db *db, const char *alert_id, int64_t now_us);
/* Calls fn for each alert in the state (-1: every state), oldest first.
 * fn runs with the store locked and must not call alerts_* itself. */
vigil_err alerts_list(struct alerts_db *db, int state, void (*fn)(void *ctx, const struct alerts_row *row),
                      void *ctx);
/* Mean time to detect: mean of first_seen - first_event over every alert.
 * Mean time to resolve: mean of resolved_at - first_seen over resolved
 * alerts. Both in seconds, -1 when no alert qualifies. */
vigil_err alerts_mttd_mttr(struct alerts_db *db, double *mttd_s, double *mttr_s);

#endif
