"""Airbyte's own connector test suite, run against the connector image.

airbyte-cdk's `DockerConnectorTestSuite` (airbyte_cdk/test/standard_tests)
runs `docker run IMAGE spec|check|discover|read` for the configs listed in
../../acceptance-test-config.yml. Run it as .ci/run does, with
.ci/shim/docker first on PATH (podman, host networking) and the image that
.ci/build-image built:

    PATH=$PWD/.ci/shim:$PATH python -m pytest tests/python/test_airbyte_suite.py \
        -p airbyte_cdk.test.standard_tests.pytest_hooks \
        --connector-image ghcr.io/source-persistiq/source-persistiq:dev --read-from-streams=true

This module starts the mock API (conftest.py's `base_url`) and writes the
secrets/*.json configs that acceptance-test-config.yml names, pointing at it.

The suite's Docker tests check less than its in-process ones (which need a
Python connector), so three of them are extended here with the suite's own
assertions, applied to the image's output:
- discover: every catalog check of `SourceTestSuiteBase.test_discover`, the
  advisory ones included (CAT's TestDiscovery);
- read: `assert_read_records`, as `SourceTestSuiteBase.test_basic_read` runs
  it (CAT's TestBasicRead): records from every configured stream, each valid
  against its stream's schema;
- the `incremental` section's future state, which the suite does not read:
  CAT's test_state_with_abnormally_large_values.
"""

import json
import re
import shutil
from pathlib import Path

import orjson
import pytest
import yaml
from boltons.typeutils import classproperty
from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, Type
from airbyte_cdk.test.standard_tests import docker_base
from airbyte_cdk.test.standard_tests._catalog_checks import find_catalog_problems, format_catalog_problems
from airbyte_cdk.test.standard_tests._read_assertions import assert_read_records
from airbyte_cdk.test.standard_tests.docker_base import DockerConnectorTestSuite
from airbyte_cdk.utils.docker import run_docker_airbyte_command

from conftest import API_KEY, REPO

SECRETS = REPO / "secrets"
WRONG_KEY = "wrong-key-suite-5b2e90"


