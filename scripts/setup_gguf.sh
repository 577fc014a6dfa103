#!/usr/bin/env bash
# llama.cpp for the gguf environment (run by `scripts/setup.sh gguf` after requirements/gguf.txt).
# Usage: scripts/setup_gguf.sh VENV   (JOBS=n: build parallelism, default: all cores)
# One portable compile (-DGGML_NATIVE=OFF: no -march=native, so a cached build runs on any
# x86-64-v3 CPU) of the llama.cpp vendored in llama-cpp-python's source distribution gives
# both the libraries the Python bindings load and the llama-imatrix tool; the bindings are
# then installed without compiling (-DLLAMA_BUILD=OFF) and the libraries copied into them.
# The converter (convert_hf_to_gguf.py, conversion/, gguf-py/) is taken from the same source,
# so library, converter and tools are one llama.cpp version. The sdist and the build live in
# $QLAB_CACHE/llama.cpp/<version> (default ~/.cache/quantlab): a rebuild of the environment
# (or CI on a machine that keeps that folder) does not compile again.
# Measured on a 2-core AMD EPYC (load ~2): compile ~6 CPU-min (8 min 23 s wall with 1 job);
# with the cache: ~15 s (pip install of the bindings, no compile).
set -euo pipefail
VENV=$(realpath "$1")
VERSION=0.3.36                      # llama-cpp-python; vendors ggml-org/llama.cpp@0c1e57098
JOBS=${JOBS:-$(nproc)}
CACHE=${QLAB_CACHE:-$HOME/.cache/quantlab}/llama.cpp/$VERSION
for tool in cmake ninja g++; do
    if ! command -v "$tool" >/dev/null; then
        echo "error: building llama.cpp needs $tool: apt-get install cmake ninja-build g++" >&2
        exit 2
    fi
done
mkdir -p "$CACHE"
cd "$CACHE"
if [ ! -f "llama_cpp_python-$VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" ]; then
    "$VENV/bin/pip" download --quiet --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d .
    tar xzf "llama_cpp_python-$VERSION.tar.gz"
fi
SRC=$CACHE/llama_cpp_python-$VERSION/vendor/llama.cpp
if [ ! -x build/bin/llama-imatrix ]; then
    echo "compiling llama.cpp (llama-cpp-python $VERSION) with $JOBS job(s): several minutes, once"
    cmake -S "$SRC" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON \
        -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >/dev/null
    cmake --build build --target llama-imatrix -j "$JOBS" >/dev/null
fi
# The bindings without compiling anything, then the libraries and the tool dropped in.
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" "$VENV/bin/pip" install --quiet --no-cache-dir \
    "$CACHE/llama_cpp_python-$VERSION.tar.gz"
LIB=$("$VENV/bin/python" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('llama_cpp').origin), 'lib'))")
mkdir -p "$LIB"
cp -a build/bin/lib*.so* build/bin/llama-imatrix "$LIB/"
ln -sfn "$LIB/llama-imatrix" "$VENV/bin/llama-imatrix"
rm -rf "$VENV/llama.cpp" && mkdir "$VENV/llama.cpp"   # the converter, as the lab runs it (quantize/gguf_tools.py)
cp -a "$SRC/convert_hf_to_gguf.py" "$SRC/conversion" "$SRC/gguf-py" "$VENV/llama.cpp/"
"$VENV/bin/python" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, llama_cpp.llama_print_system_info().decode())"
