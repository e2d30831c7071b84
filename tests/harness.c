#define _GNU_SOURCE
#include "harness.h"

#include <check.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long monotonic_ms(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int harness_ms(int ms)
{
    const char *multiplier = getenv("CK_TIMEOUT_MULTIPLIER");
    double factor = multiplier ? atof(multiplier) : 1.0;

    if (factor < 1.0) {
        factor = 1.0;
    }
    return (int)(ms * factor);
}

char *harness_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path;

    if (asprintf(&path, "%s/toxlab-%s-XXXXXX", base ? base : "/tmp", tag) < 0) {
        ck_abort_msg("asprintf failed");
    }
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

const char *harness_program(const char *var)
{
    const char *path = getenv(var);

    ck_assert_msg(path != NULL && path[0] != '\0', "environment variable %s is not set", var);
    return path;
}

/* The identity the next harness_run_as child takes, NULL for the test's own. */
static const struct harness_identity *child_identity;

/* Takes the numeric uid, gid and groups of identity, or exits 126. */
static void become(const struct harness_identity *identity)
{
    if (setgroups(identity->group_count, identity->groups) != 0 || setgid(identity->gid) != 0 ||
        setuid(identity->uid) != 0) {
        dprintf(STDERR_FILENO, "switching to uid %u gid %u failed: %s\n", (unsigned)identity->uid,
                (unsigned)identity->gid, strerror(errno));
        _exit(126);
    }
}

static void exec_child(char *const argv[], char *const extra_env[], int log_fd, int in_fd,
                       int out_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setpgid(0, 0);
    if (child_identity != NULL) {
        become(child_identity);
    }
    dup2(in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY), STDIN_FILENO);
    dup2(out_fd >= 0 ? out_fd : log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++) {
        putenv(extra_env[i]);
    }
    execvp(argv[0], argv);
    dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

