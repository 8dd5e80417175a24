/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The control API (DESIGN.md §8): D-Bus peer-to-peer on $RUNTIME_DIRECTORY/control, no bus
 * daemon. Object /dev/modelkeeper/Manager1, interface dev.modelkeeper.Manager1.
 *
 * Who may do what: anyone who can connect may read (the socket is 0660 with socket_group, or
 * 0600); methods that change something need the peer to be root, the daemon's own user, or a
 * member of admin_group — taken from SO_PEERCRED/SO_PEERGROUPS of the connection (on a p2p bus no
 * driver adds credentials to messages).
 */

#include "macros.h"

typedef struct Manager Manager;
typedef struct Control Control;
typedef struct Job Job;

#define CONTROL_OBJECT_PATH "/dev/modelkeeper/Manager1"
#define CONTROL_INTERFACE   "dev.modelkeeper.Manager1"
#define CONTROL_MAX_CLIENTS 64

int control_new(Manager *m, const char *path, Control **ret);
Control *control_free(Control *c);

void control_emit_job_progress(Control *c, Job *j);
void control_emit_job_finished(Control *c, const char *model, uint64_t job, const char *verb, int error,
                               const char *reason);
