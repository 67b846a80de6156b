#!/usr/bin/env bash
# Starts a PostgreSQL on loopback for serin-orchestrator's backup tests, idempotently.
#
# Installs Debian's `postgresql` package if no server binary is present, creates a cluster in
# ${SERIN_SERVICES_DIR:-/tmp/serin-services}/postgres owned by the `postgres` OS user (trust
# authentication, loopback only), starts it on 127.0.0.1:25432 unless it already runs, and waits
# until `pg_isready` answers. The port is below Linux's ephemeral range (32768-60999): a port in
# it can be held for a while by any outgoing connection, and a load test just before leaves
# thousands of them.
#
# Only the final line goes to stdout, so a caller can run:
#   eval "$(scripts/services/postgres.sh)"
set -euo pipefail

host="127.0.0.1"
port="25432"
dir="${SERIN_SERVICES_DIR:-/tmp/serin-services}/postgres"
data="$dir/data"

log() { echo "postgres.sh: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# The directory of the newest installed server binaries (initdb, pg_ctl, postgres), if any.
bindir() {
  local found=""
  for candidate in /usr/lib/postgresql/*/bin; do
    [[ -x "$candidate/postgres" && -x "$candidate/initdb" ]] && found="$candidate"
  done
  [[ -n "$found" ]] && echo "$found"
}

install_postgres() {
  if bindir >/dev/null && command -v pg_dump >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's postgresql package"
  local status=0
  apt_install_quietly postgresql postgresql-client || status=$?
  ((status == 0)) || { log "apt-get could not install postgresql (exit ${status})"; exit 1; }
  bindir >/dev/null || { log "no server binaries under /usr/lib/postgresql/*/bin"; exit 1; }
}

# Runs a command as the `postgres` OS user when we are root (the server refuses to run as
# root), as ourselves otherwise.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

create_cluster() {
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [[ "$(id -u)" == 0 ]]; then
    chown postgres:postgres "$dir"
    # The services directory may have been created by root with a tight umask.
    chmod o+x "$(dirname "$dir")" 2>/dev/null || true
  fi
  if [[ -f "$data/PG_VERSION" ]]; then
    return
  fi
  log "creating a cluster in ${data}"
  as_owner "$(bindir)/initdb" -D "$data" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || {
    log "initdb failed; its output:"
    cat "$dir/initdb.log" >&2
    exit 1
  }
}

ready() {
  pg_isready -q -h "$host" -p "$port" -U postgres -t 2 >/dev/null 2>&1
}

start_postgres() {
  if ready; then
    log "a PostgreSQL already answers at ${host}:${port}"
    return
  fi
  if as_owner "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "our PostgreSQL is starting; waiting for it"
    return
  fi
  log "starting postgres on ${host}:${port} (data in ${data}, log in ${dir}/postgres.log)"
  # Sockets in the cluster's own directory, so nothing needs /var/run/postgresql.
  as_owner "$(bindir)/pg_ctl" -D "$data" -l "$dir/postgres.log" -s \
    -o "-c listen_addresses=${host} -c port=${port} -c unix_socket_directories=${dir}" \
    start >&2 || true
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until ready; do
    if ((SECONDS >= deadline)); then
      log "PostgreSQL did not become ready within 60s; last log lines:"
      tail -n 20 "$dir/postgres.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready at ${host}:${port}"
}

install_postgres
create_cluster
start_postgres
wait_ready
echo "export SERIN_TEST_POSTGRES='host=${host} port=${port} user=postgres'"
