# Helpers shared by the service and bench scripts; sourced, not run. Each caller defines
# `log` (messages go to stderr: the callers' stdout carries only `export` lines).

# Installs Debian packages without starting any service they ship. There is no init system to
# start services here: a policy-rc.d that answers 101 makes the packages' postinst scripts skip
# starting the distribution's own instances, so the caller's stays the only one. Any policy
# already in place is put back afterwards. Retries once after `apt-get update` when the
# package lists are stale. Returns apt-get's exit status.
apt_install_quietly() {
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d backup=""
  if [[ -e "$policy" ]]; then
    backup=$(mktemp)
    cp -p "$policy" "$backup"
  fi
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  local status=0
  apt-get install -y -qq --no-install-recommends "$@" >&2 || status=$?
  if ((status != 0)); then
    log "package lists may be stale; running apt-get update"
    status=0
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$@" >&2; } ||
      status=$?
  fi
  if [[ -n "$backup" ]]; then
    mv "$backup" "$policy"
  else
    rm -f "$policy"
  fi
  return "$status"
}

# Prints the pid in `$1` if that process still runs and its command line names `$2`. A pid file
# can outlive its process (a reboot, a killed shell) and its pid be reused by another program.
running_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
  echo "$pid"
}
