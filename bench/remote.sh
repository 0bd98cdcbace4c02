#!/usr/bin/env bash
# The cost of asking other hosts (issue 26): `runs --on h1,h2` against two
# sshd "hosts" on 127.0.0.1 (each in its own UTS namespace, with its own
# host name and store, 20 ended jobs each), beside one local `runs` (20
# jobs), `runs --on h1` and one bare `ssh h1 true`, all measured by
# hyperfine in the same run. Writes bench/runs/YYYY-MM-DD-HHMM-remote.md.
#
#   bash bench/remote.sh [--bin DIR]   (default: a release build, made if missing)
#
# Needs root (sshd logs in root; unshare --uts), openssh-server, hyperfine.
# Everything is in a temporary directory; the sshd processes are stopped
# by the pids in their PidFiles at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    *) echo "usage: bash bench/remote.sh [--bin DIR]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench/remote.sh: run it as root (sshd logs in root here)" >&2; exit 1; }
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release --locked --quiet)
  BIN=$ROOT/target/release
fi
S=$(mktemp -d /tmp/bgrun-bench-remote.XXXXXX)
cleanup() {
  for i in 1 2; do [ -f "$S/h$i/pid" ] && kill "$(cat "$S/h$i/pid")" 2>/dev/null || true; done
  rm -rf "$S"
}
trap cleanup EXIT
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$S/hostkey"; ssh-keygen -q -t ed25519 -N '' -f "$S/user"
cp "$S/user.pub" "$S/auth"; chmod 600 "$S/auth"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
: > "$S/ssh_config"
for i in 1 2; do
  p=$(port); mkdir -p "$S/h$i"
  cat > "$S/h$i/cfg" <<C
Port $p
ListenAddress 127.0.0.1
HostKey $S/hostkey
AuthorizedKeysFile $S/auth
PermitRootLogin yes
PasswordAuthentication no
UsePAM no
StrictModes no
PidFile $S/h$i/pid
SetEnv RUN_DIR=$S/h$i/store PATH=$BIN:/usr/bin:/bin
C
  unshare -u sh -c "hostname bench-host-$i; exec /usr/sbin/sshd -f $S/h$i/cfg -E $S/h$i/log"
  printf 'Host h%s\n  Port %s\n' "$i" "$p" >> "$S/ssh_config"
done
cat >> "$S/ssh_config" <<C
Host *
  HostName 127.0.0.1
  User root
  IdentityFile $S/user
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
C
export RUN_SSH="ssh -F $S/ssh_config" RUN_DIR=$S/local PATH=$BIN:$PATH
for _ in $(seq 100); do ssh -F "$S/ssh_config" h2 true 2>/dev/null && break; sleep 0.1; done
for i in $(seq 20); do
  run true >/dev/null; run --on h1 true >/dev/null; run --on h2 true >/dev/null
done
job wait "$(runs --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')" >/dev/null
sleep 1
OUT=$ROOT/bench/runs/$(date -u +%Y-%m-%d-%H%M)-remote.md
hyperfine -N --warmup 5 --runs 40 --export-markdown "$S/table.md" \
  -n 'runs (local, 20 jobs)' "$BIN/runs" \
  -n 'ssh h1 true' "ssh -F $S/ssh_config h1 true" \
  -n 'runs --on h1' "$BIN/runs --on h1" \
  -n 'runs --on h1,h2' "$BIN/runs --on h1,h2" \
  -n 'runs --on local,h1,h2' "$BIN/runs --on local,h1,h2" >&2
{
  echo "# runs --on: two loopback hosts, $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "At $(cd "$ROOT" && git rev-parse --short HEAD); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -sr), $(ssh -V 2>&1)."
  echo "Binaries: $BIN. Each host: a real sshd on 127.0.0.1 in its own UTS namespace, ed25519 keys, 20 ended jobs in its store; the local store holds 20."
  echo "hyperfine -N, 5 warm-up runs, 40 runs each, in the same run (the machine is shared: ratios mean more than times)."
  echo
  cat "$S/table.md"
} > "$OUT"
cat "$OUT"
