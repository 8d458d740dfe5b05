# Row nginx-wrk: the same nginx, sealed, with wrk: 20 connections for 3 seconds, no socket
# error, every answer 200.
# shellcheck shell=bash
# shellcheck source=../programs/nginx.sh
source "$here/programs/nginx.sh"
result "nginx; wrk" "$nginx_version; $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" \
    "nginx as in the row above; wrk: 20 connections for 3 s, no socket error, every answer 200; the wire; both agents' logs"
printf 'small %s\n' "$(head -c 600 /dev/urandom | base64 -w0)" >"$ng/www/small.bin"
relay_to wrk "$port"
run_sealed wrk "$cconf" wrk -t 2 -c 20 -d 3s "http://127.0.0.1:$rport/small.bin"
wrk_errors=$(grep -Eo 'Socket errors.*|Non-2xx.*' "$work/wrk.out" | tr '\n' ' ' || true)
check "wrk: exit 0, requests made, no socket error, no non-2xx answer${wrk_errors:+ (wrk says: ${wrk_errors% })}" bash -c \
    "[[ $rc -eq 0 ]] && grep -Eq '^ *[1-9][0-9]* requests in' '$work/wrk.out' &&
     ! grep -Eq 'Socket errors|Non-2xx' '$work/wrk.out'"
[[ $rc -eq 0 ]] || show_files wrk nginx
notes+=("wrk: $(grep -E 'requests in|Requests/sec' "$work/wrk.out" | tr -s ' ' | tr '\n' ' ')")
wire_checks wrk "nginx <- wrk"

stop_group "$server_pgid"
agent_checks nginx /usr/sbin/nginx /usr/bin/wrk 20
