"""The live slider's scheduling (addon/live.py) with a runner that stays busy, as in a windowed
Blender: changes during a running step are coalesced into one step at the latest value, and the
full edit comes once the slider has rested, once."""

import pytest

from tests.addon.conftest import checkout_as_package


@pytest.fixture
def live():
    with checkout_as_package():
        from text_edit.addon import live

        yield live


class Runner:
    busy = False


def controller(live, monkeypatch):
    runner, now, sent = Runner(), [0.0], []
    monkeypatch.setattr(live, "RUNNER", runner)
    slider = live.LiveStrength(clock=lambda: now[0])

    def edit(context, strength, final):
        sent.append((strength, "full" if final else "coarse"))
        runner.busy = True
        return True

    monkeypatch.setattr(slider, "_edit", edit)
    return slider, runner, now, sent


def test_changes_while_a_step_runs_are_coalesced_and_the_rest_gives_one_full_edit(live, monkeypatch):
    slider, runner, now, sent = controller(live, monkeypatch)
    slider.wanted, slider.changed_at, slider.release_pending = 0.3, 0.0, True
    slider.tick(None)  # the first change: a coarse step starts
    for value in (0.4, 0.5, 0.6):  # the drag goes on while it runs
        now[0] += 0.05
        slider.wanted, slider.changed_at = value, now[0]
        assert slider.tick(None)
    runner.busy = False  # the step is in
    slider.tick(None)  # the latest value only
    runner.busy = False
    now[0] += 0.1
    assert slider.tick(None) and sent[-1] == (0.6, "coarse"), "not rested yet: no full edit"
    now[0] += live.SETTLE_S
    slider.tick(None)
    runner.busy = False
    assert not slider.tick(None), "nothing is left to send"
    assert sent == [(0.3, "coarse"), (0.6, "coarse"), (0.6, "full")]


def test_release_sends_the_full_edit_at_once(live, monkeypatch):
    slider, runner, now, sent = controller(live, monkeypatch)
    slider.wanted, slider.sent, slider.release_pending = 0.9, 0.9, True
    slider.release(None)
    assert sent == [(0.9, "full")]
