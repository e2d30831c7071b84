/* Reloading on SIGHUP: the configuration file and the threshold set. */
#ifndef TOXLAB_RELOAD_H
#define TOXLAB_RELOAD_H

#include "controller/daemon.h"

/* Applies a freshly read and validated configuration (NULL when the file
 * was rejected, so only the threshold set is read again), logging each
 * change and whether it took effect. */
void reload_configuration(struct daemon *daemon, const struct config *fresh);

#endif
