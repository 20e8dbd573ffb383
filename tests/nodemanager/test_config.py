"""The node startup YAML: upstream keys, defaults, the PSK's sources, and errors that name the key."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cynode.contracts.nodes import GpuDevice, GpuInfo, InferenceInfo
from cynode.nodemanager.capabilities import build_report, detect_host
from cynode.nodemanager.config import NodeConfig, NodeConfigError, PskSource, load_node_config
from cynode.settings import Settings, load_settings
from cynode.tls import LabCertificates
from tests.fixtures.nodemanager import write_yaml

# As the node runs it: ``sandbox.rootless`` must state what this node's podman is (rootful as root).
ROOTLESS = "false" if os.geteuid() == 0 else "true"
PIN = "AB:" * 31 + "CD"

UPSTREAM_EXAMPLE = """
version: 1
orchestrator:
  url: "https://orchestrator.example:12082"
  registration_psk_env: CYNODE_NODE_REGISTRATION_PSK
  tls: {ca_bundle_path: CA_FILE, pinned_sha256: "PIN"}
  timeouts: {connect_seconds: 5, request_seconds: 30}
node:
  id: "worker-01"
  name: "Local worker 01"
  labels: ["trusted", "region_local"]
worker_api:
  listen_host: "0.0.0.0"
  listen_port: 12090
  public_base_url: "http://worker-01.example:12090"
  max_request_bytes: 1048576
sandbox:
  mode: allow
  runtime: podman
  rootless: ROOTLESS
  max_concurrency: 3
  default_network_policy: restricted
  resources: {max_cpu_cores: 2, max_memory_mb: 1024, max_pids: 256}
  timeouts: {default_seconds: 600, max_seconds: 1200}
  mounts: {allowed_host_paths: [], read_only_by_default: true}
  security: {allow_privileged: false, allow_host_network: false, allow_device_mounts: false}
inference:
  mode: disabled
  allow_gpu: false
storage:
  state_dir: /var/lib/cynode/state
