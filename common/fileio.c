/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <sys/random.h>

#include "fault.h"
#include "fileio.h"

static inline void closedirp_wrapper(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

int loop_write(int fd, const void *buf, size_t n) {
        const uint8_t *p = buf;

        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

ssize_t loop_read(int fd, void *buf, size_t n) {
        uint8_t *p = buf;
        size_t done = 0;

        while (done < n) {
                ssize_t k = read(fd, p + done, n - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        return (ssize_t) done;
}

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0, alloc = 0;
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size > max)
                return -EFBIG;

        for (;;) {
                ssize_t k;

                if (size + 1 >= alloc) {
                        size_t n = alloc == 0 ? (S_ISREG(st.st_mode) ? (size_t) st.st_size + 2 : 4096) : alloc * 2;
                        char *b;

                        n = MIN(n, max + 2);
                        if (n <= alloc)
                                return -EFBIG;
                        b = realloc(buf, n);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                        alloc = n;
                }
                k = read(fd, buf + size, alloc - size - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                size += (size_t) k;
                if (size > max)
                        return -EFBIG;
        }

        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[size] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = size;
        return 0;
}

int read_full_file_at(int dirfd, const char *path, size_t max, bool nofollow, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (nofollow ? O_NOFOLLOW : 0));
        if (fd < 0)
                return -errno;
        return read_full_fd(fd, max, ret, ret_size);
}

static int tmp_name(char *buf, size_t size, const char *name) {
        uint64_t rnd;

        if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno;
        if ((size_t) snprintf(buf, size, ".#%s.%016" PRIx64, name, rnd) >= size)
                return -ENAMETOOLONG;
        return 0;
}

int fsync_directory_at(int dirfd, const char *path) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(dirfd, path ?: ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (FAULT_POINT("fsync-dir") < 0)
                return -EIO;
        if (fsync(fd) < 0)
                return -errno;
        return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[PATH_MAX];
        int r;

        if (strchr(name, '/'))
                return -EINVAL;
        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;

        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = FAULT_POINT("atomic-write");
        if (r >= 0)
                r = loop_write(fd, data, size);
        if (r >= 0 && fchmod(fd, mode) < 0) /* independent of the umask */
                r = -errno;
        if (r >= 0)
                r = FAULT_POINT("atomic-fsync");
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0)
                r = FAULT_POINT("atomic-rename");
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        return fsync_directory_at(dirfd, NULL);
}

int symlink_atomic_at(const char *target, int dirfd, const char *name) {
        char tmp[PATH_MAX];
        int r;

        r = tmp_name(tmp, sizeof(tmp), name);
        if (r < 0)
                return r;
        r = FAULT_POINT("symlink-create");
        if (r < 0)
                return r;
        if (symlinkat(target, dirfd, tmp) < 0)
                return -errno;
        r = FAULT_POINT("symlink-rename");
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return r;
        }
        return fsync_directory_at(dirfd, NULL);
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int rm_rf_children(int fd) {
        _cleanup_(closedirp_wrapper) DIR *d = NULL;
        struct dirent *de;
        int r = 0;

        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        while ((errno = 0, de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
                        int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0) {
                                int k = rm_rf_children(sub);
                                if (k < 0 && r == 0)
                                        r = k;
                                if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                                        r = -errno;
                                continue;
                        }
                        if (errno != ENOTDIR && errno != ELOOP) {
                                if (r == 0)
                                        r = -errno;
                                continue;
                        }
                }
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        if (errno != 0 && r == 0)
                r = -errno;
        return r;
}

int rm_rf_at(int dirfd, const char *name) {
        int fd, r;

        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return 0;
                if (errno == ENOTDIR || errno == ELOOP)
                        return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
                return -errno;
        }
        r = rm_rf_children(fd); /* takes fd */
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

char *path_join(const char *a, const char *b) {
        char *p = NULL;
        size_t la = strlen(a);

        while (*b == '/')
                b++;
        if (asprintf(&p, "%s%s%s", a, la > 0 && a[la - 1] == '/' ? "" : "/", b) < 0)
                return NULL;
        return p;
}

bool path_is_absolute(const char *p) {
        return p && p[0] == '/';
}

char *path_dirname(const char *p) {
        const char *slash = strrchr(p, '/');

        if (!slash)
                return strdup(".");
        if (slash == p)
                return strdup("/");
        return strndup(p, (size_t) (slash - p));
}
