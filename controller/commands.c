/* The command table: each command's handler, its arguments, and the roles
 * that may use it. Subject numbers are masked for roles that do not need
 * them in full. */
#include "controller/commands.h"

#include "controller/audit.h"
#include "controller/db.h"
#include "controller/hair.h"
#include "controller/roles.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#define OFFICER ROLE_OFFICER
#define ANALYST ROLE_ANALYST
#define CLERK ROLE_CLERK
#define SUPERVISOR ROLE_SUPERVISOR
#define ADMIN ROLE_ADMIN

/* Roles that see subject numbers in full; the others see the masked form. */
#define SEES_FULL_IDS (ROLE_OFFICER | ROLE_CLERK | ROLE_ADMIN)

/* Each command with its arguments ("name:type" separated by spaces, the
 * type being s for a string, b for a boolean, a for a list of strings or l
 * for a list of objects)
 * and the roles that may use it. docs/protocol.md has the same table. */
static const struct {
    const char *name;
    json_t *(*run)(const struct request *req);
    const char *args;
    unsigned roles;
    bool routine; /* a read of test and instrument state, not entered in the audit log */
} commands[] = {
    {"subject.add", cmd_subject_add, "subject:s", OFFICER | CLERK, false},
    {"subject.show", cmd_subject_show, "subject:s", OFFICER | ANALYST | CLERK | SUPERVISOR, false},
    {"specimen.add", cmd_specimen_add,
     "subject:s barcode:s matrix:s stop:s collected:s segment_length:s segment_position:s",
     OFFICER | ANALYST, false},
    {"specimen.show", cmd_specimen_show, "barcode:s", OFFICER | ANALYST | CLERK | SUPERVISOR,
     false},
    {"result.unlinked", cmd_result_unlinked, "", ANALYST, false},
    {"result.link", cmd_result_link, "result:s barcode:s reason:s", ANALYST, false},
    {"result.release", cmd_result_release, "result:s", ANALYST, false},
    {"test.start", cmd_test_start, "subject:s instruments:a specimen:s driving:b watch:b", OFFICER,
     false},
    {"test.watch", cmd_test_watch, "test:s", OFFICER | ANALYST | SUPERVISOR, true},
    {"test.abort", cmd_test_abort, "test:s", OFFICER, false},
    {"test.show", cmd_test_show, "test:s", OFFICER | ANALYST | CLERK | SUPERVISOR, true},
    {"test.refuse", cmd_test_refuse, "test:s", OFFICER, false},
    {"stop.note", cmd_stop_note, "stop:s kind:s", OFFICER, false},
    {"stop.show", cmd_stop_show, "stop:s", OFFICER | ANALYST | CLERK | SUPERVISOR, true},
    {"instruments", cmd_instruments, "", OFFICER | ANALYST | SUPERVISOR | ADMIN, true},
    {"status.add", cmd_status_add,
     "subject:s kind:s start:s end:s reference:s supersedes:s reason:s", CLERK, false},
    {"licence.add", cmd_licence_add,
     "subject:s number:s class:s commercial:b handed_back:b supersedes:s reason:s", CLERK, false},
    {"licence.check", cmd_licence_check, "subject:s for:s as_of:s", CLERK, false},
    {"decision.confirm", cmd_decision_review, "decision:s reason:s", CLERK, false},
    {"decision.override", cmd_decision_review, "decision:s reason:s", CLERK, false},
    {"decision.show", cmd_decision_show, "decision:s", CLERK | SUPERVISOR, false},
    {"thresholds.reload", cmd_thresholds_reload, "", ADMIN, false},
    {"import", cmd_import, "results:l file:s", ADMIN, false},
    {"audit.verify", cmd_audit_verify, "", ADMIN, false},
    {"audit.head", cmd_audit_head, "", ADMIN | SUPERVISOR, true},
    {"backup", cmd_backup, "", ADMIN, false},
};

/* Returns the type letter of argument `name` in spec, or 0 when it has none. */
static char arg_type(const char *spec, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = spec; *p != '\0';) {
        const char *colon = strchr(p, ':');
        if (colon == NULL) {
            break;
        }
        if ((size_t)(colon - p) == len && strncmp(p, name, len) == 0) {
            return colon[1];
        }
        p = colon + 2;
        while (*p == ' ') {
            p++;
        }
    }
    return 0;
}

static const char *arg_type_name(char type)
{
    if (type == 's') {
        return "a string";
    }
    if (type == 'b') {
        return "a boolean";
    }
    return type == 'l' ? "a list of objects" : "a list of strings";
}

