#!/usr/bin/env bash
# The project's test command: starts on loopback the real services the integration tests need,
# then runs every gate CI runs: formatting, clippy with -D warnings, the docs, all tests, and the
# main job (the quickstart).
#
#   scripts/test.sh            # everything (installs missing Debian packages; needs root for that)
#   SERIN_NO_SERVICES=1 scripts/test.sh   # the same gates without real services (their tests skip)
#
# Each service script is idempotent and prints the `export` lines that enable its tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export SERIN_SERVICES_DIR="${SERIN_SERVICES_DIR:-/tmp/serin-services}"
# A run from a clean checkout gains nothing from incremental caches; they only cost disk and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*" >&2; }

if [ -z "${SERIN_NO_SERVICES:-}" ]; then
    for service in scripts/services/*.sh; do
        [ -e "$service" ] || continue
        step "starting $(basename "$service" .sh)"
        exports=$("$service")
        eval "$exports"
        printf '%s\n' "$exports" >&2
    done
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "cargo doc (no warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

step "cargo test (all features)"
cargo test --workspace --all-features

step "the main job: quickstart (exits non-zero unless it ends as documented)"
# The quickstart `cargo test` has just built, with the workspace's features: `cargo run -p
# serin-examples` would compile some 40 crates again with the example package's features alone.
# Cargo names it in its artifact messages, compiling nothing more.
quickstart=$(cargo test --workspace --all-features --no-run --message-format=json 2>/dev/null |
    sed -n 's|.*"executable":"\([^"]*/examples/quickstart\)".*|\1|p') || quickstart=
quickstart=${quickstart%%$'\n'*}
if [ -n "$quickstart" ] && [ -x "$quickstart" ]; then
    "$quickstart"
else
    cargo run -p serin-examples --example quickstart
fi
