/* SPDX-License-Identifier: Apache-2.0 */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <zlib.h>

#include "test-util.h"

#include "age-internal.h"
#include "age.h"
#include "bech32.h"
#include "hash.h"

/* The example keys of c2sp.org/age: an identity and its recipient. */
#define SPEC_IDENTITY  "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
#define SPEC_RECIPIENT "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"

/* ---- in-memory streams ---------------------------------------------------------------------- */

typedef struct MemReader {
        const uint8_t *data;
        size_t size, pos;
        size_t max_read; /* 0: no limit; else hand out at most this many bytes per call */
} MemReader;

static ssize_t mem_read(void *userdata, void *buf, size_t n) {
        MemReader *m = userdata;
        size_t k = MIN(n, m->size - m->pos);

        if (m->max_read > 0)
                k = MIN(k, m->max_read);
        memcpy(buf, m->data + m->pos, k);
        m->pos += k;
        return (ssize_t) k;
}

typedef struct MemWriter {
        uint8_t *data;
        size_t size, alloc;
        unsigned n_writes;
} MemWriter;

static int mem_write(void *userdata, const void *buf, size_t n) {
        MemWriter *m = userdata;

        if (m->size + n > m->alloc) {
                size_t a = MAX(m->alloc * 2, m->size + n + 1024);
                uint8_t *d = realloc(m->data, a);
                assert_non_null(d);
                m->data = d;
                m->alloc = a;
        }
        memcpy(m->data + m->size, buf, n);
        m->size += n;
        m->n_writes++;
        return 0;
}

static uint8_t *pattern(size_t size, unsigned seed) {
        uint8_t *p = malloc(size + 1);

        assert_non_null(p);
        for (size_t i = 0; i < size; i++)
                p[i] = (uint8_t) (i * 31 + (i >> 9) + seed * 7);
        return p;
}

/* ---- bech32 --------------------------------------------------------------------------------- */

static void test_bech32_bip173(void **state) {
        /* The valid and invalid Bech32 strings of BIP-173. */
        static const char *const valid[] = {
                "A12UEL5L",
                "a12uel5l",
                "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
                "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
                "11"
                "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
                "c8247j",
                "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
                "?1ezyfcl",
                /* Over BIP-173's 90 characters: age has no length limit (c2sp.org/age). */
                ("an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharacters"
                 "bio1569pvx"), /* one string (parentheses: not a missing comma, says clang) */
        };
        static const char *const invalid[] = {
                "\x20"
                "1nwldj5", /* HRP character out of range */
                "\x7f"
                "1axkwrx",
                "\x80"
                "1eym55h",
                "pzry9x0s0muk",  /* no separator */
                "1pzry9x0s0muk", /* empty HRP */
                "x1b4n0q5v",     /* invalid data character */
                "li1dgmt3",      /* too short checksum */
                "de1lg7wt\xff",  /* invalid character in checksum */
                "A1G7SGD8",      /* checksum calculated with upper-case HRP */
                "10a06t8",       /* empty HRP */
                "1qzzfhee",      /* empty HRP */
                "A12UeL5L",      /* mixed case */
                "a12uel5m",      /* bad checksum */
                "",
        };

        for (size_t i = 0; i < ELEMENTSOF(valid); i++) {
                _cleanup_free_ char *hrp = NULL;
                _cleanup_free_ uint8_t *data = NULL;
                size_t size = 0;

                if (bech32_decode(valid[i], &hrp, &data, &size) != 0)
                        fail_msg("refused valid %s", valid[i]);
        }
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                _cleanup_free_ char *hrp = NULL;
                _cleanup_free_ uint8_t *data = NULL;
                size_t size = 0;

                if (bech32_decode(invalid[i], &hrp, &data, &size) != -EINVAL)
                        fail_msg("accepted invalid #%zu", i);
        }
}

static void test_bech32_roundtrip(void **state) {
        uint8_t data[200];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 151 + 7);
        for (size_t n = 0; n <= sizeof(data); n++) {
                _cleanup_free_ char *s = NULL, *hrp = NULL;
                _cleanup_free_ uint8_t *out = NULL;
                size_t size = 0;

                assert_int_equal(bech32_encode("age", data, n, &s), 0);
                assert_int_equal(bech32_decode(s, &hrp, &out, &size), 0);
                assert_string_equal(hrp, "age");
                assert_int_equal(size, n);
                assert_memory_equal(out, data, n);
        }

        /* Non-zero padding bits: one byte is 8 bits in two 5-bit groups, 2 bits of padding. */
        {
                _cleanup_free_ char *s = NULL, *hrp = NULL;
                _cleanup_free_ uint8_t *out = NULL;
                size_t size;
                /* "a1" + "lu" + checksum computed over groups 31, 28: 0b11111 0b11100 = 0xff + 2
                 * zero bits is fine; 0b11101 would carry a 1 bit in the padding. */
                assert_int_equal(bech32_encode("a", (const uint8_t[]){0xff}, 1, &s), 0);
                assert_int_equal(bech32_decode(s, &hrp, &out, &size), 0);
                assert_int_equal(size, 1);
                assert_int_equal(out[0], 0xff);
        }

        /* Upper-case HRPs cannot be encoded directly (the result would be mixed case). */
        {
                char *s = NULL;
                assert_int_equal(bech32_encode("AGE", data, 4, &s), -EINVAL);
                assert_int_equal(bech32_encode("", data, 4, &s), -EINVAL);
                assert_null(s);
        }
}

/* Bech32 over arbitrary 5-bit groups, to construct strings with bad padding. */
static char *bech32_from_groups(const char *hrp, const uint8_t *groups, size_t n) {
        static const char charset[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
        static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
        size_t hl = strlen(hrp);
        uint8_t *v = malloc(2 * hl + 1 + n + 6);
        char *s = malloc(hl + 1 + n + 7);
        uint32_t chk = 1;
        size_t nv = 0;

        assert_non_null(v);
        assert_non_null(s);
        for (size_t i = 0; i < hl; i++)
                v[nv++] = (uint8_t) hrp[i] >> 5;
        v[nv++] = 0;
        for (size_t i = 0; i < hl; i++)
                v[nv++] = (uint8_t) hrp[i] & 31;
        memcpy(v + nv, groups, n);
        nv += n;
        memset(v + nv, 0, 6);
        nv += 6;
        for (size_t i = 0; i < nv; i++) {
                uint32_t b = chk >> 25;
                chk = ((chk & 0x1ffffff) << 5) ^ v[i];
                for (unsigned j = 0; j < 5; j++)
                        if ((b >> j) & 1)
                                chk ^= gen[j];
        }
        chk ^= 1;
        memcpy(s, hrp, hl);
        s[hl] = '1';
        for (size_t i = 0; i < n; i++)
                s[hl + 1 + i] = charset[groups[i]];
        for (unsigned i = 0; i < 6; i++)
                s[hl + 1 + n + i] = charset[(chk >> (5 * (5 - i))) & 31];
        s[hl + 1 + n + 6] = 0;
        free(v);
        return s;
}

static void test_bech32_padding(void **state) {
        _cleanup_free_ char *ok = bech32_from_groups("a", (const uint8_t[]){31, 28}, 2);
        _cleanup_free_ char *bad_bits = bech32_from_groups("a", (const uint8_t[]){31, 29}, 2);
        /* Three groups for one byte: 7 bits of padding, more than convertbits allows. */
        _cleanup_free_ char *too_long = bech32_from_groups("a", (const uint8_t[]){31, 28, 0}, 3);
        _cleanup_free_ char *hrp = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size;

        assert_int_equal(bech32_decode(ok, &hrp, &data, &size), 0);
        assert_int_equal(size, 1);
        assert_int_equal(bech32_decode(bad_bits, &hrp, &data, &size), -EINVAL);
        assert_int_equal(bech32_decode(too_long, &hrp, &data, &size), -EINVAL);
}

/* ---- keys ----------------------------------------------------------------------------------- */

static void test_keys_spec_example(void **state) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        char rs[AGE_RECIPIENT_STRING_SIZE], is[AGE_IDENTITY_STRING_SIZE];
        AgeRecipient r, r2;

        assert_int_equal(age_identity_from_string(SPEC_IDENTITY, &id), 0);
        age_identity_to_recipient(id, &r);
        age_recipient_to_string(&r, rs);
        assert_string_equal(rs, SPEC_RECIPIENT);
        age_identity_to_string(id, is);
        assert_string_equal(is, SPEC_IDENTITY);
        assert_int_equal(age_recipient_from_string(SPEC_RECIPIENT, &r2), 0);
        assert_memory_equal(r.key, r2.key, AGE_KEY_SIZE);
}

