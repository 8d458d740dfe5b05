# Helpers of the compat rows (compat.sh sources this after ../lib.sh). Sourced, never run.
#
# lib.sh's cleanup kills single pids; the programs here fork (postmaster, sshd, nginx workers),
# so every program runs under `timeout`, which puts it in a process group of its own, and the
# cleanup stops each group, TERM first, then KILL.
#   start_server NAME CONFIG CMD...
#                           CMD in the background, sealed by CONFIG ("-": plain); its stdin
#                           $server_in (default /dev/null), output in $work/NAME.out and .err;
#                           sets $server_pgid
#   run_sealed NAME CONFIG CMD...
#                           CMD to its end under $limit; output in $work/NAME.out and .err; sets $rc
#   payload FILE MIB, free_port, wait_listen PORT, stop_group PGID
#   relay_to NAME PORT      wire.py in front of 127.0.0.1:PORT; sets $rport
#   show_files NAME...      the outputs of failed programs
#   wire_checks NAME WHAT   the relay's captures are TLS records end to end without the marker
#                           (its summary in $work/NAME.wirecheck)
#   wire_is_plain NAME WHAT ERE
#                           the same check fails on the captures, saying ERE (row baseline)
#   agent_checks WHAT SERVER_EXE CLIENT_EXE N
#                           both agents' logs: N handshakes each, for the right programs
#   result PROGRAMS VERSIONS CHECKED
#                           what the row's line in docs/compatibility.md says ($row_pass: its
#                           result when every check passed, "pass" unless the row says otherwise)
# For programs that cannot carry the shim (rows static, go):
#   wrapper_refuses NAME LABEL CONFIG WHY CMD...
#                           `sealsock run --config CONFIG -- CMD` is refused: not started, and
#                           the message says WHY (an ERE) and that a rule seals it
#   exec_not_handed NAME LABEL WHY PROGRAM ARGS...
#                           a sealed Python server reads the sealed client's first line, puts
#                           the connection on fds 0 and 1 and execs PROGRAM: the client reads
#                           nothing after, the shim says WHY, the wire stays TLS
# shellcheck shell=bash

groups=()
first_failure=""
bad() {  # lib.sh's, plus the first failure kept for the row's line
    echo "FAIL $1"
    failed=$((failed + 1))
    [[ -n $first_failure ]] || first_failure=$1
}
compat_cleanup() {
    local g
    for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for g in "${groups[@]}"; do
        for _ in $(seq 50); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$g" 2>/dev/null || true
    done
    write_result
    lib_cleanup
}

