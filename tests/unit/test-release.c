/* SPDX-License-Identifier: Apache-2.0 */

#include "test-util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include "dsse.h"
#include "fileio.h"
#include "hash.h"
#include "keys.h"
#include "release.h"
#include "strv.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

/* A valid statement; tests change one thing at a time with replace(). */
static const char BASE[] =
        "{\"_type\": \"https://in-toto.io/Statement/v1\",\n"
        " \"subject\": [{\"name\": \"model.safetensors\", \"digest\": {\"sha256\": \"" H1 "\"}},\n"
        "             {\"name\": \"config.json\", \"digest\": {\"sha256\": \"" H2 "\"}}],\n"
        " \"predicateType\": \"https://modelkeeper.dev/release/v1\",\n"
        " \"predicate\": {\"model\": \"digits-mlp\", \"channel\": \"stable\", \"version\": 42, \"label\": \"2026.11.2\",\n"
        "   \"created\": \"2026-11-28T10:00:00Z\", \"expires\": \"2026-12-28T10:00:00Z\",\n"
        "   \"files\": [{\"name\": \"model.safetensors\", \"size\": 1000, \"url\": \"blobs/sha256/" H1
        "\"},\n"
        "             {\"name\": \"config.json\", \"size\": 20, \"url\": \"blobs/sha256/" H2 "\"}],\n"
        "   \"rollout\": {\"percent\": 100}}}";

static uint64_t NOW; /* 2026-12-01T00:00:00Z */

static char *replace(const char *s, const char *from, const char *to) {
        const char *p = strstr(s, from);
        char *r = NULL;

        if (!p)
                fail_msg("'%s' not found", from);
        assert_true(asprintf(&r, "%.*s%s%s", (int) (p - s), s, to, p + strlen(from)) > 0);
        return r;
}

static void assert_reason(const char *reason, const char *needle) {
        if (!reason || !strstr(reason, needle))
                fail_msg("reason '%s' does not contain '%s'", strna(reason), needle);
}

typedef struct Fixture {
        char *dir;
        Key *a, *b, *c;   /* a (ed25519), b (p256) trusted; c (ed25519) not */
        TrustSet *trust;  /* {a}, threshold 1 */
        TrustSet *trust2; /* {a, b}, threshold 2 */
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        _cleanup_free_ char *pa = NULL, *pb = NULL, *pc = NULL;

        f->dir = test_mkdtemp();
        pa = path_join(f->dir, "a.key");
        pb = path_join(f->dir, "b.key");
        pc = path_join(f->dir, "c.key");
        assert_int_equal(keys_generate(KEY_ED25519, pa, &f->a), 0);
        assert_int_equal(keys_generate(KEY_P256, pb, &f->b), 0);
        assert_int_equal(keys_generate(KEY_ED25519, pc, &f->c), 0);
        assert_int_equal(trust_set_new(1, &f->trust), 0);
        assert_int_equal(trust_set_add(f->trust, f->a, NULL), 0);
        assert_int_equal(trust_set_new(2, &f->trust2), 0);
        assert_int_equal(trust_set_add(f->trust2, f->a, NULL), 0);
        assert_int_equal(trust_set_add(f->trust2, f->b, NULL), 0);
        assert_int_equal(release_parse_timestamp("2026-12-01T00:00:00Z", &NOW), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        assert_int_equal(rm_rf_at(AT_FDCWD, f->dir), 0);
        free(f->dir);
        key_unref(f->a);
        key_unref(f->b);
        key_unref(f->c);
        trust_set_free(f->trust);
        trust_set_free(f->trust2);
        free(f);
        return 0;
}

/* An envelope around statement, of payloadType type, signed by the given keys. */
static char *document(const char *type, const char *statement, Key *k1, Key *k2) {
        _cleanup_(dsse_envelope_freep) DsseEnvelope *e = NULL;
        char *text = NULL;

        assert_int_equal(dsse_envelope_new(type, statement, strlen(statement), &e), 0);
        if (k1)
                assert_int_equal(dsse_sign(e, k1, NULL), 0);
        if (k2)
                assert_int_equal(dsse_sign(e, k2, NULL), 0);
        assert_int_equal(dsse_format(e, &text, NULL), 0);
        return text;
}

static ReleaseExpect expect(void) {
        return (ReleaseExpect){
                .model = "digits-mlp",
                .channel = "stable",
                .high_water = 41,
                .now = NOW,
                .limits = RELEASE_LIMITS_DEFAULT,
        };
}

/* release_check() with the invariants of its outputs; ret_keyids (optional) gets the signers. */
static int check_signers(const char *doc, const TrustSet *t, const ReleaseExpect *e, char ***ret_keyids,
                         uint64_t *ret_version, char **reason) {
        _cleanup_(release_freep) Release *rel = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        uint64_t version = 0;
        int r;

        r = release_check(doc, strlen(doc), t, e, &rel, &keyids, &version, reason);
        if (r < 0) {
                /* Nothing installable is handed out on a refusal; the signers only when the
                 * signatures verified, the version only after that. */
                assert_null(rel);
                if (keyids)
                        assert_true(strv_length(keyids) >= t->threshold);
                if (version != 0)
                        assert_non_null(keyids);
        } else {
                assert_non_null(rel);
                assert_true(strv_length(keyids) >= t->threshold);
                assert_int_equal(version, rel->version);
        }
        if (ret_keyids)
                *ret_keyids = TAKE_PTR(keyids);
        if (ret_version)
                *ret_version = version;
        return r;
}

static int check(const char *doc, const TrustSet *t, const ReleaseExpect *e, char **reason) {
        return check_signers(doc, t, e, NULL, NULL, reason);
}

static void refused(Fixture *f, const char *statement, const ReleaseExpect *e, int error,
                    const char *needle) {
        _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, statement, f->a, NULL), *reason = NULL;
        int r = check(doc, f->trust, e, &reason);

        if (r != error)
                fail_msg("expected %d, got %d (%s)", error, r, strna(reason));
        assert_reason(reason, needle);
}

