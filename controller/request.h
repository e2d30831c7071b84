/* One client request while a command runs, and the helpers every command
 * uses to read its arguments and build its response. */
#ifndef TOXLAB_REQUEST_H
#define TOXLAB_REQUEST_H

#include "controller/daemon.h"

#include "controller/ulid.h"
#include "protocol/subject_id.h"

#include <jansson.h>
#include <stdbool.h>

struct request {
    struct daemon *daemon;
    struct client *client;
    json_int_t id;
    const char *cmd;
    json_t *args;
};

/* Builds an error response with a printf-style message. */
json_t *req_fail(const struct request *req, enum proto_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs the SQLite error, rolls back, and builds a "storage" error. */
json_t *req_storage_failure(const struct request *req, const char *what);

/* Builds an ok response of class cls carrying payload under the key cls. */
json_t *req_ok(const struct request *req, const char *cls, json_t *payload);

/* Returns the string argument `name`, or NULL when it is missing or empty. */
const char *req_string(const struct request *req, const char *name);

/* Parses the "subject" argument and looks it up. Returns NULL, or the error
 * response. With `registered`, a subject that is not stored is an error. */
json_t *req_find_subject(const struct request *req, struct subject_id *subject,
                         char id[RECORD_ID_SIZE], bool registered);

/* Reports whether text has a control character (below 0x20, or 0x7f), which
 * could forge lines or hide text in a report. */
bool text_has_control(const char *text);

/* Reports whether a barcode has 1 to 63 letters, digits, '-', '_' or '.'. */
bool barcode_is_valid(const char *barcode);

/* Returns today's date (YYYYMMDD) in the configured zone. */
int req_today(void);

#endif
