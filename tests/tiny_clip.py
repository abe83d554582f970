"""A tiny open_clip ViT architecture, registered with open_clip under a name, for fast tests
(fixtures imported by tests/conftest.py)."""

import json

import pytest

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
OTHER_CONFIG = {**TINY_CONFIG, "vision_cfg": {**TINY_CONFIG["vision_cfg"], "width": 96}}


@pytest.fixture(scope="session")
def tiny_arch(tmp_path_factory):
    """Registers 'test-tiny-vit' and 'test-other-vit' (a different width) with open_clip."""
    from bridge.guidance.clip import import_open_clip

    open_clip = import_open_clip()
    folder = tmp_path_factory.mktemp("configs")
    for name, config in (("test-tiny-vit", TINY_CONFIG), ("test-other-vit", OTHER_CONFIG)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
        open_clip.add_model_config(path)
    return "test-tiny-vit"


@pytest.fixture(scope="session")
def tiny_weights(tiny_arch, tmp_path_factory):
    """A weights file for the tiny architecture (random initialisation, seed 0)."""
    import torch
    from safetensors.torch import save_file

    from bridge.guidance.clip import import_open_clip

    torch.manual_seed(0)
    model = import_open_clip().create_model(tiny_arch)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture()
def tiny_clip(tiny_arch, tiny_weights):
    from bridge.guidance.clip import load_clip

    return load_clip(f"{tiny_arch}={tiny_weights}")