static void refused_change(Fixture *f, const char *from, const char *to, int error, const char *needle) {
        _cleanup_free_ char *s = replace(BASE, from, to);
        ReleaseExpect e = expect();

        refused(f, s, &e, error, needle);
}

/* ---- the good path ------------------------------------------------------------------------ */

static void test_valid(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL);
        _cleanup_(release_freep) Release *rel = NULL;
        _cleanup_(strv_freep) char **keyids = NULL;
        ReleaseExpect e = expect();
        uint64_t t;

        assert_int_equal(release_check(doc, strlen(doc), f->trust, &e, &rel, &keyids, NULL, NULL),
                         RELEASE_VERDICT_NEW);
        assert_string_equal(rel->model, "digits-mlp");
        assert_string_equal(rel->channel, "stable");
        assert_int_equal(rel->version, 42);
        assert_string_equal(rel->label, "2026.11.2");
        assert_int_equal(release_parse_timestamp("2026-11-28T10:00:00Z", &t), 0);
        assert_int_equal(rel->created, t);
        assert_int_equal(rel->n_files, 2);
        assert_string_equal(rel->files[0].name, "model.safetensors");
        assert_int_equal(rel->files[0].size, 1000);
        assert_string_equal(rel->files[0].sha256_hex, H1);
        assert_int_equal(rel->files[0].sha256[0], 0x11);
        assert_false(rel->files[0].external);
        assert_string_equal(rel->files[1].sha256_hex, H2);
        assert_int_equal(rel->total_size, 1020);
        assert_int_equal(rel->rollout_percent, 100);
        assert_true(sha256_hex_is_valid(rel->content_id));
        assert_int_equal(strv_length(keyids), 1);
        assert_string_equal(keyids[0], key_get_id(f->a));

        /* Optional fields: no label, no rollout. */
        {
                _cleanup_free_ char *s1 = replace(BASE, ", \"label\": \"2026.11.2\"", ""),
                                    *s2 = replace(s1, ",\n   \"rollout\": {\"percent\": 100}", ""),
                                    *d = document(RELEASE_PAYLOAD_TYPE, s2, f->a, NULL);
                _cleanup_(release_freep) Release *r2 = NULL;
                assert_int_equal(release_check(d, strlen(d), f->trust, &e, &r2, NULL, NULL, NULL),
                                 RELEASE_VERDICT_NEW);
                assert_string_equal(r2->label, "");
                assert_int_equal(r2->rollout_percent, 100);
                /* Same files, so the same content id. */
                assert_string_equal(r2->content_id, rel->content_id);
        }
        assert_string_equal(release_verdict_to_string(RELEASE_VERDICT_NOT_SELECTED), "not-selected");
        assert_int_equal(release_verdict_from_string("current"), RELEASE_VERDICT_CURRENT);
        assert_int_equal(release_verdict_from_string("bogus"), -EINVAL);
}

/* ---- signatures --------------------------------------------------------------------------- */

static void test_signature_attacks(void **state) {
        Fixture *f = *state;
        ReleaseExpect e = expect();
        _cleanup_free_ char *reason = NULL;

        /* Unsigned. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, NULL, NULL);
                assert_int_equal(check(doc, f->trust, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "not signed");
        }
        /* Untrusted signer: the reason names its keyid. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->c, NULL);
                assert_int_equal(check(doc, f->trust, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "threshold not met");
                assert_reason(reason, key_get_id(f->c));
        }
        /* Payload flipped after signing: one byte of the statement (version 42 → 43). */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL), *text = NULL;
                _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
                char *v;
                assert_int_equal(dsse_parse(doc, strlen(doc), 1 << 20, &env, NULL), 0);
                v = strstr((char *) env->payload, "\"version\": 42");
                assert_non_null(v);
                v[12] = '3';
                assert_int_equal(dsse_format(env, &text, NULL), 0);
                assert_int_equal(check(text, f->trust, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "does not verify");
                assert_reason(reason, key_get_id(f->a));
        }
        /* payloadType changed on a signed document. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL),
                                    *bad = replace(doc, "application/vnd.in-toto+json",
                                                   "application/vnd.in-toto+jsoN");
                assert_int_equal(check(bad, f->trust, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "does not verify");
        }
        /* Signature replaced (random bytes under the trusted keyid). */
        {
                _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL), *text = NULL;
                assert_int_equal(dsse_parse(doc, strlen(doc), 1 << 20, &env, NULL), 0);
                assert_int_equal(RAND_bytes(env->signatures[0].sig, (int) env->signatures[0].sig_size), 1);
                assert_int_equal(dsse_format(env, &text, NULL), 0);
                assert_int_equal(check(text, f->trust, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "does not verify");
        }
        /* Extra envelope field (unsigned, so it could say anything): refused. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL),
                                    *bad = replace(doc, "\"payloadType\"",
                                                   "\"payloadUtf8\": \"{}\", \"payloadType\"");
                assert_int_equal(check(bad, f->trust, &e, &reason), -EBADMSG);
                assert_reason(reason, "envelope: unknown field 'payloadUtf8'");
        }
        /* Threshold 2: one key, the same key twice, a duplicate signature. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, f->c), *text = NULL;
                _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
                assert_int_equal(check(doc, f->trust2, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "1 of 2 required trusted keys signed");

                assert_int_equal(dsse_parse(doc, strlen(doc), 1 << 20, &env, NULL), 0);
                free(env->signatures[1].keyid);
                free(env->signatures[1].sig);
                env->signatures[1].keyid = strdup(env->signatures[0].keyid);
                env->signatures[1].sig = memdup_or_null(env->signatures[0].sig, env->signatures[0].sig_size);
                env->signatures[1].sig_size = env->signatures[0].sig_size;
                assert_int_equal(dsse_format(env, &text, NULL), 0);
                assert_int_equal(check(text, f->trust2, &e, &reason), -EKEYREJECTED);
                assert_reason(reason, "1 of 2");
                assert_reason(reason, "count once");
        }
        /* Both trusted keys: accepted. */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->b, f->a);
                assert_int_equal(check(doc, f->trust2, &e, NULL), RELEASE_VERDICT_NEW);
        }
}

