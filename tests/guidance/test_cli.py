"""The guidance commands of the bridge's command line, run as real processes."""

import subprocess
import sys

from PIL import Image

from bridge.guidance.clip import save_clip_folder
from tests.tiny_clip import TINY_CONFIG


def _bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=300)


def test_relevance_command_writes_an_overlay(tiny_clip, tmp_path):
    folder = save_clip_folder(tiny_clip.model, TINY_CONFIG, {"size": 32}, tmp_path / "clip", {})
    Image.new("RGB", (48, 40), (200, 120, 90)).save(tmp_path / "in.png")
    out = tmp_path / "map.png"
    result = _bridge(
        "relevance",
        "--image",
        str(tmp_path / "in.png"),
        "--prompt",
        "eyes",
        "--prompt",
        "blue eyes",
        "--refine",
        "3",
        "--clip",
        f"local-dir:{folder}",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert Image.open(out).size == (48, 40)


def test_relevance_command_reports_a_missing_clip_in_one_sentence(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "in.png")
    result = _bridge(
        "relevance",
        "--image",
        str(tmp_path / "in.png"),
        "--prompt",
        "eyes",
        "--clip",
        f"ViT-B-32={tmp_path / 'missing.safetensors'}",
        "--out",
        str(tmp_path / "m.png"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: No CLIP weights file at") and result.stderr.count("\n") == 1


def test_relevance_command_reports_an_unreadable_image(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    result = _bridge("relevance", "--image", str(tmp_path / "bad.png"), "--prompt", "eyes", "--out", str(tmp_path / "m.png"))
    assert result.returncode == 2 and "Cannot read the image" in result.stderr


def test_fetch_clip_with_an_unknown_tag_fails_in_one_sentence(tmp_path):
    result = _bridge("fetch-clip", "ViT-B-32", "no_such_tag", "--out", str(tmp_path / "clip"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: open_clip knows no pretrained tag 'no_such_tag'") and result.stderr.count("\n") == 1
    assert not (tmp_path / "clip").exists()