static bool is_string_list(const json_t *value)
{
    size_t i;
    json_t *item;

    json_array_foreach(value, i, item)
    {
        if (!json_is_string(item)) {
            return false;
        }
    }
    return json_is_array(value);
}

/* Checks every argument against the command's spec; returns NULL or the error. */
static json_t *check_args(const struct request *req, const char *cmd, const char *spec)
{
    const char *key;
    json_t *value;

    json_object_foreach(req->args, key, value)
    {
        char type = arg_type(spec, key);
        bool ok = (type == 's' && json_is_string(value)) ||
                  (type == 'b' && json_is_boolean(value)) ||
                  (type == 'a' && is_string_list(value)) || (type == 'l' && json_is_array(value));
        if (type == 0) {
            return req_fail(req, PROTO_INVALID_ARGUMENT, "unknown argument '%.64s' for %s", key,
                            cmd);
        }
        if (!ok) {
            return req_fail(req, PROTO_INVALID_ARGUMENT, "argument '%.64s' must be %s", key,
                            arg_type_name(type));
        }
        if (type == 's' && text_has_control(json_string_value(value))) {
            return req_fail(req, PROTO_INVALID_ARGUMENT,
                            "argument '%.64s' contains a control character (a line break, tab or "
                            "escape); remove it",
                            key);
        }
    }
    return NULL;
}

/* Removes "number" from every object that also has "masked" (a subject). */
static void mask_subjects(json_t *value)
{
    const char *key;
    json_t *member;
    size_t i;

    if (json_is_object(value)) {
        if (json_object_get(value, "masked") != NULL) {
            json_object_del(value, "number");
        }
        json_object_foreach(value, key, member)
        {
            mask_subjects(member);
        }
    } else if (json_is_array(value)) {
        json_array_foreach(value, i, member)
        {
            mask_subjects(member);
        }
    }
}

static json_t *forbidden(const struct request *req, const char *cmd, unsigned allowed)
{
    char held[80];
    char needed[80];

    roles_format(req->client->roles, held, sizeof(held));
    roles_format(allowed, needed, sizeof(needed));
    log_msg(LOG_NOTICE, "client pid %d uid %u: %s rejected: roles %s, needs one of %s",
            (int)req->client->pid, (unsigned)req->client->uid, cmd, held, needed);
    return req_fail(req, PROTO_FORBIDDEN, "%s needs the role %s; you hold %s", cmd, needed, held);
}

/* Holds the request's audit entry, unless it is a routine read that was
 * allowed, and makes the changes it causes carry the client's uid, roles
 * and command. The entry joins the command's first transaction. */
static void begin_audit(const struct request *req, bool allowed, bool routine)
{
    char roles[80];

    roles_format(req->client->roles, roles, sizeof(roles));
    audit_set_actor((unsigned)req->client->uid, roles, req->cmd);
    if (routine && allowed) {
        return;
    }
    if (audit_request_hold(req->args, !allowed) != 0) {
        log_msg(LOG_ERR, "recording %s of uid %u in the audit log failed: out of memory", req->cmd,
                (unsigned)req->client->uid);
    }
}

/* Writes the request's entry if no committed transaction took it; changes
 * after the request are toxlabd's own again (results from the lines). */
static void end_audit(const struct request *req)
{
    if (audit_request_flush(req->daemon->db) != 0) {
        log_msg(LOG_ERR, "recording %s of uid %u in the audit log failed: %s", req->cmd,
                (unsigned)req->client->uid, db_errmsg(req->daemon->db));
    }
    audit_set_actor((unsigned)getuid(), "daemon", "toxlabd");
    audit_log_head(req->daemon);
}

json_t *command_dispatch(struct daemon *daemon, struct client *client, json_int_t id,
                         const char *cmd, json_t *args)
{
    struct request req = {daemon, client, id, cmd, args};

    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, cmd) != 0) {
            continue;
        }
        log_msg(LOG_DEBUG, "client pid %d uid %u: %s", (int)client->pid, (unsigned)client->uid,
                cmd);
        bool allowed = (client->roles & commands[i].roles) != 0;
        begin_audit(&req, allowed, commands[i].routine);
        if (!allowed) {
            end_audit(&req);
            return forbidden(&req, cmd, commands[i].roles);
        }
        json_t *response = check_args(&req, cmd, commands[i].args);
        if (response == NULL) {
            response = commands[i].run(&req);
        }
        end_audit(&req);
        if (response != NULL && (client->roles & SEES_FULL_IDS) == 0) {
            mask_subjects(response);
        }
        return response;
    }
    return req_fail(&req, PROTO_UNKNOWN_COMMAND, "unknown command '%s'", cmd);
}
