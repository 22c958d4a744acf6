"""The connector image, run the way the Airbyte platform runs it.

Needs the image that .ci/build-image builds (IMAGE below, or SPQ_IMAGE) and
runs it through .ci/shim/docker (podman with that script's private config,
host networking so that the container reaches the loopback mock).

The platform (airbyte-platform ContainerCommandFactory.kt) ignores the
image's ENTRYPOINT: it runs `sh -c` with a script that evals
"$AIRBYTE_ENTRYPOINT <command>" with stdout and stderr sent to named pipes,
watches for a termination file in a `sleep` loop and `kill`s the connector
when it appears, then writes the exit code to a file. It runs as uid 1000.
PLATFORM_SCRIPT below does the same (with a 1 s loop instead of 10 s), with
`cat` relaying the pipes to the container's stdout and stderr in place of
the sidecar, and `mv` of the exit-code file as older platform versions do.
Each test compares what the image prints with what the release binary
prints when run directly against the same mock.

One image per run: SPQ_IMAGE, the amd64 one by default. For the arm64 one
set SPQ_IMAGE=...:dev-arm64 and SPQ_PLATFORM=linux/arm64 (.ci/shim/docker
passes it to `run`; the image runs under qemu), as .ci/run does; its output
must then equal the x86_64 release binary's.
"""

import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import API_KEY, REPO, Run, run_connector, write_json
from expected import EXPECTED_COUNTS, count_of

IMAGE = os.environ.get("SPQ_IMAGE", "ghcr.io/source-persistiq/source-persistiq:dev-amd64")
PLATFORM = os.environ.get("SPQ_PLATFORM")
# Per image architecture: what `uname -m` says inside, and the ELF e_machine
# of a binary built for it.
MACHINES = {"amd64": ("x86_64", 62), "arm64": ("aarch64", 183)}
DOCKER = REPO / ".ci/shim/docker"
# A guard against a build stage leaking into the image: busybox (2.1 MB) and
# the binary (1.9 MB) are 4.1 MB.
IMAGE_SIZE_LIMIT = 8 * 1024 * 1024

PLATFORM_SCRIPT = r"""
if [ -z "$AIRBYTE_ENTRYPOINT" ]; then
  echo "Entrypoint was not set! AIRBYTE_ENTRYPOINT must be set in the container."
  exit 127
fi
PIPES=/airbyte/pipes
mkdir -p $PIPES && mkfifo $PIPES/stdout $PIPES/stderr || exit 90
cat $PIPES/stdout & OUT=$!
cat $PIPES/stderr >&2 & ERR=$!
(eval "$AIRBYTE_ENTRYPOINT {command}" 2> $PIPES/stderr > $PIPES/stdout) &
CHILD=$!
(while true; do if [ -f /control/TERMINATION_MARKER ]; then kill $CHILD; exit 0; fi; sleep 1; done) &
MONITOR=$!
wait $CHILD
EXIT_CODE=$?
echo $EXIT_CODE > $PIPES/exitCode.txt.tmp && mv $PIPES/exitCode.txt.tmp $PIPES/exitCode.txt || exit 91
echo "platform: exit code file says $(cat $PIPES/exitCode.txt)" > /control/platform.log
# Terminated: exit now, as the platform's script does. `kill $CHILD` hit the
# subshell, not the connector; the connector dies when this PID 1 exits.
[ -f /control/TERMINATION_MARKER ] && exit $EXIT_CODE
# Else let the relays finish, as the sidecar reads the pipes to the end.
kill $MONITOR
wait $OUT $ERR
exit $EXIT_CODE
"""


