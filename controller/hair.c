#include "controller/hair.h"

#include "controller/db.h"
#include "controller/db_hair.h"
#include "controller/log.h"
#include "controller/timefmt.h"
#include "controller/tsv.h"
#include "protocol/decimal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ANSWER_MAX 2048

static const char *status_name(char code)
{
    switch (code) {
    case 'C':
        return "correction";
    case 'P':
        return "preliminary";
    default:
        /* R.9 F, and an empty status, which the profile reads as final. */
        return "final";
    }
}

/* Reads one R record into an analyte: the code mapped to toxlab's name, a
 * censored value as its range flag. Nothing is dropped: a code without a
 * mapping or a value that is not a decimal is stored as invalid. */
static void read_row(const struct instrument_config *config, const struct driver_upload_row *row,
                     struct driver_analyte *analyte)
{
    const char *value = row->value;

    memset(analyte, 0, sizeof(*analyte));
    snprintf(analyte->unit, sizeof(analyte->unit), "%s", row->unit);
    if (!config_map_analyte(config, row->code, analyte->analyte, sizeof(analyte->analyte))) {
        snprintf(analyte->analyte, sizeof(analyte->analyte), "%s", row->code);
        analyte->invalid_reason = "analyte code not mapped";
    }
    if (value[0] == '<') {
        analyte->under_range = true;
        value++;
    } else if (value[0] == '>') {
        analyte->over_range = true;
        value++;
    }
    if (decimal_parse(value, &analyte->value_micro) != 0) {
        analyte->value_micro = 0;
        analyte->invalid_reason = "value is not a decimal";
    }
}

/* Rows of a message that become one result: the same specimen (O.3), P.3
 * and status. A message may carry several specimens, each after its own O
 * record. */
static bool same_group(const struct driver_upload_row *a, const struct driver_upload_row *b)
{
    return a->status == b->status && strcmp(a->specimen, b->specimen) == 0 &&
           strcmp(a->subject_ref, b->subject_ref) == 0;
}

/* Hashes what identifies the results of one group, so a message sent
 * again is recognised. */
static void digest_rows(const struct driver_upload *upload, const struct driver_upload_row *group,
                        char out[TSV_VERSION_HEX])
{
    char text[DRIVER_MAX_UPLOAD_ROWS * 160 + 256];
    size_t used = (size_t)snprintf(text, sizeof(text), "%s\n%s\n%c\n", group->specimen,
                                   group->subject_ref, group->status);

    for (size_t i = 0; i < upload->count && used < sizeof(text); i++) {
        const struct driver_upload_row *row = &upload->rows[i];
        if (!same_group(row, group)) {
            continue;
        }
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s|%s|%s|%s|%s\n", row->code,
                                 row->value, row->unit, row->completed, row->instrument);
    }
    tsv_sha256_hex(text, out);
}

/* Decides whom a group of results belongs to. Returns NULL when it links
 * to the barcode's subject, or the reason it stays unlinked. */
static const char *link_reason(struct daemon *daemon, const struct driver_upload_row *group,
                               struct specimen_row *specimen)
{
    static char reason[96];
    int found = db_specimen_by_barcode(daemon->db, group->specimen, specimen);

    if (found <= 0) {
        return "unknown barcode";
    }
    if (strcmp(specimen->matrix, "hair") != 0) {
        snprintf(reason, sizeof(reason), "barcode of a specimen of matrix %s", specimen->matrix);
        return reason;
    }
    if (group->subject_ref[0] != '\0' && strcmp(group->subject_ref, specimen->subject_id) != 0) {
        return "P.3 does not match the subject of the barcode";
    }
    return NULL;
}

/* Converts R.13 (YYYYMMDDhhmmss, the analyzer's local time in zone) to UTC
 * text. Returns NULL when the field is not a valid time. The daemon runs
 * with TZ set to its own zone. For an analyzer in another zone, TZ is
 * switched for the conversion, on the event loop's thread, as a reload
 * switches it. */
