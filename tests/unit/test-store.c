/* SPDX-License-Identifier: Apache-2.0 */

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "test-util.h"

#include "fileio.h"
#include "store.h"
#include "strv.h"

static char *top;

static void write_file(const char *dir, const char *name, const char *content) {
        _cleanup_free_ char *p = path_join(dir, name);
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(loop_write(fd, content, strlen(content)), 0);
}

static char *make_source(const char *name) {
        char *d = path_join(top, name);
        assert_int_equal(mkdir_p(d, 0755), 0);
        write_file(d, "model.safetensors", "weights weights weights");
        write_file(d, "config.json", "{\"layers\": 2}");
        return d;
}

/* Each test has a store of its own (its own state and runtime directories). */
static Store *open_store(const char *test) {
        _cleanup_free_ char *base = path_join(top, test), *state = path_join(base, "state"),
                            *run = path_join(base, "run");
        Store *s = NULL;
        assert_int_equal(store_open(state, run, "m", &s), 0);
        return s;
}

static const StoreLimits limits = {
        .max_version_size = 1024 * 1024,
        .max_file_size = 1024 * 1024,
        .max_files = 10,
        .min_free = 0,
};

static void import_ok(Store *s, const char *src, const char *id) {
        char reason[512] = "";
        VersionMeta *meta = NULL;
        int r = store_import(s, src, id, &limits, NULL, NULL, NULL, &meta, reason, sizeof(reason));
        if (r < 0)
                fail_msg("import %s failed: %s", id, reason);
        assert_string_equal(meta->id, id);
        assert_int_equal(meta->n_files, 2);
        /* Sorted by name, digests of the content. */
        assert_string_equal(meta->files[0].name, "config.json");
        version_meta_free(meta);
}

static void expect_import_refused(Store *s, const char *src, const StoreLimits *lim, int error, const char *needle) {
        char reason[512] = "";
        _cleanup_(strv_freep) char **ids = NULL, **before = NULL;
        int r;

        assert_int_equal(store_list(s, &before), 0);
        r = store_import(s, src, "99", lim, NULL, NULL, NULL, NULL, reason, sizeof(reason));
        if (r != error || !strstr(reason, needle))
                fail_msg("expected %d '%s', got %d '%s'", error, needle, r, reason);
        /* Refused means nothing kept: no version, no staging. */
        assert_int_equal(store_list(s, &ids), 0);
        assert_int_equal(strv_length(ids), strv_length(before));
        assert_int_equal(faccessat(s->staging_fd, "import-99", F_OK, 0), -1);
}

static void test_import_and_refusals(void **state) {
        _cleanup_(store_freep) Store *s = open_store("refusals");
        _cleanup_free_ char *src = make_source("src"), *bad = NULL;
        StoreLimits small = limits;

        import_ok(s, src, "1");
        {
                char reason[256] = "";
                assert_int_equal(store_import(s, src, "1", &limits, NULL, NULL, NULL, NULL, reason, sizeof(reason)),
                                 -EEXIST);
                assert_non_null(strstr(reason, "already exists"));
                assert_int_equal(store_import(s, src, "01", &limits, NULL, NULL, NULL, NULL, reason, sizeof(reason)),
                                 -EINVAL);
                assert_int_equal(store_import(s, src, "../1", &limits, NULL, NULL, NULL, NULL, reason, sizeof(reason)),
                                 -EINVAL);
        }

        bad = make_source("symlink");
        assert_int_equal(symlinkat("/etc/passwd", AT_FDCWD, "/dev/null") < 0, 1); /* sanity: no clobbering */
        {
                _cleanup_free_ char *l = path_join(bad, "evil");
                assert_int_equal(symlink("/etc/passwd", l), 0);
        }
        expect_import_refused(s, bad, &limits, -ELOOP, "refusing symlink 'evil'");
        bad = mfree(bad);

        bad = make_source("subdir");
        {
                _cleanup_free_ char *d = path_join(bad, "tokenizer");
                assert_int_equal(mkdir(d, 0755), 0);
        }
        expect_import_refused(s, bad, &limits, -EISDIR, "refusing subdirectory 'tokenizer'");
        bad = mfree(bad);

        bad = make_source("fifo");
        {
                _cleanup_free_ char *f = path_join(bad, "pipe");
                assert_int_equal(mkfifo(f, 0644), 0);
        }
        expect_import_refused(s, bad, &limits, -EPERM, "not a regular file");
        bad = mfree(bad);

        bad = make_source("ctrl");
        write_file(bad, "bad\nname", "x");
        expect_import_refused(s, bad, &limits, -EINVAL, "control characters");
        bad = mfree(bad);

        small.max_files = 1;
        expect_import_refused(s, src, &small, -E2BIG, "more than 1 files");
        small = limits;
        small.max_file_size = 5;
        expect_import_refused(s, src, &small, -EFBIG, "larger than the limit");
        small = limits;
        small.max_version_size = 30;
        expect_import_refused(s, src, &small, -EFBIG, "storage.max_version_size");

        /* Not enough free space: checked before anything is copied. */
        setenv("MODELKEEPER_TEST_FREE_BYTES", "1000", 1);
        small = limits;
        small.min_free = 512;
        expect_import_refused(s, src, &small, -ENOSPC, "not enough free space");
        unsetenv("MODELKEEPER_TEST_FREE_BYTES");

        bad = path_join(top, "empty");
        assert_int_equal(mkdir(bad, 0755), 0);
        expect_import_refused(s, bad, &limits, -ENODATA, "contains no files");
        bad = mfree(bad);
}

