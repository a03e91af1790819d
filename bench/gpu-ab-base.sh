#!/usr/bin/env bash
# The cuda/ tree of a commit, as the A side of bench/gpu-ab.ts: .device-carry/ab-base/cuda
# (carried with .device-carry; run after ../shared/device/prep.sh, which empties only dist/).
#   bench/gpu-ab-base.sh REF
set -euo pipefail
ref=${1:?usage: bench/gpu-ab-base.sh REF}
cd "$(git rev-parse --show-toplevel)"
rm -rf .device-carry/ab-base
mkdir -p .device-carry/ab-base
git archive "$ref" cuda | tar -x -C .device-carry/ab-base
git rev-parse --short "$ref" > .device-carry/ab-base/COMMIT
echo "gpu-ab-base: cuda/ of $(cat .device-carry/ab-base/COMMIT) in .device-carry/ab-base; on the device: make -C .device-carry/ab-base/cuda -j8 all"