static void test_keys_invalid(void **state) {
        _cleanup_free_ char *short_key = NULL, *long_key = NULL, *other_hrp = NULL;
        char upper[sizeof(SPEC_RECIPIENT)], lower[sizeof(SPEC_IDENTITY)], bad[sizeof(SPEC_RECIPIENT)];
        AgeIdentity *id = NULL;
        uint8_t k[33] = {1, 2, 3};
        AgeRecipient r;

        /* Case: age wants lower-case recipients and upper-case identities. */
        for (size_t i = 0; i < sizeof(upper); i++)
                upper[i] = (char) toupper((unsigned char) SPEC_RECIPIENT[i]);
        for (size_t i = 0; i < sizeof(lower); i++)
                lower[i] = (char) tolower((unsigned char) SPEC_IDENTITY[i]);
        assert_int_equal(age_recipient_from_string(upper, &r), -EINVAL);
        assert_int_equal(age_identity_from_string(lower, &id), -EINVAL);
        assert_null(id);

        /* Mixed case. */
        assert_int_equal(age_recipient_from_string(
                                 "Age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj", &r),
                         -EINVAL);
        /* Bad checksum: one character changed. */
        memcpy(bad, SPEC_RECIPIENT, sizeof(bad));
        bad[10] = bad[10] == 'q' ? 'p' : 'q';
        assert_int_equal(age_recipient_from_string(bad, &r), -EINVAL);
        /* Wrong HRP: a recipient is not an identity and the other way round. */
        assert_int_equal(age_identity_from_string(SPEC_RECIPIENT, &id), -EINVAL);
        assert_int_equal(age_recipient_from_string(SPEC_IDENTITY, &r), -EINVAL);
        assert_int_equal(bech32_encode("age1pq", k, 32, &other_hrp), 0);
        assert_int_equal(age_recipient_from_string(other_hrp, &r), -EINVAL);
        /* Wrong length, with a valid checksum. */
        assert_int_equal(bech32_encode("age", k, 31, &short_key), 0);
        assert_int_equal(bech32_encode("age", k, 33, &long_key), 0);
        assert_int_equal(age_recipient_from_string(short_key, &r), -EINVAL);
        assert_int_equal(age_recipient_from_string(long_key, &r), -EINVAL);
        assert_int_equal(age_recipient_from_string("", &r), -EINVAL);
        assert_int_equal(age_recipient_from_string(" " SPEC_RECIPIENT, &r), -EINVAL);
        assert_int_equal(age_recipient_from_string(SPEC_RECIPIENT "\n", &r), -EINVAL);
}

static void test_keygen(void **state) {
        _cleanup_(age_identity_freep) AgeIdentity *a = NULL, *b = NULL, *c = NULL;
        char sa[AGE_IDENTITY_STRING_SIZE], sb[AGE_IDENTITY_STRING_SIZE];
        char *text = NULL;
        AgeRecipient ra, rc;

        assert_int_equal(age_keygen(&a), 0);
        assert_int_equal(age_keygen(&b), 0);
        age_identity_to_string(a, sa);
        age_identity_to_string(b, sb);
        assert_true(startswith(sa, "AGE-SECRET-KEY-1"));
        assert_string_not_equal(sa, sb);
        assert_int_equal(age_identity_from_string(sa, &c), 0);
        age_identity_to_recipient(a, &ra);
        age_identity_to_recipient(c, &rc);
        assert_memory_equal(ra.key, rc.key, AGE_KEY_SIZE);

        assert_int_equal(age_identity_format_file(a, 1764410400, &text), 0);
        {
                char rs[AGE_RECIPIENT_STRING_SIZE], expect[512];
                age_recipient_to_string(&ra, rs);
                snprintf(expect, sizeof(expect), "# created: 2025-11-29T10:00:00Z\n# public key: %s\n%s\n",
                         rs, sa);
                assert_string_equal(text, expect);
        }
        {
                _cleanup_(age_identities_freep) AgeIdentities *ids = NULL;
                assert_int_equal(age_identities_parse(text, strlen(text), &ids, NULL), 0);
                assert_int_equal(ids->n, 1);
        }
        age_secret_string_free(text);
}

static void test_identity_file(void **state) {
        _cleanup_free_ char *dir = test_mkdtemp();
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        AgeIdentities *ids = NULL;
        size_t line = 0;
        char buf[1024];

        /* age-keygen output, a second key, blank lines, CRLF, no final newline. */
        snprintf(buf, sizeof(buf),
                 "# created: 2025-11-29T10:00:00+01:00\n# public key: %s\n%s\n\n#another\r\n%s\r\n%s",
                 SPEC_RECIPIENT, SPEC_IDENTITY,
                 "AGE-SECRET-KEY-1KMAK0KQZH3WWC66737YCZN65WDHVDSZHLQ6EUDU2PR65HLHXYNYSW2RPU8",
                 SPEC_IDENTITY);
        assert_int_equal(age_identities_parse(buf, strlen(buf), &ids, &line), 0);
        assert_int_equal(ids->n, 3);
        ids = age_identities_free(ids);

        static const struct {
                const char *text;
                int error;
                size_t line;
        } bad[] = {
                {"", -ENOKEY, 0},
                {"# only a comment\n\n", -ENOKEY, 0},
                {"# c\n " SPEC_IDENTITY "\n", -EBADMSG, 2},
                {SPEC_IDENTITY " \n", -EBADMSG, 1},
                {SPEC_IDENTITY "\n\n" SPEC_RECIPIENT "\n", -EBADMSG, 3},
                {"AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEY\n", -EBADMSG,
                 1},
                {"age-secret-key-1gfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpyysjzgfpq4egaex\n", -EBADMSG,
                 1},
                {SPEC_IDENTITY "\r\r\n", -EBADMSG, 1},
                {"AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR\n",
                 -EPROTONOSUPPORT, 1},
                {"#\nAGE-PLUGIN-YUBIKEY-1QQQQQQ\n", -EPROTONOSUPPORT, 2},
                {"-----BEGIN AGE ENCRYPTED FILE-----\n", -EBADMSG, 1},
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                line = 0;
                if (age_identities_parse(bad[i].text, strlen(bad[i].text), &ids, &line) != bad[i].error)
                        fail_msg("case %zu: wrong error", i);
                assert_null(ids);
                assert_int_equal(line, bad[i].line);
        }
        /* A NUL inside a line. */
        {
                char t[sizeof(SPEC_IDENTITY)];
                memcpy(t, SPEC_IDENTITY, sizeof(t));
                t[20] = 0;
                assert_int_equal(age_identities_parse(t, sizeof(t) - 1, &ids, &line), -EBADMSG);
        }
        /* Too large. */
        {
                size_t n = AGE_IDENTITY_FILE_MAX + 1;
                _cleanup_free_ char *big = malloc(n);
                assert_non_null(big);
                memset(big, '#', n);
                assert_int_equal(age_identities_parse(big, n, &ids, &line), -EFBIG);
        }

        /* From files: a world-readable key is refused, a 0600 one loads, symlinks are not followed. */
        {
                _cleanup_close_ int fd = openat(dfd, "key.txt", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, SPEC_IDENTITY "\n", sizeof(SPEC_IDENTITY)),
                                 sizeof(SPEC_IDENTITY));
        }
        assert_int_equal(age_identities_load_at(dfd, "key.txt", &ids, &line), 0);
        assert_int_equal(ids->n, 1);
        ids = age_identities_free(ids);
        assert_int_equal(symlinkat("key.txt", dfd, "link.txt"), 0);
        assert_int_equal(age_identities_load_at(dfd, "link.txt", &ids, &line), -ELOOP);
        assert_int_equal(fchmodat(dfd, "key.txt", 0644, 0), 0);
        assert_int_equal(age_identities_load_at(dfd, "key.txt", &ids, &line), -EPERM);
        assert_int_equal(age_identities_load_at(dfd, ".", &ids, &line), -EISDIR);
        assert_int_equal(age_identities_load_at(dfd, "missing", &ids, &line), -ENOENT);

        assert_int_equal(unlinkat(dfd, "key.txt", 0), 0);
        assert_int_equal(unlinkat(dfd, "link.txt", 0), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* ---- base64, header ------------------------------------------------------------------------- */

static void test_base64(void **state) {
        static const struct {
                const char *s;
                int r;
                size_t n;
        } cases[] = {
                {"", 0, 0},          {"AA", 0, 1},          {"AB", -EINVAL, 0},  {"AAA", 0, 2},
                {"AAB", -EINVAL, 0}, {"AAAA", 0, 3},        {"A", -EINVAL, 0},   {"AA==", -EINVAL, 0},
                {"AA=", -EINVAL, 0}, {"AA\n", -EINVAL, 0},  {"A A", -EINVAL, 0}, {"-_", -EINVAL, 0},
                {"+/+/", 0, 3},      {"AAAAA", -EINVAL, 0},
        };
        uint8_t out[64], in[64];
        char enc[128];
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r = age_base64_decode(cases[i].s, strlen(cases[i].s), out, sizeof(out), &n);
                if (r != cases[i].r)
                        fail_msg("case '%s': %d", cases[i].s, r);
                if (r == 0)
                        assert_int_equal(n, cases[i].n);
        }
        assert_int_equal(age_base64_decode("AAAA", 4, out, 2, &n), -EINVAL);

        for (size_t len = 0; len <= sizeof(in); len++) {
                for (size_t i = 0; i < len; i++)
                        in[i] = (uint8_t) (i * 73 + len);
                assert_int_equal(age_base64_encode(in, len, enc), age_base64_encoded_size(len));
                assert_int_equal(age_base64_decode(enc, strlen(enc), out, sizeof(out), &n), 0);
                assert_int_equal(n, len);
                assert_memory_equal(in, out, len);
        }
}

