"""``cynode doctor`` and ``cynode sandbox ...`` on this host: real podman, real PostgreSQL binaries."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cynode.ops.doctor import INSTALL_PODMAN
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE
from tests.fixtures.cli import Cli
from tests.fixtures.stack import free_port


def free_port_options(data_dir: Path) -> list[str]:
    return [
        "--data-dir", str(data_dir),
        "--set", f"gateway.port={free_port()}",
        "--set", f"control_plane.port={free_port()}",
        "--set", f"worker_api.port={free_port()}",
    ]  # fmt: skip


def test_doctor_is_all_green_on_the_set_up_host(cli: Cli, data_dir: Path) -> None:
    result = cli("doctor", "--json", *free_port_options(data_dir / "state"))
    report = json.loads(result.stdout)
    assert [check for check in report["checks"] if not check["ok"]] == []
    assert result.exit_code == 0
    names = {check["name"] for check in report["checks"]}
    assert {"podman", "container runtime", "ulimits", "podman service", "sandbox image", "inference",
            "postgresql", "data dir", "clock", "port gateway"} <= names  # fmt: skip


def test_doctor_without_podman_names_it_and_how_to_install_it(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with python but no podman
    bare.mkdir()
    (bare / "python3").symlink_to(sys.executable)
    result = cli("doctor", *free_port_options(data_dir / "state"), env={"PATH": str(bare)})
    assert result.exit_code == 1
    assert "FAIL podman: podman is not on PATH" in result.stdout
    assert f"fix: {INSTALL_PODMAN}" in result.stdout


def test_doctor_names_a_taken_port_and_a_private_data_dir(cli: Cli, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = cli("doctor", "--json", "--data-dir", str(private / "data"), "--set", f"gateway.port={port}")
    assert result.exit_code == 1
    failures = {check["name"]: check for check in json.loads(result.stdout)["checks"] if not check["ok"]}
    assert "gateway.port=" in failures["port gateway"]["fix"]
    if os.geteuid() == 0:  # only root hands the embedded database to another user
        assert "chmod o+x" in failures["data dir"]["fix"]


def test_sandbox_images_lists_the_default_image(cli: Cli) -> None:
    result = cli("sandbox", "images", "--json")
    assert result.exit_code == 0, result.output
    assert any(DEFAULT_SANDBOX_IMAGE in image["names"] for image in json.loads(result.stdout)["images"])
    assert DEFAULT_SANDBOX_IMAGE in cli("sandbox", "images").stdout


def test_build_image_keeps_an_existing_image(cli: Cli) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cynode.cli", "sandbox", "build-image", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "already exists" in result.stderr
    assert json.loads(result.stdout) == {"image": DEFAULT_SANDBOX_IMAGE, "built": True}


@pytest.fixture
def throwaway_image_archive(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A one-file image saved to an archive and removed from podman again (it is this test's own)."""
    reference = f"localhost/cynode-import-test:{uuid.uuid4().hex[:8]}"
    rootfs = tmp_path / "rootfs.tar"
    marker = tmp_path / "marker"
    marker.write_text("imported\n")
    with tarfile.open(rootfs, "w") as tar:
        tar.add(marker, arcname="marker")
    podman = shutil.which("podman")
    assert podman, "podman is required (apt-get install -y podman runc)"
    subprocess.run([podman, "import", "--quiet", str(rootfs), reference], check=True, capture_output=True)
    archive = tmp_path / "image.tar"
    subprocess.run([podman, "save", "--quiet", "-o", str(archive), reference], check=True, capture_output=True)
    subprocess.run([podman, "rmi", reference], check=True, capture_output=True)
    yield reference, archive
    subprocess.run([podman, "rmi", "--ignore", reference], check=False, capture_output=True)


def test_import_loads_an_offline_archive(cli: Cli, throwaway_image_archive: tuple[str, Path], tmp_path: Path) -> None:
    reference, archive = throwaway_image_archive
    result = cli("sandbox", "import", str(archive), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loaded"] == [f"{reference}"]
    exists = subprocess.run(["podman", "image", "exists", reference], check=False)
    assert exists.returncode == 0

    garbage = tmp_path / "not-an-image.tar"
    garbage.write_bytes(b"nope")
    refused = cli("sandbox", "import", str(garbage))
    assert refused.exit_code == 6
    assert "podman save" in refused.stderr
