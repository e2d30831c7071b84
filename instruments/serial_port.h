/* A serial port opened with termios for drivers that do their own framing
 * (ASTM). Works on real ports and ptys alike. libserialport only
 * enumerates ports (controller/hotplug.c), because it cannot open a pty. */
#ifndef TOXLAB_SERIAL_PORT_H
#define TOXLAB_SERIAL_PORT_H

#include <stddef.h>
#include <stdint.h>

/* Opens path non-blocking in raw mode with the given framing, then takes
 * flock(LOCK_EX|LOCK_NB) and, on a real port, TIOCEXCL. Returns the file
 * descriptor, or a negative DRIVER_* status with err set: DRIVER_BUSY_PORT
 * when another process holds the lock, DRIVER_IO otherwise. */
int serial_port_open(const char *path, int baud, char parity, int data_bits, int stop_bits,
                     char *err, size_t size);

/* Writes all of data, waiting with poll until deadline_ms (CLOCK_MONOTONIC
 * milliseconds). Returns 0, DRIVER_TIMEOUT, or DRIVER_IO with err set. */
int serial_port_write(int fd, const uint8_t *data, size_t len, int64_t deadline_ms, char *err,
                      size_t size);

#endif
