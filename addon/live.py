"""The live strength slider: dragging it re-edits the active head as you drag.

Each change of the slider asks for the head's last edit at the new strength on a coarse grid
(LIVE_GRID^3, LIVE_TEXTURE^2 texture, no preview pictures, no undo step); a change that comes while
one is running waits and only the latest value is sent. When the slider has rested for SETTLE_S
(Blender tells a property nothing about the mouse button; a slider at rest is a released one) the
full edit runs at the panel's grid and texture, with its previews, as one undo step. The slider is a
window-manager property, so moving it adds no undo steps of its own.
"""

from __future__ import annotations

import time

import bpy

from . import importer
from .properties import RUNNER

LIVE_GRID = 64
LIVE_TEXTURE = 512
SETTLE_S = 0.35
TICK_S = 0.05


class LiveStrength:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.wanted: float | None = None
        self.sent: float | None = None
        self.changed_at = 0.0
        self.release_pending = False
        self.error = ""
        self.head_key: str | None = None
        """The head the drag began on: a drag never moves over to another head made active meanwhile."""
        self.timer_callback = self._timer  # one bound method: bpy.app.timers knows callbacks by identity

    def changed(self, context, value: float) -> None:
        """The slider moved (its update callback, main thread)."""
        if not self.release_pending:  # a new drag: it edits the head that is active now
            self.head_key, self.sent = _active_head_key(context), None
        self.wanted, self.changed_at, self.release_pending = round(float(value), 4), self.clock(), True
        self.tick(context)
        if not bpy.app.background and not bpy.app.timers.is_registered(self.timer_callback):
            bpy.app.timers.register(self.timer_callback, first_interval=TICK_S)

    def release(self, context) -> None:
        """The full edit at the slider's value now (the rest timer's end; scripts and tests)."""
        self.changed_at = -float("inf")
        self.tick(context)

    def tick(self, context) -> bool:
        """Send what is due; True while something is still to come."""
        if RUNNER.busy:
            return True
        if self.wanted is not None and self.wanted != self.sent:
            self.sent = self.wanted
            return self._edit(context, self.wanted, final=False)
        if self.release_pending and self.clock() - self.changed_at >= SETTLE_S:
            self.release_pending = False
            return self._edit(context, self.wanted, final=True)
        return self.release_pending

    def _timer(self) -> float | None:
        return TICK_S if self.tick(bpy.context) else None

    def _edit(self, context, strength: float, final: bool) -> bool:
        from .operators import current_head, start_edit

        obj = context.active_object
        if obj is None or _active_head_key(context) != self.head_key or not importer.stack_or_none(obj):
            self.wanted = self.sent = None  # the head went away or another became active: stop here
            self.release_pending = False
            return False
        try:
            head, stack = current_head(context)
        except Exception as error:  # noqa: BLE001 (a damaged stack on the object: say so, stop)
            self.error, self.release_pending = str(error), False
            return False
        steps = stack[:-1] + [{**stack[-1], "strength": strength}]
        label = f"Strength {strength:g} on {head.key}"
        try:
            if final:
                start_edit(context, head, steps, label)
            else:
                start_edit(
                    context,
                    head,
                    steps,
                    label,
                    grid=LIVE_GRID,
                    texture_size=LIVE_TEXTURE,
                    previews=False,
                    undo=False,
                    then=lambda: self.tick(bpy.context),
                )
        except Exception as error:  # noqa: BLE001 (the panel shows the sentence; the slider stops)
            self.error, self.release_pending = str(error), False
            return False
        return True


def _active_head_key(context) -> str | None:
    obj = getattr(context, "active_object", None)
    return obj.get(importer.HEAD_KEY) if obj is not None else None


LIVE = LiveStrength()


def on_slider(window_manager, context) -> None:
    LIVE.changed(context, window_manager.text_edit_live_strength)
