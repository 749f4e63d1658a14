"""Every figure reduce draws, in one place.

- :mod:`.plots`: the figures themselves (matplotlib, imported lazily): the light curve with its
  per-frame diagnostics, the reference frame with the target, comparisons, aperture and annulus.
  ``Fluxes.plot``/``errorbar`` draw through it too.
- :mod:`.helper`: the figure helper process of a run (a one-worker process pool started early,
  importing matplotlib while the frames are measured), and drawing in-process when there is none.
- :mod:`.page`: the group's self-contained HTML page; :mod:`.archive`: ``reduce report``'s index
  over every group product of a folder.
"""
