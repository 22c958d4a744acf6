"""The arm64 binary against the x86_64 one: the same answers, byte for byte.

Both static musl release binaries (what a release ships, what the images
hold) run against the same `demo --serve` mock; the arm64 one runs under
qemu (binfmt_misc, see .ci/qemu-binfmt). `spec`, `discover` and a full
`read` of every stream must print the same lines, LOG lines and
`emitted_at` aside, and the read must hold the mock's record count per
stream. Paths: SPQ_MUSL_BIN and SPQ_AARCH64_MUSL_BIN, defaulting to the
release builds under target/; a missing one fails the run.
"""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_connector, write_json
from expected import EXPECTED_COUNTS, count_of
from test_image import comparable, full_refresh_catalog, of_type

BINARIES = {
    # `file`'s name for the machine, so that the two can never be one binary.
    "x86-64": Path(os.environ.get("SPQ_MUSL_BIN") or REPO / "target/x86_64-unknown-linux-musl/release/source-persistiq"),
    "ARM aarch64": Path(os.environ.get("SPQ_AARCH64_MUSL_BIN")
                        or REPO / "target/aarch64-unknown-linux-musl/release/source-persistiq"),
}


@pytest.fixture(scope="module")
def binaries():
    found = {}
    for machine, path in BINARIES.items():
        if not path.is_file():
            pytest.fail(f"{path} is missing: build it with .ci/release or cargo build --release --target ...",
                        pytrace=False)
        says = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True, check=True).stdout
        assert machine in says, f"{path}: {says}"
        assert "statically linked" in says or "static-pie linked" in says, f"{path}: {says}"
        found[machine] = path.resolve()
    return found["x86-64"], found["ARM aarch64"]


def both(binaries, *args):
    x86, arm = (run_connector(b, *args) for b in binaries)
    assert x86.returncode == 0, x86.describe()
    assert arm.returncode == 0, arm.describe()
    return x86, arm


def test_spec_is_the_same(binaries):
    x86, arm = both(binaries, "spec")
    assert arm.stdout == x86.stdout


def test_full_read_of_every_stream_is_the_same(binaries, mock_config, tmp_path):
    config = write_json(tmp_path / "config.json", mock_config)
    x86, arm = both(binaries, "discover", "--config", config)
    assert arm.stdout == x86.stdout
    catalog = write_json(tmp_path / "catalog.json", full_refresh_catalog(x86.stdout))

    x86, arm = both(binaries, "read", "--config", config, "--catalog", catalog)
    assert arm.stderr == x86.stderr == ""
    x86_lines, arm_lines = comparable(x86.stdout), comparable(arm.stdout)
    assert len(arm_lines) == len(x86_lines)
    for i, (a, x) in enumerate(zip(arm_lines, x86_lines)):
        assert a == x, f"line {i + 1} differs:\narm64:  {a[:300]}\nx86_64: {x[:300]}"
    counts = {}
    for record in of_type(arm.stdout, "RECORD"):
        counts[record["record"]["stream"]] = counts.get(record["record"]["stream"], 0) + 1
    assert counts == {name: count_of(name) for name in EXPECTED_COUNTS}
    print(f"arm64 and x86_64 read the same {len(arm_lines)} lines, {sum(counts.values())} records")
