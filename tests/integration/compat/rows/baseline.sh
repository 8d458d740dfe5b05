# Row baseline: the wire check's control. Two program pairs of the rows above run WITHOUT
# sealsock through the same relay and the same check (wire.py), which must report plaintext:
# socat sending a file with the plaintext marker to nc (the check finds the marker), and an
# iperf3 test (random data, no marker: the check finds bytes that are not TLS records). So no
# row can pass its wire check with programs that were not sealed.
# shellcheck shell=bash
row_pass="pass: unsealed, the wire check reports plaintext"
result "no sealsock: socat -> nc; iperf3 (the wire check's control)" \
    "$(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'); $(iperf3 --version | head -1 | cut -d' ' -f1-2)" \
    "the programs unsealed, through the same relay: they work (cmp; iperf3's JSON), and wire.py's check fails, naming the marker (socat) and the first bytes that are not a TLS record (iperf3)"
payload "$work/in" 1
port=$(free_port)
start_server nc - nc.openbsd -l 127.0.0.1 "$port"
wait_listen "$port"
relay_to socat "$port"
run_sealed socat - socat -u "OPEN:$work/in" "TCP:127.0.0.1:$rport"
for _ in $(seq 50); do kill -0 "$server_pgid" 2>/dev/null || break; sleep 0.1; done
stop_group "$server_pgid"
check "socat -> nc, unsealed: 1 MiB arrived intact (cmp)" cmp "$work/in" "$work/nc.out"
wire_is_plain socat "socat -> nc" "the plaintext marker is on the wire"

port=$(free_port)
start_server iperf3-server - iperf3 -s -1 -B 127.0.0.1 -p "$port"
wait_listen "$port"
relay_to iperf3 "$port"
run_sealed iperf3 - iperf3 -c 127.0.0.1 -p "$rport" -n 4M -J
stop_group "$server_pgid"
check "iperf3, unsealed: exit 0, no error, bytes received" bash -c \
    "[[ $rc -eq 0 ]] && python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); sys.exit(\"error\" in r or r[\"end\"][\"sum_received\"][\"bytes\"] <= 0)' '$work/iperf3.out'"
wire_is_plain iperf3 iperf3 "is not TLS|not a record header|does not start with a handshake record"
