#!/usr/bin/env bash
# docs/results/recipes.sh [RUN_DIR [PAGE]]: docs/experiments.md's recipes tables (demo preset, 5 seeds;
# SEEDS=N for N) as two worker processes (WORKERS=N for N). The measured time is on the page.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/recipes}
page=${2:-$root/docs/experiments.md}
synthaug experiment run recipes --preset demo --seeds "${SEEDS:-5}" --workers "${WORKERS:-2}" --out "$out"
rewrite recipes "$out" "$page"
