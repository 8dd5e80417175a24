/* SPDX-License-Identifier: Apache-2.0 */

#include <sys/socket.h>

#include "test-util.h"

#include "wire.h"

static int parse(const char *s, WireMessage *m) {
        return wire_message_parse(s, strlen(s), m);
}

static void test_good(void **state) {
        WireMessage m;

        assert_int_equal(parse("{\"type\":\"progress\",\"phase\":\"download\",\"done\":5,\"total\":10}", &m), 0);
        assert_int_equal(m.type, WIRE_PROGRESS);
        assert_string_equal(m.phase, "download");
        assert_int_equal(m.done, 5);
        assert_int_equal(m.total, 10);
        wire_message_done(&m);

        assert_int_equal(parse("{\"type\":\"result\",\"ok\":true,\"data\":{\"version\":\"3\"}}", &m), 0);
        assert_int_equal(m.type, WIRE_RESULT);
        assert_true(m.ok);
        assert_string_equal(json_string_value(json_object_get(m.data, "version")), "3");
        wire_message_done(&m);

        assert_int_equal(parse("{\"type\":\"result\",\"ok\":false,\"errno\":74,\"reason\":\"digest mismatch\"}", &m), 0);
        assert_false(m.ok);
        assert_int_equal(m.error, 74);
        assert_string_equal(m.reason, "digest mismatch");
        wire_message_done(&m);
}

static void test_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "not json",
                "[]",
                "{}",
                "{\"type\":\"reboot\"}",
                "{\"type\":\"progress\"}",
                "{\"type\":\"progress\",\"phase\":7}",
                "{\"type\":\"progress\",\"phase\":\"x\",\"done\":-1}",
                "{\"type\":\"progress\",\"phase\":\"x\",\"done\":\"5\"}",
                "{\"type\":\"progress\",\"phase\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                "{\"type\":\"progress\",\"phase\":\"a\\u0000b\"}",
                "{\"type\":\"result\"}",
                "{\"type\":\"result\",\"ok\":1}",
                "{\"type\":\"result\",\"ok\":false,\"errno\":0}",
                "{\"type\":\"result\",\"ok\":false,\"errno\":99999}",
                "{\"type\":\"result\",\"ok\":true,\"data\":[1]}",
                "{\"type\":\"result\",\"ok\":true,\"ok\":false}",
                "{\"type\":\"result\",\"ok\":true} trailing",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                WireMessage m;
                if (parse(bad[i], &m) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        }
}

static void test_roundtrip_over_socket(void **state) {
        int sv[2];
        char buf[WIRE_MESSAGE_MAX + 1];
        WireMessage m;
        ssize_t n;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(wire_send_progress(sv[0], "verify", 1, 2), 0);
        assert_int_equal(wire_send_result(sv[0], -EBADMSG, "bad signature", NULL), 0);
        n = recv(sv[1], buf, sizeof(buf), 0);
        assert_true(n > 0);
        assert_int_equal(wire_message_parse(buf, (size_t) n, &m), 0);
        assert_int_equal(m.type, WIRE_PROGRESS);
        n = recv(sv[1], buf, sizeof(buf), 0);
        assert_int_equal(wire_message_parse(buf, (size_t) n, &m), 0);
        assert_false(m.ok);
        assert_int_equal(m.error, EBADMSG);
        assert_string_equal(m.reason, "bad signature");
        close(sv[0]);
        close(sv[1]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_good),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_roundtrip_over_socket),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
