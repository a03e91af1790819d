#!/usr/bin/env bash
# The A side of bench/gpu-ab.ts at another commit: its cuda/ and its bench/gpu.ts, bundled, in
# .device-carry/ab-base (carried with .device-carry; run after ../shared/device/prep.sh, which
# empties only dist/). The bundle is needed where the C ABI or the stages changed since REF.
#   bench/gpu-ab-base.sh REF
set -euo pipefail
ref=${1:?usage: bench/gpu-ab-base.sh REF}
root=$(git rev-parse --show-toplevel)
cd "$root"
rm -rf .device-carry/ab-base
mkdir -p .device-carry/ab-base
git archive "$ref" cuda | tar -x -C .device-carry/ab-base
git rev-parse --short "$ref" > .device-carry/ab-base/COMMIT
source=$(mktemp -d)
trap 'git worktree remove --force "$source"' EXIT
git worktree add --detach "$source" "$ref" > /dev/null
ln -s "$root/node_modules" "$source/node_modules"
node_modules/.bin/bun build "$source/bench/gpu.ts" --target=bun --outdir .device-carry/ab-base --external assemblyscript > /dev/null
echo "gpu-ab-base: cuda/ and gpu.js of $(cat .device-carry/ab-base/COMMIT) in .device-carry/ab-base; on the device:"
echo "  make -C .device-carry/ab-base/cuda -j8 all, then gpu-ab.js --a-lib .device-carry/ab-base/cuda/build/libtessera_cuda.so --a-script .device-carry/ab-base/gpu.js"
