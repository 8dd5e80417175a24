/* SPDX-License-Identifier: Apache-2.0 */

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>

#include "fault.h"
#include "fileio.h"
#include "log.h"
#include "parse-util.h"
#include "store.h"
#include "strv.h"

static int open_dir_at(int dirfd, const char *name, bool create, mode_t mode) {
        int fd;

        if (create && mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        safe_close(s->dirfd);
        safe_close(s->versions_fd);
        safe_close(s->staging_fd);
        safe_close(s->serve_fd);
        safe_close(s->plain_fd);
        free(s->model);
        free(s->path);
        free(s->runtime);
        free(s);
        return NULL;
}

int store_open(const char *state_directory, const char *runtime_directory, const char *model, Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;
        _cleanup_free_ char *models = NULL, *plain = NULL;
        _cleanup_close_ int plain_root = -EBADF;
        int r;

        if (!name_is_valid(model, 64))
                return -EINVAL;
        s = calloc(1, sizeof(Store));
        if (!s)
                return -ENOMEM;
        s->dirfd = s->versions_fd = s->staging_fd = s->serve_fd = s->plain_fd = -EBADF;
        s->gid = (gid_t) -1;
        s->model = strdup(model);
        models = path_join(state_directory, "models");
        s->runtime = strdup(runtime_directory);
        if (!s->model || !models || !s->runtime)
                return -ENOMEM;
        s->path = path_join(models, model);
        if (!s->path)
                return -ENOMEM;
        /* $STATE/models is traversable (not listable) by everyone, so that a model server of
         * another user can reach the files of its own model when storage.group allows it. */
        r = mkdir_p(models, 0711);
        if (r < 0)
                return r;
        (void) chmod(models, 0711);
        r = mkdir_p(s->path, 0700);
        if (r < 0)
                return r;
        s->dirfd = open_dir_at(AT_FDCWD, s->path, false, 0);
        if (s->dirfd < 0)
                return s->dirfd;
        if ((s->versions_fd = open_dir_at(s->dirfd, "versions", true, 0700)) < 0)
                return s->versions_fd;
        if ((s->staging_fd = open_dir_at(s->dirfd, "staging", true, 0700)) < 0)
                return s->staging_fd;

        r = mkdir_p(runtime_directory, 0755);
        if (r < 0)
                return r;
        plain = path_join(runtime_directory, "plain");
        if (!plain)
                return -ENOMEM;
        r = mkdir_p(plain, 0755);
        if (r < 0)
                return r;
        /* Shared by every model (each closes its own directory below): traversable for the model
         * servers whatever the umask (the service runs with UMask=0077). */
        (void) chmod(plain, 0755);
        plain_root = open_dir_at(AT_FDCWD, plain, false, 0);
        if (plain_root < 0)
                return plain_root;
        if ((s->plain_fd = open_dir_at(plain_root, model, true, 0750)) < 0)
                return s->plain_fd;
        {
                _cleanup_free_ char *serve = path_join(runtime_directory, "serve");
                if (!serve)
                        return -ENOMEM;
                r = mkdir_p(serve, 0755);
                if (r < 0)
                        return r;
                (void) chmod(serve, 0755);
                if ((s->serve_fd = open_dir_at(AT_FDCWD, serve, false, 0)) < 0)
                        return s->serve_fd;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

int store_set_group(Store *s, const char *group, char *reason, size_t reason_size) {
        struct group *g;

        if (!group)
                return 0;
        errno = 0;
        g = getgrnam(group);
        if (!g) {
                snprintf(reason, reason_size, "storage.group '%s' does not exist", group);
                return errno > 0 ? -errno : -ESRCH;
        }
        s->gid = g->gr_gid;
        /* The model directory and versions/: the group may pass through, not list. */
        if (fchown(s->dirfd, (uid_t) -1, s->gid) < 0 || fchmod(s->dirfd, 0710) < 0 ||
            fchown(s->versions_fd, (uid_t) -1, s->gid) < 0 || fchmod(s->versions_fd, 0710) < 0 ||
            fchown(s->plain_fd, (uid_t) -1, s->gid) < 0 || fchmod(s->plain_fd, 0750) < 0) {
                int r = -errno;
                snprintf(reason, reason_size,
                         "cannot give group '%s' access (%s): the modelkeeper user must be a member of it "
                         "(e.g. SupplementaryGroups=%s in a drop-in for modelkeeperd.service)",
                         group, strerror(-r), group);
                return r;
        }
        return 0;
}

static int share_fd(Store *s, int fd, bool dir) {
        if (s->gid == (gid_t) -1)
                return 0;
        if (fchown(fd, (uid_t) -1, s->gid) < 0 || fchmod(fd, dir ? 0750 : 0640) < 0)
                return -errno;
        return 0;
}

int store_share_at(Store *s, int parent_fd, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        struct dirent *de;
        struct stat st;
        DIR *d;
        int r;

        if (s->gid == (gid_t) -1)
                return 0;
        fd = openat(parent_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        r = share_fd(s, fd, S_ISDIR(st.st_mode));
        if (r < 0 || !S_ISDIR(st.st_mode))
                return r;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                if (streq(de->d_name, ".") || streq(de->d_name, "..") || startswith(de->d_name, ".#"))
                        continue;
                r = store_share_at(s, dirfd(d), de->d_name);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int store_free_space(Store *s, uint64_t *ret) {
        struct statvfs sv;

#if ENABLE_FAULT_INJECTION
        /* Tests pretend a nearly full disk without filling one. */
        const char *e = getenv("MODELKEEPER_TEST_FREE_BYTES");
        if (e && parse_size(e, ret) >= 0)
                return 0;
#endif
        if (fstatvfs(s->dirfd, &sv) < 0)
                return -errno;
        *ret = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;
        return 0;
}

int store_check_space(Store *s, uint64_t need, uint64_t reserve, char *reason, size_t reason_size) {
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX], c[FORMAT_BYTES_MAX];
        uint64_t avail = 0, want;
        int r;

        r = store_free_space(s, &avail);
        if (r < 0) {
                snprintf(reason, reason_size, "cannot determine free space: %s", strerror(-r));
                return r;
        }
        if (ADD_OVERFLOW(need, reserve, &want) || want > avail) {
                snprintf(reason, reason_size, "not enough free space: need %s plus a reserve of %s (storage.min_free), %s free",
                         format_bytes(a, need), format_bytes(b, reserve), format_bytes(c, avail));
                return -ENOSPC;
        }
        return 0;
}

static const char *fs_type_name(uint32_t magic) {
        switch (magic) {
        case TMPFS_MAGIC:
                return "tmpfs";
        case RAMFS_MAGIC:
                return "ramfs";
        case EXT4_SUPER_MAGIC:
                return "ext2/ext3/ext4";
        case XFS_SUPER_MAGIC:
                return "xfs";
        case BTRFS_SUPER_MAGIC:
                return "btrfs";
        case F2FS_SUPER_MAGIC:
                return "f2fs";
        case OVERLAYFS_SUPER_MAGIC:
                return "overlayfs";
        case FUSE_SUPER_MAGIC:
                return "fuse";
        case NFS_SUPER_MAGIC:
                return "nfs";
        case CIFS_SUPER_MAGIC:
        case SMB2_SUPER_MAGIC:
                return "cifs/smb";
        case V9FS_MAGIC:
                return "9p";
        case 0x2fc12fc1:
                return "zfs";
        default:
                return NULL;
        }
}

int store_plain_check(Store *s, uint64_t need, bool memory_only, const char *what, char *reason,
                      size_t reason_size) {
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX], c[FORMAT_BYTES_MAX], d[FORMAT_BYTES_MAX];
        char e[FORMAT_BYTES_MAX], type[32];
        uint64_t size, avail, margin, want;
        struct statvfs sv;
        struct statfs sf;
        uint32_t magic;

        if (fstatfs(s->plain_fd, &sf) < 0 || fstatvfs(s->plain_fd, &sv) < 0) {
                int r = -errno;
                snprintf(reason, reason_size, "cannot inspect the file system of %s/plain: %s", s->runtime,
                         strerror(-r));
                return r;
        }
        /* f_type is a 32-bit magic number whatever the width of the field. */
        magic = (uint32_t) sf.f_type;
        if (fs_type_name(magic))
                snprintf(type, sizeof(type), "%s", fs_type_name(magic));
        else
                snprintf(type, sizeof(type), "file system type 0x%08" PRIx32, magic);

        /* Plaintext of a sealed version on a disk would undo the sealing: it would outlive the
         * process, the boot and the disk's owner. Refuse rather than write a single byte there. */
        if (memory_only && magic != TMPFS_MAGIC && magic != RAMFS_MAGIC) {
                snprintf(reason, reason_size,
                         "refusing to write the plaintext of %s to %s/plain: it is on %s, not on a "
                         "memory-backed file system (tmpfs or ramfs); mount a tmpfs there or set "
                         "daemon.runtime_directory to a directory on one",
                         what, s->runtime, type);
                return -EMEDIUMTYPE;
        }

        size = (uint64_t) sv.f_blocks * (uint64_t) sv.f_frsize;
        avail = (uint64_t) sv.f_bavail * (uint64_t) sv.f_frsize;
#if ENABLE_FAULT_INJECTION
        {
                /* Tests pretend a small tmpfs without mounting one. */
                const char *env = getenv("MODELKEEPER_TEST_PLAIN_FREE_BYTES");
                if (env && parse_size(env, &avail) >= 0)
                        size = avail;
        }
#endif
        /* ramfs, and a tmpfs mounted with size=0, have no limit to check against (statvfs reports
         * no blocks): there the memory itself is the limit, which only the kernel knows. */
        if (size == 0)
                return 0;
        /* The runtime directory usually shares /run (20% of RAM under systemd) with every other
         * service: leave a twentieth of it (at least 16 MiB) free, plus 1/64 of the plaintext for
         * what the file system spends beyond the bytes (pages, inodes). */
        margin = MAX(size / 20, (uint64_t) 16 * MIB) + need / 64;
        if (ADD_OVERFLOW(need, margin, &want))
                want = UINT64_MAX;
        if (want > avail) {
                snprintf(reason, reason_size,
                         "not enough memory-backed space in %s for the plaintext of %s: need %s (%s plus a "
                         "margin of %s), have %s (free on the %s of %s)",
                         s->runtime, what, format_bytes(a, want), format_bytes(b, need),
                         format_bytes(c, margin), format_bytes(d, avail), type, format_bytes(e, size));
                return -ENOSPC;
        }
        return 0;
}

int store_staging_open(Store *s, const char *name, bool fresh, int *ret_dirfd, int *ret_files_fd) {
        _cleanup_close_ int dfd = -EBADF, ffd = -EBADF;
        int r;

        if (!filename_is_safe(name))
                return -EINVAL;
        if (fresh) {
                r = rm_rf_at(s->staging_fd, name);
                if (r < 0)
                        return r;
        }
        r = FAULT_POINT("staging-mkdir");
        if (r < 0)
                return r;
        dfd = open_dir_at(s->staging_fd, name, true, 0700);
        if (dfd < 0)
                return dfd;
        ffd = open_dir_at(dfd, "files", true, 0750);
        if (ffd < 0)
                return ffd;
        if (ret_dirfd)
                *ret_dirfd = TAKE_FD(dfd);
        if (ret_files_fd)
                *ret_files_fd = TAKE_FD(ffd);
        return 0;
}

int store_staging_remove(Store *s, const char *name) {
        return rm_rf_at(s->staging_fd, name);
}

int store_commit(Store *s, const char *staging_name, const VersionMeta *meta, const char *release_json,
                 size_t release_size) {
        _cleanup_close_ int dfd = -EBADF;
        _cleanup_free_ char *text = NULL;
        json_t *o;
        int r;

        if (!version_id_is_valid(meta->id))
                return -EINVAL;
        dfd = open_dir_at(s->staging_fd, staging_name, false, 0);
        if (dfd < 0)
                return dfd;
        /* The files are fsync'd one by one as they are written; their directory entries now. */
        r = fsync_directory_at(dfd, "files");
        if (r < 0)
                return r;
        if (release_json) {
                r = write_file_atomic_at(dfd, "release.json", release_json, release_size, 0640);
                if (r < 0)
                        return r;
        }
        o = version_meta_to_json(meta);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        /* meta.json last: a version directory with a meta.json has everything. */
        r = write_file_atomic_at(dfd, "meta.json", text, strlen(text), 0640);
        if (r < 0)
                return r;
        /* Readable for the model server's group before it becomes visible as a version. */
        r = store_share_at(s, s->staging_fd, staging_name);
        if (r < 0)
                return r;
        r = FAULT_POINT("commit-rename");
        if (r < 0)
                return r;
        /* RENAME_NOREPLACE: never replace an existing version, even an empty directory. */
        if (renameat2(s->staging_fd, staging_name, s->versions_fd, meta->id, RENAME_NOREPLACE) < 0)
                return errno == EEXIST || errno == ENOTEMPTY ? -EEXIST : -errno;
        r = fsync_directory_at(s->versions_fd, NULL);
        if (r < 0)
                return r;
        return fsync_directory_at(s->staging_fd, NULL);
}

typedef struct SourceFile {
        char *name;
        uint64_t size;
        dev_t dev;
        ino_t ino;
} SourceFile;

static int cmp_source(const void *a, const void *b) {
        return strcmp(((const SourceFile *) a)->name, ((const SourceFile *) b)->name);
}

typedef struct CopyProgress {
        StoreProgressFn fn;
        void *userdata;
        uint64_t done, total;
} CopyProgress;

static void copy_progress(void *userdata, uint64_t n) {
        CopyProgress *p = userdata;
        p->done += n;
        if (p->fn)
                p->fn(p->userdata, "import", p->done, p->total);
}

int store_import(Store *s, const char *source_dir, const char *id, const StoreLimits *limits,
                 const InstallSealHook *seal, StoreProgressFn progress, void *userdata, VersionMeta **ret_meta,
                 char *reason, size_t reason_size) {
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
        _cleanup_close_ int src = -EBADF, sdfd = -EBADF, files_fd = -EBADF;
        _cleanup_free_ char *staging = NULL;
        SourceFile *files = NULL;
        size_t n_files = 0;
        uint64_t total = 0;
        CopyProgress cp = {.fn = progress, .userdata = userdata};
        struct dirent *de;
        DIR *d = NULL;
        int r;

#define FAIL(err, ...)                                                                                     \
        do {                                                                                               \
                snprintf(reason, reason_size, __VA_ARGS__);                                                \
                r = (err);                                                                                 \
                goto out;                                                                                  \
        } while (0)

        if (!version_id_is_valid(id))
                FAIL(-EINVAL, "invalid version id '%s'", id);
        if (faccessat(s->versions_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                FAIL(-EEXIST, "version %s already exists in the store", id);

        src = open(source_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (src < 0)
                FAIL(-errno, "cannot open '%s': %s", source_dir, strerror(errno));
        d = fdopendir(dup(src));
        if (!d)
                FAIL(-errno, "cannot read '%s': %s", source_dir, strerror(errno));

        /* Look at everything before copying anything: a bad entry refuses the whole import. */
        while ((errno = 0, de = readdir(d))) {
                struct stat st;
                SourceFile *a;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (!filename_is_safe(de->d_name))
                        FAIL(-EINVAL, "refusing a file name with control characters or invalid UTF-8 in '%s'", source_dir);
                if (fstatat(src, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        FAIL(-errno, "cannot stat '%s': %s", de->d_name, strerror(errno));
                if (S_ISLNK(st.st_mode))
                        FAIL(-ELOOP, "refusing symlink '%s': import regular files only", de->d_name);
                if (S_ISDIR(st.st_mode))
                        FAIL(-EISDIR, "refusing subdirectory '%s': a version is a flat set of files", de->d_name);
                if (!S_ISREG(st.st_mode))
                        FAIL(-EPERM, "refusing '%s': not a regular file (device, FIFO or socket)", de->d_name);
                if (n_files >= limits->max_files)
                        FAIL(-E2BIG, "more than %u files (storage.max_files)", limits->max_files);
                if ((uint64_t) st.st_size > limits->max_file_size)
                        FAIL(-EFBIG, "'%s' is larger than the limit of %" PRIu64 " bytes", de->d_name,
                             limits->max_file_size);
                if (ADD_OVERFLOW(total, (uint64_t) st.st_size, &total) || total > limits->max_version_size)
                        FAIL(-EFBIG, "the version is larger than storage.max_version_size (%" PRIu64 " bytes)",
                             limits->max_version_size);
                a = reallocarray(files, n_files + 1, sizeof(SourceFile));
                if (!a)
                        FAIL(-ENOMEM, "out of memory");
                files = a;
                files[n_files] = (SourceFile){.name = strdup(de->d_name), .size = (uint64_t) st.st_size,
                                              .dev = st.st_dev, .ino = st.st_ino};
                if (!files[n_files++].name)
                        FAIL(-ENOMEM, "out of memory");
        }
        if (errno != 0)
                FAIL(-errno, "cannot read '%s': %s", source_dir, strerror(errno));
        if (n_files == 0)
                FAIL(-ENODATA, "'%s' contains no files", source_dir);
        qsort(files, n_files, sizeof(SourceFile), cmp_source);

        /* Sealed files are a little larger than their plaintext (age adds 16 bytes per 64 KiB). */
        r = store_check_space(s, total + total / 4096 + 4096 * n_files, limits->min_free, reason, reason_size);
        if (r < 0)
                goto out;

        meta = calloc(1, sizeof(VersionMeta));
        if (!meta || !(meta->files = calloc(n_files, sizeof(VersionFile))))
                FAIL(-ENOMEM, "out of memory");
        meta->model = strdup(s->model);
        meta->id = strdup(id);
        meta->origin = strdup("import");
        if (!meta->model || !meta->id || !meta->origin)
                FAIL(-ENOMEM, "out of memory");
        meta->sealed = seal != NULL;

        if (asprintf(&staging, "import-%s", id) < 0)
                FAIL(-ENOMEM, "out of memory");
        r = store_staging_open(s, staging, true, &sdfd, &files_fd);
        if (r < 0)
                FAIL(r, "cannot create the staging directory: %s", strerror(-r));

        cp.total = total;
        for (size_t i = 0; i < n_files; i++) {
                _cleanup_close_ int fd = -EBADF;
                InstallFile f;
                struct stat st;

                fd = openat(src, files[i].name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
                if (fd < 0)
                        FAIL(-errno, "cannot open '%s': %s", files[i].name, strerror(errno));
                /* Verify from the fd we read: the same file we looked at, still a regular file. */
                if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_dev != files[i].dev || st.st_ino != files[i].ino)
                        FAIL(-ESTALE, "'%s' changed while importing", files[i].name);

                r = install_file_open(&f, files_fd, files[i].name, limits->max_file_size, seal);
                if (r < 0)
                        FAIL(r, "cannot create '%s' in staging: %s", files[i].name, strerror(-r));
                r = install_copy_fd(&f, fd, copy_progress, &cp);
                if (r >= 0)
                        r = install_file_finish(&f, meta->files[i].sha256);
                meta->files[i].size = f.plain_bytes;
                meta->files[i].stored_size = f.stored_bytes;
                install_file_done(&f);
                if (r < 0)
                        FAIL(r, "cannot copy '%s': %s", files[i].name, strerror(-r));
                if (meta->files[i].size != files[i].size)
                        FAIL(-ESTALE, "'%s' changed size while importing", files[i].name);
                meta->files[i].name = TAKE_PTR(files[i].name);
                meta->n_files++;
                meta->total_size += meta->files[i].size;
        }
        meta->installed = now_realtime_usec();

        r = store_commit(s, staging, meta, NULL, 0);
        if (r == -EEXIST)
                FAIL(r, "version %s already exists in the store", id);
        if (r < 0)
                FAIL(r, "cannot commit version %s: %s", id, strerror(-r));
        if (ret_meta)
                *ret_meta = TAKE_PTR(meta);
        r = 0;
out:
        if (r < 0 && staging)
                (void) store_staging_remove(s, staging);
        if (d)
                closedir(d);
        for (size_t i = 0; i < n_files; i++)
                free(files[i].name);
        free(files);
        return r;
#undef FAIL
}

static int cmp_ids(const void *a, const void *b) {
        return version_id_compare(*(char *const *) a, *(char *const *) b);
}

int store_list(Store *s, char ***ret_ids) {
        _cleanup_(strv_freep) char **ids = NULL;
        struct dirent *de;
        DIR *d;
        int fd;

        fd = dup(s->versions_fd);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d);
        while ((de = readdir(d))) {
                if (!version_id_is_valid(de->d_name))
                        continue; /* ".", "..", and directories being removed (".gc-*") */
                if (faccessat(s->versions_fd, de->d_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (strv_extend(&ids, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
        }
        closedir(d);
        if (!ids && !(ids = calloc(1, sizeof(char *))))
                return -ENOMEM;
        qsort(ids, strv_length(ids), sizeof(char *), cmp_ids);
        *ret_ids = TAKE_PTR(ids);
        return 0;
}

int store_next_id(Store *s, char **ret) {
        _cleanup_(strv_freep) char **ids = NULL;
        uint64_t max = 0;
        int r;

        r = store_list(s, &ids);
        if (r < 0)
                return r;
        STRV_FOREACH(id, ids)
                max = MAX(max, version_id_release(*id));
        return asprintf(ret, "%" PRIu64, max + 1) < 0 ? -ENOMEM : 0;
}

int store_verify(Store *s, const char *id, bool full, StoreProgressFn progress, void *userdata, char *reason,
                 size_t reason_size) {
        _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
        _cleanup_close_ int vfd = -EBADF, ffd = -EBADF;
        uint64_t done = 0;
        int r;

        if (!version_id_is_valid(id)) {
                snprintf(reason, reason_size, "invalid version id '%s'", id);
                return -EINVAL;
        }
        vfd = open_dir_at(s->versions_fd, id, false, 0);
        if (vfd < 0) {
                snprintf(reason, reason_size, "version %s is not in the store", id);
                return vfd == -ENOENT ? -ENOENT : vfd;
        }
        r = version_meta_load(s->dirfd, id, &meta);
        if (r < 0) {
                snprintf(reason, reason_size, "version %s: meta.json unreadable: %s", id, strerror(-r));
                return r == -ENOENT ? -EBADMSG : r;
        }
        ffd = open_dir_at(vfd, "files", false, 0);
        if (ffd < 0) {
                snprintf(reason, reason_size, "version %s has no files/ directory", id);
                return -EBADMSG;
        }
        for (size_t i = 0; i < meta->n_files; i++) {
                const VersionFile *f = &meta->files[i];
                _cleanup_close_ int fd = -EBADF;
                struct stat st;

                _cleanup_free_ char *stored = meta->sealed ? xasprintf("%s%s", f->name, SEALED_SUFFIX)
                                                           : strdup(f->name);
                if (!stored)
                        return -ENOMEM;
                fd = openat(ffd, stored, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        snprintf(reason, reason_size, "version %s: '%s' is missing", id, f->name);
                        return -EBADMSG;
                }
                if ((uint64_t) st.st_size != f->stored_size) {
                        snprintf(reason, reason_size, "version %s: '%s' has %" PRIu64 " bytes, expected %" PRIu64, id,
                                 f->name, (uint64_t) st.st_size, f->stored_size);
                        return -EBADMSG;
                }
                if (full && !meta->sealed) {
                        uint8_t digest[SHA256_DIGEST_SIZE];

                        (void) posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                        r = sha256_fd(fd, digest, NULL);
                        if (r < 0) {
                                snprintf(reason, reason_size, "version %s: cannot read '%s': %s", id, f->name,
                                         strerror(-r));
                                return r;
                        }
                        if (memcmp(digest, f->sha256, SHA256_DIGEST_SIZE) != 0) {
                                snprintf(reason, reason_size, "version %s: '%s' does not match its SHA-256 digest", id,
                                         f->name);
                                return -EBADMSG;
                        }
                        done += f->size;
                        if (progress)
                                progress(userdata, "verify", done, meta->total_size);
                }
        }
        return 0;
}

int store_serve_target(Store *s, const char *id, bool sealed, char **ret) {
        if (sealed)
                return asprintf(ret, "%s/plain/%s/%s", s->runtime, s->model, id) < 0 ? -ENOMEM : 0;
        return asprintf(ret, "%s/versions/%s/files", s->path, id) < 0 ? -ENOMEM : 0;
}

int store_activate(Store *s, const char *to, const char *from, const char *serve_target) {
        char target[PATH_MAX];
        struct stat st;
        int r;

        if (!version_id_is_valid(to) || (from && !version_id_is_valid(from)))
                return -EINVAL;
        if (fstatat(s->versions_fd, to, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                return -ENOENT;

        if (from && !streq(from, to)) {
                snprintf(target, sizeof(target), "versions/%s", from);
                r = symlink_atomic_at(target, s->dirfd, "previous");
                if (r < 0)
                        return r;
        }
        snprintf(target, sizeof(target), "versions/%s", to);
        r = symlink_atomic_at(target, s->dirfd, "current");
        if (r < 0)
                return r;
        /* The model server's view changes last, once the store agrees. */
        return symlink_atomic_at(serve_target, s->serve_fd, s->model);
}

static uint64_t dir_size_at(int parent_fd, const char *name) {
        _cleanup_close_ int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        uint64_t total = 0;
        struct dirent *de;
        DIR *d;

        if (fd < 0)
                return 0;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        total += dir_size_at(dirfd(d), de->d_name);
                else
                        total += (uint64_t) st.st_blocks * 512;
        }
        closedir(d);
        return total;
}

/* Take a directory out of sight atomically, then delete it at leisure. */
static int remove_version_dir(int dirfd, const char *name) {
        char tmp[NAME_MAX + 1];
        int r;

        snprintf(tmp, sizeof(tmp), ".gc-%s", name);
        r = FAULT_POINT("gc-rename");
        if (r < 0)
                return r;
        if (renameat(dirfd, name, dirfd, tmp) < 0)
                return -errno;
        r = fsync_directory_at(dirfd, NULL);
        if (r < 0)
                return r;
        r = FAULT_POINT("gc-remove");
        if (r < 0)
                return r;
        return rm_rf_at(dirfd, tmp);
}

/* Leftovers of an interrupted gc: already out of sight, finish deleting them. */
static void remove_gc_leftovers(int dirfd) {
        _cleanup_(strv_freep) char **names = NULL;
        struct dirent *de;
        int fd = dup(dirfd);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        rewinddir(d);
        /* Only what the agent itself leaves: gc directories and the temporaries of its own files
         * and links. The daemon writes state.json here too (".#state.json.*"): not ours to touch
         * while it may be mid-write. */
        while ((de = readdir(d)))
                if (startswith(de->d_name, ".gc-") ||
                    (startswith(de->d_name, ".#") && !startswith(de->d_name, ".#state.json.")))
                        (void) strv_extend(&names, de->d_name);
        closedir(d);
        STRV_FOREACH(n, names)
                (void) rm_rf_at(dirfd, *n);
}

/* symlink_atomic_at() leaves ".#<name>.<16 hex digits>" behind when the process dies between its
 * symlinkat() and renameat(). serve/ is shared by every model, and other models' agents may be
 * swapping their links right now: remove only this model's temporaries, matched exactly. */
static void remove_serve_temporaries(Store *s) {
        _cleanup_(strv_freep) char **names = NULL;
        struct dirent *de;
        int fd = dup(s->serve_fd);
        DIR *d;

        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        rewinddir(d);
        while ((de = readdir(d))) {
                const char *p = startswith(de->d_name, ".#");

                p = p ? startswith(p, s->model) : NULL;
                if (p && p[0] == '.' && strlen(p + 1) == 16 && strspn(p + 1, "0123456789abcdef") == 16)
                        (void) strv_extend(&names, de->d_name);
        }
        closedir(d);
        STRV_FOREACH(n, names)
                (void) unlinkat(s->serve_fd, *n, 0);
}

int store_gc(Store *s, unsigned keep, char *const *protect, bool keep_previous_plain, json_t **ret_removed,
             uint64_t *ret_freed) {
        _cleanup_(strv_freep) char **ids = NULL, **plain = NULL;
        _cleanup_free_ char *current = NULL, *previous = NULL;
        json_t *removed = NULL;
        uint64_t freed = 0;
        size_t n;
        unsigned kept = 0;
        int r;

        remove_gc_leftovers(s->versions_fd);
        r = store_list(s, &ids);
        if (r < 0)
                return r;
        (void) store_read_link(s->dirfd, "current", &current);
        (void) store_read_link(s->dirfd, "previous", &previous);

        removed = json_array();
        if (!removed)
                return -ENOMEM;
        n = strv_length(ids);
        /* Newest first: the protected ones count towards keep but are never removed. A derived
         * version's release parent is protected with it: it is where a failed gate rolls back to,
         * and what a re-compression starts from. */
        for (size_t i = n; i > 0; i--) {
                const char *id = ids[i - 1];
                bool protected = streq_ptr(id, current) || streq_ptr(id, previous) || strv_contains(protect, id);

                for (size_t k = 0; k < n && !protected; k++) {
                        bool prot_k = streq_ptr(ids[k], current) || streq_ptr(ids[k], previous) ||
                                      strv_contains(protect, ids[k]);
                        if (prot_k && version_id_is_derived(ids[k]) && !version_id_is_derived(id) &&
                            version_id_release(ids[k]) == version_id_release(id))
                                protected = true;
                }
                uint64_t size;

                if (protected || kept < keep) {
                        kept++;
                        continue;
                }
                size = dir_size_at(s->versions_fd, id);
                r = remove_version_dir(s->versions_fd, id);
                if (r < 0) {
                        json_decref(removed);
                        return r;
                }
                freed += size;
                json_array_append_new(removed, json_string(id));
        }

        /* Plaintext on tmpfs is memory: keep only what may be served next. */
        {
                struct dirent *de;
                int fd = dup(s->plain_fd);
                DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

                if (!d)
                        safe_close(fd);
                else {
                        rewinddir(d);
                        while ((de = readdir(d)))
                                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                                    !streq_ptr(de->d_name, current) &&
                                    !(keep_previous_plain && streq_ptr(de->d_name, previous)))
                                        (void) strv_extend(&plain, de->d_name);
                        closedir(d);
                }
                STRV_FOREACH(p, plain) {
                        freed += dir_size_at(s->plain_fd, *p);
                        (void) rm_rf_at(s->plain_fd, *p);
                }
        }
        if (ret_removed)
                *ret_removed = removed;
        else
                json_decref(removed);
        if (ret_freed)
                *ret_freed = freed;
        return 0;
}

int store_reconcile(Store *s, json_t **ret_report) {
        _cleanup_(strv_freep) char **ids = NULL, **staging = NULL;
        _cleanup_free_ char *current = NULL, *previous = NULL, *serve_target = NULL;
        json_t *report, *removed, *fixed, *versions;
        char linkbuf[PATH_MAX];
        struct dirent *de;
        DIR *d;
        int fd, r;

        report = json_object();
        removed = json_array();
        fixed = json_array();
        versions = json_array();
        if (!report || !removed || !fixed || !versions) {
                json_decref(report);
                json_decref(removed);
                json_decref(fixed);
                json_decref(versions);
                return -ENOMEM;
        }
        json_object_set_new(report, "staging_removed", removed);
        json_object_set_new(report, "fixed", fixed);
        json_object_set_new(report, "versions", versions);

        /* Abandoned work: imports and re-compressions start over; downloads (fetch-*) resume. */
        fd = dup(s->staging_fd);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d)
                safe_close(fd);
        else {
                rewinddir(d);
                while ((de = readdir(d)))
                        if (!streq(de->d_name, ".") && !streq(de->d_name, "..") && !startswith(de->d_name, "fetch-"))
                                (void) strv_extend(&staging, de->d_name);
                closedir(d);
        }
        STRV_FOREACH(n, staging) {
                (void) rm_rf_at(s->staging_fd, *n);
                json_array_append_new(removed, json_string(*n));
        }
        remove_gc_leftovers(s->versions_fd);
        remove_gc_leftovers(s->dirfd);
        remove_serve_temporaries(s);

        r = store_list(s, &ids);
        if (r < 0)
                goto fail;
        STRV_FOREACH(id, ids)
                json_array_append_new(versions, json_string(*id));

        r = store_read_link(s->dirfd, "current", &current);
        if (r >= 0 && !strv_contains(ids, current)) {
                /* Dangling: cannot happen through our own steps; say so and let the daemon decide. */
                json_array_append_new(fixed, json_sprintf("current pointed at missing version %s", current));
                (void) unlinkat(s->dirfd, "current", 0);
                current = mfree(current);
        }
        r = store_read_link(s->dirfd, "previous", &previous);
        if (r >= 0 && !strv_contains(ids, previous)) {
                json_array_append_new(fixed, json_sprintf("previous pointed at missing version %s", previous));
                (void) unlinkat(s->dirfd, "previous", 0);
                previous = mfree(previous);
        }

        /* serve/<model> must show what current says (a crash between the two flips). */
        if (current) {
                _cleanup_(version_meta_freep) VersionMeta *meta = NULL;
                ssize_t k;

                if (version_meta_load(s->dirfd, current, &meta) >= 0 &&
                    store_serve_target(s, current, meta->sealed, &serve_target) >= 0) {
                        k = readlinkat(s->serve_fd, s->model, linkbuf, sizeof(linkbuf) - 1);
                        if (k >= 0)
                                linkbuf[k] = 0;
                        /* A sealed version needs its plaintext, which only an activation makes;
                         * report it instead of pointing at nothing. */
                        if (meta->sealed && faccessat(s->plain_fd, current, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
                                json_object_set_new(report, "needs_activation", json_true());
                        else if (k < 0 || !streq(linkbuf, serve_target)) {
                                r = symlink_atomic_at(serve_target, s->serve_fd, s->model);
                                if (r < 0)
                                        goto fail;
                                json_array_append_new(fixed, json_sprintf("serve/%s now points at version %s",
                                                                          s->model, current));
                        }
                }
        }
        json_object_set_new(report, "current", current ? json_string(current) : json_null());
        json_object_set_new(report, "previous", previous ? json_string(previous) : json_null());
        *ret_report = report;
        return 0;
fail:
        json_decref(report);
        return r;
}
