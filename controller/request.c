#include "controller/request.h"

#include "controller/db.h"
#include "controller/timefmt.h"
#include "protocol/subject_id.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

json_t *req_fail(const struct request *req, enum proto_error code, const char *fmt, ...)
{
    char message[512];
    va_list args;

    va_start(args, fmt);
    vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    return proto_error_response(req->id, code, message);
}

json_t *req_storage_failure(const struct request *req, const char *what)
{
    char reason[256];
    bool full = (sqlite3_extended_errcode(req->daemon->db) & 0xff) == SQLITE_FULL;

    /* The rollback clears SQLite's message, so it is copied first. */
    snprintf(reason, sizeof(reason), "%s", db_errmsg(req->daemon->db));
    log_msg(LOG_ERR, "storing %s failed: %s", what, reason);
    db_rollback(req->daemon->db);
    if (full) {
        return req_fail(req, PROTO_STORAGE,
                        "storing %s failed: the database is full (%s); nothing was stored. "
                        "Free disk space or raise daemon.max_database_kb; reading still works",
                        what, reason);
    }
    return req_fail(req, PROTO_STORAGE, "storing %s failed: %s; nothing was stored", what, reason);
}

json_t *req_ok(const struct request *req, const char *cls, json_t *payload)
{
    json_t *response = proto_ok_response(req->id, cls);

    json_object_set_new(response, cls, payload);
    return response;
}

const char *req_string(const struct request *req, const char *name)
{
    const char *value = json_string_value(json_object_get(req->args, name));

    return value && value[0] ? value : NULL;
}

int req_today(void)
{
    return time_local_date(time_realtime_ms());
}

/* Parses the "subject" argument and looks it up. Returns NULL, or the error
 * response. With `registered`, a subject that is not stored is an error. */
json_t *req_find_subject(const struct request *req, struct subject_id *subject,
                         char id[RECORD_ID_SIZE], bool registered)
{
    const char *text = req_string(req, "subject");
    char err[160];

    if (text == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'subject'");
    }
    if (subject_id_parse(text, req_today(), subject, err, sizeof(err)) != 0) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "invalid subject ID: %s", err);
    }
    int found = db_subject_find(req->daemon->db, subject, id);
    if (found < 0) {
        return req_storage_failure(req, "the subject lookup");
    }
    if (!found && registered) {
        char masked[SUBJECT_MASKED_MAX];
        subject_id_mask(subject->number, masked, sizeof(masked));
        return req_fail(req, PROTO_NOT_FOUND,
                        "subject %s:%s not found; register it with 'toxlab subject add'",
                        subject->type, masked);
    }
    return NULL;
}

bool text_has_control(const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return true;
        }
    }
    return false;
}

bool barcode_is_valid(const char *barcode)
{
    size_t len = strlen(barcode);

    if (len == 0 || len > 63) {
        return false;
    }
    for (const char *p = barcode; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.')) {
            return false;
        }
    }
    return true;
}
