/* Commands of the client protocol, and the test state machine driven by
 * line events. A result commits before the analyzer may forget it and
 * before any client hears of it. */
#include "controller/daemon.h"

#include "controller/commands.h"
#include "controller/db.h"
#include "controller/db_results.h"
#include "controller/hair.h"
#include "controller/storage.h"
#include "controller/timefmt.h"
#include "protocol/subject_id.h"

#include <stdarg.h>
#include <systemd/sd-daemon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_ID_ATTEMPTS 16

struct instrument *daemon_find_instrument(struct daemon *daemon, const char *id)
{
    for (size_t i = 0; i < daemon->instrument_count; i++) {
        if (strcmp(daemon->instruments[i].config->id, id) == 0) {
            return &daemon->instruments[i];
        }
    }
    return NULL;
}

json_t *cmd_subject_add(const struct request *req)
{
    struct subject_id subject;
    char id[RECORD_ID_SIZE];
    bool existed = false;
    json_t *error = req_find_subject(req, &subject, id, false);

    if (error != NULL) {
        return error;
    }
    if (db_subject_add(req->daemon->db, req->daemon->config.lab_id, &subject, id, &existed) != 0) {
        return req_storage_failure(req, "the subject");
    }
    json_t *obj = db_subject_json(req->daemon->db, id, false);
    json_object_set_new(obj, "existed", json_boolean(existed));
    if (!existed) {
        log_msg(LOG_INFO, "subject %s registered (%s)", id,
                json_string_value(json_object_get(obj, "masked")));
    }
    return req_ok(req, "subject", obj);
}

json_t *cmd_subject_show(const struct request *req)
{
    /* TODO: page the history; a subject with hundreds of stops exceeds the
     * 64 KiB line limit and gets an internal error instead of the history. */
    struct subject_id subject;
    char id[RECORD_ID_SIZE];
    json_t *error = req_find_subject(req, &subject, id, true);

    if (error != NULL) {
        return error;
    }
    return req_ok(req, "subject", db_subject_json(req->daemon->db, id, true));
}

static bool valid_matrix(const char *matrix)
{
    static const char *const matrices[] = {"oral-fluid", "hair", "blood", "urine", "breath"};

    for (size_t i = 0; i < sizeof(matrices) / sizeof(matrices[0]); i++) {
        if (strcmp(matrix, matrices[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks the specimen arguments; returns NULL or the error response. */
static json_t *check_specimen_args(const struct request *req, const char *barcode,
                                   const char *matrix, int64_t *collected_ms)
{
    const char *collected = req_string(req, "collected");

    if (barcode == NULL || !barcode_is_valid(barcode)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing barcode: use 1 to 63 letters, digits, '-', '_' or '.'");
    }
    if (matrix == NULL || !valid_matrix(matrix)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing matrix: use oral-fluid, hair, blood, urine or breath");
    }
    *collected_ms = time_realtime_ms();
    if (collected != NULL && time_parse_rfc3339(collected, collected_ms) != 0) {
        return req_fail(
            req, PROTO_INVALID_ARGUMENT,
            "invalid collection time '%s': use RFC 3339, e.g. 2026-12-04T09:30:00+08:00",
            collected);
    }
    if (*collected_ms > time_realtime_ms() + 60000) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "collection time '%s' is in the future",
                        collected);
    }
    return NULL;
}

json_t *cmd_specimen_add(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct subject_id subject;
    char subject_id[RECORD_ID_SIZE];
    char stop_id[RECORD_ID_SIZE] = "";
    char id[RECORD_ID_SIZE];
    struct specimen_row existing;
    const char *barcode = req_string(req, "barcode");
    const char *matrix = req_string(req, "matrix");
    const char *stop = req_string(req, "stop");
    int64_t collected_ms;
    json_t *error = req_find_subject(req, &subject, subject_id, true);

    if (error == NULL) {
        error = check_specimen_args(req, barcode, matrix, &collected_ms);
    }
    if (error == NULL) {
        error = hair_check_segment(req, matrix);
    }
    if (error != NULL) {
        return error;
    }
    int found = db_specimen_by_barcode(daemon->db, barcode, &existing);
    if (found != 0) {
        return found < 0
                   ? req_storage_failure(req, "the specimen lookup")
                   : req_fail(req, PROTO_CONFLICT, "barcode %s is already registered", barcode);
    }
    if (stop != NULL) {
        int belongs = db_stop_belongs_to(daemon->db, stop, subject_id);
        if (belongs <= 0) {
            return belongs < 0
                       ? req_storage_failure(req, "the stop lookup")
                       : req_fail(req, PROTO_NOT_FOUND, "stop %s of this subject not found", stop);
        }
        snprintf(stop_id, sizeof(stop_id), "%s", stop);
    }
    if (db_begin(daemon->db) != 0 ||
        (stop == NULL &&
         db_stop_create(daemon->db, daemon->config.lab_id, subject_id, false, stop_id) != 0) ||
        db_specimen_add(daemon->db, daemon->config.lab_id, subject_id, barcode, matrix, stop_id,
                        collected_ms, id) != 0 ||
        hair_store_segment(req, id) != 0 || db_commit(daemon->db) != 0) {
        return req_storage_failure(req, "the specimen");
    }
    log_msg(LOG_INFO, "specimen %s (%s) registered as %s in stop %s", barcode, matrix, id, stop_id);
    return req_ok(req, "specimen", db_specimen_json(daemon->db, id));
}

/* Resolves the instruments argument into free, online instruments. */
static json_t *pick_instruments(const struct request *req, struct instrument **picked,
                                size_t *count)
{
    json_t *list = json_object_get(req->args, "instruments");
    size_t index;
    json_t *item;

    if (!json_is_array(list) || json_array_size(list) == 0) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "missing argument 'instruments' (a list of IDs)");
    }
    if (json_array_size(list) > CONFIG_MAX_INSTRUMENTS) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "more than %d instruments",
                        CONFIG_MAX_INSTRUMENTS);
    }
    *count = 0;
    json_array_foreach(list, index, item)
    {
        const char *name = json_string_value(item);
        struct instrument *inst = name ? daemon_find_instrument(req->daemon, name) : NULL;
        if (inst == NULL) {
            return req_fail(req, PROTO_NOT_FOUND,
                            "instrument %s not found; 'toxlab instruments' "
                            "lists the configured ones",
                            name ? name : "(not a string)");
        }
        for (size_t i = 0; i < *count; i++) {
            if (picked[i] == inst) {
                return req_fail(req, PROTO_INVALID_ARGUMENT, "instrument %s is named twice", name);
            }
        }
        if (inst->ops->receive != NULL) {
            return req_fail(req, PROTO_INVALID_ARGUMENT,
                            "instrument %s uploads laboratory results on its own and runs no "
                            "tests; register a specimen with its barcode instead",
                            name);
        }
        if (!inst->online) {
            return req_fail(req, PROTO_INSTRUMENT_OFFLINE, "instrument %s is offline: %s", name,
                            inst->last_error[0] ? inst->last_error : "not identified yet");
        }
        if (inst->test_id[0] != '\0') {
            return req_fail(req, PROTO_INSTRUMENT_BUSY, "instrument %s is running test %s", name,
                            inst->test_id);
        }
        picked[(*count)++] = inst;
    }
    return NULL;
}

