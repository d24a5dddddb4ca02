#!/usr/bin/env bash
# docs/results/quality.sh [RUN_DIR [PAGE]]: docs/quality.md's two tables (every bundled synthesizer's
# covid images in the demo's feature space; the reference rows at 2 and 6 feature epochs), by the
# commands the page shows. About 25 min on 2 idle cores: the demo (6 min), the drr, acgan (20 epochs)
# and xpgan (64 steps) stores, eight `synthaug quality` runs of about 30 s each.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
out=${1:-$root/reports/docs-results/quality}
page=${2:-$root/docs/quality.md}
synthaug demo --preset demo --out "$out/demo"                 # duplicate, augment and pix2pix stores
D=(--data ctsim --source-option preset=demo --source-option 'counts={"covid":122,"normal":234,"viral":235}'
   --size 64 --test-per-class 100 --seed 0)                   # the same data and split
mkdir -p "$out/stores"
[ -f "$out/stores/drr.h5" ] || synthaug balance --synth drr "${D[@]}" --volumes ctsim --out "$out/stores/drr.h5"
[ -f "$out/stores/acgan.h5" ] || synthaug balance --synth acgan "${D[@]}" --synth-option epochs=20 \
    --out "$out/stores/acgan.h5"
[ -f "$out/stores/xpgan.h5" ] || synthaug balance --synth xpgan "${D[@]}" --volumes ctsim \
    --synth-option preset=small --synth-option max_steps=64 --synth-option batch_size=8 --out "$out/stores/xpgan.h5"
F=$out/demo/quality/features-seed0
fits=("$out"/demo/fits/pix2pix-*-seed0)
quality() { local name=$1; shift; synthaug quality "$@" --out "$out/quality/$name"; }
quality duplicate "$out/demo/stores/duplicate-seed0.h5" --features "$F"
quality augment "$out/demo/stores/augment-seed0.h5" --features "$F"
quality pix2pix "$out/demo/stores/synthesis-seed0.h5" --features "$F" --synth-checkpoint "${fits[0]}"
for name in acgan drr xpgan; do quality "$name" "$out/stores/$name.h5" --features "$F"; done
for epochs in 2 6; do                                          # the feature network's own epochs
    quality "epochs-$epochs" "$out/demo/stores/duplicate-seed0.h5" --feature-epochs "$epochs"
done
rewrite quality "$out" "$page"
