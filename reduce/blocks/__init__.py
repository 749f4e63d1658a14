"""Every built-in block, importable as ``reduce.blocks.Name`` (importing registers them).

``registry()`` is every registered block class by name, the built-ins included: what recipes,
``reduce validate`` and ``reduce blocks`` read."""
from __future__ import annotations

from ..core.block import registry  # noqa: F401  (the built-ins below are registered by then)
from .calibration import Calibration  # noqa: E402,F401
from .trim import Trim  # noqa: E402,F401
from .bayer import BayerBin, CFAPhaseCorrection  # noqa: E402,F401
from .detection import PointSourceDetection  # noqa: E402,F401
from .psf import Cutouts, Gaussian2D, MedianEPSF, Moffat2D  # noqa: E402,F401
from .alignment import AlignmentMethods, AlignReferenceSources  # noqa: E402,F401
from .cosmics import CosmicRays  # noqa: E402,F401
from .centroids import CentroidCOM, CentroidGaussian2D, CentroidQuadratic  # noqa: E402,F401
from .photometry import AnnulusBackground, AperturePhotometry, GetFluxes  # noqa: E402,F401
