# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# bash completion for modelkeeperctl(1): verbs, options, model names from the running daemon
# (`modelkeeperctl --json status`; nothing when it is not running or not reachable), versions of a
# model for rollback/release, and the profile names of a model file for recompress.
#
# Profiles are read from ${MODELKEEPER_CONFIG_DIR:-/etc/modelkeeper}/models.d/MODEL.yaml, in the
# block style the examples use ("recompress:" / "  profiles:" / "    NAME: …"); a file written in
# flow style completes no profiles. Needs nothing from the bash-completion package.

_modelkeeperctl_json_values() {
        # Values of "KEY": "VALUE" in the indented JSON that modelkeeperctl --json prints.
        sed -n 's/^ *"'"$1"'": "\([^"]*\)".*/\1/p'
}

_modelkeeperctl_models() {
        "${_mkctl[@]}" --json status 2>/dev/null </dev/null | _modelkeeperctl_json_values model
}

_modelkeeperctl_versions() {
        "${_mkctl[@]}" --json versions "$1" 2>/dev/null </dev/null | _modelkeeperctl_json_values version
}

_modelkeeperctl_profiles() {
        local file="${MODELKEEPER_CONFIG_DIR:-/etc/modelkeeper}/models.d/$1.yaml"
        [[ -r $file ]] || return 0
        awk '
                function indent(s) { match(s, /^ */); return RLENGTH }
                /^[ ]*(#|$)/ { next }
                {
                        i = indent($0)
                        if (state == 2 && i <= pi) state = 0
                        if (state == 1 && i <= ri) state = 0
                        if (state == 2 && (ki == 0 || i == ki)) {
                                ki = i
                                k = $0; sub(/^ */, "", k); sub(/:.*/, "", k)
                                print k
                                next
                        }
                        if (state == 1 && $0 ~ /^ *profiles:[ ]*$/) { state = 2; pi = i; ki = 0; next }
                        if ($0 ~ /^recompress:[ ]*$/) { state = 1; ri = i }
                }' "$file" 2>/dev/null
}

_modelkeeperctl() {
        local cur=${COMP_WORDS[COMP_CWORD]} prev= opt= i w
        local -a words=() _mkctl=("${COMP_WORDS[0]}")
        local verbs="status versions update rollback recompress scrub hold release import reload units keygen policy"
        local global_opts="--help --version --json --socket="

        # COMP_WORDBREAKS splits "--opt=value" into "--opt" "=" "value": put them back together.
        for ((i = 1; i < COMP_CWORD; i++)); do
                w=${COMP_WORDS[i]}
                if [[ $w == "=" && ${#words[@]} -gt 0 ]]; then
                        words[${#words[@]} - 1]+="="
                elif [[ ${#words[@]} -gt 0 && ${words[${#words[@]} - 1]} == *= ]]; then
                        words[${#words[@]} - 1]+="$w"
                else
                        words+=("$w")
                fi
        done
        if [[ $cur == "=" ]]; then
                opt=${words[${#words[@]} - 1]}
                words=("${words[@]:0:${#words[@]}-1}")
                cur=
        elif [[ ${#words[@]} -gt 0 && ${words[${#words[@]} - 1]} == *= ]]; then
                opt=${words[${#words[@]} - 1]%=}
                words=("${words[@]:0:${#words[@]}-1}")
        fi
        [[ ${#words[@]} -gt 0 ]] && prev=${words[${#words[@]} - 1]}
        COMPREPLY=()

        # Global options come first; the verb is the first word that is not one of them.
        local verb= vi=-1
        for ((i = 0; i < ${#words[@]}; i++)); do
                w=${words[i]}
                case $w in
                --socket=*) _mkctl+=("$w") ;;
                --socket) _mkctl+=("$w" "${words[i + 1]}"); ((i++)) ;;
                -*) ;;
                *) verb=$w; vi=$i; break ;;
                esac
        done

        # Values of options, --opt=VALUE or --opt VALUE.
        [[ -z $opt && $prev == --* ]] && opt=$prev
        case $opt in
        --socket | --config | --out | --key | --trust | --series)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                return 0 ;;
        --repo)
                compopt -o filenames 2>/dev/null
                mapfile -t COMPREPLY < <(compgen -d -- "$cur")
                return 0 ;;
        --type)
                mapfile -t COMPREPLY < <(compgen -W "ed25519 p256 age" -- "$cur")
                return 0 ;;
        --model)
                mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_models)" -- "$cur")
                return 0 ;;
        --version | --label | --expires | --rollout-percent | --threshold | --channel)
                [[ -n $verb ]] && return 0 ;;
        esac

        if [[ -z $verb ]]; then
                if [[ $cur == -* ]]; then
                        mapfile -t COMPREPLY < <(compgen -W "$global_opts" -- "$cur")
                        [[ ${COMPREPLY[*]} == *= ]] && compopt -o nospace 2>/dev/null
                else
                        mapfile -t COMPREPLY < <(compgen -W "$verbs" -- "$cur")
                fi
                return 0
        fi

        # The verb's own arguments (options left out) and where the cursor is among them.
        local -a args=()
        for ((i = vi + 1; i < ${#words[@]}; i++)); do
                w=${words[i]}
                case $w in
                --model | --channel | --version | --label | --expires | --rollout-percent | --repo | --key | \
                        --trust | --threshold | --type | --out | --config | --series) ((i++)) ;;
                -*) ;;
                *) args+=("$w") ;;
                esac
        done
        local n=${#args[@]} model=${args[0]-}
        local opts=
        case $verb in
        import) opts="--version --activate" ;;
        units) opts="--config=" ;;
        keygen) opts="--type --out" ;;
        release)
                case $model in
                create) opts="--model --channel --version --label --expires --rollout-percent --repo" ;;
                sign) opts="--key" ;;
                verify) opts="--trust --threshold --model --channel" ;;
                esac ;;
        policy)
                case $model in
                check) opts="--config" ;;
                test) opts="--series" ;;
                esac ;;
        esac
        if [[ $cur == -* ]]; then
                mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
                [[ ${COMPREPLY[*]} == *= ]] && compopt -o nospace 2>/dev/null
                return 0
        fi

        case $verb in
        status | versions | update | scrub | hold)
                ((n == 0)) && mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_models)" -- "$cur") ;;
        rollback)
                if ((n == 0)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_models)" -- "$cur")
                elif ((n == 1)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_versions "$model")" -- "$cur")
                fi ;;
        recompress)
                if ((n == 0)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_models)" -- "$cur")
                elif ((n == 1)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_profiles "$model")" -- "$cur")
                fi ;;
        release)
                if ((n == 0)); then
                        mapfile -t COMPREPLY < <(compgen -W "create sign verify $(_modelkeeperctl_models)" -- "$cur")
                elif [[ $model == create ]]; then
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
                elif [[ $model == sign || $model == verify ]]; then
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                elif ((n == 1)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_versions "$model")" -- "$cur")
                fi ;;
        import)
                if ((n == 0)); then
                        mapfile -t COMPREPLY < <(compgen -W "$(_modelkeeperctl_models)" -- "$cur")
                elif ((n == 1)); then
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
                fi ;;
        policy)
                if ((n == 0)); then
                        mapfile -t COMPREPLY < <(compgen -W "check test" -- "$cur")
                else
                        compopt -o filenames 2>/dev/null
                        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
                fi ;;
        esac
        return 0
}

complete -F _modelkeeperctl modelkeeperctl
