#!/usr/bin/env bash
# A lossy network between two hosts: a sealed client and a sealed server in two network
# namespaces joined by linkem (tests/network/linkem.cc), a userspace link emulator that forwards
# Ethernet frames between a TAP device in each namespace and, each way, delays every frame by
# 20 ms +/- 5 ms, drops 1.5 %, duplicates 1 % and holds 1.5 % back by 10 ms more so that later
# frames overtake them (reordering). The kernel's netem qdisc would do the same, but this
# machine's kernel lacks it (CONFIG_NET_SCH_NETEM is not set: `zcat /proc/config.gz | grep
# NETEM`); TAP devices need only CONFIG_TUN.
#
# The transfer must arrive intact both ways (the probe's sha256 on both ends), the wire must
# carry TLS (a packet capture on the client's TAP: the first bytes of each direction are a
# handshake record, the plaintext marker never appears), every impairment must really have
# happened each way (linkem's counters: frames dropped, duplicated, held back and overtaken, and
# the delays it applied), and both audit logs must close the connection with the byte counts.
#
# Usage: 80-lossy-network.sh AGENT LIBSEALSOCK PROBE plain|asan LINKEM
#   default: 24 MiB each way; SEALSOCK_LONG=1: 100 MiB each way (the long form).
#   SEALSOCK_LINK=SPEC replaces the impairment (linkem's SPEC, e.g. delay=50,jitter=10,loss=3),
#   SEALSOCK_LINK_SEED its seed. SEALSOCK_TEST_KEEP=1 keeps $work.
set -euo pipefail

usage="usage: 80-lossy-network.sh AGENT LIBSEALSOCK PROBE plain|asan LINKEM"
agent_bin=${1:?$usage}
shim=${2:?$usage}
probe=${3:?$usage}
variant=${4:?$usage}
linkem=${5:?$usage}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
source "$here/../integration/lib.sh"
lib_init lossy
[[ $(id -u) -eq 0 ]] || { echo "FAIL network namespaces need root"; exit 1; }
[[ -c /dev/net/tun ]] || { echo "FAIL /dev/net/tun is missing (CONFIG_TUN)"; exit 1; }
make_pki
start_test_agents

size=$((24 * 1024 * 1024))
if [[ -n ${SEALSOCK_LONG:-} ]]; then size=$((100 * 1024 * 1024)); fi
reply=$size
if [[ -n ${SEALSOCK_LONG:-} ]]; then limit=600; elif [[ $variant == asan ]]; then limit=300; fi
# Per direction: delay +/- jitter (ms), loss, duplication and reordering (%), and how much longer
# (ms) a reordered frame is held.
delay=20 jitter=5
spec=${SEALSOCK_LINK:-delay=$delay,jitter=$jitter,loss=1.5,dup=1,reorder=1.5,hold=10}

# --- two hosts, one emulated link ---------------------------------------------------------------
ns_a=sealsock-a-$$ ns_b=sealsock-b-$$ tap_a=ssa$$ tap_b=ssb$$
link_pid=
net_cleanup() {
    [[ -n $link_pid ]] && kill -TERM "$link_pid" 2>/dev/null && wait "$link_pid" 2>/dev/null
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    lib_cleanup
}
trap net_cleanup EXIT
ip netns add "$ns_a"
ip netns add "$ns_b"
# linkem stops by itself at the time limit too (SIGTERM from timeout), so nothing outlives a run.
timeout $((3 * limit + 60)) "$linkem" "$ns_a" "$tap_a" "$ns_b" "$tap_b" \
    --seed "${SEALSOCK_LINK_SEED:-80}" --both "$spec" --ready "$work/link.ready" \
    >"$work/link.out" 2>"$work/link.err" &
