"""What the worker thread does with the bridge: plain Python on the HTTP client and mesh_export,
no bpy, so it runs in a thread (or synchronously in `blender -b`) and its results are handed to the
main thread as data.

An edit is: make the head on the bridge, submit the stack of edit steps, follow the job, fetch the
FieldGrid, and turn it into a textured, masked mesh in Blender's frame."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .. import mesh_export
from ..bridge.errors import BridgeError
from ..bridge.service.client import FINISHED, BridgeClient
from .mesher import MESHER
from .prepared import PreparedMesh, prepare
from .tasks import Cancelled, Progress

JOB_POLL_S = 0.05
JOB_POLL_MAX_S = 0.2
"""The first polls of a job come quickly (an interactive edit finishes in about a second), later ones every 0.2 s."""


@dataclass(frozen=True)
class HeadSpec:
    """A head of the bridge's generator: a seed, with optional prior parameters, or a latent (a
    head made from a picture, named by the picture's hash)."""

    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    latent: tuple[tuple[float, ...], ...] | None = None
    picture: str = ""
    """The sha256 of the picture a latent head was made from."""

    @property
    def key(self) -> str:
        """Identifies the head's result object in Blender (re-running an edit updates it)."""
        if self.latent is not None:
            return f"picture {self.picture[:12]}"
        extra = "".join(f" {k}={v}" for k, v in sorted(self.params.items()))
        return f"seed {self.seed}{extra}"

    def create_on(self, client: BridgeClient) -> dict:
        if self.latent is not None:
            return client.create_head(latent=[list(row) for row in self.latent])
        return client.create_head(seed=self.seed, params=self.params or None)


MAX_PICTURE_BYTES = 700_000
"""A picture sent to the bridge (base64 makes it a third larger; the bridge takes 1 MiB a request)."""


def run_head_from_picture(
    client: BridgeClient,
    picture: bytes,
    refine: int,
    progress: Progress,
    timeout_s: float,
    crop: tuple[int, int, int] | None = None,
    yaw: float | None = None,
    pitch: float | None = None,
    on_job: Callable[[str], None] | None = None,
) -> HeadSpec:
    """A head made on the bridge from a picture's file bytes and refined `refine` steps."""
    if not picture:
        raise BridgeError("The picture is empty (0 bytes); choose a PNG or JPEG file of a head.")
    if len(picture) > MAX_PICTURE_BYTES:
        raise BridgeError(f"The picture is {len(picture) // 1000} kB; the bridge takes at most {MAX_PICTURE_BYTES // 1000} kB.")
    progress(0.0, "sending the picture")
    job = client.submit_head(picture, refine=refine, crop=crop, yaw=yaw, pitch=pitch)
    if on_job is not None:
        on_job(job["id"])
    job = follow_job(client, job, progress, (0.0, 1.0), timeout_s)
    head = job.get("info", {}).get("head", {})
    latent = job.get("info", {}).get("latent")
    if not latent or not head.get("picture_sha256"):
        raise BridgeError("The bridge made no head of the picture; update the bridge and try again.")
    return HeadSpec(latent=tuple(tuple(float(v) for v in row) for row in latent), picture=head["picture_sha256"])


@dataclass(frozen=True)
class EditRequest:
    head: HeadSpec
    steps: tuple[dict, ...]
    """Bridge edit steps ({"module": ...}, {"edit": ..., "mask": ...} or {"instruction": ...}, strength,
    texture_only). Instructions are read into edit and mask prompts by the bridge before the edit runs."""
    grid: int = 128
    texture_size: int = 1024
    previews: bool = True
    """The bridge's before | after picture (a live slider's steps go without)."""
    sampling: str = "sparse"
    """How the bridge samples the field: "sparse" (where the mesh needs it) or "dense" (comparisons)."""


@dataclass
class EditOutcome:
    request: EditRequest
    mesh: mesh_export.TexturedMesh
    """In Blender's frame (z up, metres)."""
    job: dict
    preview_png: bytes
    prepared: PreparedMesh | None = None
    """What the import hands to bpy, made on the worker thread (`prepare(mesh)` when None)."""
    pictures_job: str | None = None
    """The bridge job still rendering this edit's pictures, when they follow the head (`fetch_pictures`)."""

    def __post_init__(self) -> None:
        if self.prepared is None:
            self.prepared = prepare(self.mesh)


def step_label(step: dict) -> str:
    if step.get("module"):
        return step["module"]
    if step.get("edit"):
        return f"{step['edit']} @ {step.get('mask', '?')}"
    return step.get("instruction", "?")


def read_instructions(client: BridgeClient, steps: tuple[dict, ...], progress: Progress) -> tuple[dict, ...]:
    """Steps with every instruction replaced by the (edit, mask) pair the bridge reads it as; the
    pair is shown as the progress stage before the edit runs, and kept in the head's stack."""
    read = []
    for step in steps:
        if "instruction" in step:
            pair = client.parse_instruction(step["instruction"])
            read_by_clip = f" (the head CLIP reads '{pair['clip_reads']}')" if pair.get("clip_reads") else ""
            progress(0.01, f"'{step['instruction']}' reads as '{pair['edit']}' on '{pair['mask']}'{read_by_clip}")
            step = {
                **{k: v for k, v in step.items() if k != "instruction"},
                "edit": pair["edit"],
                "mask": pair["mask"],
                "instruction": step["instruction"],
            }
        read.append(step)
    return tuple(read)


