/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The parsers of agent/fetch.c that see server- or release-controlled text: Content-Range,
 * Retry-After, and fetch_join_url() (base URL from the config, relative URL from a signed but
 * still untrusted-in-shape release). The first byte picks the parser; for join the rest is
 * "base\nrelative". Beyond "no crash", the invariants the callers rely on are checked.
 */

#include "fetch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL;
        uint64_t a, b, c;
        char *nl;

        if (size < 1 || size > 16384)
                return 0;
        s = memdup_or_null(data + 1, size - 1); /* NUL-terminated */
        if (!s)
                return 0;

        switch (data[0] % 3) {
        case 0:
                if (fetch_parse_content_range(s, &a, &b, &c) >= 0)
                        assert_se(a <= b && (c == FETCH_SIZE_UNKNOWN || b < c));
                break;
        case 1:
                (void) fetch_parse_retry_after(s, 1795953600, &a);
                break;
        case 2: {
                _cleanup_free_ char *out = NULL;
                size_t origin;

                nl = strchr(s, '\n');
                if (!nl)
                        break;
                *nl = 0;
                if (fetch_join_url(s, nl + 1, &out) < 0) {
                        assert_se(!out);
                        break;
                }
                /* Never another origin: the result starts with the base's scheme://authority. */
                origin = strncasecmp(s, "https://", 8) == 0 ? 8 : 7;
                while (s[origin] && s[origin] != '/')
                        origin++;
                assert_se(strncasecmp(out, s, origin) == 0);
                assert_se(out[origin] == 0 || out[origin] == '/');
                /* Nothing that climbs or hides. */
                assert_se(!strstr(out + origin, "/../") && !strstr(out + origin, "/./"));
                assert_se(!strstr(out + origin, "//") && !strpbrk(out + origin, "?#%\\ @"));
                break;
        }
        }
        return 0;
}
