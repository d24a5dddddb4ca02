#!/usr/bin/env bash
# docs/results/ddpm.sh [RUN_DIR [PAGE]]: docs/ddpm.md's tables: the liang2021 and quan2021 experiments
# (demo preset, 3 seeds; SEEDS=N for N) into RUN_DIR/liang2021 and RUN_DIR/quan2021, and the ddpm arms'
# fit and sampling times, comparisons and quality from them. The same runs as liang2021.sh and
# quan2021.sh: a RUN_DIR/liang2021 that liang2021.sh made is reused (finished cells are not run again).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/ddpm}
page=${2:-$root/docs/ddpm.md}
synthaug experiment run liang2021 --preset demo --seeds "${SEEDS:-3}" --out "$out/liang2021"
synthaug experiment run quan2021 --preset demo --seeds "${SEEDS:-3}" --out "$out/quan2021"
rewrite ddpm "$out" "$page"
