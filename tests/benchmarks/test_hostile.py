"""benchmarks/hostile.py: its judge sees what it must count, and a quick run of every group
(a few files per CLI group, every service request, the unfinished-job scenarios) is clean."""

from benchmarks.hostile import Case, Outcome, Tally, run


def test_the_judge_counts_tracebacks_crashes_and_refusals_that_are_not_one_sentence(tmp_path):
    tally = Tally()
    case = Case("fieldgrid", "export:x", ["export"], output=tmp_path / "x.glb")
    tally.judge(case, Outcome(2, "error: The file is not a field grid; export it again.\n"))
    assert (tally.tracebacks, tally.failures, tally.refused) == (0, [], 1)
    tally.judge(case, Outcome(1, 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad\n'))
    tally.judge(case, Outcome(2, "error: one\nerror: two\n"))
    tally.judge(case, Outcome(2, "KeyError: 'density'\n"))
    assert tally.tracebacks == 3
    tally.judge(case, Outcome(-9, "", note="killed by SIGKILL"))
    tally.judge(case, Outcome(0, ""))  # export must refuse every hostile file
    (tmp_path / "x.glb").write_bytes(b"glTF")
    tally.judge(case, Outcome(2, "error: refused.\n"))
    assert len(tally.failures) == 7 and tally.cases == 7
    read_only = Case("checkpoint", "inspect-eg3d:y", ["inspect-eg3d"], must_refuse=False)
    before = len(tally.failures)
    tally.judge(read_only, Outcome(0, ""))
    assert len(tally.failures) == before


def test_a_quick_run_of_every_group_is_clean():
    figures = run(quick=True)
    assert figures["failures"] == []
    assert figures["tracebacks"] == 0 and figures["server_5xx"] == 0
    assert figures["code_executed"] == 0 and figures["served_incomplete"] == 0 and figures["incomplete_files_left"] == 0
    assert all(figures["cases_by_group"][group] > 0 for group in ("checkpoint", "fieldgrid", "picture", "service"))
    assert figures["fresh_cli_runs"] >= 2
    control = figures["service_scenarios"]["finished_control"]
    assert control["result_served"] and control["owner_only"]  # the watch could see a result: its zero means something
    killed = figures["service_scenarios"]["killed_after_field_written"]
    assert killed["state"] == "failed" and killed["files_before_kill"] and not killed["files_left"]
    assert 0 < figures["max_rss_mb"] < 2048