/* An RSA key can neither be trusted nor count as a signer. */
static void test_rsa_signer(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, NULL, NULL), *text = NULL,
                            *reason = NULL, *pem = NULL;
        _cleanup_(dsse_envelope_freep) DsseEnvelope *env = NULL;
        _cleanup_free_ uint8_t *pae = NULL;
        unsigned char *der = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char keyid[SHA256_HEX_SIZE];
        EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        size_t pae_size = 0, sig_size = 512;
        ReleaseExpect e = expect();
        BIO *bio;
        char *data = NULL;
        long n;
        int len;

        assert_int_equal(dsse_parse(doc, strlen(doc), 1 << 20, &env, NULL), 0);
        assert_int_equal(dsse_pae(env->payload_type, strlen(env->payload_type), env->payload,
                                  env->payload_size, &pae, &pae_size),
                         0);
        env->signatures = calloc(1, sizeof(DsseSignature));
        env->signatures[0].sig = malloc(sig_size);
        assert_int_equal(EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, rsa, NULL), 1);
        assert_int_equal(EVP_DigestSign(ctx, env->signatures[0].sig, &sig_size, pae, pae_size), 1);
        env->signatures[0].sig_size = sig_size;
        len = i2d_PUBKEY(rsa, &der);
        assert_int_equal(sha256_buffer(der, (size_t) len, digest), 0);
        OPENSSL_free(der);
        hex_encode(digest, sizeof(digest), keyid);
        env->signatures[0].keyid = strdup(keyid);
        env->n_signatures = 1;
        assert_int_equal(dsse_format(env, &text, NULL), 0);

        assert_int_equal(check(text, f->trust, &e, &reason), -EKEYREJECTED);
        assert_reason(reason, "threshold not met");
        assert_reason(reason, keyid);

        /* And as a trusted key: refused when loaded. */
        bio = BIO_new(BIO_s_mem());
        assert_int_equal(PEM_write_bio_PUBKEY(bio, rsa), 1);
        n = BIO_get_mem_data(bio, &data);
        pem = memdup_or_null(data, (size_t) n);
        BIO_free(bio);
        {
                Key *k = NULL;
                assert_int_equal(key_load_public_pem(pem, strlen(pem), &k, &reason), -EPROTONOSUPPORT);
                assert_reason(reason, "unsupported key type: RSA");
        }
        EVP_MD_CTX_free(ctx);
        EVP_PKEY_free(rsa);
}

/* ---- types -------------------------------------------------------------------------------- */

static void test_types(void **state) {
        Fixture *f = *state;
        ReleaseExpect e = expect();
        _cleanup_free_ char *reason = NULL;

        /* Validly signed, but not a release. */
        {
                _cleanup_free_ char *doc = document("application/json", BASE, f->a, NULL);
                assert_int_equal(check(doc, f->trust, &e, &reason), -EPROTONOSUPPORT);
                assert_reason(reason, "payloadType is 'application/json'");
        }
        {
                _cleanup_free_ char *doc =
                        document("application/vnd.modelkeeper.root+json", BASE, f->a, NULL);
                assert_int_equal(check(doc, f->trust, &e, &reason), -EPROTONOSUPPORT);
        }
        refused_change(f, "Statement/v1", "Statement/v0.1", -EPROTONOSUPPORT, "statement _type is");
        refused_change(f, "modelkeeper.dev/release/v1", "modelkeeper.dev/release/v2", -EPROTONOSUPPORT,
                       "predicateType is");
        refused_change(f, "\"predicateType\"", "\"x\": 1, \"predicateType\"", -EBADMSG,
                       "statement: unknown field 'x'");
        refused_change(f, "\"model\": \"digits-mlp\"", "\"model\": \"digits-mlp\", \"signedBy\": \"me\"",
                       -EBADMSG, "predicate: unknown field 'signedBy'");
        refused_change(f, "{\"percent\": 100}", "{\"percent\": 100, \"seed\": 1}", -EBADMSG,
                       "predicate.rollout: unknown field 'seed'");
        refused_change(f, "\"size\": 20,", "\"size\": 20, \"mode\": 493,", -EBADMSG,
                       "predicate.files[1]: unknown field 'mode'");
        refused_change(f, "{\"sha256\": \"" H1 "\"}", "{\"sha256\": \"" H1 "\", \"sha512\": \"00\"}",
                       -EBADMSG, "statement.subject[0].digest: unknown field 'sha512'");
        refused_change(f, "\"version\": 42", "\"version\": 42.0", -EBADMSG,
                       "predicate.version: not an integer");
        refused_change(f, "\"version\": 42", "\"version\": \"42\"", -EBADMSG,
                       "predicate.version: not an integer");
        refused_change(f, "\"version\": 42", "\"version\": 0", -EBADMSG,
                       "predicate.version: 0 is out of range");
        refused_change(f, "\"version\": 42", "\"version\": -42", -EBADMSG, "out of range");
        refused_change(f, "\"version\": 42", "\"version\": 9007199254740992", -EBADMSG, "out of range");
        refused_change(f, "\"percent\": 100", "\"percent\": 101", -EBADMSG,
                       "predicate.rollout.percent: 101 is out of range");
        refused_change(f, "\"model\": \"digits-mlp\"", "\"model\": \"../etc\"", -EBADMSG,
                       "predicate.model: '../etc' is not a valid name");
        refused_change(f, "\"channel\": \"stable\"", "\"channel\": \"\"", -EBADMSG,
                       "predicate.channel: empty");
        refused_change(f, "\"label\": \"2026.11.2\"", "\"label\": \"a\\u001b[31m\"", -EBADMSG,
                       "predicate.label: contains a control character");
        refused_change(f, "\"label\": \"2026.11.2\"", "\"label\": \"a\", \"label\": \"b\"", -EBADMSG,
                       "duplicate");
        refused_change(f, "2026-12-28T10:00:00Z", "2026-12-28 10:00:00", -EBADMSG,
                       "predicate.expires: '2026-12-28 10:00:00' is not an RFC 3339");
        refused_change(f, "2026-12-28T10:00:00Z", "2026-11-28T10:00:00Z", -EBADMSG,
                       "not later than predicate.created");
        refused_change(f, "\"predicate\": {", "\"predicate\": [], \"p\": {", -EBADMSG, "unknown field 'p'");
        refused_change(f, "\"files\": [", "\"files\": {}, \"f\": [", -EBADMSG, "unknown field 'f'");
}

