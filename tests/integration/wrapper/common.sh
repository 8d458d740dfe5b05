# Shared by the wrapper scenarios (60-, 61-, 62-wrapper-*.sh): their arguments, lib.sh's PKI and
# agents, and session_probe pairs run through `sealsock run`, on the wire through
# session/relay.py. Sourced as `source common.sh NAME "$@"` with the scenario's arguments:
#   AGENT LIBSEALSOCK SEALSOCK_CHECK PROBE plain|asan [BUILD_DIR]
# It sets agent_bin, shim, check_bin, probe, variant, build and wrapper (the checkout's
# scripts/sealsock, told where the pieces are by SEALSOCK_AGENT_BIN, SEALSOCK_SHIM and
# SEALSOCK_CHECK_BIN).
# shellcheck shell=bash disable=SC2154,SC2034  # set by lib.sh and the caller; used by the caller

agent_bin=${2:?usage: $1.sh AGENT LIBSEALSOCK SEALSOCK_CHECK PROBE plain|asan [BUILD_DIR]}
shim=${3:?}
check_bin=${4:?}
probe=${5:?}
variant=${6:?}
build=${7:-}
wrapper=$here/../../../scripts/sealsock
relay=$here/../session/relay.py
export SEALSOCK_AGENT_BIN=$agent_bin SEALSOCK_SHIM=$shim SEALSOCK_CHECK_BIN=$check_bin
# shellcheck source=../lib.sh
source "$here/../lib.sh"
lib_init "$1"
# No user or system file of this machine may leak in: every run names its config with --config.
export HOME=$work/home
unset XDG_CONFIG_HOME SEALSOCK_CONFIG SEALSOCK_AGENT_SOCK LD_PRELOAD
mkdir -p "$HOME"

# side NAME ROLE CONFIG ARGS...: session_probe as ROLE (srv: in the background, its pid in
# $srv_pid; cli: to its end, its status in $cli_rc), plain when CONFIG is "-", else through
# `$wrapper run --config CONFIG`. Output in $work/NAME.ROLE and $work/NAME.ROLE.err (lib.sh's
# `show` prints them).
side() {
    local name=$1 role=$2 config=$3 cmd
    shift 3
    cmd=(timeout "$limit" "$probe")
    if [[ $config != - ]]; then cmd=(timeout "$limit" "$wrapper" run --config "$config" -- "$probe"); fi
    if [[ $role == srv ]]; then
        "${cmd[@]}" server "$@" >"$work/$name.srv" 2>"$work/$name.srv.err" &
        srv_pid=$!
        pids+=("$srv_pid")
    else
        cli_rc=0
        "${cmd[@]}" client "$@" >"$work/$name.cli" 2>"$work/$name.cli.err" || cli_rc=$?
    fi
}
# preload_of PID: the LD_PRELOAD in the environment of the program `timeout` PID runs.
preload_of() { tr '\0' '\n' <"/proc/$(pgrep -P "$1")/environ" | sed -n 's/^LD_PRELOAD=//p'; }
wait_file() { for _ in $(seq 200); do [[ -s $1 ]] && return 0; sleep 0.05; done; return 1; }

# exchange NAME CLIENT_CONFIG SERVER_CONFIG: one blocking exchange with fixed seeds and sizes
# through relay.py. Captures: $work/NAME.c2s and $work/NAME.s2c; sets cli_rc and srv_rc.
exchange() {
    local name=$1 cc=$2 sc=$3 args=(--mode blocking --seed 41 --reply-size 70000)
    rm -f "$work/$name.port" "$work/$name.rport"
    side "$name" srv "$sc" --port-file "$work/$name.port" "${args[@]}"
    wait_file "$work/$name.port" || { echo "server $name did not start"; show "$name"; }
    python3 "$relay" relay "$work/$name.rport" "$(cat "$work/$name.port")" "$work/$name" \
        >"$work/$name.relay" 2>&1 &
    local relay_pid=$!
    pids+=("$relay_pid")
    wait_file "$work/$name.rport"
    side "$name" cli "$cc" "${args[@]}" --size 200000 --marker "$marker" \
        --connect "127.0.0.1:$(cat "$work/$name.rport")"
    srv_rc=0
    wait "$srv_pid" || srv_rc=$?
    wait "$relay_pid" || true
}

# ran_clean NAME: both ends exited 0, the client verified every byte, no `sealsock:` line.
ran_clean() {
    [[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -q '^verified' "$work/$1.cli" &&
        ! grep -q '^sealsock: ' "$work/$1.cli.err" "$work/$1.srv.err"
}
# sealed_wire NAME: both directions are TLS records to the last byte, no plaintext marker.
sealed_wire() {
    python3 "$relay" records "$work/$1.c2s" && python3 "$relay" records "$work/$1.s2c" &&
        ! grep -qaF "$marker" "$work/$1.c2s" "$work/$1.s2c"
}
# same_wire NAME OTHER: both directions carried exactly the same bytes (sha256) in both runs.
same_wire() {
    local d
    for d in c2s s2c; do
        [[ -s $work/$1.$d ]] || { echo "$1.$d is empty"; return 1; }
        [[ $(sha256sum <"$work/$1.$d") == "$(sha256sum <"$work/$2.$d")" ]] ||
            { echo "$d differs between $1 and $2"; return 1; }
    done
}

# rule_file FILE AGENT DIRECTION NAME PROGRAM LINES...: a config with one rule: agent socket
# $run/AGENT.sock, the audit log in $work, an [[DIRECTION]] rule NAME for PROGRAM (its header on
# line 4) and LINES added to it.
rule_file() {
    printf 'agent_socket = "%s"\naudit_log = "%s"\n\n[[%s]]\nname = "%s"\nprograms = ["%s"]\n' \
        "$run/$2.sock" "$work/audit.jsonl" "$3" "$4" "$5" >"$1"
    printf '%s\n' "${@:6}" >>"$1"
}
# sealing_pair FILE_PREFIX PROGRAM_PATTERN [LINE]: a client config ($1.client.toml: seal
# 127.0.0.1 as alice) and a server config ($1.server.toml: allow cn:alice), each one rule for
# PROGRAM_PATTERN with LINE added to it.
sealing_pair() {
    rule_file "$1.client.toml" client outbound "probe out" "$2" 'destinations = ["127.0.0.1"]' \
        'identity = "alice"' 'expect = "name:localhost"' "${3:-}"
    rule_file "$1.server.toml" server inbound "probe in" "$2" 'identity = "server"' \
        'allow = ["cn:alice"]' "${3:-}"
}

make_pki
start_test_agents
