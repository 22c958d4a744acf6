"""PyAirbyte end to end: the README's "Use it from PyAirbyte" block, run twice
as a user would run it (a script, in a fresh directory), against the mock.
The DuckDB cache it leaves behind is then checked against the mock's data.
"""

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime

import duckdb
import pytest

from conftest import API_KEY, run_connector, write_json
from expected import CAMPAIGN_4, EXPECTED_COUNTS, LEAD_1, USER_1, count_of, lead_id, leads_without_owner
from readme import code_blocks

AIRBYTE_COLUMNS = ("_airbyte_raw_id", "_airbyte_extracted_at")


@pytest.fixture(scope="module")
def streams(connector, mock_config, tmp_path_factory):
    config = write_json(tmp_path_factory.mktemp("discover") / "config.json", mock_config)
    run = run_connector(connector, "discover", "--config", config)
    assert run.returncode == 0, run.describe()
    catalogs = [m["catalog"] for m in map(json.loads, run.lines) if m["type"] == "CATALOG"]
    assert len(catalogs) == 1, run.stdout[:2000]
    return catalogs[0]["streams"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("pyairbyte")


def run_readme_block(connector, base_url, workdir):
    """The README block as a script; returns (stdout, started_ms, finished_ms)."""
    script = workdir / "readme_pyairbyte.py"
    script.write_text(code_blocks("Use it from PyAirbyte", "python")[0], encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRBYTE_")}
    env.update({
        # No registry lookups, no telemetry: CI has no business calling out.
        "AIRBYTE_OFFLINE_MODE": "1",
        "DO_NOT_TRACK": "1",
        "PERSISTIQ_API_KEY": API_KEY,
        "PERSISTIQ_BASE_URL": base_url,
        "SOURCE_PERSISTIQ_BIN": str(connector),
    })
    started = time.time_ns() // 1_000_000
    proc = subprocess.run([sys.executable, str(script)], cwd=workdir, env=env, capture_output=True, timeout=600)
    finished = time.time_ns() // 1_000_000 + 1
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr.decode()[-5000:]}"
    return out, started, finished


class Cache:
    """A read-only look at the README's default DuckDB cache (closed on exit:
    DuckDB would not let the next sync write while it is open)."""

    def __init__(self, workdir):
        self.path = workdir / ".cache" / "default_cache" / "default_cache.duckdb"

    def __enter__(self):
        assert self.path.is_file(), f"no DuckDB cache at {self.path}"
        self.db = duckdb.connect(str(self.path), read_only=True)
        return self

    def __exit__(self, *_):
        self.db.close()

    def all(self, sql, *params):
        return self.db.execute(sql, list(params)).fetchall()

    def one(self, sql, *params):
        rows = self.all(sql, *params)
        assert len(rows) == 1, f"{sql}: {rows}"
        return rows[0]

    def content(self, table):
        """The table without PyAirbyte's per-sync columns, sorted."""
        return self.all(f'SELECT * EXCLUDE ({", ".join(AIRBYTE_COLUMNS)}) FROM "{table}" ORDER BY ALL')

    def extracted_ms(self, table):
        return [r[0] for r in self.all(f'SELECT epoch_ms(_airbyte_extracted_at) FROM "{table}"')]


def printed_counts(stdout):
    return {m[0]: int(m[1]) for m in re.findall(r"^(\w+): (\d+) rows$", stdout, re.M)}


@pytest.fixture(scope="module")
def first_sync(connector, base_url, workdir, streams):
    out, started, finished = run_readme_block(connector, base_url, workdir)
    with Cache(workdir) as cache:
        snapshot = {s["name"]: (cache.content(s["name"]), cache.extracted_ms(s["name"]), cursor_high(cache, s))
                    for s in streams}
    return out, started, finished, snapshot


@pytest.fixture(scope="module")
def second_sync(connector, base_url, workdir, first_sync):
    return run_readme_block(connector, base_url, workdir)


def test_first_sync_loads_every_stream_with_the_mock_row_counts(first_sync, workdir, streams):
    out, started, finished, _ = first_sync
    expected = {s["name"]: count_of(s["name"]) for s in streams}
    assert printed_counts(out) == expected, out
    with Cache(workdir) as cache:
        for s in streams:
            name, count = s["name"], expected[s["name"]]
            key = ", ".join(column_sql(path) for path in s["source_defined_primary_key"])
            assert cache.one(f'SELECT count(*) FROM "{name}"') == (count,), name
            assert cache.one(f'SELECT count(*) FROM (SELECT DISTINCT {key} FROM "{name}")') == (count,), \
                f"{name}: duplicate primary keys"
            stamps = cache.extracted_ms(name)
            assert started <= min(stamps) and max(stamps) <= finished, f"{name}: extracted_at is not this sync's"
        # PyAirbyte keeps each stream's last STATE for the next sync.
        saved = {r[0] for r in cache.all("SELECT stream_name FROM _airbyte_state")}
        assert saved == set(expected)


def test_first_sync_column_values_match_the_mock(first_sync, workdir):
    with Cache(workdir) as cache:
        user = cache.one("SELECT id, name, email, activated, default_mailbox_id, salesforce_id "
                         "FROM users WHERE id = ?", USER_1["id"])
        assert user == tuple(USER_1[k] for k in ("id", "name", "email", "activated", "default_mailbox_id",
                                                 "salesforce_id"))
        assert cache.one("SELECT mailboxes FROM users WHERE id = 'u_000002'") == (None,)

        lead = cache.one("SELECT id, status, owner_id, sent_count, last_sent_at, data->>'email', "
                         "data->>'last_name', data->>'company_name' FROM leads WHERE id = ?", LEAD_1["id"])
        assert lead == tuple(LEAD_1[k] for k in ("id", "status", "owner_id", "sent_count", "last_sent_at",
                                                 "email", "last_name", "company_name"))
        assert cache.one("SELECT count(*) FROM leads WHERE owner_id IS NULL") == (leads_without_owner(),)
        ids = {r[0] for r in cache.all("SELECT id FROM leads")}
        assert ids == {lead_id(i) for i in range(EXPECTED_COUNTS["leads"])}

        campaign = cache.one("SELECT id, name, CAST(stats->>'total_prospects' AS BIGINT) FROM campaigns "
                             "WHERE id = ?", CAMPAIGN_4["id"])
        assert campaign == (CAMPAIGN_4["id"], CAMPAIGN_4["name"], CAMPAIGN_4["total_prospects"])


def comparable(value):
    """Cursor values as comparable instants where they are date-times."""
    if isinstance(value, datetime):
        return (0, value.timestamp())
    if isinstance(value, str):
        try:
            return (0, datetime.fromisoformat(value).timestamp())
        except ValueError:
            return (1, value)
    if value is None:
        return (-1, 0)
    return (0, value)


def column_sql(path):
    """SQL for a record field path. PyAirbyte lower-cases top-level keys into
    column names; deeper levels stay inside JSON columns."""
    column = f'"{path[0].lower()}"'
    return column if len(path) == 1 else f"{column}->>'$.{'.'.join(path[1:])}'"


def cursor_high(cache, stream):
    """The highest cursor value in the table, for an incremental stream."""
    if "incremental" not in stream["supported_sync_modes"]:
        return None
    if not stream.get("default_cursor_field"):
        return "sync start"  # leads: the cursor is the sync's own start time
    cursor = column_sql(stream["default_cursor_field"])
    return max(comparable(v) for (v,) in cache.all(f'SELECT {cursor} FROM "{stream["name"]}"'))


def test_second_sync_rereads_full_refresh_streams_and_adds_only_changed_rows(first_sync, second_sync, workdir,
                                                                            streams):
    snapshot = first_sync[3]
    out, started, finished = second_sync
    assert set(printed_counts(out)) == {s["name"] for s in streams}, out
    with Cache(workdir) as cache:
        for s in streams:
            name = s["name"]
            before, before_ms, high = snapshot[name]
            after_ms = cache.extracted_ms(name)
            assert len(after_ms) == len(before_ms) == count_of(name), f"{name}: rows added or lost"
            assert cache.content(name) == before, f"{name}: the second sync changed the data"
            rewritten = [t for t in after_ms if t > max(before_ms)]
            assert all(started <= t <= finished for t in rewritten), name
            if high == "sync start":
                # No mock lead changed after sync 1 started: nothing is re-sent.
                assert rewritten == [], f"{name}: {len(rewritten)} unchanged rows were re-sent"
            elif high is not None:
                # The mock's data never changes, so an incremental sync may
                # only re-send rows at sync 1's highest cursor (an inclusive
                # boundary), never older ones.
                cursor = column_sql(s["default_cursor_field"])
                resent = [v for (v,) in cache.all(
                    f'SELECT {cursor} FROM "{name}" WHERE epoch_ms(_airbyte_extracted_at) > ?', max(before_ms))]
                stale = [v for v in resent if comparable(v) < high]
                assert not stale, f"{name}: re-read {len(stale)} rows older than the state, e.g. {stale[:3]}"
                assert len(resent) < len(after_ms), f"{name}: the incremental sync re-read every row"
            else:
                assert len(rewritten) == len(after_ms), f"{name}: a full-refresh stream was not read again"


HTTPS_SCRIPT = """
import json, os, sys
import airbyte as ab

source = ab.get_source(
    "source-persistiq",
    config=json.loads(os.environ["SPQ_CONFIG"]),
    local_executable=os.environ["SOURCE_PERSISTIQ_BIN"],
)
source.check()
source.select_streams(["users", "campaigns", "tags"])
result = source.read(cache=ab.new_local_cache("https"))
for name, dataset in result.streams.items():
    print(f"{name}: {len(dataset)} rows")
"""


def test_pyairbyte_reads_over_https_with_the_ca_in_the_config(connector, https_mock, tmp_path):
    """A platform or PyAirbyte user gives the company CA in the config: `ca_certificate`."""
    base_url, ca_file = https_mock
    config = {"api_key": API_KEY, "base_url": base_url, "retry_schedule_seconds": [0.05, 0.05],
              "ca_certificate": ca_file.read_text()}
    script = tmp_path / "https_sync.py"
    script.write_text(HTTPS_SCRIPT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRBYTE_") and k not in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    env.update({"AIRBYTE_OFFLINE_MODE": "1", "DO_NOT_TRACK": "1", "SOURCE_PERSISTIQ_BIN": str(connector),
                "SPQ_CONFIG": json.dumps(config)})
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, timeout=600)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr.decode()[-5000:]}"
    assert printed_counts(out) == {name: count_of(name) for name in ("users", "campaigns", "tags")}, out
    # Without the CA the same check fails, saying what to do.
    del config["ca_certificate"]
    check = run_connector(connector, "check", "--config", write_json(tmp_path / "no-ca.json", config))
    (status,) = [m for m in map(json.loads, check.lines) if m["type"] == "CONNECTION_STATUS"]
    assert status["connectionStatus"]["status"] == "FAILED"
    assert "ca_certificate" in status["connectionStatus"]["message"]
