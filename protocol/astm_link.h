/* ASTM E1381 (CLSI LIS1-A) low-level protocol: one link, both directions,
 * as a state machine on virtual time. No I/O: the caller feeds received
 * bytes and the clock (milliseconds, any monotonic origin), writes the bytes
 * that each event carries, and calls astm_link_poll again by the deadline
 * that astm_link_deadline returns. docs/astm.md describes the behaviour. */
#ifndef TOXLAB_ASTM_LINK_H
#define TOXLAB_ASTM_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ASTM_STX 0x02
#define ASTM_ETX 0x03
#define ASTM_EOT 0x04
#define ASTM_ENQ 0x05
#define ASTM_ACK 0x06
#define ASTM_LF 0x0A
#define ASTM_CR 0x0D
#define ASTM_NAK 0x15
#define ASTM_ETB 0x17

/* Frame text a sender puts in one frame (E1381: 240 characters). */
#define ASTM_STANDARD_FRAME_TEXT 240
/* Bytes around the text of a frame: STX, frame number, ETB or ETX, two
 * checksum characters, CR and LF. */
#define ASTM_FRAME_OVERHEAD 7
/* Maximum frame text the link sends, whatever the configuration sets. */
#define ASTM_MAX_SEND_FRAME_TEXT 1024

#define ASTM_NO_DEADLINE (-1)

/* End of the line that this link serves: on contention the instrument wins. */
enum astm_role { ASTM_ROLE_HOST, ASTM_ROLE_INSTRUMENT };

/* Timers, limits and behaviour of one link. astm_config_defaults fills in
 * the standard's values; every time is in milliseconds. */
struct astm_config {
    enum astm_role role;
    int64_t reply_timeout_ms;    /* sender waiting for the reply to ENQ or a frame: 15000 */
    int64_t frame_timeout_ms;    /* receiver waiting for a frame or EOT: 30000 */
    int64_t busy_retry_ms;       /* after the receiver refused our ENQ with NAK: 10000 */
    int64_t contention_retry_ms; /* after contention: host 20000, instrument 1000 */
    int64_t interrupt_retry_ms;  /* after a receiver interrupt ended the session: 15000 */
    int max_attempts;            /* times one frame is sent before the sender gives up: 6 */
    size_t send_frame_text;      /* text per frame sent: 240, at most ASTM_MAX_SEND_FRAME_TEXT */
    size_t max_frame_text;       /* maximum frame text accepted: 16384 (our choice) */
    bool hold_final_ack;         /* hold the ACK of each ETX frame until astm_link_release */
};

void astm_config_defaults(struct astm_config *config, enum astm_role role);

enum astm_event_kind {
    ASTM_EV_NONE,        /* nothing happened; out_len may still be 0 */
    ASTM_EV_OUTPUT,      /* only bytes to write (ENQ, the next frame, EOT) */
    ASTM_EV_ESTABLISHED, /* the peer's ENQ was accepted; out carries ACK */
    ASTM_EV_REFUSED,     /* the peer's ENQ was refused because we are busy; out carries NAK */
    ASTM_EV_FRAME,       /* a new frame; out carries ACK or EOT, or nothing while held */
    ASTM_EV_DUPLICATE,   /* the previous frame again; out carries ACK, text not repeated */
    ASTM_EV_BAD_FRAME,   /* a defective frame; out carries NAK */
    ASTM_EV_PEER_ENDED,  /* the sender's EOT ended the link session */
    ASTM_EV_RX_TIMEOUT,  /* no frame or EOT in time; the link session is over */
    ASTM_EV_BUSY,        /* our ENQ was refused; ENQ again after busy_retry_ms */
    ASTM_EV_CONTENTION,  /* both ends sent ENQ; ENQ again after contention_retry_ms */
    ASTM_EV_DELIVERED,   /* the peer accepted the last frame of a message */
    ASTM_EV_INTERRUPTED, /* the peer answered a frame with EOT; out carries EOT */
    ASTM_EV_SEND_FAILED, /* retries used up or no reply in time; out carries EOT */
};

/* Reason a frame was rejected or a send failed. */
enum astm_error {
    ASTM_ERR_NONE,
    ASTM_ERR_CHECKSUM,     /* checksum characters do not match the frame */
    ASTM_ERR_FRAME_NUMBER, /* neither the expected nor the previous frame number */
    ASTM_ERR_FORMAT,       /* no frame number, no ETB or ETX, no CR LF, or a control byte */
    ASTM_ERR_TOO_LONG,     /* frame text over max_frame_text */
    ASTM_ERR_NO_REPLY,     /* sender: no reply within reply_timeout_ms */
    ASTM_ERR_RETRIES,      /* sender: the frame was sent max_attempts times and never accepted */
};

