"""Shared fixtures: the release binary, the mock PersistIq server, and a runner.

Standard library only, so that both venvs (conformance, PyAirbyte) can load it.
Binaries default to the release build; override with SOURCE_PERSISTIQ_BIN and
PERSISTIQ_MOCK_BIN.
"""

import json
import os
import re
import select
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONNECTOR = Path(os.environ.get("SOURCE_PERSISTIQ_BIN", REPO / "target/release/source-persistiq")).resolve()
MOCK = Path(os.environ.get("PERSISTIQ_MOCK_BIN", REPO / "target/release/examples/demo")).resolve()


def _mock_api_key() -> str:
    # mock.rs is the single source of the key; a copy here could drift.
    text = (REPO / "tests/support/mock.rs").read_text(encoding="utf-8")
    match = re.search(r'pub const API_KEY: &str = "([^"]+)";', text)
    assert match, "API_KEY not found in tests/support/mock.rs"
    return match.group(1)


API_KEY = _mock_api_key()


def _require(path: Path, build: str) -> None:
    # A missing binary must fail the run, not skip it: CI would pass silently.
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing; run `{build}` first", pytrace=False)


@pytest.fixture(scope="session")
def connector() -> Path:
    _require(CONNECTOR, "cargo build --release")
    return CONNECTOR


@pytest.fixture(scope="session")
def base_url(tmp_path_factory) -> str:
    """A `demo --serve 0` process for the whole session; its base_url."""
    yield from _serve_mock(tmp_path_factory)


@pytest.fixture(scope="session")
def rate_limited_base_url(tmp_path_factory) -> str:
    """A mock that enforces 5 requests per 2 s window, as PersistIq's headers say."""
    yield from _serve_mock(tmp_path_factory, "--rate", "5/2")


@pytest.fixture(scope="session")
def https_mock(tmp_path_factory):
    """The mock over HTTPS, its certificate from a CA made for this session:
    (base_url, path of the CA's PEM file)."""
    ca_file = tmp_path_factory.mktemp("https-mock") / "ca.pem"
    for url in _serve_mock(tmp_path_factory, "--tls", str(ca_file), pattern=r"https://localhost:\d+/v1/"):
        ca_file.chmod(0o644)
        yield url, ca_file


def _serve_mock(tmp_path_factory, *flags, pattern=r"http://127\.0\.0\.1:\d+/v1/"):
    _require(MOCK, "cargo build --release --example demo")
    log = (tmp_path_factory.mktemp("mock") / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [str(MOCK), "--serve", "0", *flags],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not re.fullmatch(pattern, line):
            pytest.fail(f"the mock did not print its base_url (got {line!r}, exit {proc.poll()})", pytrace=False)
        yield line
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def mock_config(base_url) -> dict:
    # Short retries: a retry in these tests means a bug, not flakiness to wait out.
    return {"api_key": API_KEY, "base_url": base_url, "retry_schedule_seconds": [0.05, 0.05]}


@dataclass
class Run:
    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list:
        assert self.stdout == "" or self.stdout.endswith("\n"), "stdout does not end with a newline"
        return self.stdout.splitlines()

    def describe(self) -> str:
        return f"$ {' '.join(map(str, self.args))}\nexit {self.returncode}\nstderr:\n{self.stderr}"


def run_connector(connector: Path, *args, timeout: float = 300) -> Run:
    proc = subprocess.run(
        [str(connector), *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
    )
    # Invalid UTF-8 on stdout is a protocol violation: fail here, loudly.
    return Run([connector.name, *args], proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", "replace"))


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path
