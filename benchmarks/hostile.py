"""Hostile input, the three groups of issue 24 and pictures, through the real entry points: `python -m benchmarks hostile`.

- checkpoint: every file of benchmarks/hostile_checkpoint.py through `inspect-eg3d FILE` and
  `import-eg3d FILE --out DIR`; fieldgrid: every file of benchmarks/hostile_fieldgrid.py through
  `export --field FILE --out X.glb`; picture: every file of benchmarks/hostile_picture.py through
  `head-from-image FILE --out X.json` (odd pictures must give a head, broken ones one sentence,
  memory bounded by the working copy); in the first two groups also a valid file with an --out that cannot be
  written (a file where a folder is wanted, a folder where a file is). Each command is `bridge.cli.main(argv)` in one long-lived child
  per group (a fresh `python -m bridge` costs seconds of torch import), its stderr captured at the
  file descriptor, one case after another; a child that dies is restarted after the case that killed
  it. A few cases per group also run as a fresh `python -m bridge ...` process, the real command line.
  A refusal is exit 2 with one line `error: ...` on stderr; a traceback is any stderr holding
  "Traceback", an exception name line, or more than one line.
- service: benchmarks/hostile_service.py's requests to a real bridge on loopback, then jobs that do
  not finish (cancelled as they start, cancelled after field.npz was written under its temporary
  name, the bridge killed at that moment and started again) watched through every way a result is
  shown: GET /v1/jobs, GET /v1/jobs/{id}, GET /v1/jobs/{id}/results/NAME. A job that does finish is
  the control: its result must be served, readable and owner-only.

Figures: cases (and per group), tracebacks (CLI stderr and the bridge's log), failures (by name:
exit codes other than 0/2, crashes, time-outs, a refusal that is not one sentence, a hostile file
accepted by import-eg3d or export, output left behind by a refusal, a service answer the case does
not expect), server_5xx, served_incomplete (a result of an unfinished job listed or served),
incomplete_files_left (files other than job.json left in an unfinished job's folder), code_executed
(planted payload markers found afterwards), max_rss_mb (the largest peak RSS of any CLI child, from
os.wait4's per-child rusage; the long-lived children include the ~300 MB of torch itself),
server_max_rss_mb (VmHWM of the bridge processes), seconds; refused and accepted count exits 2 and 0
(only inspect-eg3d may accept: it lists files it can read as data that are no generator).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 120.0
"""A case that runs longer than this is killed and counted as a failure."""
EXCEPTION_LINE = re.compile(r"^\s*(Traceback|[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning)\b(:|$))")

FRESH_CHECKPOINT = (
    ("import-eg3d", "os_system"),
    ("import-eg3d", "pth_deflate_bomb"),
    ("inspect-eg3d", "modules_nested_200k_deep"),
    ("import-eg3d", "init_kwargs_billion_laughs"),
    ("inspect-eg3d", "binbytes8_200_gib"),
    ("import-eg3d", "module_source_runs_if_trusted"),
)
FRESH_FIELDGRID = (
    "deflate_bomb_256_cubed",
    "header_huge_shape",
    "provenance_100k_deep",
    "object_dtype_pickle",
    "header_longer_than_64_kib",
)
QUICK_CHECKPOINT = (
    "os_system",
    "module_source_runs_if_trusted",
    "pth_pickle_planted",
    "modules_nested_200k_deep",
    "pth_deflate_bomb",
    "binbytes8_200_gib",
    "z_dim_30000",
)
FRESH_PICTURE = ("greyscale_6000_squared.png", "header_20000_squared.png")
QUICK_PICTURE = ("empty_file.png", "header_20000_squared.png", "exif_damaged.jpg", "sixteen_bit_grey.png")
QUICK_FIELDGRID = ("deflate_bomb_256_cubed", "provenance_100k_deep", "object_dtype_pickle", "header_huge_shape", "density_nan")
RESULTS = ("field.npz", "preview.png", "mask.png")


@dataclass
class Case:
    group: str
    name: str
    argv: list[str]
    output: Path | None = None
    """What the command writes when it succeeds: must not exist after a refusal."""
    must_refuse: bool = True
    """inspect-eg3d may list a file it reads as data; import-eg3d and export must refuse every one."""


@dataclass
class Outcome:
    code: int | None
    stderr: str
    rss_kb: int = 0
    note: str = ""


@dataclass
class Tally:
    cases: int = 0
    tracebacks: int = 0
    failures: list[str] = field(default_factory=list)
    refused: int = 0
    accepted: int = 0

    def judge(self, case: Case, outcome: Outcome, label: str | None = None) -> None:
        label = label or case.name
        self.cases += 1
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        traceback = "Traceback" in outcome.stderr or len(lines) > 1 or any(EXCEPTION_LINE.match(line) for line in lines)
        if traceback:
            self.tracebacks += 1
            self.failures.append(f"{label}: traceback or {len(lines)} stderr lines: {' | '.join(lines)[:300]}")
        if outcome.note:
            self.failures.append(f"{label}: {outcome.note}")
        elif outcome.code == 2:
            self.refused += 1
            if not traceback and not (len(lines) == 1 and lines[0].startswith("error: ")):
                self.failures.append(f"{label}: exit 2 without one 'error: ...' line")
            if case.output is not None and case.output.exists():
                self.failures.append(f"{label}: refused but left {case.output.name} behind")
        elif outcome.code == 0:
            self.accepted += 1
            if case.must_refuse:
                self.failures.append(f"{label}: a hostile file was accepted (exit 0)")
        else:
            self.failures.append(f"{label}: exit {outcome.code}")


# --- the CLI groups -----------------------------------------------------------------------------


def _environment(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["TEXT_EDIT_CONFIG_DIR"] = str(work / "config")
    env["TEXT_EDIT_CACHE_DIR"] = str(work / "cache")
    return env


TRAMPOLINE = (
    "import os, sys\n"
    "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}')\n"
)
"""Starts a command and reports its exit code and peak RSS (kB) from os.wait4. Linux carries the
forking process's peak RSS into a child's ru_maxrss at exec, so a command forked straight from this
benchmark (which holds torch) would report this process's size; forked from this small `python -S`,
it reports its own."""


def _spawn(command: list[str], work: Path, stderr, progress: Path | None = None) -> tuple[int | None, int, str]:
    """(exit code or -signal, peak RSS in kB, note) of `command` run through TRAMPOLINE; killed (its
    whole process group) when nothing moved (the `progress` file did not grow) for CASE_TIMEOUT_S."""
    with tempfile.NamedTemporaryFile(dir=work, delete=False) as report:
        report_path = Path(report.name)
    process = subprocess.Popen(
        [sys.executable, "-S", "-c", TRAMPOLINE, str(report_path), *command],
        cwd=work,
        env=_environment(work),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
    )
    last, size, note = time.monotonic(), -1, ""
    while process.poll() is None:
        now_size = progress.stat().st_size if progress is not None and progress.exists() else 0
        if now_size != size:
            last, size = time.monotonic(), now_size
        elif time.monotonic() - last > CASE_TIMEOUT_S:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            note = f"timed out after {CASE_TIMEOUT_S:g} s"
        time.sleep(0.02)
    reported = report_path.read_text().split()
    report_path.unlink()
    if len(reported) != 2:
        return None, 0, note or f"the command could not be started or was lost (status {process.returncode})"
    code, rss = int(reported[0]), int(reported[1])
    if code < 0 and not note:
        note = f"killed by {signal.Signals(-code).name}"
    return code, rss, note


def _fresh(case: Case, work: Path) -> Outcome:
    """`python -m bridge ARGV` in a process of its own."""
    with tempfile.TemporaryFile(dir=work) as stderr:
        code, rss, note = _spawn([sys.executable, "-m", "bridge", *case.argv], work, stderr)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    return Outcome(code, text, rss, note)


def _in_worker(cases: list[Case], work: Path, preload: tuple[str, ...]) -> tuple[dict[str, Outcome], int, int]:
    """Run `cases` through bridge.cli.main in long-lived children: ({name: outcome}, the children's
    largest peak RSS in kB, their RSS once the `preload` modules, what the commands import, were imported)."""
    outcomes: dict[str, Outcome] = {}
    peak = baseline = 0
    remaining = list(cases)
    while remaining:
        plan, results = work / "worker_cases.json", work / "worker_results.jsonl"
        plan.write_text(json.dumps({"preload": list(preload), "cases": [{"name": c.name, "argv": c.argv} for c in remaining]}))
        results.unlink(missing_ok=True)
        with (work / "worker_stderr.txt").open("w+b") as stderr:
            code, rss, note = _spawn(
                [sys.executable, "-m", "benchmarks.hostile", "--worker", str(plan), str(results)], work, stderr, progress=results
            )
            stderr.seek(0)
            worker_stderr = stderr.read().decode(errors="replace")
        peak = max(peak, rss)
        reported = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
        done = 0
        for record in reported:
            if "baseline_kb" in record:
                baseline = max(baseline, record["baseline_kb"])
                continue
            outcomes[record["name"]] = Outcome(record["code"], record["stderr"], record["rss_kb"])
            done += 1
        if done < len(remaining):  # the child died or hung on remaining[done]
            why = note or f"the process exited {code} in this case"
            outcomes[remaining[done].name] = Outcome(code, worker_stderr[-2000:], rss, why)
            remaining = remaining[done + 1 :]
        else:
            remaining = []
    return outcomes, peak, baseline


def _worker(plan: Path, results: Path) -> int:
    """The long-lived child: each case through bridge.cli.main, stderr captured at fd 2, one JSON line each."""
    import contextlib
    import importlib
    import resource
    import traceback
    import warnings

    from bridge import cli

    plan = json.loads(plan.read_text())
    for module in plan["preload"]:  # imported before the baseline: every fresh command has them
        importlib.import_module(module)

    def peak() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    with results.open("a") as out, open(os.devnull, "w") as devnull:
        out.write(json.dumps({"baseline_kb": peak()}) + "\n")
        out.flush()
        for case in plan["cases"]:
            with tempfile.TemporaryFile() as captured:
                sys.stderr.flush()
                saved = os.dup(2)
                os.dup2(captured.fileno(), 2)
                try:
                    # catch_warnings: a warning shown by an earlier case is shown again, as in a fresh process
                    with warnings.catch_warnings(), contextlib.redirect_stdout(devnull):
                        try:
                            code = cli.main(case["argv"])
                        except SystemExit as exit:
                            code = exit.code if isinstance(exit.code, int) else 1
                        except BaseException:  # what a user would see: a traceback and exit 1
                            traceback.print_exc()
                            code = 1
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    os.close(saved)
                captured.seek(0)
                text = captured.read().decode(errors="replace")
            out.write(json.dumps({"name": case["name"], "code": code, "stderr": text, "rss_kb": peak()}) + "\n")
            out.flush()
    return 0


def _checkpoint_cases(folder: Path, out: Path, quick: bool) -> list[Case]:
    from benchmarks.hostile_checkpoint import hostile_checkpoint_files

    files = hostile_checkpoint_files(folder, bomb_bytes=(32 << 20) if quick else (256 << 20))
    if quick:
        files = [(name, path) for name, path in files if name in QUICK_CHECKPOINT]
    cases = []
    for name, path in files:
        cases.append(Case("checkpoint", f"inspect-eg3d:{name}", ["inspect-eg3d", str(path)], must_refuse=False))
        target = out / "import" / name
        cases.append(
            Case(
                "checkpoint",
                f"import-eg3d:{name}",
                ["import-eg3d", str(path), "--out", str(target)],
                output=target / "generator.safetensors",
            )
        )
    not_a_folder = out / "not_a_folder"  # a valid checkpoint, an --out that cannot be written
    not_a_folder.parent.mkdir(parents=True, exist_ok=True)
    not_a_folder.write_text("a file, not a folder")
    cases.append(
        Case("checkpoint", "import-eg3d:valid_out_is_a_file", ["import-eg3d", str(folder / "valid.pth"), "--out", str(not_a_folder)])
    )
    return cases


def _fieldgrid_cases(folder: Path, out: Path, quick: bool) -> list[Case]:
    import mesh_export
    from benchmarks.hostile_fieldgrid import hostile_fieldgrid_files, valid_grid

    files = hostile_fieldgrid_files(folder)
    if quick:
        files = [(name, path) for name, path in files if name in QUICK_FIELDGRID]
    cases = [
        Case(
            "fieldgrid",
            f"export:{name}",
            ["export", "--field", str(path), "--out", str(out / "export" / f"{name}.glb")],
            output=out / "export" / f"{name}.glb",
        )
        for name, path in files
    ]
    valid = mesh_export.write(valid_grid(), folder / "valid.npz")  # a valid grid, an --out that cannot be written
    (out / "a_folder.glb").mkdir(parents=True, exist_ok=True)
    cases.append(Case("fieldgrid", "export:valid_out_is_a_folder", ["export", "--field", str(valid), "--out", str(out / "a_folder.glb")]))
    return cases


def _picture_cases(folder: Path, out: Path, quick: bool) -> list[Case]:
    from benchmarks.hostile_picture import hostile_picture_files

    files = hostile_picture_files(folder)
    if quick:
        files = [(name, path, refuse) for name, path, refuse in files if name in QUICK_PICTURE]
    return [
        Case(
            "picture",
            f"head-from-image:{name}",
            ["head-from-image", str(path), "--out", str(out / "heads" / f"{name}.json")],
            output=out / "heads" / f"{name}.json",
            must_refuse=refuse,
        )
        for name, path, refuse in files
    ]


def _fresh_copy(case: Case, out: Path) -> Case:
    """The same command with its own output path, so the fresh run's output check is its own."""
    argv = list(case.argv)
    if case.output is None:
        return Case(case.group, case.name, argv, None, case.must_refuse)
    index = argv.index("--out") + 1
    fresh_out = out / "fresh" / Path(argv[index]).name
    argv[index] = str(fresh_out)
    return Case(case.group, case.name, argv, fresh_out / case.output.relative_to(case.argv[index]), case.must_refuse)


