#!/usr/bin/env bash
# Assembles .gpu/ (git-ignored) for running the CLI on a machine without pnpm or network (the GPU
# device): the CLI bundled with esbuild, a flat node_modules with onnxruntime-node (linux-x64
# binaries only, xz-compressed), node itself xz-compressed, and the @merge/* package.json files
# that the build cache key reads. The CUDA provider libraries are too large for one transfer:
# `tools/gpu/prepare.sh --cuda` also extracts them from PyPI's onnxruntime-gpu wheel into
# .gpu-cuda/ as ≤ 36 MB xz chunks, sent one per call (see tools/gpu/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
# Everything but node goes into one payload.tar.xz (JS compresses ~8x), so the first call carries
# about 37 MiB beside the ~22 MiB working tree (the limit is 64 MiB).
D=.gpu-stage
rm -rf "$D" .gpu && mkdir -p "$D/node_modules/@merge" .gpu
# One esbuild call bundles the three programs the device runs: .gpu-stage/{cli,provider-check,enable-cuda}.mjs.
npx esbuild apps/submit/src/cli.ts packages/mistral-onnx/bench/provider-check.ts \
  packages/mistral-onnx/src/bin/enable-cuda.ts --bundle --platform=node --format=esm --target=node20 \
  --outdir="$D" --entry-names='[name]' --out-extension:.js=.mjs --conditions=source \
  --external:onnxruntime-node --external:onnx-proto --log-level=warning \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
cp ../shared/starter-kit/test.csv "$D/test.csv" # carried for the run, never committed
MTJ=${MISTRAL_TOKENIZER_JS:-/tmp/mtj/node_modules/mistral-tokenizer-js/mistral-tokenizer.js}
[ -f "$MTJ" ] || (mkdir -p /tmp/mtj && npm install --prefix /tmp/mtj --no-save mistral-tokenizer-js@1.0.0 >/dev/null)
cp "$MTJ" "$D/mistral-tokenizer.js"
P=node_modules/.pnpm
cp -rL "$P/onnxruntime-node@1.30.0/node_modules/onnxruntime-node" "$D/node_modules/"
find "$D/node_modules/onnxruntime-node/bin" -mindepth 3 -maxdepth 3 ! -path '*/linux/x64' -exec rm -rf {} +
cp -rL "$P/onnxruntime-common@1.30.0/node_modules/onnxruntime-common" "$D/node_modules/"
cp -rL "$P/onnx-proto@8.0.1/node_modules/onnx-proto" "$D/node_modules/"
cp -rL "$P/protobufjs@6.11.6/node_modules/protobufjs" "$D/node_modules/"
rm -rf "$D/node_modules/protobufjs/cli" "$D/node_modules/protobufjs/dist" # its CLI and browser builds
mkdir -p "$D/node_modules/@protobufjs"
for p in aspromise base64 codegen eventemitter fetch float inquire path pool utf8; do
  cp -rL "$P"/@protobufjs+$p@*/node_modules/@protobufjs/$p "$D/node_modules/@protobufjs/"
done
cp -rL "$P/long@4.0.0/node_modules/long" "$D/node_modules/"
for p in packages/*/package.json; do
  name=$(node -p "require('./$p').name")
  mkdir -p "$D/node_modules/$name" && cp "$p" "$D/node_modules/$name/package.json"
done
xz -T2 -6 -c "$(command -v node)" > .gpu/node.xz
tar -C "$D" -cf - . | xz -T2 -6 > .gpu/payload.tar.xz
rm -rf "$D"
du -sh .gpu/*
# The Vulkan loader and libglvnd for the WebGPU provider (Dawn): with libvulkan1 alone the NVIDIA
# ICD loaded no adapter ("No supported adapters"); with libglvnd0, libglx0 and libegl1 it ran.
mkdir -p .gl /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
[ -n "$(ls .gl/libglvnd0_*.deb 2>/dev/null)" ] || {
  apt-get $o update >/dev/null 2>&1
  (cd .gl && apt-get $o download libvulkan1 libglvnd0 libglx0 libegl1 >/dev/null 2>&1)
}
ls .gl
if [ "${1:-}" = "--cuda" ]; then
  C=.gpu-cuda
  rm -rf "$C" && mkdir -p "$C/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$C/whl" onnxruntime-gpu==1.30.0
  unzip -q -j -o "$C"/whl/*.whl 'onnxruntime/capi/libonnxruntime_providers_cuda.so' \
    'onnxruntime/capi/libonnxruntime_providers_shared.so' -d "$C"
  rm -rf "$C/whl"
  xz -T2 -6 -c "$C/libonnxruntime_providers_cuda.so" | split -b 36m -d - "$C/cuda.xz.part"
  xz -T2 -6 "$C/libonnxruntime_providers_shared.so"
  rm -f "$C/libonnxruntime_providers_cuda.so"
  ls -la "$C"
fi