/* The example header of c2sp.org/age. */
#define HDR_X25519   \
        "-> X25519 " \
        "XEl0dJ6y3C7KZkgmgWUicg63EyXJiwBJW8PdYJ/cYBE\nqRS0AMjdjPvZ/WT08U2KL4G+PIooA3hy38SvLpvaC1E\n"
#define HDR_MAC "--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s\n"
#define HDR_V1  "age-encryption.org/v1\n"

static int parse_str(const char *s, AgeHeader **ret) {
        return age_header_parse(s, strlen(s), ret, NULL);
}

static void test_header_parse(void **state) {
        static const char good[] = HDR_V1 HDR_X25519
                "-> grease\n\n-> a b c d\n"
                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n\n" HDR_MAC "PAYLOAD";
        AgeHeader *h = NULL;
        const char *reason = NULL;

        assert_int_equal(parse_str(good, &h), 0);
        assert_int_equal(h->n_stanzas, 3);
        assert_string_equal(h->stanzas[0].args[0], "X25519");
        assert_int_equal(h->stanzas[0].n_args, 2);
        assert_int_equal(h->stanzas[0].body_size, 32);
        assert_string_equal(h->stanzas[1].args[0], "grease");
        assert_int_equal(h->stanzas[1].body_size, 0);
        assert_null(h->stanzas[1].body);
        assert_int_equal(h->stanzas[2].n_args, 4);
        assert_null(h->stanzas[2].args[4]);
        assert_int_equal(h->stanzas[2].body_size, 48);
        assert_int_equal(h->size, strlen(good) - strlen("PAYLOAD"));
        assert_int_equal(h->mac_input_size, strlen(good) - strlen("PAYLOAD") - strlen(HDR_MAC) + 3);
        h = age_header_free(h);

        /* Every proper prefix is "incomplete", never an error; the whole header parses. */
        for (size_t n = 0; n < strlen(good) - strlen("PAYLOAD"); n++) {
                if (age_header_parse(good, n, &h, NULL) != -EAGAIN)
                        fail_msg("prefix %zu", n);
                assert_null(h);
        }

        static const char *const bad[] = {
                "x",
                "age-encryption.org/v2\n" HDR_X25519 HDR_MAC,
                "age-encryption.org/v1 \n" HDR_X25519 HDR_MAC,
                "age-encryption.org/v1\r\n" HDR_X25519 HDR_MAC,
                HDR_V1 HDR_MAC,                    /* no stanza */
                HDR_V1 "->\n\n" HDR_MAC,           /* no arguments */
                HDR_V1 "-> \n\n" HDR_MAC,          /* empty argument */
                HDR_V1 "->  a\n\n" HDR_MAC,        /* empty argument */
                HDR_V1 "-> a \n\n" HDR_MAC,        /* trailing space */
                HDR_V1 "->a\n\n" HDR_MAC,          /* no space */
                HDR_V1 "-> a\tb\n\n" HDR_MAC,      /* not VCHAR */
                HDR_V1 "-> a\xc3\xa9\n\n" HDR_MAC, /* not ASCII */
                HDR_V1 "-> a\n" HDR_MAC,           /* no final short body line */
                HDR_V1 "-> a\nAA==\n" HDR_MAC,     /* padding */
                HDR_V1 "-> a\nAB\n" HDR_MAC,       /* not canonical */
                HDR_V1 "-> a\nAA\r\n" HDR_MAC,     /* CR */
                HDR_V1
                "-> a\nQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQ\n" HDR_MAC, /* 65 */
                HDR_V1
                "-> a\nQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB\n" HDR_MAC, /* no
                                                                                                       short
                                                                                                     */
                HDR_V1 "-> a\n\n\n" HDR_MAC, /* two short lines */
                HDR_V1 "-> a\n\n--- \n",
                HDR_V1 "-> a\n\n---\n",
                HDR_V1 "-> a\n\n---HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s\n",
                HDR_V1 "-> a\n\n---  HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s\n",
                HDR_V1 "-> a\n\n--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s \n",
                HDR_V1 "-> a\n\n--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75t\n", /* not canonical */
                HDR_V1 "-> a\n\n--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75\n",  /* truncated */
                HDR_V1 "-> a\n\n--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s=\n",
                HDR_V1 "-> a\n\n--- HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s\r\n",
                HDR_V1 "-> a\n\n--> HK2NmOBN9Dpq0Gw6xMCuhFcQlQLvZ/wQUi/2scLG75s\n",
                HDR_V1 "-> a\n\nxx\n" HDR_MAC,
                HDR_V1 "\n",
                "\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                reason = NULL;
                if (age_header_parse(bad[i], strlen(bad[i]), &h, &reason) != -EBADMSG)
                        fail_msg("accepted bad #%zu", i);
                assert_null(h);
                assert_non_null(reason);
        }
}

