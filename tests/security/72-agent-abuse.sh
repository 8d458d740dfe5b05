#!/usr/bin/env bash
# 72-agent-abuse: the client's agent under abuse keeps serving good sealed connections, and
# leaks no descriptor and no memory.
#
# While 200 connections to it send nothing, agent_abuse.py sends malformed frames (bad lengths,
# bodies that do not decode), handshakes carrying descriptors that are not TCP sockets (a pipe,
# /dev/null, UDP, a listening socket), 70 descriptors with no request, 40 handshakes whose peer
# never answers (300 ms timeout), and a process of another uid (setpriv nobody) asks for status.
# Checks: each abuse gets its documented answer (docs/agent-protocol.md); sealed exchanges through
# the same agent verify before, during and after; the other uid is refused and logged; after the
# abusers are gone the agent holds the same descriptors as before (/proc/PID/fd), and its RSS,
# which rises in the first rounds (each client's input buffer, 128 KiB once touched, stays with
# the allocator), grows by less than 4 MiB from the second round to the third (release tree;
# under ASan the quarantine makes RSS grow, and LeakSanitizer checks instead); SIGTERM stops it with status 0 and, under ASan, no LeakSanitizer report.
# Usage: 72-agent-abuse.sh AGENT LIBSEALSOCK SESSION_PROBE plain|asan
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=seclib.sh
source "$here/seclib.sh" "$@"
sec_init agent-abuse
abuse=$here/agent_abuse.py
# The abused agent: alice's, on a socket a process of another uid can reach (the directory is
# opened up after the start; the agent refuses to start in a directory open to others).
mkdir -m 700 "$work/open"
"$agent_bin" --foreground --socket "$work/open/abused.sock" --trust "$pki/ca.pem" \
    --identity alice --cert "$pki/alice.pem" --key "$pki/alice.key" 2>"$work/abused.log" &
agent_pid=$!
pids+=("$agent_pid")
wait_socket "$work/open/abused.sock" || { cat "$work/abused.log"; exit 1; }
chmod 755 "$work" "$work/open"
chmod 777 "$work/open/abused.sock"
client_config "$work/abused.toml" "$work/open/abused.sock" alice

fds() { find "/proc/$agent_pid/fd" -mindepth 1 | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status"; }
good() {  # good LABEL: one sealed exchange through the abused agent
    run_probe server "good-$1" "$sconf" --mode blocking --seed 3 --reply-size 20000
    run_probe client "good-$1" "$work/abused.toml" --mode blocking --seed 3 --reply-size 20000 \
        --size 200000 --connect "127.0.0.1:$port"
    srv_wait
    on_fail=good-$1 check "$1: a sealed exchange through the agent verifies" bash -c \
        "[[ $cli_rc -eq 0 && $srv_rc -eq 0 ]] && grep -qx verified '$work/good-$1.cli'"
}

good before
fds_before=$(fds)
rss_before=$(rss_kib)

echo "--- abuse, three rounds (the third must cost nothing more than the second)"
rss_round=()
for round in 1 2 3; do
    python3 "$abuse" hold "$work/open/abused.sock" 200 >"$work/hold-$round.out" 2>&1 &
    hold_pid=$!
    pids+=("$hold_pid")
    for _ in $(seq 100); do grep -q '^holding' "$work/hold-$round.out" && break; sleep 0.1; done
    check "round $round: 200 idle connections held" bash -c \
        "grep -qx 'holding 200' '$work/hold-$round.out' || { cat '$work/hold-$round.out'; false; }"
    check "round $round: malformed frames" python3 "$abuse" malformed "$work/open/abused.sock"
    check "round $round: descriptors that are not TCP sockets" \
        python3 "$abuse" notsock "$work/open/abused.sock"
    check "round $round: 40 handshakes that never finish time out" \
        python3 "$abuse" stall "$work/open/abused.sock" 40
    check "round $round: another uid (nobody) gets no answer" setpriv --reuid=nobody \
        --regid=nogroup --clear-groups /usr/bin/python3 "$abuse" otheruid "$work/open/abused.sock"
    good "round $round, during the abuse"
    kill "$hold_pid"
    wait "$hold_pid" 2>/dev/null || true
    rss_round[round]=$(rss_kib)
done
check "the other uid was refused and logged" \
    grep -q 'refused a connection from uid 65534' "$work/abused.log"
check "malformed frames were dropped and logged" grep -q 'malformed frame' "$work/abused.log"

echo "--- after the abuse"
good after
# Dropped clients and timed-out handshakes are released in the event loop: give it a moment.
for _ in $(seq 30); do [[ $(fds) -eq $fds_before ]] && break; sleep 0.1; done
check "the agent holds as many descriptors as before ($fds_before, now $(fds))" \
    test "$(fds)" -eq "$fds_before"
rss_text="KiB: $rss_before before, ${rss_round[*]} after each round"
if [[ $variant == asan ]]; then
    # ASan keeps freed memory in quarantine (up to 256 MiB), so RSS only grows; LeakSanitizer at
    # the agent's exit is the leak check there.
    notes+=("RSS under ASan, not checked: $rss_text")
else
    check "RSS grew by less than 4096 KiB from round 2 to round 3 ($rss_text)" \
        test $((rss_round[3] - rss_round[2])) -lt 4096
fi
kill -TERM "$agent_pid"
agent_rc=0
wait "$agent_pid" || agent_rc=$?
check "SIGTERM stops the agent with status 0 (exit $agent_rc)" test "$agent_rc" -eq 0
check "no sanitizer report (the agent's LeakSanitizer runs at its exit)" no_sanitizer_report
summary 72-agent-abuse