def _cli_group(cases: list[Case], fresh_names: list[str], work: Path, out: Path, preload: tuple[str, ...]) -> dict:
    tally, fresh = Tally(), Tally()
    outcomes, worker_peak, baseline = _in_worker(cases, work, preload)
    for case in cases:
        tally.judge(case, outcomes.get(case.name, Outcome(None, "", note="no outcome reported")))
    fresh_peak = 0
    by_name = {case.name: case for case in cases}
    for name in fresh_names:
        if name in by_name:
            copy = _fresh_copy(by_name[name], out)
            outcome = _fresh(copy, work)
            fresh_peak = max(fresh_peak, outcome.rss_kb)
            fresh.judge(copy, outcome, label=f"fresh {name}")
    peaks = {name: o.rss_kb for name, o in outcomes.items()}
    ordered = [c.name for c in cases if c.name in peaks]
    jumps = {name: peaks[name] - (peaks[ordered[i - 1]] if i else baseline) for i, name in enumerate(ordered)}
    biggest = max(jumps, key=jumps.get) if jumps else None
    return {
        "cases": tally.cases,
        "fresh_runs": fresh.cases,
        "tracebacks": tally.tracebacks + fresh.tracebacks,
        "refused": tally.refused,
        "accepted": tally.accepted,
        "failures": tally.failures + fresh.failures,
        "worker_peak_rss_mb": round(worker_peak / 1024, 1),
        "worker_baseline_rss_mb": round(baseline / 1024, 1),
        "largest_rss_growth_case": biggest,
        "largest_rss_growth_mb": round(jumps[biggest] / 1024, 1) if biggest else 0.0,
        "fresh_peak_rss_mb": round(fresh_peak / 1024, 1),
    }


