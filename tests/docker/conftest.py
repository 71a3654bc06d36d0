"""Docker suite plumbing: skip fast without an engine, start pinned images, wait until they answer.

Image tags come from docker/compose.yaml, so the suite and the compose stack always agree.
"""

from __future__ import annotations

import functools
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"


@functools.cache
def docker_unavailable() -> str | None:
    """None when a Docker engine answers, else the skip reason (the check fails in milliseconds)."""
    try:
        import docker
        docker.from_env().ping()
    except Exception as exc:
        return (f"no Docker engine answers (docker.from_env().ping() failed: {exc}); "
                f"these tests run where Docker exists")
    return None


@pytest.fixture(scope="session", autouse=True)
def docker_engine() -> None:
    """Session-scoped and autouse, so it runs before any container fixture in this directory."""
    reason = docker_unavailable()
    if reason:
        pytest.skip(reason)


def compose_image(service: str) -> str:
    """The pinned ``image:`` of a service in docker/compose.yaml."""
    current = None
    for line in COMPOSE.read_text().splitlines():
        header = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if header:
            current = header.group(1)
        image = re.match(r"^    image:\s*(\S+)", line)
        if image and current == service:
            return image.group(1)
    raise LookupError(f"docker/compose.yaml has no image for service {service!r}")


def wait_http(url: str, *, timeout: float = 240.0, headers: Mapping[str, str] | None = None) -> None:
    """Poll ``url`` until it answers with any HTTP status below 500."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers or {})), timeout=5):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = exc
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(1.0)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s: {last}")


@pytest.fixture(scope="session")
def containers() -> Any:
    """``containers(service, port, ready_path=..., env=..., bind=...)``: see :func:`run_container`."""
    return run_container


def run_container(service: str, port: int, *, ready_path: str, env: Mapping[str, str] | None = None,
                  bind: Mapping[int, int] | None = None, timeout: float = 240.0) -> Iterator[tuple[Any, str]]:
    """Start the service's pinned image; yield (container, base URL of ``port``); always stop it."""
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(compose_image(service)).with_exposed_ports(port)
    for key, value in (env or {}).items():
        container = container.with_env(key, value)
    for inside, outside in (bind or {}).items():
        container = container.with_bind_ports(inside, outside)   # fixed host port (testcontainers binds all interfaces)
    if service == "pinecone":
        container = container.maybe_emulate_amd64()
    container.start()
    try:
        host = container.get_container_host_ip()
        mapped = bind[port] if bind and port in bind else container.get_exposed_port(port)
        url = f"http://{host}:{mapped}"
        wait_http(url + ready_path, timeout=timeout)
        yield container, url
    finally:
        container.stop()