static void test_header_limits(void **state) {
        _cleanup_free_ char *buf = malloc(AGE_HEADER_SIZE_MAX * 2);
        AgeHeader *h = NULL;
        const char *reason = NULL;
        size_t n;

        assert_non_null(buf);

        /* AGE_STANZAS_MAX stanzas are fine, one more is not. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                n = (size_t) sprintf(buf, HDR_V1);
                for (unsigned i = 0; i < AGE_STANZAS_MAX + extra; i++)
                        n += (size_t) sprintf(buf + n, "-> s%u\n\n", i);
                n += (size_t) sprintf(buf + n, HDR_MAC);
                assert_int_equal(age_header_parse(buf, n, &h, &reason), extra ? -EBADMSG : 0);
                h = age_header_free(h);
        }

        /* Arguments. */
        for (unsigned extra = 0; extra <= 1; extra++) {
                n = (size_t) sprintf(buf, HDR_V1 "->");
                for (unsigned i = 0; i < AGE_STANZA_ARGS_MAX + extra; i++)
                        n += (size_t) sprintf(buf + n, " a");
                n += (size_t) sprintf(buf + n, "\n\n" HDR_MAC);
                assert_int_equal(age_header_parse(buf, n, &h, &reason), extra ? -EBADMSG : 0);
                h = age_header_free(h);
        }

        /* A line over the limit fails even before its LF arrives. */
        n = (size_t) sprintf(buf, HDR_V1 "-> ");
        memset(buf + n, 'a', AGE_HEADER_LINE_MAX);
        n += AGE_HEADER_LINE_MAX;
        assert_int_equal(age_header_parse(buf, n, &h, &reason), -EBADMSG);
        assert_int_equal(age_header_parse(buf, n - 10, &h, &reason), -EAGAIN);

        /* The header as a whole: many short lines are fine until the size limit. */
        n = (size_t) sprintf(buf, HDR_V1);
        for (unsigned i = 0; n < AGE_HEADER_SIZE_MAX + 100; i++) {
                n += (size_t) sprintf(buf + n, "-> a\n");
                for (unsigned j = 0; j < 60; j++)
                        n += (size_t) sprintf(
                                buf + n, "%s\n",
                                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB");
                n += (size_t) sprintf(buf + n, "\n");
        }
        assert_int_equal(age_header_parse(buf, n, &h, &reason), -EBADMSG);
        assert_string_equal(reason, "header too large");
        assert_null(h);
}

/* ---- sealing and opening in memory ----------------------------------------------------------- */

typedef enum OpenMode {
        OPEN_PUSH, /* age_open_stream into a MemWriter */
        OPEN_PULL, /* age_opener_read with odd read sizes, reader handing out small pieces */
        OPEN_FD,   /* age_open_fd between memfds */
        _OPEN_MODE_MAX,
} OpenMode;

static const char *const open_mode_name[] = {"push", "pull", "fd"};

static int memfd_with(const void *data, size_t size) {
        int fd = memfd_create("age-test", MFD_CLOEXEC);

        assert_true(fd >= 0);
        if (size > 0)
                assert_int_equal(write(fd, data, size), (ssize_t) size);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static uint8_t *memfd_read_all(int fd, size_t *ret_size) {
        struct stat st;
        uint8_t *p;

        assert_int_equal(fstat(fd, &st), 0);
        p = malloc((size_t) st.st_size + 1);
        assert_non_null(p);
        assert_int_equal(pread(fd, p, (size_t) st.st_size, 0), st.st_size);
        *ret_size = (size_t) st.st_size;
        return p;
}

/* Open; *ret_plain gets everything that was released, also on failure. */
static int open_mem(AgeIdentity *const *ids, size_t n_ids, const uint8_t *cipher, size_t size, unsigned jobs,
                    OpenMode mode, uint8_t **ret_plain, size_t *ret_plain_size, const char **ret_reason) {
        MemWriter w = {};
        int r;

        switch (mode) {
        case OPEN_PUSH: {
                MemReader m = {.data = cipher, .size = size};
                StreamReader rd = {mem_read, &m};
                StreamWriter wr = {mem_write, &w};

                r = age_open_stream(ids, n_ids, &rd, &wr, jobs, ret_reason);
                break;
        }
        case OPEN_PULL: {
                MemReader m = {.data = cipher, .size = size, .max_read = 4093};
                StreamReader rd = {mem_read, &m};
                _cleanup_(age_opener_freep) AgeOpener *o = NULL;
                uint8_t buf[7919];

                r = age_opener_new(ids, n_ids, &rd, jobs, &o, ret_reason);
                if (r < 0)
                        break;
                for (;;) {
                        ssize_t k = age_opener_read(o, buf, sizeof(buf));
                        if (k <= 0) {
                                r = (int) k;
                                if (r < 0 && ret_reason)
                                        *ret_reason = age_opener_reason(o);
                                break;
                        }
                        assert_int_equal(mem_write(&w, buf, (size_t) k), 0);
                }
                assert_int_equal(age_opener_plaintext_size(o), w.size);
                /* Errors are sticky. */
                if (r < 0)
                        assert_int_equal(age_opener_read(o, buf, sizeof(buf)), r);
                break;
        }
        case OPEN_FD: {
                _cleanup_close_ int in = memfd_with(cipher, size),
                                    out = memfd_create("age-out", MFD_CLOEXEC);
                size_t n = 0;

                assert_true(out >= 0);
                r = age_open_fd(ids, n_ids, in, out, jobs, ret_reason);
                w.data = memfd_read_all(out, &n);
                w.size = n;
                break;
        }
        default:
                assert_not_reached();
        }

        *ret_plain = w.data;
        *ret_plain_size = w.size;
        return r;
}

static void seal_mem(const AgeRecipient *rs, size_t n_rs, const uint8_t *plain, size_t size, unsigned jobs,
                     size_t piece, uint8_t **ret, size_t *ret_size) {
        _cleanup_(age_sealer_freep) AgeSealer *s = NULL;
        MemWriter w = {};
        StreamWriter wr = {mem_write, &w};

        assert_int_equal(age_sealer_new(rs, n_rs, &wr, jobs, &s), 0);
        for (size_t off = 0; off < size;) {
                size_t k = MIN(piece, size - off);
                assert_int_equal(age_sealer_write(s, plain + off, k), 0);
                off += k;
        }
        assert_int_equal(age_sealer_plaintext_size(s), size);
        assert_int_equal(age_sealer_finish(s), 0);
        assert_int_equal(age_sealer_finish(s), -ESTALE);
        assert_int_equal(age_sealer_write(s, "x", 1), -ESTALE);
        *ret = w.data;
        *ret_size = w.size;
}

static size_t n_chunks_for(size_t size) {
        return size == 0 ? 1 : (size + AGE_CHUNK_SIZE - 1) / AGE_CHUNK_SIZE;
}

static void test_roundtrip(void **state) {
        static const size_t sizes[] = {
                0,
                1,
                15,
                16,
                17,
                AGE_CHUNK_SIZE - 1,
                AGE_CHUNK_SIZE,
                AGE_CHUNK_SIZE + 1,
                2 * AGE_CHUNK_SIZE,
                31 * AGE_CHUNK_SIZE + 5,
                32 * AGE_CHUNK_SIZE - 1,
                32 * AGE_CHUNK_SIZE,
                32 * AGE_CHUNK_SIZE + 1,
                64 * AGE_CHUNK_SIZE,
                64 * AGE_CHUNK_SIZE + 17,
                100 * AGE_CHUNK_SIZE + 3,
        };
        static const unsigned jobs[] = {1, 3};
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL, *other = NULL;
        AgeRecipient r[2];

        assert_int_equal(age_keygen(&id), 0);
        assert_int_equal(age_keygen(&other), 0);
        age_identity_to_recipient(other, &r[0]);
        age_identity_to_recipient(id, &r[1]);

        for (size_t si = 0; si < ELEMENTSOF(sizes); si++)
                for (size_t ji = 0; ji < ELEMENTSOF(jobs); ji++) {
                        size_t size = sizes[si], cipher_size = 0;
                        _cleanup_free_ uint8_t *plain = pattern(size, (unsigned) si), *cipher = NULL;
                        _cleanup_(age_header_freep) AgeHeader *h = NULL;
                        /* Odd write sizes for the push API, whole-buffer writes for the others. */
                        size_t piece = si % 2 ? 1000 + si : SIZE_MAX;

                        seal_mem(r, 2, plain, size, jobs[ji], piece, &cipher, &cipher_size);
                        assert_int_equal(age_header_parse(cipher, cipher_size, &h, NULL), 0);
                        assert_int_equal(h->n_stanzas, 2);
                        assert_int_equal(cipher_size, h->size + AGE_NONCE_SIZE + size +
                                                              AGE_TAG_SIZE * n_chunks_for(size));

                        for (OpenMode m = 0; m < _OPEN_MODE_MAX; m++) {
                                _cleanup_free_ uint8_t *out = NULL;
                                size_t out_size = 0;
                                const char *reason = NULL;
                                int k = open_mem(&id, 1, cipher, cipher_size, jobs[(ji + m) % 2], m, &out,
                                                 &out_size, &reason);
                                if (k != 0)
                                        fail_msg("size %zu mode %s: %d (%s)", size, open_mode_name[m], k,
                                                 strna(reason));
                                assert_int_equal(out_size, size);
                                assert_memory_equal(out, plain, size);
                        }
                }
}

static void test_seal_fd(void **state) {
        static const size_t sizes[] = {0,
                                       1,
                                       AGE_CHUNK_SIZE,
                                       32 * AGE_CHUNK_SIZE,
                                       32 * AGE_CHUNK_SIZE + 1,
                                       33 * AGE_CHUNK_SIZE,
                                       65 * AGE_CHUNK_SIZE - 7};
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        AgeRecipient r;

        assert_int_equal(age_keygen(&id), 0);
        age_identity_to_recipient(id, &r);

        for (size_t i = 0; i < ELEMENTSOF(sizes); i++)
                for (unsigned jobs = 1; jobs <= 2; jobs++) {
                        _cleanup_free_ uint8_t *plain = pattern(sizes[i], 3), *cipher = NULL, *out = NULL;
                        size_t cipher_size = 0, out_size = 0;
                        int pipefd[2];

                        /* A pipe hands out partial reads, unlike a file. */
                        {
                                _cleanup_close_ int out_fd = memfd_create("c", MFD_CLOEXEC);
                                assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
                                pid_t pid = fork();
                                assert_true(pid >= 0);
                                if (pid == 0) {
                                        close(pipefd[0]);
                                        for (size_t off = 0; off < sizes[i];) {
                                                size_t k = MIN(sizes[i] - off, (size_t) 12345);
                                                if (write(pipefd[1], plain + off, k) != (ssize_t) k)
                                                        _exit(1);
                                                off += k;
                                        }
                                        _exit(0);
                                }
                                close(pipefd[1]);
                                assert_int_equal(age_seal_fd(&r, 1, pipefd[0], out_fd, jobs), 0);
                                close(pipefd[0]);
                                assert_int_equal(waitpid(pid, NULL, 0), pid);
                                cipher = memfd_read_all(out_fd, &cipher_size);
                        }
                        assert_int_equal(
                                open_mem(&id, 1, cipher, cipher_size, jobs, OPEN_FD, &out, &out_size, NULL),
                                0);
                        assert_int_equal(out_size, sizes[i]);
                        assert_memory_equal(out, plain, sizes[i]);
                        out = mfree(out);

                        /* And back through a pipe, which the fd functions cannot size up front. */
                        {
                                _cleanup_close_ int out_fd = memfd_create("p", MFD_CLOEXEC);
                                const char *reason = NULL;
                                assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
                                pid_t pid = fork();
                                assert_true(pid >= 0);
                                if (pid == 0) {
                                        close(pipefd[0]);
                                        for (size_t off = 0; off < cipher_size;) {
                                                size_t k = MIN(cipher_size - off, (size_t) 54321);
                                                if (write(pipefd[1], cipher + off, k) != (ssize_t) k)
                                                        _exit(1);
                                                off += k;
                                        }
                                        _exit(0);
                                }
                                close(pipefd[1]);
                                assert_int_equal(age_open_fd(&id, 1, pipefd[0], out_fd, jobs, &reason), 0);
                                close(pipefd[0]);
                                assert_int_equal(waitpid(pid, NULL, 0), pid);
                                out = memfd_read_all(out_fd, &out_size);
                        }
                        assert_int_equal(out_size, sizes[i]);
                        assert_memory_equal(out, plain, sizes[i]);
                }
}

/* An unnamed regular file in dir (O_TMPFILE where the filesystem has it, else made and unlinked). */
static int disk_tmpfile(const char *dir) {
        char path[PATH_MAX];
        int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

        if (fd >= 0)
                return fd;
        snprintf(path, sizeof(path), "%s/test-age.XXXXXX", dir);
        fd = mkostemp(path, O_CLOEXEC);
        if (fd >= 0)
                (void) unlink(path);
        return fd;
}

/* Regular files on a disk filesystem: the fd functions then pace their writes with
 * sync_file_range() and drop what is written back from the page cache (not on tmpfs, where
 * memfds live). 40 MiB spans several 8 MiB writeback windows; an output opened at an offset and
 * a tail that is not a whole window must come out right too. */
static void test_fd_on_disk(void **state) {
        const size_t size = 40 * 1024 * 1024 + 12345, skip = 4096 + 3;
        const char *dir = getenv("TMPDIR") ?: "/var/tmp";
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        _cleanup_free_ uint8_t *plain = NULL;
        struct statfs sfs;
        AgeRecipient r;

        /* (Before anything is allocated: skip() jumps out past the cleanup handlers.) */
        if (statfs(dir, &sfs) < 0 || sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC) {
                print_message("skipped: %s is not a disk filesystem\n", dir);
                skip();
        }
        plain = pattern(size, 5);
        assert_int_equal(age_keygen(&id), 0);
        age_identity_to_recipient(id, &r);

        for (unsigned jobs = 1; jobs <= 2; jobs++) {
                _cleanup_close_ int in = -EBADF, sealed = -EBADF, out = -EBADF;
                _cleanup_free_ uint8_t *back = NULL;
                const char *reason = NULL;
                struct stat st;

                in = disk_tmpfile(dir);
                sealed = disk_tmpfile(dir);
                out = disk_tmpfile(dir);
                assert_true(in >= 0 && sealed >= 0 && out >= 0);
                assert_int_equal(write(in, plain, size), (ssize_t) size);
                assert_int_equal(lseek(in, 0, SEEK_SET), 0);

                assert_int_equal(age_seal_fd(&r, 1, in, sealed, jobs), 0);
                assert_int_equal(lseek(sealed, 0, SEEK_SET), 0);
                assert_int_equal(lseek(out, (off_t) skip, SEEK_SET), (off_t) skip);
                assert_int_equal(age_open_fd(&id, 1, sealed, out, jobs, &reason), 0);

                assert_int_equal(fstat(out, &st), 0);
                assert_int_equal(st.st_size, (off_t) (skip + size));
                back = malloc(size);
                assert_non_null(back);
                assert_int_equal(pread(out, back, size, (off_t) skip), (ssize_t) size);
                assert_memory_equal(back, plain, size);
        }
}

/* ---- crafted payloads and tampering ---------------------------------------------------------- */

static const uint8_t craft_file_key[AGE_FILE_KEY_SIZE] = "YELLOW SUBMARINE";

typedef struct ChunkSpec {
        size_t size;
        bool final;
        int64_t counter; /* -1: its position */
} ChunkSpec;

/* A file whose payload is exactly the given chunks, encrypted with the right key. */
static void craft(const AgeRecipient *r, const ChunkSpec *chunks, size_t n, const uint8_t *plain,
                  uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ char *header = NULL;
        uint8_t nonce[AGE_NONCE_SIZE], key[AGE_KEY_SIZE];
        size_t header_size = 0, total, pos, off = 0;
        uint8_t *out;
        EVP_CIPHER_CTX *ctx;

        assert_int_equal(age_header_build(r, 1, craft_file_key, &header, &header_size), 0);
        memset(nonce, 0x42, sizeof(nonce));
        assert_int_equal(age_payload_key(craft_file_key, nonce, key), 0);

        total = header_size + AGE_NONCE_SIZE;
        for (size_t i = 0; i < n; i++)
                total += chunks[i].size + AGE_TAG_SIZE;
        out = malloc(total + 1);
        assert_non_null(out);
        memcpy(out, header, header_size);
        memcpy(out + header_size, nonce, AGE_NONCE_SIZE);
        pos = header_size + AGE_NONCE_SIZE;

        ctx = EVP_CIPHER_CTX_new();
        assert_non_null(ctx);
        for (size_t i = 0; i < n; i++) {
                uint64_t c = chunks[i].counter < 0 ? i : (uint64_t) chunks[i].counter;
                uint8_t iv[12] = {};
                int len = 0, len2 = 0;

                for (unsigned b = 0; b < 8; b++)
                        iv[3 + b] = (uint8_t) (c >> (56 - 8 * b));
                iv[11] = chunks[i].final;
                assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_chacha20_poly1305(), NULL, key, iv), 1);
                if (chunks[i].size > 0)
                        assert_int_equal(
                                EVP_EncryptUpdate(ctx, out + pos, &len, plain + off, (int) chunks[i].size),
                                1);
                assert_int_equal(EVP_EncryptFinal_ex(ctx, out + pos + len, &len2), 1);
                assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, AGE_TAG_SIZE,
                                                     out + pos + chunks[i].size),
                                 1);
                pos += chunks[i].size + AGE_TAG_SIZE;
                off += chunks[i].size;
        }
        EVP_CIPHER_CTX_free(ctx);
        assert_int_equal(pos, total);
        *ret = out;
        *ret_size = total;
}