void child_spawn(struct child *child, char *const argv[], char *const extra_env[],
                 const char *log_path, bool pipe_stdin, bool pipe_stdout)
{
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    ck_assert_msg(log_fd >= 0, "open %s: %s", log_path, strerror(errno));
    memset(child, 0, sizeof(*child));
    snprintf(child->log_path, sizeof(child->log_path), "%s", log_path);
    ck_assert(!pipe_stdin || pipe2(in_pipe, O_CLOEXEC) == 0);
    ck_assert(!pipe_stdout || pipe2(out_pipe, O_CLOEXEC) == 0);

    child->pid = fork();
    ck_assert_msg(child->pid >= 0, "fork: %s", strerror(errno));
    if (child->pid == 0) {
        exec_child(argv, extra_env, log_fd, in_pipe[0], out_pipe[1]);
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

static void log_line(const struct child *child, const char *line)
{
    FILE *log = fopen(child->log_path, "a");

    if (log != NULL) {
        fprintf(log, "[stdout] %s\n", line);
        fclose(log);
    }
}

/* Takes one whole line out of the buffer into line; returns false if none. */
static bool take_line(struct child *child, char *line, size_t size)
{
    char *newline = memchr(child->buffer, '\n', child->buffered);
    size_t len;

    if (newline == NULL) {
        return false;
    }
    len = (size_t)(newline - child->buffer);
    snprintf(line, size, "%.*s", (int)len, child->buffer);
    memmove(child->buffer, newline + 1, child->buffered - len - 1);
    child->buffered -= len + 1;
    log_line(child, line);
    return true;
}

bool child_wait_line(struct child *child, const char *prefix, int timeout_ms, char *line,
                     size_t size)
{
    long long deadline = monotonic_ms() + harness_ms(timeout_ms);

    ck_assert_msg(child->stdout_fd >= 0, "child standard output is not piped");
    for (;;) {
        while (take_line(child, line, size)) {
            if (strncmp(line, prefix, strlen(prefix)) == 0) {
                return true;
            }
        }
        long long left = deadline - monotonic_ms();
        struct pollfd pfd = {.fd = child->stdout_fd, .events = POLLIN};
        if (poll(&pfd, 1, left > 0 ? (int)left : 0) <= 0) {
            return false;
        }
        ssize_t got = read(child->stdout_fd, child->buffer + child->buffered,
                           sizeof(child->buffer) - child->buffered - 1);
        if (got <= 0) {
            return false;
        }
        child->buffered += (size_t)got;
    }
}

void child_send(struct child *child, const char *line)
{
    ck_assert_msg(child->stdin_fd >= 0, "child standard input is not piped");
    ck_assert(dprintf(child->stdin_fd, "%s\n", line) > 0);
}

int child_wait(struct child *child, int timeout_ms)
{
    long long deadline = monotonic_ms() + harness_ms(timeout_ms);
    int status;

    for (;;) {
        pid_t done = waitpid(child->pid, &status, WNOHANG);
        if (done == child->pid) {
            child->pid = 0;
            return status;
        }
        if (monotonic_ms() >= deadline) {
            kill(-child->pid, SIGKILL);
            waitpid(child->pid, &status, 0);
            child->pid = 0;
            return -1;
        }
        /* Short waits for an exit are polling for a state, not a sleep standing in for one. */
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

int child_stop(struct child *child, int sig, int timeout_ms)
{
    if (child->pid <= 0) {
        return -1;
    }
    kill(-child->pid, sig);
    if (child->stdin_fd >= 0) {
        close(child->stdin_fd);
        child->stdin_fd = -1;
    }
    int status = child_wait(child, timeout_ms);
    if (child->stdout_fd >= 0) {
        close(child->stdout_fd);
        child->stdout_fd = -1;
    }
    return status;
}

static char *read_all(int fd, long long deadline, bool *timed_out)
{
    size_t used = 0;
    size_t capacity = 4096;
    char *data = malloc(capacity);

    for (;;) {
        long long left = deadline - monotonic_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            *timed_out = true;
            break;
        }
        if (used + 1024 > capacity) {
            capacity *= 2;
            data = realloc(data, capacity);
        }
        ssize_t got = read(fd, data + used, capacity - used - 1);
        if (got <= 0) {
            break;
        }
        used += (size_t)got;
    }
    data[used] = '\0';
    return data;
}

int harness_run(char *const argv[], char *const extra_env[], int timeout_ms, char **out, char **err)
{
    const char *base = getenv("TMPDIR");
    char err_path[512];
    snprintf(err_path, sizeof(err_path), "%s/toxlab-run-err-XXXXXX", base ? base : "/tmp");
    int err_fd = mkstemp(err_path);
    int out_pipe[2];
    long long deadline = monotonic_ms() + harness_ms(timeout_ms);
    bool timed_out = false;
    int status;

    ck_assert(err_fd >= 0);
    ck_assert(pipe2(out_pipe, O_CLOEXEC) == 0);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        exec_child(argv, extra_env, err_fd, -1, out_pipe[1]);
    }
    close(out_pipe[1]);
    *out = read_all(out_pipe[0], deadline, &timed_out);
    close(out_pipe[0]);
    if (timed_out) {
        kill(-pid, SIGKILL);
    }
    waitpid(pid, &status, 0);

    lseek(err_fd, 0, SEEK_SET);
    bool ignored = false;
    *err = read_all(err_fd, monotonic_ms() + 1000, &ignored);
    close(err_fd);
    unlink(err_path);
    if (timed_out) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int harness_run_as(const struct harness_identity *identity, char *const argv[], int timeout_ms,
                   char **out, char **err)
{
    child_identity = identity;
    int status = harness_run(argv, NULL, timeout_ms, out, err);
    child_identity = NULL;
    return status;
}

int notify_open(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert(fd >= 0);
    ck_assert_msg(strlen(path) < sizeof(addr.sun_path), "socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    unlink(path); /* A daemon killed earlier in the test leaves nothing to reuse here. */
    ck_assert_msg(bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "bind %s: %s", path,
                  strerror(errno));
    return fd;
}

bool notify_wait_text(int fd, const char *text, int timeout_ms)
{
    long long deadline = monotonic_ms() + harness_ms(timeout_ms);
    char message[4096];

    for (;;) {
        long long left = deadline - monotonic_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            return false;
        }
        ssize_t got = recv(fd, message, sizeof(message) - 1, 0);
        if (got <= 0) {
            continue;
        }
        message[got] = '\0';
        if (strstr(message, text) != NULL) {
            return true;
        }
    }
}

bool notify_wait_ready(int fd, int timeout_ms)
{
    return notify_wait_text(fd, "READY=1", timeout_ms);
}

/* Reads a whole file up to its first NUL byte; NULL when it cannot be opened. */
static char *read_file_text(const char *path)
{
    FILE *file = fopen(path, "r");
    char *data = NULL;
    size_t size = 0;

    if (file == NULL) {
        return NULL;
    }
    if (getdelim(&data, &size, '\0', file) < 0) {
        free(data);
        data = strdup("");
    }
    fclose(file);
    return data;
}

char *harness_read_file(const char *path)
{
    char *text = read_file_text(path);

    ck_assert_msg(text != NULL, "open %s: %s", path, strerror(errno));
    return text;
}

static bool file_contains(const char *path, const char *text)
{
    char *data = read_file_text(path);
    bool found = data != NULL && strstr(data, text) != NULL;

    free(data);
    return found;
}

bool harness_wait_file(const char *path, const char *text, int timeout_ms)
{
    long long deadline = monotonic_ms() + harness_ms(timeout_ms);

    while (!file_contains(path, text)) {
        if (monotonic_ms() >= deadline) {
            return false;
        }
        /* Re-reads the log as the child writes it, with a deadline; no fixed wait. */
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return true;
}

void harness_write_file(const char *path, const char *text)
{
    FILE *file = fopen(path, "w");

    ck_assert_msg(file != NULL, "open %s: %s", path, strerror(errno));
    fputs(text, file);
    ck_assert(fclose(file) == 0);
}

void harness_dump_file(const char *path)
{
    FILE *file = fopen(path, "r");
    char line[1024];

    if (file == NULL) {
        return;
    }
    fprintf(stderr, "---- %s\n", path);
    while (fgets(line, sizeof(line), file) != NULL) {
        fputs(line, stderr);
    }
    fprintf(stderr, "----\n");
    fclose(file);
}

bool child_seen_line(struct child *child, const char *prefix, int timeout_ms)
{
    char logged[600];
    char line[1024];

    snprintf(logged, sizeof(logged), "[stdout] %s", prefix);
    if (file_contains(child->log_path, logged)) {
        return true;
    }
    return child_wait_line(child, prefix, timeout_ms, line, sizeof(line));
}
