"""docs/tutorial.md never goes stale: its Python blocks are executed in order in a scratch folder."""
from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def test_tutorial_code_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "residual rms" in out
    rms = float(re.search(r"residual rms ([0-9.]+)", out).group(1))
    assert rms < 0.005, "the tutorial's light curve does not follow the injected transit"
    for name in ("reference.png", "lightcurve.png", "lightcurve.csv", "lightcurve.fits"):
        assert (tmp_path / name).stat().st_size > 1000, name
