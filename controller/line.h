/* One serial line: a thread that owns one analyzer's driver, takes commands
 * from the event loop and posts events back to it. libmodbus calls block
 * (with deadlines), so each line runs on its own thread and never touches
 * the database or the clients. */
#ifndef TOXLAB_LINE_H
#define TOXLAB_LINE_H

#include "controller/config.h"
#include "instruments/driver.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

enum line_event_kind {
    LINE_ONLINE,       /* identity read after (re)connecting */
    LINE_OFFLINE,      /* the port could not be opened or identified */
    LINE_STARTED,      /* the start command was accepted */
    LINE_START_FAILED, /* the device refused the start command */
    LINE_PROGRESS,     /* a status poll succeeded */
    LINE_COMM_ERROR,   /* a request failed; the test keeps running */
    LINE_RESULT,       /* a result was read; acknowledge after it commits */
    LINE_DEVICE_ERROR, /* the test ended in a device error */
    LINE_TEST_LOST,    /* the analyzer no longer has the test */
    LINE_ACKNOWLEDGED, /* the analyzer accepted the acknowledge command */
    LINE_ALIVE,        /* an idle analyzer replied to its status poll */
    LINE_FOUND,        /* an idle analyzer still runs a test or keeps its result */
    LINE_UPLOAD,       /* an ASTM message: results (release after commit) or a query */
    LINE_LINK_NOTE,    /* an ASTM link event to log; status is not DRIVER_OK for errors */
};

struct line_event {
    struct line_event *next;
    enum line_event_kind kind;
    struct line *line;
    uint32_t host_test_id;
    int status; /* enum driver_status for errors */
    char message[DRIVER_ERR_SIZE];
    struct driver_identity identity;
    struct driver_progress progress;
    struct driver_result result;
    struct driver_upload *upload; /* LINE_UPLOAD; freed with the event */
};

/* Commands queued for an uploading line: releases and messages to send. */
#define LINE_QUEUE_MAX 16

enum line_command_kind {
    LINE_CMD_START,
    LINE_CMD_ABORT,
    LINE_CMD_ACKNOWLEDGE,
    LINE_CMD_FORGET,    /* stop polling for the test; the loop gave up on it */
    LINE_CMD_REREAD,    /* storing failed: read the result again */
    LINE_CMD_ADOPT,     /* poll a test found on the analyzer as the active one */
    LINE_CMD_RECONNECT, /* the device path appeared: an offline line retries at once */
    LINE_CMD_RELEASE,   /* an upload committed: send its held final ACK */
};

struct line {
    const struct instrument_config *config;
    const struct driver_ops *ops;
    pthread_t thread;
    bool thread_started;

    /* Guarded by lock: commands from the loop and the stop flag. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    bool exited;
    bool start_requested;
    bool abort_requested;
    bool ack_requested;
    bool forget_requested;
    bool reread_requested;
    bool adopt_requested;
    bool reconnect_requested;
    uint32_t start_id;
    uint32_t abort_id;
    uint32_t ack_id;
    uint32_t forget_id;
    uint32_t reread_id;
    uint32_t adopt_id;
    uint32_t releases[LINE_QUEUE_MAX]; /* upload numbers to release, oldest first */
    size_t release_count;
    char *sends[LINE_QUEUE_MAX]; /* messages to send, malloc'd */
    size_t send_count;
    int wake_fd; /* eventfd written with each command, so a blocked receive returns */

    /* Owned by the line thread. */
    void *driver_state;
    uint32_t active_id; /* 0 when no test is active */
    uint32_t found_id;  /* held test last reported while idle, so it is reported once */
    bool awaiting_ack;  /* a result was posted and not yet committed */
    bool online;
    int backoff_ms;
    unsigned failures; /* failed requests since the last reply */
    unsigned crc_run;  /* CRC errors since the last reply */
    struct driver_identity identity;
};

/* Queue of line events, drained by the event loop. The eventfd becomes
 * readable whenever an event is queued. */
int line_events_init(void);
int line_events_fd(void);
struct line_event *line_events_take(void); /* the whole queue, oldest first */

int line_start(struct line *line, const struct instrument_config *config,
               const struct driver_ops *ops);
void line_command(struct line *line, enum line_command_kind kind, uint32_t host_test_id);

/* Queues a message (records ending in CR) for an uploading line to send.
 * Returns 0, or -1 when the queue is full. */
int line_send_message(struct line *line, const char *text);

/* Asks the thread to stop without waiting, so that several lines stop
 * together. */
void line_request_stop(struct line *line);

/* Asks the thread to stop and waits until deadline (CLOCK_MONOTONIC). A
 * thread blocked in a long driver call is left behind, because libmodbus
 * restarts its wait when a signal interrupts it and the process is exiting
 * anyway. */
void line_stop(struct line *line, const struct timespec *deadline);

#endif
