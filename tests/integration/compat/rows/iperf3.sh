# Row iperf3: iperf3 (select(), a control connection and a data connection per test) sealed as
# server and client, both directions (-R), 1 MiB writes for up to 2 s, the data read from and
# written to files (-F): the receiver wrote as many bytes as iperf3's JSON says it received.
# (The bytes themselves are not compared: iperf3 -F does not keep them in order across short
# writes, plain too. The test ends at the file's end, and the receiver closes its data socket
# with bytes unread, a reset that may cut the last record short: wire.py allows that.)
# shellcheck shell=bash
result "iperf3 (server and client)" "$(iperf3 --version | head -1 | cut -d' ' -f1-2)" \
    "client to server and reverse (-R): 1 MiB writes for up to 2 s of a 64 MiB file; JSON: no error, bytes received > 0 and = the bytes the receiver wrote to its file; both connections of each test (control, data) on the wire; both agents' logs"
{ printf '%s' "$marker"; head -c $((64 << 20)) /dev/urandom; } >"$work/in"

# iperf_case NAME SERVER_FILE CLIENT_FILE RECEIVED_FILE [CLIENT_OPTION...]: a one-off sealed
# server, a sealed client through the relay, then the JSON and the bytes checked.
iperf_case() {
    local name=$1
    port=$(free_port)
    start_server "$name-server" "$sconf" iperf3 -s -1 -B 127.0.0.1 -p "$port" -F "$2"
    wait_listen "$port"
    relay_to "$name" "$port"
    run_sealed "$name" "$cconf" iperf3 -c 127.0.0.1 -p "$rport" -t 2 -l 1M -J -F "$3" "${@:5}"
    for _ in $(seq 50); do kill -0 "$server_pgid" 2>/dev/null || break; sleep 0.1; done
    stop_group "$server_pgid"
    check "iperf3 $name: the client exited 0" test "$rc" -eq 0
    check "iperf3 $name: no error in the JSON, bytes received > 0, all written to ${4##*/}" \
        python3 - "$work/$name.out" "$4" <<'PY'
import json, os, sys
report = json.load(open(sys.argv[1]))
if "error" in report:
    sys.exit(f"iperf3 says: {report['error']}")
received = report["end"]["sum_received"]["bytes"]
written = os.path.getsize(sys.argv[2])
print(f"received {received} bytes, the receiver wrote {written}")
sys.exit(0 if 0 < received == written else 1)
PY
    [[ $rc -eq 0 ]] || show_files "$name" "$name-server"
    wire_checks "$name" "iperf3 $name"
    check "iperf3 $name: the control and the data connection both crossed the relay" \
        grep -q '^connections 2,' "$work/$name.wirecheck"
}

iperf_case forward "$work/forward.got" "$work/in" "$work/forward.got"
iperf_case reverse "$work/in" "$work/reverse.got" "$work/reverse.got" -R
agent_checks iperf3 /usr/bin/iperf3 /usr/bin/iperf3 4