/* Finds the specimen for the instruments that take one. *row stays empty
 * (id "") when none of them does. */
static json_t *pick_specimen(const struct request *req, const char *subject_id,
                             struct instrument **picked, size_t count, struct specimen_row *row)
{
    const char *barcode = req_string(req, "specimen");
    const char *matrix = NULL;
    int found;

    memset(row, 0, sizeof(*row));
    for (size_t i = 0; i < count && matrix == NULL; i++) {
        matrix = picked[i]->ops->specimen_matrix;
    }
    if (matrix == NULL) {
        return barcode ? req_fail(req, PROTO_INVALID_ARGUMENT,
                                  "none of the instruments takes a specimen")
                       : NULL;
    }
    found = barcode ? db_specimen_by_barcode(req->daemon->db, barcode, row)
                    : db_specimen_newest_untested(req->daemon->db, subject_id, matrix, row);
    if (found < 0) {
        return req_storage_failure(req, "the specimen lookup");
    }
    if (!found) {
        return barcode ? req_fail(req, PROTO_NOT_FOUND, "specimen %s not found", barcode)
                       : req_fail(req, PROTO_INVALID_ARGUMENT,
                                  "the subject has no untested %s specimen; register one with "
                                  "'toxlab specimen add'",
                                  matrix);
    }
    if (strcmp(row->subject_id, subject_id) != 0) {
        return req_fail(req, PROTO_CONFLICT, "specimen %s belongs to another subject",
                        row->barcode);
    }
    int busy = db_specimen_busy_tests(req->daemon->db, row->id);
    if (busy != 0) {
        return busy < 0 ? req_storage_failure(req, "the specimen lookup")
                        : req_fail(req, PROTO_CONFLICT,
                                   "specimen %s already has a pending, running or completed test; "
                                   "register a new specimen for a new test",
                                   row->barcode);
    }
    for (size_t i = 0; i < count; i++) {
        const char *wanted = picked[i]->ops->specimen_matrix;
        if (wanted != NULL && strcmp(wanted, row->matrix) != 0) {
            return req_fail(req, PROTO_INVALID_ARGUMENT,
                            "instrument %s takes %s, but specimen %s is %s", picked[i]->config->id,
                            wanted, row->barcode, row->matrix);
        }
    }
    return NULL;
}

static uint32_t new_host_id(struct daemon *daemon, const uint32_t *taken, size_t count)
{
    for (int attempt = 0; attempt < HOST_ID_ATTEMPTS; attempt++) {
        uint32_t candidate = random_u32_nonzero();
        bool clash = db_host_id_in_use(daemon->db, candidate);
        for (size_t i = 0; i < count && !clash; i++) {
            clash = taken[i] == candidate;
        }
        if (!clash) {
            return candidate;
        }
    }
    return 0;
}

