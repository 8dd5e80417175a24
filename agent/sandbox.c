/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <grp.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "log.h"
#include "sandbox.h"

/* Debian 12's kernel headers (6.1) know Landlock ABI 1-2 only; the constants of later ABIs are
 * stable kernel ABI, so define them when missing and use them when the running kernel has them. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif

/* The ABI-4 layout of the ruleset attribute (handled_access_net added). */
struct mk_landlock_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
};

static int landlock_abi(void) {
        long r = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        return r < 0 ? 0 : (int) r;
}

static int apply_landlock(const SandboxSpec *spec, SandboxReport *rep) {
        struct mk_landlock_ruleset_attr attr = {};
        _cleanup_close_ int ruleset = -EBADF;
        uint64_t fs = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
                      LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
                      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
                      LANDLOCK_ACCESS_FS_MAKE_SYM;
        int abi = landlock_abi();
        size_t attr_size;

        rep->landlock_abi = abi;
        if (abi <= 0) {
                log_debug("Landlock is not available in this kernel; relying on the service sandbox.");
                return 0;
        }
        if (abi >= 2)
                fs |= LANDLOCK_ACCESS_FS_REFER;
        if (abi >= 3)
                fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
        /* Reads stay unrestricted (CA bundles, the model server's libraries for exec compressors);
         * what we handle — and so deny outside the rules — is every kind of write. */
        attr.handled_access_fs = fs;
        attr_size = sizeof(uint64_t);
        if (abi >= 4 && !spec->network) {
                /* Handled with no rule: no TCP bind or connect at all. */
                attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
                attr_size = sizeof(attr);
        }

        ruleset = (int) syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
        if (ruleset < 0)
                return log_error_errno(-errno, "Failed to create a Landlock ruleset: %m");

        for (const char *const *p = spec->writable; p && *p; p++) {
                struct landlock_path_beneath_attr pb = {.allowed_access = fs};
                _cleanup_close_ int fd = open(*p, O_PATH | O_CLOEXEC);

                if (fd < 0)
                        return log_error_errno(-errno, "Failed to open %s for the sandbox: %m", *p);
                pb.parent_fd = fd;
                if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
                        return log_error_errno(-errno, "Failed to add a Landlock rule for %s: %m", *p);
        }
        if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
                return log_error_errno(-errno, "Failed to enforce the Landlock ruleset: %m");
        rep->landlock_fs = true;
        rep->landlock_net = attr.handled_access_net != 0;
        return 0;
}

static int drop_privileges(const char *user) {
        struct passwd *pw;

        if (geteuid() != 0 || !user)
                return 0;
        errno = 0;
        pw = getpwnam(user);
        if (!pw)
                return log_error_errno(errno > 0 ? -errno : -ESRCH, "Agent user '%s' does not exist.", user);
        if (setgroups(0, NULL) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
            setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0)
                return log_error_errno(-errno, "Failed to drop privileges to %s: %m", user);
        /* Make sure there is no way back. */
        if (setuid(0) == 0)
                return log_error_errno(-EPERM, "Could regain root after dropping privileges; refusing to go on.");
        return 0;
}

int sandbox_apply(const SandboxSpec *spec, SandboxReport *ret) {
        SandboxReport rep = {};
        struct rlimit rl;
        int r;

        /* Nothing we exec may gain privileges (setuid binaries, file capabilities). */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(-errno, "PR_SET_NO_NEW_PRIVS failed: %m");
        /* An identity may be in memory: no ptrace by others of our uid, no core dumps. */
        (void) prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        rl = (struct rlimit){0, 0};
        (void) setrlimit(RLIMIT_CORE, &rl);
        rl = (struct rlimit){4096, 4096};
        (void) setrlimit(RLIMIT_NOFILE, &rl);
        if (spec->memory_max > 0) {
                rl = (struct rlimit){spec->memory_max, spec->memory_max};
                if (setrlimit(RLIMIT_AS, &rl) < 0)
                        return log_error_errno(-errno, "Failed to set the memory limit: %m");
        }

        if (close_range((unsigned) spec->keep_fd_max + 1, ~0U, 0) < 0)
                return log_error_errno(-errno, "Failed to close stray file descriptors: %m");

        r = drop_privileges(spec->user);
        if (r < 0)
                return r;
        r = apply_landlock(spec, &rep);
        if (r < 0)
                return r;
        if (ret)
                *ret = rep;
        return 0;
}
