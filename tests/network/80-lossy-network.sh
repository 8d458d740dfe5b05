#!/usr/bin/env bash
# A lossy network between two hosts: a sealed client and a sealed server in two network
# namespaces joined by a veth pair whose both ends drop 2 % and duplicate 1 % of TCP segments
# (nftables in the netdev egress hook; segmentation offload off, so each segment is a packet).
# The transfer must arrive intact both ways (the probe's sha256 on both ends), the wire must
# carry TLS (a packet capture on the veth: the first bytes of each direction are a handshake
# record, the plaintext marker never appears), the impairment must really have happened (the
# nftables counters), and both audit logs must close the connection with the byte counts.
#
# Delay and explicit reordering need the netem qdisc, which this machine's kernel lacks
# (CONFIG_NET_SCH_NETEM is not set: `zcat /proc/config.gz | grep NETEM`); loss and duplication
# still deliver segments out of order to the receiving TCP.
#
# Usage: 80-lossy-network.sh AGENT LIBSEALSOCK PROBE plain|asan
#   SEALSOCK_LONG=1: 100 MiB each way (the long form); default 16 MiB client to server.
#   SEALSOCK_TEST_KEEP=1 keeps $work.
set -euo pipefail

agent_bin=${1:?usage: 80-lossy-network.sh AGENT LIBSEALSOCK PROBE plain|asan}
shim=${2:?}
probe=${3:?}
variant=${4:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
source "$here/../integration/lib.sh"
lib_init lossy
[[ $(id -u) -eq 0 ]] || { echo "FAIL network namespaces need root"; exit 1; }
command -v nft >/dev/null || { echo "FAIL nft is not installed (scripts/install-deps)"; exit 1; }
make_pki
start_test_agents

size=$((16 * 1024 * 1024))
reply=$((4 * 1024 * 1024))
if [[ -n ${SEALSOCK_LONG:-} ]]; then size=$((100 * 1024 * 1024)); reply=$size; fi
[[ $variant == asan ]] && limit=300

# --- two hosts --------------------------------------------------------------------------------
ns_a=sealsock-a-$$ ns_b=sealsock-b-$$ if_a=ssa$$ if_b=ssb$$
net_cleanup() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    lib_cleanup
}
trap net_cleanup EXIT
ip netns add "$ns_a"
ip netns add "$ns_b"
ip link add "$if_a" type veth peer name "$if_b"
ip link set "$if_a" netns "$ns_a"
ip link set "$if_b" netns "$ns_b"
for side in "a 10.77.0.1 $ns_a $if_a" "b 10.77.0.2 $ns_b $if_b"; do
    read -r _ addr ns dev <<<"$side"
    ip -n "$ns" addr add "$addr/24" dev "$dev"
    # One TCP segment per packet, so the impairment acts on segments, not 64 KiB super-packets.
    ip -n "$ns" link set "$dev" gso_max_segs 1 gro_max_size 1500 2>/dev/null ||
        ip -n "$ns" link set "$dev" gso_max_segs 1
    ip -n "$ns" link set "$dev" up
    ip -n "$ns" link set lo up
    ip netns exec "$ns" nft -f - <<NFT
table netdev impair {
    chain egress {
        type filter hook egress device "$dev" priority 0; policy accept;
        meta l4proto tcp numgen random mod 1000 < 20 counter drop
        meta l4proto tcp numgen random mod 1000 < 10 counter dup to "$dev"
    }
}
NFT
done
ok "two namespaces joined by veth, 2 % loss and 1 % duplication each way"

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
ip netns exec "$ns_a" python3 "$here/sniff.py" "$if_a" 7777 "$work/wire" "$work/sniff.ready" &
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
wait "$sniff_pid" 2>/dev/null || true
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

drops=$(ip netns exec "$ns_a" nft list ruleset | awk '/drop/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }')
dups=$(ip netns exec "$ns_a" nft list ruleset | awk '/dup to/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }')
drops_b=$(ip netns exec "$ns_b" nft list ruleset | awk '/drop/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i + 1) }')
notes+=("client side dropped $drops and duplicated $dups segments; server side dropped $drops_b")
check "the impairment happened: segments dropped ($drops, $drops_b) and duplicated ($dups)" \
    bash -c "[[ ${drops:-0} -gt 10 && ${dups:-0} -gt 5 && ${drops_b:-0} -gt 0 ]]"

# --- the wire and the audit logs -----------------------------------------------------------------
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

summary 80-lossy-network
