# Row nginx: nginx (master and two workers, epoll edge-triggered, accept4, sendfile on,
# keepalive) sealed, with curl: two 50 MiB downloads on one kept-alive connection (cmp).
# shellcheck shell=bash
# shellcheck source=../programs/nginx.sh
source "$here/programs/nginx.sh"
result "nginx; curl" "$nginx_version; $(curl --version | head -1 | cut -d' ' -f1-2)" \
    "nginx with 2 workers, epoll (edge-triggered), accept4, sendfile on, keepalive; curl: two 50 MiB files on one connection, each compared (cmp); the wire; both agents' logs"
nginx_curl_both 50
wire_checks curl "nginx <- curl"
check "curl: both files came over one kept-alive connection" grep -q '^connections 1,' "$work/curl.wirecheck"

stop_group "$server_pgid"
agent_checks nginx /usr/sbin/nginx /usr/bin/curl 1
