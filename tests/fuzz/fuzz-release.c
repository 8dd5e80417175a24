/* SPDX-License-Identifier: Apache-2.0 */

/*
 * The parsers a release document goes through before any signature is trusted, and after: the
 * DSSE envelope, the in-toto statement with our predicate, the root document payload, the
 * timestamps and base64 inside them. Besides "no crash, no leak, no UB" it checks a few
 * properties: format(parse(x)) parses to the same envelope, canonical base64 round-trips,
 * formatted timestamps parse back.
 */

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dsse.h"
#include "keys.h"
#include "release.h"
#include "root.h"
#include "strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static TrustSet *fixed_trust(void) {
        static TrustSet *t = NULL;
        static const uint8_t seed[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                         17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
        EVP_PKEY *p;
        BIO *bio;
        char *pem = NULL;
        long n;
        Key *k = NULL;

        if (t)
                return t;
        /* A fixed Ed25519 key, so runs are reproducible. */
        p = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed));
        bio = BIO_new(BIO_s_mem());
        assert_se(p && bio && PEM_write_bio_PUBKEY(bio, p) == 1);
        n = BIO_get_mem_data(bio, &pem);
        assert_se(key_load_public_pem(pem, (size_t) n, &k, NULL) == 0);
        assert_se(trust_set_new(1, &t) == 0 && trust_set_add(t, k, NULL) == 0);
        key_unref(k);
        BIO_free(bio);
        EVP_PKEY_free(p);
        return t;
}

static void check_envelope(const uint8_t *data, size_t size) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL, *back = NULL;
        _cleanup_free_ char *reason = NULL, *text = NULL;
        size_t n = 0;

        if (dsse_parse(data, size, 1 << 20, &e, &reason) < 0) {
                assert_se(reason); /* every refusal says why */
                return;
        }
        assert_se(dsse_format(e, &text, &n) == 0);
        assert_se(dsse_parse(text, n, SIZE_MAX, &back, NULL) == 0);
        assert_se(streq(e->payload_type, back->payload_type));
        assert_se(e->payload_size == back->payload_size &&
                  memcmp(e->payload, back->payload, e->payload_size) == 0);
        assert_se(e->n_signatures == back->n_signatures);
        for (size_t i = 0; i < e->n_signatures; i++) {
                assert_se(streq_ptr(e->signatures[i].keyid, back->signatures[i].keyid));
                assert_se(e->signatures[i].sig_size == back->signatures[i].sig_size &&
                          memcmp(e->signatures[i].sig, back->signatures[i].sig, e->signatures[i].sig_size) ==
                                  0);
        }
        (void) dsse_verify(e, fixed_trust(), NULL, NULL, NULL, NULL);

        /* The payload as a statement and as a root. */
        {
                _cleanup_(release_freep) Release *r = NULL;
                _cleanup_(root_freep) Root *root = NULL;
                (void) release_parse_statement(e->payload, e->payload_size, &r, NULL);
                (void) root_parse_payload(e->payload, e->payload_size, &root, NULL);
        }
}

static void check_statement(const uint8_t *data, size_t size) {
        _cleanup_(release_freep) Release *r = NULL;
        _cleanup_free_ char *reason = NULL;
        ReleaseExpect e = {
                .model = "digits-mlp",
                .channel = "stable",
                .high_water = 41,
                .now = UINT64_C(1796083200) * USEC_PER_SEC,
                .machine_id = "0123456789abcdef0123456789abcdef",
                .limits = RELEASE_LIMITS_DEFAULT,
        };
        char cid[SHA256_HEX_SIZE];

        if (release_parse_statement(data, size, &r, &reason) < 0) {
                assert_se(reason);
                return;
        }
        /* Invariants of an accepted statement. */
        assert_se(r->n_files >= 1 && r->version >= 1 && r->rollout_percent <= 100 &&
                  r->expires > r->created);
        for (size_t i = 0; i < r->n_files; i++) {
                assert_se(r->files[i].name[0] != '.' && !strchr(r->files[i].name, '/'));
                assert_se(sha256_hex_is_valid(r->files[i].sha256_hex));
                if (!r->files[i].external)
                        assert_se(streq(r->files[i].url + strlen(RELEASE_BLOB_PREFIX),
                                        r->files[i].sha256_hex));
        }
        assert_se(release_content_id(r->files, r->n_files, cid) == 0 && streq(cid, r->content_id));
        free(reason);
        reason = NULL;
        if (release_check_statement(r, &e, &reason) < 0)
                assert_se(reason);
}

static void check_small_parsers(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = memdup_or_null(data, MIN(size, (size_t) 4096));
        _cleanup_free_ uint8_t *dec = NULL;
        _cleanup_free_ char *enc = NULL;
        size_t n = 0;
        uint64_t t;

        if (!s)
                return;
        if (release_parse_timestamp(s, &t) == 0) {
                char buf[RELEASE_TIMESTAMP_MAX];
                uint64_t t2;
                assert_se(release_parse_timestamp(release_format_timestamp(buf, t), &t2) == 0);
                assert_se(t2 == t / USEC_PER_SEC * USEC_PER_SEC);
        }
        if (dsse_base64_decode(s, strlen(s), &dec, &n) == 0) {
                /* Canonical: re-encoding gives the input back (modulo the alphabet). */
                assert_se(dsse_base64_encode(dec, n, &enc) == 0);
                assert_se(strlen(enc) == strlen(s));
                for (size_t i = 0; enc[i]; i++)
                        assert_se(enc[i] == s[i] || (enc[i] == '+' && s[i] == '-') ||
                                  (enc[i] == '/' && s[i] == '_'));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 1 << 20)
                return 0;
        check_envelope(data, size);
        check_statement(data, size);
        {
                _cleanup_(root_freep) Root *root = NULL;
                (void) root_parse_payload(data, size, &root, NULL);
        }
        check_small_parsers(data, size);
        return 0;
}
