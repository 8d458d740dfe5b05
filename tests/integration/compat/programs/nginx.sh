# nginx for the nginx rows (sourced by rows/nginx.sh and rows/nginx-wrk.sh): master and two
# workers, epoll (edge-triggered), accept4, sendfile on, keepalive, a private prefix in
# $work/nginx serving $ng/www; sealed by $sconf. Sets $ng, $port, $server_pgid.
# For the mixed-peer row: $nginx_seal (a config for start_server, "-" for none), $nginx_http and
# $nginx_server (lines added to the http and server blocks), $nginx_listen (after the address).
#   nginx_curl_both MIB     a sealed curl fetches two MIB MiB files through a relay (`curl`) on
#                           one connection; checks its exit and both files (cmp)
# shellcheck shell=bash
nginx_version=$(nginx -v 2>&1 | sed 's/^nginx version: //')
ng=$work/nginx
mkdir -p "$ng/www" "$ng/tmp"
port=$(free_port)
# The workers accept, so they run as root like the agent (it serves its own uid only). nginx
# clears its workers' environment, and the shim reads SEALSOCK_CONFIG at the first accept, in a
# worker: without `env SEALSOCK_CONFIG` the workers find no config and serve plaintext
# (limits.md).
cat >"$ng/nginx.conf" <<CONF
user root;
env SEALSOCK_CONFIG;
worker_processes 2;
daemon off;
pid $ng/nginx.pid;
error_log stderr notice;
events { use epoll; multi_accept on; }
http {
    ${nginx_http:-access_log off;}
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    keepalive_requests 100000;
    client_body_temp_path $ng/tmp/body;
    proxy_temp_path $ng/tmp/proxy;
    fastcgi_temp_path $ng/tmp/fastcgi;
    uwsgi_temp_path $ng/tmp/uwsgi;
    scgi_temp_path $ng/tmp/scgi;
    types { application/octet-stream bin; }
    server {
        listen 127.0.0.1:$port${nginx_listen:+ $nginx_listen};
        root $ng/www;
        ${nginx_server:-}
    }
}
CONF
start_server nginx "${nginx_seal:-$sconf}" nginx -e stderr -p "$ng" -c "$ng/nginx.conf"
wait_listen "$port"


nginx_curl_both() {
    payload "$ng/www/a.bin" "$1"
    payload "$ng/www/b.bin" "$1"
    relay_to curl "$port"
    run_sealed curl "$cconf" curl -sS --fail -o "$work/a.got" "http://127.0.0.1:$rport/a.bin" \
        -o "$work/b.got" "http://127.0.0.1:$rport/b.bin"
    check "curl: exit 0" test "$rc" -eq 0
    [[ $rc -eq 0 ]] || show_files curl nginx
    check "curl: the first $1 MiB file arrived intact (cmp)" cmp "$ng/www/a.bin" "$work/a.got"
    check "curl: the second $1 MiB file arrived intact (cmp)" cmp "$ng/www/b.bin" "$work/b.got"
}