logging: {level: info, format: json}
updates: {enable_dynamic_config: false}
"""


def settings_for(tmp_path: Path, node_yaml: Path | None = None) -> Settings:
    overrides: dict[str, Any] = {"data_dir": str(tmp_path / "data")}
    if node_yaml is not None:
        overrides["node_config"] = str(node_yaml)
    return load_settings(env={}, overrides=overrides)


def load_text(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> NodeConfig:
    path = tmp_path / "node.yaml"
    path.write_text(text)
    return load_node_config(settings_for(tmp_path, path), env or {})


def upstream_example(ca_file: Path) -> str:
    return UPSTREAM_EXAMPLE.replace("CA_FILE", str(ca_file)).replace("ROOTLESS", ROOTLESS).replace("PIN", PIN)


def test_upstream_example_loads_with_every_key_in_place(tmp_path: Path, lab_certificates: LabCertificates) -> None:
    node = load_text(tmp_path, upstream_example(lab_certificates.ca_cert))

    assert node.slug == "worker-01"
    assert node.name == "Local worker 01"
    assert node.labels == ("trusted", "region_local")
    assert node.orchestrator_url == "https://orchestrator.example:12082"
    assert node.psk_source == PskSource(env_variable="CYNODE_NODE_REGISTRATION_PSK")
    assert (node.connect_timeout_seconds, node.request_timeout_seconds) == (5, 30)
    assert node.ca_bundle == lab_certificates.ca_cert
    assert node.pinned_sha256 == PIN.replace(":", "").lower()
    assert node.allow_gpu is False
    assert (node.worker_api_host, node.worker_api_port) == ("0.0.0.0", 12090)
    assert node.worker_api_public_url == "http://worker-01.example:12090"
    assert node.worker_api_max_request_bytes == 1048576
    assert node.sandbox.max_concurrency == 3
    assert node.sandbox.default_network_policy == "restricted"
    assert node.sandbox.resources.max_memory_mb == 1024
    assert node.sandbox.timeouts.max_seconds == 1200
    assert node.sandbox.mount_root == Path("/var/lib/cynode/state/sandbox_mounts")
    assert node.inference.mode == "disabled"
    assert node.state_dir == Path("/var/lib/cynode/state")


def test_without_yaml_the_laptop_defaults_apply(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    node = load_node_config(settings, {})

    assert node.slug == socket.gethostname()
    assert node.orchestrator_url == settings.control_plane_public_url
    assert node.psk_source == PskSource()
    assert node.state_dir == settings.data_dir / "node"
    assert node.sandbox.mount_root == settings.data_dir / "node" / "sandbox_mounts"
    assert (node.worker_api_host, node.worker_api_port) == (settings.worker_api.host, settings.worker_api.port)
    assert node.worker_api_public_url is None


def test_mount_root_env_override_beats_the_yaml(tmp_path: Path) -> None:
    node = load_text(tmp_path, "version: 1\nsandbox: {mount_root: /srv/a}\n", {"CYNODE_SANDBOX_MOUNT_ROOT": "/srv/b"})
    assert node.sandbox.mount_root == Path("/srv/b")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("version: 2\n", "version"),
        ("orchestrator: {url: 'http://a:1'}\n", "version"),
        ("version: 1\norchestrator: {url: 'http://a:1', proxy: x}\n", "orchestrator.proxy"),
        ("version: 1\norchestrator: {url: '<http://localhost:12080>'}\n", "orchestrator.url"),
        ("version: 1\norchestrator: {timeouts: {connect_seconds: -1}}\n", "orchestrator.timeouts.connect_seconds"),
        ("version: 1\nnode: {name: no id}\n", "node.id"),
        ("version: 1\nnode: {id: ''}\n", "node.id"),
        ("version: 1\nworker_api: {listen_port: http}\n", "worker_api.listen_port"),
        ("version: 1\nworker_api: {public_base_url: 'worker:12090'}\n", "worker_api.public_base_url"),
        ("version: 1\nsandbox: {max_concurrency: 0}\n", "sandbox.max_concurrency"),
        ("version: 1\nsandbox: {mode: sometimes}\n", "sandbox.mode"),
        ("version: 1\nsandbox: {mount_root: relative/path}\n", "sandbox"),
        ("version: 1\ninference: {mode: maybe}\n", "inference.mode"),
        ("version: 1\nstorage: {state_dir: 7}\n", "storage.state_dir"),
        ("version: 1\nsecrets: {psk: x}\n", "secrets"),
    ],
)
def test_bad_yaml_fails_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(NodeConfigError) as error:
        load_text(tmp_path, text)
    assert f"invalid {key}:" in str(error.value)


@pytest.mark.parametrize("key", ["psk", "registration_psk"])
def test_a_psk_in_the_yaml_is_refused_without_echoing_it(tmp_path: Path, key: str) -> None:
    with pytest.raises(NodeConfigError) as error:
        load_text(tmp_path, f"version: 1\norchestrator: {{{key}: hunter2-secret}}\n")
    assert f"orchestrator.{key}" in str(error.value)
    assert "hunter2-secret" not in str(error.value)


def test_unreadable_or_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(NodeConfigError, match="cannot read node config"):
        load_node_config(settings_for(tmp_path, tmp_path / "missing.yaml"), {})
    with pytest.raises(NodeConfigError, match="not valid YAML"):
        load_text(tmp_path, "version: [1\n")
    with pytest.raises(NodeConfigError, match="mapping at the top level"):
        load_text(tmp_path, "- 1\n")


def test_psk_sources_in_order_and_errors_name_the_source(tmp_path: Path) -> None:
    psk_file = tmp_path / "psk"
    psk_file.write_text("from-file\n")
    data_dir = tmp_path / "data"
    assert PskSource(file=psk_file).read({}, data_dir, co_located=False) == "from-file"
    assert PskSource(env_variable="MY_PSK").read({"MY_PSK": "from-env"}, data_dir, co_located=False) == "from-env"
    assert PskSource().read({"CYNODE_NODE_REGISTRATION_PSK": "std"}, data_dir, co_located=False) == "std"
    std_file = tmp_path / "std-file"
    std_file.write_text("std-file-value")
    env = {"CYNODE_NODE_REGISTRATION_PSK_FILE": str(std_file)}
    assert PskSource().read(env, data_dir, co_located=False) == "std-file-value"

    generated = PskSource().read({}, data_dir, co_located=True)
    assert generated == PskSource().read({}, data_dir, co_located=True), "a co-located PSK is kept"

    with pytest.raises(NodeConfigError, match="CYNODE_NODE_REGISTRATION_PSK"):
        PskSource().read({}, data_dir, co_located=False)
    with pytest.raises(NodeConfigError, match="environment variable MY_PSK"):
        PskSource(env_variable="MY_PSK").read({}, data_dir, co_located=True)
    with pytest.raises(NodeConfigError, match="registration_psk_file"):
        PskSource(file=tmp_path / "absent").read({}, data_dir, co_located=False)


def test_both_psk_keys_at_once_are_refused(tmp_path: Path) -> None:
    text = "version: 1\norchestrator: {registration_psk_env: A, registration_psk_file: /run/psk}\n"
    with pytest.raises(NodeConfigError, match="registration_psk"):
        load_text(tmp_path, text)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"worker_api": {"listen_port": "twelve"}}, "worker_api.listen_port"),
        ({"sandbox": {"security": {"allow_privileged": True}}}, "sandbox.security.allow_privileged"),
    ],
)
def test_serve_with_a_bad_node_yaml_exits_naming_the_key(tmp_path: Path, section: dict[str, Any], key: str) -> None:
    path = write_yaml(tmp_path / "node.yaml", {"version": 1, **section})
    result = subprocess.run(
        [sys.executable, "-m", "cynode.cli", "serve", "--role=node", "--data-dir", str(tmp_path / "data"),
         "--node-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert key in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("node: {id: n1, metadata: {rack: a1}}", "node.metadata", "not reported"),
        ("sandbox: {runtime: docker}", "sandbox.runtime", "podman only"),
        (f"sandbox: {{rootless: {'true' if os.geteuid() == 0 else 'false'}}}", "sandbox.rootless", "run the node"),
        ("sandbox: {rootless: false, podman_socket: 'unix:///run/p.sock'}", "sandbox.rootless", "external podman"),
        ("sandbox: {security: {allow_privileged: true}}", "sandbox.security.allow_privileged", "only false"),
        ("sandbox: {security: {allow_host_network: true}}", "sandbox.security.allow_host_network", "only false"),
        ("sandbox: {security: {allow_device_mounts: true}}", "sandbox.security.allow_device_mounts", "only false"),
        ("sandbox: {security: {allow_everything: false}}", "sandbox.security.allow_everything", "unknown key"),
        ("sandbox: {mounts: {allowed_host_paths: [/srv]}}", "sandbox.mounts.allowed_host_paths", "only []"),
        ("sandbox: {allowed_egress_domains: [pypi.org]}", "sandbox.allowed_egress_domains", "no egress proxy"),
        ("sandbox: {max_concurency: 2}", "sandbox.max_concurency", "unknown key"),
        ("sandbox: {resources: {max_gpus: 1}}", "sandbox.resources.max_gpus", "unknown key"),
        ("inference: {max_concurrency: 2}", "inference.max_concurrency", "not supported"),
        ("inference: {allow_gpu: maybe}", "inference.allow_gpu", "Expected `bool`"),
        ("inference: {backnd: embedded}", "inference.backnd", "unknown key"),
        ("storage: {cache_dir: /var/cache/cynode}", "storage.cache_dir", "not used"),
        ("storage: {artifacts_dir: /srv/artifacts}", "storage.artifacts_dir", "not used"),
        ("logging: {level: debug}", "logging.level", "--log-level"),
        ("logging: {format: text}", "logging.format", "only json"),
        ("logging: {file_path: /var/log/cynode.log}", "logging.file_path", "stderr"),
        ("logging: {colour: true}", "logging.colour", "unknown key"),
        ("updates: {enable_dynamic_config: true}", "updates.enable_dynamic_config", "only false"),
        ("updates: {poll_interval_seconds: 30}", "updates.poll_interval_seconds", "does not poll"),
        ("updates: {allow_service_restart: true}", "updates.allow_service_restart", "only false"),
        ("orchestrator: {url: 'http://a:1', tls: {pinned_sha256: 'ab'}}", "orchestrator.tls", "https://"),
        ("orchestrator: {url: 'https://a:1', tls: {pinned_sha256: 'ab'}}", "orchestrator.tls.pinned_sha256", "64 hex"),
        ("orchestrator: {url: 'https://a:1', tls: {ca_bundle_path: /nonexistent/ca.pem}}",
         "orchestrator.tls.ca_bundle_path", "cannot load CA file"),
    ],
)  # fmt: skip
def test_a_value_the_node_cannot_honour_stops_start_up_naming_the_key(
    tmp_path: Path, text: str, key: str, says: str
) -> None:
    with pytest.raises(NodeConfigError) as error:
        load_text(tmp_path, f"version: 1\n{text}\n")
    assert f"invalid {key}:" in str(error.value)
    assert says in str(error.value)


def test_values_the_node_does_apply_are_accepted(tmp_path: Path) -> None:
    text = """
version: 1
sandbox:
  runtime: podman
  security: {allow_privileged: false, allow_host_network: false, allow_device_mounts: false}
  mounts: {allowed_host_paths: [], read_only_by_default: false}
  allowed_egress_domains: []
inference: {allow_gpu: true}
logging: {level: INFO, format: json}
updates: {enable_dynamic_config: false, allow_service_restart: false}
"""
    node = load_text(tmp_path, text)
    assert node.allow_gpu is True


@pytest.mark.parametrize(("allow_gpu", "reported"), [(True, True), (False, False)])
def test_inference_allow_gpu_decides_whether_the_gpu_is_offered(
    tmp_path: Path, allow_gpu: bool, reported: bool
) -> None:
    node = load_text(tmp_path, f"version: 1\ninference: {{allow_gpu: {str(allow_gpu).lower()}}}\n")
    gpu = GpuInfo(present=True, devices=[GpuDevice(vendor="NVIDIA", vram_mb=24564)], total_vram_mb=24564)
    host = dataclasses.replace(detect_host(tmp_path), gpu=gpu)

    report = build_report(node, host, InferenceInfo(supported=False), "http://127.0.0.1:12090")

    assert report.gpu is not None
    assert report.gpu.present is reported
