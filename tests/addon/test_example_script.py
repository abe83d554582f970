"""examples/edit_head.py exactly as `blender -b --python examples/edit_head.py -- ...` runs it."""

from tests.addon.conftest import ROOT, bridge_env


def test_example_script_edits_exports_saves_and_renders(blender, live_bridge, tmp_path):
    out = tmp_path / "out"
    done, _ = blender.run(
        "",
        "--seed",
        "4",
        "--module",
        "blue_eyes",
        "--module",
        "red_hair",
        "--grid",
        "64",
        "--texture-size",
        "256",
        "--render-size",
        "64",
        "--url",
        live_bridge.url,
        "--out",
        str(out),
        env=bridge_env(live_bridge),
        script=ROOT / "examples" / "edit_head.py",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    stem = "edit_seed4_blue_eyes_red_hair"
    for name in (f"{stem}.glb", f"{stem}.blend", f"{stem}_cycles.png"):
        assert (out / name).stat().st_size > 1000, name
        assert str((out / name).resolve()) in done.stdout, "the script says where each file is"
    assert "seed 4: blue_eyes + red_hair" in done.stdout


def test_example_script_without_a_bridge_says_so_and_fails(blender, tmp_path):
    from bridge.service.launcher import free_port

    done, _ = blender.run(
        "",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--out",
        str(tmp_path),
        env={"TEXT_EDIT_CONFIG_DIR": str(tmp_path / "none")},
        script=ROOT / "examples" / "edit_head.py",
    )
    assert done.returncode == 1
    assert "error:" in done.stderr and "Traceback" not in done.stderr
