/* Reports that toxlab prints for people, and the text and JSON helpers that
 * toxlab.c shares with them. */
#ifndef TOXLAB_REPORT_H
#define TOXLAB_REPORT_H

#include <jansson.h>
#include <stddef.h>

/* A bounded line of text built piece by piece; longer text is cut off. */
struct text {
    char data[2048];
    size_t len;
};

__attribute__((format(printf, 2, 3))) void text_add(struct text *text, const char *format, ...);

/* Appends separator unless the text is still empty. */
void text_separate(struct text *text, const char *separator);

/* Returns the string member key of object, or NULL when it is missing or not a string. */
const char *get_string(const json_t *object, const char *key);

/* Returns the integer member key of object, or -1 when it is missing or not an integer. */
int get_int(const json_t *object, const char *key);

/* Prints a JSON value as one compact line, members in their order, for
 * --json output of the commands that run without toxlabd. */
void print_json_line(const json_t *value);

/* Returns text, or "-" when it is NULL. */
const char *or_dash(const char *text);

/* Returns nonzero when both strings are present and equal. */
int is_same(const char *a, const char *b);

/* Prints one test: instrument, test ID, state and reason, then its result.
 * A standalone test (not inside a stop report) also shows its stop ID and
 * whether the host clock was synchronised when its result was stored. */
void print_test(const json_t *test, int instrument_width, int standalone);

/* Prints the stop report: header, each test with its result, the decision,
 * its actions and the stop's notes. */
void print_stop(const json_t *stop);

/* Printers of whole responses, one for each response class. */
void print_stop_response(const json_t *response);
void print_test_response(const json_t *response);
void print_subject_added(const json_t *response);
void print_subject_response(const json_t *response);
void print_specimen_response(const json_t *response);
void print_instruments_response(const json_t *response);

#endif
