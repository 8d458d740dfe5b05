#!/usr/bin/env bash
# Load and soak: many sealed connections moving data at once for a while, each checking every
# echoed byte; the programs' fd counts and resident sizes must be as stable at the end as when
# all connections were up, every connection must open and close in both audit logs, and a capture
# of the loopback traffic must show TLS and never the plaintext marker.
#
# The programs are Debian's python3 (asyncio echo server and client, tests/network/soak.py),
# preloaded with the shim; release tree only (an uninstrumented python would need the ASan
# runtime preloaded first, which measures nothing new).
#
# Usage: 81-soak.sh AGENT LIBSEALSOCK
#   default: 200 connections for 20 s; SEALSOCK_LONG=1: 1,000 connections for 300 s;
#   SEALSOCK_SOAK_CONNECTIONS and SEALSOCK_SOAK_SECONDS set either.
set -euo pipefail

agent_bin=${1:?usage: 81-soak.sh AGENT LIBSEALSOCK}
shim=${2:?}
variant=plain
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
source "$here/../integration/lib.sh"
lib_init soak
make_pki
start_test_agents
n=200 seconds=20
if [[ -n ${SEALSOCK_LONG:-} ]]; then n=1000 seconds=300; fi
n=${SEALSOCK_SOAK_CONNECTIONS:-$n} seconds=${SEALSOCK_SOAK_SECONDS:-$seconds}
limit=$((seconds + 120))
ulimit -n "$(ulimit -Hn)"  # each sealed connection also holds an anchor fd
sed "s|^audit_log = .*|audit_log = \"$work/soak-client.audit\"|" "$cconf" >"$work/soak-client.toml"
sed "s|^audit_log = .*|audit_log = \"$work/soak-server.audit\"|" "$sconf" >"$work/soak-server.toml"

timeout "$limit" env SEALSOCK_CONFIG="$work/soak-server.toml" LD_PRELOAD="$shim" \
    python3 "$here/soak.py" server "$work/port" >"$work/soak.srv" 2>"$work/soak.srv.err" &
srv_pid=$!
pids+=("$srv_pid")
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
read -r port server_pid <"$work/port"
python3 "$here/sniff.py" lo "$port" "$work/wire" "$work/sniff.ready" &
sniff_pid=$!
pids+=("$sniff_pid")
for _ in $(seq 100); do [[ -e $work/sniff.ready ]] && break; sleep 0.05; done

cli_rc=0
timeout "$limit" env SEALSOCK_CONFIG="$work/soak-client.toml" LD_PRELOAD="$shim" \
    python3 "$here/soak.py" client "$port" "$n" "$seconds" "$marker" "$work/stats" "$server_pid" \
    >"$work/soak.cli" 2>"$work/soak.cli.err" || cli_rc=$?
kill -TERM "$sniff_pid" 2>/dev/null || true
sniff_rc=0
wait "$sniff_pid" 2>/dev/null || sniff_rc=$?
kill -TERM "$srv_pid" 2>/dev/null || true
wait "$srv_pid" 2>/dev/null || true

notes+=("$(cat "$work/soak.cli" 2>/dev/null)")
# The client's status tells its ends apart: 0 every connection ran to the end; 1 an error, a
# mismatch, a connection still waiting a minute after the end (named on stderr), or an exception
# (a full disk: ENOSPC on its stdout or the stats file); 124 killed by the time limit.
notes+=("client exit status $cli_rc")
on_fail=soak check "$n connections for $seconds s: every echo checked, no mismatch, no error" bash -c \
    "[[ $cli_rc -eq 0 ]] && grep -Eqx 'connections $n rounds [0-9]+ bytes [0-9]+ mismatches 0 errors 0' '$work/soak.cli'"
rounds=$(awk '{ print $4 }' "$work/soak.cli" 2>/dev/null || echo 0)
check "more rounds than connections ($rounds)" test "${rounds:-0}" -gt "$n"
read -r _ _ c_fd0 c_rss0 _ s_fd0 s_rss0 < <(grep '^start ' "$work/stats")
read -r _ _ c_fd1 c_rss1 _ s_fd1 s_rss1 < <(grep '^end ' "$work/stats")
notes+=("client fds $c_fd0 -> $c_fd1, RSS $c_rss0 -> $c_rss1 KiB; server fds $s_fd0 -> $s_fd1, RSS $s_rss0 -> $s_rss1 KiB")
check "fd counts stable from all-connected to the end (client $c_fd0 -> $c_fd1, server $s_fd0 -> $s_fd1)" \
    bash -c "[[ $c_fd1 -le $((c_fd0 + 2)) && $s_fd1 -le $((s_fd0 + 2)) ]]"
# Resident size may move with the allocator's arenas; a leak per round would not stay under 10 %.
check "resident sizes stable (client $c_rss0 -> $c_rss1 KiB, server $s_rss0 -> $s_rss1 KiB, at most +10 %)" \
    bash -c "[[ $c_rss1 -le $((c_rss0 + c_rss0 / 10 + 1024)) && $s_rss1 -le $((s_rss0 + s_rss0 / 10 + 1024)) ]]"
for side in client server; do
    check "audit ($side): $n open and $n close lines, every close clean" bash -c \
        "[[ \$(grep -c '\"event\":\"open\"' '$work/soak-$side.audit') -eq $n &&
            \$(grep -c '\"event\":\"close\".*\"outcome\":\"closed\"' '$work/soak-$side.audit') -eq $n ]]"
done
# sniff.py ends with status 0 on SIGTERM; anything else (a full disk: ENOSPC) means the disk
# also refused the audit logs, the programs' stderr and the client's summary line (K4 in
# docs/security.md: the checks above then fail for that reason, not for the connections).
check "the capture ran to the end (sniff.py exit status $sniff_rc)" test "$sniff_rc" -eq 0
check "wire: both directions begin with a TLS handshake record, the marker never appears" bash -c \
    "grep -qx 'c2s 16' '$work/wire.first' && grep -qx 's2c 16' '$work/wire.first' &&
     [[ \$(stat -c %s '$work/wire.c2s') -gt 1048576 ]] && ! grep -qaF '$marker' '$work/wire.c2s' '$work/wire.s2c'"
check "no sealsock: line on either side" bash -c "! grep -q '^sealsock:' '$work/soak.cli.err' '$work/soak.srv.err'"
summary 81-soak
