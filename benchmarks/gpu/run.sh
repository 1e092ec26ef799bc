#!/bin/bash
# One call on the GPU machine (see README.md): build the native core with CUDA, run the GPU tests, our kernel
# benchmark and the PyTorch baselines, and print the side-by-side table. Logs and JSON go to ${OUT:-/tmp/vg-gpu}.
#   bash benchmarks/gpu/run.sh [--quick]
set -u
QUICK=${1:-}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/vg-gpu}
mkdir -p "$OUT"
cd "$ROOT"
nvidia-smi --query-gpu=name,memory.total,memory.used,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

# cuBLAS: the PyTorch wheel's copy when the toolkit has none (we load it at run time; no headers needed).
if [ -z "${VG_CUBLAS_LIB:-}" ]; then
  for d in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p) for p in nvidia.__path__))' 2>/dev/null); do
    f=$(find "$d" -name 'libcublas.so.1[23]' 2>/dev/null | head -1)
    if [ -n "$f" ]; then export VG_CUBLAS_LIB=$f; break; fi
  done
fi
echo "VG_CUBLAS_LIB=${VG_CUBLAS_LIB:-<not found>}"

cmake -S benchmarks/gpu -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 > "$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build build-gpu -j 16 > "$OUT/build.log" 2>&1 || { grep -B2 -A10 -m5 error "$OUT/build.log"; exit 1; }
echo "== GPU tests"
./build-gpu/native/vg_native_tests cuda_ 2>&1 | tee "$OUT/tests.txt" | tail -40
echo "== CPU tests (same executable)"
./build-gpu/native/vg_native_tests 2>&1 | tail -3
echo "== our kernels"
./build-gpu/vg_gpu_bench $QUICK --json "$OUT/ours.json" 2>&1 | tee "$OUT/ours.txt"
echo "== PyTorch baselines"
python3 benchmarks/gpu/baselines.py $QUICK --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.txt"
echo "== fixture cross-check against transformers (CPU, float64)"
python3 benchmarks/gpu/fixture_crosscheck.py --json "$OUT/fixtures.json" 2>&1 | tee "$OUT/fixtures.txt" | tail -60
echo "== side by side"
python3 benchmarks/gpu/compare.py "$OUT/ours.json" "$OUT/torch.json" | tee "$OUT/compare.txt"