/* ---- files, names, URLs, subjects -------------------------------------------------------- */

static void test_hostile_names(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *name, *needle;
        } cases[] = {
                {"/etc/passwd", "contains '/'"},
                {"../../etc/passwd", "contains '/'"},
                {"..", "'.' and '..' are not file names"},
                {".", "'.' and '..' are not file names"},
                {"a/b", "contains '/'"},
                {"x\\u0000y", "contains a NUL character"},
                {"\\u0001x", "contains a control character"},
                {"x\\ny", "contains a control character"},
                {"x\\u007f", "contains a control character"},
                {".hidden", "starts with '.'"},
                {".#config.json.0123", "starts with '.'"},
                {"", "empty"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *n = NULL, *s1 = NULL, *s2 = NULL;
                ReleaseExpect e = expect();

                assert_true(asprintf(&n, "\"name\": \"%s\"", cases[i].name) > 0);
                s1 = replace(BASE, "\"name\": \"config.json\", \"size\"", "SENTINEL, \"size\"");
                s2 = replace(s1, "SENTINEL", n);
                refused(f, s2, &e, -EBADMSG, cases[i].needle);
        }

        /* Duplicate file names. */
        {
                _cleanup_free_ char *s1 = replace(BASE, "\"name\": \"config.json\", \"size\"",
                                                  "\"name\": \"model.safetensors\", \"size\"");
                ReleaseExpect e = expect();
                refused(f, s1, &e, -EBADMSG, "duplicate file name 'model.safetensors'");
        }
        /* Long name. */
        {
                char longname[300];
                _cleanup_free_ char *n = NULL, *s1 = NULL;
                ReleaseExpect e = expect();
                memset(longname, 'x', 256);
                longname[256] = 0;
                assert_true(asprintf(&n, "\"name\": \"%s\", \"size\": 20", longname) > 0);
                s1 = replace(BASE, "\"name\": \"config.json\", \"size\": 20", n);
                refused(f, s1, &e, -EBADMSG, "too long");
        }
}

static void test_subjects_and_urls(void **state) {
        Fixture *f = *state;

        refused_change(f, "{\"name\": \"config.json\", \"digest\": {\"sha256\": \"" H2 "\"}}",
                       "{\"name\": \"other.bin\", \"digest\": {\"sha256\": \"" H2 "\"}}", -EBADMSG,
                       "statement.subject[1].name: 'other.bin' is not in predicate.files");
        refused_change(f,
                       ",\n             {\"name\": \"config.json\", \"digest\": {\"sha256\": \"" H2 "\"}}",
                       "", -EBADMSG, "subject has 1 entries but predicate.files has 2");
        refused_change(f, "{\"name\": \"config.json\", \"digest\": {\"sha256\": \"" H2 "\"}}",
                       "{\"name\": \"model.safetensors\", \"digest\": {\"sha256\": \"" H1 "\"}}", -EBADMSG,
                       "listed twice in the subject");
        /* The blob URL must name the subject's digest. */
        refused_change(f, "\"digest\": {\"sha256\": \"" H2 "\"}", "\"digest\": {\"sha256\": \"" H1 "\"}",
                       -EBADMSG, "url names blob " H2 " but its subject digest is " H1);
        refused_change(f, "{\"sha256\": \"" H2 "\"}",
                       "{\"sha256\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                       -EBADMSG, "not 64 lowercase hex digits");
        refused_change(f, "{\"sha256\": \"" H2 "\"}", "{\"sha256\": \"aa\"}", -EBADMSG, "too short");
        refused_change(f, "{\"sha256\": \"" H2 "\"}", "{}", -EBADMSG, "missing field 'sha256'");
        refused_change(f, "\"size\": 20", "\"size\": -1", -EBADMSG,
                       "predicate.files[1].size: -1 is out of range");
        refused_change(f, "\"files\": [", "\"files\": [], \"x\": [", -EBADMSG, "unknown field 'x'");

        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"", "\"url\": \"http://cdn.example.com/x\"",
                       -EBADMSG, "neither blobs/sha256/<sha256>");
        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"", "\"url\": \"file:///etc/shadow\"", -EBADMSG,
                       "neither blobs/sha256/<sha256>");
        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"", "\"url\": \"//evil.example.com/x\"", -EBADMSG,
                       "neither blobs/sha256/<sha256>");
        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"",
                       "\"url\": \"blobs/sha256/../../../etc/passwd\"", -EBADMSG,
                       "is not blobs/sha256/<64 lowercase hex digits>");
        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"", "\"url\": \"https://evil.example.com/a b\"",
                       -EBADMSG, "neither");
        refused_change(f, "\"url\": \"blobs/sha256/" H2 "\"", "\"url\": \"https:///x\"", -EBADMSG,
                       "neither");

        /* Absolute https URLs parse, and are refused unless the host allows them. */
        {
                _cleanup_free_ char *s = replace(BASE, "\"url\": \"blobs/sha256/" H2 "\"",
                                                 "\"url\": \"https://cdn.example.com/config.json\""),
                                    *doc = document(RELEASE_PAYLOAD_TYPE, s, f->a, NULL), *reason = NULL;
                _cleanup_(release_freep) Release *rel = NULL;
                ReleaseExpect e = expect();

                assert_int_equal(check(doc, f->trust, &e, &reason), -EPERM);
                assert_reason(reason, "absolute URL");
                e.limits.allow_external_urls = true;
                assert_int_equal(release_check(doc, strlen(doc), f->trust, &e, &rel, NULL, NULL, NULL),
                                 RELEASE_VERDICT_NEW);
                assert_true(rel->files[1].external);
                assert_string_equal(rel->files[1].url, "https://cdn.example.com/config.json");
        }
        /* No files at all. */
        {
                _cleanup_free_ char *s = strdup(
                        "{\"_type\": \"https://in-toto.io/Statement/v1\", \"subject\": [],"
                        " \"predicateType\": \"https://modelkeeper.dev/release/v1\","
                        " \"predicate\": {\"model\": \"digits-mlp\", \"channel\": \"stable\", \"version\": 42,"
                        " \"created\": \"2026-11-28T10:00:00Z\", \"expires\": \"2026-12-28T10:00:00Z\", \"files\": []}}");
                ReleaseExpect e = expect();
                refused(f, s, &e, -EBADMSG, "predicate.files: empty");
        }
}