def docker(*args, timeout=120, check=True):
    proc = subprocess.run([str(DOCKER), *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr.decode()}"
    return proc


@pytest.fixture(scope="module")
def image():
    if not os.access(DOCKER, os.X_OK):
        pytest.fail(f"{DOCKER} is missing", pytrace=False)
    proc = docker("image", "inspect", IMAGE, check=False)
    if proc.returncode != 0:
        pytest.fail(f"no image {IMAGE}: run .ci/build-image first\n{proc.stderr.decode()}", pytrace=False)
    (inspect,) = json.loads(proc.stdout)
    return inspect


@pytest.fixture
def control(tmp_path):
    """A folder mounted at /control, writable by the container's uid 1000."""
    folder = tmp_path / "control"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def mounted(tmp_path, name, files):
    """A folder of `files` (name -> JSON value) readable by uid 1000."""
    folder = tmp_path / name
    folder.mkdir()
    folder.chmod(0o755)
    for file, value in files.items():
        write_json(folder / file, value).chmod(0o644)
    return folder


def platform_run(command, control, mounts=(), user="1000:1000", env=(), timeout=120) -> Run:
    """`sh -c PLATFORM_SCRIPT` in the image, as uid 1000, with the mock reachable."""
    args = ["run", "--rm", "--user", user, "--entrypoint", "sh", "-v", f"{control}:/control"]
    for host, inside in mounts:
        args += ["-v", f"{host}:{inside}:ro"]
    for e in env:
        args += ["-e", e]
    args += [IMAGE, "-c", PLATFORM_SCRIPT.replace("{command}", command)]
    proc = docker(*args, timeout=timeout, check=False)
    return Run(["image", command], proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8", "replace"))


def comparable(stdout):
    """Every line but LOG (which holds timings), with emitted_at zeroed."""
    lines = []
    for line in stdout.splitlines():
        message = json.loads(line)
        assert isinstance(message, dict) and "type" in message, line[:300]
        if message["type"] != "LOG":
            lines.append(re.sub(r'"emitted_at":\d+(\.\d+)?', '"emitted_at":0', line))
    return lines


def of_type(stdout, kind):
    return [json.loads(line) for line in stdout.splitlines() if json.loads(line)["type"] == kind]


# ------------------------------------------------------------------ the image


def test_image_is_what_the_platform_expects(image):
    config = image["Config"]
    entrypoint = config["Entrypoint"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert entrypoint == ["/usr/local/bin/source-persistiq"]
    assert env["AIRBYTE_ENTRYPOINT"] == " ".join(entrypoint), "CAT requires AIRBYTE_ENTRYPOINT == ENTRYPOINT"
    # Numeric, so that Kubernetes can check it against runAsNonRoot.
    assert config["User"] == "1000:1000" and config["WorkingDir"] == "/airbyte"
    metadata = (REPO / "metadata.yaml").read_text(encoding="utf-8")
    repository = re.search(r"^\s+dockerRepository: (\S+)$", metadata, re.M).group(1)
    tag = re.search(r"^\s+dockerImageTag: (\S+)$", metadata, re.M).group(1)
    assert config["Labels"]["io.airbyte.name"] == repository
    assert config["Labels"]["io.airbyte.version"] == tag
    size = image["Size"]
    print(f"image {IMAGE}: {size} bytes")
    assert size <= IMAGE_SIZE_LIMIT, f"{size} bytes"


def test_image_and_its_binary_are_of_the_platform_asked_for(image):
    """An image that says arm64 runs arm64 code: qemu would also run an
    x86_64 binary in it, so the binary's own ELF header is read too."""
    arch = image["Architecture"]
    if PLATFORM:
        assert f"{image['Os']}/{arch}" == PLATFORM
    uname, e_machine = MACHINES[arch]
    # e_machine: the 16-bit field at byte 18 of the ELF header.
    script = "uname -m; od -A n -t u2 -j 18 -N 2 /usr/local/bin/source-persistiq"
    proc = docker("run", "--rm", "--entrypoint", "sh", IMAGE, "-c", script)
    assert proc.stderr.decode() == ""
    assert proc.stdout.decode().split() == [uname, str(e_machine)]


def test_image_names_its_version_commit_and_target(image):
    """`--version` in the image says the label's version, the commit of this
    checkout (CI's image holds the binary .ci/release built from it) and the
    musl target of the image's architecture: what a bug report quotes."""
    tag = image["Config"]["Labels"]["io.airbyte.version"]
    target = {"amd64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl"}[image["Architecture"]]
    commit = subprocess.run(["git", "rev-parse", "--short=12", "--verify", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.strip()
    proc = docker("run", "--rm", IMAGE, "--version")
    assert proc.stdout.decode() == f"source-persistiq {tag} (commit {commit}, {target})\n"


@pytest.mark.parametrize("user", ["1000:1000", None], ids=["as-uid-1000", "as-image-user"])
def test_sh_sleep_kill_mv_work_and_airbyte_is_writable(image, control, user):
    script = r"""
    set -e
    echo "uid=$(id -u) gid=$(id -g) home=$HOME pwd=$(pwd)"
    sleep 0.1
    sleep 30 & pid=$!
    kill $pid
    if wait $pid; then echo "sleep was not killed"; exit 1; else echo "killed: $?"; fi
    echo x > /airbyte/file.tmp && mv /airbyte/file.tmp /airbyte/file && cat /airbyte/file
    mkfifo /tmp/fifo && rm /tmp/fifo && echo "tmp ok"
    """
    args = ["run", "--rm", *(["--user", user] if user else []), "--entrypoint", "sh", IMAGE, "-c", script]
    proc = docker(*args, check=False)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert out.splitlines() == ["uid=1000 gid=1000 home=/airbyte pwd=/airbyte", "killed: 143", "x", "tmp ok"]


def test_without_airbyte_entrypoint_the_platform_script_exits_127(image, control):
    run = platform_run("spec", control, env=["AIRBYTE_ENTRYPOINT="])
    assert run.returncode == 127, run.describe()
    assert "Entrypoint was not set!" in run.stdout


# ------------------------------------------------------------------ commands


def test_spec(image, control, connector):
    run = platform_run("spec", control)
    assert run.returncode == 0, run.describe()
    assert run.stderr == ""
    assert run.stdout == run_connector(connector, "spec").stdout
    assert (control / "platform.log").read_text() == "platform: exit code file says 0\n"


@pytest.fixture(scope="module")
def configs(tmp_path_factory, mock_config):
    """/config (check, discover) and /source (read) folders, as the platform mounts them."""
    base = tmp_path_factory.mktemp("image")
    good = mounted(base, "good", {"connectorConfig.json": mock_config})
    wrong = mounted(base, "wrong", {"connectorConfig.json": {**mock_config, "api_key": "wrong-key-image-3c7a11"}})
    return {"good": good, "wrong": wrong, "base": base}


def test_check_with_the_right_key_succeeds(image, control, configs):
    run = platform_run("check --config /config/connectorConfig.json", control,
                       mounts=[(configs["good"], "/config")])
    assert run.returncode == 0, run.describe()
    (status,) = of_type(run.stdout, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED", run.stdout


def test_check_with_a_wrong_key_fails_with_exit_0(image, control, configs):
    run = platform_run("check --config /config/connectorConfig.json", control,
                       mounts=[(configs["wrong"], "/config")])
    assert run.returncode == 0, run.describe()
    (status,) = of_type(run.stdout, "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "FAILED", run.stdout
    assert "check the API key" in status["connectionStatus"]["message"]
    assert "wrong-key-image-3c7a11" not in run.stdout + run.stderr


def test_an_unreadable_config_says_the_uid_it_runs_as(image, control, tmp_path, mock_config):
    # A config written under `umask 077` by another user (root here): the
    # platform's uid 1000 cannot read it, and the error says so.
    folder = tmp_path / "private"
    folder.mkdir()
    folder.chmod(0o755)
    write_json(folder / "connectorConfig.json", mock_config).chmod(0o600)
    run = platform_run("check --config /config/connectorConfig.json", control, mounts=[(folder, "/config")])
    assert run.returncode == 1, run.describe()
    (trace,) = of_type(run.stdout, "TRACE")
    message = trace["trace"]["error"]["message"]
    assert "Permission denied" in message and "this process runs as uid 1000 (gid 1000)" in message, message
    assert "this process runs as uid 1000" in run.stderr


def test_the_readme_container_recipe_reads_a_private_config(image, tmp_path, mock_config):
    # README, "The Docker image": the container run as the caller (--user)
    # reads a config.json made under `umask 077`, as the shell section makes it.
    from readme import code_blocks
    block = code_blocks("The Docker image", "sh")[1]
    work = tmp_path / "work"
    work.mkdir()
    write_json(work / "config.json", mock_config).chmod(0o600)
    name, version = IMAGE.rsplit(":", 1)
    # The shim finds its podman config from its own path: its folder on PATH.
    env = {**os.environ, "PATH": f"{DOCKER.parent}{os.pathsep}{os.environ['PATH']}", "IMAGE": name, "VERSION": version}
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    (status,) = of_type(proc.stdout.decode(), "CONNECTION_STATUS")
    assert status["connectionStatus"]["status"] == "SUCCEEDED", proc.stdout


@pytest.fixture(scope="module")
def discover_run(configs):
    # Module-scoped, so not through the `control` fixture.
    control = configs["base"] / "discover-control"
    control.mkdir()
    control.chmod(0o777)
    return platform_run("discover --config /config/connectorConfig.json", control,
                        mounts=[(configs["good"], "/config")])


def test_discover_equals_the_binary_s(image, discover_run, configs, connector):
    assert discover_run.returncode == 0, discover_run.describe()
    direct = run_connector(connector, "discover", "--config", configs["good"] / "connectorConfig.json")
    assert discover_run.stdout == direct.stdout


def full_refresh_catalog(discover_stdout):
    (catalog,) = of_type(discover_stdout, "CATALOG")
    streams = catalog["catalog"]["streams"]
    assert sorted(s["name"] for s in streams) == sorted(EXPECTED_COUNTS)
    return {"streams": [{"stream": s, "sync_mode": "full_refresh", "destination_sync_mode": "overwrite",
                         "primary_key": s["source_defined_primary_key"]} for s in streams]}


def incremental_catalog(discover_stdout):
    catalog = full_refresh_catalog(discover_stdout)
    for entry in catalog["streams"]:
        if "incremental" in entry["stream"]["supported_sync_modes"]:
            entry["sync_mode"] = "incremental"
            entry["destination_sync_mode"] = "append_dedup"
            entry["cursor_field"] = entry["stream"].get("default_cursor_field", [])
    return catalog


def test_full_read_gives_exactly_the_binary_s_records(image, control, tmp_path, discover_run, mock_config, connector):
    source = mounted(tmp_path, "source", {"connectorConfig.json": mock_config,
                                          "catalog.json": full_refresh_catalog(discover_run.stdout)})
    command = "read --config /source/connectorConfig.json --catalog /source/catalog.json"
    run = platform_run(command, control, mounts=[(source, "/source")])
    assert run.returncode == 0, run.describe()
    assert run.stderr == ""
    assert (control / "platform.log").read_text() == "platform: exit code file says 0\n"
    direct = run_connector(connector, "read", "--config", source / "connectorConfig.json",
                           "--catalog", source / "catalog.json")
    assert direct.returncode == 0, direct.describe()
    assert comparable(run.stdout) == comparable(direct.stdout)
    counts = {}
    for record in of_type(run.stdout, "RECORD"):
        counts[record["record"]["stream"]] = counts.get(record["record"]["stream"], 0) + 1
    assert counts == {name: count_of(name) for name in EXPECTED_COUNTS}
    print(f"image read: {sum(counts.values())} records, {counts}")


def test_read_with_state_gives_the_binary_s_records(image, control, tmp_path, discover_run, mock_config, connector):
    """The platform's other branch: `--state` when it has one (a previous read's last STATEs)."""
    catalog = incremental_catalog(discover_run.stdout)
    first = mounted(tmp_path, "first", {"connectorConfig.json": mock_config, "catalog.json": catalog})
    initial = run_connector(connector, "read", "--config", first / "connectorConfig.json",
                            "--catalog", first / "catalog.json")
    assert initial.returncode == 0, initial.describe()
    last = {}
    for state in of_type(initial.stdout, "STATE"):
        last[state["state"]["stream"]["stream_descriptor"]["name"]] = state["state"]
    source = mounted(tmp_path, "source", {"connectorConfig.json": mock_config, "catalog.json": catalog,
                                          "inputState.json": list(last.values())})
    command = ("read --config /source/connectorConfig.json --catalog /source/catalog.json"
               " --state /source/inputState.json")
    run = platform_run(command, control, mounts=[(source, "/source")])
    assert run.returncode == 0, run.describe()
    direct = run_connector(connector, "read", "--config", source / "connectorConfig.json",
                           "--catalog", source / "catalog.json", "--state", source / "inputState.json")
    records = [json.dumps(r["record"]["data"]) for r in of_type(run.stdout, "RECORD")]
    assert records == [json.dumps(r["record"]["data"]) for r in of_type(direct.stdout, "RECORD")]
    incremental = {e["stream"]["name"] for e in catalog["streams"] if e["sync_mode"] == "incremental"}
    streams = {r["record"]["stream"] for r in of_type(run.stdout, "RECORD")}
    assert len(records) < sum(EXPECTED_COUNTS.values()), "the state was not used"
    assert streams >= set(EXPECTED_COUNTS) - incremental


class StalledApi:
    """A loopback server that accepts connections and never answers."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = threading.Event()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self):
        for conn in self.conns:
            conn.close()
        self.server.close()


def stalled_read(control, tmp_path, mock_config, script=None):
    """Runs a read against a stalled API, touches the termination file once the
    connector is waiting for its answer; returns (Run, seconds from touch to exit)."""
    api = StalledApi()
    try:
        config = {**mock_config, "base_url": f"http://127.0.0.1:{api.port}/v1/", "timeout_seconds": 60}
        source = mounted(tmp_path, "source", {"connectorConfig.json": config})
        command = "read --config /source/connectorConfig.json --streams users"
        result = {}
        if script is None:
            def run():
                result["run"] = platform_run(command, control, mounts=[(source, "/source")], timeout=60)
        else:
            def run():
                proc = docker("run", "--rm", "--user", "1000:1000", "--entrypoint", "sh", "-v",
                              f"{control}:/control", "-v", f"{source}:/source:ro", IMAGE, "-c",
                              script.replace("{command}", command), timeout=60, check=False)
                result["run"] = Run(["image", command], proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        thread = threading.Thread(target=run)
        thread.start()
        assert api.accepted.wait(30), "the connector never reached the stalled API"
        touched = time.monotonic()
        (control / "TERMINATION_MARKER").touch()
        thread.join(60)
        return result["run"], time.monotonic() - touched
    finally:
        api.close()


def test_the_termination_file_makes_the_platform_script_stop_the_connector(image, control, tmp_path, mock_config):
    run, seconds = stalled_read(control, tmp_path, mock_config)
    assert run.returncode == 143, run.describe()  # the subshell's SIGTERM, from `kill`
    assert (control / "platform.log").read_text() == "platform: exit code file says 143\n"
    assert seconds < 10, f"took {seconds:.1f} s"
    assert of_type(run.stdout, "RECORD") == []


def test_busybox_kill_stops_the_connector_within_a_second(image, control, tmp_path, mock_config):
    """SIGTERM from the image's own `kill` to the connector itself, mid-request."""
    script = r"""
    $AIRBYTE_ENTRYPOINT {command} > /airbyte/stdout & PID=$!
    while [ ! -f /control/TERMINATION_MARKER ]; do sleep 0.1; done
    kill $PID
    wait $PID
    echo "connector exit: $?"
    """
    run, seconds = stalled_read(control, tmp_path, mock_config, script)
    assert run.returncode == 0, run.describe()
    assert run.stdout == "connector exit: 143\n", run.describe()
    assert seconds < 5, f"took {seconds:.1f} s from the signal to the container's exit"


def test_read_over_https_trusts_a_mounted_ca_named_by_ssl_cert_file(image, control, tmp_path, https_mock):
    """A company CA as an image user gives it: a mounted file and SSL_CERT_FILE."""
    base_url, ca_file = https_mock
    config = {"api_key": API_KEY, "base_url": base_url, "retry_schedule_seconds": [0.05, 0.05]}
    catalog = {"streams": [{"stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                            "sync_mode": "full_refresh", "destination_sync_mode": "overwrite"}
                           for name in ("users", "campaigns", "tags")]}
    source = mounted(tmp_path, "source", {"connectorConfig.json": config, "catalog.json": catalog})
    cas = tmp_path / "cas"
    cas.mkdir()
    cas.chmod(0o755)
    (cas / "corp-ca.pem").write_bytes(ca_file.read_bytes())
    (cas / "corp-ca.pem").chmod(0o644)
    command = "read --config /source/connectorConfig.json --catalog /source/catalog.json"
    untrusted = platform_run(command, control, mounts=[(source, "/source")])
    assert untrusted.returncode == 1, untrusted.describe()
    (error,) = [m["trace"]["error"] for m in of_type(untrusted.stdout, "TRACE") if m["trace"]["type"] == "ERROR"]
    assert error["failure_type"] == "config_error" and "SSL_CERT_FILE" in error["message"], error
    run = platform_run(command, control, mounts=[(source, "/source"), (cas, "/etc/corp")],
                       env=["SSL_CERT_FILE=/etc/corp/corp-ca.pem"])
    assert run.returncode == 0, run.describe()
    counts = {}
    for record in of_type(run.stdout, "RECORD"):
        counts[record["record"]["stream"]] = counts.get(record["record"]["stream"], 0) + 1
    assert counts == {name: count_of(name) for name in ("users", "campaigns", "tags")}
