"""README "Use it from the shell": each paragraph of its first sh block, run
as written with bash, the release binary on PATH and the mock as the API."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import API_KEY, _serve_mock, run_connector
from expected import EXPECTED_COUNTS, LEAD_1
from readme import code_blocks

SECTION = "Use it from the shell"


def paragraphs():
    block = code_blocks(SECTION, "sh")[0]
    return [p.strip() for p in block.split("\n\n") if p.strip()]


def paragraph(marker):
    found = [p for p in paragraphs() if marker in p]
    assert len(found) == 1, f"expected one paragraph with {marker!r} in the README's shell block"
    return found[0]


def test_every_paragraph_of_the_block_is_checked():
    # A new example in the README must get a check here too.
    checked = {paragraph("> config.json"), paragraph("@csv"), paragraph("uniq -c"), paragraph("leads-state.json"),
               paragraph("export-state.json")}
    assert set(paragraphs()) == checked


class Shell:
    """bash in a scratch directory, as a reader's terminal after the README's setup."""

    def __init__(self, cwd, env):
        self.cwd, self.env = cwd, env

    def __call__(self, script, cwd=None, env=None):
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd or self.cwd, env=env or self.env,
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, f"{script}\nexit {proc.returncode}\n{proc.stderr.decode()}"
        return proc.stdout.decode("utf-8")


@pytest.fixture(scope="module")
def shell(connector, base_url, tmp_path_factory):
    assert shutil.which("jq"), "jq is not installed (.ci/run installs it)"
    # The README calls the program by name: put this build first on PATH under that name.
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "source-persistiq").symlink_to(connector)
    sh = Shell(tmp_path_factory.mktemp("readme-shell"), {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PERSISTIQ_API_KEY": API_KEY,
        "PERSISTIQ_BASE_URL": base_url,
    })
    sh(paragraph("> config.json"))
    return sh


def test_config_paragraph_writes_the_key_and_base_url(shell, base_url):
    config = json.loads((shell.cwd / "config.json").read_text())
    assert config == {"api_key": API_KEY, "base_url": base_url}


def test_config_paragraph_defaults_to_the_real_api(shell, tmp_path):
    env = {k: v for k, v in shell.env.items() if k != "PERSISTIQ_BASE_URL"}
    shell(paragraph("> config.json"), cwd=tmp_path, env=env)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"api_key": API_KEY, "base_url": "https://api.persistiq.com/v1/"}


def test_leads_to_csv(shell, connector):
    out = shell(paragraph("@csv"))
    # Lead text holds quotes, CR/LF, tabs and control characters: only a CSV
    # parser, not a line count, can tell whether jq quoted them right.
    rows = list(csv.reader(io.StringIO(out, newline="")))
    direct = run_connector(connector, "read", "--config", shell.cwd / "config.json", "--streams", "leads")
    leads = [m["record"]["data"] for m in map(json.loads, direct.lines) if m["type"] == "RECORD"]
    assert len(rows) == len(leads) == EXPECTED_COUNTS["leads"]
    assert rows == [[d["id"], d["data"]["email"] or "", d["data"]["company_name"] or ""] for d in leads]
    assert rows[1] == [LEAD_1["id"], LEAD_1["email"], LEAD_1["company_name"]]


def test_records_per_stream(shell):
    out = shell(paragraph("uniq -c"))
    counts = {}
    for line in out.splitlines():
        n, stream = line.split()
        counts[stream] = int(n)
    assert counts == {s: n for s, n in EXPECTED_COUNTS.items() if n > 0}


def test_cron_paragraph_keeps_leads_incremental(shell):
    cron = paragraph("leads-state.json")
    shell(cron)
    first = (shell.cwd / "leads.jsonl").read_text().splitlines()
    assert len(first) == EXPECTED_COUNTS["leads"]
    state = json.loads((shell.cwd / "leads-state.json").read_text())
    final = state[-1]["stream"]["stream_state"]
    assert final["updated_after"], state[-1]
    # The second run starts from that state: nothing changed, nothing appended.
    shell(cron)
    assert (shell.cwd / "leads.jsonl").read_text().splitlines() == first
    run = [json.loads(line) for line in (shell.cwd / "run.jsonl").read_text().splitlines()]
    assert not [m for m in run if m["type"] == "RECORD"]


def test_cron_paragraph_keeps_the_last_good_state_over_a_failed_run(shell, tmp_path):
    # As cron runs it: /bin/sh -c, no errexit, so every line runs.
    cron = paragraph("leads-state.json")
    config = json.loads((shell.cwd / "config.json").read_text())
    work = tmp_path / "cron"
    work.mkdir()

    def run(base_url):
        (work / "config.json").write_text(json.dumps({**config, "base_url": base_url, "retry_schedule_seconds": [0]}))
        return subprocess.run(["bash", "-c", cron], cwd=work, env=shell.env, capture_output=True, timeout=300)

    assert run(config["base_url"]).returncode == 0
    leads = (work / "leads.jsonl").read_text().splitlines()
    assert len(leads) == EXPECTED_COUNTS["leads"]
    good = (work / "leads-state.json").read_text()
    assert json.loads(good)[-1]["stream"]["stream_state"]["updated_after"]
    # Nothing listens on port 9 of loopback: the run fails without a STATE.
    failed = run("http://127.0.0.1:9/v1/")
    assert failed.returncode != 0
    assert (work / "leads-state.json").read_text() == good
    # The next run goes on from the last good state: nothing appended twice.
    assert run(config["base_url"]).returncode == 0
    assert (work / "leads.jsonl").read_text().splitlines() == leads


def _children(pid):
    """The pids of the processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