/* ---- host policy -------------------------------------------------------------------------- */

static void test_policy(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL), *reason = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        ReleaseExpect e;

        /* Mix and match. */
        e = expect();
        e.model = "other-model";
        assert_int_equal(check(doc, f->trust, &e, &reason), -EXDEV);
        assert_reason(reason, "release is for model 'digits-mlp', this host expects 'other-model'");
        e = expect();
        e.channel = "beta";
        assert_int_equal(check(doc, f->trust, &e, &reason), -EXDEV);
        assert_reason(reason, "channel 'stable', this host follows 'beta'");

        /* Freeze: expired, exactly at expiry, and just before. */
        e = expect();
        assert_int_equal(release_parse_timestamp("2027-01-01T00:00:00Z", &e.now), 0);
        assert_int_equal(check(doc, f->trust, &e, &reason), -ESTALE);
        assert_reason(reason, "release expired at 2026-12-28T10:00:00Z (now 2027-01-01T00:00:00Z)");
        assert_int_equal(release_parse_timestamp("2026-12-28T10:00:00Z", &e.now), 0);
        assert_int_equal(check(doc, f->trust, &e, &reason), -ESTALE);
        assert_int_equal(release_parse_timestamp("2026-12-28T09:59:59.999999Z", &e.now), 0);
        assert_int_equal(check(doc, f->trust, &e, NULL), RELEASE_VERDICT_NEW);

        /* Created in the future beyond the skew; within it is fine. */
        e = expect();
        assert_int_equal(release_parse_timestamp("2026-11-28T08:00:00Z", &e.now), 0);
        assert_int_equal(check(doc, f->trust, &e, &reason), -ETIME);
        assert_reason(reason, "in the future");
        assert_int_equal(release_parse_timestamp("2026-11-28T09:30:00Z", &e.now), 0);
        assert_int_equal(check(doc, f->trust, &e, NULL), RELEASE_VERDICT_NEW);

        /* Limits. */
        e = expect();
        e.limits.max_files = 1;
        assert_int_equal(check(doc, f->trust, &e, &reason), -EFBIG);
        assert_reason(reason, "release has 2 files, more than the limit of 1");
        e = expect();
        e.limits.max_file_size = 999;
        assert_int_equal(check(doc, f->trust, &e, &reason), -EFBIG);
        assert_reason(reason, "file 'model.safetensors' is");
        e = expect();
        e.limits.max_total_size = 1019;
        assert_int_equal(check(doc, f->trust, &e, &reason), -EFBIG);
        assert_reason(reason, "in total");
        e = expect();
        e.limits.max_document_size = strlen(doc) - 1;
        assert_int_equal(check(doc, f->trust, &e, &reason), -EFBIG);
        assert_reason(reason, "document is");

        /* Versions: lower = downgrade, equal + same files = current, equal + other files = refused. */
        assert_int_equal(release_check(doc, strlen(doc), f->trust,
                                       &(ReleaseExpect){.model = "digits-mlp",
                                                        .channel = "stable",
                                                        .now = NOW,
                                                        .limits = RELEASE_LIMITS_DEFAULT},
                                       &rel, NULL, NULL, NULL),
                         RELEASE_VERDICT_NEW);
        e = expect();
        e.high_water = 43;
        assert_int_equal(check(doc, f->trust, &e, &reason), -ERANGE);
        assert_reason(
                reason,
                "version 42 is lower than version 43 already accepted on channel 'stable': downgrade refused");
        e.high_water = 42;
        e.high_water_content = rel->content_id;
        assert_int_equal(check(doc, f->trust, &e, NULL), RELEASE_VERDICT_CURRENT);
        e.high_water_content = NULL;
        assert_int_equal(check(doc, f->trust, &e, NULL), RELEASE_VERDICT_CURRENT);
        {
                /* Same version, one file swapped. */
                _cleanup_free_ char *s1 = replace(BASE, "\"size\": 20", "\"size\": 21"),
                                    *d = document(RELEASE_PAYLOAD_TYPE, s1, f->a, NULL);
                e.high_water_content = rel->content_id;
                assert_int_equal(check(d, f->trust, &e, &reason), -EEXIST);
                assert_reason(reason, "version 42 was already accepted with other files");
        }
        {
                /* Same version, same files, new expiry, label and rollout: still the same release. */
                _cleanup_free_ char *s1 = replace(BASE, "2026-12-28", "2027-01-28"),
                                    *s2 = replace(s1, "2026.11.2", "again"),
                                    *s3 = replace(s2, "\"percent\": 100", "\"percent\": 50"),
                                    *d = document(RELEASE_PAYLOAD_TYPE, s3, f->a, NULL);
                assert_int_equal(check(d, f->trust, &e, NULL), RELEASE_VERDICT_CURRENT);
        }
}

/* Once the signatures verified, every later refusal still names who signed (and the version,
 * once the statement parsed): the journal's REASON of a refused release names its keys. */