# --- the service group --------------------------------------------------------------------------


def _peak_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmHWM:\s*(\d+) kB", status)
    return int(found.group(1)) if found else 0


class _Watcher:
    """Requests that show a job's results, counting every time a job that is not done shows one."""

    def __init__(self, url: str, token: str):
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.host, self.port, self.token = parts.hostname, parts.port, token
        self.served_incomplete = 0
        self.server_5xx = 0
        self.requests = 0
        self.examples: list[str] = []
        self.unfinished_answers: dict[str, int] = {}
        """Status -> count of the result downloads tried while the job was not done."""

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        import http.client

        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        self.requests += 1
        self.server_5xx += response.status >= 500
        return response.status, body

    def _incomplete(self, what: str) -> None:
        self.served_incomplete += 1
        self.examples.append(what)

    def look(self, job_id: str) -> dict:
        """One round of every view of the job; its state as last seen."""
        status, body = self.call("GET", f"/v1/jobs/{job_id}")
        job = json.loads(body)
        if job["state"] != "done" and job["results"]:
            self._incomplete(f"GET /v1/jobs/{job_id} listed results while {job['state']}")
        status, body = self.call("GET", "/v1/jobs")
        for listed in json.loads(body)["jobs"]:
            if listed["id"] == job_id and listed["state"] != "done" and listed["results"]:
                self._incomplete(f"GET /v1/jobs listed results of a {listed['state']} job")
        for name in RESULTS:
            status, _ = self.call("GET", f"/v1/jobs/{job_id}/results/{name}")
            if status == 200:
                _, after = self.call("GET", f"/v1/jobs/{job_id}")
                if json.loads(after)["state"] == "done":
                    continue  # it finished since the job was read: served in time
                self._incomplete(f"{name} served while the job was not done")  # still not done after it was served
            if job["state"] != "done":
                self.unfinished_answers[str(status)] = self.unfinished_answers.get(str(status), 0) + 1
        return job

    def until(self, job_id: str, ready, timeout_s: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.look(job_id)
            if ready(job) or job["state"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id} still {job['state']} after {timeout_s:g} s")


def _left_files(cache: Path, job_id: str) -> list[str]:
    folder = cache / "jobs" / job_id
    return sorted(p.name for p in folder.iterdir() if p.name != "job.json") if folder.is_dir() else []


def _submit(watcher: _Watcher, head: str, grid: int) -> str:
    status, payload = watcher.call("POST", "/v1/jobs/edit", {"head": head, "steps": [], "grid": grid})
    if status != 202:
        raise RuntimeError(f"the edit job was not accepted ({status}: {payload[:200]!r})")
    return json.loads(payload)["id"]


def _previews(job: dict) -> bool:
    """field.npz has been written (under its temporary name): the runner is rendering previews."""
    return job["stage"] == "rendering previews"


def _service(folder: Path) -> dict:
    import mesh_export
    from benchmarks.hostile_service import hostile_service_cases
    from bridge.service.launcher import LocalBridge
    from bridge.service.security import read_token

    log = folder / "bridge.log"
    bridge = LocalBridge(folder / "config", folder / "cache", log=log)
    scenarios: dict[str, dict] = {}
    failures: list[str] = []
    server_peak = 0
    bridge.start()
    try:
        token = read_token(bridge.config)
        hostile = hostile_service_cases(bridge.url, token)
        failures += [f"service {c['case']}: status {c['status']}" for c in hostile if not c["ok"]]
        watcher = _Watcher(bridge.url, token)
        status, payload = watcher.call("POST", "/v1/heads", {"seed": 3})
        if status != 201:
            raise RuntimeError(f"no head was made ({status}: {payload[:200]!r})")
        head = json.loads(payload)["id"]

        def finished(job_id: str, expected: str, name: str) -> None:
            job = watcher.until(job_id, lambda j: False)
            scenarios[name] = {"state": job["state"], "files_left": _left_files(bridge.cache, job_id)}
            if job["state"] != expected:
                failures.append(f"service scenario {name}: the job ended {job['state']}, not {expected}")

        job_id = _submit(watcher, head, 128)  # cancelled as soon as it runs
        watcher.until(job_id, lambda j: j["state"] == "running")
        watcher.call("POST", f"/v1/jobs/{job_id}/cancel")
        finished(job_id, "cancelled", "cancel_at_start")

        job_id = _submit(watcher, head, 128)  # cancelled once field.npz is on disk under its temporary name
        job = watcher.until(job_id, _previews)
        if not _previews(job):
            failures.append("service scenario cancel_after_field_written: the job finished before it could be cancelled")
        watcher.call("POST", f"/v1/jobs/{job_id}/cancel")
        finished(job_id, "cancelled", "cancel_after_field_written")

        job_id = _submit(watcher, head, 128)  # the control: a finished job's results are served, whole, owner-only
        job = watcher.until(job_id, lambda j: False)
        status, data = watcher.call("GET", f"/v1/jobs/{job_id}/results/field.npz")
        try:
            served = status == 200 and mesh_export.read_bytes(data).resolution == 128
        except mesh_export.FieldGridError:
            served = False
        folder_mode = (bridge.cache / "jobs" / job_id).stat().st_mode & 0o777
        modes = {p.name: p.stat().st_mode & 0o777 for p in (bridge.cache / "jobs" / job_id).iterdir()}
        private = folder_mode == 0o700 and all(mode == 0o600 for mode in modes.values())
        scenarios["finished_control"] = {"state": job["state"], "result_served": served, "owner_only": private}
        if not served:
            failures.append(f"service scenario finished_control: a done job's field.npz was not served ({status})")
        if not private:
            failures.append(f"service scenario finished_control: not owner-only (folder {folder_mode:o}, files {modes})")

        job_id = _submit(watcher, head, 128)  # the bridge killed mid-job, then started again on the same cache
        job = watcher.until(job_id, _previews)
        if not _previews(job):
            failures.append("service scenario killed_after_field_written: the job finished before the bridge was killed")
        partial_before_kill = _left_files(bridge.cache, job_id)
        server_peak = max(server_peak, _peak_rss_kb(bridge.process.pid))
        bridge.stop(kill=True)
        bridge = LocalBridge(folder / "config", folder / "cache", log=log)
        bridge.start()
        watcher.host, watcher.port = "127.0.0.1", bridge.port
        job = watcher.look(job_id)
        scenarios["killed_after_field_written"] = {
            "state": job["state"],
            "files_before_kill": partial_before_kill,
            "files_left": _left_files(bridge.cache, job_id),
        }
        if job["state"] != "failed":
            failures.append(f"service scenario killed_after_field_written: the job is {job['state']} after the restart, not failed")
        server_peak = max(server_peak, _peak_rss_kb(bridge.process.pid))
    finally:
        bridge.stop()
    incomplete_left = sum(len(s["files_left"]) for s in scenarios.values() if s["state"] != "done")
    if incomplete_left:
        failures.append(f"service: {incomplete_left} file(s) left in unfinished jobs' folders")
    failures += [f"service: {what}" for what in watcher.examples]
    text = log.read_text(errors="replace")
    log_tracebacks = text.count("Traceback")
    if log_tracebacks:
        failures.append(f"service: {log_tracebacks} traceback(s) in the bridge's log")
    return {
        "cases": len(hostile) + len(scenarios),
        "hostile_requests": len(hostile),
        "scenarios": scenarios,
        "server_5xx": sum(c["server_5xx"] for c in hostile) + watcher.server_5xx,
        "log_tracebacks": log_tracebacks,
        "served_incomplete": watcher.served_incomplete,
        "incomplete_files_left": incomplete_left,
        "watch_requests": watcher.requests,
        "result_answers_while_unfinished": watcher.unfinished_answers,
        "server_max_rss_mb": round(server_peak / 1024, 1),
        "failures": failures,
    }


# --- all of it ----------------------------------------------------------------------------------


def run(quick: bool = False) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hostile-") as root:
        root = Path(root)
        work, out = root / "work", root / "out"
        work.mkdir()
        checkpoint_cases = _checkpoint_cases(root / "checkpoints", out, quick)
        fieldgrid_cases = _fieldgrid_cases(root / "fieldgrids", out, quick)
        picture_cases = _picture_cases(root / "pictures", out, quick)
        inputs = {p for p in root.rglob("*")}
        checkpoint = _cli_group(
            checkpoint_cases,
            [f"{command}:{name}" for command, name in FRESH_CHECKPOINT[: 2 if quick else None]],
            work,
            out,
            ("torch", "bridge.eg3d.checkpoint", "bridge.eg3d.convert", "bridge.field.weights"),
        )
        fieldgrid = _cli_group(
            fieldgrid_cases,
            [f"export:{name}" for name in FRESH_FIELDGRID[: 1 if quick else None]],
            work,
            out,
            ("mesh_export", "mesh_export.gltf", "mesh_export.pipeline"),
        )
        picture = _cli_group(
            picture_cases,
            [f"head-from-image:{name}" for name in FRESH_PICTURE[: 1 if quick else None]],
            work,
            out,
            ("torch", "bridge.images", "bridge.invert", "bridge.prior.model"),
        )
        service = _service(root / "service")
        markers = sorted(
            str(p.relative_to(root))
            for p in root.rglob("*")
            if "ran" in p.name and p not in inputs and not str(p.relative_to(root)).startswith("service")
        )
    groups = {"checkpoint": checkpoint, "fieldgrid": fieldgrid, "picture": picture, "service": service}
    failures = checkpoint["failures"] + fieldgrid["failures"] + picture["failures"] + service["failures"]
    failures += [f"payload marker {marker} exists: code from a file ran" for marker in markers]
    return {
        "cases": sum(g["cases"] for g in groups.values()),
        "cases_by_group": {name: g["cases"] for name, g in groups.items()},
        "fresh_cli_runs": checkpoint["fresh_runs"] + fieldgrid["fresh_runs"] + picture["fresh_runs"],
        "tracebacks": checkpoint["tracebacks"] + fieldgrid["tracebacks"] + picture["tracebacks"] + service["log_tracebacks"],
        "tracebacks_by_group": {
            "checkpoint": checkpoint["tracebacks"],
            "fieldgrid": fieldgrid["tracebacks"],
            "picture": picture["tracebacks"],
            "service_log": service["log_tracebacks"],
        },
        "failures": failures,
        "server_5xx": service["server_5xx"],
        "served_incomplete": service["served_incomplete"],
        "incomplete_files_left": service["incomplete_files_left"],
        "watch_requests": service["watch_requests"],
        "result_answers_while_unfinished": service["result_answers_while_unfinished"],
        "code_executed": len(markers),
        "max_rss_mb": max(
            checkpoint["worker_peak_rss_mb"],
            checkpoint["fresh_peak_rss_mb"],
            fieldgrid["worker_peak_rss_mb"],
            fieldgrid["fresh_peak_rss_mb"],
            picture["worker_peak_rss_mb"],
            picture["fresh_peak_rss_mb"],
        ),
        "cli_rss_mb": {
            name: {
                k: g[k]
                for k in (
                    "worker_baseline_rss_mb",
                    "worker_peak_rss_mb",
                    "fresh_peak_rss_mb",
                    "largest_rss_growth_case",
                    "largest_rss_growth_mb",
                )
            }
            for name, g in (("checkpoint", checkpoint), ("fieldgrid", fieldgrid), ("picture", picture))
        },
        "server_max_rss_mb": service["server_max_rss_mb"],
        "refused": {"checkpoint": checkpoint["refused"], "fieldgrid": fieldgrid["refused"], "picture": picture["refused"]},
        "accepted": {"checkpoint": checkpoint["accepted"], "fieldgrid": fieldgrid["accepted"], "picture": picture["accepted"]},
        "service_scenarios": service["scenarios"],
        "seconds": round(time.perf_counter() - started, 1),
        "quick": quick,
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        sys.exit(_worker(Path(sys.argv[2]), Path(sys.argv[3])))
    sys.exit("usage: python -m benchmarks hostile [--json] [--quick]")