static char *readlink_str(int dirfd, const char *name) {
        char buf[4096];
        ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf) - 1);
        if (n < 0)
                return NULL;
        buf[n] = 0;
        return strdup(buf);
}

static void activate(Store *s, const char *to, const char *from) {
        _cleanup_free_ char *target = NULL;
        assert_int_equal(store_serve_target(s, to, false, &target), 0);
        assert_int_equal(store_activate(s, to, from, target), 0);
}

static void test_activate_rollback_gc(void **state) {
        _cleanup_(store_freep) Store *s = open_store("activate");
        _cleanup_free_ char *src = make_source("src2"), *cur = NULL, *prev = NULL, *serve = NULL;
        _cleanup_(strv_freep) char **ids = NULL;
        char reason[256];
        json_t *removed = NULL;
        uint64_t freed = 0;
        const char *protect[] = {"3", NULL};

        for (int i = 1; i <= 5; i++) {
                char id[8];
                snprintf(id, sizeof(id), "%d", i);
                import_ok(s, src, id);
        }
        activate(s, "4", NULL);
        activate(s, "5", "4");
        /* Idempotent: the same activation again changes nothing. */
        activate(s, "5", "4");
        cur = readlink_str(s->dirfd, "current");
        prev = readlink_str(s->dirfd, "previous");
        serve = readlink_str(s->serve_fd, "m");
        assert_string_equal(cur, "versions/5");
        assert_string_equal(prev, "versions/4");
        assert_non_null(strstr(serve, "/versions/5/files"));

        assert_int_equal(store_activate(s, "9", "5", "/x"), -ENOENT);

        /* keep 1: current (5) and previous (4) and the protected 3 stay; 2 and 1 go. */
        assert_int_equal(store_gc(s, 1, (char *const *) protect, false, &removed, &freed), 0);
        assert_int_equal(json_array_size(removed), 2);
        assert_true(freed > 0);
        json_decref(removed);
        assert_int_equal(store_list(s, &ids), 0);
        assert_int_equal(strv_length(ids), 3);
        assert_string_equal(ids[0], "3");

        /* Verification catches a changed byte (size and digest). */
        assert_int_equal(store_verify(s, "5", true, NULL, NULL, reason, sizeof(reason)), 0);
        {
                _cleanup_free_ char *p = NULL;
                assert_true(asprintf(&p, "%s/versions/4/files/config.json", s->path) > 0);
                _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
                assert_true(fd >= 0);
                assert_int_equal(pwrite(fd, "X", 1, 0), 1);
        }
        assert_int_equal(store_verify(s, "4", false, NULL, NULL, reason, sizeof(reason)), 0);
        assert_int_equal(store_verify(s, "4", true, NULL, NULL, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "does not match its SHA-256 digest"));
        assert_int_equal(store_verify(s, "42", true, NULL, NULL, reason, sizeof(reason)), -ENOENT);
}