/* Open in every mode with 1 and 3 jobs; expect error (0 or -errno) and exactly `released` bytes,
 * which must be the start of the plaintext. */
static void expect_open(AgeIdentity *id, const uint8_t *cipher, size_t size, int error, size_t released,
                        const uint8_t *plain, const char *what) {
        for (OpenMode m = 0; m < _OPEN_MODE_MAX; m++)
                for (unsigned jobs = 1; jobs <= 3; jobs += 2) {
                        _cleanup_free_ uint8_t *out = NULL;
                        size_t out_size = 0;
                        const char *reason = NULL;
                        int r = open_mem(&id, 1, cipher, size, jobs, m, &out, &out_size, &reason);

                        if (r != error || out_size != released)
                                fail_msg("%s [%s, %u jobs]: got %d (%s) with %zu bytes, want %d with %zu",
                                         what, open_mode_name[m], jobs, r, strna(reason), out_size, error,
                                         released);
                        if (error < 0 && error != -ENOMEM)
                                assert_non_null(reason);
                        assert_memory_equal(out, plain, released);
                }
}

#define C  AGE_CHUNK_SIZE
#define F  true
#define NF false

static void test_crafted_streams(void **state) {
        static const struct {
                const char *what;
                ChunkSpec chunks[70];
                size_t n;
                int error;
                size_t released;
                size_t append; /* bytes of garbage after the payload */
        } cases[] = {
                {"three chunks", {{C, NF, -1}, {C, NF, -1}, {100, F, -1}}, 3, 0, 2 * C + 100, 0},
                {"one full final chunk", {{C, F, -1}}, 1, 0, C, 0},
                {"empty payload", {{0, F, -1}}, 1, 0, 0, 0},
                {"two full, final full", {{C, NF, -1}, {C, F, -1}}, 2, 0, 2 * C, 0},
                {"no chunks", {}, 0, -EUCLEAN, 0, 0},
                {"short last chunk not final", {{C, NF, -1}, {10, NF, -1}}, 2, -EUCLEAN, C, 0},
                {"full last chunk not final", {{C, NF, -1}}, 1, -EUCLEAN, C, 0},
                {"empty final after full", {{C, NF, -1}, {0, F, -1}}, 2, -EUCLEAN, C, 0},
                {"final in the middle", {{C, F, -1}, {C, F, -1}}, 2, -EUCLEAN, C, 0},
                {"final then short", {{C, F, -1}, {5, F, -1}}, 2, -EUCLEAN, C, 0},
                /* The garbage byte becomes part of the short last chunk, which then fails. */
                {"final then garbage", {{C, NF, -1}, {7, F, -1}}, 2, -EUCLEAN, C, 1},
                {"full final then garbage", {{C, F, -1}}, 1, -EUCLEAN, C, 20},
                {"empty final then garbage", {{0, F, -1}}, 1, -EUCLEAN, 0, 1},
                {"swapped counters", {{C, NF, -1}, {C, NF, 2}, {C, NF, 1}, {1, F, -1}}, 4, -EUCLEAN, C, 0},
                {"counter from 1", {{C, NF, 1}, {1, F, 1}}, 2, -EUCLEAN, 0, 0},
                {"empty first non-final", {{0, NF, -1}}, 1, -EUCLEAN, 0, 0},
        };
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        _cleanup_free_ uint8_t *plain = pattern(70 * C, 9);
        AgeRecipient r;

        assert_int_equal(age_keygen(&id), 0);
        age_identity_to_recipient(id, &r);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ uint8_t *cipher = NULL;
                size_t size = 0;

                craft(&r, cases[i].chunks, cases[i].n, plain, &cipher, &size);
                if (cases[i].append > 0) {
                        uint8_t *c = realloc(cipher, size + cases[i].append);
                        assert_non_null(c);
                        cipher = c;
                        memset(cipher + size, 0xa5, cases[i].append);
                        size += cases[i].append;
                }
                expect_open(id, cipher, size, cases[i].error, cases[i].released, plain, cases[i].what);
        }

        /* Around whole batches: a full final chunk that ends a full batch; the same with a byte
         * after it; a batch of non-final chunks and then EOF; several batches; and a short final
         * chunk after several batches. */
        for (unsigned v = 0; v < 5; v++) {
                const size_t B = AGE_BATCH_CHUNKS;
                ChunkSpec ch[70];
                size_t n = v < 3 ? B : v == 3 ? 4 * B : 4 * B + 5, size = 0, want;
                _cleanup_free_ uint8_t *cipher = NULL;
                int error;

                assert_true(n <= ELEMENTSOF(ch));
                for (size_t i = 0; i < n; i++)
                        ch[i] = (ChunkSpec){C, false, -1};
                if (v != 2)
                        ch[n - 1].final = true;
                if (v == 4)
                        ch[n - 1].size = 3;
                craft(&r, ch, n, plain, &cipher, &size);
                want = (n - 1) * C + ch[n - 1].size;
                error = v == 1 || v == 2 ? -EUCLEAN : 0;
                if (v == 1) {
                        uint8_t *c = realloc(cipher, size + 1);
                        assert_non_null(c);
                        cipher = c;
                        cipher[size++] = 0;
                }
                expect_open(id, cipher, size, error, want, plain, "batch boundary");
        }
}

