# Row nginx: nginx (master and two workers, epoll edge-triggered, accept4, sendfile on,
# keepalive) sealed, with curl: two 50 MiB downloads on one kept-alive connection, SHA-256
# compared.
# shellcheck shell=bash
# shellcheck source=../programs/nginx.sh
source "$here/programs/nginx.sh"
result "nginx; curl" "$nginx_version; $(curl --version | head -1 | cut -d' ' -f1-2)" \
    "nginx with 2 workers, epoll (edge-triggered), accept4, sendfile on, keepalive; curl: two 50 MiB files on one connection, SHA-256 of each compared; the wire; both agents' logs"
payload "$ng/www/a.bin" 50
payload "$ng/www/b.bin" 50
relay_to curl "$port"
run_sealed curl "$cconf" curl -sS --fail -o "$work/a.got" "http://127.0.0.1:$rport/a.bin" \
    -o "$work/b.got" "http://127.0.0.1:$rport/b.bin"
check "curl: exit 0" test "$rc" -eq 0
[[ $rc -eq 0 ]] || show_files curl nginx
check "curl: the first 50 MiB file's SHA-256 matches" cmp "$ng/www/a.bin" "$work/a.got"
check "curl: the second 50 MiB file's SHA-256 matches" bash -c \
    "[[ \$(sha256sum <'$ng/www/b.bin') == \$(sha256sum <'$work/b.got') ]]"
wire_checks curl "nginx <- curl"
check "curl: both files came over one kept-alive connection" grep -q '^connections 1,' "$work/curl.wirecheck"

stop_group "$server_pgid"
agent_checks nginx /usr/sbin/nginx /usr/bin/curl 1
