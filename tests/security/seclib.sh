# Shared part of the security scenarios (tests/security/7N-*.sh), sourced (with the script's
# arguments) after setting `here`; it sources tests/integration/lib.sh. Every script is called as
#   7N-NAME.sh AGENT LIBSEALSOCK SESSION_PROBE plain|asan
# and runs session_probe (a plain TCP program, tests/integration/session/session_probe.cc) sealed
# by the shim on both ends. This file adds:
#   sec_init NAME        lib_init, make_pki and start_test_agents in one go
#   run_probe ROLE NAME CONFIG ARGS...   a probe server (background: sets srv_pid, port) or
#                        client (foreground: sets cli_rc); CONFIG "-" runs it plain. Outputs in
#                        $work/NAME.srv|.cli, stderr in .srv.err|.cli.err
#   srv_wait             waits for the server; sets srv_rc
#   with_audit NAME      copies of $cconf and $sconf writing their audit logs to
#                        $work/NAME-cli.audit and NAME-srv.audit; sets ccfg and scfg
#   sealed_error FILE    the probe's output ends in a connection error (errno), never a
#                        `verify` line (which would mean it read bytes that were not sent)
#   no_sanitizer_report  no ASan/UBSan/LSan report in any output or log of the run
# shellcheck shell=bash

agent_bin=${1:?usage: ${0##*/} AGENT LIBSEALSOCK SESSION_PROBE plain|asan}
shim=${2:?}
probe=${3:?}
variant=${4:?}
# shellcheck source=../integration/lib.sh
source "$here/../integration/lib.sh"

sec_init() {
    lib_init "$1"
    make_pki
    start_test_agents
    payload=$work/payload
    "$probe" payload --size 1048576 --seed 77 --marker "$marker" >"$payload"
}

run_probe() {  # run_probe server|client NAME CONFIG ARGS...
    local role=$1 name=$2 config=$3 env=()
    shift 3
    if [[ $config != - ]]; then env=(SEALSOCK_CONFIG="$config" LD_PRELOAD="$shim"); fi
    if [[ $role == client ]]; then
        cli_rc=0
        timeout "$limit" env "${env[@]}" "$probe" client "$@" >"$work/$name.cli" \
            2>"$work/$name.cli.err" || cli_rc=$?
        return 0
    fi
    local pf=$work/$name.port
    rm -f "$pf"
    timeout "$limit" env "${env[@]}" "$probe" server --port-file "$pf" "$@" >"$work/$name.srv" \
        2>"$work/$name.srv.err" &
    srv_pid=$!
    pids+=("$srv_pid")
    for _ in $(seq 200); do [[ -s $pf ]] && break; sleep 0.05; done
    port=$(cat "$pf" 2>/dev/null || echo 0)
}
srv_wait() {
    srv_rc=0
    wait "$srv_pid" || srv_rc=$?
}

with_audit() {
    ccfg=$work/$1-cli.toml
    scfg=$work/$1-srv.toml
    sed "s|^audit_log = .*|audit_log = \"$work/$1-cli.audit\"|" "$cconf" >"$ccfg"
    sed "s|^audit_log = .*|audit_log = \"$work/$1-srv.audit\"|" "$sconf" >"$scfg"
}

sealed_error() {
    grep -Eq '^error: [a-z_]+[^:]*: .*\(errno E[A-Z]+\)$' "$1" && ! grep -q '^error: verify' "$1"
}

# strict_prefix FILE WHOLE: FILE holds fewer bytes than WHOLE, and they are WHOLE's first ones.
strict_prefix() {
    local n
    n=$(stat -c %s "$1" 2>/dev/null || echo 0)
    [[ $n -lt $(stat -c %s "$2") ]] && cmp -s -n "$n" "$1" "$2"
}

no_sanitizer_report() {
    ! grep -rlE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' "$work" \
        --include='*.err' --include='*.log' --include='*.out'
}

audit_check=$here/../integration/session/audit_check.py
# The checks run them in `bash -c`.
export -f sealed_error strict_prefix first_bytes