static uint8_t b64_other(uint8_t c) {
        return c == 'A' ? 'B' : 'A';
}

static void test_tamper(void **state) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL, *other = NULL;
        const size_t size = 35 * C + 1000; /* 36 chunks: several batches, the last one partial */
        _cleanup_free_ uint8_t *plain = pattern(size, 5), *cipher = NULL;
        _cleanup_(age_header_freep) AgeHeader *h = NULL;
        size_t cipher_size = 0, payload;
        AgeRecipient r[2];
        const char *s;

        assert_int_equal(age_keygen(&id), 0);
        assert_int_equal(age_keygen(&other), 0);
        age_identity_to_recipient(id, &r[0]);
        age_identity_to_recipient(other, &r[1]);
        seal_mem(r, 2, plain, size, 2, SIZE_MAX, &cipher, &cipher_size);
        assert_int_equal(age_header_parse(cipher, cipher_size, &h, NULL), 0);
        payload = h->size + AGE_NONCE_SIZE;

        expect_open(id, cipher, cipher_size, 0, size, plain, "untouched");
        expect_open(other, cipher, cipher_size, 0, size, plain, "untouched, second recipient");

        /* Change one byte somewhere (flip bits, or set a value), open, restore it. */
#define TAMPER_SET(off, value, error, released, what)                                     \
        do {                                                                              \
                size_t _o = (off);                                                        \
                uint8_t _saved = cipher[_o];                                              \
                cipher[_o] = (value);                                                     \
                expect_open(id, cipher, cipher_size, (error), (released), plain, (what)); \
                cipher[_o] = _saved;                                                      \
        } while (0)
#define TAMPER(off, mask, error, released, what) \
        TAMPER_SET((off), (uint8_t) (cipher[(off)] ^ (mask)), (error), (released), (what))
#define TAMPER_B64(off, error, released, what) \
        TAMPER_SET((off), b64_other(cipher[(off)]), (error), (released), (what))

        /* Version line. */
        TAMPER(0, 0x01, -EBADMSG, 0, "version line");
        TAMPER(20, 0x01, -EBADMSG, 0, "version number");
        /* Stanza type of our stanza: no longer ours, the other one is not ours either. */
        s = memmem(cipher, h->size, "X25519", 6);
        assert_non_null(s);
        TAMPER((size_t) (s - (const char *) cipher), 0x20, -ENOKEY, 0, "stanza type");
        /* The share: a middle character (still canonical) gives another shared secret; the last
         * character's unused bits make it non-canonical. */
        s += 7;
        TAMPER_B64((size_t) (s - (const char *) cipher) + 10, -ENOKEY, 0, "stanza share");
        TAMPER_SET((size_t) (s - (const char *) cipher) + 42, 'B', -EBADMSG, 0, "stanza share encoding");
        TAMPER_SET((size_t) (s - (const char *) cipher) + 10, '=', -EBADMSG, 0, "stanza share character");
        /* The body: the wrapped file key does not authenticate. */
        s += 44;
        TAMPER_B64((size_t) (s - (const char *) cipher) + 5, -ENOKEY, 0, "stanza body");
        TAMPER_SET((size_t) (s - (const char *) cipher) + 42, 'B', -EBADMSG, 0, "stanza body encoding");
        /* The arrow, the separators. */
        TAMPER(22, 0x02, -EBADMSG, 0, "stanza arrow");
        TAMPER(24, 0x01, -EBADMSG, 0, "space before type");
        /* The other recipient's stanza: we still unwrap ours, but the MAC covers it. */
        s = memmem((const char *) cipher + 30, h->size - 30, "-> X25519 ", 10);
        assert_non_null(s);
        TAMPER_B64((size_t) (s - (const char *) cipher) + 20, -EBADE, 0, "other stanza share");
        TAMPER_B64((size_t) (s - (const char *) cipher) + 60, -EBADE, 0, "other stanza body");
        /* The MAC itself, and its line. */
        TAMPER_B64(h->mac_input_size + 10, -EBADE, 0, "MAC");
        TAMPER_SET(h->mac_input_size + 43, 'B', -EBADMSG, 0, "MAC encoding");
        TAMPER(h->mac_input_size - 1, 0x01, -EBADMSG, 0, "MAC marker");
        TAMPER(h->mac_input_size, 0x01, -EBADMSG, 0, "space after MAC marker");
        TAMPER(h->size - 1, 0x01, -EBADMSG, 0, "LF after MAC");
        /* The nonce: a different payload key, the first chunk fails. */
        TAMPER(h->size, 0x80, -EUCLEAN, 0, "nonce first byte");
        TAMPER(h->size + 15, 0x01, -EUCLEAN, 0, "nonce last byte");
        /* Every chunk: its first byte, its last ciphertext byte, its tag. */
        for (size_t k = 0; k < 36; k++) {
                size_t start = payload + k * AGE_ENC_CHUNK_SIZE;
                size_t csize = k < 35 ? AGE_ENC_CHUNK_SIZE : 1000 + AGE_TAG_SIZE;
                char what[64];

                snprintf(what, sizeof(what), "chunk %zu", k);
                TAMPER(start, 0x01, -EUCLEAN, k * C, what);
                if (k % 7 == 0 || k >= 30) {
                        TAMPER(start + csize - AGE_TAG_SIZE - 1, 0x80, -EUCLEAN, k * C, what);
                        TAMPER(start + csize - 1, 0x01, -EUCLEAN, k * C, what);
                }
        }

        /* Truncation everywhere that matters: in the header, in the nonce, at and around every
         * chunk boundary and tag. What authenticated before the cut is released, nothing else. */
        {
                size_t full = cipher_size;
                size_t cuts[] = {0,           1,       21,          22,         h->mac_input_size,
                                 h->size - 1, h->size, h->size + 8, payload - 1};

                for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
                        cipher_size = cuts[i];
                        expect_open(id, cipher, cipher_size, -EBADMSG, 0, plain,
                                    "truncated header or nonce");
                }
                for (size_t k = 0; k <= 36; k++) {
                        static const ssize_t deltas[] = {-17, -16, -15, -1, 0, 1, 15, 16, 17};
                        size_t boundary = payload + k * AGE_ENC_CHUNK_SIZE;

                        for (size_t d = 0; d < ELEMENTSOF(deltas); d++) {
                                ssize_t cut = (ssize_t) boundary + deltas[d];
                                char what[64];

                                if (cut < (ssize_t) payload || (size_t) cut >= full)
                                        continue;
                                if (k % 5 != 0 && k < 31 && deltas[d] != 0 && deltas[d] != 1)
                                        continue; /* keep the run time sane */
                                cipher_size = (size_t) cut;
                                snprintf(what, sizeof(what), "truncated at chunk %zu%+zd", k, deltas[d]);
                                /* Chunks complete before the cut authenticate as non-final. */
                                expect_open(id, cipher, cipher_size, -EUCLEAN,
                                            MIN((size_t) ((cut - (ssize_t) payload) / AGE_ENC_CHUNK_SIZE),
                                                (size_t) 35) *
                                                    C,
                                            plain, what);
                        }
                }
                cipher_size = full;
        }

        /* Appended bytes: the last chunk is short here, so they become part of it and it fails
         * (age's reader does the same); after a full final chunk, see test_crafted_streams(). */
        {
                uint8_t *c = realloc(cipher, cipher_size + AGE_ENC_CHUNK_SIZE + 1);
                assert_non_null(c);
                cipher = c;
                memset(cipher + cipher_size, 0, AGE_ENC_CHUNK_SIZE + 1);
                expect_open(id, cipher, cipher_size + 1, -EUCLEAN, 35 * C, plain, "1 byte appended");
                expect_open(id, cipher, cipher_size + 16, -EUCLEAN, 35 * C, plain, "16 bytes appended");
                expect_open(id, cipher, cipher_size + AGE_ENC_CHUNK_SIZE + 1, -EUCLEAN, 35 * C, plain,
                            "a chunk appended");
        }

        /* Wrong identity, no identity. */
        {
                _cleanup_(age_identity_freep) AgeIdentity *stranger = NULL;
                assert_int_equal(age_keygen(&stranger), 0);
                expect_open(stranger, cipher, cipher_size, -ENOKEY, 0, plain, "stranger");
        }
