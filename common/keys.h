/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Signing keys for releases and trust roots (DESIGN.md §4.2, RELEASE-FORMAT.md §2).
 *
 * Exactly two algorithms, both as OpenSSL writes them, so that `openssl genpkey`, `openssl pkey`,
 * `openssl pkeyutl` and `openssl dgst` can always make and check what we make and check:
 *
 *   ed25519  pure Ed25519 (RFC 8032) over the message itself; 64-byte signatures.
 *   p256     ECDSA on NIST P-256 with SHA-256; signatures DER-encoded (ECDSA-Sig-Value), as
 *            `openssl dgst -sha256 -sign` writes them. Both low-S and high-S signatures verify:
 *            OpenSSL does not normalise S, and ECDSA malleability cannot inflate a threshold
 *            because signatures are counted by distinct key, never by signature bytes.
 *
 * Anything else (RSA, P-384, secp256k1, Ed448, explicit curve parameters, …) is refused when
 * loaded, with a reason that names what was found.
 *
 * Public keys are PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"). The keyid is the
 * lowercase hex SHA-256 of the key's DER SPKI in its canonical encoding (named curve,
 * uncompressed point), which is what `openssl pkey -pubin -outform DER | sha256sum` prints for
 * any key `openssl pkey -pubout` wrote. A compressed-point encoding of the same key gets the
 * same keyid, so one key can never be counted twice under two ids.
 *
 * Private keys are PEM PKCS#8 ("-----BEGIN PRIVATE KEY-----", what `openssl genpkey` writes) or
 * SEC1 ("EC PRIVATE KEY"); encrypted private keys are refused (sign on a machine where the key
 * file itself is protected, or add support for a passphrase prompt in the CLI).
 */

#include "hash.h"
#include "macros.h"

typedef enum KeyType {
        KEY_ED25519,
        KEY_P256,
        _KEY_TYPE_MAX,
        _KEY_TYPE_INVALID = -EINVAL,
} KeyType;

const char *key_type_to_string(KeyType t) _const_; /* "ed25519", "p256" */
KeyType key_type_from_string(const char *s) _pure_;

/* Largest PEM file we read for a key; real ones are a few hundred bytes. */
#define KEY_PEM_MAX (16 * 1024)
/* Longest signature of either algorithm: Ed25519 64, DER ECDSA P-256 at most 72 bytes. */
#define KEY_SIGNATURE_MAX 72
#define KEY_ID_HEX_SIZE   SHA256_HEX_SIZE

/* A loaded key, reference-counted; may hold the private half. */
typedef struct Key Key;

Key *key_ref(Key *k);
Key *key_unref(Key *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(Key *, key_unref);

KeyType key_get_type(const Key *k) _pure_;
/* 64 lowercase hex characters. */
const char *key_get_id(const Key *k) _pure_;
bool key_has_private(const Key *k) _pure_;
/* PEM SPKI of the public half (canonical encoding), NUL-terminated. */
int key_get_public_pem(const Key *k, char **ret);

/* Public keys: the whole input must be one PEM "PUBLIC KEY" block (surrounding whitespace is
 * fine). Errors: -EBADMSG (not such a block), -EPROTONOSUPPORT (a key type or curve we refuse),
 * -EFBIG. *ret_reason (optional) says what is wrong. */
int key_load_public_pem(const void *pem, size_t size, Key **ret, char **ret_reason);
int key_load_public_file(const char *path, Key **ret, char **ret_reason);

/* Private keys; the returned key can sign and verify. The file buffer is wiped after use. */
int key_load_private_pem(const void *pem, size_t size, Key **ret, char **ret_reason);
int key_load_private_file(const char *path, Key **ret, char **ret_reason);

/* Create a new key pair: the PEM PKCS#8 private key at path (mode 0600) and the PEM SPKI public
 * key at "<path>.pub" (mode 0644). Neither file is ever overwritten: -EEXIST when either exists
 * (checked before any key material is written; the final names appear with link(2), which
 * fails rather than replaces). ret (optional) gets the new key. */
int keys_generate(KeyType type, const char *path, Key **ret);

/* Sign msg as a whole (Ed25519 pure; ECDSA over SHA-256(msg), DER signature). */
int key_sign(const Key *k, const void *msg, size_t size, uint8_t **ret_sig, size_t *ret_sig_size);
/* 0 when sig is a valid signature of msg by k, -EBADMSG when it is not (including a signature of
 * the wrong length or encoding), other negative errnos for internal failures. */
int key_verify(const Key *k, const void *msg, size_t size, const void *sig, size_t sig_size);

/*
 * A trust set: the public keys trusted for a purpose and how many of them must sign (the
 * threshold). Keys are unique (by keyid, which is canonical); at most TRUST_KEYS_MAX.
 */
#define TRUST_KEYS_MAX 32

typedef struct TrustSet {
        Key **keys;
        size_t n_keys;
        unsigned threshold;
} TrustSet;

TrustSet *trust_set_free(TrustSet *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TrustSet *, trust_set_free);

int trust_set_new(unsigned threshold, TrustSet **ret);
/* Takes a new reference to k. -EEXIST when the key is already in the set, -E2BIG when full. */
int trust_set_add(TrustSet *t, Key *k, char **ret_reason);
/* At least one key, 1 <= threshold <= number of keys. */
int trust_set_validate(const TrustSet *t, char **ret_reason);
/* Index of the key with that keyid, or -ENOENT. */
int trust_set_find(const TrustSet *t, const char *keyid);
/* Load a list of PEM SPKI files (the host's trust.keys) with a threshold, and validate. */
int trust_set_load_files(char *const *paths, unsigned threshold, TrustSet **ret, char **ret_reason);
/* A new set with the same keys (new references) and threshold. */
int trust_set_copy(const TrustSet *t, TrustSet **ret);
