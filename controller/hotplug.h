/* Analyzers that appear and disappear: inotify on the folders of the
 * configured device paths (such as /dev/toxlab/), and the list of serial
 * ports at start-up with libserialport. The timed retries of each line stay
 * in place; a device that appears only makes its line retry at once. */
#ifndef TOXLAB_HOTPLUG_H
#define TOXLAB_HOTPLUG_H

#include "controller/daemon.h"

/* Starts watching; returns the inotify descriptor, or -1 (logged) when
 * inotify cannot be used, in which case the timed retries remain. */
int hotplug_open(struct daemon *daemon);

/* Reads the pending inotify events and wakes the lines whose device appeared. */
void hotplug_handle(struct daemon *daemon, int fd);

/* Logs each USB serial port with its vendor, product and serial number,
 * and whether an instrument is configured on it. */
void hotplug_list_ports(const struct daemon *daemon);

#endif
