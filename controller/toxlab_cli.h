/* Definitions shared by the files of the toxlab client: the command table's
 * entry, the parsed request and options, exit statuses, and the helpers
 * that parse options and report usage errors. */
#ifndef TOXLAB_CLI_H
#define TOXLAB_CLI_H

#include <jansson.h>

/* Exit statuses, listed for users in docs/cli.md. */
enum {
    STATUS_OK = 0,
    STATUS_ERROR = 1,         /* toxlabd rejected the request, or talking to it failed */
    STATUS_USAGE = 2,         /* the command line is invalid */
    STATUS_NOT_COMPLETED = 3, /* a test ended failed, aborted or interrupted */
    STATUS_SIGNAL_BASE = 128, /* plus the number of the signal that ended a wait */
};

/* Parsers return this when the command should go on to toxlabd, or an exit status. */
#define CONTINUE (-1)

/* Receive deadline in milliseconds for commands that toxlabd responds to after
 * one database commit; a generous estimate, not a measurement. */
#define RESPONSE_TIMEOUT_MS 30000

struct options {
    const char *socket_path;
    int json; /* print protocol lines unchanged instead of human output */
};

struct request {
    json_t *args;
    int no_wait; /* test start --no-wait */
};

struct client;

/* One option of a command parsed by parse_options: a long option whose
 * value (or true, for a flag) goes into the request under `key`. */
struct cli_option {
    const char *name;
    const char *key;
    int flag;     /* takes no value; sets the key to true */
    int required; /* the command is invalid without it */
};

struct command {
    const char *group;       /* first word */
    const char *name;        /* second word, NULL for one-word commands */
    const char *cmd;         /* protocol command */
    const char *synopsis;    /* arguments after the command words */
    const char *summary;     /* what the command does, for --help */
    const char *option_help; /* option lines for --help, or NULL */
    const char *argument;    /* protocol key of the one positional argument, or NULL */
    const char *exit_help;   /* exit status lines for --help, or NULL */
    int min_minor;           /* oldest minor protocol version that has the command */
    int (*parse)(const struct command *command, int argc, char **argv, struct request *request);
    int (*run)(struct client *client, const struct command *command, struct request *request);
    void (*print)(const json_t *response);
    int timeout_ms;                   /* receive deadline for the response */
    const struct cli_option *options; /* for parse_options, ended by a NULL name */
    /* Runs the command without toxlabd (decode, id check, licence evaluate). */
    int (*run_offline)(const struct command *command, const struct options *options,
                       struct request *request);
    /* With run_offline: the argument whose presence selects the offline run
     * (NULL when the command always runs offline). */
    const char *offline_key;
};

__attribute__((format(printf, 1, 2))) void print_error(const char *format, ...);
__attribute__((format(printf, 2, 3))) int usage_error(const struct command *command,
                                                      const char *format, ...);
void print_command_help(const struct command *command);
int option_error(const struct command *command, int result, char **argv);
int set_argument(const struct command *command, json_t *args, const char *key, const char *label,
                 const char *value);
int require_argument(const struct command *command, const json_t *args, const char *key);
int reject_extra_arguments(const struct command *command, int argc, char **argv);
int run_request(struct client *client, const struct command *command, struct request *request);

/* Parses the options of command->options and, when command->argument is
 * set, one positional argument. */
int parse_options(const struct command *command, int argc, char **argv, struct request *request);

#endif
