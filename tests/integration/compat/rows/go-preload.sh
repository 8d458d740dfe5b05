# Row go-preload (a shim gap, registered disabled): the Go program of row go, webhook, preloaded
# by hand (LD_PRELOAD and SEALSOCK_CONFIG, as every other row runs its programs) instead of
# through `sealsock run`, under the inbound rule that seals every port it listens on. The shim
# is loaded but never sees a socket call (Go's runtime makes them itself), so unless it refuses
# or warns, webhook serves plaintext to anyone. Checked: a plain client gets no answer, or the
# program's stderr says why sealsock cannot seal it.
# shellcheck shell=bash
webhook=/usr/bin/webhook
result "webhook (Go) preloaded by hand" "$("$webhook" -version 2>&1 | head -1)" \
    "LD_PRELOAD and SEALSOCK_CONFIG with an inbound rule sealing every port: a plain curl gets no answer, or a sealsock: line says the program cannot be sealed"
printf '[{"id": "hello", "execute-command": "/bin/true", "response-message": "%s"}]\n' "$marker" >"$work/hooks.json"
port=$(free_port)
start_server webhook "$sconf" "$webhook" -ip 127.0.0.1 -port "$port" -hooks "$work/hooks.json"
wait_listen "$port"
run_sealed curl - curl -sS --max-time 5 "http://127.0.0.1:$port/hooks/hello"
stop_group "$server_pgid"
check "webhook preloaded under a sealing rule: no plaintext answer, or a sealsock: line that says why it cannot be sealed (curl read: $(head -c 80 "$work/curl.out"))" \
    bash -c "! grep -qF '$marker' '$work/curl.out' || grep -q '^sealsock: .*Go' '$work/webhook.err'"
