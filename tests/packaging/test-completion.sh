#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# bash completion of modelkeeperctl: source it in bash and complete command lines as readline
# would, against a stand-in modelkeeperctl that answers --json status/versions like the daemon,
# and against the real one with no daemon (nothing offered, nothing printed, no error).
#
# Usage: test-completion.sh COMPLETION MODELKEEPERCTL

set -euo pipefail
completion=$(readlink -f "${1:?usage: $0 COMPLETION MODELKEEPERCTL}")
real=$(readlink -f "${2:?usage: $0 COMPLETION MODELKEEPERCTL}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/fake" "$tmp/real" "$tmp/etc/models.d" "$tmp/files/dir.d"
touch "$tmp/files/key.pem"
cat >"$tmp/fake/modelkeeperctl" <<'FAKE'
#!/bin/bash
echo "$*" >>"$MK_CALLS"
case "$*" in
*"--json status") printf '[\n  {\n    "model": "digits-mlp",\n    "state": "ok"\n  },\n  {\n    "model": "demo",\n    "state": "held"\n  }\n]\n' ;;
*"--json versions demo") printf '[\n  {\n    "version": "1",\n    "origin": "import"\n  },\n  {\n    "version": "2~int8",\n    "origin": "derived"\n  }\n]\n' ;;
*) exit 1 ;;
esac
FAKE
chmod +x "$tmp/fake/modelkeeperctl"
ln -s "$real" "$tmp/real/modelkeeperctl"
cat >"$tmp/etc/models.d/demo.yaml" <<'YAML'
model: demo
rules:
  - {name: r, when: x > 1, action: {recompress: int8}}
recompress:
  # the profiles
  profiles:
    int8: {method: int8}

    fp16:
      method: fp16
    small-prune: {method: prune, sparsity: 50%}
metrics: {}
YAML

# complete "LINE": print what the completion offers for the last word, sorted, space-separated.
# Words split on spaces, and on "=" as readline does with the default COMP_WORDBREAKS.
complete_line() {
        bash --norc --noprofile -c '
                set -u
                . "$1"
                line=$2
                read -r -a ws <<<"$line"
                words=()
                for w in "${ws[@]}"; do
                        if [[ $w == --*=* ]]; then
                                words+=("${w%%=*}" "=")
                                [ -n "${w#*=}" ] && words+=("${w#*=}")
                        else
                                words+=("$w")
                        fi
                done
                [[ $line == *" " ]] && words+=("")
                COMP_WORDS=("${words[@]}")
                COMP_CWORD=$((${#words[@]} - 1))
                COMP_LINE=$line
                COMP_POINT=${#line}
                _modelkeeperctl
                printf "%s\n" "${COMPREPLY[@]}" | LC_ALL=C sort | tr "\n" " " | sed "s/ *$//"
        ' _ "$completion" "$1"
}

fail=0
n=0
expect() {
        local line=$1 want=$2 got
        n=$((n + 1))
        got=$(cd "$tmp/files" && complete_line "$line" 2>"$tmp/stderr") || { echo "FAIL: '$line': completion failed"; cat "$tmp/stderr"; fail=1; return; }
        if [ -s "$tmp/stderr" ]; then
                echo "FAIL: '$line': printed on stderr:"; cat "$tmp/stderr"; fail=1
        fi
        if [ "$got" != "$want" ]; then
                echo "FAIL: '$line': got '$got', expected '$want'"
                fail=1
        fi
}

export MK_CALLS=$tmp/calls MODELKEEPER_CONFIG_DIR=$tmp/etc
export PATH="$tmp/fake:$PATH"
expect "modelkeeperctl " "hold import keygen policy recompress release reload rollback scrub status units update versions"
# Every verb of --help is offered (a new verb without completion fails here).
help_verbs=$("$real" --help | sed -n '/^Verbs:/,/^$/p' | awk 'NR > 1 && NF {print $1}' | sort -u | tr '\n' ' ' | sed 's/ $//')
expect "modelkeeperctl " "$help_verbs"
expect "modelkeeperctl sc" "scrub"
expect "modelkeeperctl scrub " "demo digits-mlp"
expect "modelkeeperctl re" "recompress release reload"
expect "modelkeeperctl --" "--help --json --socket= --version"
expect "modelkeeperctl --json st" "status"
expect "modelkeeperctl status " "demo digits-mlp"
expect "modelkeeperctl rollback d" "demo digits-mlp"
expect "modelkeeperctl rollback demo " "1 2~int8"
expect "modelkeeperctl rollback demo 1 " ""
expect "modelkeeperctl recompress demo " "fp16 int8 small-prune"
expect "modelkeeperctl recompress digits-mlp " ""
expect "modelkeeperctl release " "create demo digits-mlp sign verify"
expect "modelkeeperctl release demo " "1 2~int8"
expect "modelkeeperctl release create --" "--channel --expires --label --model --repo --rollout-percent --version"
expect "modelkeeperctl release create --model " "demo digits-mlp"
expect "modelkeeperctl release sign --key k" "key.pem"
expect "modelkeeperctl import demo d" "dir.d"
expect "modelkeeperctl import demo ./dir.d --" "--activate --version"
expect "modelkeeperctl keygen --type " "age ed25519 p256"
expect "modelkeeperctl policy " "check test"
expect "modelkeeperctl policy test m.yaml --" "--series"
expect "modelkeeperctl units --" "--config="
# --socket reaches the calls that ask the daemon, in both spellings.
: >"$MK_CALLS"
expect "modelkeeperctl --socket=/x/control status " "demo digits-mlp"
expect "modelkeeperctl --socket /y/control hold " "demo digits-mlp"
grep -q -- "--socket=/x/control --json status" "$MK_CALLS" || { echo "FAIL: --socket=PATH not passed on"; cat "$MK_CALLS"; fail=1; }
grep -q -- "--socket /y/control --json status" "$MK_CALLS" || { echo "FAIL: --socket PATH not passed on"; cat "$MK_CALLS"; fail=1; }

# The real modelkeeperctl without a daemon: no models, nothing on the terminal, no error.
export PATH="$tmp/real:${PATH#*:}" MODELKEEPER_SOCKET=$tmp/no-such-socket
expect "modelkeeperctl status " ""
expect "modelkeeperctl rollback demo " ""
expect "modelkeeperctl recompress demo " "fp16 int8 small-prune"

[ $fail = 0 ] && echo "PASS: $n completions"
exit $fail
