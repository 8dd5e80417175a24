/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Trust roots and their rotation (DESIGN.md §4.2 "Key rotation", RELEASE-FORMAT.md §8), after
 * TUF's root role (specification §5.3):
 *
 *   <base>/root/<N>.json  a DSSE envelope, payloadType ROOT_PAYLOAD_TYPE, payload
 *                         {"version": N, "expires": "<RFC 3339>", "threshold": t, "keys": ["<PEM SPKI>", …]}
 *
 * A host starts from a root it was given by its administrator, never from one it fetched:
 * either the keys + threshold of modelkeeper.yaml "trust:" (root_new_implicit(): version 1,
 * never expires), or a root document file (root_load_document(), checked against its own keys).
 * It then walks root/<N+1>.json, root/<N+2>.json, … (root_walk()): each must be signed by a
 * threshold of the keys of the root before it *and* by a threshold of its own keys, and carry
 * exactly version N+1. As in TUF, an intermediate root's expiry does not matter (a host that was
 * offline for a year must still be able to catch up); only the newest root must not be expired
 * (root_check_expiry(), the freeze check) before its keys are used for releases.
 *
 * The newest verified root is persisted in the state directory (root_state_format() /
 * root_state_parse()), bound to the configured starting root by its fingerprint so that a
 * change of the administrator's trust configuration starts over from the new configuration.
 *
 * One key set serves both purposes: the root's keys sign the next root and the releases.
 */

#include "keys.h"
#include "macros.h"

#define ROOT_PAYLOAD_TYPE "application/vnd.modelkeeper.root+json"
#define ROOT_DOCUMENT_MAX (64 * 1024)
/* Rotations applied per walk at most (TUF's max_root_rotations); the next walk continues. */
#define ROOT_WALK_STEPS_MAX 32

typedef struct Root {
        uint64_t version;
        uint64_t expires; /* µs since the epoch; USEC_INFINITY: never (implicit root) */
        TrustSet *trust;
        char *document; /* the signed envelope this root came from; NULL: implicit */
        size_t document_size;
} Root;

Root *root_free(Root *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Root *, root_free);

/* Version 1, never expires, with a copy of t (which must validate). */
int root_new_implicit(const TrustSet *t, Root **ret);
int root_copy(const Root *r, Root **ret);

/* The payload alone (no signatures): strict fields, keys loadable and unique, 1 <= threshold <=
 * number of keys, version >= 1. Pure. -EBADMSG, -EPROTONOSUPPORT (a key type we refuse). */
int root_parse_payload(const void *payload, size_t size, Root **ret, char **ret_reason);

/* A root document given by the administrator: must parse and carry a threshold of signatures by
 * its own keys. */
int root_load_document(const void *document, size_t size, Root **ret, char **ret_reason);

/* Verify root/<current->version + 1>.json: signed by current's threshold, payloadType
 * ROOT_PAYLOAD_TYPE, version exactly current->version + 1 (-ERANGE otherwise), signed by its own
 * threshold. Expiry is not checked (see above). */
int root_verify_next(const Root *current, const void *document, size_t size, Root **ret, char **ret_reason);

/* -ESTALE unless r->expires > now. */
int root_check_expiry(const Root *r, uint64_t now, char **ret_reason);

/* Fetch root/<version>.json: 0 and the bytes (malloc'd), -ENOENT when there is none (the walk
 * ends), any other negative errno aborts the walk. The callback does the I/O; root_walk() does
 * none. */
typedef int (*RootFetchFn)(uint64_t version, void *userdata, char **ret_data, size_t *ret_size);

/* Walk the chain from trusted as far as it goes (at most max_steps rotations; 0 means
 * ROOT_WALK_STEPS_MAX). All or nothing: on success *ret is the newest root (a copy of trusted
 * when there is no newer one) and the return value the number of rotations; on a refused
 * document, the error and its reason, and nothing is returned. Call root_check_expiry() on the
 * result before using it. */
int root_walk(const Root *trusted, RootFetchFn fetch, void *userdata, unsigned max_steps, Root **ret,
              char **ret_reason);

/* SHA-256 hex over "modelkeeper-root-v1\n" version "\n" expires "\n" threshold "\n" and the
 * sorted keyids, one per line: identifies a root independently of how its document is encoded. */
int root_fingerprint(const Root *r, char ret[static SHA256_HEX_SIZE]);

/* Persisted state: {"base": "<fingerprint of the configured root>", "document": "<envelope>"}.
 * root_state_parse() returns -ESTALE when base does not match the configured root (the
 * administrator changed the trust configuration: start again from it) and otherwise the stored
 * root after checking it parses and is signed by its own threshold; a stored root older than
 * the configured one is -ESTALE too. */
int root_state_format(const Root *configured, const Root *current, char **ret, size_t *ret_size);
int root_state_parse(const void *data, size_t size, const Root *configured, Root **ret, char **ret_reason);

/* Publishing: an unsigned root document for the keys of t (their public halves) with
 * t->threshold; then add signatures one key at a time (old and new root keys). root_sign()
 * refuses a second signature by the same key. */
int root_create(uint64_t version, uint64_t expires, const TrustSet *t, char **ret, size_t *ret_size,
                char **ret_reason);
int root_sign(const void *document, size_t size, const Key *key, char **ret, size_t *ret_size,
              char **ret_reason);