static void test_reconcile(void **state) {
        _cleanup_(store_freep) Store *s = open_store("reconcile");
        _cleanup_free_ char *src = make_source("src3"), *serve = NULL;
        json_t *report = NULL;
        _cleanup_close_ int a = -EBADF, b = -EBADF;

        import_ok(s, src, "10");
        import_ok(s, src, "11");
        activate(s, "10", NULL);
        /* A crash between the current flip and the serve flip. */
        assert_int_equal(symlink_atomic_at("versions/11", s->dirfd, "current"), 0);
        /* Abandoned work of both kinds, and a gc that died half-way. */
        assert_int_equal(store_staging_open(s, "import-12", true, &a, NULL), 0);
        assert_int_equal(store_staging_open(s, "fetch-13", true, &b, NULL), 0);
        assert_int_equal(mkdirat(s->versions_fd, ".gc-3", 0700), 0);
        /* An agent killed between symlinkat() and renameat() of serve/m; the look-alikes belong
         * to other models (whose agents may be swapping their links right now) or to nobody. */
        assert_int_equal(symlinkat("x", s->serve_fd, ".#m.0123456789abcdef"), 0);
        assert_int_equal(symlinkat("x", s->serve_fd, ".#mm.0123456789abcdef"), 0);
        assert_int_equal(symlinkat("x", s->serve_fd, ".#m.x.0123456789abcdef"), 0);
        assert_int_equal(symlinkat("x", s->serve_fd, ".#m.0123"), 0);

        assert_int_equal(store_reconcile(s, &report), 0);
        assert_string_equal(json_string_value(json_object_get(report, "current")), "11");
        assert_int_equal(json_array_size(json_object_get(report, "staging_removed")), 1);
        assert_int_equal(json_array_size(json_object_get(report, "fixed")), 1);
        json_decref(report);
        serve = readlink_str(s->serve_fd, "m");
        assert_non_null(strstr(serve, "/versions/11/files"));
        assert_int_equal(faccessat(s->staging_fd, "fetch-13", F_OK, 0), 0);    /* resumable */
        assert_int_equal(faccessat(s->staging_fd, "import-12", F_OK, 0), -1);
        assert_int_equal(faccessat(s->versions_fd, ".gc-3", F_OK, 0), -1);
        assert_int_equal(faccessat(s->serve_fd, ".#m.0123456789abcdef", F_OK, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(faccessat(s->serve_fd, ".#mm.0123456789abcdef", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(faccessat(s->serve_fd, ".#m.x.0123456789abcdef", F_OK, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(faccessat(s->serve_fd, ".#m.0123", F_OK, AT_SYMLINK_NOFOLLOW), 0);

        /* A second run finds nothing to do. */
        assert_int_equal(store_reconcile(s, &report), 0);
        assert_int_equal(json_array_size(json_object_get(report, "fixed")), 0);
        json_decref(report);
}

static bool on_memory_fs(const char *path) {
        struct statfs sf;
        return statfs(path, &sf) == 0 &&
               ((uint32_t) sf.f_type == TMPFS_MAGIC || (uint32_t) sf.f_type == RAMFS_MAGIC);
}

/* A store whose runtime directory is under base (the state directory stays in the test's). */
static Store *open_store_runtime(const char *test, const char *base) {
        _cleanup_free_ char *st = path_join(top, test), *state = path_join(st, "state");
        _cleanup_free_ char *run = path_join(base, "run");
        Store *s = NULL;
        assert_int_equal(store_open(state, run, "m", &s), 0);
        return s;
}

static void test_plain_check(void **state) {
        char reason[512] = "";

        /* On tmpfs: allowed, as long as it fits. */
        if (on_memory_fs("/dev/shm")) {
                _cleanup_free_ char *shm = strdup("/dev/shm/mk-test-XXXXXX");
                _cleanup_(store_freep) Store *s = NULL;

                assert_non_null(mkdtemp(shm));
                s = open_store_runtime("plain-tmpfs", shm);
                assert_int_equal(store_plain_check(s, 4096, true, "version 1", reason, sizeof(reason)), 0);

#if ENABLE_FAULT_INJECTION
                /* An (injected) tmpfs of 20 MiB: 1 MiB fits beside the 16 MiB margin, 8 MiB does not. */
                setenv("MODELKEEPER_TEST_PLAIN_FREE_BYTES", "20MiB", 1);
                assert_int_equal(store_plain_check(s, 1 * MIB, true, "v1", reason, sizeof(reason)), 0);
                assert_int_equal(store_plain_check(s, 8 * MIB, true, "v2", reason, sizeof(reason)), -ENOSPC);
                assert_non_null(strstr(reason, "not enough memory-backed space in "));
                assert_non_null(strstr(reason, "for the plaintext of v2: need 24.1MiB (8.0MiB plus a margin "
                                               "of 16.1MiB), have 20.0MiB"));
                /* Overflow-proof. */
                assert_int_equal(store_plain_check(s, UINT64_MAX - 5, true, "v3", reason, sizeof(reason)),
                                 -ENOSPC);
                unsetenv("MODELKEEPER_TEST_PLAIN_FREE_BYTES");
#endif
                (void) rm_rf_at(AT_FDCWD, shm);
        } else
                print_message("SKIP: /dev/shm is not a tmpfs here\n");

        /* On a disk: plaintext of sealed weights is refused, naming the file system; other
         * plaintext (an unsealed model's, already on disk) is not. */
        {
                const char *disk = on_memory_fs(top) ? "/var/tmp" : top;
                _cleanup_free_ char *d = path_join(disk, "mk-test-disk-XXXXXX");
                _cleanup_(store_freep) Store *s = NULL;

                if (on_memory_fs(disk)) {
                        print_message("SKIP: no disk-backed directory to test with\n");
                        return;
                }
                assert_non_null(mkdtemp(d));
                s = open_store_runtime("plain-disk", d);
                assert_int_equal(store_plain_check(s, 4096, true, "v1", reason, sizeof(reason)), -EMEDIUMTYPE);
                assert_non_null(strstr(reason, "refusing to write the plaintext of v1 to "));
                assert_non_null(strstr(reason, "not on a memory-backed file system (tmpfs or ramfs)"));
                assert_null(strstr(reason, "tmpfs,")); /* names the actual type */
                assert_true(strstr(reason, "it is on ext") || strstr(reason, "it is on xfs") ||
                            strstr(reason, "it is on btrfs") || strstr(reason, "it is on overlayfs") ||
                            strstr(reason, "it is on file system type 0x"));
                assert_int_equal(store_plain_check(s, 4096, false, "v1", reason, sizeof(reason)), 0);
                (void) rm_rf_at(AT_FDCWD, d);
        }
}

static void test_version_ids(void **state) {
        assert_true(version_id_is_valid("1"));
        assert_true(version_id_is_valid("42~int8"));
        assert_true(version_id_is_valid("0"));
        assert_false(version_id_is_valid("01"));
        assert_false(version_id_is_valid(""));
        assert_false(version_id_is_valid("~int8"));
        assert_false(version_id_is_valid("42~"));
        assert_false(version_id_is_valid("42~a/b"));
        assert_false(version_id_is_valid("1234567890123456789"));
        assert_true(version_id_compare("9", "10") < 0);
        assert_true(version_id_compare("10", "10~int8") < 0);
        assert_true(version_id_compare("10~fp16", "10~int8") < 0);
        assert_true(version_id_compare("11", "10~int8") > 0);
}

static int setup(void **state) {
        top = test_mkdtemp();
        return 0;
}

static int teardown(void **state) {
        (void) rm_rf_at(AT_FDCWD, top);
        free(top);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_version_ids),
                cmocka_unit_test(test_import_and_refusals),
                cmocka_unit_test(test_activate_rollback_gc),
                cmocka_unit_test(test_reconcile),
                cmocka_unit_test(test_plain_check),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