/* Writes the stop (when new) and one pending test per instrument. */
static int write_tests(struct daemon *daemon, const char *subject_id,
                       const struct specimen_row *specimen, bool driving,
                       struct instrument **picked, size_t count, char stop_id[RECORD_ID_SIZE],
                       char test_ids[][RECORD_ID_SIZE], uint32_t *host_ids)
{
    if (db_begin(daemon->db) != 0) {
        return -1;
    }
    if (specimen->id[0] != '\0') {
        snprintf(stop_id, RECORD_ID_SIZE, "%s", specimen->stop_id);
        if (driving && db_stop_mark_driving(daemon->db, stop_id) != 0) {
            return -1;
        }
    } else if (db_stop_create(daemon->db, daemon->config.lab_id, subject_id, driving, stop_id) !=
               0) {
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        const char *specimen_id = picked[i]->ops->specimen_matrix ? specimen->id : NULL;
        host_ids[i] = new_host_id(daemon, host_ids, i);
        if (host_ids[i] == 0 ||
            db_test_create(daemon->db, daemon->config.lab_id, stop_id, picked[i]->config->id,
                           specimen_id, host_ids[i], test_ids[i]) != 0) {
            return -1;
        }
    }
    return db_commit(daemon->db);
}

/* Marks the test running and hands the start command to its line. */
static void send_start(struct daemon *daemon, struct instrument *inst, const char *stop_id,
                       const char *test_id, uint32_t host_id)
{
    if (db_test_set_state(daemon->db, test_id, "running", NULL) != 0) {
        log_msg(LOG_ERR, "%s: test %s: recording the running state failed: %s", inst->config->id,
                test_id, db_errmsg(daemon->db));
    }
    snprintf(inst->test_id, sizeof(inst->test_id), "%.*s", RECORD_ID_SIZE - 1, test_id);
    snprintf(inst->stop_id, sizeof(inst->stop_id), "%.*s", RECORD_ID_SIZE - 1, stop_id);
    inst->host_test_id = host_id;
    inst->last_contact_ms = time_monotonic_ms();
    inst->step[0] = '\0';
    inst->percent = -1;
    log_msg(LOG_INFO, "%s: test %s started with host test ID 0x%08X", inst->config->id, test_id,
            host_id);
    line_command(&inst->line, LINE_CMD_START, host_id);
}

json_t *cmd_test_start(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct subject_id subject;
    char subject_id[RECORD_ID_SIZE];
    struct instrument *picked[CONFIG_MAX_INSTRUMENTS];
    size_t count = 0;
    struct specimen_row specimen;
    char stop_id[RECORD_ID_SIZE];
    char test_ids[CONFIG_MAX_INSTRUMENTS][RECORD_ID_SIZE];
    uint32_t host_ids[CONFIG_MAX_INSTRUMENTS] = {0};
    bool driving = json_is_true(json_object_get(req->args, "driving"));
    json_t *error = req_find_subject(req, &subject, subject_id, true);

    if (error == NULL) {
        error = pick_instruments(req, picked, &count);
    }
    if (error == NULL) {
        error = pick_specimen(req, subject_id, picked, count, &specimen);
    }
    if (error != NULL) {
        return error;
    }
    char full[300];
    if (storage_check_room(daemon, full, sizeof(full)) != 0) {
        log_msg(LOG_WARNING, "test.start rejected: %s", full);
        return req_fail(req, PROTO_STORAGE, "%s", full);
    }
    if (write_tests(daemon, subject_id, &specimen, driving, picked, count, stop_id, test_ids,
                    host_ids) != 0) {
        return req_storage_failure(req, "the stop and its tests");
    }
    for (size_t i = 0; i < count; i++) {
        send_start(daemon, picked[i], stop_id, test_ids[i], host_ids[i]);
    }
    if (json_is_true(json_object_get(req->args, "watch"))) {
        client_watch(req->client, stop_id);
    }
    return req_ok(req, "stop", db_stop_json(daemon->db, stop_id));
}

static json_t *load_test(const struct request *req, struct test_row *row)
{
    const char *id = req_string(req, "test");
    int found;

    if (id == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'test'");
    }
    found = db_test_get(req->daemon->db, id, row);
    if (found < 0) {
        return req_storage_failure(req, "the test lookup");
    }
    return found ? NULL : req_fail(req, PROTO_NOT_FOUND, "test %s not found", id);
}

static bool test_open(const struct test_row *row)
{
    return strcmp(row->state, "pending") == 0 || strcmp(row->state, "running") == 0;
}

json_t *cmd_test_show(const struct request *req)
{
    struct test_row row;
    json_t *error = load_test(req, &row);

    return error ? error : req_ok(req, "test", db_test_json(req->daemon->db, row.id));
}

static void end_test(struct daemon *daemon, struct instrument *inst, const char *state,
                     const char *reason);
static json_t *test_ended_event(struct daemon *daemon, const char *stop_id, const char *test_id);

json_t *cmd_test_watch(const struct request *req)
{
    struct test_row row;
    json_t *error = load_test(req, &row);

    if (error != NULL) {
        return error;
    }
    json_t *response = req_ok(req, "test", db_test_json(req->daemon->db, row.id));
    if (test_open(&row)) {
        client_watch(req->client, row.id);
        return response;
    }
    /* Already ended: the response, then the closing event at once. */
    client_send(req->client, response);
    client_send(req->client, test_ended_event(req->daemon, row.stop_id, row.id));
    return NULL;
}

