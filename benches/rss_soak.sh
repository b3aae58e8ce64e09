#!/usr/bin/env bash
# Load harness for the RSS target: runs the release engine on the shipped default config
# (private data dir and port) for DURATION seconds, samples the engine's own
# orrery_process_resident_memory_bytes every 30 s, and prints the samples and the final RSS.
#   benches/rss_soak.sh [DURATION_SECONDS]     (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-300}
port=${ORRERY_SOAK_PORT:-9893}
data=$(mktemp -d)
cargo build --release --quiet
ORRERY__ENGINE__DATA_DIR="$data/data" ORRERY__TELEMETRY__LISTEN="127.0.0.1:$port" \
  ORRERY__ENGINE__LOG=warn "${CARGO_TARGET_DIR:-target}/release/orrery" run --for "$((duration + 5))s" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
rss() { curl -s "127.0.0.1:$port/metrics" | awk '/^orrery_process_resident_memory_bytes /{printf "%.1f", $2/1048576}'; }
orders() { curl -s "127.0.0.1:$port/metrics" | awk '/^orrery_exchange_orders_total/{s+=$2} END{print s+0}'; }
sleep 2
for ((t = 0; t < duration; t += 30)); do
  echo "t=${t}s rss=$(rss) MiB orders=$(orders)"
  sleep 30
done
echo "final: t=${duration}s rss=$(rss) MiB orders=$(orders) decisions=$(curl -s 127.0.0.1:$port/metrics | awk '/^orrery_agent_decisions_total/{s+=$2} END{print s+0}')"
wait $pid
echo "exit=$?"
