"""The console's templates and static assets ship inside the wheel and are served from the installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import cynode.web.render as render
assets = render.load_assets()
page = render.Pages(assets).render("error.html", 404, viewer=None, navigation=[], title="Gone", detail="<b>x</b>")
html = page.content
print(render.__file__)
print(sorted(assets))
print("&lt;b&gt;x&lt;/b&gt;" in html and assets["console.js"].url in html)
"""


def test_the_installed_wheel_renders_pages_from_its_own_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("cynode-*.whl"))
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(target)  # a pure-Python wheel installs by unpacking; nothing else is needed here
    assert {"cynode/web/static/console.js", "cynode/web/static/console.css", "cynode/web/templates/base.html"} <= names
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, assets, rendered = probe.stdout.splitlines()
    assert module_file.startswith(str(target))
    assert assets == "['console.css', 'console.js']"
    assert rendered == "True"
