"""The bridge server, started as a real process on loopback (see conftest.py)."""

from __future__ import annotations

import os
import stat

import numpy as np

import mesh_export


def _head(bridge, seed: int = 3) -> str:
    status, head = bridge.call("POST", "/v1/heads", {"seed": seed})
    assert status == 201, head
    return head["id"]


def test_token_is_private_and_required(bridge):
    bridge.start()
    assert stat.S_IMODE(os.stat(bridge.config / "token").st_mode) == 0o600
    assert bridge.call("GET", "/v1/health", token=None)[0] == 200
    assert bridge.call("GET", "/v1/info", token=None)[0] == 401
    status, body = bridge.call("GET", "/v1/info", token="not-the-token")
    assert status == 401 and "token" in body["detail"]
    assert bridge.call("GET", "/v1/openapi.json", token=None)[0] == 401
    status, info = bridge.call("GET", "/v1/info")
    assert status == 200 and info["device"] == "cpu" and len(info["generator"]["sha256"]) == 64
    assert bridge.call("GET", "/v1/openapi.json")[1]["paths"]["/v1/jobs/edit"]


def test_foreign_host_and_any_origin_are_refused(bridge):
    bridge.start()
    status, body = bridge.call("GET", "/v1/info", headers={"Host": "attacker.example:80"})
    assert status == 403 and "Host" in body["detail"]
    status, body = bridge.call("GET", "/v1/health", headers={"Origin": "http://127.0.0.1:8000"})
    assert status == 403 and "web pages" in body["detail"]
    assert bridge.call("GET", "/v1/info", headers={"Host": f"localhost:{bridge.port}"})[0] == 200


def test_edit_round_trip_and_restart_keeps_results(bridge, identity_module):
    bridge.start()
    status, modules = bridge.call("GET", "/v1/modules")
    assert identity_module in [m["name"] for m in modules["modules"] if m["usable"]]
    head = _head(bridge)
    status, job = bridge.call(
        "POST",
        "/v1/jobs/edit",
        {"head": head, "steps": [{"module": identity_module}, {"edit": "green eyes", "mask": "eyes", "strength": 0.5}], "grid": 64},
    )
    assert status == 202, job
    job = bridge.wait(job["id"])
    assert job["state"] == "done", job
    assert set(job["results"]) == {"field.npz", "preview.png", "mask.png"}
    assert set(job["info"]["stage_seconds"]) == {"apply", "grid", "write", "previews"}
    status, data = bridge.call("GET", f"/v1/jobs/{job['id']}/results/field.npz")
    assert status == 200
    grid = mesh_export.read_bytes(data)
    assert grid.resolution == 64 and grid.edit_steps == 2
    assert grid.provenance["head"]["seed"] == 3 and len(grid.provenance["edits"]) == 2
    assert np.isfinite(grid.density).all()
    assert bridge.call("GET", f"/v1/jobs/{job['id']}/results/preview.png")[1][:8] == b"\x89PNG\r\n\x1a\n"

    bridge.stop()
    bridge.start()
    status, again = bridge.call("GET", f"/v1/jobs/{job['id']}/results/field.npz")
    assert status == 200 and again == data
    assert bridge.call("GET", f"/v1/heads/{head}")[0] == 200
    assert bridge.call("DELETE", f"/v1/jobs/{job['id']}")[0] == 204
    assert bridge.call("GET", f"/v1/jobs/{job['id']}")[0] == 404


def test_cancel_mid_training_keeps_a_checkpoint(bridge):
    bridge.start()
    status, job = bridge.call("POST", "/v1/jobs/train", {"edit": "red hair", "mask": "hair", "steps": 500, "name": "red_hair_test"})
    assert status == 202, job
    running = bridge.wait(job["id"], states=("running",))
    while running["progress"] == 0:
        running = bridge.call("GET", f"/v1/jobs/{job['id']}")[1]
    status, _ = bridge.call("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 200
    job = bridge.wait(job["id"], timeout=60)
    assert job["state"] == "cancelled"
    folder = bridge.cache / "modules" / "red_hair_test"
    assert (folder / "checkpoint.json").is_file()
    if os.name == "posix":  # the cache is its user's alone, trained modules too
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in folder.iterdir()), [
            (path.name, oct(path.stat().st_mode)) for path in folder.iterdir()
        ]


def test_a_job_killed_with_the_bridge_is_reported_failed(bridge, identity_module):
    bridge.start()
    head = _head(bridge)
    status, job = bridge.call("POST", "/v1/jobs/edit", {"head": head, "steps": [{"module": identity_module}], "grid": 512})
    bridge.wait(job["id"], states=("running",))
    bridge.stop(kill=True)
    bridge.start()
    status, job = bridge.call("GET", f"/v1/jobs/{job['id']}")
    assert status == 200 and job["state"] == "failed"
    assert "killed or crashed" in job["error"]
    assert job["results"] == {} and [p.name for p in (bridge.cache / "jobs" / job["id"]).iterdir()] == ["job.json"]
    status, body = bridge.call("GET", f"/v1/jobs/{job['id']}/results/field.npz")
    assert status == 409 and "failed" in body["detail"]


