"""The HTTP API (FastAPI; OpenAPI at /v1/openapi.json, with the token). Everything is under /v1.

There are no interactive docs pages: they would load scripts from a CDN, and a browser cannot
send the token (read /v1/openapi.json with any OpenAPI viewer instead). guard.py checks every
request before a route sees it.

Light requests (health, status, lists, downloads) are answered by the event loop while the one
worker thread runs jobs; nothing here waits on PyTorch except POST /v1/heads (one mapping
network pass).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from bridge import __version__
from bridge.errors import BridgeError
from bridge.invert.refine import MAX_REFINE_STEPS
from bridge.service import security
from bridge.service.engine import MODULE_NAME, Engine, NotFound, module_name_for
from bridge.service.guard import Guard
from bridge.service.guard import error as _error
from bridge.service.jobs import DONE, FINISHED, QUEUED, RUNNING, JobStore, QueueFull, Worker
from bridge.service.logs import internal_error
from bridge.service.settings import LIMITS, request_timeout_s

log = logging.getLogger(__name__)

UNREADABLE_BODY = "The request body is not JSON the bridge can read (malformed, or nested too deep); send one JSON object."
MAX_DENSE_GRID = 256
"""Dense sampling is for comparisons: a 512^3 dense edit peaked at 8.4 GB on CPU (sparse: 5.6 GB)."""
JOB_ID = r"^[0-9a-f]{16}$"
JobId = Annotated[str, PathParam(pattern=JOB_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)  # strict: a JSON true is not the number 1


class HeadRequest(Strict):
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="a prior head from this seed")
    params: dict[str, float | str] | None = Field(None, max_length=64, description="prior parameters to override (e.g. eye_colour)")
    latent: list[float] | list[list[float]] | None = Field(
        None, max_length=1024, description="one w (w_dim numbers), or ws (num_ws rows); the body's size bounds the rest"
    )

    @model_validator(mode="after")
    def one_source(self):
        if self.latent is not None and (self.seed is not None or self.params):
            raise ValueError("give either latent, or seed (with optional params), not both")
        return self


class PictureHeadRequest(Strict):
    picture: str = Field(
        ..., min_length=8, max_length=LIMITS.request_bytes, description="a PNG or JPEG file in base64: a head, face to the camera"
    )
    crop: list[int] | None = Field(
        None,
        min_length=3,
        max_length=3,
        description="left, top, size (pixels): the square holding the head (default: around the face the detector finds, "
        "when the encoder knows its generator's face framing; else the centred square)",
    )
    yaw: float | None = Field(
        None, ge=-90.0, le=90.0, description="the camera's yaw in degrees, if known (default: the encoder's estimate)"
    )
    pitch: float | None = Field(None, ge=-45.0, le=45.0, description="the camera's pitch in degrees, if known")


class PictureHeadJobRequest(PictureHeadRequest):
    refine: int = Field(30, ge=0, le=MAX_REFINE_STEPS, description="refinement steps against the picture (about 0.5 s each on 2 CPU cores)")


class EditStepRequest(Strict):
    module: str | None = Field(None, max_length=64, description="a module of the library (GET /v1/modules)")
    edit: str | None = Field(None, min_length=1, max_length=LIMITS.edit_prompt_chars, description="or the edit prompt of a trained module")
    mask: str | None = Field(None, min_length=1, max_length=LIMITS.mask_prompt_chars, description="with its mask prompt")
    instruction: str | None = Field(
        None,
        min_length=1,
        max_length=LIMITS.edit_prompt_chars,
        description='or a sentence such as "make the eyes green" (POST /v1/instructions shows its pair)',
    )
    strength: float = Field(1.0, ge=0.0, le=1.5)
    mask_module: str | None = Field(None, max_length=64, description="use this module's attention field (a partial edit)")
    texture_only: bool | None = Field(None, description="true: colours only (no Deformation Network); null: as trained")

    @model_validator(mode="after")
    def module_or_prompts(self):
        ways = [self.module is not None, self.edit is not None or self.mask is not None, self.instruction is not None]
        if sum(ways) != 1 or (ways[1] and (self.edit is None or self.mask is None)):
            raise ValueError("give one of: module, both edit and mask prompts, or an instruction")
        for name in ("edit", "mask", "instruction"):
            if getattr(self, name) is not None and not getattr(self, name).strip():
                raise ValueError(f"{name} must not be blank")
        return self


class InstructionRequest(Strict):
    instruction: str = Field(..., min_length=1, max_length=LIMITS.edit_prompt_chars)


class EditJobRequest(Strict):
    head: str = Field(..., pattern=JOB_ID, description="a head id from POST /v1/heads")
    steps: list[EditStepRequest] = Field(
        ..., min_length=0, max_length=LIMITS.stack_steps, description="edits applied in order; none gives the unedited head"
    )
    grid: int = Field(128, ge=LIMITS.grid_min, le=LIMITS.grid_max, description="FieldGrid resolution")
    preview_yaw: float = Field(20.0, ge=-180.0, le=180.0)
    sampling: Literal["sparse", "dense"] = Field(
        "sparse",
        description="sparse: the field is evaluated only where the mesh needs it (the same mesh); dense: at every voxel (for comparisons)",
    )
    previews: bool = Field(True, description="render preview.png and mask.png (a live slider's steps leave them out)")
    field: bool = Field(True, description="sample and write field.npz (a previews-only job leaves it out)")

    @model_validator(mode="after")
    def some_output(self):
        if not (self.previews or self.field):
            raise ValueError("ask for the field, the previews or both")
        if self.sampling == "dense" and self.grid > MAX_DENSE_GRID:
            raise ValueError(f"dense sampling (for comparisons) takes grids up to {MAX_DENSE_GRID}; sparse gives the same mesh")
        return self


class TrainJobRequest(Strict):
    edit: str = Field(..., min_length=1, max_length=LIMITS.edit_prompt_chars)
    mask: str = Field(..., min_length=1, max_length=LIMITS.mask_prompt_chars)
    geometry: bool = False
    steps: int = Field(800, ge=1, le=LIMITS.training_steps)
    minutes: float | None = Field(None, gt=0, le=LIMITS.training_minutes)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    name: str | None = Field(None, pattern=MODULE_NAME.pattern, description="module folder name (default from the prompts)")

    @model_validator(mode="after")
    def not_blank(self):
        if not self.edit.strip() or not self.mask.strip():
            raise ValueError("edit and mask prompts must not be blank")
        return self


def create_app(engine: Engine, store: JobStore, worker: Worker, token: str, host: str, port: int) -> FastAPI:
    app = FastAPI(title="Text Edit bridge", version=__version__, openapi_url="/v1/openapi.json", docs_url=None, redoc_url=None)
    app.add_middleware(Guard, token=token, hosts=security.allowed_hosts(host, port))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        # where and what only: the refused value is not echoed (it may not even encode as JSON)
        problems = error.errors()
        if problems and problems[0]["type"] == "json_invalid":  # cut, malformed or nested past the parser's depth
            return _error(422, UNREADABLE_BODY)
        return _error(422, [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in problems])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if (
            error.status_code == 400 and error.detail == "There was an error parsing the body"
        ):  # FastAPI's, e.g. for nesting past Python's depth
            return _error(422, UNREADABLE_BODY)
        response = _error(error.status_code, error.detail)
        response.headers.update(error.headers or {})  # 405's Allow, say
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return _error(404, str(error))

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, error: BridgeError):
        return _error(429 if isinstance(error, QueueFull) else 400, str(error))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, internal_error(error))

    def job_or_404(job_id: str):
        job = store.get(job_id)
        if job is None:
            raise NotFound(f"No job {job_id}; it may have expired (results are kept {LIMITS.result_days:g} days).")
        return job

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "api": "v1"}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return {
            **engine.info(),
            "jobs": {"queued": len(worker.queue), "running": worker.current},
            "limits": {**LIMITS.__dict__, "request_timeout_s": request_timeout_s()},
        }

    @app.post("/v1/heads", status_code=201)
    def create_head(body: HeadRequest) -> dict[str, Any]:
        return engine.create_head(body.seed, body.params, body.latent).public()

    @app.post("/v1/heads/from-picture", status_code=201)
    def create_head_from_picture(body: PictureHeadRequest) -> dict[str, Any]:
        """A head from one picture, the image encoder's answer alone (tens of milliseconds); for a
        refined one, POST /v1/jobs/head."""
        return engine.head_from_picture(body.model_dump()).public()

    @app.post("/v1/jobs/head", status_code=202)
    def submit_head(body: PictureHeadJobRequest) -> dict[str, Any]:
        engine.encoder()
        request = body.model_dump()
        request["picture"], picture = engine.checked_picture(request["picture"])  # the job lists its hash only
        return worker.submit("head", request, inputs={"picture": picture}).public()

    @app.get("/v1/heads/{head_id}")
    async def get_head(head_id: JobId) -> dict[str, Any]:
        return engine.head(head_id).public()

    @app.get("/v1/modules")
    def modules() -> dict[str, Any]:
        return {"modules": engine.modules()}

    @app.post("/v1/jobs/edit", status_code=202)
    def submit_edit(body: EditJobRequest) -> dict[str, Any]:
        engine.head(body.head)
        for step in body.steps:
            for name in (step.module, step.mask_module):
                if name is not None:
                    engine.module(name)
            if step.instruction is not None:
                parsed = engine.parse_instruction(step.instruction)
                step.edit, step.mask, step.instruction = parsed["edit"], parsed["mask"], None
            if step.module is None and engine.module_for_prompts(step.edit, step.mask) is None:
                engine.open_model()
        return worker.submit("edit", body.model_dump()).public()

    @app.post("/v1/instructions")
    def parse_instruction(body: InstructionRequest) -> dict[str, Any]:
        """The (edit, mask) pair an instruction sentence is read as, before anything runs."""
        return engine.parse_instruction(body.instruction)

    @app.post("/v1/jobs/train", status_code=202)
    async def submit_training(body: TrainJobRequest) -> dict[str, Any]:
        name = body.name or module_name_for(body.edit, body.mask)
        if engine.is_bundled_module(name):
            raise HTTPException(409, f"{name!r} is a module that ships with the bridge; give the trained one another name.")
        return worker.submit("train", body.model_dump()).public()

    @app.get("/v1/jobs")
    async def list_jobs() -> dict[str, Any]:
        jobs = sorted(store.jobs.values(), key=lambda j: j.created)
        return {"jobs": [j.public() for j in jobs]}

    @app.get("/v1/jobs/{job_id}")
    async def get_job(job_id: JobId) -> dict[str, Any]:
        return job_or_404(job_id).public()

    @app.post("/v1/jobs/{job_id}/cancel")
    async def cancel_job(job_id: JobId) -> dict[str, Any]:
        job = job_or_404(job_id)
        if job.state in (QUEUED, RUNNING):
            worker.cancel(job_id)
        return job.public()

    @app.delete("/v1/jobs/{job_id}", status_code=204)
    async def delete_job(job_id: JobId) -> None:
        job = job_or_404(job_id)
        if job.state not in FINISHED:
            raise HTTPException(409, "The job has not finished; cancel it first.")
        store.delete(job_id)

    @app.get("/v1/jobs/{job_id}/results/{name}")
    async def result(job_id: JobId, name: str) -> FileResponse:
        job = job_or_404(job_id)
        if job.state != DONE:
            raise HTTPException(409, f"The job is {job.state}; results come only when it is done.")
        if name not in job.results:
            raise NotFound(f"Job {job_id} has no result {name!r}; it has: {', '.join(job.results)}.")
        path = store.folder_of(job_id) / name
        if not path.is_file():
            raise NotFound(f"The result file of job {job_id} is gone from the cache; submit the job again.")
        return FileResponse(path, media_type=job.results[name], filename=name)

    return app
