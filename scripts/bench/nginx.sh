#!/usr/bin/env bash
# Installs nginx and wrk (Debian packages) for the `proxy` bench, which compares the embedded
# proxy with nginx as an equivalent weighted reverse proxy, same backends, same machine, same
# run. Nothing is started here: the bench starts its own nginx on loopback with its own config
# and stops it. Needs root to install; without it the bench skips the nginx column.
#
# Only the final line goes to stdout, so a caller can run:
#   eval "$(scripts/bench/nginx.sh)"
set -euo pipefail

log() { echo "nginx.sh: $*" >&2; }

missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "not root: cannot install ${missing[*]}; the proxy bench will skip what needs them"
  else
    log "installing Debian's ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # No init system here: a policy-rc.d answering 101 keeps the package from starting the
    # distribution's own nginx on port 80. Any policy already in place is put back afterwards.
    policy=/usr/sbin/policy-rc.d backup=""
    if [[ -e "$policy" ]]; then
      backup=$(mktemp)
      cp -p "$policy" "$backup"
    fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    apt-get update -qq >&2 || log "apt-get update failed; trying the cached lists"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || log "install failed"
    if [[ -n "$backup" ]]; then mv "$backup" "$policy"; else rm -f "$policy"; fi
  fi
fi

nginx_bin=$(command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)
echo "export SERIN_NGINX=${nginx_bin}"
