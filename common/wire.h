/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent → daemon wire: one JSON object per SOCK_SEQPACKET message on fd WIRE_FD, at most
 * WIRE_MESSAGE_MAX bytes. The daemon parses with wire_message_parse() only: a message that is
 * too long, not JSON, of an unknown type or with a field of the wrong type makes the job fail
 * and the agent is killed — a confused peer is never trusted (STYLE.md §4).
 *
 *   {"type":"progress","phase":"download","done":123,"total":456}
 *   {"type":"result","ok":true,"data":{...}}
 *   {"type":"result","ok":false,"errno":5,"reason":"digest mismatch for 'model.safetensors'"}
 */

#include <jansson.h>

#include "macros.h"

#define WIRE_FD          3
#define WIRE_MESSAGE_MAX 16384
#define WIRE_PHASE_MAX   32
#define WIRE_REASON_MAX  1024

typedef enum WireType {
        WIRE_PROGRESS,
        WIRE_RESULT,
        _WIRE_TYPE_MAX,
        _WIRE_TYPE_INVALID = -EINVAL,
} WireType;

typedef struct WireMessage {
        WireType type;
        char phase[WIRE_PHASE_MAX + 1];
        uint64_t done, total;
        bool ok;
        int error;                          /* positive errno, result only */
        char reason[WIRE_REASON_MAX + 1];
        json_t *data;                       /* result only, owned, may be NULL */
} WireMessage;

void wire_message_done(WireMessage *m);
/* Pure: validate and decode one message. -EBADMSG for anything malformed. */
int wire_message_parse(const void *buf, size_t size, WireMessage *ret);

/* Send one message; does not take ownership of msg. */
int wire_send(int fd, json_t *msg);
int wire_send_progress(int fd, const char *phase, uint64_t done, uint64_t total);
/* error == 0: success with data; else failure with reason (and data, when the daemon needs facts
 * about the failure). data is stolen and may be NULL. */
int wire_send_result(int fd, int error, const char *reason, json_t *data);
