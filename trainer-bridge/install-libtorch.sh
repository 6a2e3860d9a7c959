#!/usr/bin/env bash
# Installs libtorch 2.13.0 (the version tch 0.26 expects) from PyPI into the project-local, git-ignored
# folder .libtorch/ at the repository root, and does nothing when it is already there.
#
#   bash trainer-bridge/install-libtorch.sh          # CPU: torch --no-deps + the two CUDA 13 libraries
#                                                    # libtorch_cpu.so links (cudart, cupti)
#   bash trainer-bridge/install-libtorch.sh --cuda   # also every CUDA library torch needs (a few GiB)
#
# Why PyPI and not a libtorch zip: the machines this project runs on reach package registries only.
# PyPI's torch wheel carries the whole libtorch (headers, shared libraries) under site-packages/torch;
# .cargo/config.toml points LIBTORCH at .libtorch/torch, and trainer-bridge/build.rs writes an rpath to
# its lib/ folder, so neither LIBTORCH nor LD_LIBRARY_PATH has to be exported. The wheel's own RPATH finds
# the nvidia/*/lib folders beside it, which is why everything goes into one --target folder.
#
# Environment: PYTHON (default python3), MIXTAPE_LIBTORCH_DIR (default <repo>/.libtorch).
set -euo pipefail

TORCH_VERSION=2.13.0
# The CUDA 13.0 builds torch 2.13.0 itself requires (from its wheel metadata).
CUDA_RUNTIME=nvidia-cuda-runtime==13.0.96
CUDA_CUPTI=nvidia-cuda-cupti==13.0.85

repo="$(cd "$(dirname "$0")/.." && pwd)"
target="${MIXTAPE_LIBTORCH_DIR:-$repo/.libtorch}"
python="${PYTHON:-python3}"
with_cuda=0
for arg in "$@"; do
    case "$arg" in
        --cuda) with_cuda=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install-libtorch.sh: unknown option $arg (expected --cuda)" >&2; exit 2 ;;
    esac
done

stamp="$target/.installed-torch-$TORCH_VERSION"
cuda_stamp="$target/.installed-cuda-$TORCH_VERSION"
if [[ -f "$stamp" && ( $with_cuda == 0 || -f "$cuda_stamp" ) ]]; then
    exit 0
fi

pip=("$python" -m pip install --quiet --disable-pip-version-check --no-input --root-user-action=ignore --upgrade --target "$target")
if [[ ! -f "$stamp" ]]; then
    echo "installing libtorch $TORCH_VERSION from PyPI into $target (once)" >&2
    rm -rf "$target"
    mkdir -p "$target"
    # --no-deps: torch's Python dependencies (sympy, triton, the full CUDA stack) are not needed to link
    # libtorch for CPU use; only the two libraries libtorch_cpu.so's RPATH names.
    "${pip[@]}" --no-deps "torch==$TORCH_VERSION" "$CUDA_RUNTIME" "$CUDA_CUPTI"
    test -f "$target/torch/lib/libtorch_cpu.so" || { echo "install-libtorch.sh: $target/torch/lib/libtorch_cpu.so is missing after the install" >&2; exit 1; }
    touch "$stamp"
fi
if [[ $with_cuda == 1 && ! -f "$cuda_stamp" ]]; then
    echo "installing the CUDA libraries torch $TORCH_VERSION depends on into $target (once)" >&2
    # Resolve torch's own requirements so the versions are the ones it was built against; the pure-Python
    # ones come along and are harmless.
    "${pip[@]}" "torch==$TORCH_VERSION"
    touch "$cuda_stamp"
fi
