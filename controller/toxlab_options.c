/* The option parser of the commands that list their options in a table
 * (struct cli_option): each long option's value goes into the request
 * under its key. */
#define _GNU_SOURCE

#include "controller/toxlab_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#define MAX_OPTIONS 16

/* Builds getopt_long's table from the command's options, plus --help. */
static void build_long_options(const struct command *command, struct option *long_options)
{
    size_t count = 0;

    for (const struct cli_option *opt = command->options; opt->name != NULL; opt++) {
        long_options[count] = (struct option){
            opt->name, opt->flag ? no_argument : required_argument, NULL, 1000 + (int)count};
        count++;
    }
    long_options[count++] = (struct option){"help", no_argument, NULL, 'h'};
    long_options[count] = (struct option){NULL, 0, NULL, 0};
}

static int check_required(const struct command *command, const json_t *args)
{
    for (const struct cli_option *opt = command->options; opt->name != NULL; opt++) {
        if (opt->required && json_object_get(args, opt->key) == NULL) {
            return usage_error(command, "missing --%s", opt->name);
        }
    }
    return CONTINUE;
}

int parse_options(const struct command *command, int argc, char **argv, struct request *request)
{
    struct option long_options[MAX_OPTIONS + 2];
    int result;

    build_long_options(command, long_options);
    optind = 0;
    while ((result = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        if (result == 'h') {
            print_command_help(command);
            return 0;
        }
        if (result == ':' || result == '?') {
            return option_error(command, result, argv);
        }
        const struct cli_option *opt = &command->options[result - 1000];
        char label[48];
        snprintf(label, sizeof(label), "--%s", opt->name);
        if (opt->flag) {
            json_object_set_new(request->args, opt->key, json_true());
        } else if (set_argument(command, request->args, opt->key, label, optarg) != CONTINUE) {
            return STATUS_USAGE;
        }
    }
    if (command->argument != NULL) {
        if (optind >= argc) {
            return usage_error(command, "missing %s", command->synopsis);
        }
        char label[32];
        char *value = argv[optind++];
        /* The synopsis starts with the argument's name, e.g. "SUBJECT --for ...". */
        snprintf(label, sizeof(label), "%.*s", (int)strcspn(command->synopsis, " "),
                 command->synopsis);
        if (set_argument(command, request->args, command->argument, label, value) != CONTINUE) {
            return STATUS_USAGE;
        }
    }
    if (reject_extra_arguments(command, argc, argv) != CONTINUE) {
        return STATUS_USAGE;
    }
    return check_required(command, request->args);
}