static void test_refusal_signers(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *from, *to;
                int error;
                uint64_t version; /* 0: the statement does not parse */
        } cases[] = {
                {"\"model\": \"digits-mlp\"", "\"model\": \"other\"", -EXDEV, 42},
                {"\"expires\": \"2026-12-28T10:00:00Z\"", "\"expires\": \"2026-11-29T10:00:00Z\"", -ESTALE,
                 42},
                {"\"version\": 42", "\"version\": 40", -ERANGE, 40},
                {"\"size\": 1000", "\"size\": 100000000000", -EFBIG, 42},
                {"\"name\": \"config.json\", \"size\"", "\"name\": \"../config.json\", \"size\"", -EBADMSG,
                 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = replace(BASE, cases[i].from, cases[i].to), *doc = NULL,
                                    *reason = NULL;
                _cleanup_(strv_freep) char **keyids = NULL;
                ReleaseExpect e = expect();
                uint64_t version = 0;

                e.limits.max_file_size = 1000000;
                doc = document(RELEASE_PAYLOAD_TYPE, s, f->a, f->c);
                assert_int_equal(check_signers(doc, f->trust, &e, &keyids, &version, &reason),
                                 cases[i].error);
                assert_int_equal(strv_length(keyids), 1);
                assert_string_equal(keyids[0], key_get_id(f->a)); /* not the untrusted c */
                assert_int_equal(version, cases[i].version);
        }
        /* Same version, other content (the high-water mark's content id differs). */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->b, f->a), *reason = NULL;
                _cleanup_(strv_freep) char **keyids = NULL;
                ReleaseExpect e = expect();
                uint64_t version = 0;

                e.high_water = 42;
                e.high_water_content = H1;
                assert_int_equal(check_signers(doc, f->trust2, &e, &keyids, &version, &reason), -EEXIST);
                assert_int_equal(strv_length(keyids), 2);
                assert_string_equal(keyids[0], key_get_id(f->b)); /* envelope order */
                assert_string_equal(keyids[1], key_get_id(f->a));
                assert_int_equal(version, 42);
        }
        /* Signed, but not our payloadType: the keys, no version. */
        {
                _cleanup_free_ char *doc = document("application/json", BASE, f->a, NULL), *reason = NULL;
                _cleanup_(strv_freep) char **keyids = NULL;
                ReleaseExpect e = expect();
                uint64_t version = 0;

                assert_int_equal(check_signers(doc, f->trust, &e, &keyids, &version, &reason),
                                 -EPROTONOSUPPORT);
                assert_int_equal(strv_length(keyids), 1);
                assert_int_equal(version, 0);
        }
        /* The signature check itself fails: nothing handed out (its reason names the keys). */
        {
                _cleanup_free_ char *doc = document(RELEASE_PAYLOAD_TYPE, BASE, f->a, NULL), *reason = NULL;
                _cleanup_(strv_freep) char **keyids = NULL;
                ReleaseExpect e = expect();
                uint64_t version = 0;

                assert_int_equal(check_signers(doc, f->trust2, &e, &keyids, &version, &reason),
                                 -EKEYREJECTED);
                assert_null(keyids);
                assert_int_equal(version, 0);
                assert_reason(reason, key_get_id(f->a));
        }
}

static void test_rollout(void **state) {
        Fixture *f = *state;
        const char *mid = "0123456789abcdef0123456789abcdef";
        unsigned selected = 0;

        /* The vector of RELEASE-FORMAT.md §7 (also computed with sha256sum and with Python). */
        assert_int_equal(release_rollout_bucket(mid, "digits-mlp", 42), 55);
        assert_int_equal(release_rollout_bucket(mid, "digits-mlp", 43), 89);
        assert_int_equal(release_rollout_bucket("ffffffffffffffffffffffffffffffff", "m", 1), 28);
        assert_int_equal(release_rollout_bucket("0123456789ABCDEF0123456789ABCDEF", "m", 1), -EINVAL);
        assert_int_equal(release_rollout_bucket("0123", "m", 1), -EINVAL);
        assert_int_equal(release_rollout_bucket(NULL, "m", 1), -EINVAL);

        for (unsigned percent = 0; percent <= 100; percent += 50) {
                _cleanup_free_ char *p = NULL, *s = NULL, *doc = NULL;
                ReleaseExpect e = expect();
                int want;

                assert_true(asprintf(&p, "\"percent\": %u", percent) > 0);
                s = replace(BASE, "\"percent\": 100", p);
                doc = document(RELEASE_PAYLOAD_TYPE, s, f->a, NULL);
                e.machine_id = mid;
                want = 55 < percent ? RELEASE_VERDICT_NEW : RELEASE_VERDICT_NOT_SELECTED;
                assert_int_equal(check(doc, f->trust, &e, NULL), want);
                /* A host without a (readable) machine id has no bucket: it is in no partial
                 * rollout, not in all of them; a release for everybody still reaches it. */
                e.machine_id = NULL;
                assert_int_equal(check(doc, f->trust, &e, NULL),
                                 percent == 100 ? RELEASE_VERDICT_NEW : RELEASE_VERDICT_NOT_SELECTED);
                /* release verify: no rollout decision at all. */
                e.ignore_rollout = true;
                assert_int_equal(check(doc, f->trust, &e, NULL), RELEASE_VERDICT_NEW);
        }
        /* The same through release_check_statement() alone, at the edges: 99 % and 1 %. */
        for (unsigned percent = 1; percent <= 99; percent += 98) {
                _cleanup_free_ char *p = NULL, *s = NULL, *reason = NULL;
                _cleanup_(release_freep) Release *rel = NULL;
                ReleaseExpect e = expect();

                assert_true(asprintf(&p, "\"percent\": %u", percent) > 0);
                s = replace(BASE, "\"percent\": 100", p);
                assert_int_equal(release_parse_statement(s, strlen(s), &rel, NULL), 0);
                assert_int_equal(release_check_statement(rel, &e, &reason), RELEASE_VERDICT_NOT_SELECTED);
                assert_null(reason);
        }

        /* Buckets are spread evenly: 10 % of 20000 random machines, within a wide margin. */
        for (unsigned i = 0; i < 20000; i++) {
                uint8_t raw[16];
                char hex[33];
                int b;

                assert_int_equal(RAND_bytes(raw, sizeof(raw)), 1);
                hex_encode(raw, sizeof(raw), hex);
                b = release_rollout_bucket(hex, "digits-mlp", 42);
                assert_true(b >= 0 && b < 100);
                if (b < 10)
                        selected++;
        }
        assert_in_range(selected, 1700, 2300);
}

