/* Pieces that the scenario parsers of every simulated kind share: reading
 * the INI file with inih while tracking line numbers, error reports that
 * name file, line and key, and parsers for the value types of docs/sim.md. */
#ifndef TOXLAB_SIM_SCENARIO_PARSE_H
#define TOXLAB_SIM_SCENARIO_PARSE_H

#include <ini.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SCENARIO_MAX_PHASE_MS 86400000u /* one day */
#define SCENARIO_MAX_TEST_NUMBER 1000000u
#define SCENARIO_MAX_SLAVE 247

/* Faults of the Modbus sims, scheduled by test number. */
enum scenario_fault {
    SCENARIO_FAULT_NONE = 0,
    SCENARIO_FAULT_EXCEPTION, /* the start command gets exception 4, no test starts */
    SCENARIO_FAULT_WRONG_ID,  /* the result echoes the host test ID plus one */
    SCENARIO_FAULT_SILENT,    /* replies stop once the test reaches analysing */
    SCENARIO_FAULT_LOST_ACK,  /* the first acknowledgement is answered but ignored */
    /* From here on SCENARIO_FAULT_WIRE + enum wire_fault_kind: a wire fault
     * armed when the test's start command is accepted. */
    SCENARIO_FAULT_WIRE = 16,
};

/* One accepted value of a keyword key; tables end with a NULL name. */
struct scenario_keyword {
    const char *name;
    int value;
};

/* Keywords of the `fault` key: exception, wrong-id, silent, lost-ack and
 * the wire faults. */
extern const struct scenario_keyword scenario_fault_keywords[];

/* Parsing state shared by the line reader and a kind's entry handler. */
struct scenario_parser {
    const char *path; /* scenario file, for messages */
    FILE *file;
    int line;             /* line number of the text inih is handling */
    int lines_read;       /* complete lines read so far */
    int errors;           /* errors reported so far */
    char bad_section[64]; /* last bad section name reported, to report it once */
};

/* Prints "toxlab-sim: FILE:LINE: [SECTION] KEY: message" on stderr and
 * counts the error. */
void scenario_report(struct scenario_parser *p, int line, const char *section, const char *key,
                     const char *format, ...) __attribute__((format(printf, 5, 6)));

/* Reads the file at path with inih, calling handler(user, section, key,
 * value) for each key, and reports syntax errors and lines too long for
 * inih. Returns the number of errors, those the handler reported included,
 * or -1 when the file cannot be opened (after printing why). */
int scenario_parse_file(struct scenario_parser *p, const char *path, ini_handler handler,
                        void *user);

/* Parses decimal digits only (no sign, no spaces) up to max. */
bool scenario_parse_unsigned(const char *text, unsigned long max, unsigned long *out);

/* Parses unsigned decimal text with 1 to `decimals` decimal places (or
 * none) into the value times 10^decimals, without going through binary
 * floating point. Rejects results over UINT32_MAX. */
bool scenario_parse_fixed(const char *text, unsigned decimals, uint32_t *out);

/* Parses YYYY-MM-DD (year 1970 or later) into YYYYMMDD, checking that the
 * day exists. */
bool scenario_parse_date(const char *text, uint32_t *out);

/* Accepts 1 to max printable ASCII characters, because the registers carry
 * ASCII and an empty identity field would be of no use to a host. */
bool scenario_is_register_text(const char *text, size_t max);

/* Returns whether the key's bit was already set in seen, and sets it. */
bool scenario_mark_seen(unsigned *seen, unsigned bit);

/* Records the line of a test key in *line. Returns false after reporting a
 * key set twice. */
bool scenario_claim_line(struct scenario_parser *p, const char *section, const char *name,
                         int *line);

/* Claims the key's line and looks the value up in table. Returns true and
 * sets *out for a known keyword; otherwise reports the accepted keywords. */
bool scenario_handle_keyword_key(struct scenario_parser *p, const char *section, const char *name,
                                 const char *value, const struct scenario_keyword *table, int *line,
                                 int *out);

/* Parses "test.N" with N from 1 to SCENARIO_MAX_TEST_NUMBER. Returns false
 * for other section names. For a test.N name, *valid is set to whether N is
 * valid. */
bool scenario_parse_test_section(const char *section, unsigned *number, bool *valid);

/* Reports a bad section name once, at its first key, rather than at every
 * key. */
void scenario_report_bad_section(struct scenario_parser *p, const char *section, const char *name);

#endif
