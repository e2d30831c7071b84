/* Test harness for integration tests: temporary folders, child processes in
 * their own process group that die with the test, event lines with
 * deadlines, and readiness through a NOTIFY_SOCKET the test owns. */
#ifndef TOXLAB_HARNESS_H
#define TOXLAB_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Check timeouts in seconds, scaled by CK_TIMEOUT_MULTIPLIER. */
#define HARNESS_CASE_TIMEOUT 60

struct child {
    pid_t pid;
    int stdin_fd;  /* -1 unless requested */
    int stdout_fd; /* -1 unless requested; stderr always goes to the log */
    char buffer[8192];
    size_t buffered;
    char log_path[512];
};

/* Scales a deadline in milliseconds by CK_TIMEOUT_MULTIPLIER. */
int harness_ms(int ms);

/* Creates a fresh temporary folder and returns its path (static storage
 * per call is not shared: the caller frees it). Aborts the test on failure. */
char *harness_tmpdir(const char *tag);

/* A user a test acts as: numeric IDs only, never names from /etc/group. */
struct harness_identity {
    uid_t uid;
    gid_t gid;
    size_t group_count;
    gid_t groups[8];
};

/* Runs argv as harness_run does, but the child first calls setgroups,
 * setgid and setuid with identity's IDs (so the test must run as root). */
int harness_run_as(const struct harness_identity *identity, char *const argv[], int timeout_ms,
                   char **out, char **err);

/* Returns the text of a file (the caller frees it); aborts the test when
 * it cannot be read. */
char *harness_read_file(const char *path);

/* Returns the program path from the environment variable `var` (set by
 * ctest), aborting the test when it is missing. */
const char *harness_program(const char *var);

/* Starts argv[0] in its own process group with PR_SET_PDEATHSIG(SIGKILL).
 * Standard error (and standard output unless piped) goes to log_path.
 * extra_env is NULL or a NULL-terminated list of "NAME=value" strings. */
void child_spawn(struct child *child, char *const argv[], char *const extra_env[],
                 const char *log_path, bool pipe_stdin, bool pipe_stdout);

/* Reads standard output lines until one starts with `prefix`; copies it
 * into line. Returns false on timeout or end of file. Lines read on the way
 * are appended to the child's log. A timeout of 0 reads only the lines
 * already written, without waiting. */
bool child_wait_line(struct child *child, const char *prefix, int timeout_ms, char *line,
                     size_t size);

/* Reports whether the child printed a line starting with prefix: one read
 * earlier (found in its log) or one that arrives within timeout_ms. */
bool child_seen_line(struct child *child, const char *prefix, int timeout_ms);

/* Writes one line (a newline is added) to the child's standard input. */
void child_send(struct child *child, const char *line);

/* Sends sig to the child's process group, waits up to timeout_ms and returns
 * the wait status, or -1 after killing it with SIGKILL on timeout. */
int child_stop(struct child *child, int sig, int timeout_ms);

/* Waits for the child to exit by itself; returns the wait status, or -1
 * after killing it on timeout. */
int child_wait(struct child *child, int timeout_ms);

/* Runs a program to completion with a deadline and captures its output.
 * Returns the exit code (128 + signal when killed, -1 on timeout). *out and
 * *err are malloc'd, NUL-terminated. */
int harness_run(char *const argv[], char *const extra_env[], int timeout_ms, char **out,
                char **err);

/* Opens a datagram socket at path for sd_notify messages. */
int notify_open(const char *path);

/* Waits for a datagram containing text; returns false on timeout. */
bool notify_wait_text(int fd, const char *text, int timeout_ms);

/* Waits for a datagram containing READY=1; returns false on timeout. */
bool notify_wait_ready(int fd, int timeout_ms);

/* Waits until the file at path contains text; returns false on timeout.
 * For logs that a child writes as it goes. */
bool harness_wait_file(const char *path, const char *text, int timeout_ms);

/* Writes text to path, aborting the test on failure. */
void harness_write_file(const char *path, const char *text);

/* Appends the file's content to standard error (for failure diagnosis). */
void harness_dump_file(const char *path);

#endif