#undef TAMPER
#undef TAMPER_B64
#undef TAMPER_SET
}

/* A big, valid header (many unknown stanzas before ours) from a reader that hands out one byte
 * per call: must open, and in linear time (the header is not re-parsed after every read). */
static void test_big_header_trickle(void **state) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        _cleanup_free_ uint8_t *plain = pattern(1000, 4), *cipher = NULL, *file = NULL, *out = NULL;
        _cleanup_(age_header_freep) AgeHeader *h = NULL;
        ChunkSpec one = {1000, true, -1};
        size_t cipher_size = 0, n = 0, out_size = 0;
        uint8_t hkey[AGE_KEY_SIZE], mac[AGE_MAC_SIZE];
        size_t mac_len = 0;
        AgeRecipient r;

        assert_int_equal(age_keygen(&id), 0);
        age_identity_to_recipient(id, &r);
        craft(&r, &one, 1, plain, &cipher, &cipher_size);
        assert_int_equal(age_header_parse(cipher, cipher_size, &h, NULL), 0);

        file = malloc(cipher_size + AGE_HEADER_SIZE_MAX);
        assert_non_null(file);
        n = strlen(HDR_V1);
        memcpy(file, cipher, n);
        for (unsigned i = 0; i < AGE_STANZAS_MAX - 1; i++) {
                n += (size_t) sprintf((char *) file + n, "-> grease-%u x y\n", i);
                for (unsigned j = 0; j < 3; j++)
                        n += (size_t) sprintf(
                                (char *) file + n, "%s\n",
                                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB");
                n += (size_t) sprintf((char *) file + n, "QUFB\n");
        }
        /* Our stanza and "---", then a fresh MAC over all of it, then nonce and payload as they were. */
        memcpy(file + n, cipher + strlen(HDR_V1), h->mac_input_size - strlen(HDR_V1));
        n += h->mac_input_size - strlen(HDR_V1);
        assert_true(n < AGE_HEADER_SIZE_MAX);
        assert_int_equal(age_hkdf_sha256(craft_file_key, sizeof(craft_file_key), NULL, 0, "header", hkey),
                         0);
        assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hkey, sizeof(hkey), file, n, mac,
                                  sizeof(mac), &mac_len));
        file[n++] = ' ';
        n += age_base64_encode(mac, sizeof(mac), (char *) file + n);
        file[n++] = '\n';
        memcpy(file + n, cipher + h->size, cipher_size - h->size);
        n += cipher_size - h->size;

        {
                MemReader m = {.data = file, .size = n, .max_read = 1};
                StreamReader rd = {mem_read, &m};
                MemWriter w = {};
                StreamWriter wr = {mem_write, &w};
                const char *reason = NULL;

                assert_int_equal(age_open_stream(&id, 1, &rd, &wr, 1, &reason), 0);
                out = w.data;
                out_size = w.size;
        }
        assert_int_equal(out_size, 1000);
        assert_memory_equal(out, plain, 1000);

        /* One stanza more is over the limit, trickled or not. */
        {
                static const char extra[] = HDR_V1 "-> extra\nAA\n";
                const size_t e = strlen(extra), v = strlen(HDR_V1);
                _cleanup_free_ uint8_t *more = malloc(n + e);
                MemWriter w = {};
                StreamWriter wr = {mem_write, &w};
                const char *reason = NULL;

                assert_non_null(more);
                memcpy(more, extra, e);
                memcpy(more + e, file + v, n - v);
                MemReader m = {.data = more, .size = n - v + e, .max_read = 7};
                StreamReader rd = {mem_read, &m};
                assert_int_equal(age_open_stream(&id, 1, &rd, &wr, 1, &reason), -EBADMSG);
                assert_string_equal(reason, "too many stanzas");
                assert_int_equal(w.size, 0);
        }
}

