/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * The agent narrows itself before it touches anything (DESIGN.md §2): no new privileges, not
 * dumpable (an identity may be in memory), no core files, no stray file descriptors, an
 * unprivileged user when started as root and one is configured, and — where the kernel has
 * Landlock — writes only below the directories of its job and no TCP unless it fetches.
 */

#include "macros.h"

typedef struct SandboxSpec {
        const char *const *writable; /* NULL-terminated; must exist */
        bool network;
        uint64_t memory_max;         /* RLIMIT_AS in bytes, 0 = unlimited */
        const char *user;            /* drop to this user when running as root; NULL: stay */
        int keep_fd_max;             /* close every fd above this */
} SandboxSpec;

typedef struct SandboxReport {
        int landlock_abi;            /* 0: not available */
        bool landlock_fs, landlock_net;
} SandboxReport;

int sandbox_apply(const SandboxSpec *spec, SandboxReport *ret);
