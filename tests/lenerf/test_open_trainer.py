"""Training the open edit model: one command, resumable, and the same under torchrun with two processes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from bridge.lenerf.open_model import TENSORS, OpenEditModel
from bridge.prior.model import HeadPrior

ROOT = Path(__file__).resolve().parents[2]
COMMON = [
    "--heads",
    "8",
    "--shard-heads",
    "4",
    "--steps",
    "3",
    "--pair-batch",
    "8",
    "--mask-batch",
    "64",
    "--resolution",
    "24",
    "--threads",
    "1",
]


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def test_two_processes_train_as_one_on_the_same_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    _run(
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "bridge",
        "train-open-edit",
        "--out",
        str(two),
        *COMMON,
    )
    assert sorted(p.name for p in (two / "data").glob("shard_*")) == ["shard_00000.safetensors", "shard_00001.safetensors"]
    shutil.copytree(two / "data", one / "data")  # the same heads: the one-process run only fits
    printed = _run(sys.executable, "-m", "bridge", "train-open-edit", "--out", str(one), *COMMON).stdout
    assert "wrote the open edit model" in printed
    a, b = load_file(str(one / "model" / TENSORS)), load_file(str(two / "model" / TENSORS))
    assert a.keys() == b.keys()
    # Adam's first steps move a weight by about the learning rate (1e-3) whatever its gradient's
    # size, so the two runs' different summation orders show at ~1e-6; a wrong average of the
    # gradients, or a process fitting only its own slice, differs by ~1e-3
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5, rtol=1e-5), name
    prior = HeadPrior.load()
    model = OpenEditModel.load(one / "model", prior.sha256)
    torch.manual_seed(0)  # the command's --seed
    fresh = OpenEditModel.for_generator(prior.generator, model.config.clip_dim)
    assert not torch.equal(model.mapper.out.weight, fresh.mapper.out.weight)
    # the run resumes: the same command again finds its data and its finished checkpoint
    again = _run(sys.executable, "-m", "bridge", "train-open-edit", "--out", str(one), *COMMON).stdout
    assert "resuming from step 3" in again
