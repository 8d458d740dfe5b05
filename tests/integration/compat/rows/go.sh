# Row go: a Go program cannot carry the shim: it is dynamically linked, so the loader preloads
# libsealsock.so, but Go's runtime makes its socket system calls itself, past every hook.
# webhook (Debian's package, an HTTP server in Go): `sealsock run` under a sealing rule refuses
# it (sealsock-check finds the .go.buildinfo section); a sealed program that execs it on a
# sealed connection does not hand the connection over. Preloaded by hand instead, it serves
# plaintext without a word: row go-preload (limits.md).
# shellcheck shell=bash
webhook=/usr/bin/webhook
row_pass="not supported (Go: its runtime makes its own system calls); refused, never plaintext"
result "webhook (Go, Debian's webhook package)" "$("$webhook" -version 2>&1 | head -1), $(dpkg-query -W -f='Built-Using ${Built-Using}' webhook | grep -o 'golang-[0-9.]* ([^)]*)')" \
    "file(1) says dynamically linked, sealsock-check finds a Go program; sealsock run under an inbound rule refuses it: not started, nothing listening; exec'd by a sealed Python server that has read a line from its sealed connection: the connection is not handed over (the client reads nothing after, the shim says why), the wire stays TLS"
check "webhook is dynamically linked (file), and sealsock-check says it is a Go program" bash -c \
    "file -L '$webhook' | grep -q 'dynamically linked' &&
     ! '${shim%/*}/sealsock-check' inspect '$webhook' >'$work/inspect.out' && grep -q 'it is a Go program' '$work/inspect.out'"
printf '[{"id": "hello", "execute-command": "/bin/true", "response-message": "%s"}]\n' "$marker" >"$work/hooks.json"
port=$(free_port)
wrapper_refuses webhook "webhook" "$sconf" "it is a Go program" \
    "$webhook" -ip 127.0.0.1 -port "$port" -hooks "$work/hooks.json"
check "webhook: nothing listens on its port" bash -c "[[ -z \$(ss -Htln 'sport = :$port') ]]"
exec_not_handed exec-go "webhook" "it is a Go program" "$webhook" -version
