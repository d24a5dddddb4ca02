#!/usr/bin/env bash
# docs/results/liang2021.sh [RUN_DIR [PAGE]]: docs/experiments.md's liang2021 table (3 seeds, demo
# preset). About 35-40 min on 2 idle cores (52 min on shared ones, 2026-11-23); a rerun into the same
# RUN_DIR reuses its finished fits, stores and cells.
set -euo pipefail
# SEEDS=N runs N seeds instead of 3 (the page's tables say how many seeds they hold).
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/liang2021}
page=${2:-$root/docs/experiments.md}
synthaug experiment run liang2021 --preset demo --seeds "${SEEDS:-3}" --out "$out"
rewrite liang2021 "$out" "$page"
