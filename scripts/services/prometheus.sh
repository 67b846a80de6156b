#!/usr/bin/env bash
# Starts a Prometheus on loopback for serin-signals' integration test, idempotently.
#
# Installs Debian's `prometheus` package if `prometheus` is not on PATH, writes a config that
# scrapes the test's exporter at 127.0.0.1:19464 every second, starts Prometheus on
# 127.0.0.1:9090 unless something already answers there, and waits until it is ready.
#
# Only the final line goes to stdout, so a caller can run:
#   eval "$(scripts/services/prometheus.sh)"
set -euo pipefail

listen="127.0.0.1:9090"
target="127.0.0.1:19464"
dir="${SERIN_SERVICES_DIR:-/tmp/serin-services}/prometheus"
ready_url="http://${listen}/-/ready"

log() { echo "prometheus.sh: $*" >&2; }
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

# Answers whether something at `$1` responds with HTTP 200, using whatever client is present.
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O /dev/null --timeout=2 "$1" 2>/dev/null
  else
    # Bash's /dev/tcp: a bare HTTP/1.0 GET, ok when the status line says 200.
    local hostport="${1#http://}"; hostport="${hostport%%/*}"
    local path="/${1#http://*/}"
    exec 3<>"/dev/tcp/${hostport%%:*}/${hostport##*:}" 2>/dev/null || return 1
    printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3
    local status
    IFS= read -r -t 2 status <&3 || status=""
    exec 3>&- 3<&-
    [[ "$status" == *" 200"* ]]
  fi
}

install_prometheus() {
  if command -v prometheus >/dev/null 2>&1; then
    return
  fi
  log "installing Debian's prometheus package"
  local status=0
  apt_install_quietly prometheus || status=$?
  ((status == 0)) || { log "apt-get could not install prometheus (exit ${status})"; exit 1; }
  command -v prometheus >/dev/null 2>&1 || { log "prometheus is still not on PATH"; exit 1; }
}

write_config() {
  mkdir -p "$dir/data"
  cat >"$dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: serin-test-exporter
    scrape_interval: 1s
    scrape_timeout: 1s
    static_configs:
      - targets: ["${target}"]
YAML
}

# Whether the Prometheus at $listen has the test exporter among its scrape targets.
scrapes_target() {
  local targets
  if command -v curl >/dev/null 2>&1; then
    targets=$(curl -fsS --max-time 2 "http://${listen}/api/v1/targets" 2>/dev/null) || return 1
  else
    targets=$(wget -q -O - --timeout=2 "http://${listen}/api/v1/targets" 2>/dev/null) || return 1
  fi
  [[ "$targets" == *"\"${target}\""* ]]
}

# The pid of the Prometheus we started, if it still runs.
our_pid() { running_pid "$dir/prometheus.pid" prometheus; }

start_prometheus() {
  if http_ok "$ready_url"; then
    if scrapes_target; then
      log "a Prometheus already answers at ${listen} and scrapes ${target}"
      return
    fi
    local pid
    if pid=$(our_pid); then
      log "our Prometheus (pid ${pid}) does not scrape ${target}; restarting it"
      kill "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    else
      log "another Prometheus answers at ${listen} but does not scrape ${target}; stop it first"
      exit 1
    fi
  fi
  local pid
  if pid=$(our_pid); then
    log "our Prometheus (pid ${pid}) is starting; waiting for it"
    return
  fi
  log "starting prometheus on ${listen} (data in ${dir}/data, log in ${dir}/prometheus.log)"
  nohup prometheus \
    --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" \
    --web.listen-address="$listen" \
    >"$dir/prometheus.log" 2>&1 </dev/null &
  echo $! >"$dir/prometheus.pid"
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until http_ok "$ready_url"; do
    if ((SECONDS >= deadline)); then
      log "Prometheus did not become ready within 60s; last log lines:"
      tail -n 20 "$dir/prometheus.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "ready at http://${listen}"
}

install_prometheus
write_config
start_prometheus
wait_ready
echo "export SERIN_TEST_PROMETHEUS=http://${listen}"
