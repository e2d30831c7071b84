/* The driver interface: one const table of operations per analyzer model.
 * A driver's state lives in its own struct (no file statics), so several
 * analyzers of one model run side by side, each on its own line thread.
 * Every operation has a deadline; errors name the register or record and
 * the cause in err. */
#ifndef TOXLAB_DRIVER_H
#define TOXLAB_DRIVER_H

#include "controller/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRIVER_MAX_ANALYTES 32
#define DRIVER_ERR_SIZE 256

enum driver_status {
    DRIVER_OK = 0,
    DRIVER_TIMEOUT = -1,   /* no reply within the response timeout */
    DRIVER_CORRUPT = -2,   /* CRC error or malformed reply */
    DRIVER_EXCEPTION = -3, /* the device refused the request (Modbus exception) */
    DRIVER_IO = -4,        /* the port failed or vanished; reopen it */
    DRIVER_MISMATCH = -5,  /* the result echoes another host test ID */
    DRIVER_BUSY_PORT = -6, /* another process holds the port's lock */
    DRIVER_WRONG_MODEL = -7,
    DRIVER_BAD_CRC = -8, /* the reply's CRC did not match: noise, or wrong line settings */
};

struct driver_identity {
    char model[32];
    char serial[32];
    char firmware[16];
    char calibration[11]; /* YYYY-MM-DD */
    char cartridge_lot[16];
    char cartridge_expiry[11]; /* YYYY-MM-DD */
    char calibration_due[11];  /* YYYY-MM-DD, empty when the model has none */
};

struct driver_progress {
    const char *step; /* the analyzer's own state name */
    int percent;
    int seconds_left;
    bool result_ready;
    bool idle;             /* no test in progress and no result held */
    bool device_error;     /* the test ended in a device error */
    char error_text[64];   /* for device_error */
    uint32_t host_test_id; /* the test the analyzer is working on */
    uint32_t sequence;     /* the analyzer's result counter */
};

struct driver_analyte {
    char analyte[32];
    int64_t value_micro;
    char unit[12];
    bool over_range;
    bool under_range;
    const char *invalid_reason; /* static text, NULL when the reading is valid */
};

/* A breath-alcohol measurement; the daemon decides the band. */
struct driver_breath {
    bool present;
    bool refused;    /* set by the daemon when the officer records a refusal */
    uint32_t raw;    /* breath alcohol in units of 0.1 ug/L */
    unsigned flags;  /* BREATH_FLAG_* bits; any makes the value invalid */
    int temperature; /* ambient, 0.1 degC */
};

struct driver_result {
    uint32_t host_test_id;
    uint32_t sequence;
    char matrix[16];
    char tier[8];
    const char *invalid_reason; /* whole-result reason, NULL when valid */
    size_t count;
    struct driver_analyte analytes[DRIVER_MAX_ANALYTES];
    struct driver_breath breath;
};

/* Messages of analyzers that upload on their own (ASTM). A row limit of
 * 256 R records a message fits about 20 specimens of a 12-analyte panel. */
#define DRIVER_MAX_UPLOAD_ROWS 256

enum driver_upload_kind {
    UPLOAD_NONE,    /* nothing complete yet */
    UPLOAD_RESULTS, /* one specimen's results; its final ACK waits for release */
    UPLOAD_QUERY,   /* the analyzer requests a specimen's order (already acknowledged) */
    UPLOAD_NOTE,    /* a link event worth logging: a NAK, a timer, contention */
};

/* One R record as sent, with the specimen and P.3 of the O and P records
 * before it. */
struct driver_upload_row {
    char specimen[64];    /* O.3 */
    char subject_ref[64]; /* P.3, empty when absent */
    char code[32];        /* R.3, component 4: the analyte code */
    char value[32];       /* R.4 */
    char unit[12];        /* R.5 */
    char status;          /* R.9: 'F', 'C', 'P', or 0 when empty */
    char completed[16];   /* R.13, YYYYMMDDhhmmss in the analyzer's zone */
    char instrument[32];  /* R.14 */
};

struct driver_upload {
    enum driver_upload_kind kind;
    uint32_t number;      /* counts messages on this line; release names it */
    char specimen[64];    /* the last O.3, or the specimen a Q record requests */
    char subject_ref[64]; /* the last P.3, empty when absent */
    char note[DRIVER_ERR_SIZE];
    bool note_error; /* the note reports lost or rejected data */
    size_t skipped;  /* R records beyond DRIVER_MAX_UPLOAD_ROWS */
    size_t count;
    struct driver_upload_row rows[DRIVER_MAX_UPLOAD_ROWS];
};

struct driver_ops {
    const char *name;
    const char *specimen_matrix; /* matrix of the specimen it takes, NULL for none */
    /* The analyzer's step in which the subject may refuse the test ("the
     * subject would not blow"), NULL when the model records no refusal. */
    const char *refusal_step;
    int (*open)(const struct instrument_config *config, void **state, char *err, size_t size);
    int (*identify)(void *state, struct driver_identity *identity, char *err, size_t size);
    int (*start)(void *state, uint32_t host_test_id, char *err, size_t size);
    int (*poll)(void *state, struct driver_progress *progress, char *err, size_t size);
    /* Fails with DRIVER_MISMATCH when the echoed ID is not expected_id. */
    int (*read_result)(void *state, uint32_t expected_id, struct driver_result *result, char *err,
                       size_t size);
    /* Lets the analyzer forget the result; call only after it committed. */
    int (*acknowledge)(void *state, uint32_t host_test_id, char *err, size_t size);
    int (*abort)(void *state, uint32_t host_test_id, char *err, size_t size);
    void (*close)(void *state);

    /* Analyzers that upload on their own set these three; polled ones leave
     * them NULL. receive runs the link for up to wait_ms, returning early
     * when wake_fd becomes readable or a message is complete. */
    int (*receive)(void *state, int wake_fd, int wait_ms, struct driver_upload *upload, char *err,
                   size_t size);
    /* Sends the held final ACK of message `number`; call only after its
     * results committed. */
    int (*release)(void *state, uint32_t number, char *err, size_t size);
    /* Queues records (each ending in CR) to send in a link session of ours. */
    int (*send_message)(void *state, const char *text, size_t len, char *err, size_t size);
};

/* Returns the driver named `name` from the table in drivers.c, or NULL. */
const struct driver_ops *driver_find(const char *name);

/* The status fields every Modbus analyzer reports, whatever its map. */
struct driver_status_block {
    uint16_t state;
    uint16_t percent;
    uint16_t seconds_left;
    uint16_t error_code;
    uint16_t sequence;
    uint32_t host_test_id;
};

/* How a model's status codes read. */
struct driver_status_codes {
    int address; /* of the status block, for messages */
    uint16_t idle_state;
    uint16_t result_state;
    uint16_t error_state;
    const char *(*state_name)(uint16_t state);
    const char *(*error_text)(uint16_t code);
};

/* Fills progress from a decoded status block. Returns DRIVER_OK, or
 * DRIVER_CORRUPT with err set when the state is unknown. */
int driver_fill_progress(const struct driver_status_codes *codes,
                         const struct driver_status_block *status, struct driver_progress *progress,
                         char *err, size_t size);

/* Formats a YYYYMMDD date from a device register as YYYY-MM-DD. */
void driver_format_date(uint32_t yyyymmdd, char out[11]);

/* Replaces every byte outside printable ASCII with '?', so text from a
 * device cannot forge log lines or reports. */
void driver_clean_text(char *text);

/* Returns the wire-level cause for a status ("timed out", "CRC error"). */
const char *driver_status_text(int status);

#endif
