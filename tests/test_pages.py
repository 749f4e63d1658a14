"""The group page (``<stem>.html``) and the archive index (``reduce report``): their content, parsed
with html.parser, and their rendering in a real headless Chromium (marked ``browser``)."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from astropy.io import fits

from reduce.cli import main
from tests.conftest import stayed_broken

DEFAULT = Path(__file__).resolve().parents[1] / "recipes" / "default.yaml"
OBJECT = '<b>Tom & "Jerry\'s"</b>'           # an OBJECT value that is HTML
ODD = "SIM<&>_0104.fits"                     # a file name that is HTML too (truncated: flagged)
CHROMIUM = Path("/usr/bin/chromium")


def run_cli(*args) -> int:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    return exc.value.code


class Page(HTMLParser):
    """Tags with their attributes, and the text, of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag) -> list[dict]:
        return [a for t, a in self.tags if t == tag]

    @property
    def plain(self) -> str:
        return "".join(self.text)


def _png_size(uri: str) -> tuple[int, int]:
    """(width, height) of a data: URI's PNG (asserting it is one)."""
    head = "data:image/png;base64,"
    assert uri.startswith(head)
    png = base64.b64decode(uri[len(head):], validate=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _external(page: Page) -> list[str]:
    """Every attribute value that points outside the file (a URL with a scheme other than data:)."""
    out = []
    for _tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "action", "poster", "data"):
            value = (attrs.get(key) or "").strip().lower()
            if value.startswith(("http:", "https:", "//", "ftp:", "ws:", "wss:")):
                out.append(value)
    return out


