"""The node's own podman API service: generated config, start, stop and failure reasons."""

from __future__ import annotations

import resource
import shutil
import tomllib
from pathlib import Path

import pytest

from cynode.sandbox import PodmanService, PodmanUnavailableError
from cynode.sandbox.podman_service import containers_conf, ping


def test_the_generated_config_suits_this_host() -> None:
    conf = tomllib.loads(containers_conf())
    engine = conf["engine"]
    # runc wherever it is installed (crun cannot run on a cgroup v1 hierarchy); else crun must be there.
    assert engine["runtime"] == ("runc" if shutil.which("runc") else "crun")
    assert shutil.which(engine["runtime"]), f"the chosen runtime {engine['runtime']} is not installed"
    # systemd manages cgroups only where it is init; elsewhere podman writes cgroupfs itself.
    assert engine["cgroup_manager"] == ("systemd" if Path("/run/systemd/system").is_dir() else "cgroupfs")
    assert conf["containers"]["log_driver"] == "k8s-file"
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1024 if hard_nofile == resource.RLIM_INFINITY else min(1024, hard_nofile)
    assert f"nofile={nofile}:{nofile}" in conf["containers"]["default_ulimits"]


def test_a_managed_service_starts_answers_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYNODE_SECRET_KEY", "node-secret-for-test")
    service = PodmanService(tmp_path)
    service.start()
    try:
        assert service.managed
        assert service.socket_path.is_socket()
        assert service.problem() is None
        assert service.config_path.read_text() == containers_conf()
        environ = Path(f"/proc/{service.pid}/environ").read_bytes()
        assert b"node-secret-for-test" not in environ
        assert f"CONTAINERS_CONF={service.config_path}".encode() in environ
    finally:
        service.stop()
    assert not service.socket_path.exists()
    assert not ping(service.url, timeout=1)
    assert "does not answer" in (service.problem() or "")


def test_a_configured_socket_is_used_as_is(podman_service: PodmanService, tmp_path: Path) -> None:
    external = PodmanService(tmp_path, socket_url=podman_service.url)
    external.start()
    assert not external.managed
    assert external.url == podman_service.url
    assert external.problem() is None
    external.stop()
    assert ping(podman_service.url)


def test_a_dead_configured_socket_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PodmanUnavailableError, match="does not answer"):
        PodmanService(tmp_path, socket_url=f"unix://{tmp_path}/nothing.sock").start()


def test_a_missing_podman_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(PodmanUnavailableError, match="apt-get install"):
        PodmanService(tmp_path, podman="no-such-podman-binary").start()
