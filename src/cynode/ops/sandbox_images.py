"""``cynode sandbox build-image|import|images``: the sandbox image on a host without a registry.

``build-image`` runs the project's image recipe (``build-sandbox-image.sh``: a Debian minbase
rootfs from debootstrap, imported with podman), shipped inside the package. ``import`` loads an
image archive made elsewhere with ``podman save`` (air-gapped nodes). ``images`` lists the sandbox
images podman holds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Final

import click

from cynode.client.commands import echo_json, json_option
from cynode.client.exit_codes import ExitCode, fail
from cynode.ops.doctor import INSTALL_PODMAN
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE

SANDBOX_LABEL: Final = "io.cynodeai.sandbox.purpose"
BUILD_SCRIPT: Final = "build-sandbox-image.sh"


def build_script() -> Path:
    """The recipe inside an installed wheel, else ``scripts/`` of a source checkout."""
    packaged = Path(str(resources.files("cynode"))) / "scripts" / BUILD_SCRIPT
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "scripts" / BUILD_SCRIPT


def podman() -> str:
    binary = shutil.which("podman")
    if binary is None:
        fail(f"podman is not on PATH; {INSTALL_PODMAN}", ExitCode.FAILURE)
    return binary


@click.group()
def sandbox() -> None:
    """Build, import and list sandbox images (no registry needed)."""


@sandbox.command("build-image")
@click.option("--image", default=DEFAULT_SANDBOX_IMAGE, show_default=True, help="Image reference to build.")
@click.option("--force", is_flag=True, help="Rebuild even if the image exists.")
@json_option
def build_image(image: str, force: bool, as_json: bool) -> None:
    """Build the default sandbox image locally with debootstrap and podman (needs root or sudo).

    Progress goes to stderr; with --json stdout carries only the outcome.
    """
    podman()
    script = build_script()
    if shutil.which("bash") is None or not script.is_file():
        fail(f"the image recipe {script} or bash is missing", ExitCode.FAILURE)
    argv = ["bash", str(script), "--image", image, *(["--force"] if force else [])]
    # The recipe logs to stderr; its stdout joins stderr so --json output stays clean.
    code = subprocess.run(argv, stdout=sys.stderr, check=False).returncode
    if as_json:
        echo_json({"image": image, "built": code == 0})
    raise SystemExit(code)


@sandbox.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def import_image(archive: Path, as_json: bool) -> None:
    """Load ARCHIVE (made with `podman save -o ARCHIVE IMAGE` on a connected host) into podman."""
    loaded = subprocess.run([podman(), "load", "--input", str(archive)], capture_output=True, text=True, check=False)
    if loaded.returncode != 0:
        detail = (loaded.stderr or loaded.stdout).strip().splitlines()[-1:] or ["podman load failed"]
        fail(f"{archive} is not an image archive podman can load: {detail[0]} (make one with `podman save -o "
             f"{archive.name} {DEFAULT_SANDBOX_IMAGE}`)", ExitCode.INVALID)  # fmt: skip
    names = [line.split(":", 1)[1].strip() for line in loaded.stdout.splitlines() if line.startswith("Loaded image")]
    if as_json:
        echo_json({"loaded": names})
    else:
        for name in names:
            click.echo(f"loaded {name}")


def sandbox_images() -> list[dict[str, Any]]:
    listed = subprocess.run([podman(), "images", "--format", "json"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        fail(f"podman images failed: {listed.stderr.strip()}", ExitCode.FAILURE)
    images = []
    for entry in json.loads(listed.stdout or "[]"):
        names = entry.get("Names") or []
        labels = entry.get("Labels") or {}
        if SANDBOX_LABEL in labels or DEFAULT_SANDBOX_IMAGE in names:
            images.append({"names": names, "id": str(entry.get("Id", ""))[:12], "size": entry.get("Size"),
                           "created": entry.get("CreatedAt")})  # fmt: skip
    return images


@sandbox.command("images")
@json_option
def list_images(as_json: bool) -> None:
    """List the sandbox images podman holds (the default image and any labelled io.cynodeai.sandbox.*)."""
    images = sandbox_images()
    if as_json:
        echo_json({"images": images})
        return
    for image in images:
        size_mb = (image["size"] or 0) / 1e6
        click.echo(f"{image['id']}  {size_mb:7.1f} MB  {', '.join(image['names']) or '<untagged>'}")