def _acceptance_config() -> dict:
    return yaml.safe_load((REPO / "acceptance-test-config.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module", autouse=True)
def mock_configs(base_url):
    """secrets/*.json for the mock, written before and removed after the suite."""
    configs = {
        "config.json": {"api_key": API_KEY, "base_url": base_url, "retry_schedule_seconds": [0.05, 0.05]},
        "wrong_key_config.json": {"api_key": WRONG_KEY, "base_url": base_url, "retry_schedule_seconds": [0.05]},
        "no_key_config.json": {"base_url": base_url},
    }
    SECRETS.mkdir(exist_ok=True)
    for name in configs:
        path = SECRETS / name
        if path.exists():
            old = json.loads(path.read_text(encoding="utf-8") or "{}")
            if not re.match(r"http://127\.0\.0\.1:\d+/", str(old.get("base_url", ""))):
                pytest.fail(f"{path} is not a mock config; move it away before running the suite", pytrace=False)
    for name, config in configs.items():
        (SECRETS / name).write_text(json.dumps(config), encoding="utf-8")
    yield configs
    for name in configs:
        (SECRETS / name).unlink(missing_ok=True)
    if not any(SECRETS.iterdir()):
        SECRETS.rmdir()


@pytest.fixture(scope="module")
def image(request) -> str:
    name = request.config.getoption("--connector-image")
    if not name:
        pytest.fail("pass --connector-image (the image .ci/build-image built)", pytrace=False)
    if shutil.which("docker") is None:
        pytest.fail("no `docker` on PATH: put .ci/shim first", pytrace=False)
    return name


def _docker_run(image: str, mounts: dict, *args, raise_if_errors=True):
    """`docker run --rm` of IMAGE with each host file mounted at its container path."""
    volumes = [arg for host, inside in mounts.items() for arg in ("-v", f"{host}:{inside}")]
    return run_docker_airbyte_command(
        ["docker", "run", "--rm", *volumes, image, *map(str, args)], raise_if_errors=raise_if_errors
    )


@pytest.fixture(scope="module")
def discovered(image, mock_configs) -> dict:
    """The image's discovered streams, by name, as raw dicts."""
    result = _docker_run(image, {SECRETS / "config.json": "/secrets/config.json"},
                         "discover", "--config", "/secrets/config.json")
    (catalog,) = [AirbyteMessageSerializer.dump(m) for m in result.get_message_iterator() if m.type == Type.CATALOG]
    return {s["name"]: s for s in catalog["catalog"]["streams"]}


class _Spy:
    """Records what the suite's own test ran through `run_docker_airbyte_command`."""

    def __init__(self, monkeypatch):
        self.calls = []  # (verb, cmd, EntrypointOutput, catalog dict or None)
        original = docker_base.run_docker_airbyte_command

        def spy(cmd, **kwargs):
            result = original(cmd, **kwargs)
            verb = next((a for a in cmd if a in ("spec", "check", "discover", "read")), None)
            catalog = None
            for arg in cmd:
                if arg.endswith(":/secrets/catalog.json"):
                    # Read now: the suite deletes its temporary catalog after the test.
                    catalog = orjson.loads(Path(arg.rsplit(":", 1)[0]).read_bytes())
            self.calls.append((verb, cmd, result, catalog))
            return result

        monkeypatch.setattr(docker_base, "run_docker_airbyte_command", spy)

    def only(self, verb):
        runs = [c for c in self.calls if c[0] == verb]
        assert len(runs) == 1, f"expected the suite to run `{verb}` once, got {len(runs)}"
        return runs[0]


class TestSourcePersistiq(DockerConnectorTestSuite):
    """airbyte-cdk's Docker suite, with three of its tests extended (see the module doc)."""

    @classproperty
    def connector_name(self) -> str:
        # The suite's default is the repo folder's name, which a clone may change.
        return "source-persistiq"

    def test_docker_image_build_and_discover(self, scenario, connector_image_override,
                                             connector_base_image_override, monkeypatch):
        spy = _Spy(monkeypatch)
        super().test_docker_image_build_and_discover(scenario, connector_image_override,
                                                     connector_base_image_override)
        _, _, result, _ = spy.only("discover")
        problems = find_catalog_problems(result.catalog.catalog)
        # Advisory checks too: they are the suite's future requirements.
        assert not problems, f"The discovered catalog has problems:\n{format_catalog_problems(problems)}"

    def test_docker_image_build_and_read(self, scenario, connector_image_override, connector_base_image_override,
                                         read_from_streams, read_scenarios, monkeypatch):
        spy = _Spy(monkeypatch)
        super().test_docker_image_build_and_read(scenario, connector_image_override, connector_base_image_override,
                                                 read_from_streams, read_scenarios)
        _, _, result, catalog = spy.only("read")
        configured = ConfiguredAirbyteCatalogSerializer.load(catalog)
        assert scenario.is_basic_read_config
        assert_read_records(
            records=result.records_iterator,
            configured_catalog=configured,
            require_records_per_stream=True,
            validate_schema=scenario.validate_schema,
        )
        read = [s.stream.name for s in configured.streams]
        print(f"read {len(list(result.records_iterator))} records from {len(read)} streams: {', '.join(read)}")

    def test_basic_read_catalog_has_every_discovered_stream(self, discovered):
        """A new stream must be added to the catalog, or basic_read would skip it."""
        for entry in _acceptance_config()["acceptance_tests"]["basic_read"]["tests"]:
            catalog = json.loads((REPO / entry["configured_catalog_path"]).read_text(encoding="utf-8"))
            names = [s["stream"]["name"] for s in catalog["streams"]]
            assert sorted(names) == sorted(discovered), entry["configured_catalog_path"]
            assert not entry.get("empty_streams"), "every mock stream has records"

    @pytest.mark.parametrize("entry", _acceptance_config()["acceptance_tests"]["incremental"]["tests"],
                             ids=lambda e: Path(e["future_state"]["future_state_path"]).stem)
    def test_docker_image_read_with_future_state(self, entry, image, discovered, tmp_path):
        """CAT's test_state_with_abnormally_large_values, for the `incremental` section."""
        declared = json.loads((REPO / entry["configured_catalog_path"]).read_text(encoding="utf-8"))
        for configured in declared["streams"]:
            name = configured["stream"]["name"]
            assert configured["sync_mode"] == "incremental", name
            assert "incremental" in discovered[name]["supported_sync_modes"], name
            configured["stream"] = discovered[name]  # the image's own schema, as CAT did
        catalog = tmp_path / "catalog.json"
        catalog.write_text(json.dumps(declared), encoding="utf-8")
        state_file = REPO / entry["future_state"]["future_state_path"]
        state = json.loads(state_file.read_text(encoding="utf-8"))
        streams = {c["stream"]["name"] for c in declared["streams"]}
        assert {s["stream"]["stream_descriptor"]["name"] for s in state} == streams, "a future state per stream"

        result = _docker_run(
            image,
            {REPO / entry["config_path"]: "/secrets/config.json", catalog: "/secrets/catalog.json",
             state_file: "/secrets/state.json"},
            "read", "--config", "/secrets/config.json", "--catalog", "/secrets/catalog.json",
            "--state", "/secrets/state.json",
        )
        records = result.records
        assert not records, f"a state from the future still read {len(records)} records, e.g. of {records[0].record.stream}"
        states = {m.state.stream.stream_descriptor.name for m in result.state_messages}
        assert states == streams, f"STATE for {sorted(states)}, expected one for each of {sorted(streams)}"
