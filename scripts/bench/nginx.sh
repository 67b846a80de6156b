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
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "not root: cannot install ${missing[*]}; the proxy bench will skip what needs them"
  else
    log "installing Debian's ${missing[*]}"
    apt_install_quietly "${missing[@]}" || log "install failed"
  fi
fi

nginx_bin=$(command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)
echo "export SERIN_NGINX=${nginx_bin}"
