#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Costs of signed releases, against the obvious peers, in one run:
#  1. publishing: `release create` (hash + copy into blobs/ + fsync) vs `sha256sum` + `cp` + `sync`
#  2. verifying a 2-of-2 signed document (Ed25519 + P-256): release-tool verify vs the two
#     `openssl` verifications of the same PAE (both are dominated by process start-up)
#  3. the worst case an attacker can ask for: 16 signatures without keyid against 32 trusted
#     P-256 keys (every key is tried for every signature)
#
#   bench/release.sh BUILD_DIR [SIZE_MIB]
set -eu
B=${1:?usage: bench/release.sh BUILD_DIR [SIZE_MIB]}
TOOL=$B/tests/release-tool
SIZE=${2:-256}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/mk-bench-release-XXXXXX)
trap 'rm -rf "$T"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }

mkdir "$T/in" "$T/peer"
head -c "${SIZE}M" /dev/urandom >"$T/in/model.safetensors"
sync

echo "== 1. publish ${SIZE} MiB (file in page cache)"
t0=$(now)
sha256sum "$T/in/model.safetensors" >"$T/sum"
cp "$T/in/model.safetensors" "$T/peer/$(cut -d' ' -f1 "$T/sum")"
sync
t1=$(now)
"$TOOL" create bench stable 1 2099-01-01T00:00:00Z 100 "$T/in" "$T/repo" >/dev/null
t2=$(now)
peer=$(elapsed "$t0" "$t1"); ours=$(elapsed "$t1" "$t2")
printf 'sha256sum+cp+sync: %.2f s   release create: %.2f s   ratio ours/peer: %.2f\n' "$peer" "$ours" "$(echo "$ours / $peer" | bc -l)"

echo "== 2. verify a 2-of-2 document, 100 times"
"$TOOL" keygen ed25519 "$T/a" >/dev/null
"$TOOL" keygen p256 "$T/b" >/dev/null
DOC=$T/repo/models/bench/stable.json
"$TOOL" sign "$T/a" "$DOC"
"$TOOL" sign "$T/b" "$DOC"
"$TOOL" pae "$DOC" >"$T/pae.bin"
"$PY" - "$DOC" "$T" <<'PYEOF'
import base64, json, sys
env = json.load(open(sys.argv[1]))
for i, s in enumerate(env["signatures"]):
    open("%s/sig%d" % (sys.argv[2], i), "wb").write(base64.b64decode(s["sig"]))
PYEOF
t0=$(now)
i=0; while [ $i -lt 100 ]; do "$TOOL" verify 2 "$DOC" "$T/a.pub" "$T/b.pub" >/dev/null; i=$((i + 1)); done
t1=$(now)
i=0; while [ $i -lt 100 ]; do
        openssl pkeyutl -verify -pubin -inkey "$T/a.pub" -rawin -in "$T/pae.bin" -sigfile "$T/sig0" >/dev/null
        openssl dgst -sha256 -verify "$T/b.pub" -signature "$T/sig1" "$T/pae.bin" >/dev/null
        i=$((i + 1)); done
t2=$(now)
ours=$(elapsed "$t0" "$t1"); peer=$(elapsed "$t1" "$t2")
printf 'release-tool verify: %.1f ms each   2x openssl verify: %.1f ms each   ratio ours/peer: %.2f\n' \
        "$(echo "$ours * 10" | bc -l)" "$(echo "$peer * 10" | bc -l)" "$(echo "$ours / $peer" | bc -l)"

echo "== 3. worst case: 16 signatures without keyid, 32 trusted P-256 keys"
keys="$T/b.pub"
i=0; while [ $i -lt 31 ]; do "$TOOL" keygen p256 "$T/k$i" >/dev/null; keys="$keys $T/k$i.pub"; i=$((i + 1)); done
"$PY" - "$DOC" "$T/worst.json" <<'PYEOF'
import base64, json, os, sys
env = json.load(open(sys.argv[1]))
# Valid-looking DER ECDSA signatures (random r, s) that no key verifies.
def der_int(b):
    b = b.lstrip(b"\0")
    if b[0] & 0x80: b = b"\0" + b
    return b"\x02" + bytes([len(b)]) + b
def sig():
    body = der_int(os.urandom(32)) + der_int(os.urandom(32))
    return b"\x30" + bytes([len(body)]) + body
env["signatures"] = [{"sig": base64.b64encode(sig()).decode()} for _ in range(16)]
json.dump(env, open(sys.argv[2], "w"))
PYEOF
t0=$(now)
# shellcheck disable=SC2086
"$TOOL" verify 1 "$T/worst.json" $keys >/dev/null 2>&1 || true
t1=$(now)
# shellcheck disable=SC2086
"$TOOL" verify 1 "$DOC" $keys >/dev/null 2>&1 || true
t2=$(now)
printf 'worst case (512 P-256 verifications): %.1f ms   normal check (2 keyed signatures) with the same 32 keys: %.1f ms\n' \
        "$(echo "($t1 - $t0) * 1000" | bc -l)" "$(echo "($t2 - $t1) * 1000" | bc -l)"
echo "(2 shared cores; figures are noisy — compare the ratios)"
