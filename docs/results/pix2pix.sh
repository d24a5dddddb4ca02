#!/usr/bin/env bash
# docs/results/pix2pix.sh [RUN_DIR [PAGE]]: docs/pix2pix.md's held-out measures on ctsim pairs (plain
# and residual generator, 20 epochs, paired mode). About 4 min on 2 cores from an empty ctsim cache
# (simulating the demo set about 3 min, then about 25 s per fit).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/pix2pix}
page=${2:-$root/docs/pix2pix.md}
fit=(--synth pix2pix --data ctsim --size 64 --test-per-class 6 --pairing paired --epochs 20
     --synth-option decay_epochs=6 --synth-option ngf=32 --synth-option ndf=32 --synth-option lr=0.001)
synthaug fit "${fit[@]}" --out "$out/plain"
synthaug fit "${fit[@]}" --synth-option residual=true --out "$out/residual"
rewrite pix2pix "$out" "$page"