/* Event one call produced. Its pointers stay valid until the next call on the link. */
struct astm_event {
    enum astm_event_kind kind;
    const uint8_t *out; /* bytes to write to the line now */
    size_t out_len;
    const char *text; /* ASTM_EV_FRAME: the frame text, without STX and frame number */
    size_t text_len;
    int frame_number;      /* ASTM_EV_FRAME, DUPLICATE, BAD_FRAME (-1 when unreadable) */
    bool final;            /* ASTM_EV_FRAME: ended with ETX, so a message ends here */
    bool held;             /* ASTM_EV_FRAME: the ACK waits for astm_link_release */
    enum astm_error error; /* ASTM_EV_BAD_FRAME, ASTM_EV_SEND_FAILED */
    size_t messages;       /* ASTM_EV_DELIVERED: messages delivered so far in this session */
    size_t frame_offset;   /* ASTM_EV_FRAME, DUPLICATE, BAD_FRAME: bytes fed before its STX */
};

enum astm_state {
    ASTM_NEUTRAL,
    ASTM_RX_WAIT,  /* receiver: between frames */
    ASTM_RX_FRAME, /* receiver: inside a frame, after STX */
    ASTM_RX_HELD,  /* receiver: a final frame waits for astm_link_release */
    ASTM_TX_ENQ,   /* sender: ENQ sent, waiting for the reply */
    ASTM_TX_FRAME, /* sender: frame sent, waiting for the reply */
};

struct astm_link {
    struct astm_config config;
    enum astm_state state;
    int64_t deadline;    /* ASTM_NO_DEADLINE, or when the current wait ends */
    int64_t enq_allowed; /* earliest time for our next ENQ */
    uint64_t fed;        /* bytes fed so far, for frame offsets */
    bool busy;           /* refuse the peer's ENQ */
    bool interrupt;      /* answer the next new frame with EOT instead of ACK */

    /* Receiver. */
    int expected_number;
    uint8_t *frame; /* bytes of the frame being received, from the frame number on */
    size_t frame_len;
    size_t frame_cap;
    bool frame_overflow;
    bool have_previous; /* a frame was accepted in this link session */
    uint64_t frame_start;

    /* Sender: queued messages, concatenated, and where each ends. */
    char *queue;
    size_t queue_len;
    size_t *ends;
    size_t message_count;
    size_t message_cap;
    size_t message;  /* message being sent */
    size_t position; /* offset of the current frame's text in queue */
    size_t chunk;    /* text length of the current frame */
    int send_number;
    int attempts;
    size_t delivered;
    uint8_t out[ASTM_MAX_SEND_FRAME_TEXT + ASTM_FRAME_OVERHEAD];
};

/* Starts a link in the neutral state. Returns 0 or -ENOMEM; the caller
 * frees a started link with astm_link_free. */
int astm_link_init(struct astm_link *link, const struct astm_config *config);
void astm_link_free(struct astm_link *link);

/* Feeds received bytes. Stops after the first byte that produced an event
 * and returns how many bytes it consumed, so the caller feeds the rest
 * next. A deadline that has passed produces its event first, consuming
 * nothing. */
size_t astm_link_input(struct astm_link *link, const uint8_t *data, size_t len, int64_t now,
                       struct astm_event *event);

/* Handles an expired timer or starts a queued send (ENQ) when the link is
 * neutral and may send. */
void astm_link_poll(struct astm_link *link, int64_t now, struct astm_event *event);

/* Returns when astm_link_poll must next be called, or ASTM_NO_DEADLINE. */
int64_t astm_link_deadline(const struct astm_link *link);

/* Queues one message (records ending in CR) to send in the next link
 * session. Returns 0, -EINVAL for empty text, or -ENOMEM. */
int astm_link_send(struct astm_link *link, const char *text, size_t len);

/* Sends the held ACK of a final frame once its results are stored. The
 * event is ASTM_EV_OUTPUT with ACK (or EOT on a pending interrupt), or
 * ASTM_EV_NONE when nothing is held. */
void astm_link_release(struct astm_link *link, int64_t now, struct astm_event *event);

/* Asks the sender to stop (receiver interrupt): the next new frame is
 * answered with EOT in place of ACK. */
void astm_link_interrupt(struct astm_link *link);

/* While busy, the link refuses the peer's ENQ with NAK. */
void astm_link_set_busy(struct astm_link *link, bool busy);

/* Returns the number of messages still queued to send. */
size_t astm_link_pending(const struct astm_link *link);

/* Computes the checksum of frame bytes from the frame number through ETB or
 * ETX inclusive: their sum modulo 256. */
uint8_t astm_checksum(const uint8_t *bytes, size_t len);

/* Builds one frame into out (which has room for text_len plus
 * ASTM_FRAME_OVERHEAD bytes) and returns its length. */
size_t astm_build_frame(int number, const char *text, size_t text_len, bool final, uint8_t *out);

/* Returns a short English name of an event kind or an error, for messages. */
const char *astm_event_name(enum astm_event_kind kind);
const char *astm_error_name(enum astm_error error);

#endif