def test_limits_get_clear_client_errors(bridge, identity_module):
    bridge.start()
    head = _head(bridge)

    def edit(**changes):
        body = {"head": head, "steps": [{"module": identity_module}], "grid": 64, **changes}
        return bridge.call("POST", "/v1/jobs/edit", body)

    for grid in (32, 1024):
        status, body = edit(grid=grid)
        assert status == 422 and body["detail"][0]["loc"] == ["body", "grid"]
    status, body = bridge.call("POST", "/v1/jobs/train", {"edit": "x" * 10_000, "mask": "eyes"})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "edit"]
    status, body = bridge.call("POST", "/v1/jobs/train", {"edit": "green eyes", "mask": "eyes", "name": "blue_eyes", "steps": 2})
    assert status == 409 and "ships with the bridge" in body["detail"], "a trained module would be shadowed by the bundled one"
    status, body = bridge.call("POST", "/v1/jobs/train", {"edit": "red hair"})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "mask"]
    status, body = edit(steps=[{"module": identity_module, "strength": 3}])
    assert status == 422 and body["detail"][0]["loc"][-1] == "strength"
    assert bridge.call("POST", "/v1/jobs/edit", raw_body=b"{not json")[0] == 422
    assert bridge.call("POST", "/v1/heads", raw_body=b" " * (2 << 20))[0] == 413
    status, body = edit(steps=[{"module": "no_such_edit"}])
    assert status == 404 and "No edit named" in body["detail"]
    status, body = edit(steps=[{"instruction": "make it nicer"}])
    assert status == 400 and "names no part" in body["detail"]
    for step in ({"edit": "red hair"}, {"instruction": "make the eyes green", "module": identity_module}, {"instruction": " "}):
        status, body = edit(steps=[step])
        assert status == 422, (step, body)
    status, body = bridge.call("POST", "/v1/instructions", {"instruction": "x" * 10_000})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "instruction"]
    assert edit(head="0123456789abcdef")[0] == 404
    assert bridge.call("GET", "/v1/jobs/0123456789abcdef")[0] == 404
    assert bridge.call("GET", "/v1/jobs/nonsense")[0] == 422
    status, body = bridge.call("POST", "/v1/heads", {"seed": 1, "params": {"eye_colour": "violet"}})
    assert status == 400 and "eye_colour" in body["detail"]
    for latent in ([0.0] * 7, [[0.0], [0.0, 0.0]], [], [[3e38] * 256] * 12):
        status, body = bridge.call("POST", "/v1/heads", {"latent": latent})
        assert status == 400 and "latent" in body["detail"], (latent, status, body)
    w_dim = bridge.call("GET", "/v1/info")[1]["generator"]["w_dim"]
    status, body = bridge.call("POST", "/v1/heads", {"latent": [0.1] * w_dim})  # one w: every level the same
    assert status == 201 and body["id"], body

    # one job runs, `queued_jobs` wait, the next is refused
    status, info = bridge.call("GET", "/v1/info")
    status, running = edit(grid=512)
    bridge.wait(running["id"], states=("running",))
    ids = [running["id"]]
    for _ in range(info["limits"]["queued_jobs"]):
        status, job = edit(grid=512)
        assert status == 202
        ids.append(job["id"])
    status, body = edit(grid=512)
    assert status == 429 and "waiting" in body["detail"]
    for job_id in ids:
        bridge.call("POST", f"/v1/jobs/{job_id}/cancel")
    assert all(bridge.wait(j, timeout=120)["state"] == "cancelled" for j in ids)


def test_any_prompt_edits_through_the_open_model(bridge, identity_module):
    """A prompt pair no module was trained for, and an instruction, both edit at once; a stack mixes
    a module with a prompt; the job says how far CLIP saw the head move toward the prompt."""
    bridge.start()
    head = _head(bridge)
    status, pair = bridge.call("POST", "/v1/instructions", {"instruction": "give her pink hair"})
    assert status == 200 and (pair["edit"], pair["mask"]) == ("pink hair", "hair") and "clip_reads" not in pair
    status, pair = bridge.call("POST", "/v1/instructions", {"instruction": "give her golden hair"})
    assert (pair["edit"], pair["clip_reads"]) == ("golden hair", "blonde hair") and "'golden' as 'blonde'" in pair["note"]
    steps = [{"module": identity_module}, {"instruction": "give her pink hair", "strength": 0.8}]
    status, job = bridge.call("POST", "/v1/jobs/edit", {"head": head, "steps": steps, "grid": 64})
    assert status == 202, job
    job = bridge.wait(job["id"])
    assert job["state"] == "done", job
    assert "pink hair" in job["info"]["message"] and isinstance(job["info"]["clip_gain"], float)
    status, data = bridge.call("GET", f"/v1/jobs/{job['id']}/results/field.npz")
    grid = mesh_export.read_bytes(data)
    edits = grid.provenance["edits"]
    assert [e["model"] for e in edits] == ["module", "open model"] and edits[1]["edit"] == "pink hair"
    assert grid.edit_steps == 2
    status, job = bridge.call(
        "POST", "/v1/jobs/edit", {"head": head, "steps": [{"edit": "green eyes", "mask": "eyes", "texture_only": True}], "grid": 64}
    )
    assert status == 202 and bridge.wait(job["id"])["state"] == "done"


def test_a_pictures_only_job_leaves_a_core_to_the_mesher():
    """The add-on meshes an edit's field while the bridge renders that edit's pictures."""
    import torch

    from bridge.service.engine import _leaving_a_core

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with _leaving_a_core(True):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with _leaving_a_core(False):
            assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        with _leaving_a_core(True):
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
