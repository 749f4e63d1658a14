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


def test_tutorial_uses_only_the_public_api():
    """Every name the tutorial imports from reduce comes from the package itself (``from reduce
    import ...``, its ``blocks``): internals such as reduce.run.target may move."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S))
    deep = re.findall(r"^\s*(?:from|import)\s+(reduce\.[\w.]+)", code, flags=re.M)
    assert not deep, f"the tutorial imports internals: {deep}"
    import reduce

    for names in re.findall(r"^\s*from reduce import (.+)$", code, flags=re.M):
        for name in (n.strip() for n in names.split(",")):
            assert name in reduce.__all__ and getattr(reduce, name) is not None, name
