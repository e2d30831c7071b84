/* Commands of clerks and administrators: statuses and licences, licence
 * checks with their recorded decisions and reviews, and reloading the
 * threshold set and rules. */
#include "controller/commands.h"

#include "controller/db.h"
#include "controller/db_licence.h"
#include "controller/engine.h"
#include "controller/reload.h"
#include "controller/timefmt.h"

#include <stdio.h>
#include <string.h>

/* Reads an optional date argument. Returns NULL, or the error response. */
static json_t *date_arg(const struct request *req, const char *name, bool required, bool not_future,
                        int *date)
{
    const char *text = req_string(req, name);

    *date = 0;
    if (text == NULL) {
        return required ? req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument '%s'", name)
                        : NULL;
    }
    *date = time_parse_date(text);
    if (*date == 0) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "invalid %s '%.40s': use YYYY-MM-DD", name,
                        text);
    }
    if (not_future && *date > req_today()) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "%s %s is in the future", name, text);
    }
    return NULL;
}

static bool is_status_kind(const char *kind)
{
    for (size_t i = 0; status_kinds[i] != NULL; i++) {
        if (strcmp(kind, status_kinds[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks that a correction names a current row of the same subject and
 * gives a reason. Returns NULL, or the error response. */
static json_t *check_supersedes(const struct request *req, const char *table,
                                const char *subject_id, const char *supersedes, const char *reason)
{
    if (supersedes == NULL) {
        return reason == NULL ? NULL
                              : req_fail(req, PROTO_INVALID_ARGUMENT,
                                         "'reason' belongs to a correction: give 'supersedes' too");
    }
    if (reason == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "a correction needs a reason: give 'reason' with 'supersedes'");
    }
    int found = db_supersedable(req->daemon->db, table, supersedes, subject_id);
    if (found < 0) {
        return req_storage_failure(req, "the lookup of the corrected entry");
    }
    return found ? NULL
                 : req_fail(req, PROTO_NOT_FOUND,
                            "%.64s is not a current entry of this subject in %s (it does not "
                            "exist, or a correction already replaced it)",
                            supersedes, table);
}

static json_t *check_status_args(const struct request *req, const struct status_in *in)
{
    int start;
    int end;
    json_t *error;

    if (in->kind == NULL || !is_status_kind(in->kind)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing kind: use community-detox, compulsory-isolation, "
                        "community-rehabilitation, psychotropic-dependence, "
                        "revoked-drunk-driving, revoked-commercial-drink-driving, "
                        "revoked-commercial-drunk-driving or revoked-serious-crash");
    }
    if (in->reference == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "missing argument 'reference' (the issuing authority's reference)");
    }
    if ((error = date_arg(req, "start", true, true, &start)) != NULL ||
        (error = date_arg(req, "end", false, true, &end)) != NULL) {
        return error;
    }
    if (end != 0 && end < start) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "end %s is before start %s", in->end,
                        in->start);
    }
    if (end != 0 && strncmp(in->kind, "revoked-", 8) == 0) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "a revocation has no end date; its period is counted from its start");
    }
    return NULL;
}

json_t *cmd_status_add(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct subject_id subject;
    char subject_id[RECORD_ID_SIZE];
    char id[RECORD_ID_SIZE];
    struct status_in in = {
        .kind = req_string(req, "kind"),
        .start = req_string(req, "start"),
        .end = req_string(req, "end"),
        .reference = req_string(req, "reference"),
        .supersedes = req_string(req, "supersedes"),
        .reason = req_string(req, "reason"),
    };
    json_t *error = req_find_subject(req, &subject, subject_id, true);

    if (error == NULL) {
        error = check_status_args(req, &in);
    }
    if (error == NULL) {
        error = check_supersedes(req, "statuses", subject_id, in.supersedes, in.reason);
    }
    if (error != NULL) {
        return error;
    }
    if (db_status_add(daemon->db, daemon->config.lab_id, subject_id, &in,
                      (unsigned)req->client->uid, id) != 0) {
        return req_storage_failure(req, "the status");
    }
    log_msg(LOG_INFO, "status %s (%s from %s) recorded for subject %s by uid %u%s%s", id, in.kind,
            in.start, subject_id, (unsigned)req->client->uid, in.supersedes ? ", superseding " : "",
            in.supersedes ? in.supersedes : "");
    return req_ok(req, "status", db_status_json(daemon->db, id));
}

