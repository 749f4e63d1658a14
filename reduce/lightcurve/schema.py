"""The light-curve product's schema: its version, table columns and FITS keywords (the README
documents the same lists)."""
from __future__ import annotations

__all__ = ["LIGHTCURVE_SCHEMA", "LIGHTCURVE_COLUMNS", "PRIMARY_KEYWORDS", "ARRAY_AXES"]

#: version of the light-curve product (columns, HDUs, keywords); the README lists the changes
LIGHTCURVE_SCHEMA = 3

# name -> (unit, description); the README documents the same list.
LIGHTCURVE_COLUMNS = {
    "time": ("d", "JD (UTC) at mid-exposure"),
    "bjd_tdb": ("d", "BJD (TDB) at mid-exposure"),
    "flux": ("", "normalised differential flux of the target (chosen aperture)"),
    "flux_err": ("", "1-sigma error of flux (propagated)"),
    "airmass": ("", "airmass at mid-exposure"),
    "fwhm": ("pix", "PSF full width at half maximum (file pixels)"),
    "sky": ("adu / pix", "sky background per pixel at the target"),
    "dx": ("pix", "x shift of the frame relative to the reference (file pixels)"),
    "dy": ("pix", "y shift of the frame relative to the reference (file pixels)"),
    "x": ("pix", "target centroid x (0-based pixels of the file)"),
    "y": ("pix", "target centroid y (0-based pixels of the file)"),
    "flag": ("", "quality bit mask (0 = good; see the README)"),
    "file": ("", "source frame file name (FITS: percent-encoded UTF-8)"),
}

#: primary-header keywords of the product -> comment (values given by the caller; None omitted)
PRIMARY_KEYWORDS = {
    "OBJECT": "target name",
    "TELESCOP": "telescope",
    "INSTRUME": "instrument",
    "FILTER": "filter",
    "DATE-OBS": "UTC start of the first frame (ISO 8601)",
    "EXPTIME": "[s] exposure time (median of the frames)",
    "NFRAMES": "frames in the light curve (rows of LIGHTCURVE)",
    "OBSGEO-B": "[deg] site latitude",
    "OBSGEO-L": "[deg] site longitude (east positive)",
    "OBSGEO-H": "[m] site elevation",
    "RA_OBJ": "[deg] target right ascension (ICRS)",
    "DEC_OBJ": "[deg] target declination (ICRS)",
    "RA_PNT": "[deg] telescope pointing RA (header RA/DEC)",
    "DEC_PNT": "[deg] telescope pointing Dec (header RA/DEC)",
    "BJDCOORD": "BJD_TDB computed for the TARGET or the POINTING",
    "TARGET": "target index in the STARS table",
    "APERTURE": "[pix] chosen aperture radius (measured px)",
    "BAYERPAT": "colour-filter pattern at file pixel 0,0",
    "CFAMODE": "measured on: superpixel (2x2 sum), R, G or B",
    "CFABIN": "file px per measured px (APERTURE, APERTURES)",
    "APINDEX": "chosen aperture (index in APERTURES)",
    "RECIPE": "recipe file name",
    "RECIPVER": "recipe format version",
    "RECIPSHA": "recipe SHA-256 (first 16 hex digits)",
    "CREATOR": "software that wrote this file",
}

ARRAY_AXES = {  # name -> (BUNIT, axis names from NAXIS1 on: numpy's last axis first)
    "FLUXES": ("adu", ("frame (LIGHTCURVE row)", "star (STARS row)", "aperture (APERTURES)")),
    "ERRORS": ("adu", ("frame (LIGHTCURVE row)", "star (STARS row)", "aperture (APERTURES)")),
    "APERTURES": ("pix", ("aperture",)),
    "WEIGHTS": ("", ("star (STARS row)", "aperture (APERTURES)")),
}
