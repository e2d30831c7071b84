/* Client commands of clerks and administrators: subject ID checks,
 * statuses, licences, licence decisions and their reviews, reloading the
 * threshold set and rules, and the offline licence evaluator. */
#ifndef TOXLAB_LICENCE_H
#define TOXLAB_LICENCE_H

#include "controller/toxlab_cli.h"
#include "version.h"

extern const struct cli_option status_add_options[];
extern const struct cli_option licence_add_options[];
extern const struct cli_option licence_check_options[];
extern const struct cli_option licence_evaluate_options[];
extern const struct cli_option decision_review_options[];
extern const struct cli_option no_options[];

int run_id_check(const struct command *command, const struct options *options,
                 struct request *request);
int parse_id_check(const struct command *command, int argc, char **argv, struct request *request);
int run_licence_evaluate(const struct command *command, const struct options *options,
                         struct request *request);

int run_import(struct client *client, const struct command *command, struct request *request);
void print_imported_response(const json_t *response);

void print_status_response(const json_t *response);
void print_licence_response(const json_t *response);
void print_decision_response(const json_t *response);
void print_reloaded_response(const json_t *response);

/* The default rules file of "licence evaluate", the one toxlabd installs. */
#define DEFAULT_RULES_PATH TOXLAB_SYSCONFDIR "/rules.tsv"

/* The zone of daemon.timezone's default, for the offline checks. */
#define DEFAULT_TIMEZONE "Asia/Shanghai"

#endif