link_pid=$!
for _ in $(seq 100); do [[ -e $work/link.ready ]] && break; sleep 0.05; done
[[ -e $work/link.ready ]] || { cat "$work/link.err"; echo "FAIL linkem did not start"; exit 1; }
# Fixed MAC addresses and permanent neighbour entries (no ARP to lose) and no IPv6 (no router
# solicitations): the link carries the test's TCP connection and nothing else.
for side in "10.77.0.1 02:00:0a:4d:00:01 $ns_a $tap_a" "10.77.0.2 02:00:0a:4d:00:02 $ns_b $tap_b"; do
    read -r addr mac ns dev <<<"$side"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set "$dev" address "$mac"
    ip -n "$ns" addr add "$addr/24" dev "$dev"
    ip -n "$ns" link set "$dev" up
    ip -n "$ns" link set lo up
done
ip -n "$ns_a" neigh add 10.77.0.2 lladdr 02:00:0a:4d:00:02 dev "$tap_a" nud permanent
ip -n "$ns_b" neigh add 10.77.0.1 lladdr 02:00:0a:4d:00:01 dev "$tap_b" nud permanent
ok "two namespaces joined by linkem ($spec each way)"

# The client's rule seals the server host; its certificate says localhost.
cat >"$work/lossy-client.toml" <<TOML
agent_socket = "$run/client.sock"
audit_log = "$work/lossy-client.audit"

[[outbound]]
name = "lossy"
destinations = ["10.77.0.0/24"]
identity = "alice"
expect = "name:localhost"
TOML
sed "s|^audit_log = .*|audit_log = \"$work/lossy-server.audit\"|" "$sconf" >"$work/lossy-server.toml"

# --- the transfer -------------------------------------------------------------------------------
ip netns exec "$ns_a" python3 "$here/sniff.py" "$tap_a" 7777 "$work/wire" "$work/sniff.ready" &
sniff_pid=$!
pids+=("$sniff_pid")
for _ in $(seq 100); do [[ -e $work/sniff.ready ]] && break; sleep 0.05; done

started=$SECONDS
ip netns exec "$ns_b" timeout "$limit" env SEALSOCK_CONFIG="$work/lossy-server.toml" \
    LD_PRELOAD="$shim" "$probe" server --mode blocking --listen 10.77.0.2 --port 7777 \
    --port-file "$work/srv.port" --seed 41 --reply-size "$reply" \
    >"$work/lossy.srv" 2>"$work/lossy.srv.err" &
srv_pid=$!
pids+=("$srv_pid")
for _ in $(seq 100); do [[ -s $work/srv.port ]] && break; sleep 0.05; done
cli_rc=0
ip netns exec "$ns_a" timeout "$limit" env SEALSOCK_CONFIG="$work/lossy-client.toml" \
    LD_PRELOAD="$shim" "$probe" client --mode blocking --connect 10.77.0.2:7777 --seed 41 \
    --size "$size" --reply-size "$reply" --marker "$marker" \
    >"$work/lossy.cli" 2>"$work/lossy.cli.err" || cli_rc=$?
srv_rc=0
wait "$srv_pid" || srv_rc=$?
kill -TERM "$sniff_pid" 2>/dev/null || true
sniff_rc=0
wait "$sniff_pid" 2>/dev/null || sniff_rc=$?
took=$((SECONDS - started))
notes+=("$((size / 1048576)) MiB up, $((reply / 1048576)) MiB down in ${took} s")

on_fail=lossy check "the client sent $size bytes and verified the server's answer (exit 0)" bash -c \
    "[[ $cli_rc -eq 0 ]] && grep -qx verified '$work/lossy.cli' && grep -Eqx 'totals: sent $size received [0-9]+' '$work/lossy.cli'"
c_sent=$(awk '$1 == "sent" { print $3 }' "$work/lossy.cli")
s_recv=$(awk '$1 == "received" { print $3 }' "$work/lossy.srv")
s_sent=$(awk '$1 == "sent" { print $3 }' "$work/lossy.srv")
c_recv=$(awk '$1 == "received" { print $3 }' "$work/lossy.cli")
check "the server exited 0 and its sha256 of what it received is the client's of what it sent" \
    bash -c "[[ $srv_rc -eq 0 && -n '$c_sent' && '$c_sent' == '$s_recv' && -n '$s_sent' && '$s_sent' == '$c_recv' ]]"
