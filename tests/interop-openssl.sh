#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# No lock-in: release documents can be signed and checked with nothing but the openssl CLI and
# a few lines of Python, and what we sign, openssl verifies (RELEASE-FORMAT.md §9).
#
#   interop-openssl.sh RELEASE_TOOL
#
# Exit 77 (meson: skipped) when openssl or /usr/bin/python3 is missing.
set -eu

TOOL=$1
PY=/usr/bin/python3
command -v openssl >/dev/null 2>&1 || { echo "openssl not found: skipping"; exit 77; }
[ -x "$PY" ] || { echo "$PY not found: skipping"; exit 77; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
step() { echo "== $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

step "keys made by openssl load, with the keyid 'openssl pkey -outform DER | sha256sum' gives"
openssl genpkey -algorithm ed25519 -out "$T/ed.key" 2>/dev/null
openssl pkey -in "$T/ed.key" -pubout -out "$T/ed.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve -out "$T/p256.key" 2>/dev/null
openssl pkey -in "$T/p256.key" -pubout -out "$T/p256.pub"
for k in ed p256; do
        want=$(openssl pkey -pubin -in "$T/$k.pub" -outform DER | sha256sum | cut -d' ' -f1)
        got=$("$TOOL" keyid "$T/$k.pub")
        [ "$want" = "$got" ] || fail "$k keyid: openssl $want, ours $got"
done
ED_ID=$(openssl pkey -pubin -in "$T/ed.pub" -outform DER | sha256sum | cut -d' ' -f1)
P256_ID=$(openssl pkey -pubin -in "$T/p256.pub" -outform DER | sha256sum | cut -d' ' -f1)

step "an RSA key from openssl is refused with a reason"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/rsa.key" 2>/dev/null
openssl pkey -in "$T/rsa.key" -pubout -out "$T/rsa.pub"
if "$TOOL" keyid "$T/rsa.pub" 2>"$T/err"; then fail "RSA key accepted"; fi
grep -q "unsupported key type: RSA" "$T/err" || fail "RSA reason: $(cat "$T/err")"

step "an unsigned release, and its PAE computed independently in Python"
mkdir "$T/in"
printf 'weights\n' >"$T/in/model.safetensors"
printf '{"layers": 2}\n' >"$T/in/config.json"
DOC=$("$TOOL" create digits-mlp stable 7 2099-01-01T00:00:00Z 100 "$T/in" "$T/repo")
cp "$DOC" "$T/unsigned.json"
"$PY" - "$DOC" "$T/pae.bin" <<'PYEOF'
import base64, json, sys
env = json.load(open(sys.argv[1]))
t = env["payloadType"].encode()
body = base64.b64decode(env["payload"], validate=True)
pae = b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)
open(sys.argv[2], "wb").write(pae)
PYEOF
"$TOOL" pae "$DOC" >"$T/pae-ours.bin"
cmp "$T/pae.bin" "$T/pae-ours.bin" || fail "PAE differs from Python's"

step "sign the PAE with openssl alone (pkeyutl -rawin for Ed25519, dgst -sha256 for P-256)"
openssl pkeyutl -sign -inkey "$T/ed.key" -rawin -in "$T/pae.bin" -out "$T/ed.sig"
openssl dgst -sha256 -sign "$T/p256.key" -out "$T/p256.sig" "$T/pae.bin"

insert() { # DOC KEYID SIGFILE: append a signature (KEYID "" = no keyid) with Python
        "$PY" - "$@" <<'PYEOF'
import base64, json, sys
doc, keyid, sig = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
env = json.load(open(doc))
s = {"sig": base64.b64encode(sig).decode()}
if keyid:
    s["keyid"] = keyid
env["signatures"].append(s)
json.dump(env, open(doc, "w"), indent=2)
PYEOF
}
insert "$DOC" "$ED_ID" "$T/ed.sig"
insert "$DOC" "$P256_ID" "$T/p256.sig"

step "our verification accepts the openssl signatures (threshold 2 of 2)"
"$TOOL" verify 2 "$DOC" "$T/ed.pub" "$T/p256.pub" >"$T/report" || { cat "$T/report"; fail "not accepted"; }
grep -q "result: new" "$T/report" || fail "no verdict in report"
"$TOOL" verify-as digits-mlp stable 6 2 "$DOC" "$T/ed.pub" "$T/p256.pub" >/dev/null || fail "not accepted as digits-mlp/stable"

step "also without keyids (every trusted key is tried)"
cp "$T/unsigned.json" "$T/nokeyid.json"
insert "$T/nokeyid.json" "" "$T/ed.sig"
insert "$T/nokeyid.json" "" "$T/p256.sig"
"$TOOL" verify 2 "$T/nokeyid.json" "$T/ed.pub" "$T/p256.pub" >/dev/null || fail "keyless signatures not accepted"

step "a payload changed after openssl signed it is refused"
"$PY" - "$DOC" "$T/tampered.json" <<'PYEOF'
import base64, json, sys
env = json.load(open(sys.argv[1]))
body = base64.b64decode(env["payload"]).replace(b'"version": 7', b'"version": 8')
env["payload"] = base64.b64encode(body).decode()
json.dump(env, open(sys.argv[2], "w"))
PYEOF
if "$TOOL" verify 1 "$T/tampered.json" "$T/ed.pub" >/dev/null 2>"$T/err"; then fail "tampered accepted"; fi
grep -q "does not verify" "$T/err" || fail "tamper reason: $(cat "$T/err")"

step "the other way: we sign, openssl verifies"
"$TOOL" keygen ed25519 "$T/our-ed" >/dev/null
"$TOOL" keygen p256 "$T/our-p256" >/dev/null
cp "$T/unsigned.json" "$T/ours.json"
"$TOOL" sign "$T/our-ed" "$T/ours.json"
"$TOOL" sign "$T/our-p256" "$T/ours.json"
OUR_ED_ID=$(openssl pkey -pubin -in "$T/our-ed.pub" -outform DER | sha256sum | cut -d' ' -f1)
OUR_P256_ID=$(openssl pkey -pubin -in "$T/our-p256.pub" -outform DER | sha256sum | cut -d' ' -f1)
"$PY" - "$T/ours.json" "$T" "$OUR_ED_ID" "$OUR_P256_ID" <<'PYEOF'
import base64, json, sys
env = json.load(open(sys.argv[1]))
by = {s["keyid"]: base64.b64decode(s["sig"], validate=True) for s in env["signatures"]}
open(sys.argv[2] + "/o-ed.sig", "wb").write(by[sys.argv[3]])
open(sys.argv[2] + "/o-p256.sig", "wb").write(by[sys.argv[4]])
PYEOF
openssl pkeyutl -verify -pubin -inkey "$T/our-ed.pub" -rawin -in "$T/pae.bin" -sigfile "$T/o-ed.sig" >/dev/null \
        || fail "openssl does not verify our Ed25519 signature"
openssl dgst -sha256 -verify "$T/our-p256.pub" -signature "$T/o-p256.sig" "$T/pae.bin" >/dev/null \
        || fail "openssl does not verify our P-256 signature"
# Our private keys are plain PKCS#8 that openssl reads.
openssl pkey -in "$T/our-ed" -noout
openssl pkey -in "$T/our-p256" -noout
[ "$(stat -c %a "$T/our-ed")" = 600 ] || fail "private key mode"

step "blobs are plain files named by their SHA-256"
for f in "$T"/repo/blobs/sha256/*; do
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $f"
done
echo "all interop checks passed"