json_t *cmd_test_abort(const struct request *req)
{
    struct test_row row;
    json_t *error = load_test(req, &row);

    if (error != NULL) {
        return error;
    }
    if (!test_open(&row)) {
        return req_fail(req, PROTO_CONFLICT, "test %s has already ended (%s)", row.id, row.state);
    }
    struct instrument *inst = daemon_find_instrument(req->daemon, row.instrument);
    if (inst == NULL || strcmp(inst->test_id, row.id) != 0) {
        if (db_test_set_state(req->daemon->db, row.id, "aborted", "aborted by the officer") != 0) {
            return req_storage_failure(req, "the abort");
        }
    } else {
        line_command(&inst->line, LINE_CMD_ABORT, inst->host_test_id);
        end_test(req->daemon, inst, "aborted", "aborted by the officer");
    }
    log_msg(LOG_INFO, "%s: test %s aborted (client pid %d)", row.instrument, row.id,
            (int)req->client->pid);
    return req_ok(req, "test", db_test_json(req->daemon->db, row.id));
}

static void end_with_refusal(struct daemon *daemon, struct instrument *inst);
static int decide_if_ended(struct daemon *daemon, const char *stop_id);

json_t *cmd_test_refuse(const struct request *req)
{
    struct test_row row;
    json_t *error = load_test(req, &row);

    if (error != NULL) {
        return error;
    }
    struct instrument *inst = daemon_find_instrument(req->daemon, row.instrument);
    if (inst == NULL || inst->ops->refusal_step == NULL) {
        return req_fail(req, PROTO_CONFLICT,
                        "test %s runs on %s, which records no refusal; use 'toxlab test abort'",
                        row.id, row.instrument);
    }
    if (!test_open(&row) || strcmp(inst->test_id, row.id) != 0) {
        return req_fail(req, PROTO_CONFLICT, "test %s is not running (%s)", row.id, row.state);
    }
    /* NOTE: the step is the one of the last poll, so a blow that began within
     * the last poll interval is not seen yet. */
    if (strcmp(inst->step, inst->ops->refusal_step) != 0) {
        return req_fail(req, PROTO_CONFLICT,
                        "test %s is in step %s: a refusal is recorded only while the analyzer "
                        "requests a blow; use 'toxlab test abort' to stop the test",
                        row.id, inst->step[0] ? inst->step : "(not polled yet)");
    }
    line_command(&inst->line, LINE_CMD_ABORT, inst->host_test_id);
    end_with_refusal(req->daemon, inst);
    log_msg(LOG_INFO, "%s: test %s: refusal recorded (client pid %d)", row.instrument, row.id,
            (int)req->client->pid);
    return req_ok(req, "test", db_test_json(req->daemon->db, row.id));
}

json_t *cmd_stop_note(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    const char *stop = req_string(req, "stop");
    const char *kind = req_string(req, "kind");
    int ended = -1;

    if (stop == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'stop'");
    }
    if (kind == NULL || (strcmp(kind, "dispute") != 0 && strcmp(kind, "crash") != 0)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing kind: use dispute or crash");
    }
    json_t *current = db_stop_json(daemon->db, stop);
    if (current == NULL) {
        return req_fail(req, PROTO_NOT_FOUND, "stop %s not found", stop);
    }
    json_decref(current);
    if (db_begin(daemon->db) == 0 &&
        db_stop_note_add(daemon->db, stop, kind, (unsigned)req->client->uid) == 0) {
        ended = decide_if_ended(daemon, stop);
    }
    if (ended < 0 || db_commit(daemon->db) != 0) {
        return req_storage_failure(req, "the note");
    }
    log_msg(LOG_INFO, "stop %s: %s noted (client pid %d)", stop, kind, (int)req->client->pid);
    return req_ok(req, "stop", db_stop_json(daemon->db, stop));
}

json_t *cmd_stop_show(const struct request *req)
{
    const char *id = req_string(req, "stop");
    json_t *stop;

    if (id == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'stop'");
    }
    stop = db_stop_json(req->daemon->db, id);
    return stop ? req_ok(req, "stop", stop)
                : req_fail(req, PROTO_NOT_FOUND, "stop %s not found", id);
}

static json_t *instrument_json(const struct instrument *inst)
{
    json_t *obj = json_pack("{ss ss ss sb}", "id", inst->config->id, "driver", inst->ops->name,
                            "device", inst->config->device, "online", inst->online);

    if (inst->identity.serial[0] != '\0') {
        const struct driver_identity *id = &inst->identity;
        json_t *identity = json_pack("{ss ss ss ss}", "model", id->model, "serial", id->serial,
                                     "firmware", id->firmware, "calibration", id->calibration);
        static const char *const optional[] = {"cartridge_lot", "cartridge_expiry",
                                               "calibration_due"};
        const char *values[] = {id->cartridge_lot, id->cartridge_expiry, id->calibration_due};
        for (size_t i = 0; i < 3; i++) {
            if (values[i][0] != '\0') {
                json_object_set_new(identity, optional[i], json_string(values[i]));
            }
        }
        json_object_set_new(obj, "identity", identity);
    }
    if (inst->test_id[0] != '\0') {
        json_object_set_new(obj, "test", json_string(inst->test_id));
        if (inst->step[0] != '\0') {
            json_object_set_new(obj, "step", json_string(inst->step));
        }
    }
    if (inst->last_seen_ms != 0) {
        char seen[TIMESTAMP_SIZE];
        time_format_utc(inst->last_seen_ms, seen);
        json_object_set_new(obj, "last_seen", json_string(seen));
    }
    if (inst->last_error[0] != '\0') {
        json_object_set_new(obj, "error", json_string(inst->last_error));
    }
    return obj;
}