static void test_timestamps(void **state) {
        char buf[RELEASE_TIMESTAMP_MAX];
        uint64_t t;

        assert_int_equal(release_parse_timestamp("1970-01-01T00:00:00Z", &t), 0);
        assert_int_equal(t, 0);
        assert_int_equal(release_parse_timestamp("2026-11-28T10:00:00Z", &t), 0);
        assert_int_equal(t, UINT64_C(1795860000) * USEC_PER_SEC);
        assert_string_equal(release_format_timestamp(buf, t), "2026-11-28T10:00:00Z");
        assert_int_equal(release_parse_timestamp("2024-02-29T23:59:59.5Z", &t), 0);
        assert_int_equal(t % USEC_PER_SEC, 500000);
        assert_string_equal(release_format_timestamp(buf, t), "2024-02-29T23:59:59Z");
        assert_int_equal(release_parse_timestamp("2000-02-29T00:00:00.123456789Z", &t), 0);
        assert_int_equal(t % USEC_PER_SEC, 123456);
        assert_int_equal(release_parse_timestamp("9999-12-31T23:59:59Z", &t), 0);

        {
                const char *bad[] = {"2023-02-29T00:00:00Z",
                                     "1900-02-29T00:00:00Z",
                                     "2026-13-01T00:00:00Z",
                                     "2026-00-01T00:00:00Z",
                                     "2026-04-31T00:00:00Z",
                                     "2026-11-28T24:00:00Z",
                                     "2026-11-28T10:60:00Z",
                                     "2026-11-28T10:00:60Z",
                                     "2026-11-28t10:00:00Z",
                                     "2026-11-28T10:00:00z",
                                     "2026-11-28T10:00:00+01:00",
                                     "2026-11-28T10:00:00",
                                     "2026-11-28 10:00:00Z",
                                     "1969-12-31T23:59:59Z",
                                     "+2026-11-28T10:00:00Z",
                                     "2026-11-28T10:00:00.Z",
                                     "2026-11-28T10:00:00.1234567890Z",
                                     "2026-1-28T10:00:00Z",
                                     "",
                                     "2026-11-28T10:00:00Z ",
                                     "2026-11-28T1a:00:00Z"};
                for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                        if (release_parse_timestamp(bad[i], &t) != -EINVAL)
                                fail_msg("'%s' should be refused", bad[i]);
        }
}

/* ---- publishing ---------------------------------------------------------------------------- */

static void write_input(const char *dir, const char *name, const char *content) {
        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        assert_int_equal(write_file_atomic_at(dfd, name, content, strlen(content), 0644), 0);
}

