"""Meshing in a helper process (addon/mesher.py + mesh_export/worker.py): the same mesh as in the
worker thread, the main thread's timers stay on time meanwhile, errors are one sentence, and
without a helper it falls back to the thread."""

import threading
import time

import numpy as np
import pytest
import torch

from tests.addon.conftest import checkout_as_package


@pytest.fixture(scope="module")
def addon():
    with checkout_as_package():
        from text_edit.addon import mesher, tasks

        yield mesher, tasks
        mesher.MESHER.stop()


@pytest.fixture(scope="module")
def grid_bytes():
    import mesh_export
    from bridge.field.grid import sample_grid
    from bridge.prior.model import HeadPrior

    prior = HeadPrior.load(None)
    ws, _ = prior.head_ws(3)
    with torch.no_grad():
        return mesh_export.to_bytes(sample_grid(prior.generator.field(ws[None]), 128, prior.surface_level))


def progress(tasks, seen):
    return tasks.Progress(lambda fraction, stage, eta: seen.append((fraction, stage)), threading.Event())


def test_the_helper_gives_the_threads_mesh_and_the_main_thread_keeps_its_ticks(addon, grid_bytes):
    mesher, tasks = addon
    from text_edit import mesh_export

    options = mesh_export.ExportOptions(texture_size=1024)  # in a thread, xatlas makes a tick ~100 ms late here
    seen, late, done = [], [], threading.Event()
    helper = mesher.Mesher()
    try:
        helper.mesh(grid_bytes, options, progress(tasks, []), (0.0, 1.0))  # start it and warm its imports

        def ticking():
            while not done.is_set():
                started = time.perf_counter()
                time.sleep(0.01)
                late.append(time.perf_counter() - started - 0.01)

        ticker = threading.Thread(target=ticking)
        ticker.start()
        ours = helper.mesh(grid_bytes, options, progress(tasks, seen), (0.2, 0.8))
        done.set()
        ticker.join()
    finally:
        helper.stop()
    theirs = mesh_export.grid_to_mesh(mesh_export.read_bytes(grid_bytes), options)
    for name in ("vertices", "faces", "uvs", "colours", "masks", "welded", "texture"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    assert ours.provenance["mesh_export"]["triangles"] == theirs.provenance["mesh_export"]["triangles"]
    assert [stage for _, stage in seen][-1] == "done" and all(0.2 <= f <= 0.8 for f, _ in seen)
    assert max(late) < 0.05, f"a timer tick was {1000 * max(late):.0f} ms late"


def test_a_grid_with_no_surface_is_one_sentence_and_the_helper_keeps_serving(addon, grid_bytes):
    mesher, tasks = addon
    from text_edit import mesh_export

    empty = mesh_export.FieldGrid.from_arrays(np.full((32, 32, 32), -5.0, np.float32), np.zeros((32, 32, 32, 3), np.float32))
    helper = mesher.Mesher()
    try:
        assert len(helper.mesh(grid_bytes, mesh_export.ExportOptions(texture_size=0), progress(tasks, []), (0, 1)).faces)
        process = helper.process
        with pytest.raises(mesh_export.FieldGridError, match="no surface"):
            helper.mesh(mesh_export.to_bytes(empty), mesh_export.ExportOptions(texture_size=0), progress(tasks, []), (0, 1))
        assert len(helper.mesh(grid_bytes, mesh_export.ExportOptions(texture_size=0), progress(tasks, []), (0, 1)).faces)
        assert helper.process is process, "the same helper went on serving"
    finally:
        helper.stop()


def test_cancel_kills_the_helper_mid_request_and_the_next_edit_gets_a_new_one(addon, grid_bytes):
    mesher, tasks = addon
    from text_edit import mesh_export

    helper, cancel = mesher.Mesher(), threading.Event()
    options = mesh_export.ExportOptions(texture_size=1024)
    try:
        helper.mesh(grid_bytes, options, progress(tasks, []), (0, 1))

        def cancelled_soon():
            time.sleep(0.2)
            cancel.set()
            helper.interrupt()

        threading.Thread(target=cancelled_soon).start()
        slower = mesh_export.ExportOptions(texture_size=2048)  # not the kept surface's options: meshed from scratch
        with pytest.raises(tasks.Cancelled):
            helper.mesh(grid_bytes, slower, tasks.Progress(lambda *a: None, cancel), (0, 1))
        assert helper.process is None and not helper.failed
        assert len(helper.mesh(grid_bytes, mesh_export.ExportOptions(texture_size=0), progress(tasks, []), (0, 1)).faces)
    finally:
        helper.stop()


def test_without_a_helper_meshing_runs_in_the_thread(addon, grid_bytes):
    mesher, tasks = addon
    from text_edit import mesh_export

    helper = mesher.Mesher(python="/nonexistent/python")
    mesh = helper.mesh(grid_bytes, mesh_export.ExportOptions(texture_size=0), progress(tasks, []), (0, 1))
    assert helper.failed and len(mesh.faces) > 1000


def test_the_helper_re_colours_the_surface_it_kept_when_the_density_is_the_same(addon, grid_bytes):
    """A colour edit of the same head: the helper skips the surface and UV atlas, same mesh as from scratch."""
    mesher, tasks = addon
    from text_edit import mesh_export

    grid = mesh_export.read_bytes(grid_bytes)
    recoloured = mesh_export.FieldGrid.from_arrays(
        grid.density, 1 - grid.rgb.astype(np.float32) / 255, level=grid.level, box_size=grid.box_size
    )
    options, helper = mesh_export.ExportOptions(texture_size=512), mesher.Mesher()
    try:
        first = helper.mesh(grid_bytes, options, progress(tasks, []), (0, 1))
        stages: list = []
        again = helper.mesh(mesh_export.to_bytes(recoloured), options, progress(tasks, stages), (0, 1))
    finally:
        helper.stop()
    assert not first.provenance["mesh_export"]["surface_reused"] and again.provenance["mesh_export"]["surface_reused"]
    assert "uv atlas" not in [stage for _, stage in stages]
    fresh = mesh_export.grid_to_mesh(recoloured, options)
    for name in ("vertices", "faces", "uvs", "colours", "texture"):
        assert np.array_equal(getattr(again, name), getattr(fresh, name)), name
