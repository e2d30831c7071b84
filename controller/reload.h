/* Reloading on SIGHUP or "toxlab thresholds reload": the configuration
 * file, the threshold set and the licence rules. */
#ifndef TOXLAB_RELOAD_H
#define TOXLAB_RELOAD_H

#include "controller/daemon.h"

/* Applies a freshly read and validated configuration (NULL when the file
 * was rejected, so only the threshold set and rules are read again), logging each
 * change and whether it took effect. */
void reload_configuration(struct daemon *daemon, const struct config *fresh);

/* Reads the threshold set and the rules again and puts both in force, or
 * neither: on an error (with file, line and reason in err) the sets in
 * force stay. */
int reload_rule_files(struct daemon *daemon, char *err, size_t err_size);

#endif