check "no sealsock: line on either side" bash -c "! grep -q '^sealsock:' '$work/lossy.cli.err' '$work/lossy.srv.err'"

# --- the link's own account ---------------------------------------------------------------------
kill -TERM "$link_pid" 2>/dev/null || true
wait "$link_pid" 2>/dev/null || true
link_pid=
link() {  # link a2b|b2a COUNTER: one of linkem's counters at exit (empty if it printed none)
    awk -v dir="$1" -v name="$2" \
        '$1 == dir { for (i = 2; i < NF; i += 2) if ($i == name) print $(i + 1) }' "$work/link.out"
}
for dir in a2b b2a; do
    what=client-to-server
    [[ $dir == b2a ]] && what=server-to-client
    notes+=("linkem $what: $(link "$dir" frames) frames, $(link "$dir" dropped) dropped, $(link "$dir" duplicated) duplicated, $(link "$dir" held) held back, $(link "$dir" overtaken) overtaken, $(link "$dir" overflow) over its queue limit, $(link "$dir" write_errors) refused by the receiving namespace; delay $(link "$dir" delay_us_min) / $(link "$dir" delay_us_avg) / $(link "$dir" delay_us_max) us (min / avg / max)")
    check "link $what: frames dropped, duplicated, held back and overtaken (all > 0)" bash -c \
        "[[ $(link "$dir" dropped) -gt 0 && $(link "$dir" duplicated) -gt 0 &&
            $(link "$dir" held) -gt 0 && $(link "$dir" overtaken) -gt 0 ]]"
    if [[ -z ${SEALSOCK_LINK:-} ]]; then
        # No frame left before delay - jitter, and some left before delay: the jitter acted.
        check "link $what: every frame delayed at least $((delay - jitter)) ms, some less than $delay ms" \
            bash -c "[[ $(link "$dir" delay_us_min) -ge $(((delay - jitter) * 1000)) &&
                        $(link "$dir" delay_us_min) -lt $((delay * 1000)) ]]"
    fi
done

# --- the wire and the audit logs -----------------------------------------------------------------
# sniff.py ends with status 0 on SIGTERM; anything else (a full disk: ENOSPC) makes the capture,
# and every file the run wrote after it, incomplete.
check "the capture ran to the end (sniff.py exit status $sniff_rc)" test "$sniff_rc" -eq 0
check "wire: both directions begin with a TLS handshake record (0x16)" \
    bash -c "grep -qx 'c2s 16' '$work/wire.first' && grep -qx 's2c 16' '$work/wire.first'"
# The capture is a sample (a busy machine drops packets at the sniffer); the marker stands every
# 512 bytes of the plaintext, so any plaintext it caught would show it.
check "wire: the capture holds more than 1 MiB of the client's stream and never the marker" bash -c \
    "[[ \$(stat -c %s '$work/wire.c2s') -gt 1048576 ]] && ! grep -qaF '$marker' '$work/wire.c2s' '$work/wire.s2c'"
audit=$here/../integration/session/audit_check.py
read -r _ _ c_sent_n _ c_recv_n < <(grep '^totals:' "$work/lossy.cli" || echo "totals: sent ? received ?")
check "audit: the client logged open and close with the bytes it sent ($c_sent_n) and received ($c_recv_n)" \
    python3 "$audit" "$work/lossy-client.audit" open,close close.outcome=closed \
    "close.bytes_sent=$c_sent_n" "close.bytes_received=$c_recv_n" peer=10.77.0.2:7777
check "audit: the server logged open and close with the bytes it sent ($c_recv_n) and received ($c_sent_n)" \
    python3 "$audit" "$work/lossy-server.audit" open,close close.outcome=closed \
    "close.bytes_sent=$c_recv_n" "close.bytes_received=$c_sent_n" local=10.77.0.2:7777
check "no sanitizer report in any output or log" bash -c \
    "! grep -rlE 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:' '$work' \
        --include='*.err' --include='*.log' --include='*.out' --include='*.cli' --include='*.srv'"

summary 80-lossy-network
