#!/usr/bin/env bash
# Starts an SMTP server on loopback for serin-orchestrator's e-mail notification tests,
# idempotently.
#
# Installs Python's `aiosmtpd` from PyPI if it is missing, starts it on 127.0.0.1:2525 (plain
# SMTP, no STARTTLS) unless an SMTP server already answers there, delivering every message to
# a Maildir, and waits until it greets.
#
# Only the `export` lines go to stdout, so a caller can run:
#   eval "$(scripts/services/smtp.sh)"
set -euo pipefail

host="127.0.0.1"
port="2525"
dir="${SERIN_SERVICES_DIR:-/tmp/serin-services}/smtp"
maildir="$dir/maildir"
python="${PYTHON:-python3}"

log() { echo "smtp.sh: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# Whether an SMTP server at $host:$port sends its 220 greeting.
greets() {
  local line=""
  { exec 3<>"/dev/tcp/${host}/${port}"; } 2>/dev/null || return 1
  IFS= read -r -t 2 line <&3 || line=""
  printf 'QUIT\r\n' >&3 2>/dev/null || true
  exec 3>&- 3<&-
  [[ "$line" == 220* ]]
}

install_aiosmtpd() {
  if "$python" -c 'import aiosmtpd' >/dev/null 2>&1; then
    return
  fi
  log "installing aiosmtpd from PyPI"
  "$python" -m pip install --quiet --disable-pip-version-check aiosmtpd >&2 ||
    { log "pip could not install aiosmtpd"; exit 1; }
  "$python" -c 'import aiosmtpd' >/dev/null 2>&1 || { log "aiosmtpd still does not import"; exit 1; }
}

# The pid of the aiosmtpd we started, if it still runs.
our_pid() { running_pid "$dir/aiosmtpd.pid" aiosmtpd; }

start_server() {
  # A Maildir's three subdirectories (Python's Maildir only creates them with the directory).
  mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
  if greets; then
    if our_pid >/dev/null; then
      log "our aiosmtpd already answers at ${host}:${port}"
      return
    fi
    log "another SMTP server answers at ${host}:${port}; its mailbox is not ${maildir}: stop it first"
    exit 1
  fi
  local pid
  if pid=$(our_pid); then
    log "our aiosmtpd (pid ${pid}) is starting; waiting for it"
    return
  fi
  log "starting aiosmtpd on ${host}:${port} (Maildir ${maildir}, log in ${dir}/aiosmtpd.log)"
  nohup "$python" -m aiosmtpd -n -l "${host}:${port}" \
    -c aiosmtpd.handlers.Mailbox "$maildir" \
    >"$dir/aiosmtpd.log" 2>&1 </dev/null &
  echo $! >"$dir/aiosmtpd.pid"
}

wait_ready() {
  local deadline=$((SECONDS + 30))
  until greets; do
    if ((SECONDS >= deadline)); then
      log "aiosmtpd did not greet within 30s; last log lines:"
      tail -n 20 "$dir/aiosmtpd.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  log "ready at ${host}:${port}"
}

install_aiosmtpd
start_server
wait_ready
echo "export SERIN_TEST_SMTP=${host}:${port}"
echo "export SERIN_TEST_SMTP_MAILBOX=${maildir}"
