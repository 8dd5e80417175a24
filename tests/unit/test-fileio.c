/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include "fileio.h"

static void test_atomic_write(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp(), *buf = NULL;
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t n;
        struct stat st;

        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, "state.json", "{\"a\":1}", 7, 0600), 0);
        assert_int_equal(write_file_atomic_at(dfd, "state.json", "{\"a\":2}\n", 8, 0644), 0);
        assert_int_equal(read_full_file_at(dfd, "state.json", 1024, true, &buf, &n), 0);
        assert_int_equal(n, 8);
        assert_string_equal(buf, "{\"a\":2}\n");
        assert_int_equal(fstatat(dfd, "state.json", &st, 0), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(write_file_atomic_at(dfd, "a/b", "x", 1, 0600), -EINVAL);

        /* No temporary files are left behind. */
        assert_int_equal(rm_rf_at(dfd, "state.json"), 0);
        assert_int_equal(unlinkat(AT_FDCWD, dir, AT_REMOVEDIR), 0);
}

static void test_read_limits(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp(), *buf = NULL;
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        size_t n;

        assert_int_equal(write_file_atomic_at(dfd, "big", "0123456789", 10, 0600), 0);
        assert_int_equal(read_full_file_at(dfd, "big", 9, true, &buf, &n), -EFBIG);
        assert_null(buf);
        assert_int_equal(read_full_file_at(dfd, "big", 10, true, &buf, &n), 0);
        assert_int_equal(n, 10);
        assert_int_equal(symlinkat("big", dfd, "link"), 0);
        assert_int_equal(read_full_file_at(dfd, "link", 100, true, &buf, &n), -ELOOP);
        assert_int_equal(read_full_file_at(dfd, ".", 100, true, &buf, &n), -EISDIR);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
}

static void test_symlink_atomic_and_rm_rf(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp();
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char target[64];
        ssize_t k;
        _cleanup_free_ char *outside = test_mkdtemp();
        _cleanup_close_ int ofd = open(outside, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_int_equal(symlink_atomic_at("versions/1", dfd, "current"), 0);
        assert_int_equal(symlink_atomic_at("versions/2", dfd, "current"), 0);
        k = readlinkat(dfd, "current", target, sizeof(target) - 1);
        assert_true(k > 0);
        target[k] = 0;
        assert_string_equal(target, "versions/2");

        /* rm_rf never follows a symlink out of the tree. */
        assert_int_equal(write_file_atomic_at(ofd, "precious", "x", 1, 0600), 0);
        assert_int_equal(mkdirat(dfd, "tree", 0700), 0);
        assert_int_equal(symlinkat(outside, dfd, "tree/escape"), 0);
        assert_int_equal(rm_rf_at(dfd, "tree"), 0);
        assert_int_equal(faccessat(ofd, "precious", F_OK, 0), 0);
        assert_int_equal(rm_rf_at(AT_FDCWD, dir), 0);
        assert_int_equal(rm_rf_at(AT_FDCWD, outside), 0);
}

static void test_paths(void **state) {
        _cleanup_free_ char *a = path_join("/etc/", "/x"), *b = path_join("a", "b"), *c = path_dirname("/etc/x.yaml"),
                            *d = path_dirname("x.yaml"), *e = path_dirname("/x");
        assert_string_equal(a, "/etc/x");
        assert_string_equal(b, "a/b");
        assert_string_equal(c, "/etc");
        assert_string_equal(d, ".");
        assert_string_equal(e, "/");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_atomic_write),
                cmocka_unit_test(test_read_limits),
                cmocka_unit_test(test_symlink_atomic_and_rm_rf),
                cmocka_unit_test(test_paths),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
