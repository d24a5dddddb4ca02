#!/usr/bin/env bash
# docs/results/quan2021.sh [RUN_DIR [PAGE]]: docs/experiments.md's quan2021 tables (the arms, and each
# synthesizer against the strongest classical baseline), 3 seeds, demo preset. About 35 min on 2
# idle cores (2026-11-23: 33.2 min wall, 63 min of CPU).
set -euo pipefail
# SEEDS=N runs N seeds instead of 3 (the page's tables say how many seeds they hold).
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/quan2021}
page=${2:-$root/docs/experiments.md}
synthaug experiment run quan2021 --preset demo --seeds "${SEEDS:-3}" --out "$out"
rewrite quan2021 "$out" "$page"