static const char *reported_time(const char *completed, const char *zone, const char *daemon_zone,
                                 char out[TIMESTAMP_SIZE])
{
    struct tm local = {.tm_isdst = -1};
    int consumed = 0;

    if (strlen(completed) != 14 || strspn(completed, "0123456789") != 14 ||
        sscanf(completed, "%4d%2d%2d%2d%2d%2d%n", &local.tm_year, &local.tm_mon, &local.tm_mday,
               &local.tm_hour, &local.tm_min, &local.tm_sec, &consumed) != 6 ||
        consumed != 14) {
        return NULL;
    }
    if (local.tm_mon < 1 || local.tm_mon > 12 || local.tm_mday < 1 || local.tm_mday > 31 ||
        local.tm_hour > 23 || local.tm_min > 59 || local.tm_sec > 60) {
        return NULL;
    }
    local.tm_year -= 1900;
    local.tm_mon -= 1;
    bool other_zone = strcmp(zone, daemon_zone) != 0;
    if (other_zone) {
        setenv("TZ", zone, 1);
        tzset();
    }
    time_t seconds = mktime(&local);
    if (other_zone) {
        setenv("TZ", daemon_zone, 1);
        tzset();
    }
    if (seconds == (time_t)-1) {
        return NULL;
    }
    time_format_utc((int64_t)seconds * 1000, out);
    return out;
}

/* Stores the R records of one group as one result. Returns 1 when stored,
 * 0 when this message was stored before, -1 on error. */
static int store_group(struct daemon *daemon, struct instrument *inst,
                       const struct driver_upload *upload, const struct driver_upload_row *group,
                       char id[RECORD_ID_SIZE])
{
    struct driver_analyte analytes[DRIVER_MAX_UPLOAD_ROWS];
    struct specimen_row specimen;
    char digest[TSV_VERSION_HEX];
    char reported[TIMESTAMP_SIZE];
    const char *reported_text = NULL;
    const char *zone = inst->config->timezone[0] ? inst->config->timezone : daemon->config.timezone;
    const char *serial = inst->config->id;
    size_t count = 0;

    digest_rows(upload, group, digest);
    int seen = db_hair_seen(daemon->db, inst->config->id, digest);
    if (seen != 0) {
        return seen < 0 ? -1 : 0;
    }
    for (size_t i = 0; i < upload->count; i++) {
        if (same_group(&upload->rows[i], group)) {
            read_row(inst->config, &upload->rows[i], &analytes[count++]);
            reported_text =
                reported_time(upload->rows[i].completed, zone, daemon->config.timezone, reported);
            serial = upload->rows[i].instrument[0] ? upload->rows[i].instrument : serial;
        }
    }
    const char *unlinked = link_reason(daemon, group, &specimen);
    struct hair_result_in in = {
        .instrument = inst->config->id,
        .serial = serial,
        .digest = digest,
        .barcode = group->specimen,
        .subject_ref = group->subject_ref,
        .status = status_name(group->status),
        .tier = strcmp(inst->config->method, "lc-ms/ms") == 0 ? "confirm" : "screen",
        .reported = reported_text,
        .timezone = daemon->config.timezone,
        .specimen_id = unlinked ? NULL : specimen.id,
        .subject_id = unlinked ? NULL : specimen.subject_id,
        .unlinked_reason = unlinked,
        .collected_date = unlinked ? 0 : specimen.collected_date,
        .analytes = analytes,
        .count = count,
    };
    if (db_hair_result_store(daemon->db, daemon->config.lab_id, &in, &daemon->thresholds, id) !=
        0) {
        return -1;
    }
    log_msg(LOG_NOTICE, "%s: message %u: %s result %s stored for barcode %s%s%s", inst->config->id,
            upload->number, in.status, id, group->specimen, unlinked ? ", unlinked: " : "",
            unlinked ? unlinked : "");
    return 1;
}

/* Reports whether a row before index belongs to the same group as it. */
static bool group_seen_before(const struct driver_upload *upload, size_t index)
{
    for (size_t i = 0; i < index; i++) {
        if (same_group(&upload->rows[i], &upload->rows[index])) {
            return true;
        }
    }
    return false;
}

/* Stores every group of the message, in the order the groups first
 * appear, in one transaction. */
static int store_upload(struct daemon *daemon, struct instrument *inst,
                        const struct driver_upload *upload, int *stored)
{
    char id[RECORD_ID_SIZE];

    *stored = 0;
    if (db_begin(daemon->db) != 0) {
        return -1;
    }
    for (size_t i = 0; i < upload->count; i++) {
        if (group_seen_before(upload, i)) {
            continue;
        }
        int result = store_group(daemon, inst, upload, &upload->rows[i], id);
        if (result < 0) {
            db_rollback(daemon->db);
            return -1;
        }
        *stored += result;
    }
    return db_commit(daemon->db);
}

