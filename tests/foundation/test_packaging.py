"""The wheel carries everything `cynode` needs at run time, migrations included."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_migrates_from_its_own_sql(tmp_path: Path, empty_dsn: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("cynode-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "cynode/sql/0001_foundation.sql" in names
    assert all(not name.startswith(("tests/", "features/")) for name in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # The installed copy comes first on the path, so neither the source tree nor its sql/ is used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = "import cynode, cynode.db.migrations as m; print(cynode.__file__); print(m.migrations_dir())"
    located = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    module_file, sql_dir = located.stdout.split()
    assert module_file.startswith(str(target))
    assert sql_dir == str(target / "cynode" / "sql")

    migrate = subprocess.run(
        [sys.executable, "-m", "cynode.cli", "migrate", "--database-url", empty_dsn, "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (
            len(list((ROOT / "sql").glob("*.sql"))),
        )
