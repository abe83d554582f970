"""`python -m bridge export`: a real process, as a user runs it."""

import subprocess
import sys
from pathlib import Path

import mesh_export
from mesh_export.gltf import read_glb_arrays
from tests.mesh_export.fields import make_grid, sphere_sdf

ROOT = Path(__file__).resolve().parents[2]


def _bridge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def _one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    return result.stderr


def test_export_writes_a_glb(tmp_path):
    grid = make_grid(32, sphere_sdf(0.3), masks=(lambda p: (p[:, 0] > 0).astype(float),))
    field = mesh_export.write(grid, tmp_path / "field.npz")
    out = tmp_path / "head.glb"
    result = _bridge("export", "--field", str(field), "--out", str(out), "--texture-size", "128", "--max-triangles", "2000")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}")
    arrays = read_glb_arrays(out.read_bytes())
    assert 0 < len(arrays["faces"]) <= 2000 and "_MASK_0" in arrays


def test_missing_or_damaged_field_files_are_one_sentence(tmp_path):
    missing = _bridge("export", "--field", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.glb"))
    assert "does not exist" in _one_sentence_error(missing)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"PK\x03\x04 not really a zip")
    result = _bridge("export", "--field", str(damaged), "--out", str(tmp_path / "x.glb"))
    assert "damaged or truncated" in _one_sentence_error(result)


def test_bad_arguments_are_refused_clearly(tmp_path):
    result = _bridge("export", "--field", "f.npz", "--out", str(tmp_path / "x.obj"))
    assert "--out must name a .glb file" in _one_sentence_error(result)
    result = _bridge("export", "--field", "f.npz", "--out", str(tmp_path / "x.glb"), "--texture-size", "10")
    assert "--texture-size must be 0" in _one_sentence_error(result)
    result = _bridge("export", "--field", "f.npz", "--out", str(tmp_path / "x.glb"), "--max-triangles", "1")
    assert "--max-triangles must be 0" in _one_sentence_error(result)
    result = _bridge("train-prior", "--out", str(tmp_path / "run"), "--threads", "-3")
    assert "--threads must be 0" in _one_sentence_error(result)
