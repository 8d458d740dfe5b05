# Row static: a statically linked program cannot carry the shim (no dynamic loader runs, so
# nothing is preloaded), so sealsock must refuse it rather than let it talk in plaintext.
# busybox from busybox-static: `sealsock run` under a sealing rule refuses its wget (client
# rule) and its httpd (inbound rule): not started, no connection made, nothing listening. And a
# sealed program that execs it on a sealed connection does not hand the connection over (the
# shim's exec check, shim/session/exec_target.h).
# shellcheck shell=bash
busybox=/bin/busybox
row_pass="not supported (statically linked: nothing can be preloaded); refused, never plaintext"
result "busybox (Debian's busybox-static): wget, httpd, echo" "$("$busybox" | head -1 | cut -d' ' -f1-2)" \
    "file(1) says statically linked; sealsock run under a sealing rule refuses wget (outbound) and httpd (inbound): not started, no connection made, nothing listening; exec'd by a sealed Python server that has read a line from its sealed connection: the connection is not handed over (the client reads nothing after, the shim says why), the wire stays TLS"
check "busybox is statically linked (file says so)" bash -c "file -L '$busybox' | tee /dev/stderr | grep -q 'statically linked'"
# wget would connect to a relay whose target is closed: a connection would leave a line or a
# capture behind.
relay_to wget "$(free_port)"
wrapper_refuses wget "busybox wget" "$cconf" "it is statically linked" \
    "$busybox" wget -q -O - "http://127.0.0.1:$rport/"
check "busybox wget: no connection was made" bash -c "[[ ! -s '$work/wget.relay' ]] && ! ls '$work/wget.wire.'* 2>/dev/null"
port=$(free_port)
wrapper_refuses httpd "busybox httpd" "$sconf" "it is statically linked" \
    "$busybox" httpd -f -p "127.0.0.1:$port" -h "$work"
check "busybox httpd: nothing listens on its port" bash -c "[[ -z \$(ss -Htln 'sport = :$port') ]]"
exec_not_handed exec-static "busybox echo" "it is statically linked" "$busybox" echo "$marker"