def bridge_step(step: dict) -> dict:
    """A stack step as the bridge takes it (an instruction already read travels as its prompts)."""
    return {k: v for k, v in step.items() if k != "instruction"} if "edit" in step else step


def follow_job(client: BridgeClient, job: dict, progress: Progress, span: tuple[float, float], timeout_s: float) -> dict:
    """Poll a bridge job until it finishes, mapping its progress onto `span` of ours."""
    started = time.monotonic()
    low, high = span
    poll_s = JOB_POLL_S
    while job["state"] not in FINISHED:
        if progress.cancelled:
            raise Cancelled()
        if time.monotonic() - started > timeout_s:
            client.cancel(job["id"])
            raise BridgeError(
                f"The bridge job took longer than {timeout_s / 60:g} minutes and was cancelled; raise the job timeout in the add-on preferences."
            )
        progress(low + (high - low) * job.get("progress", 0.0), job.get("stage") or job["state"], job.get("eta_s"))
        time.sleep(poll_s)
        poll_s = min(JOB_POLL_MAX_S, poll_s * 1.5)
        job = client.job(job["id"])
    if job["state"] == "failed":
        raise BridgeError(f"The bridge could not finish the job: {job.get('error') or 'no reason given'}")
    if job["state"] == "cancelled":
        raise Cancelled()
    return job


def run_edit(
    client: BridgeClient,
    request: EditRequest,
    progress: Progress,
    timeout_s: float,
    on_job: Callable[[str], None] | None = None,
    pictures_later: bool = False,
) -> EditOutcome:
    """The edited head as a mesh ready for bpy. Its pictures are rendered by a second bridge job
    while the field is meshed here; with `pictures_later` the outcome comes without waiting for
    them and names that job (`EditOutcome.pictures_job`), otherwise they come with it."""
    progress(0.0, "creating the head")
    request = replace(request, steps=read_instructions(client, request.steps, progress))
    head = request.head.create_on(client)
    steps = [bridge_step(s) for s in request.steps]
    job = client.submit_edit(head["id"], steps, grid=request.grid, previews=False, sampling=request.sampling)
    if on_job is not None:
        on_job(job["id"])
    pictures = None
    if request.previews:  # a second job, which the bridge runs while the field is meshed here
        try:
            pictures = client.submit_edit(head["id"], steps, grid=request.grid, field=False)
            if on_job is not None:
                on_job(pictures["id"])
        except BridgeError:  # the queue is full, say: the head comes without its pictures
            pictures = None
    try:
        job = follow_job(client, job, progress, (0.02, 0.6), timeout_s)
        progress(0.62, "downloading the field")
        grid = MESHER.grid_file()
        try:
            client.download(job["id"], "field.npz", grid)
            progress.check()
            options = mesh_export.ExportOptions(texture_size=request.texture_size)
            try:
                mesh = MESHER.mesh(grid, options, progress, (0.65, 0.97)).to_blender()
            except mesh_export.FieldGridError as error:
                raise BridgeError(f"The edited field has no surface to mesh ({error}); try a lower strength.") from None
        finally:
            grid.unlink(missing_ok=True)
        progress(0.97, "preparing the import")
        prepared = prepare(mesh)
    except BaseException:  # no head comes of it: its pictures job would only keep the bridge busy
        if pictures is not None:
            _quietly_cancel(client, pictures["id"])
        raise
    if pictures is not None and pictures_later:
        progress(0.99, "importing")
        return EditOutcome(request, mesh, job, b"", prepared, pictures_job=pictures["id"])
    preview = b""
    if pictures is not None:
        preview, said = fetch_pictures(client, pictures["id"], timeout_s, progress, (0.98, 0.99))
        job = {**job, "info": {**job.get("info", {}), **said}}
    progress(0.99, "importing")
    return EditOutcome(request, mesh, job, preview, prepared)


def fetch_pictures(
    client: BridgeClient, job_id: str, timeout_s: float, progress: Progress | None = None, span: tuple[float, float] = (0.0, 1.0)
) -> tuple[bytes, dict]:
    """An edit's pictures job, once finished: its before | after | mask picture and what CLIP said
    of the edit ("clip_gain", "message"); (b"", {}) if it failed (the head is in hand without them)."""
    progress = progress or Progress(lambda *_: None, threading.Event())
    try:
        pictures = follow_job(client, client.job(job_id), progress, span, timeout_s)
        preview = client.result(job_id, "preview.png")
    except BridgeError:
        return b"", {}
    return preview, {k: v for k, v in pictures.get("info", {}).items() if k in ("clip_gain", "message")}


def _quietly_cancel(client: BridgeClient, job_id: str) -> None:
    try:
        client.cancel(job_id)
    except BridgeError:
        pass


def run_training(
    client: BridgeClient,
    edit: str,
    mask: str,
    geometry: bool,
    steps: int,
    progress: Progress,
    timeout_s: float,
    on_job: Callable[[str], None] | None = None,
) -> dict:
    progress(0.0, "submitting")
    job = client.submit_training(edit, mask, geometry=geometry, steps=steps)
    if on_job is not None:
        on_job(job["id"])
    return follow_job(client, job, progress, (0.0, 1.0), timeout_s)