static void store_results(struct daemon *daemon, struct instrument *inst,
                          struct driver_upload *upload)
{
    int stored;

    /* Unknown statuses are read as final, so the digest groups them there. */
    for (size_t i = 0; i < upload->count; i++) {
        if (upload->rows[i].status == 0 || strchr("FCP", upload->rows[i].status) == NULL) {
            upload->rows[i].status = 'F';
        }
    }
    if (store_upload(daemon, inst, upload, &stored) != 0) {
        log_msg(LOG_ERR,
                "%s: message %u for barcode %s: storing failed: %s; it is not acknowledged, so "
                "the analyzer sends it again",
                inst->config->id, upload->number, upload->specimen, db_errmsg(daemon->db));
        return;
    }
    if (stored == 0) {
        log_msg(LOG_NOTICE, "%s: message %u for barcode %s was stored before; acknowledged again",
                inst->config->id, upload->number, upload->specimen);
    }
    if (upload->skipped > 0) {
        /* TODO: store results past DRIVER_MAX_UPLOAD_ROWS instead of logging them. */
        log_msg(LOG_ERR, "%s: message %u: %zu R records over the limit of %d were not stored",
                inst->config->id, upload->number, upload->skipped, DRIVER_MAX_UPLOAD_ROWS);
    }
    /* Committed: only now may the analyzer forget the message. */
    line_command(&inst->line, LINE_CMD_RELEASE, upload->number);
}

/* Appends O.5, the mapped analyte codes as repeats. */
static void append_codes(const struct instrument_config *config, char *out, size_t size)
{
    char copy[sizeof(config->analytes)];
    size_t used = strlen(out);
    bool first = true;

    snprintf(copy, sizeof(copy), "%s", config->analytes);
    for (char *pair = strtok(copy, ","); pair != NULL; pair = strtok(NULL, ",")) {
        pair += strspn(pair, " ");
        size_t code_len = strcspn(pair, "= ");
        used += (size_t)snprintf(out + used, size - used, "%s^^^%.*s", first ? "" : "\\",
                                 (int)code_len, pair);
        first = false;
        if (used >= size) {
            return;
        }
    }
}

static void answer_query(struct daemon *daemon, struct instrument *inst,
                         const struct driver_upload *upload)
{
    struct specimen_row specimen;
    char answer[ANSWER_MAX];
    int found = db_specimen_by_barcode(daemon->db, upload->specimen, &specimen);

    if (found == 1 && strcmp(specimen.matrix, "hair") == 0) {
        snprintf(answer, sizeof(answer), "H|\\^&|||toxlab\rP|1|%s\rO|1|%s||", specimen.subject_id,
                 specimen.barcode);
        append_codes(inst->config, answer, sizeof(answer));
        size_t used = strlen(answer);
        snprintf(answer + used, sizeof(answer) - used, "|R||||||N||||hair\rL|1|F\r");
    } else {
        snprintf(answer, sizeof(answer), "H|\\^&|||toxlab\rL|1|I\r");
    }
    log_msg(LOG_NOTICE, "%s: query for barcode %s: replied %s", inst->config->id, upload->specimen,
            found == 1 ? "with its order" : "with no information");
    if (line_send_message(&inst->line, answer) != 0) {
        log_msg(LOG_ERR,
                "%s: the reply to the query for %s was dropped because the send queue is full",
                inst->config->id, upload->specimen);
    }
}

void hair_handle_upload(struct daemon *daemon, struct instrument *inst,
                        const struct driver_upload *upload)
{
    struct driver_upload copy = *upload;

    if (upload->kind == UPLOAD_QUERY) {
        answer_query(daemon, inst, upload);
        return;
    }
    store_results(daemon, inst, &copy);
}

json_t *hair_check_segment(const struct request *req, const char *matrix)
{
    const char *length = req_string(req, "segment_length");
    const char *position = req_string(req, "segment_position");
    int64_t micro;

    if (length == NULL && position == NULL) {
        return NULL;
    }
    if (matrix == NULL || strcmp(matrix, "hair") != 0) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "segment_length and segment_position apply to hair specimens only");
    }
    if (length != NULL && (decimal_parse(length, &micro) != 0 || micro <= 0)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid segment_length '%s': use a positive decimal number of cm", length);
    }
    if (position != NULL && strlen(position) > 64) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "segment_position is longer than 64 characters");
    }
    return NULL;
}