# with_config CONFIG CMD...: sets cmd, CMD under $limit, preloaded with CONFIG unless it is "-".
with_config() {
    if [[ $1 == - ]]; then
        cmd=(timeout "$limit" "${@:2}")
    else
        cmd=(timeout "$limit" env SEALSOCK_CONFIG="$1" LD_PRELOAD="$shim" "${@:2}")
    fi
}
start_server() {
    local name=$1
    with_config "${@:2}"
    "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" <"${server_in:-/dev/null}" &
    server_pgid=$!
    groups+=("$server_pgid")
}
run_sealed() {
    local name=$1
    with_config "${@:2}"
    rc=0
    "${cmd[@]}" >"$work/$name.out" 2>"$work/$name.err" </dev/null || rc=$?
}
stop_group() {  # stop_group PGID: TERM, up to 5 s, then KILL
    kill -TERM -- "-$1" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 -- "-$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL -- "-$1" 2>/dev/null || true
}
payload() {  # payload FILE MIB: MIB MiB of random bytes with the plaintext marker in the middle
    { head -c $(($2 * 524288)) /dev/urandom; printf '%s' "$marker"; head -c $(($2 * 524288)) /dev/urandom; } >"$1"
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_listen() {  # wait_listen PORT: something listens on PORT within 20 s
    for _ in $(seq 200); do
        [[ -n $(ss -Htln "sport = :$1") ]] && return 0
        sleep 0.1
    done
    echo "FAIL nothing listens on port $1 after 20 s"
    return 1
}

show_files() {  # show_files NAME...: each NAME's output and stderr, first lines, indented
    local f
    for f in "${@/#/$work/}"; do
        for f in "$f.out" "$f.err"; do
            [[ -s $f ]] || continue
            echo "     --- ${f##*/}"
            tail -25 "$f" | sed 's/^/     /'
        done
    done
}

relay_to() {
    local pf=$work/$1.rport
    python3 "$here/wire.py" relay "$pf" 127.0.0.1 "$2" "$work/$1.wire" >"$work/$1.relay" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [[ -s $pf ]] && break; sleep 0.05; done
    rport=$(cat "$pf")
}
wire_checks() {  # wire_checks NAME WHAT
    check "$2: the wire carried TLS 1.3 records from first byte to last, never the marker" \
        python3 "$here/wire.py" check "$work/$1.wire" "$marker"
    cp "$work/check.out" "$work/$1.wirecheck"
    notes+=("$2 wire: $(cat "$work/$1.wirecheck")")
}
wire_is_plain() {
    check "$2: the wire check fails on this unsealed capture, saying: $3" bash -c \
        "! python3 '$here/wire.py' check '$work/$1.wire' '$marker' >'$work/$1.wirecheck' &&
         grep -Eq '$3' '$work/$1.wirecheck'"
    notes+=("$2 wire: $(cat "$work/$1.wirecheck")")
}
# agent_checks WHAT SERVER_EXE CLIENT_EXE N: the agents' own account of the handshakes: the server
# agent ran at least N for SERVER_EXE (an ERE on the executable's path) and saw CN=alice each
# time, the client agent ran them for CLIENT_EXE and saw CN=localhost, and nothing failed or was
# refused (agent lines: keyagent/agent_server.cc).
agent_checks() {
    local sl=${agent_log_server:-$work/server.log} cl=$work/client.log
    check "$1: the server agent sealed at least $4 connections for $2, each from CN=alice" bash -c \
        "grep -Eq 'handshake started: pid [0-9]+ \\(($2)\\) as server' '$sl' &&
         [[ \$(grep -c 'handshake done: .*: peer CN=alice, suite' '$sl') -ge $4 ]]"
    check "$1: the client agent sealed them for $3, each to CN=localhost" bash -c \
        "grep -Eq 'handshake started: pid [0-9]+ \\(($3)\\) as client' '$cl' &&
         [[ \$(grep -c 'handshake done: .*: peer CN=localhost, suite' '$cl') -ge $4 ]]"
    check "$1: no handshake failed or was refused" bash -c \
        "! grep -E 'handshake failed|refused a' '$sl' '$cl'"
}

# The row's line for docs/compatibility.md, written at exit whatever happened.
row_programs=""
row_versions=""
row_checked=""
result() {
    row_programs=$1
    row_versions=$2
    row_checked=$3
}
write_result() {
    [[ -n ${results:-} && -n $row_programs ]] || return 0
    local status=${row_pass:-pass}
    if [[ $failed -ne 0 || ${row_aborted:-0} -ne 0 ]]; then
        status="**fail**: ${first_failure:-the row stopped early (see its ctest output)}"
    fi
    mkdir -p "$results"
    printf '| %s | %s | %s | %s | %s s |\n' "$row_programs" "$row_versions" "$row_checked" \
        "$status" "$SECONDS" >"$results/$row.md"
}

# --- programs that cannot carry the shim -------------------------------------------------------
wrapper=$here/../../../scripts/sealsock
wrapper_refuses() {
    local name=$1 label=$2 conf=$3 why=$4
    rc=0
    timeout "$limit" env SEALSOCK_SHIM="$shim" SEALSOCK_CHECK_BIN="${shim%/*}/sealsock-check" \
        "$wrapper" run --config "$conf" -- "${@:5}" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
    check "$label: sealsock run refuses it (exit $rc), nothing printed by it, the message says why" bash -c \
        "[[ $rc -ne 0 && ! -s '$work/$name.out' ]] &&
         grep -Eq 'cannot carry the shim: $why.*a rule seals its connections, so it was not started' '$work/$name.err'"
}
exec_not_handed() {
    local name=$1 label=$2 why=$3
    port=$(free_port)
    start_server "$name" "$sconf" /usr/bin/python3 -c '
import os, socket, sys
conn, _ = socket.create_server(("127.0.0.1", int(sys.argv[1]))).accept()
print(conn.makefile("rb").readline().decode().strip(), file=sys.stderr, flush=True)
os.dup2(conn.fileno(), 0)
os.dup2(conn.fileno(), 1)
os.execv(sys.argv[2], sys.argv[2:])' "$port" "${@:4}"
    wait_listen "$port"
    relay_to "$name" "$port"
    with_config "$cconf" nc.openbsd -N 127.0.0.1 "$rport"
    "${cmd[@]}" <<<"hello-$name" >"$work/$name-client.out" 2>"$work/$name-client.err" || true
    for _ in $(seq 50); do kill -0 "$server_pgid" 2>/dev/null || break; sleep 0.1; done
    stop_group "$server_pgid"
    check "$label: exec'd on a sealed connection after a line read through it: the client reads nothing after, the shim says why" bash -c \
        "grep -qx 'hello-$name' '$work/$name.err' && [[ ! -s '$work/$name-client.out' ]] &&
         grep -Eq '^sealsock: the new program does not get the sealed connection on fd [01] .*$why' '$work/$name.err'"
    wire_checks "$name" "$label exec'd by a sealed server"
}
