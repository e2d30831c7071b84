/* "toxlab decode": prints the records of saved ASTM transcripts as JSON
 * lines, without toxlabd. docs/cli.md describes the command. */
#ifndef TOXLAB_DECODE_H
#define TOXLAB_DECODE_H

#include <stdio.h>

/* Runs "toxlab decode" with argv[0] = "decode". Returns the exit status:
 * 0, 1 when a file could not be read or decoded, 2 for a usage error. */
int toxlab_decode(int argc, char **argv);

/* Prints the usage of "toxlab decode". */
void toxlab_decode_help(FILE *stream);

#endif