@pytest.fixture(scope="module")
def slow_base_url(tmp_path_factory):
    """A rate-limited mock of this module's own: a killed run's requests must
    not count in the window of the session's rate-limited mock."""
    yield from _serve_mock(tmp_path_factory, "--rate", "5/2")


def test_export_paragraph_goes_on_after_a_killed_run(shell, base_url, slow_base_url, tmp_path):
    export = paragraph("export-state.json")
    config = json.loads((shell.cwd / "config.json").read_text())

    def in_dir(name, url):
        work = tmp_path / name
        work.mkdir(exist_ok=True)
        (work / "config.json").write_text(json.dumps({**config, "base_url": url, "retry_schedule_seconds": [0]}))
        return work

    def ids(work):
        return [json.loads(line)["id"] for line in (work / "campaign_leads.jsonl").read_text().splitlines()]

    # An export that is never interrupted.
    whole = in_dir("whole", base_url)
    shell(export, cwd=whole)
    want = ids(whole)
    assert len(want) == len(set(want)) == EXPECTED_COUNTS["campaign_leads"]
    assert not (whole / "export-state.json").exists()

    # The same export from a slow API, its connector killed after a few
    # checkpoints: the lines after it still run, as under cron.
    work = in_dir("killed", slow_base_url)
    bash = subprocess.Popen(["bash", "-c", export], cwd=work, env=shell.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_file = work / "export-run.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        lines = run_file.read_text().splitlines() if run_file.exists() else []
        if sum('"type":"STATE"' in line for line in lines) >= 3:
            break
        assert bash.poll() is None, f"the export ended before it was killed: {bash.stderr.read().decode()}"
        time.sleep(0.05)
    else:
        pytest.fail("no 3 checkpoints within 120 s")
    connector = _children(bash.pid)
    assert connector, "the connector is not running"
    for pid in connector:
        os.kill(pid, signal.SIGTERM)
    assert bash.wait(timeout=60) != 0
    saved = json.loads((work / "export-state.json").read_text())
    checkpoint = saved[-1]["stream"]["stream_state"]["full_refresh"]
    assert checkpoint["done"], saved
    assert not (work / "campaign_leads.jsonl").exists()

    # Run again, against the API at full speed: it goes on, not over.
    config_now = json.loads((work / "config.json").read_text())
    (work / "config.json").write_text(json.dumps({**config_now, "base_url": base_url}))
    shell(export, cwd=work)
    resumed = [json.loads(line) for line in (work / "export-run.jsonl").read_text().splitlines()]
    assert 0 < sum(m["type"] == "RECORD" for m in resumed) < EXPECTED_COUNTS["campaign_leads"]
    assert sorted(ids(work)) == sorted(want)
    assert not (work / "export-state.json").exists()


def test_try_it_block_uses_the_mock_key():
    try_it = code_blocks(SECTION, "sh")[1]
    assert f"PERSISTIQ_API_KEY={API_KEY}" in try_it


def test_install_recipe_works_in_a_fresh_home(connector, tmp_path):
    # "Platforms": the release files in a folder, a home without ~/.local/bin.
    block = code_blocks("Platforms: amd64 and arm64", "sh")[0]
    target = {"x86_64": "x86_64-unknown-linux-musl", "aarch64": "aarch64-unknown-linux-musl"}[os.uname().machine]
    release = tmp_path / "release"
    release.mkdir()
    shutil.copy(connector, release / f"source-persistiq-{target}")
    subprocess.run(f"sha256sum source-persistiq-{target} > SHA256SUMS", shell=True, cwd=release, check=True)
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    out = Shell(release, env)(block)
    assert f"source-persistiq-{target}: OK" in out
    assert out.rstrip().endswith("works")
    assert os.access(home / ".local/bin/source-persistiq", os.X_OK)
