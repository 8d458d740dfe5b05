#!/usr/bin/env bash
# 73-faults: processes killed and a full disk, with sealed connections open.
#
#   - the server program killed (SIGKILL) mid-transfer: the client ends in a connection error,
#     the server had received a strict prefix of the payload;
#   - the client program killed mid-transfer: the server program gets an error (or, when the FIN
#     falls on a record boundary, end of file with a sealsock: line saying close_notify was
#     missing: known limitation K3), having received only a prefix of the payload;
#   - the client's agent killed (SIGKILL) with a 1 GiB transfer open: the transfer keeps moving
#     while the agent is gone; a new connection meanwhile is refused (ECONNREFUSED, a line naming
#     the agent) and a plain server sees none of its plaintext; the agent is restarted on the
#     same socket; a new sealed connection works; the first transfer ends with both SHA-256 equal;
#   - the audit log on a full disk (/dev/full, and a full 64 KiB tmpfs where mount is allowed):
#     the connection works and one sealsock: line names the audit failure.
# Usage: 73-faults.sh AGENT LIBSEALSOCK SESSION_PROBE plain|asan
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=seclib.sh
source "$here/seclib.sh" "$@"
sec_init faults
big=1073741824  # 1 GiB: the transfers take a second or more, so a kill lands inside them
payload_prefix() {  # payload_prefix DUMP: DUMP is a prefix of the first $big payload bytes
    local n
    n=$(stat -c %s "$1")
    "$probe" payload --size "$big" --seed 77 --marker "$marker" | cmp -s -n "$n" "$1" -
}
export -f payload_prefix
export probe big marker
# received PORT: the bytes the kernel has received on the connection to local port PORT
# (`ss -ti` bytes_received: ciphertext, whatever the program has read of it).
received() {
    ss -tinH state established "( sport = :$1 )" |
        sed -n 's/.*bytes_received:\([0-9]*\).*/\1/p' | head -1
}
# read_past PORT BYTES: waits (20 s at most) until the connection to PORT has received more.
read_past() {
    for _ in $(seq 400); do
        [[ $(received "$1") -gt $2 ]] 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# start_big NAME CLIENT_CONFIG [--dump FILE]: a sealed server, and a sealed client sending $big
# bytes to it in the background. Sets srv_pid and cli_pid (the `timeout` wrappers) and
# srv_probe (the server program itself, which SIGSTOP and SIGKILL must reach).
start_big() {
    run_probe server "$1" "$sconf" --mode blocking --seed 77 --reply-size 5000 "${@:3}"
    srv_probe=$(pgrep -P "$srv_pid")
    timeout "$limit" env SEALSOCK_CONFIG="$2" LD_PRELOAD="$shim" "$probe" client --mode blocking \
        --seed 77 --reply-size 5000 --size "$big" --marker "$marker" \
        --connect "127.0.0.1:$port" >"$work/$1.cli" 2>"$work/$1.cli.err" &
    cli_pid=$!
    pids+=("$cli_pid")
}
cli_wait() {
    cli_rc=0
    wait "$cli_pid" || cli_rc=$?
}

echo "--- the server program killed mid-transfer"
# SIGSTOP holds the server mid-transfer (the client blocks in write), so the kill always lands
# there, however fast the machine.
start_big srvkill "$cconf" --dump "$work/srvkill.dump"
check "server killed: the transfer was under way (4 MiB read)" read_past "$port" 4194304
kill -STOP "$srv_probe"
kill -KILL "$srv_probe"
srv_wait
cli_wait
on_fail=srvkill check "server killed: the client ends in a connection error (exit $cli_rc)" bash -c \
    "[[ $cli_rc -eq 1 ]] && sealed_error '$work/srvkill.cli'"
check "server killed: the server had received a strict prefix of the payload" bash -c \
    "[[ \$(stat -c %s '$work/srvkill.dump') -lt $big ]] && payload_prefix '$work/srvkill.dump'"

echo "--- the client program killed mid-transfer"
start_big clikill "$cconf" --dump "$work/clikill.dump"
check "client killed: the transfer was under way (4 MiB read)" read_past "$port" 4194304
kill -STOP "$srv_probe"
sleep 0.2  # the client fills the kernel's buffers and blocks in write
kill -KILL "$(pgrep -P "$cli_pid")"
cli_wait
kill -CONT "$srv_probe"
srv_wait
if [[ $srv_rc -eq 0 ]] && one_log_line "$work/clikill.srv.err" 'without close_notify'; then
    notes+=("known limitation K3 seen, not counted: the killed client's FIN fell on a record boundary; the server read end of file")
else
    on_fail=clikill check "client killed: the server ends in a connection error (exit $srv_rc)" bash -c \
        "[[ $srv_rc -eq 1 ]] && sealed_error '$work/clikill.srv'"
    check "client killed: the server's one sealsock: line says why" \
        one_log_line "$work/clikill.srv.err" 'inside a record|close_notify|reset'
fi
check "client killed: the server received a strict prefix of the payload" bash -c \
    "[[ \$(stat -c %s '$work/clikill.dump') -lt $big ]] && payload_prefix '$work/clikill.dump'"

echo "--- the client's agent killed and restarted with a transfer open"
agent_args=(--identity alice --cert "$pki/alice.pem" --key "$pki/alice.key")
start_agent flaky "${agent_args[@]}"
flaky_pid=${pids[-1]}
client_config "$work/flaky.toml" "$run/flaky.sock" alice
start_big open "$work/flaky.toml"
open_srv_pid=$srv_pid
open_probe=$srv_probe
# A stopped process ignores SIGTERM until continued: the cleanup continues it (and unmounts).
trap 'kill -CONT "$open_probe" 2>/dev/null || true; umount "$work/tiny" 2>/dev/null || true; lib_cleanup' EXIT
open_port=$port
read_past "$open_port" 4194304 || true
kill -STOP "$open_probe"  # the transfer waits (the client blocks in write) while the agent dies
kill -KILL "$flaky_pid"
wait "$flaky_pid" 2>/dev/null || true
at_kill=$(received "$open_port")
kill -CONT "$open_probe"
check "agent killed: the open transfer keeps moving without the agent (16 MiB more read)" \
    read_past "$open_port" $((at_kill + 16777216))
kill -STOP "$open_probe"
run_probe server outage - --mode blocking --dump "$work/outage.dump"
run_probe client outage "$work/flaky.toml" --mode blocking --size 100000 --marker "$marker" \
    --connect "127.0.0.1:$port"
kill "$srv_pid" 2>/dev/null || true
on_fail=outage check "agent down: a new connection is refused (ECONNREFUSED), nothing received" bash -c \
    "[[ $cli_rc -eq 1 ]] && grep -Eq '^error: connect: .*\\(errno ECONNREFUSED\\)$' '$work/outage.cli' &&
     grep -qx 'totals: sent 0 received 0' '$work/outage.cli'"
check "agent down: one sealsock: line names the agent" one_log_line "$work/outage.cli.err" agent
check "agent down: the plain server saw none of the client's plaintext" bash -c \
    "! grep -qaF '$marker' '$work/outage.dump' 2>/dev/null"
# The restarted agent finds its old socket file (SIGKILL left it) and must take the path over.
"$agent_bin" --foreground --socket "$run/flaky.sock" --trust "$pki/ca.pem" "${agent_args[@]}" \
    2>"$work/flaky2.log" &
pids+=($!)
sleep 0.3
for _ in $(seq 50); do "$agent_bin" status --socket "$run/flaky.sock" >/dev/null 2>&1 && break; sleep 0.1; done
check "agent restarted on the same socket path" "$agent_bin" status --socket "$run/flaky.sock"
run_probe server restarted "$sconf" --mode blocking --seed 8 --reply-size 5000
run_probe client restarted "$work/flaky.toml" --mode blocking --seed 8 --reply-size 5000 \
    --size 100000 --connect "127.0.0.1:$port"
srv_wait
on_fail=restarted check "agent back: a new sealed connection verifies" bash -c \
    "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/restarted.cli'"
srv_pid=$open_srv_pid
kill -CONT "$open_probe"
srv_wait
cli_wait
sent=$(sed -n 's/^sent //p' "$work/open.cli")
on_fail=open check "agent killed: the open transfer completes, both SHA-256 equal, the client verified" \
    bash -c "[[ $cli_rc -eq 0 && $srv_rc -eq 0 && -n '$sent' ]] && grep -qx verified '$work/open.cli' &&
             grep -qx 'received $sent' '$work/open.srv'"

echo "--- the audit log on a full disk"
full_disk() {  # full_disk NAME PATH: an exchange with the client's audit log at PATH
    sed "s|^audit_log = .*|audit_log = \"$2\"|" "$cconf" >"$work/$1.toml"
    run_probe server "$1" "$sconf" --mode blocking --seed 9 --reply-size 1000
    run_probe client "$1" "$work/$1.toml" --mode blocking --seed 9 --reply-size 1000 --size 5000 \
        --connect "127.0.0.1:$port"
    srv_wait
    on_fail=$1 check "$1: the exchange verifies" bash -c \
        "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/$1.cli'"
    check "$1: one sealsock: line names the audit failure" \
        one_log_line "$work/$1.cli.err" "audit log cannot be written to $2"
}
full_disk audit-dev-full /dev/full
mkdir "$work/tiny"
if mount -t tmpfs -o size=64k tmpfs "$work/tiny" 2>/dev/null; then
    dd if=/dev/zero of="$work/tiny/filler" bs=4k 2>/dev/null || true
    full_disk audit-tmpfs-full "$work/tiny/audit.log"
    umount "$work/tiny"
else
    notes+=("no tmpfs mount allowed here: the full disk was /dev/full only")
fi

check "no sanitizer report in any output" no_sanitizer_report
summary 73-faults
