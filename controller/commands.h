/* The commands of the client protocol: one handler each, and the table in
 * commands.c that lists the roles allowed to use each one. */
#ifndef TOXLAB_COMMANDS_H
#define TOXLAB_COMMANDS_H

#include "controller/request.h"

/* stops.c */
json_t *cmd_subject_add(const struct request *req);
json_t *cmd_subject_show(const struct request *req);
json_t *cmd_specimen_add(const struct request *req);
json_t *cmd_test_start(const struct request *req);
json_t *cmd_test_watch(const struct request *req);
json_t *cmd_test_abort(const struct request *req);
json_t *cmd_test_show(const struct request *req);
json_t *cmd_test_refuse(const struct request *req);
json_t *cmd_stop_note(const struct request *req);
json_t *cmd_stop_show(const struct request *req);
json_t *cmd_instruments(const struct request *req);

/* licence_cmds.c */
json_t *cmd_status_add(const struct request *req);
json_t *cmd_licence_add(const struct request *req);
json_t *cmd_licence_check(const struct request *req);
json_t *cmd_decision_review(const struct request *req);
json_t *cmd_decision_show(const struct request *req);
json_t *cmd_thresholds_reload(const struct request *req);

/* import.c */
json_t *cmd_import(const struct request *req);

/* audit_cmds.c */
json_t *cmd_audit_verify(const struct request *req);
json_t *cmd_audit_head(const struct request *req);
json_t *cmd_backup(const struct request *req);

/* Logs the audit chain's head each time it passes another
 * daemon.audit_head_every entries, so a copy outside the database can
 * expose a rewritten chain. */
void audit_log_head(struct daemon *daemon);

#endif
