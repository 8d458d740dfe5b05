# Row python: an asyncio streams echo server and client (programs/asyncio_echo.py), 200
# connections at once, 256 KiB each way on each, every echo compared by SHA-256.
# shellcheck shell=bash
echo_py=$here/programs/asyncio_echo.py
result "python3 asyncio streams (echo server and client)" "$(/usr/bin/python3 --version)" \
    "200 concurrent connections, 256 KiB each way on each, every echo's SHA-256 compared; the wire; both agents' logs"
start_server echo "$sconf" /usr/bin/python3 "$echo_py" server "$work/echo.port"
for _ in $(seq 100); do [[ -s $work/echo.port ]] && break; sleep 0.05; done
relay_to echo "$(cat "$work/echo.port")"
run_sealed echo-client "$cconf" /usr/bin/python3 "$echo_py" client "$rport" 200 262144 "$marker"
check "asyncio: 200 concurrent echoes of 256 KiB, every SHA-256 equal" bash -c \
    "[[ $rc -eq 0 ]] && grep -qx 'verified 200 of 200, 104857600 bytes' '$work/echo-client.out'"
[[ $rc -eq 0 ]] || show_files echo-client echo
wire_checks echo asyncio
agent_checks asyncio "/usr/bin/python3[.0-9]*" "/usr/bin/python3[.0-9]*" 200
check "asyncio: 200 connections crossed the relay" grep -q '^connections 200,' "$work/echo.wirecheck"
