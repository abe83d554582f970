"""train-encoder: reproducible by seed, resumable mid-fit, and its file loads with the face framing it measured."""

from __future__ import annotations

import json

import torch

from bridge.cli import main
from bridge.invert.encoder import ImageEncoder
from bridge.invert.trainer import EncoderData, EncoderTrainer, EncoderTrainingConfig, make_data, new_encoder
from bridge.prior.model import HeadPrior

TINY = EncoderTrainingConfig(seed=5, heads=16, shard_heads=8, resolution=16, samples=8, steps=6, batch=4, checkpoint_every=3)


def _trainer(prior, folder) -> EncoderTrainer:
    torch.manual_seed(TINY.seed)
    assert make_data(prior, TINY, folder)
    return EncoderTrainer(new_encoder(prior, TINY), EncoderData.load(folder, TINY), TINY)


def test_a_stopped_fit_resumes_to_the_weights_of_one_uninterrupted_run(tmp_path):
    prior = HeadPrior.load()
    whole = _trainer(prior, tmp_path / "whole")
    assert whole.fit(tmp_path / "whole")

    stopped = _trainer(prior, tmp_path / "stopped")
    assert not stopped.fit(tmp_path / "stopped", should_stop=lambda: stopped.step >= 3)
    resumed = _trainer(prior, tmp_path / "stopped")
    assert resumed.resume(tmp_path / "stopped") and resumed.step == 3
    assert resumed.fit(tmp_path / "stopped")

    for name, value in whole.encoder.state_dict().items():
        assert torch.equal(value, resumed.encoder.state_dict()[name]), name
    assert torch.equal(EncoderData.load(tmp_path / "whole", TINY).pictures, EncoderData.load(tmp_path / "stopped", TINY).pictures)


def test_the_command_writes_an_encoder_that_loads_and_says_what_framing_it_measured(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train-encoder", "--out", str(out), "--seed", "1", "--heads", "16", "--shard-heads", "8", "--steps", "2", "--batch", "4"]
    assert main([*args, "--resolution", "16", "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    assert "face framing: the face detector does not find this generator's faces reliably" in printed
    metadata = json.loads((out / "encoder" / "encoder.json").read_text())
    assert metadata["face_framing"] is None and metadata["training"]["config"]["steps"] == 2
    encoder = ImageEncoder.load(out / "encoder", HeadPrior.load().sha256)
    assert encoder.face_framing is None and encoder.config.resolution == 16

    assert main([*args, "--resolution", "32"]) == 2  # other data settings in the same folder: one sentence
    assert "made with other settings" in capsys.readouterr().err