static void test_low_order_shares(void **state) {
        /* Low-order points of Curve25519 (RFC 7748 §5 discussion, libsodium's blocklist): X25519 with
         * them is all zero, which the spec says to refuse; as recipients they cannot be sealed to. */
        static const uint8_t low[][32] = {
                {0},
                {1},
                {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
                 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
                 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
        };
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        uint8_t file_key[AGE_FILE_KEY_SIZE] = {};
        char buf[512], share[64], *sink = NULL;
        size_t size = 0;

        assert_int_equal(age_identity_from_string(SPEC_IDENTITY, &id), 0);
        for (size_t i = 0; i < ELEMENTSOF(low); i++) {
                _cleanup_(age_header_freep) AgeHeader *h = NULL;
                AgeRecipient r;
                const char *reason = NULL;
                int n;

                memcpy(r.key, low[i], 32);
                assert_int_equal(age_header_build(&r, 1, file_key, &sink, &size), -EINVAL);
                assert_null(sink);

                age_base64_encode(low[i], 32, share);
                n = snprintf(buf, sizeof(buf),
                             HDR_V1 "-> X25519 %s\nqRS0AMjdjPvZ/WT08U2KL4G+PIooA3hy38SvLpvaC1E\n" HDR_MAC,
                             share);
                assert_int_equal(age_header_parse(buf, (size_t) n, &h, NULL), 0);
                assert_int_equal(age_header_unwrap(h, buf, &id, 1, file_key, &reason), -EBADMSG);
                assert_non_null(strstr(reason, "zero"));
        }
}

static int fail_write_calls;

static int fail_second_write(void *userdata, const void *buf, size_t n) {
        return ++fail_write_calls > 1 ? -EBADMSG : 0;
}

static ssize_t fail_read(void *userdata, void *buf, size_t n) {
        return -EUCLEAN;
}

static void test_stream_errors_are_remapped(void **state) {
        _cleanup_(age_identity_freep) AgeIdentity *id = NULL;
        _cleanup_(age_sealer_freep) AgeSealer *s = NULL;
        AgeRecipient r;
        StreamWriter bad = {.write = NULL};

        assert_int_equal(age_keygen(&id), 0);
        age_identity_to_recipient(id, &r);
        assert_int_equal(age_sealer_new(&r, 1, &bad, 1, &s), -EINVAL);

        /* A writer failing with a class code must not look like a verdict on the file. */
        {
                StreamWriter w = {fail_second_write, NULL};
                fail_write_calls = 0;
                assert_int_equal(age_sealer_new(&r, 1, &w, 1, &s), -EIO);
        }
        {
                StreamReader rd = {fail_read, NULL};
                AgeOpener *o = NULL;
                assert_int_equal(age_opener_new(&id, 1, &rd, 1, &o, NULL), -EIO);
                assert_null(o);
        }
}

/* ---- the C2SP/CCTV age testkit --------------------------------------------------------------- */

typedef struct Vector {
        char *expect;
        char *payload;
        char *identities[8];
        size_t n_identities;
        bool passphrase, armored, compressed, unknown_key;
        uint8_t *body;
        size_t body_size;
} Vector;

static void vector_done(Vector *v) {
        free(v->expect);
        free(v->payload);
        for (size_t i = 0; i < v->n_identities; i++)
                free(v->identities[i]);
        free(v->body);
}

static int inflate_all(const uint8_t *in, size_t n, uint8_t **ret, size_t *ret_size) {
        z_stream z = {};
        size_t alloc = 1 << 20, size = 0;
        uint8_t *out = malloc(alloc);
        int r;

        assert_non_null(out);
        assert_int_equal(inflateInit(&z), Z_OK);
        z.next_in = (uint8_t *) in;
        z.avail_in = (uInt) n;
        do {
                if (size == alloc) {
                        assert_true(alloc < 256u << 20);
                        alloc *= 2;
                        out = realloc(out, alloc);
                        assert_non_null(out);
                }
                z.next_out = out + size;
                z.avail_out = (uInt) (alloc - size);
                r = inflate(&z, Z_NO_FLUSH);
                size = alloc - z.avail_out;
        } while (r == Z_OK);
        inflateEnd(&z);
        if (r != Z_STREAM_END) {
                free(out);
                return -EBADMSG;
        }
        *ret = out;
        *ret_size = size;
        return 0;
}

static void vector_parse(const char *data, size_t size, Vector *v) {
        const char *p = data, *end = data + size;

        *v = (Vector){};
        for (;;) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                _cleanup_free_ char *line = NULL;
                char *key, *value;

                if (!nl) {
                        fail_msg("vector without a blank line");
                        return;
                }
                if (nl == p) {
                        p++;
                        break;
                }
                line = strndup(p, (size_t) (nl - p));
                assert_non_null(line);
                value = strstr(line, ": ");
                if (!value) {
                        fail_msg("vector header line without ': '");
                        return;
                }
                *value = 0;
                value += 2;
                key = line;
                if (streq(key, "expect"))
                        v->expect = strdup(value);
                else if (streq(key, "payload"))
                        v->payload = strdup(value);
                else if (streq(key, "identity")) {
                        assert_true(v->n_identities < ELEMENTSOF(v->identities));
                        v->identities[v->n_identities++] = strdup(value);
                } else if (streq(key, "passphrase"))
                        v->passphrase = true;
                else if (streq(key, "armored"))
                        v->armored = streq(value, "yes");
                else if (streq(key, "compressed")) {
                        assert_string_equal(value, "zlib");
                        v->compressed = true;
                } else if (!streq(key, "file key") && !streq(key, "comment"))
                        v->unknown_key = true;
                p = nl + 1;
        }
        if (v->compressed)
                assert_int_equal(
                        inflate_all((const uint8_t *) p, (size_t) (end - p), &v->body, &v->body_size), 0);
        else {
                v->body_size = (size_t) (end - p);
                v->body = malloc(v->body_size + 1);
                assert_non_null(v->body);
                memcpy(v->body, p, v->body_size);
        }
}

static int expect_to_error(const char *expect) {
        if (streq(expect, "success"))
                return 0;
        if (streq(expect, "no match"))
                return -ENOKEY;
        if (streq(expect, "header failure"))
                return -EBADMSG;
        if (streq(expect, "HMAC failure"))
                return -EBADE;
        if (streq(expect, "payload failure"))
                return -EUCLEAN;
        return INT_MIN; /* "armor failure" */
}

static void test_testkit(void **state) {
        _cleanup_free_ char *dir = NULL;
        const char *data = test_shared_data();
        unsigned n_files = 0, n_run = 0, n_passed = 0, skip_armor = 0, skip_scrypt = 0, skip_pq = 0,
                 skip_unknown = 0;
        struct dirent **names = NULL;
        int n;

        if (!data) {
                print_message("SKIP: no shared test data\n");
                skip();
        }
        assert_true(asprintf(&dir, "%s/age-testkit", data) > 0);
        n = scandir(dir, &names, NULL, alphasort);
        if (n < 0) {
                print_message("SKIP: %s: %m\n", dir);
                skip();
        }

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                AgeIdentity *ids[8] = {};
                size_t n_ids = 0, text_size = 0;
                bool unsupported_identity = false;
                Vector v;
                int want;

                if (names[i]->d_name[0] == '.') {
                        free(names[i]);
                        continue;
                }
                assert_true(asprintf(&path, "%s/%s", dir, names[i]->d_name) > 0);
                n_files++;
                {
                        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
                        struct stat st;
                        assert_true(fd >= 0);
                        assert_int_equal(fstat(fd, &st), 0);
                        text = malloc((size_t) st.st_size + 1);
                        assert_non_null(text);
                        assert_int_equal(read(fd, text, (size_t) st.st_size), st.st_size);
                        text_size = (size_t) st.st_size;
                }
                vector_parse(text, text_size, &v);
                assert_non_null(v.expect);

                for (size_t j = 0; j < v.n_identities; j++) {
                        if (age_identity_from_string(v.identities[j], &ids[n_ids]) < 0) {
                                assert_true(startswith(v.identities[j], "AGE-SECRET-KEY-PQ-1"));
                                unsupported_identity = true;
                        } else
                                n_ids++;
                }

                /* Features we do not implement, counted by reason. */
                if (v.unknown_key)
                        skip_unknown++;
                else if (v.armored)
                        skip_armor++;
                else if (v.passphrase)
                        skip_scrypt++;
                else if (unsupported_identity)
                        skip_pq++;
                else {
                        want = expect_to_error(v.expect);
                        assert_true(want != INT_MIN);
                        n_run++;

                        bool ok = true;
                        for (OpenMode m = 0; m < _OPEN_MODE_MAX; m++) {
                                _cleanup_free_ uint8_t *out = NULL;
                                size_t out_size = 0;
                                const char *reason = NULL;
                                uint8_t digest[SHA256_DIGEST_SIZE];
                                char hex[SHA256_HEX_SIZE];
                                unsigned jobs = m == OPEN_FD ? 4 : 1;
                                int r = open_mem(ids, n_ids, v.body, v.body_size, jobs, m, &out, &out_size,
                                                 &reason);

                                assert_int_equal(sha256_buffer(out, out_size, digest), 0);
                                hex_encode(digest, sizeof(digest), hex);
                                if (r != want || (v.payload && !streq(hex, v.payload))) {
                                        print_message(
                                                "FAIL %s [%s]: expected %s, got %d %s (%s), payload %s\n",
                                                names[i]->d_name, open_mode_name[m], v.expect, r,
                                                strna(age_error_class_to_string(r)), strna(reason),
                                                v.payload && !streq(hex, v.payload) ? "differs" : "ok");
                                        ok = false;
                                }
                        }
                        if (ok)
                                n_passed++;
                }

                for (size_t j = 0; j < n_ids; j++)
                        age_identity_free(ids[j]);
                vector_done(&v);
                free(names[i]);
        }
        free(names);

        print_message(
                "age testkit: %u vectors, %u run, %u passed, %u skipped (armor %u, scrypt/passphrase %u, "
                "post-quantum identity %u, unknown key %u)\n",
                n_files, n_run, n_passed, skip_armor + skip_scrypt + skip_pq + skip_unknown, skip_armor,
                skip_scrypt, skip_pq, skip_unknown);
        assert_int_equal(n_passed, n_run);
        assert_true(n_run > 50);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bech32_bip173),
                cmocka_unit_test(test_bech32_roundtrip),
                cmocka_unit_test(test_bech32_padding),
                cmocka_unit_test(test_keys_spec_example),
                cmocka_unit_test(test_keys_invalid),
                cmocka_unit_test(test_keygen),
                cmocka_unit_test(test_identity_file),
                cmocka_unit_test(test_base64),
                cmocka_unit_test(test_header_parse),
                cmocka_unit_test(test_header_limits),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_seal_fd),
                cmocka_unit_test(test_fd_on_disk),
                cmocka_unit_test(test_crafted_streams),
                cmocka_unit_test(test_tamper),
                cmocka_unit_test(test_big_header_trickle),
                cmocka_unit_test(test_low_order_shares),
                cmocka_unit_test(test_stream_errors_are_remapped),
                cmocka_unit_test(test_testkit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
