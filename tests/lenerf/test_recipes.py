"""Recipes: a new prompt trains the way the shipped edit of the same part and kind was trained."""

import json
import subprocess
import sys

import pytest

from bridge.lenerf.edit_module import BUNDLED_LIBRARY, EditSpec
from bridge.lenerf.recipes import mask_part, recipe_for
from bridge.lenerf.trainer import EditTrainingConfig


@pytest.mark.parametrize(
    "prompt, part",
    [
        ("eyes", "eyes"),
        ("the irises", "eyes"),
        ("Hair", "hair"),
        ("her long hair", "hair"),
        ("lips", "mouth"),
        ("the mouth", "mouth"),
        ("nose", None),
        ("repair", None),
        ("", None),
    ],
)
def test_mask_part_reads_whole_words(prompt, part):
    assert mask_part(prompt) == part


@pytest.mark.parametrize("name", ["blue_eyes", "red_hair", "open_mouth"])
def test_the_recipe_of_a_shipped_edit_is_what_it_was_trained_with(name):
    """Training "green hair" as the recipe says is training it as red hair was."""
    metadata = json.loads((BUNDLED_LIBRARY / name / "edit.json").read_text())
    spec = EditSpec(metadata["spec"]["edit"], metadata["spec"]["mask"], metadata["spec"]["geometry"])
    recipe = recipe_for(spec)
    trained = metadata["training"]["config"]
    assert all(option in trained for option in recipe.options)
    defaults = EditTrainingConfig()
    for option in ("yaw_range", "residual_weight", "label_baseline", "geometry_labels", "preservation_weight"):
        expected = recipe.options.get(option, getattr(defaults, option))
        expected = list(expected) if isinstance(expected, tuple) else expected
        assert trained.get(option, expected) == expected, option  # older modules lack newer options: defaults
    assert metadata["training"].get("clip_loss", {"kind": "contrastive"})["kind"] == recipe.clip_loss


def test_other_parts_move_far_in_w_with_front_views_and_keep_the_eyes_out():
    recipe = recipe_for(EditSpec("bigger nose", "nose", geometry=True))
    assert recipe.clip_loss == "global" and recipe.options["label_baseline"] == "a face"
    assert "yaw_range" not in recipe.options and "geometry_labels" not in recipe.options
    eyes = recipe_for(EditSpec("green eyes", "eyes"))
    assert "label_baseline" not in eyes.options and eyes.options["residual_weight"] < EditTrainingConfig().residual_weight


def test_train_edit_uses_the_recipe_and_options_given_win(tmp_path):
    out = tmp_path / "green_hair"
    command = [
        sys.executable,
        "-m",
        "bridge",
        "train-edit",
        "--edit",
        "green hair",
        "--mask",
        "hair",
        "--out",
        str(out),
        "--steps",
        "1",
        "--resolution",
        "16",
        "--residual-weight",
        "0.01",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "recipe: hair (as red hair)" in result.stdout
    training = json.loads((out / "edit.json").read_text())["training"]
    assert training["config"]["yaw_range"] == [-90.0, 90.0] and training["config"]["label_baseline"] == "a face"
    assert training["config"]["residual_weight"] == 0.01
    assert training["clip_loss"]["kind"] == "global"
