#define _GNU_SOURCE
#include "sim/paced.h"

#include <errno.h>
#include <poll.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* Time a byte may wait for room in the pty's queue. */
#define PACED_WRITE_TIMEOUT_MS 1000

int64_t paced_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t paced_chars_ns(double count, int baud)
{
    return (int64_t)(count * PACED_BITS_PER_CHAR * 1e9 / baud);
}

int paced_setup(void)
{
    /* The default slack of 50 us is about a tenth of a character at 19200 baud. */
    return prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
}

static void sleep_until(int64_t deadline_ns)
{
    struct timespec ts = {
        .tv_sec = deadline_ns / 1000000000,
        .tv_nsec = deadline_ns % 1000000000,
    };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int write_byte(int fd, uint8_t byte)
{
    for (;;) {
        ssize_t n = write(fd, &byte, 1);

        if (n == 1) {
            return 0;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};

            if (poll(&pfd, 1, PACED_WRITE_TIMEOUT_MS) > 0) {
                continue;
            }
            errno = ETIMEDOUT;
        }
        return -1;
    }
}

size_t paced_write(int fd, const uint8_t *reply, size_t len, int64_t request_start_ns,
                   size_t request_len, int baud)
{
    /* Deadlines are absolute, so a byte written late delays none after it. */
    for (size_t i = 0; i < len; i++) {
        double chars = (double)request_len + 3.5 + (double)(i + 1);

        sleep_until(request_start_ns + paced_chars_ns(chars, baud));
        if (write_byte(fd, reply[i]) != 0) {
            return i;
        }
    }
    return len;
}