json_t *cmd_instruments(const struct request *req)
{
    json_t *list = json_array();

    for (size_t i = 0; i < req->daemon->instrument_count; i++) {
        json_array_append_new(list, instrument_json(&req->daemon->instruments[i]));
    }
    return req_ok(req, "instruments", list);
}

/* Builds the test-ended event: the test's state, reason and result. */
static json_t *test_ended_event(struct daemon *daemon, const char *stop_id, const char *test_id)
{
    json_t *event = json_pack("{ss ss ss ss}", "class", "event", "event", "test-ended", "stop",
                              stop_id, "test", test_id);
    json_t *test = db_test_json(daemon->db, test_id);
    static const char *const copied[] = {"instrument", "state", "reason", "result"};

    for (size_t i = 0; test != NULL && i < sizeof(copied) / sizeof(copied[0]); i++) {
        json_t *value = json_object_get(test, copied[i]);
        if (value != NULL) {
            json_object_set(event, copied[i], value);
        }
    }
    json_decref(test);
    return event;
}

static void publish_test_ended(struct daemon *daemon, const char *stop_id, const char *test_id)
{
    json_t *event = test_ended_event(daemon, stop_id, test_id);

    server_publish(daemon, NULL, test_id, json_incref(event), true);
    server_publish(daemon, stop_id, NULL, event, false);
}

static void publish_stop_ended(struct daemon *daemon, const char *stop_id)
{
    json_t *event = json_pack("{ss ss}", "class", "event", "event", "stop-ended");

    json_object_set_new(event, "stop", db_stop_json(daemon->db, stop_id));
    server_publish(daemon, stop_id, NULL, event, true);
}

/* Decides the stop when its last test just ended. Returns 1 when it did,
 * 0 when tests are still open, -1 on a storage error. */
static int decide_if_ended(struct daemon *daemon, const char *stop_id)
{
    return db_stop_decide_if_ended(daemon->db, daemon->config.lab_id, stop_id,
                                   &daemon->config.alcohol, &daemon->rules);
}

/* Frees the instrument and sends the watchers their events. The rows are stored already. */
static void finish_test(struct daemon *daemon, struct instrument *inst, bool stop_ended)
{
    char stop_id[RECORD_ID_SIZE];
    char test_id[RECORD_ID_SIZE];

    snprintf(stop_id, sizeof(stop_id), "%s", inst->stop_id);
    snprintf(test_id, sizeof(test_id), "%s", inst->test_id);
    inst->test_id[0] = inst->stop_id[0] = '\0';
    inst->host_test_id = 0;
    publish_test_ended(daemon, stop_id, test_id);
    if (stop_ended) {
        publish_stop_ended(daemon, stop_id);
    }
}

static void end_test(struct daemon *daemon, struct instrument *inst, const char *state,
                     const char *reason)
{
    int ended = -1;

    if (db_begin(daemon->db) == 0 &&
        db_test_set_state(daemon->db, inst->test_id, state, reason) == 0) {
        ended = decide_if_ended(daemon, inst->stop_id);
    }
    if (ended < 0 || db_commit(daemon->db) != 0) {
        log_msg(LOG_ERR, "%s: test %s: storing the %s state failed: %s", inst->config->id,
                inst->test_id, state, db_errmsg(daemon->db));
        db_rollback(daemon->db);
        ended = 0;
    }
    log_msg(LOG_NOTICE, "%s: test %s %s%s%s", inst->config->id, inst->test_id, state,
            reason ? ": " : "", reason ? reason : "");
    finish_test(daemon, inst, ended == 1);
}

static struct result_settings result_settings(const struct daemon *daemon)
{
    return (struct result_settings){
        .lab = daemon->config.lab_id,
        .thresholds = &daemon->thresholds,
        .alcohol = &daemon->config.alcohol,
        .rules = &daemon->rules,
        .timezone = daemon->config.timezone,
    };
}

static void result_job_init(struct result_job *job, const struct instrument *inst,
                            const struct driver_result *result)
{
    memset(job, 0, sizeof(*job));
    job->test_id = inst->test_id;
    job->result = result;
    job->identity = inst->identity;
}

/* Results of one pass over the line events, stored in one transaction. An
 * instrument has at most one result in a batch, so the arrays have a slot
 * for each instrument. */
struct result_batch {
    struct result_job jobs[CONFIG_MAX_INSTRUMENTS];
    struct instrument *insts[CONFIG_MAX_INSTRUMENTS];
    struct line_event *events[CONFIG_MAX_INSTRUMENTS];
    size_t count;
};

