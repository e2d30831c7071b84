/* Client commands on the audit log and backups. */
#ifndef TOXLAB_AUDIT_CLI_H
#define TOXLAB_AUDIT_CLI_H

#include "controller/toxlab_cli.h"

extern const struct cli_option audit_verify_options[];

int run_audit_verify_offline(const struct command *command, const struct options *options,
                             struct request *request);
void print_audit_response(const json_t *response);
void print_backup_response(const json_t *response);

#endif
