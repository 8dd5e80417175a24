/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>

#include "fileio.h"
#include "parse-util.h"
#include "unseal.h"

struct Unsealer {
        Agent *agent;
        int files_fd;
        bool sealed;
};

int unsealer_new(Agent *a, Store *s, const VersionMeta *meta, Unsealer **ret) {
        _cleanup_free_ char *path = xasprintf("%s/files", meta->id);
        Unsealer *u;

        if (!path)
                return -ENOMEM;
        if (meta->sealed)
                return agent_result_error(a, -EOPNOTSUPP, "version %s is sealed and this agent cannot unseal yet",
                                          meta->id);
        u = calloc(1, sizeof(Unsealer));
        if (!u)
                return -ENOMEM;
        u->agent = a;
        u->sealed = meta->sealed;
        u->files_fd = openat(s->versions_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (u->files_fd < 0) {
                int r = -errno;
                free(u);
                return agent_result_error(a, r, "cannot open version %s: %m", meta->id);
        }
        *ret = u;
        return 0;
}

Unsealer *unsealer_free(Unsealer *u) {
        if (!u)
                return NULL;
        safe_close(u->files_fd);
        free(u);
        return NULL;
}

int unsealer_open(Unsealer *u, const char *name, StreamReader *ret) {
        int fd;

        if (!filename_is_safe(name))
                return -EINVAL;
        fd = openat(u->files_fd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        *ret = STREAM_READER_FD(fd);
        return 0;
}

void unsealer_close(Unsealer *u, const char *name, StreamReader *r) {
        safe_close((int) (intptr_t) r->userdata);
        r->userdata = (void *) (intptr_t) -1;
}

int agent_seal_hook(Agent *a, const InstallSealHook **ret) {
        return agent_result_error(a, -EOPNOTSUPP,
                                  "storage.encrypt is set but this agent cannot seal yet; refusing to store plaintext");
}
