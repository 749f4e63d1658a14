"""``reduce fit``: a transit fit or a time of minimum from a light-curve product."""
from __future__ import annotations

from pathlib import Path

import click

from ..fit.planet import EXAMPLE

_HELP = """Fit a light-curve product (the .fits, .csv or .ecsv that `reduce run` wrote).

\b
A transit:  reduce fit NIGHT/reduced/PRODUCT.fits PLANET.yaml
A minimum:  reduce fit PRODUCT.fits --minimum   (eclipsing binary, pulsating star: no model)

Frames flagged in the product are left out. The transit is batman's quadratic-limb-darkened model
times a baseline chosen by BIC (a polynomial in time, airmass, then FWHM, sky, dx, dy when they
help); errors are scaled to the residuals and inflated by the time-averaging beta for red noise;
posteriors come from emcee. Written beside the product (or into -o): PRODUCT_fit.json (tc, tc_err,
rp_rs, rp_rs_err, depth, duration, a_rs, inc with errors, O-C, the baseline, RMS per frame and per
10 min, beta, BIC, frames used), PRODUCT_fit.png and PRODUCT_fit_aavso.txt (the AAVSO exoplanet
database report). --minimum writes tmin and tmin_err (BJD_TDB, d) by Kwee-van Woerden, with a
polynomial fit and its bootstrap beside it.

\b
A complete planet file (numbers fixed; [value, sigma] fitted under a Gaussian prior):
""" + "\n".join("  " + line for line in EXAMPLE.splitlines())


@click.command("fit", help=_HELP)
@click.argument("product", type=click.Path(dir_okay=False))
@click.argument("planet", required=False, type=click.Path(dir_okay=False))
@click.option("--minimum", is_flag=True, help="The time of minimum (Kwee-van Woerden), no model, no planet file.")
@click.option("-o", "--outdir", type=click.Path(file_okay=False), default=None,
              help="Folder for the fit's files (default: beside the product).")
@click.option("--steps", type=click.IntRange(1000, 10_000_000), default=20000, show_default=True,
              help="Most MCMC steps per walker (it stops earlier once converged).")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed of the sampler.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, only the result lines.")
def fit(product, planet, minimum, outdir, steps, seed, quiet):
    from ..console import is_interactive
    from ..fit import fit_product, minimum_of_product
    from ..model.errors import UsageError

    if not Path(product).is_file():
        raise UsageError(f"{product}: no such file")
    if outdir is not None:
        Path(outdir).mkdir(parents=True, exist_ok=True)
    if minimum:
        if planet is not None:
            raise UsageError("--minimum takes no planet file")
        result, paths = minimum_of_product(product, outdir)
        click.echo(f"Tmin = {result.tmin:.6f} +- {result.tmin_err:.6f} d ({result.tmin_err * 1440:.2f} min), "
                   f"BJD_TDB (Kwee-van Woerden, {result.n_frames} frames); polynomial of degree "
                   f"{result.poly_degree}: {result.poly_tmin:.6f} +- {result.poly_tmin_err * 1440:.2f} min")
    else:
        if planet is None:
            raise UsageError("a transit fit needs a planet file: reduce fit PRODUCT PLANET.yaml "
                             "(see reduce fit --help), or --minimum for a time of minimum")
        result, paths = fit_product(product, planet, outdir, max_steps=steps, seed=seed,
                                    show_progress=not quiet and is_interactive())
        s = result.summary()
        click.echo(f"Tc = {s['tc']:.6f} +- {s['tc_err'] * 1440:.2f} min (BJD_TDB), Rp/Rs = {s['rp_rs']:.4f} "
                   f"+- {s['rp_rs_err']:.4f}, O-C = {s['o_c_min']:+.2f} +- {s['o_c_err_min']:.2f} min "
                   f"(epoch {s['epoch']}); baseline {', '.join(s['baseline'])}; beta {s['beta']:.2f}; "
                   f"{s['n_frames']} frames")
        for w in s["warnings"]:
            click.secho(f"Warning: {w}", fg="yellow", err=True)
    for p in paths:
        click.echo(f"  wrote {p}")