int hair_store_segment(const struct request *req, const char *specimen_id)
{
    const char *length = req_string(req, "segment_length");
    const char *position = req_string(req, "segment_position");

    if (length == NULL && position == NULL) {
        return 0;
    }
    return db_hair_segment_add(req->daemon->db, specimen_id, length, position);
}

json_t *cmd_specimen_show(const struct request *req)
{
    struct specimen_row specimen;
    const char *barcode = req_string(req, "barcode");

    if (barcode == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing barcode");
    }
    int found = db_specimen_by_barcode(req->daemon->db, barcode, &specimen);
    if (found <= 0) {
        return found < 0 ? req_storage_failure(req, "the specimen lookup")
                         : req_fail(req, PROTO_NOT_FOUND, "specimen %s not found", barcode);
    }
    return req_ok(req, "specimen", db_hair_specimen_json(req->daemon->db, specimen.id));
}

json_t *cmd_result_unlinked(const struct request *req)
{
    json_t *results = db_hair_unlinked_json(req->daemon->db);

    if (results == NULL) {
        return req_storage_failure(req, "the unlinked results");
    }
    return req_ok(req, "results", results);
}

/* Loads a laboratory result's state for link and release. Returns NULL or
 * the error response. */
static json_t *load_state(const struct request *req, const char *result_id,
                          struct hair_result_state *state)
{
    if (result_id == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing result");
    }
    int found = db_hair_result_state(req->daemon->db, result_id, state);
    if (found <= 0) {
        return found < 0
                   ? req_storage_failure(req, "the result lookup")
                   : req_fail(req, PROTO_NOT_FOUND, "laboratory result %s not found", result_id);
    }
    return NULL;
}

json_t *cmd_result_link(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct hair_result_state state;
    struct specimen_row specimen;
    const char *result_id = req_string(req, "result");
    const char *barcode = req_string(req, "barcode");
    const char *reason = req_string(req, "reason");
    json_t *error = load_state(req, result_id, &state);

    if (error != NULL) {
        return error;
    }
    if (barcode == NULL || reason == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "missing barcode or reason: a link names the specimen and why");
    }
    if (state.subject_id[0] != '\0') {
        return req_fail(req, PROTO_CONFLICT, "result %s is already linked to a subject", result_id);
    }
    int found = db_specimen_by_barcode(daemon->db, barcode, &specimen);
    if (found <= 0 || strcmp(specimen.matrix, "hair") != 0) {
        return found < 0 ? req_storage_failure(req, "the specimen lookup")
                         : req_fail(req, PROTO_NOT_FOUND, "hair specimen %s not found", barcode);
    }
    if (db_hair_link(daemon->db, result_id, specimen.subject_id, specimen.id, reason,
                     req->client->uid) != 0) {
        return req_storage_failure(req, "the link");
    }
    log_msg(LOG_NOTICE, "result %s linked to specimen %s by uid %u: %s", result_id, barcode,
            (unsigned)req->client->uid, reason);
    return req_ok(req, "result", db_hair_result_json(daemon->db, result_id));
}

json_t *cmd_result_release(const struct request *req)
{
    struct hair_result_state state;
    const char *result_id = req_string(req, "result");
    json_t *error = load_state(req, result_id, &state);

    if (error != NULL) {
        return error;
    }
    if (state.subject_id[0] == '\0') {
        return req_fail(req, PROTO_CONFLICT,
                        "result %s is unlinked: link it with result link first", result_id);
    }
    if (strcmp(state.status, "preliminary") == 0) {
        return req_fail(req, PROTO_CONFLICT, "result %s is preliminary and can never be evidence",
                        result_id);
    }
    if (state.released) {
        return req_fail(req, PROTO_CONFLICT, "result %s is already released", result_id);
    }
    if (db_hair_release(req->daemon->db, result_id, req->client->uid) != 0) {
        return req_storage_failure(req, "the release");
    }
    log_msg(LOG_NOTICE, "result %s released by uid %u", result_id, (unsigned)req->client->uid);
    return req_ok(req, "result", db_hair_result_json(req->daemon->db, result_id));
}
