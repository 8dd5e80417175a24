/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Numbered fault points (SQLite's sqlite3FaultSim habit). Every write, fsync, rename and symlink
 * swap of the store passes through FAULT_POINT("name"). Built with -Dfault_injection=true (the
 * test build), the environment steers them:
 *
 *   MODELKEEPER_FAULT_TRACE=FILE   append "N name" for every point reached (enumeration); the agent
 *                                  opens it inside its Landlock sandbox, so FILE must be below the
 *                                  model's directories (e.g. $STATE/models/<model>/fault-trace)
 *   MODELKEEPER_FAULT=N:error      the Nth point reached fails with -EIO
 *   MODELKEEPER_FAULT=N:kill       the process kills itself with SIGKILL at the Nth point
 *   MODELKEEPER_FAULT=N:pause      the process sleeps 60 s at the Nth point (to kill others meanwhile)
 *   MODELKEEPER_FAULT_VERB=VERB    only agents running VERB take part
 *
 * Only processes that call fault_setup() take part (the agent does; the daemon does not, so its own
 * state.json writes are never the victim).
 *
 * In a package build the macro is the constant 0 and no code is emitted.
 */

#include "macros.h"

#if ENABLE_FAULT_INJECTION
void fault_setup(const char *verb);
int fault_point(const char *name);
#define FAULT_POINT(name) fault_point(name)
#else
static inline void fault_setup(const char *verb) {
}
#define FAULT_POINT(name) 0
#endif
