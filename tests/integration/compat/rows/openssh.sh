# Row openssh: OpenSSH's sshd (a private config on a loopback port, host key made here, run as
# root with -D -e -f: it re-executes itself per connection, a privilege-separated child speaks
# the protocol) sealed, with ssh (a remote command, its output checked) and scp (20 MiB there
# and back over the SFTP protocol, cmp).
# shellcheck shell=bash
result "OpenSSH sshd; ssh; scp" "$(ssh -V 2>&1) (sshd and ssh from the same source)" \
    "sshd re-executing per connection with privilege separation; ssh: a remote command's output; scp: 20 MiB there and back (cmp); the wire; both agents' logs"
ssh_dir=$work/ssh
mkdir -m 700 "$ssh_dir"
mkdir -p /run/sshd  # sshd's privilege-separation directory, normally made by its service
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/host" -C compat-host
ssh-keygen -q -t ed25519 -N '' -f "$ssh_dir/id" -C compat-user
cp "$ssh_dir/id.pub" "$ssh_dir/authorized_keys"
port=$(free_port)
cat >"$ssh_dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $ssh_dir/host
PidFile $ssh_dir/sshd.pid
AuthorizedKeysFile $ssh_dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
start_server sshd "$sconf" /usr/sbin/sshd -D -e -f "$ssh_dir/sshd_config"
wait_listen "$port"
relay_to ssh "$port"
printf '[127.0.0.1]:%s %s\n' "$rport" "$(cut -d' ' -f1-2 "$ssh_dir/host.pub")" >"$ssh_dir/known_hosts"
ssh_opts=(-F /dev/null -i "$ssh_dir/id" -o BatchMode=yes -o StrictHostKeyChecking=yes
          -o UserKnownHostsFile="$ssh_dir/known_hosts")

run_sealed ssh "$cconf" ssh "${ssh_opts[@]}" -p "$rport" root@127.0.0.1 "echo remote-$marker; id -un"
check "ssh: a remote command ran and its output came back" bash -c \
    "[[ $rc -eq 0 ]] && [[ \$(cat '$work/ssh.out') == \$'remote-$marker\nroot' ]]"
[[ $rc -eq 0 ]] || show_files ssh sshd

payload "$work/file" 20
run_sealed scp-to "$cconf" scp "${ssh_opts[@]}" -P "$rport" "$work/file" "root@127.0.0.1:$ssh_dir/file.there"
check "scp there: exit 0, 20 MiB arrived intact (cmp)" bash -c "[[ $rc -eq 0 ]] && cmp '$work/file' '$ssh_dir/file.there'"
[[ $rc -eq 0 ]] || show_files scp-to sshd
run_sealed scp-back "$cconf" scp "${ssh_opts[@]}" -P "$rport" "root@127.0.0.1:$ssh_dir/file.there" "$work/file.back"
check "scp back: exit 0, 20 MiB arrived intact (cmp)" bash -c "[[ $rc -eq 0 ]] && cmp '$work/file' '$work/file.back'"
[[ $rc -eq 0 ]] || show_files scp-back sshd

stop_group "$server_pgid"
wire_checks ssh openssh
agent_checks openssh /usr/sbin/sshd "/usr/bin/(ssh|scp)" 3