/* Acknowledges a stored result, or requests it again when it was not stored. */
static void settle_result(struct daemon *daemon, struct instrument *inst,
                          const struct result_job *job)
{
    if (job->outcome < 0) {
        log_msg(LOG_WARNING, "%s: test %s: the result stays on the analyzer and is read again",
                inst->config->id, inst->test_id);
        line_command(&inst->line, LINE_CMD_REREAD, inst->host_test_id);
        return;
    }
    /* Committed: only now may the analyzer forget it and the clients hear of it. */
    line_command(&inst->line, LINE_CMD_ACKNOWLEDGE, inst->host_test_id);
    log_msg(LOG_NOTICE, "%s: test %s completed, result %s stored", inst->config->id, inst->test_id,
            job->result_id);
    finish_test(daemon, inst, job->outcome == 1);
}

static void free_event(struct line_event *event)
{
    free(event->upload);
    free(event);
}

/* Commits the batch, then acknowledges each stored result and frees the events. */
static void flush_results(struct daemon *daemon, struct result_batch *batch)
{
    if (batch->count == 0) {
        return;
    }
    struct result_settings settings = result_settings(daemon);
    size_t stored = db_results_store(daemon->db, &settings, batch->jobs, batch->count);
    if (batch->count > 1) {
        log_msg(LOG_DEBUG, "%zu of %zu results stored in one transaction", stored, batch->count);
    }
    for (size_t i = 0; i < batch->count; i++) {
        settle_result(daemon, batch->insts[i], &batch->jobs[i]);
        free_event(batch->events[i]);
    }
    batch->count = 0;
}

static bool batch_holds(const struct result_batch *batch, const struct instrument *inst)
{
    for (size_t i = 0; i < batch->count; i++) {
        if (batch->insts[i] == inst) {
            return true;
        }
    }
    return false;
}

/* Stores the refusal the officer recorded as the test's result. */
static void end_with_refusal(struct daemon *daemon, struct instrument *inst)
{
    struct driver_result refusal = {.host_test_id = inst->host_test_id};
    struct result_settings settings = result_settings(daemon);
    struct result_job job;

    snprintf(refusal.matrix, sizeof(refusal.matrix), "breath");
    snprintf(refusal.tier, sizeof(refusal.tier), "screen");
    refusal.breath.present = true;
    refusal.breath.refused = true;
    result_job_init(&job, inst, &refusal);
    if (db_results_store(daemon->db, &settings, &job, 1) != 1) {
        end_test(daemon, inst, "aborted", "refusal could not be stored; aborted instead");
        return;
    }
    log_msg(LOG_NOTICE, "%s: test %s completed as refused, result %s stored", inst->config->id,
            inst->test_id, job.result_id);
    finish_test(daemon, inst, job.outcome == 1);
}

static void publish_progress(struct daemon *daemon, struct instrument *inst,
                             const struct driver_progress *progress)
{
    if (strcmp(inst->step, progress->step) == 0 && inst->percent == progress->percent) {
        return;
    }
    snprintf(inst->step, sizeof(inst->step), "%s", progress->step);
    inst->percent = progress->percent;
    json_t *event = json_pack("{ss ss ss ss ss ss ss si si}", "class", "event", "event", "progress",
                              "stop", inst->stop_id, "test", inst->test_id, "instrument",
                              inst->config->id, "state", "running", "step", progress->step,
                              "percent", progress->percent, "seconds_left", progress->seconds_left);
    server_publish(daemon, inst->stop_id, inst->test_id, event, false);
}

static void note_error(struct daemon *daemon, struct instrument *inst, const char *message)
{
    snprintf(inst->last_error, sizeof(inst->last_error), "%s", message);
    if (log_throttle_pass(&inst->errors)) {
        log_msg(LOG_WARNING, "%s: %s%s%s (%u so far)", inst->config->id, message,
                inst->test_id[0] ? ", test " : "", inst->test_id, inst->errors.count);
    }
    if (inst->test_id[0] != '\0') {
        json_t *event = json_pack("{ss ss ss ss ss ss}", "class", "event", "event",
                                  "instrument-error", "stop", inst->stop_id, "test", inst->test_id,
                                  "instrument", inst->config->id, "message", message);
        server_publish(daemon, inst->stop_id, inst->test_id, event, false);
    }
}

static void note_contact(struct instrument *inst)
{
    inst->last_contact_ms = time_monotonic_ms();
    inst->last_seen_ms = time_realtime_ms();
    if (inst->errors.count > 0) {
        log_msg(LOG_NOTICE, "%s: replies again after %u failed requests", inst->config->id,
                inst->errors.count);
        log_throttle_reset(&inst->errors);
        inst->last_error[0] = '\0';
    }
}

/* Tells systemd (when NOTIFY_SOCKET is set) how many analyzers are online. */
static void notify_status(struct daemon *daemon)
{
    char names[CONFIG_MAX_INSTRUMENTS * (INSTRUMENT_ID_MAX + 2)] = "";
    size_t online = 0;

    for (size_t i = 0; i < daemon->instrument_count; i++) {
        if (daemon->instruments[i].online) {
            size_t used = strlen(names);
            snprintf(names + used, sizeof(names) - used, "%s%s", online ? " " : "",
                     daemon->instruments[i].config->id);
            online++;
        }
    }
    sd_notifyf(0, "STATUS=%zu of %zu analyzers online%s%s", online, daemon->instrument_count,
               online ? ": " : "", names);
}

