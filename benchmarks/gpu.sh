#!/usr/bin/env bash
# The CUDA path, checked and measured in one short run (under 8 minutes) on a machine with a GPU:
# the tests marked `gpu` (skipped everywhere else), then the GPU figures as JSON.
#
#   benchmarks/gpu.sh            # uses .venv/bin/python if there is one, else python3
#
# On a machine that cannot install packages, carry the wheels the project needs beside what it has
# (open_clip_torch, ftfy, wcwidth, xatlas, fast-simplification, trimesh for the machine's Python)
# in .whl/: they are installed into /tmp/site first.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'PyTorch sees no CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())"
timeout 240 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu tests/gpu
timeout 240 "$PYTHON" -m benchmarks gpu --json
