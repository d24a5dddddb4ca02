#!/usr/bin/env bash
# docs/results/demo.sh [RUN_DIR [PAGE]]: docs/demo.md's two tables (the four arms' results and the
# report's quality section), from `synthaug demo --preset demo`. About 6 min on 2 idle cores from an
# empty cache (17 min on shared ones). DEMO_PRESET=tiny makes the same tables in seconds, for a
# smoke run into a copy of the page (never into docs/demo.md).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
preset=${DEMO_PRESET:-demo}
out=${1:-$root/reports/docs-results/demo-$preset}
page=${2:-$root/docs/demo.md}
synthaug demo --preset "$preset" --out "$out"
rewrite demo "$out" "$page"