static void handle_online(struct instrument *inst, const struct driver_identity *identity)
{
    inst->online = true;
    inst->identity = *identity;
    note_contact(inst);
    log_msg(LOG_NOTICE, "%s: online: %s serial %s firmware %s, calibrated %s%s%s%s%s%s%s%s%s",
            inst->config->id, identity->model, identity->serial, identity->firmware,
            identity->calibration, identity->calibration_due[0] ? ", calibration due " : "",
            identity->calibration_due, identity->cartridge_lot[0] ? ", lot " : "",
            identity->cartridge_lot, identity->cartridge_expiry[0] ? " expiring " : "",
            identity->cartridge_expiry, inst->test_id[0] ? ", test " : "", inst->test_id);
}

static void handle_offline(struct daemon *daemon, struct instrument *inst, const char *message)
{
    /* The change is logged once; the failed reconnections that follow are
     * throttled like other errors. */
    if (inst->online) {
        log_msg(LOG_WARNING, "%s: offline%s%s: %s", inst->config->id,
                inst->test_id[0] ? ", test " : "", inst->test_id, message);
        inst->online = false;
        snprintf(inst->last_error, sizeof(inst->last_error), "%s", message);
        log_throttle_reset(&inst->errors);
        return;
    }

    /* The error that took the analyzer offline stays the last error, since
     * a failed reconnection only repeats that it is gone. */
    char cause[sizeof(inst->last_error)];
    snprintf(cause, sizeof(cause), "%s", inst->last_error);
    note_error(daemon, inst, message);
    if (cause[0] != '\0') {
        snprintf(inst->last_error, sizeof(inst->last_error), "%s", cause);
    }
}

/* Reports whether a test event belongs to the instrument's current test. */
static bool current_test(const struct instrument *inst, const struct line_event *event)
{
    return inst->test_id[0] != '\0' && event->host_test_id == inst->host_test_id;
}

static void handle_test_event(struct daemon *daemon, struct instrument *inst,
                              struct line_event *event)
{
    switch (event->kind) {
    case LINE_STARTED:
        note_contact(inst);
        break;
    case LINE_PROGRESS:
        note_contact(inst);
        publish_progress(daemon, inst, &event->progress);
        break;
    case LINE_START_FAILED:
    case LINE_DEVICE_ERROR:
        note_contact(inst);
        end_test(daemon, inst, "failed", event->message);
        break;
    case LINE_TEST_LOST:
        end_test(daemon, inst, "interrupted", event->message);
        break;
    default:
        break;
    }
}

/* A result for no open test: acknowledged again when it is stored already
 * (an earlier acknowledgement was lost), otherwise left on the analyzer. */
static void handle_stray_result(struct daemon *daemon, struct instrument *inst,
                                const struct driver_result *result)
{
    int stored =
        db_result_exists(daemon->db, inst->identity.serial, result->sequence, result->host_test_id);

    if (stored == 1) {
        log_msg(LOG_INFO,
                "%s: result of host test ID 0x%08X is stored already; acknowledging "
                "it again",
                inst->config->id, result->host_test_id);
        line_command(&inst->line, LINE_CMD_ACKNOWLEDGE, result->host_test_id);
        return;
    }
    log_msg(LOG_WARNING,
            "%s: result for host test ID 0x%08X belongs to no open test; not "
            "stored",
            inst->config->id, result->host_test_id);
}

static void resume_test(struct daemon *daemon, struct instrument *inst,
                        const struct test_row *found)
{
    struct test_row test = *found;
    uint32_t host_test_id = test.host_test_id;

    if (db_test_set_state(daemon->db, test.id, "running", NULL) != 0) {
        log_msg(LOG_ERR, "%s: test %s: resuming failed: %s", inst->config->id, test.id,
                db_errmsg(daemon->db));
        return;
    }
    snprintf(inst->test_id, sizeof(inst->test_id), "%.*s", RECORD_ID_SIZE - 1, test.id);
    snprintf(inst->stop_id, sizeof(inst->stop_id), "%.*s", RECORD_ID_SIZE - 1, test.stop_id);
    inst->host_test_id = host_test_id;
    inst->last_contact_ms = time_monotonic_ms();
    inst->step[0] = '\0';
    inst->percent = -1;
    line_command(&inst->line, LINE_CMD_ADOPT, host_test_id);
    log_msg(LOG_NOTICE, "%s: test %s (was %s) resumed: the analyzer still holds it",
            inst->config->id, test.id, test.state);
}

/* Handles a test an idle analyzer still runs or keeps a result for. An open
 * or interrupted test is resumed, so its result still completes it. A result
 * stored already is acknowledged again. Anything else is aborted on the
 * analyzer, so that it can take new tests. */
