#define _GNU_SOURCE
#include "bench/benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_fail(const char *format, ...)
{
    int code = errno;
    va_list args;

    fprintf(stderr, "bench: ");
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fprintf(stderr, "%s%s\n", code ? ": " : "", code ? strerror(code) : "");
    exit(1);
}

const char *bench_program(const char *var)
{
    const char *path = getenv(var);

    if (path == NULL || path[0] == '\0') {
        errno = 0;
        bench_fail("the environment variable %s is not set (bench/run sets it)", var);
    }
    return path;
}

char *bench_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (asprintf(&path, "%s/toxlab-bench-%s-XXXXXX", base ? base : "/tmp", tag) < 0 ||
        mkdtemp(path) == NULL) {
        bench_fail("cannot create a temporary folder for %s", tag);
    }
    return path;
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *ftw)
{
    (void)info;
    (void)type;
    (void)ftw;
    return remove(path);
}

void bench_rmdir(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");

    if (file == NULL || fputs(text, file) < 0 || fclose(file) != 0) {
        bench_fail("cannot write %s", path);
    }
}

void bench_spawn(struct bench_child *child, char *const argv[], char *const env[],
                 const char *log_path, bool pipe_stdin, bool pipe_stdout)
{
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    if (log_fd < 0 || (pipe_stdin && pipe2(in_pipe, O_CLOEXEC) != 0) ||
        (pipe_stdout && pipe2(out_pipe, O_CLOEXEC) != 0)) {
        bench_fail("cannot set up the output of %s", argv[0]);
    }
    memset(child, 0, sizeof(*child));
    child->pid = fork();
    if (child->pid < 0) {
        bench_fail("fork");
    }
    if (child->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setpgid(0, 0);
        dup2(in_pipe[0] >= 0 ? in_pipe[0] : open("/dev/null", O_RDONLY), STDIN_FILENO);
        dup2(out_pipe[1] >= 0 ? out_pipe[1] : log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
            putenv(env[i]);
        }
        execvp(argv[0], argv);
        dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(child->pid, child->pid);
    close(log_fd);
    if (pipe_stdin) {
        close(in_pipe[0]);
    }
    if (pipe_stdout) {
        close(out_pipe[1]);
    }
    child->stdin_fd = in_pipe[1];
    child->stdout_fd = out_pipe[0];
}

static bool take_line(struct bench_child *child, const char *prefix, char *line, size_t size)
{
    char *newline;

    while ((newline = memchr(child->buffer, '\n', child->buffered)) != NULL) {
        size_t len = (size_t)(newline - child->buffer);
        bool match = strncmp(child->buffer, prefix, strlen(prefix)) == 0;

        if (match) {
            snprintf(line, size, "%.*s", (int)len, child->buffer);
        }
        memmove(child->buffer, newline + 1, child->buffered - len - 1);
        child->buffered -= len + 1;
        if (match) {
            return true;
        }
    }
    return false;
}

bool bench_wait_line(struct bench_child *child, const char *prefix, int timeout_ms, char *line,
                     size_t size)
{
    int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;

    for (;;) {
        if (take_line(child, prefix, line, size)) {
            return true;
        }
        int64_t left_ms = (deadline - bench_now_ns()) / 1000000;
        struct pollfd pfd = {.fd = child->stdout_fd, .events = POLLIN};
        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0) {
            return false;
        }
        if (child->buffered == sizeof(child->buffer)) {
            child->buffered = 0; /* a line longer than the buffer cannot match */
        }
        ssize_t n = read(child->stdout_fd, child->buffer + child->buffered,
                         sizeof(child->buffer) - child->buffered);
        if (n <= 0) {
            return false;
        }
        child->buffered += (size_t)n;
    }
}

int bench_stop(struct bench_child *child, int timeout_ms)
{
    int status;

    if (child->pid <= 0) {
        return 0;
    }
    kill(-child->pid, SIGTERM);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        if (waitpid(child->pid, &status, WNOHANG) == child->pid) {
            child->pid = 0;
            return status;
        }
        usleep(10000);
    }
    kill(-child->pid, SIGKILL);
    waitpid(child->pid, &status, 0);
    child->pid = 0;
    return -1;
}

void bench_start_sim(struct bench_child *sim, const char *dir, const char *name, const char *kind,
                     const char *scenario, char *const extra[], char *pty, size_t pty_size)
{
    char scenario_path[512];
    char log_path[512];
    char line[256];
    char *argv[16] = {(char *)bench_program("TOXLAB_SIM"), (char *)kind, scenario_path};
    size_t argc = 3;

    snprintf(scenario_path, sizeof(scenario_path), "%s/%s.ini", dir, name);
    snprintf(log_path, sizeof(log_path), "%s/%s.log", dir, name);
    bench_write_file(scenario_path, scenario);
    for (size_t i = 0; extra != NULL && extra[i] != NULL && argc < 15; i++) {
        argv[argc++] = extra[i];
    }
    bench_spawn(sim, argv, NULL, log_path, true, true);
    if (!bench_wait_line(sim, "pty ", 10000, line, sizeof(line))) {
        errno = 0;
        bench_fail("the %s sim printed no pty line (see %s)", name, log_path);
    }
    snprintf(pty, pty_size, "%s", line + 4);
    if (!bench_wait_line(sim, "ready", 10000, line, sizeof(line))) {
        errno = 0;
        bench_fail("the %s sim did not become ready (see %s)", name, log_path);
    }
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

struct bench_stats bench_stats_of(double *values, size_t count)
{
    struct bench_stats stats = {0};

    if (count == 0) {
        return stats;
    }
    qsort(values, count, sizeof(*values), compare_doubles);
    stats.min = values[0];
    stats.max = values[count - 1];
    stats.median = count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
    return stats;
}

void bench_row(const char *id, const char *figure, struct bench_stats stats, int digits,
               const char *unit, const char *note)
{
    printf("| %s | %s | %.*f %s | %.*f to %.*f | %s |\n", id, figure, digits, stats.median, unit,
           digits, stats.min, digits, stats.max, note ? note : "");
    fflush(stdout);
}

int bench_common_options(int argc, char **argv, int *runs, bool *smoke)
{
    int i = 1;

    for (; i < argc; i++) {
        if (strcmp(argv[i], "--smoke") == 0) {
            *smoke = true;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            *runs = atoi(argv[++i]);
        } else {
            break;
        }
    }
    if (*runs < 1 || *runs > BENCH_MAX_RUNS) {
        errno = 0;
        bench_fail("--runs must be 1 to %d", BENCH_MAX_RUNS);
    }
    return i;
}

long bench_rss_anon_kib(pid_t pid)
{
    char path[64];
    char line[256];
    long kib = -1;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), file) != NULL) {
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1) {
            break;
        }
    }
    fclose(file);
    return kib;
}
