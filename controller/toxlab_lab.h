/* The client's commands on laboratory results: specimen show, result
 * unlinked, result link and result release. */
#ifndef TOXLAB_TOXLAB_LAB_H
#define TOXLAB_TOXLAB_LAB_H

#include "controller/toxlab_cli.h"

extern const struct cli_option result_link_options[];

void print_lab_specimen_response(const json_t *response);
void print_lab_result_response(const json_t *response);
/* Prints the laboratory results of a subject's history, if any. */
void print_lab_result_rows(const json_t *results);

void print_unlinked_response(const json_t *response);

#endif
