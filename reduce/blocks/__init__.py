"""Every built-in block, importable as ``reduce.blocks.Name`` (importing registers them)."""
from __future__ import annotations
from . import calibration, detection, psf  # noqa: E402,F401
from .calibration import Calibration, Trim  # noqa: E402,F401
from .detection import PointSourceDetection  # noqa: E402,F401
from .psf import Cutouts, Gaussian2D, MedianEPSF, Moffat2D  # noqa: E402,F401
from .alignment import AlignmentMethods, AlignReferenceSources  # noqa: E402,F401
from .centroids import CentroidCOM, CentroidGaussian2D, CentroidQuadratic  # noqa: E402,F401
from .photometry import AnnulusBackground, AperturePhotometry, GetFluxes  # noqa: E402,F401
