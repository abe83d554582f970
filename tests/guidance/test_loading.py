"""Loading CLIP weights from every source, and one clear sentence for every way it can fail."""

import os
import socket

import pytest
import torch

from bridge.guidance.clip import BUNDLED, ClipLoadError, ClipSource, load_clip, save_clip_folder
from tests.tiny_clip import TINY_CONFIG


def test_sources_parse_to_what_the_user_wrote():
    assert ClipSource.parse("ViT-B-32=/m/w.safetensors") == ClipSource("file", "/m/w.safetensors", "ViT-B-32")
    assert ClipSource.parse("ViT-B-16@laion2b_s34b_b88k") == ClipSource("tag", "laion2b_s34b_b88k", "ViT-B-16")
    assert ClipSource.parse("local-dir:/m/clip") == ClipSource("local-dir", "/m/clip")
    assert str(ClipSource.parse(BUNDLED)) == BUNDLED
    with pytest.raises(ClipLoadError, match="Cannot read the CLIP source"):
        ClipSource.parse("just-a-name")


def test_architecture_plus_weights_file_loads_those_weights(tiny_arch, tiny_weights):
    from safetensors.torch import load_file

    clip = load_clip(f"{tiny_arch}={tiny_weights}")
    saved = load_file(str(tiny_weights))
    assert torch.equal(clip.model.state_dict()["visual.proj"], saved["visual.proj"])
    assert clip.image_size == (32, 32)
    text = clip.encode_text(["blue eyes", "red hair"])
    image = clip.encode_image(torch.rand(3, 3, 50, 40))  # any size: resized to the model's
    assert text.shape == (2, 32) and image.shape == (3, 32)
    assert torch.allclose(image.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_folder_round_trip_keeps_the_model(tiny_clip, tmp_path):
    folder = save_clip_folder(tiny_clip.model, TINY_CONFIG, {"size": 32}, tmp_path / "clip", {"note": "test"})
    again = load_clip(f"local-dir:{folder}")
    images = torch.rand(2, 3, 32, 32)
    # float16 storage: embeddings agree to half precision
    assert torch.allclose(again.encode_image(images), tiny_clip.encode_image(images), atol=2e-2)
    assert torch.allclose(again.encode_text(["a head"]), tiny_clip.encode_text(["a head"]), atol=2e-2)


def test_missing_weights_file_names_the_file_and_the_fix(tiny_arch, tmp_path):
    missing = tmp_path / "nowhere" / "clip.safetensors"
    with pytest.raises(ClipLoadError) as error:
        load_clip(f"{tiny_arch}={missing}")
    message = str(error.value)
    assert str(missing) in message and "fetch-clip" in message and message.count("\n") == 0


def test_missing_folder_and_folder_without_weights(tmp_path):
    with pytest.raises(ClipLoadError, match="No CLIP folder"):
        load_clip(f"local-dir:{tmp_path / 'absent'}")
    (tmp_path / "open_clip_config.json").write_text('{"model_cfg": {}}')
    with pytest.raises(ClipLoadError, match="holds no CLIP weights"):
        load_clip(f"local-dir:{tmp_path}")


def test_weights_of_another_architecture_are_refused_clearly(tiny_weights):
    with pytest.raises(ClipLoadError, match="do not fit the chosen architecture"):
        load_clip(f"test-other-vit={tiny_weights}")


def test_corrupt_weights_file_is_refused_clearly(tiny_arch, tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x00\x01 not a safetensors file")
    with pytest.raises(ClipLoadError, match="Cannot read the CLIP weights"):
        load_clip(f"{tiny_arch}={corrupt}")


def test_unknown_architecture_is_refused_clearly(tiny_weights):
    with pytest.raises(ClipLoadError, match="no architecture 'ViT-Q-99'"):
        load_clip(f"ViT-Q-99={tiny_weights}")


def test_cached_tag_is_looked_up_offline_and_never_downloaded(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    for source in ("ViT-B-32@laion2b_s34b_b79k", "ViT-B-32@openai"):
        with pytest.raises(ClipLoadError, match="not in|are not there"):
            load_clip(source, cache_dir=str(tmp_path))


def test_bundled_head_clip_loads_through_open_clip():
    clip = load_clip(BUNDLED)
    assert clip.source == BUNDLED
    assert clip.image_size == (96, 96)
    assert clip.encode_text(["a head with blue eyes"]).shape == (1, 128)
