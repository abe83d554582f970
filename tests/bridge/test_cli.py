"""The bridge's command line, run as a user runs it: a real process."""

import os
import socket
import subprocess
import sys

from PIL import Image


def _bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=300)


def test_render_writes_a_png_of_the_requested_size(tmp_path):
    out = tmp_path / "head.png"
    result = _bridge("render", "--seed", "2", "--yaw", "30", "--res", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    image = Image.open(out)
    assert image.size == (32, 32)
    corner, centre = image.getpixel((0, 0)), image.getpixel((16, 16))
    assert corner == (255, 255, 255) and centre != (255, 255, 255)


def test_render_labels_shows_the_part_map(tmp_path):
    out = tmp_path / "labels.png"
    result = _bridge("render", "--seed", "2", "--res", "32", "--labels", "--out", str(out))
    assert result.returncode == 0, result.stderr
    colours = {colour for _, colour in Image.open(out).getcolors(32 * 32)}
    assert len(colours) >= 4  # background, skin, hair, eyes at least


def test_the_ground_truth_with_weights_is_refused_in_one_sentence(tmp_path):
    """--labels and --analytic render the procedural truth: --weights beside them was silently ignored."""
    result = _bridge("render", "--res", "32", "--labels", "--weights", str(tmp_path / "any.safetensors"), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "leave --weights out" in result.stderr and result.stderr.count("\n") == 1


def test_missing_weights_give_one_sentence_and_no_traceback(tmp_path):
    result = _bridge("render", "--res", "32", "--weights", str(tmp_path / "gone.safetensors"), "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: The weights file") and result.stderr.count("\n") == 1


def test_bad_resolution_is_refused_clearly(tmp_path):
    result = _bridge("render", "--res", "5000", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2 and "--res must be between" in result.stderr


def test_train_edit_refuses_impossible_cameras_and_sizes_before_loading_anything(tmp_path):
    for option, value, words in (
        ("--yaw-range", "0", "--yaw-range is in degrees"),
        ("--resolution", "4", "--resolution must be between"),
        ("--residual-weight", "-1", "--residual-weight must be between"),
        ("--preservation-weight", "1e9", "--preservation-weight must be between"),
    ):
        result = _bridge("train-edit", "--edit", "blue eyes", "--mask", "eyes", "--out", str(tmp_path / "e"), option, value)
        assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "e").exists()


def test_train_edit_offers_every_choice_the_trainer_knows():
    """The parser stays free of torch, so it names the choices itself."""
    from bridge.cli import build_parser
    from bridge.guidance.losses import CLIP_LOSS_KINDS
    from bridge.lenerf.trainer import GEOMETRY_LABELS

    options = {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices["train-edit"]._actions}
    assert tuple(options["clip_loss"].choices) == CLIP_LOSS_KINDS
    assert tuple(options["geometry_labels"].choices) == GEOMETRY_LABELS


def test_train_edit_can_start_from_a_shipped_module_of_the_same_prompts(tmp_path):
    from safetensors.torch import load_file

    from bridge.lenerf.edit_module import BUNDLED_LIBRARY

    out = tmp_path / "blue_eyes"
    common = ("--mask", "eyes", "--steps", "1", "--resolution", "16", "--out")
    result = _bridge("train-edit", "--edit", "blue eyes", *common, str(out), "--from-module", "blue_eyes")
    assert result.returncode == 0, result.stderr
    assert "starting from the edit module blue_eyes" in result.stdout
    shipped = load_file(str(BUNDLED_LIBRARY / "blue_eyes" / "edit.safetensors"))
    tuned = load_file(str(out / "edit.safetensors"))
    change = max(float((tuned[name] - shipped[name]).abs().max()) for name in shipped)
    assert change < 0.05, "one step moves the shipped weights only a little (a fresh start differs by far more)"

    other = _bridge("train-edit", "--edit", "green eyes", *common, str(tmp_path / "g"), "--from-module", "blue_eyes")
    assert other.returncode == 2 and "give the same --edit" in other.stderr and "Traceback" not in other.stderr


def test_seeds_and_angles_out_of_range_get_one_sentence(tmp_path):
    """A seed past 64 bits was a traceback, a NaN yaw a garbage picture with exit 0."""
    out = str(tmp_path / "r.png")
    for args, says in (
        (("--seed", str(2**70)), "a seed is a whole number"),
        (("--seed", "-1"), "a seed is a whole number"),
        (("--seed", "3", "--yaw", "nan"), "an angle is a number of degrees"),
        (("--seed", "3", "--pitch", "1e308"), "an angle is a number of degrees"),
    ):
        result = _bridge("render", *args, "--res", "16", "--out", out)
        assert result.returncode == 2 and "Traceback" not in result.stderr and says in result.stderr, result.stderr


def test_output_paths_that_cannot_be_written_are_refused_before_any_work(tmp_path):
    """A folder, or a picture without a picture extension, failed as a traceback after the work."""
    for args, says in (
        (("render", "--out", str(tmp_path)), "is a folder"),
        (("render", "--out", str(tmp_path / "r.xyz")), "needs a picture extension"),
        (("grid", "--res", "16", "--out", str(tmp_path)), "is a folder"),
        (("relevance", "--image", "x.png", "--prompt", "eyes", "--refine", "100000", "--out", str(tmp_path / "r.png")), "0 to 200 rounds"),
        (
            ("edit", "--seed", "3", "--module", "blue_eyes", "--preview", str(tmp_path / "p"), "--out", str(tmp_path / "e.npz")),
            "picture extension",
        ),
        (("client", "edit", "--module", "blue_eyes", "--out", str(tmp_path / "e.npz")), "is a file"),
        (("edit", "--seed", "3", *["--module", "blue_eyes"] * 9, "--out", str(tmp_path / "e.npz")), "at most 8 steps"),
        (
            ("edit", "--seed", "3", "--edit", "green eyes", "--mask", "eyes", "--image-prompt", "x.png", "--out", str(tmp_path / "e.npz")),
            "--image-prompt is itself the edit prompt",
        ),
        (("train-edit", "--edit", "green eyes", "--mask", "eyes", "--out", str(tmp_path / "e.npz")), "is a file"),
        (("render", "--analytic", "--res", "16", "--out", str(tmp_path / "e.npz" / "r.png")), "is a file, not a folder"),
        (("render", "--analytic", "--res", "16", "--out", "/proc/text-edit-test.png"), "choose another path"),
    ):
        (tmp_path / "e.npz").unlink(missing_ok=True)
        if args[0] in ("client", "train-edit") or "e.npz/r.png" in args[-1]:
            (tmp_path / "e.npz").write_bytes(b"a file where a folder is asked for")
        result = _bridge(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr and says in result.stderr, (args, result.stderr)
        if args[0] == "edit":
            assert not (tmp_path / "e.npz").exists()


def test_bridge_addresses_tokens_ports_and_folders_that_cannot_work_get_one_sentence(tmp_path):
    """Each of these was a traceback (a port past 65535, a cache folder that is a file, a URL
    that is not one, a pasted token with a line break), or printed the start line and then failed
    to bind."""
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    folders = {"TEXT_EDIT_CONFIG_DIR": str(tmp_path / "config"), "TEXT_EDIT_CACHE_DIR": str(tmp_path / "cache")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cases = [
            (("serve", "--port", "70000"), {}, "between 1 and 65535"),
            (("serve", "--port", str(taken.getsockname()[1])), {}, "Cannot listen on 127.0.0.1"),
            (("serve",), {"TEXT_EDIT_CACHE_DIR": str(in_the_way)}, "a file is in the way"),
            (("serve",), {"TEXT_EDIT_CONFIG_DIR": str(in_the_way / "below")}, "a file is in the way"),
            (("client", "--url", "notaurl", "--token", "t", "info"), {}, "is not a bridge address"),
            (("client", "--url", "http://[::1", "--token", "t", "info"), {}, "is not a bridge address"),
            (("client", "--token", "abc\ndef", "info"), {}, "without spaces or line breaks"),
        ]
        for args, env, says in cases:
            result = subprocess.run(
                [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **folders, **env}
            )
            assert result.returncode == 2 and "Traceback" not in result.stderr and says in result.stderr, (args, result.stderr)
            assert "Text Edit bridge on" not in result.stdout, "the start line only once it listens"


def test_training_and_other_counts_that_cannot_be_meant_are_refused_while_parsing(tmp_path):
    """train-edit --steps 0 wrote an untrained module with exit 0, train-prior --steps -1 a prior
    of 6.7 dB; NaN learning rates and angles, zero frames or heads, an empty relevance prompt."""
    out = str(tmp_path / "run")
    for args, says in (
        (("train-edit", "--edit", "green eyes", "--mask", "eyes", "--steps", "0", "--out", out), "--steps: give a whole number from 1"),
        (("train-edit", "--edit", "green eyes", "--mask", "eyes", "--minutes", "-1", "--out", out), "--minutes: give a number above 0"),
        (("train-prior", "--steps", "-1", "--out", out), "--steps"),
        (("train-prior", "--lr", "nan", "--out", out), "--lr"),
        (("train-clip", "--batch", "0", "--out", out), "--batch"),
        (("train-open-edit", "--heads", "1", "--out", out), "--heads"),
        (("train-encoder", "--seed", "-3", "--out", out), "a seed is a whole number"),
        (("head-from-image", "x.png", "--pitch", "inf", "--out", out), "an angle"),
        (("demo", "--frames", "0", "--out", out), "--frames"),
        (("relevance", "--image", "x.png", "--prompt", " ", "--out", str(tmp_path / "r.png")), "--prompt is empty"),
        (("relevance", "--image", "x.png", "--prompt", "eyes " * 100, "--out", str(tmp_path / "r.png")), "at most 100 characters"),
        (("client", "--token", "t", "edit", "--edit", "green eyes"), "needs both --edit"),
        (("edit", "--edit", "green eyes", "--mask", "eyes", "--mask-module", "blue_eyes", "--out", out), "goes with the --module"),
        (("edit", "--seed", "1", "--head", "head.json", "--module", "blue_eyes", "--out", out), "either --seed or --head"),
    ):
        result = _bridge(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr and says in result.stderr, (args, result.stderr)
    assert not (tmp_path / "run").exists()
