/* Replies paced at a serial line's speed, for benchmarks that compare a
 * host with the physical limit of the line. A pty delivers bytes at once.
 * With pacing, the sim behaves as if the request had taken its wire time
 * to arrive and keeps the Modbus RTU silent interval of 3.5 characters.
 * Then it writes each reply byte when its last bit would leave the wire. */
#ifndef TOXLAB_SIM_PACED_H
#define TOXLAB_SIM_PACED_H

#include <stddef.h>
#include <stdint.h>

#define PACED_DEFAULT_BAUD 19200
#define PACED_BITS_PER_CHAR 11 /* start, 8 data, parity, stop: 8E1 */

int64_t paced_now_ns(void);

/* Returns the wire time of count characters at baud, in nanoseconds. */
int64_t paced_chars_ns(double count, int baud);

/* Lowers the process's timer slack so that sleeps end close to their
 * deadline. Returns 0, or -1 with errno set. */
int paced_setup(void);

/* Writes reply to fd one byte at a time on absolute CLOCK_MONOTONIC
 * deadlines: byte i when request_len + 3.5 + i + 1 characters have passed
 * since request_start_ns. Returns the bytes written; fewer than len when a
 * write failed, with errno set. */
size_t paced_write(int fd, const uint8_t *reply, size_t len, int64_t request_start_ns,
                   size_t request_len, int baud);

#endif
