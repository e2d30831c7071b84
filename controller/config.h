/* toxlabd's INI configuration (read with inih), with -o overrides. Every
 * key is listed in config.c with its default; unknown keys are errors. */
#ifndef TOXLAB_CONFIG_H
#define TOXLAB_CONFIG_H

#include "controller/roles.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_INSTRUMENTS 16
#define INSTRUMENT_ID_MAX 31

struct instrument_config {
    char id[INSTRUMENT_ID_MAX + 1];
    char driver[16];
    char device[PATH_MAX];
    int baud;
    char parity; /* 'N', 'E' or 'O' */
    int data_bits;
    int stop_bits;
    int slave;
    int response_timeout_ms;
    int poll_interval_ms;
    int retry_ms;     /* first delay before reopening a lost port */
    int retry_max_ms; /* the backoff doubles up to this */
    int grace_period_ms;
    int offline_after_failures; /* failed requests in a row that close the port */
    bool framing_set;           /* baud or parity was configured, not defaulted */

    /* ASTM analyzers (hair): E1381 timers in milliseconds, the standard's by default. */
    int astm_reply_timeout_ms;
    int astm_frame_timeout_ms;
    int astm_busy_retry_ms;
    int astm_contention_retry_ms;
    int astm_interrupt_retry_ms;
    int astm_send_frame_text;
    int astm_max_frame_text;
    char method[16];    /* "lc-ms/ms" or "immunoassay" */
    char analytes[512]; /* CODE=analyte pairs, comma-separated */
    char timezone[64];  /* of the analyzer's clock; empty for the daemon's */
};

/* Blood-sample triggers, as bits of alcohol_config.blood_on. */
#define BLOOD_ON_DRUNK 0x1   /* a breath result in the drunk band */
#define BLOOD_ON_REFUSAL 0x2 /* the subject refused the breath test */
#define BLOOD_ON_DISPUTE 0x4 /* the driver disputes the breath result */
#define BLOOD_ON_CRASH 0x8   /* a crash after drinking */

/* Settings that judge breath alcohol, each stored with every breath result. */
struct alcohol_config {
    int factor;           /* breath to blood, 2200 for 1:2200 */
    char drink_limit[16]; /* mg/100 mL, decimal text */
    char drunk_limit[16];
    int64_t drink_micro; /* the same in micro-units */
    int64_t drunk_micro;
    char source[160];
    unsigned blood_on;
    char blood_source[160];
};

struct config {
    char lab_id[17];
    char database[PATH_MAX];
    char socket_path[108];
    char socket_group[64];
    char thresholds[PATH_MAX];
    char rules[PATH_MAX];
    char timezone[64];
    int max_clients;
    int busy_timeout_ms; /* how long a write waits for another process's lock */
    char backup_folder[PATH_MAX];
    int audit_head_every; /* log the audit chain's head every this many entries */
    int max_database_kb;  /* size limit of the database in KiB, 0 for none */
    int cache_kb;         /* SQLite's page cache for the connection, in KiB */
    struct alcohol_config alcohol;
    /* [roles]: the groups of each role, as written; roles_set marks the
     * roles the file or -o named (the others keep their default group). */
    char role_groups[ROLE_COUNT][256];
    unsigned roles_set;
    size_t instrument_count;
    struct instrument_config instruments[CONFIG_MAX_INSTRUMENTS];
};

void config_defaults(struct config *config);

/* Reads path into config. Returns 0, or -1 with "FILE:LINE: message" in err. */
int config_load(struct config *config, const char *path, char *err, size_t err_size);

/* Applies one "section.key=value" override. Returns 0, or -1 with err set. */
int config_override(struct config *config, const char *assignment, char *err, size_t err_size);

/* Checks values that depend on each other. Returns 0, or -1 with err set. */
int config_validate(const struct config *config, char *err, size_t err_size);

/* Looks up an analyte code in an instrument's `analytes` map and copies
 * its analyte name into name. Returns false when the code has no entry. */
bool config_map_analyte(const struct instrument_config *inst, const char *code, char *name,
                        size_t size);

const struct instrument_config *config_find_instrument(const struct config *config, const char *id);

#endif
