# Row go-preload: the Go program of row go, webhook, preloaded by hand (LD_PRELOAD and
# SEALSOCK_CONFIG, as every other row runs its programs) instead of through `sealsock run`, under
# the inbound rule that seals every port it listens on. The shim is loaded but would never see a
# socket call (Go's runtime makes them itself), so it stops the program before main: webhook
# exits 126 with a sealsock: line that says why, nothing listens, a plain curl gets no answer.
# shellcheck shell=bash
webhook=/usr/bin/webhook
result "webhook (Go) preloaded by hand" "$("$webhook" -version 2>&1 | head -1)" \
    "LD_PRELOAD and SEALSOCK_CONFIG with an inbound rule sealing every port: the shim stops it before main (exit 126, a sealsock: line naming Go and the rule); nothing listens; a plain curl gets no answer"
printf '[{"id": "hello", "execute-command": "/bin/true", "response-message": "%s"}]\n' "$marker" >"$work/hooks.json"
port=$(free_port)
run_sealed webhook "$sconf" timeout 10 "$webhook" -ip 127.0.0.1 -port "$port" -hooks "$work/hooks.json"
check "webhook preloaded under a sealing rule: stopped before main (exit 126, got $rc)" test "$rc" -eq 126
check "webhook: one sealsock: line says it is a Go program and names the rule" \
    grep -Eq '^sealsock: this program cannot be sealed: .*Go.*rule "echo"' "$work/webhook.err"
check "webhook: nothing listens on its port" bash -c "[[ -z \$(ss -Htln 'sport = :$port') ]]"
run_sealed curl - curl -sS --max-time 5 "http://127.0.0.1:$port/hooks/hello"
check "a plain curl gets no answer (no marker)" bash -c "! grep -qF '$marker' '$work/curl.out'"