@pytest.fixture(scope="module")
def night_run(tmp_path_factory):
    """(night, outdir, provenance, exit status): a night whose OBJECT and one file name are HTML,
    without GAIN (a warning) and with a truncated frame (flagged)."""
    from reduce.simulations import simulate_night

    base = tmp_path_factory.mktemp("pages")
    night = base / "night"
    simulate_night(night, seed=5, n_images=10, size=140, signal="transit")
    lights = sorted((night / "light").glob("*.fits"))
    for path in lights:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["OBJECT"] = OBJECT
            hdul[0].header.pop("GAIN", None)
    raw = lights[5].read_bytes()
    (night / "light" / ODD).write_bytes(raw[: len(raw) // 2])
    stayed_broken(night / "light" / ODD)  # not a frame still being written: flagged
    out = base / "out"
    code = run_cli("run", DEFAULT, night, "-o", out, "-q", "--jobs", "1")
    prov = json.loads(next(out.glob("*.json")).read_text())
    return night, out, prov, code


def test_the_page_holds_figures_flags_warnings_and_provenance(night_run):
    night, out, prov, code = night_run
    assert code == 3  # the truncated frame is flagged
    pages = list(out.glob("*.html"))
    assert [p.stem for p in pages] == [next(out.glob("*.json")).stem]
    text = pages[0].read_text(encoding="utf-8")
    page = Page(text)
    images = page.find("img")
    assert len(images) == 2  # the light curve with its quality panels, the reference frame
    for img, png in zip(images, (out / f"{pages[0].stem}.png", out / f"{pages[0].stem}_reference.png")):
        assert base64.b64decode(img["src"].split(",", 1)[1]) == png.read_bytes()
        w, h = _png_size(img["src"])
        assert w > 300 and h > 300 and img["alt"]
    plain = page.plain
    # flags by reason, the flagged file by name, the warning
    assert prov["flagged_by_reason"] and prov["warnings"]
    for kind in prov["flagged_by_reason"]:
        assert kind["reason"] in plain
    assert ODD in plain and any(f["file"].endswith(ODD) for f in prov["flagged"])
    for w in prov["warnings"]:
        assert w["code"] in plain and w["message"] in plain
    assert "errors_scaled" in plain
    # the provenance in short: target, reference, aperture, comparisons, calibration, versions
    assert OBJECT in plain and Path(prov["reference"]).name in plain
    assert f"{prov['aperture']['radius_px']:.2f} px" in plain
    assert ", ".join(f"{c} ({w:.3f})" for c, w in zip(prov["comparisons"], prov["weights"])) in plain
    assert f"flats: {len(prov['calibration']['flats'])} frame(s)" in plain
    assert f"numpy {prov['software']['numpy']}" in plain and f"reduce {prov['software']['reduce']}" in plain
    assert f"{1000 * prov['extra']['scatter_p2p']:.2f} ppt" in plain
    assert prov["extra"]["frames"] == 11 and prov["extra"]["observation"]["target"] == OBJECT


def test_the_page_escapes_names_and_needs_nothing_outside_it(night_run):
    _night, out, _prov, _code = night_run
    text = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert OBJECT not in text and ODD not in text  # only escaped
    assert html_escape(OBJECT) in text and html_escape(ODD) in text
    page = Page(text)
    assert not page.find("script") and not page.find("link") and not page.find("iframe")
    assert _external(page) == []
    assert "http://" not in text and "https://" not in text
    csp = [m for m in page.find("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    assert not [m for m in page.find("meta") if m.get("http-equiv") == "refresh"]


def html_escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def test_a_page_can_reload_itself(night_run, tmp_path):
    """The hook a followed night uses: refresh seconds -> <meta http-equiv="refresh">."""
    from reduce.figures.page import write_group_page

    _night, out, prov, _code = night_run
    path = write_group_page(tmp_path / "p.html", prov, [("lc", next(out.glob("*V.png")))], refresh=30)
    meta = [m for m in Page(path.read_text()).find("meta") if m.get("http-equiv") == "refresh"]
    assert meta == [{"http-equiv": "refresh", "content": "30"}]


def test_without_figures_the_page_says_so_and_html_false_writes_none(night_copy, tmp_path):
    from reduce.recipe.fields import OutputsSpec, parse_outputs

    assert OutputsSpec().html is True
    errors = []
    assert parse_outputs({"html": False}, lambda *a: errors.append(a)).html is False and not errors
    parse_outputs({"html": "yes"}, lambda *a: errors.append(a))
    assert errors and "html" in str(errors[0])
    recipe = tmp_path / "noplot.yaml"
    recipe.write_text(DEFAULT.read_text().replace("plot: true", "plot: false"))
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "a", "-q") == 0
    page = Page(next((tmp_path / "a").glob("*.html")).read_text())
    assert not page.find("img") and "No figure" in page.plain and "No frame flagged" in page.plain
    recipe.write_text(DEFAULT.read_text().replace("plot: true", "plot: false, html: false"))
    assert run_cli("run", recipe, night_copy, "-o", tmp_path / "b", "-q") == 0
    assert list((tmp_path / "b").glob("*.json")) and not list((tmp_path / "b").glob("*.html"))


@pytest.fixture(scope="module")
def archive(night_run, tmp_path_factory):
    """An archive of two nights' products (the spoiled night's, and a clean copy of it renamed)."""
    _night, out, prov, _code = night_run
    base = tmp_path_factory.mktemp("archive") / "archive"
    shutil.copytree(out, base / "night1" / "reduced")
    second = base / "night2" / "reduced"
    second.mkdir(parents=True)
    stem = next(out.glob("*.json")).stem
    record = json.loads(json.dumps(prov))
    record["extra"]["observation"].update(date="2024-03-16", target="WASP-12")
    record["flagged"], record["flagged_by_reason"], record["warnings"] = [], [], []
    (second / "other.json").write_text(json.dumps(record))  # no page: the index links the record
    (base / "night2" / "notes.json").write_text('{"not": "a product"}')
    (base / "night1" / "reduced" / f".{stem}.staging.tmp").mkdir()
    shutil.copy(out / f"{stem}.json", base / "night1" / "reduced" / f".{stem}.staging.tmp" / "x.json")
    return base


def test_report_indexes_every_product_with_relative_links(archive, night_run, capsys):
    _night, _out, prov, _code = night_run
    assert run_cli("report", archive) == 0
    assert "2 group(s) over 2 night(s)" in capsys.readouterr().out
    text = (archive / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    rows = [r for r in text.split("<tr>")[2:]]
    assert len(rows) == 2
    links = [a["href"] for a in page.find("a")]
    assert len(links) == 2 and all(not h.startswith(("/", "file:", "http")) for h in links)
    assert [(archive / h).resolve().suffix for h in links] == [".html", ".json"]
    assert all((archive / h).is_file() for h in links)
    plain = page.plain
    assert OBJECT in plain and OBJECT not in text and "WASP-12" in plain
    assert f"{1000 * prov['extra']['scatter_p2p']:.2f} ppt" in plain
    frames, flagged = prov["extra"]["frames"], len(prov["flagged"])
    assert f"{flagged} flagged" in plain and f"{len(prov['warnings'])} warning(s)" in plain
    assert f"<td class=\"num\">{frames}</td><td class=\"num\">{frames - flagged}</td>" in text
    assert plain.index("2024-03-15") < plain.index("2024-03-16")  # by night
    assert _external(page) == [] and not page.find("script")


def test_report_reads_scatter_from_the_table_of_older_products(archive, night_run):
    """A record without ``scatter_p2p`` (written before it was recorded): measured from the CSV."""
    from reduce.figures.archive import find_products

    _night, _out, prov, _code = night_run
    product = next(p for p in find_products(archive) if p.path.parent.parent.name == "night1")
    del product.record["extra"]["scatter_p2p"]
    assert product.scatter() == pytest.approx(prov["extra"]["scatter_p2p"], rel=1e-9)


def test_report_on_a_missing_or_empty_folder_says_so(tmp_path, capfd):
    assert run_cli("report", tmp_path / "nowhere") == 2
    assert "no such folder" in capfd.readouterr().err
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "x.json").write_text("[1, 2]")
    assert run_cli("report", tmp_path / "empty") == 1
    err = capfd.readouterr().err
    assert "no group product found" in err and "Traceback" not in err
    assert not (tmp_path / "empty" / "index.html").exists()


# -- in a real browser ----------------------------------------------------------------------------

_PROBE = ("addEventListener('load',function(){var im=[].map.call(document.images,function(i){"
          "return i.complete?i.naturalWidth:-1});document.body.setAttribute('data-probe',"
          "JSON.stringify(im))});")


def _chromium() -> str:
    """/usr/bin/chromium; missing: skipped, except under CI (.ci/run installs it) where it fails."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing under CI: .ci/run installs Debian's chromium")
    pytest.skip(f"the browser tests need {CHROMIUM} (apt-get install chromium)")


def _browse(page: Path, tmp: Path, *options) -> tuple[str, str]:
    """(stdout, stderr) of headless Chromium on ``page`` with ``options`` (no network, no profile)."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--window-size=1200,2000", *options, page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def _console(stderr: str) -> list[str]:
    """Console messages of the page (errors, CSP violations, failed loads)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _rendered(page: Path, tmp: Path) -> list[int]:
    """The page renders (a screenshot that is not blank) without a console message, and every
    image of it is decoded in the browser; the images' widths."""
    from matplotlib.image import imread

    shot = tmp / "shot.png"
    _stdout, stderr = _browse(page, tmp, f"--screenshot={shot}")
    assert _console(stderr) == []
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert (pixels.min(axis=2) < 0.5).sum() > 500  # text (and figures) drawn: not a blank page
    widths = _probe(page, tmp)
    assert len(widths) == len(Page(page.read_text(encoding="utf-8")).find("img")) and all(w > 0 for w in widths)
    return widths


def _probe(page: Path, tmp: Path) -> list[int]:
    """naturalWidth of every image of the page once loaded in Chromium (0: not decoded), read by a
    probe script that the page's own CSP allows through its hash; no console message meanwhile."""
    text = page.read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(_PROBE.encode()).digest()).decode()
    probed = tmp / page.name
    probed.write_text(text.replace("style-src 'unsafe-inline'",
                                   f"style-src 'unsafe-inline'; script-src 'sha256-{digest}'", 1)
                      .replace("</head>", f"<script>{_PROBE}</script></head>", 1), encoding="utf-8")
    dom, stderr = _browse(probed, tmp, "--dump-dom")
    assert _console(stderr) == []
    return json.loads(Page(dom).find("body")[0]["data-probe"])


@pytest.mark.browser
def test_the_page_renders_in_chromium_with_its_images(night_run, tmp_path):
    _night, out, _prov, _code = night_run
    widths = _rendered(next(out.glob("*.html")), tmp_path)
    assert len(widths) == 2 and min(widths) > 300


@pytest.mark.browser
def test_the_archive_index_renders_in_chromium(archive, tmp_path):
    assert run_cli("report", archive, "-q") == 0
    assert _rendered(archive / "index.html", tmp_path) == []


@pytest.mark.browser
def test_the_probe_sees_a_broken_image(tmp_path):
    """The browser check can fail: an image that does not decode is seen (naturalWidth 0)."""
    from reduce.figures.page import group_page

    bad = tmp_path / "bad.html"
    bad.write_text(group_page({"extra": {"group": "g"}}, [("broken", b"\x89PNG\r\n\x1a\nnot a png")]))
    assert _probe(bad, tmp_path) == [0]


def test_without_chromium_the_browser_tests_skip_but_fail_under_ci(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI"):
        _chromium()
