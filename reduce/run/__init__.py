"""`reduce run`: plan the nights, reduce each light group, report what happened.

How a run flows, one module per stage:

- :mod:`.plan`: the recipe (validated only when there is work), the night folders, each night's
  light groups with their matched calibration, the output folders.
- :mod:`.nights`: each night under its lock; groups unchanged since their last reduction skipped
  (:mod:`.state`); groups reduced one at a time or several at once (:mod:`.scheduler`).
- :mod:`.group`: one group, carried by a :class:`~.group.GroupContext` through
  :mod:`.reference` (the reference frame), :mod:`.target` (where the target is), the frames,
  :mod:`.table` (differential light curve, one row per file) and :mod:`.outputs` (files).
- :mod:`.report`: plain dataclasses of the outcome; the exit status.
"""
from __future__ import annotations

from .nights import run_night, run_nights
from .plan import GroupPlan, RecipeSource, find_nights, plan_night
from .report import GroupResult, NightResult, RunReport

__all__ = ["run_nights", "run_night", "reduce_group", "RecipeSource", "plan_night", "find_nights",
           "GroupPlan", "GroupResult", "NightResult", "RunReport"]


def __getattr__(name):
    if name == "reduce_group":  # imports the science (numpy, blocks): only when asked for
        from .group import reduce_group

        return reduce_group
    raise AttributeError(f"module 'reduce.run' has no attribute {name!r}")
