#!/bin/bash
# 7B-shaped random Mistral on a machine without pnpm/node_modules (the GPU device's CPUs): int4 then
# fp32 build + load + prefill/decode, each step in its own process; JSON results go to $OUT.
#
# Prepare the carried folder on the dev machine, from the repo root (all paths git-ignored):
#   D=.tmp/mo-device; mkdir -p $D/node_modules
#   npx esbuild packages/mistral-onnx/bench/ort-worker.ts packages/mistral-onnx/bench/build-cli.ts \
#     --bundle --platform=node --format=esm --target=node20 --outdir=$D --out-extension:.js=.mjs \
#     --conditions=source --external:onnxruntime-node --external:onnx-proto \
#     --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);"
#   copy (cp -rL) into $D/node_modules: onnxruntime-node (linux/x64 binaries only, libonnxruntime.so.1
#   xz-compressed), onnxruntime-common, onnx-proto, protobufjs@6 (+ @protobufjs/*, long@4);
#   xz -3 < "$(which node)" > $D/node.xz; cp this script to $D/run7b.sh
# Then run `bash .tmp/mo-device/run7b.sh` there with .tmp/mo-device carried.
cd "$(dirname "$0")"
T0=$(date +%s)
xz -d node.xz && chmod +x node && xz -d node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1.xz
echo "cores $(nproc) mem $(free -g | awk '/Mem/{print $2}') GiB; $(grep -m1 'model name' /proc/cpuinfo)" | tee $OUT/machine.txt
./node -e 'const n=64*1024*1024,a=new Float32Array(n).fill(1),b=new Float32Array(n);let best=0;for(let i=0;i<5;i++){const t=performance.now();b.set(a);best=Math.max(best,2*n*4/((performance.now()-t)/1000))}console.log("copy GB/s (1 thread)",(best/1e9).toFixed(1))' | tee -a $OUT/machine.txt
python3 ../../tools/fixtures/mistral-onnx/make_bench_model.py /tmp/m7 --size 7b --fast | tee $OUT/gen.txt
echo "generated after $(( $(date +%s) - T0 )) s" | tee -a $OUT/gen.txt
for q in int4 none; do
  ./node build-cli.mjs /tmp/m7 /tmp/o7-$q $q | tee $OUT/build-$q.json
  ./node ort-worker.mjs "{\"onnxPath\":\"/tmp/o7-$q/model.onnx\",\"modelDir\":\"/tmp/m7\",\"threads\":$(nproc),\"promptLen\":64,\"decodeSteps\":8,\"batches\":[1,8],\"reps\":1}" | tee $OUT/run-$q.json
  rm -rf /tmp/o7-$q
  echo "$q done after $(( $(date +%s) - T0 )) s" | tee -a $OUT/gen.txt
done
