/* Helpers shared by the benchmark programs: a clock, temporary folders,
 * child processes that die with the benchmark, the simulator's start-up
 * lines, and the median and spread of repeated measurements, printed as
 * rows of the Markdown tables in docs/benchmarks.md. */
#ifndef TOXLAB_BENCHLIB_H
#define TOXLAB_BENCHLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_RUNS 64

struct bench_child {
    pid_t pid;
    int stdin_fd;  /* -1 unless piped */
    int stdout_fd; /* -1 unless piped */
    char buffer[4096];
    size_t buffered;
};

/* Median, minimum and maximum of one figure over the runs. */
struct bench_stats {
    double median;
    double min;
    double max;
};

int64_t bench_now_ns(void);

/* Prints the message and the errno text on stderr and exits with status 1. */
void bench_fail(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Returns the path in the environment variable var, or exits naming it. */
const char *bench_program(const char *var);

/* Creates a fresh folder under $TMPDIR (or /tmp); the caller frees it. */
char *bench_tmpdir(const char *tag);

/* Removes a folder made by bench_tmpdir and everything in it. */
void bench_rmdir(const char *path);

/* Writes text to path, or exits. */
void bench_write_file(const char *path, const char *text);

/* Starts argv[0] in its own process group, killed when the benchmark dies.
 * Standard error goes to log_path, and so does standard output unless it
 * is piped. env is NULL or a NULL-terminated list of "NAME=value". */
void bench_spawn(struct bench_child *child, char *const argv[], char *const env[],
                 const char *log_path, bool pipe_stdin, bool pipe_stdout);

/* Reads the child's output until a line starts with prefix and copies it
 * into line. Returns false on timeout or end of file. */
bool bench_wait_line(struct bench_child *child, const char *prefix, int timeout_ms, char *line,
                     size_t size);

/* Sends SIGTERM to the child's process group and waits up to timeout_ms,
 * then SIGKILL. Returns the wait status, or -1 after a kill. */
int bench_stop(struct bench_child *child, int timeout_ms);

/* Starts toxlab-sim KIND with the scenario text and extra options (NULL
 * or NULL-terminated), waits for its ready line and copies its pty path. */
void bench_start_sim(struct bench_child *sim, const char *dir, const char *name, const char *kind,
                     const char *scenario, char *const extra[], char *pty, size_t pty_size);

/* Sorts values and returns their median, minimum and maximum. */
struct bench_stats bench_stats_of(double *values, size_t count);

/* Prints one table row: id, figure, the median with its unit, the spread,
 * and a note (the ratio or target), each number with `digits` decimals. */
void bench_row(const char *id, const char *figure, struct bench_stats stats, int digits,
               const char *unit, const char *note);

/* Parses "--runs N" and "--smoke" style options shared by every program.
 * Returns the index of the first argument it did not take. */
int bench_common_options(int argc, char **argv, int *runs, bool *smoke);

/* Returns the private resident memory (RssAnon) of a process in KiB, or -1. */
long bench_rss_anon_kib(pid_t pid);

#endif