static void handle_found_test(struct daemon *daemon, struct instrument *inst,
                              const struct driver_progress *progress)
{
    uint32_t host_test_id = progress->host_test_id;
    struct test_row test;
    int found;

    if (inst->test_id[0] != '\0') {
        return;
    }
    found = db_test_find_by_host_id(daemon->db, inst->config->id, host_test_id, &test);
    if (found == 1) {
        resume_test(daemon, inst, &test);
        return;
    }
    if (progress->result_ready && db_result_exists(daemon->db, inst->identity.serial,
                                                   progress->sequence, host_test_id) == 1) {
        log_msg(LOG_NOTICE,
                "%s: the result of host test ID 0x%08X is stored already; "
                "acknowledging it again",
                inst->config->id, host_test_id);
        line_command(&inst->line, LINE_CMD_ACKNOWLEDGE, host_test_id);
        return;
    }
    log_msg(LOG_WARNING,
            "%s: the analyzer has a test with host test ID 0x%08X (%s) that matches "
            "no open test; aborting it on the analyzer",
            inst->config->id, host_test_id, progress->step);
    line_command(&inst->line, LINE_CMD_ABORT, host_test_id);
}

static void handle_line_event(struct daemon *daemon, struct line_event *event)
{
    struct instrument *inst = daemon_find_instrument(daemon, event->line->config->id);

    switch (event->kind) {
    case LINE_ONLINE:
        handle_online(inst, &event->identity);
        notify_status(daemon);
        break;
    case LINE_OFFLINE:
        handle_offline(daemon, inst, event->message);
        notify_status(daemon);
        break;
    case LINE_COMM_ERROR:
        note_error(daemon, inst, event->message);
        break;
    case LINE_ALIVE:
        note_contact(inst);
        break;
    case LINE_FOUND:
        handle_found_test(daemon, inst, &event->progress);
        break;
    case LINE_UPLOAD:
        note_contact(inst);
        hair_handle_upload(daemon, inst, event->upload);
        break;
    case LINE_LINK_NOTE:
        if (event->status != DRIVER_OK) {
            note_error(daemon, inst, event->message);
        } else {
            log_msg(LOG_INFO, "%s: %s", inst->config->id, event->message);
        }
        break;
    case LINE_ACKNOWLEDGED:
        log_msg(LOG_DEBUG, "%s: result of host test ID 0x%08X acknowledged", inst->config->id,
                event->host_test_id);
        break;
    default:
        if (current_test(inst, event)) {
            handle_test_event(daemon, inst, event);
        } else if (event->kind == LINE_RESULT) {
            handle_stray_result(daemon, inst, &event->result);
        }
        break;
    }
}

int stops_check_grace(struct daemon *daemon)
{
    int64_t now = time_monotonic_ms();
    int64_t next = -1;

    for (size_t i = 0; i < daemon->instrument_count; i++) {
        struct instrument *inst = &daemon->instruments[i];
        if (inst->test_id[0] == '\0') {
            continue;
        }
        int64_t deadline = inst->last_contact_ms + inst->config->grace_period_ms;
        if (now >= deadline) {
            char reason[DRIVER_ERR_SIZE + 96];
            snprintf(reason, sizeof(reason),
                     "no reply from the analyzer for %d ms (grace "
                     "period); last error: %s",
                     inst->config->grace_period_ms,
                     inst->last_error[0] ? inst->last_error : "none");
            line_command(&inst->line, LINE_CMD_FORGET, inst->host_test_id);
            end_test(daemon, inst, "interrupted", reason);
            continue;
        }
        if (next < 0 || deadline - now < next) {
            next = deadline - now;
        }
    }
    return (int)next;
}

/* Reports whether an event leaves the database and the batched instruments
 * alone, so that it may be handled before the batch commits. */
static bool passes_batch(const struct result_batch *batch, const struct instrument *inst,
                         const struct line_event *event)
{
    switch (event->kind) {
    case LINE_ONLINE:
    case LINE_OFFLINE:
    case LINE_STARTED:
    case LINE_PROGRESS:
    case LINE_COMM_ERROR:
    case LINE_ALIVE:
    case LINE_LINK_NOTE:
    case LINE_ACKNOWLEDGED:
        return !batch_holds(batch, inst);
    default:
        return false;
    }
}

void stops_handle_events(struct daemon *daemon, struct line_event *events)
{
    struct result_batch batch = {.count = 0};
    struct line_event *next;

    if (events == NULL) {
        return;
    }
    for (struct line_event *event = events; event != NULL; event = next) {
        struct instrument *inst = daemon_find_instrument(daemon, event->line->config->id);

        next = event->next;
        if (event->kind == LINE_RESULT && batch_holds(&batch, inst)) {
            flush_results(daemon, &batch);
        }
        if (event->kind == LINE_RESULT && current_test(inst, event)) {
            note_contact(inst);
            result_job_init(&batch.jobs[batch.count], inst, &event->result);
            batch.insts[batch.count] = inst;
            batch.events[batch.count++] = event;
            continue;
        }
        if (!passes_batch(&batch, inst, event)) {
            flush_results(daemon, &batch);
        }
        handle_line_event(daemon, event);
        free_event(event);
    }
    flush_results(daemon, &batch);
    audit_log_head(daemon);
}