static void test_create_sign_verify(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *in = path_join(f->dir, "in"), *repo = path_join(f->dir, "repo"), *doc = NULL,
                            *signed1 = NULL, *signed2 = NULL, *reason = NULL, *docpath = NULL,
                            *ondisk = NULL, *blob = NULL, *report = NULL;
        _cleanup_(release_freep) Release *rel = NULL;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        size_t n = 0, n1 = 0, n2 = 0, rn = 0;
        ReleaseCreateParams p = {
                .model = "digits-mlp",
                .channel = "stable",
                .version = 42,
                .label = "2026.11.2",
                .expires = NOW + 30 * 86400 * USEC_PER_SEC,
                .rollout_percent = 100,
                .input_dir = in,
                .repo_dir = repo,
                .write_document = true,
        };
        ReleaseExpect e = expect();
        struct stat st1, st2;
        FILE *out;

        assert_int_equal(mkdir(in, 0755), 0);
        write_input(in, "model.safetensors", "weights weights weights\n");
        write_input(in, "config.json", "{\"layers\": 2}\n");
        assert_int_equal(release_parse_timestamp("2026-11-30T00:00:00Z", &p.created), 0);

        assert_int_equal(release_create(&p, &doc, &n, &reason), 0);
        assert_int_equal(n, strlen(doc));

        /* Blobs are content-addressed copies. */
        assert_int_equal(sha256_buffer("weights weights weights\n", 24, digest), 0);
        hex_encode(digest, sizeof(digest), hex);
        assert_true(asprintf(&blob, "%s/blobs/sha256/%s", repo, hex) > 0);
        assert_int_equal(stat(blob, &st1), 0);
        assert_int_equal(st1.st_size, 24);
        assert_int_equal(st1.st_mode & 0777, 0644);

        /* The unsigned document was written, and is what we got back. */
        assert_true(asprintf(&docpath, "%s/models/digits-mlp/stable.json", repo) > 0);
        assert_int_equal(read_full_file(docpath, 1 << 20, &ondisk, &rn), 0);
        assert_int_equal(rn, n);
        assert_memory_equal(ondisk, doc, n);
        assert_int_equal(check(doc, f->trust, &e, &reason), -EKEYREJECTED);
        assert_reason(reason, "not signed");

        /* Sign with a, refuse a second signature by a, add b: threshold 2 is met. */
        assert_int_equal(release_sign(doc, n, f->a, &signed1, &n1, NULL), 0);
        assert_int_equal(release_sign(signed1, n1, f->a, &signed2, &n2, &reason), -EEXIST);
        assert_reason(reason, "already signed by key");
        assert_int_equal(release_sign(signed1, n1, f->b, &signed2, &n2, NULL), 0);
        assert_int_equal(release_check(signed2, n2, f->trust2, &e, &rel, NULL, NULL, NULL),
                         RELEASE_VERDICT_NEW);
        assert_int_equal(rel->n_files, 2);
        assert_string_equal(rel->files[0].name, "config.json"); /* sorted */
        assert_string_equal(rel->files[1].name, "model.safetensors");
        assert_string_equal(rel->files[1].sha256_hex, hex);
        assert_int_equal(rel->files[1].size, 24);
        assert_int_equal(rel->created, p.created);

        /* Signing in place. */
        assert_int_equal(release_sign_file(docpath, f->b, NULL), 0);
        free(ondisk);
        ondisk = NULL;
        assert_int_equal(read_full_file(docpath, 1 << 20, &ondisk, &rn), 0);
        e.limits.max_document_size = 1 << 20;
        {
                TrustSet *tb = NULL;
                assert_int_equal(trust_set_new(1, &tb), 0);
                assert_int_equal(trust_set_add(tb, f->b, NULL), 0);
                assert_int_equal(check(ondisk, tb, &e, NULL), RELEASE_VERDICT_NEW);
                trust_set_free(tb);
        }

        /* Signing only what parses. */
        {
                _cleanup_free_ char *junk = document(RELEASE_PAYLOAD_TYPE, "{\"_type\": 1}", NULL, NULL),
                                    *o = NULL;
                size_t on = 0;
                assert_int_equal(release_sign(junk, strlen(junk), f->a, &o, &on, &reason), -EBADMSG);
                free(junk);
                junk = document("text/plain", BASE, NULL, NULL);
                assert_int_equal(release_sign(junk, strlen(junk), f->a, &o, &on, &reason), -EPROTONOSUPPORT);
        }

        /* Publishing again keeps existing blobs untouched; a corrupt blob is replaced. */
        assert_int_equal(release_create(&p, NULL, NULL, NULL), 0);
        assert_int_equal(stat(blob, &st2), 0);
        assert_int_equal(st1.st_ino, st2.st_ino);
        {
                _cleanup_free_ char *blobdir = NULL, *content = NULL;
                _cleanup_close_ int bfd = -EBADF;
                size_t cn = 0;
                assert_true(asprintf(&blobdir, "%s/blobs/sha256", repo) > 0);
                bfd = open(blobdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                assert_int_equal(write_file_atomic_at(bfd, hex, "corrupt", 7, 0644), 0);
                assert_int_equal(release_create(&p, NULL, NULL, NULL), 0);
                assert_int_equal(read_full_file(blob, 1024, &content, &cn), 0);
                assert_int_equal(cn, 24);
        }

        /* The verification report. */
        out = open_memstream(&report, &rn);
        assert_int_equal(release_verify_report(signed2, n2, f->trust2, &e, out, NULL), RELEASE_VERDICT_NEW);
        fclose(out);
        assert_non_null(strstr(report, "signatures: 2 distinct trusted key(s), threshold 2: met"));
        assert_non_null(strstr(report, "result: new"));
        assert_non_null(strstr(report, key_get_id(f->b)));
        free(report);
        report = NULL;
        out = open_memstream(&report, &rn);
        assert_int_equal(release_verify_report(signed1, n1, f->trust2, &e, out, &reason), -EKEYREJECTED);
        fclose(out);
        assert_non_null(strstr(report, "REFUSED: signature threshold not met"));
        assert_non_null(strstr(report, "result: refused"));
        assert_reason(reason, "threshold not met");
}

static void test_create_refusals(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *in = path_join(f->dir, "in2"), *repo = path_join(f->dir, "repo2"),
                            *reason = NULL, *sub = NULL, *link = NULL;
        ReleaseCreateParams p = {
                .model = "m",
                .channel = "c",
                .version = 1,
                .created = NOW,
                .expires = NOW + USEC_PER_SEC,
                .rollout_percent = 10,
                .input_dir = in,
                .repo_dir = repo,
        };

        assert_int_equal(mkdir(in, 0755), 0);
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -ENODATA);
        assert_reason(reason, "no files");

        write_input(in, "w.bin", "x");
        assert_true(asprintf(&link, "%s/l", in) > 0);
        assert_int_equal(symlink("w.bin", link), 0);
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -ELOOP);
        assert_reason(reason, "'l' is a symbolic link");
        assert_int_equal(unlink(link), 0);

        assert_true(asprintf(&sub, "%s/sub", in) > 0);
        assert_int_equal(mkdir(sub, 0755), 0);
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EISDIR);
        assert_reason(reason, "'sub' is a directory");
        assert_int_equal(rmdir(sub), 0);

        write_input(in, ".hidden", "x");
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        assert_reason(reason, "unsafe file name '.hidden'");
        {
                _cleanup_free_ char *h = path_join(in, ".hidden");
                assert_int_equal(unlink(h), 0);
        }
        write_input(in, "bad\x01name", "x");
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        assert_reason(reason, "bad\\x01name");
        {
                _cleanup_free_ char *h = path_join(in, "bad\x01name");
                assert_int_equal(unlink(h), 0);
        }

        p.expires = NOW;
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        assert_reason(reason, "expiry time");
        p.expires = NOW + USEC_PER_SEC;
        p.model = "../x";
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        assert_reason(reason, "invalid model name");
        p.model = "m";
        p.rollout_percent = 101;
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        p.rollout_percent = 10;
        p.label = "a\nb";
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        p.label = NULL;
        p.version = 0;
        assert_int_equal(release_create(&p, NULL, NULL, &reason), -EINVAL);
        p.version = 1;
        {
                _cleanup_free_ char *doc = NULL;
                size_t n = 0;
                assert_int_equal(release_create(&p, &doc, &n, NULL), 0);
                /* Not written unless asked. */
                assert_int_equal(access(repo, F_OK), 0);
                {
                        _cleanup_free_ char *m = path_join(repo, "models");
                        assert_int_equal(access(m, F_OK), -1);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_signature_attacks, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rsa_signer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_types, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_subjects_and_urls, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refusal_signers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rollout, setup, teardown),
                cmocka_unit_test(test_timestamps),
                cmocka_unit_test_setup_teardown(test_create_sign_verify, setup, teardown),
                cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
