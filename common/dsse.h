/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * DSSE, the Dead Simple Signing Envelope (secure-systems-lab/dsse, envelope.md and protocol.md
 * v1.0), as used for release and root documents (RELEASE-FORMAT.md §3):
 *
 *   {"payloadType": "<type>", "payload": "<base64>", "signatures": [{"keyid": "<id>", "sig": "<base64>"}]}
 *
 * Every signature is over PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
 * LEN being the byte length in ASCII decimal without leading zeros. The signed bytes are the
 * payload bytes themselves: nothing is canonicalised.
 *
 * Parsing is strict (see dsse_parse()); verification counts distinct trusted keys against a
 * threshold and hands out the payload only when the threshold is met (see dsse_verify()).
 * These functions do no I/O and no logging; they can be fuzzed.
 */

#include "keys.h"
#include "macros.h"

/* At most this many signatures in an envelope: each may cost up to one verification per
 * trusted key (when it has no keyid), so the count bounds the work an envelope can ask for. */
#define DSSE_SIGNATURES_MAX   16
#define DSSE_KEYID_MAX        256
#define DSSE_PAYLOAD_TYPE_MAX 256

typedef struct DsseSignature {
        char *keyid; /* NULL when absent, null or "" (the spec treats these alike) */
        uint8_t *sig;
        size_t sig_size;
} DsseSignature;

typedef struct DsseEnvelope {
        char *payload_type;
        uint8_t *payload; /* decoded; NUL-terminated for convenience (not counted in the size) */
        size_t payload_size;
        DsseSignature *signatures;
        size_t n_signatures;
} DsseEnvelope;

DsseEnvelope *dsse_envelope_free(DsseEnvelope *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(DsseEnvelope *, dsse_envelope_free);

/* A new unsigned envelope with a copy of the payload. */
int dsse_envelope_new(const char *payload_type, const void *payload, size_t size, DsseEnvelope **ret);

/*
 * Parse an envelope, refusing:
 *   - more than max_size bytes (-EFBIG);
 *   - anything but one JSON object (jansson, JSON_REJECT_DUPLICATES: a key given twice is an
 *     error, not "last one wins");
 *   - a missing field, a field of the wrong JSON type, an unknown field at the top level or in
 *     a signature (stricter than DSSE's "consumers MUST ignore unrecognized fields": a field we
 *     do not understand in a document that decides what runs on a host is refused, not skipped);
 *   - NUL bytes (JSON \u0000) in payloadType or keyid;
 *   - base64 that is not strict RFC 4648 (see dsse_base64_decode()), an empty sig, more than
 *     DSSE_SIGNATURES_MAX signatures.
 * keyid may be absent, JSON null or "" — all three mean "no keyid". Errors: -EFBIG, -EBADMSG,
 * -ENOMEM; *ret_reason (optional) says which rule failed.
 */
int dsse_parse(const void *data, size_t size, size_t max_size, DsseEnvelope **ret, char **ret_reason);

/* The envelope as JSON (2-space indented, trailing newline), fields in the order payloadType,
 * payload, signatures; keyid omitted when NULL. */
int dsse_format(const DsseEnvelope *e, char **ret, size_t *ret_size);

/* PAE(type, body) as above. */
int dsse_pae(const char *type, size_t type_size, const void *body, size_t body_size, uint8_t **ret,
             size_t *ret_size);

/* Append a signature by k (which must hold a private key) with keyid = key_get_id(k). Refuses
 * (-EEXIST) when the envelope already carries a signature with that keyid. */
int dsse_sign(DsseEnvelope *e, const Key *k, char **ret_reason);

/*
 * Verify against a trust set. For every signature, in order:
 *   - keyid names a trusted key: the signature must verify with that key, or the whole envelope
 *     is refused (-EKEYREJECTED): a trusted keyid on a bad signature means the payload or the
 *     signature was changed after signing;
 *   - keyid names no trusted key (an unknown key, a key of a type we refuse, another tool's
 *     keyid format): the signature is ignored;
 *   - no keyid: each trusted key is tried (DSSE makes the keyid an optional hint, and some
 *     producers leave it empty); the first that verifies counts, none → ignored.
 * Each trusted key counts at most once however many signatures it made. When fewer than
 * t->threshold distinct trusted keys verified: -EKEYREJECTED with a reason naming the keys that
 * did and the keyids that were ignored. Only when the threshold is met are the outputs written:
 * ret_payload (optional) a copy of the payload (NUL-terminated), ret_keyids (optional) the ids
 * of the trusted keys that verified, in envelope order, each once.
 *
 * The payloadType is authenticated (it is part of PAE) but not checked here: the caller
 * compares it with what it expects after this returns, as DSSE's protocol says.
 */
int dsse_verify(const DsseEnvelope *e, const TrustSet *t, uint8_t **ret_payload, size_t *ret_payload_size,
                char ***ret_keyids, char **ret_reason);

/*
 * Base64 (RFC 4648). Decoding is strict and accepts either alphabet, as DSSE requires of
 * verifiers: the standard one ('+', '/') or the URL-safe one ('-', '_'), but not both in one
 * string; the length must be a multiple of four with '=' padding (unpadded URL-safe text is
 * refused); no whitespace or line breaks; the unused bits of the last character must be zero,
 * so every byte string has exactly one accepted encoding per alphabet. Encoding uses the
 * standard alphabet with padding. -EBADMSG on bad input.
 */
int dsse_base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);
int dsse_base64_encode(const void *data, size_t size, char **ret);