static bool valid_licence_text(const char *text, size_t max)
{
    size_t len = text ? strlen(text) : 0;

    if (len == 0 || len > max) {
        return false;
    }
    for (const char *p = text; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

json_t *cmd_licence_add(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct subject_id subject;
    char subject_id[RECORD_ID_SIZE];
    char id[RECORD_ID_SIZE];
    struct licence_in in = {
        .number = req_string(req, "number"),
        .class_name = req_string(req, "class"),
        .commercial = json_is_true(json_object_get(req->args, "commercial")),
        .handed_back = json_is_true(json_object_get(req->args, "handed_back")),
        .supersedes = req_string(req, "supersedes"),
        .reason = req_string(req, "reason"),
    };
    json_t *error = req_find_subject(req, &subject, subject_id, true);

    if (error != NULL) {
        return error;
    }
    if (!valid_licence_text(in.number, 32)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing number: 1 to 32 letters and digits");
    }
    if (!valid_licence_text(in.class_name, 8)) {
        return req_fail(req, PROTO_INVALID_ARGUMENT,
                        "invalid or missing class: 1 to 8 letters and digits, e.g. C1 or A2");
    }
    error = check_supersedes(req, "licences", subject_id, in.supersedes, in.reason);
    if (error != NULL) {
        return error;
    }
    if (db_licence_add(daemon->db, daemon->config.lab_id, subject_id, &in,
                       (unsigned)req->client->uid, id) != 0) {
        return req_storage_failure(req, "the licence");
    }
    log_msg(LOG_INFO, "licence %s (class %s%s) recorded for subject %s by uid %u", id,
            in.class_name, in.handed_back ? ", handed back" : "", subject_id,
            (unsigned)req->client->uid);
    return req_ok(req, "licence", db_licence_json(daemon->db, id));
}

/* Decides from the subject's stored evidence. Returns the outcome, or NULL
 * with err set. */
static json_t *decide(struct daemon *daemon, const char *subject_id, enum question question,
                      int as_of, json_t **inputs, char *err, size_t err_size)
{
    struct evidence evidence;
    json_t *outcome;

    *inputs = db_evidence_json(daemon->db, subject_id, NULL);
    if (*inputs == NULL) {
        snprintf(err, err_size, "reading the evidence failed: %s", db_errmsg(daemon->db));
        return NULL;
    }
    if (evidence_read(*inputs, &evidence, err, err_size) != 0) {
        return NULL;
    }
    outcome = engine_decide(&daemon->rules, &evidence, question, as_of);
    evidence_free(&evidence);
    return outcome;
}

json_t *cmd_licence_check(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    struct subject_id subject;
    char subject_id[RECORD_ID_SIZE];
    char id[RECORD_ID_SIZE];
    char err[256];
    const char *question_text = req_string(req, "for");
    enum question question;
    bool existed = true;
    int as_of;
    json_t *inputs = NULL;
    json_t *error = req_find_subject(req, &subject, subject_id, false);

    if (error == NULL && (question_text == NULL || question_parse(question_text, &question) != 0)) {
        error = req_fail(req, PROTO_INVALID_ARGUMENT,
                         "invalid or missing 'for': use application or holder");
    }
    if (error == NULL) {
        error = date_arg(req, "as_of", false, false, &as_of);
    }
    if (error != NULL) {
        return error;
    }
    if (as_of == 0) {
        as_of = req_today();
    }
    if (db_begin(daemon->db) != 0 ||
        db_subject_add(daemon->db, daemon->config.lab_id, &subject, subject_id, &existed) != 0) {
        return req_storage_failure(req, "the subject");
    }
    json_t *outcome = decide(daemon, subject_id, question, as_of, &inputs, err, sizeof(err));
    if (outcome == NULL) {
        db_rollback(daemon->db);
        json_decref(inputs);
        log_msg(LOG_ERR, "licence check for subject %s failed: %s", subject_id, err);
        return req_fail(req, PROTO_INTERNAL, "deciding failed: %s", err);
    }
    int recorded = db_decision_record(daemon->db, daemon->config.lab_id, subject_id, inputs,
                                      outcome, (unsigned)req->client->uid, id);
    json_decref(inputs);
    json_decref(outcome);
    if (recorded != 0 || db_commit(daemon->db) != 0) {
        return req_storage_failure(req, "the decision");
    }
    json_t *decision = db_decision_json(daemon->db, id);
    log_msg(LOG_INFO, "decision %s: %s for %s of subject %s, asked by uid %u", id,
            json_string_value(json_object_get(decision, "decision")), question_name(question),
            subject_id, (unsigned)req->client->uid);
    return req_ok(req, "decision", decision);
}

json_t *cmd_decision_review(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    const char *id = req_string(req, "decision");
    const char *reason = req_string(req, "reason");
    const char *action = strcmp(req->cmd, "decision.override") == 0 ? "override" : "confirm";
    json_t *decision;

    if (id == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'decision'");
    }
    if (strcmp(action, "override") == 0 && reason == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "an override needs a reason");
    }
    decision = db_decision_json(daemon->db, id);
    if (decision == NULL) {
        return req_fail(req, PROTO_NOT_FOUND, "decision %.64s not found", id);
    }
    size_t reviews = json_array_size(json_object_get(decision, "reviews"));
    json_decref(decision);
    if (reviews > 0) {
        return req_fail(req, PROTO_CONFLICT,
                        "decision %.64s was already reviewed; ask for a new decision with "
                        "'toxlab licence check'",
                        id);
    }
    if (db_decision_review(daemon->db, id, action, reason, (unsigned)req->client->uid) != 0) {
        return req_storage_failure(req, "the review");
    }
    log_msg(LOG_INFO, "decision %s: %s by uid %u", id, action, (unsigned)req->client->uid);
    return req_ok(req, "decision", db_decision_json(daemon->db, id));
}

json_t *cmd_decision_show(const struct request *req)
{
    const char *id = req_string(req, "decision");
    json_t *decision;

    if (id == NULL) {
        return req_fail(req, PROTO_INVALID_ARGUMENT, "missing argument 'decision'");
    }
    decision = db_decision_json(req->daemon->db, id);
    return decision ? req_ok(req, "decision", decision)
                    : req_fail(req, PROTO_NOT_FOUND, "decision %.64s not found", id);
}

static json_t *set_summary(const char *path, const char *label, const char *version, size_t count)
{
    return json_pack("{ss ss ss sI}", "file", path, "label", label, "version", version, "rows",
                     (json_int_t)count);
}

json_t *cmd_thresholds_reload(const struct request *req)
{
    struct daemon *daemon = req->daemon;
    char err[512];

    if (reload_rule_files(daemon, err, sizeof(err)) != 0) {
        log_msg(LOG_ERR, "thresholds reload by uid %u rejected: %s", (unsigned)req->client->uid,
                err);
        return req_fail(req, PROTO_INVALID_FILE, "%s; the threshold set and rules in force stay",
                        err);
    }
    log_msg(LOG_NOTICE, "threshold set and rules reloaded by uid %u", (unsigned)req->client->uid);
    json_t *sets = json_pack("{so so}", "thresholds",
                             set_summary(daemon->config.thresholds, daemon->thresholds.label,
                                         daemon->thresholds.version, daemon->thresholds.count),
                             "rules",
                             set_summary(daemon->config.rules, daemon->rules.label,
                                         daemon->rules.version, daemon->rules.count));
    return req_ok(req, "reloaded", sets);
}
