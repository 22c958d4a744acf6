"""Airbyte protocol conformance of the release binary, against the mock.

Airbyte's own suite (airbyte-cdk's standard tests, test_airbyte_suite.py)
runs against the image and checks: one SPEC, secrets marked in the spec, the
test config valid against the spec, `check` SUCCEEDED/FAILED per config and
no secret in its output, the catalog (unique names, sync modes, valid JSON
schemas, no $ref/allOf/not, no additionalProperties false, primary keys and
cursors in the schemas, scalar keys, Airbyte types), and a full read with
records from every stream, each valid against its schema (strict integers,
CAT's date-time rule), without TRACE errors or a non-zero exit.

What is left here is what that suite does not check: every line a pydantic
AirbyteMessage, nothing on stderr, the rest of CAT's spec checks
(additionalProperties, forbidden keywords, duplicate `order`, a keyless
config rejected), check's exit 0 and message on FAILED, stricter schema
keywords, primary keys and cursors declared, exact record counts and unique
keys, stream statuses and per-stream STATE with sourceStats, CAT's
full_refresh and incremental sequential reads, nothing for streams outside
the catalog, and CAT's invalid-catalog read (only the suite's in-process
tests have it). The stream list always comes from `discover`, so new streams
are covered as soon as they exist.
"""

import json
import re
import time
from collections import Counter, defaultdict
from datetime import datetime

import jsonschema
import pytest
from airbyte_protocol.models import AirbyteMessage, ConfiguredAirbyteCatalog, Type
from jsonschema import Draft7Validator

from conftest import API_KEY, run_connector, write_json
from expected import count_of

# ------------------------------------------------------------ protocol parsing

# The payload field each message type must carry.
PAYLOAD = {
    Type.RECORD: "record",
    Type.STATE: "state",
    Type.LOG: "log",
    Type.SPEC: "spec",
    Type.CONNECTION_STATUS: "connectionStatus",
    Type.CATALOG: "catalog",
    Type.TRACE: "trace",
    Type.CONTROL: "control",
}


def parse_messages(run):
    """Every stdout line as (raw dict, AirbyteMessage); any other line fails."""
    out = []
    for n, line in enumerate(run.lines, 1):
        try:
            model = AirbyteMessage.model_validate_json(line)
        except Exception as e:  # pydantic.ValidationError, or a non-JSON line
            pytest.fail(f"stdout line {n} is not an AirbyteMessage: {e}\n{line[:500]}\n{run.describe()}")
        raw = json.loads(line)
        assert PAYLOAD.get(model.type) in raw, f"line {n}: a {model.type.value} without its payload: {line[:300]}"
        out.append((raw, model))
    return out


def types_of(messages):
    return Counter(m.type.value for _, m in messages)


# ------------------------------------------------------------ JSON schema walks

# Keywords whose value is data, not a subschema: never read as schema.
DATA_KEYWORDS = {"default", "examples", "enum", "const"}
SCHEMA_MAPS = {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"}
SCHEMA_VALUES = {"items", "additionalItems", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}


def keywords(schema, path="#"):
    """(path, keyword, value) for every keyword of every subschema.

    Property names are not keywords: a property called `not` is fine.
    """
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        yield path, key, value
        if key in DATA_KEYWORDS:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from keywords(sub, f"{path}/{key}/{name}")
        elif key in SCHEMA_VALUES and isinstance(value, dict):
            yield from keywords(value, f"{path}/{key}")
        elif key in SCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from keywords(sub, f"{path}/{key}/{i}")


def value_at(record, path):
    """The value of a record field path, None when absent."""
    node = record
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def additional_properties_false(schema):
    return [p for p, k, v in keywords(schema) if k == "additionalProperties" and v is not True]


FORBIDDEN = {"$ref", "allOf", "anyOf", "not", "patternProperties", "prefixItems", "if", "then", "else",
             "dependentSchemas", "dependentRequired"}


def forbidden_keywords(schema):
    return [f"{p}/{k}" for p, k, _ in keywords(schema) if k in FORBIDDEN]


# ------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("conformance")


@pytest.fixture(scope="module")
def config_file(work, mock_config):
    return write_json(work / "config.json", mock_config)


@pytest.fixture(scope="module")
def spec_run(connector):
    return run_connector(connector, "spec")


@pytest.fixture(scope="module")
def spec(spec_run):
    messages = parse_messages(spec_run)
    assert [m.type for _, m in messages] == [Type.SPEC], spec_run.stdout
    return messages[0][0]["spec"]["connectionSpecification"]


@pytest.fixture(scope="module")
def discover_run(connector, config_file):
    return run_connector(connector, "discover", "--config", config_file)


@pytest.fixture(scope="module")
def streams(discover_run):
    """The discovered streams, as raw dicts."""
    catalogs = [raw["catalog"] for raw, m in parse_messages(discover_run) if m.type == Type.CATALOG]
    assert len(catalogs) == 1, discover_run.stdout[:2000]
    return catalogs[0]["streams"]


def configured(streams, mode_of):
    """A configured catalog of `streams`; mode_of(stream) picks the sync mode."""
    entries = []
    for s in streams:
        mode = mode_of(s)
        entry = {"stream": s, "sync_mode": mode, "destination_sync_mode": "overwrite"}
        if s.get("source_defined_primary_key"):
            entry["primary_key"] = s["source_defined_primary_key"]
        if mode == "incremental":
            entry["cursor_field"] = s.get("default_cursor_field", [])
        entries.append(entry)
    catalog = {"streams": entries}
    ConfiguredAirbyteCatalog.model_validate(catalog)  # the test's own input must be valid
    return catalog


def supports_incremental(stream):
    return "incremental" in stream["supported_sync_modes"]


class Sync:
    """One `read` run, parsed and grouped by stream."""

    def __init__(self, run, started_ms, finished_ms):
        self.run = run
        self.started_ms = started_ms
        self.finished_ms = finished_ms
        self.messages = parse_messages(run)
        self.records = defaultdict(list)  # stream -> [(position, record dict)]
        self.states = defaultdict(list)  # stream -> [(position, state dict)]
        self.statuses = defaultdict(list)  # stream -> [(position, status)]
        self.errors = []
        for pos, (raw, m) in enumerate(self.messages):
            if m.type == Type.RECORD:
                self.records[raw["record"]["stream"]].append((pos, raw["record"]))
            elif m.type == Type.STATE:
                name = m.state.stream.stream_descriptor.name if m.state.stream else None
                self.states[name].append((pos, raw["state"]))
            elif m.type == Type.TRACE and m.trace.stream_status:
                self.statuses[m.trace.stream_status.stream_descriptor.name].append(
                    (pos, m.trace.stream_status.status.value))
            elif m.type == Type.TRACE and m.trace.error:
                self.errors.append(raw["trace"]["error"])

    def data(self, stream):
        return [r["data"] for _, r in self.records[stream]]

    def canonical(self, stream):
        """The stream's records as a multiset, order-insensitive."""
        return Counter(json.dumps(d, sort_keys=True) for d in self.data(stream))

    def emitted_at(self):
        return [r["emitted_at"] for recs in self.records.values() for _, r in recs]


def now_ms():
    return time.time_ns() // 1_000_000


def timed_read(connector, *args):
    started = now_ms()
    run = run_connector(connector, "read", *args)
    finished = now_ms() + 1  # emitted_at may be rounded up
    return Sync(run, started, finished)


@pytest.fixture(scope="module")
def full_catalog(work, streams):
    return write_json(work / "full_refresh.json", configured(streams, lambda s: "full_refresh"))


@pytest.fixture(scope="module")
def full_reads(connector, config_file, full_catalog):
    """Two sequential full-refresh reads of every stream, as CAT runs them."""
    first = timed_read(connector, "--config", config_file, "--catalog", full_catalog)
    # Two reads inside one millisecond could not be told apart by emitted_at.
    while now_ms() <= first.finished_ms:
        time.sleep(0.001)
    second = timed_read(connector, "--config", config_file, "--catalog", full_catalog)
    return first, second


# ------------------------------------------------------------ spec


def test_spec_allows_additional_properties_everywhere(spec):
    assert spec.get("additionalProperties") is True
    assert additional_properties_false(spec) == []


def test_spec_uses_no_forbidden_keywords(spec):
    assert forbidden_keywords(spec) == []


def test_spec_has_no_duplicate_order(spec):
    for path, key, props in keywords(spec):
        if key != "properties" or not isinstance(props, dict):
            continue
        seen = Counter((p.get("group", ""), p["order"]) for p in props.values() if "order" in p)
        assert [k for k, n in seen.items() if n > 1] == [], f"duplicate order under {path}"


def test_spec_rejects_a_keyless_config(spec, mock_config):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"base_url": mock_config["base_url"]}, spec, cls=Draft7Validator)


# ------------------------------------------------------------ check


def test_check_with_a_wrong_key_fails_with_exit_0_and_a_message(connector, work, mock_config):
    wrong = "wrong-key-conformance-7d1e"
    config = write_json(work / "wrong_key.json", {**mock_config, "api_key": wrong})
    run = run_connector(connector, "check", "--config", config)
    statuses = [m.connectionStatus for _, m in parse_messages(run) if m.type == Type.CONNECTION_STATUS]
    assert run.returncode == 0, run.describe()
    assert len(statuses) == 1 and statuses[0].status.value == "FAILED", run.stdout
    assert statuses[0].message, "a FAILED status needs a message saying what to fix"


def test_spec_check_and_discover_write_nothing_on_stderr(connector, spec_run, config_file, discover_run):
    check = run_connector(connector, "check", "--config", config_file)
    for run in (spec_run, check, discover_run):
        assert run.returncode == 0, run.describe()
        assert run.stderr == "", run.describe()


# ------------------------------------------------------------ discover


def test_stream_schemas_use_no_forbidden_keywords(streams):
    # Stricter than the suite's check (allOf, not, $ref): also anyOf, if/then/else, ...
    for s in streams:
        assert forbidden_keywords(s["json_schema"]) == [], s["name"]


def test_every_stream_declares_a_primary_key_and_incremental_ones_a_cursor(streams):
    for s in streams:
        name = s["name"]
        assert s.get("source_defined_primary_key"), f"{name}: no primary key"
        if supports_incremental(s):
            # A cursor that is no record field (leads: the sync's start time)
            # is source-defined without a default_cursor_field.
            assert s.get("source_defined_cursor"), f"{name}: incremental without a source-defined cursor"


# ------------------------------------------------------------ read


def test_read_prints_only_protocol_messages_and_exits_0(full_reads):
    for sync in full_reads:
        assert sync.run.returncode == 0, sync.run.describe()
        assert sync.run.stderr == ""
        assert sync.errors == []
        assert types_of(sync.messages)["RECORD"] > 0


def test_records_are_the_mock_s_with_unique_keys(full_reads, streams):
    sync = full_reads[0]
    assert set(sync.records) <= {s["name"] for s in streams}, "records for a stream not in the catalog"
    for s in streams:
        name = s["name"]
        data = sync.data(name)
        assert len(data) == count_of(name), name
        keys = [tuple(value_at(r, k) for k in s["source_defined_primary_key"]) for r in data]
        for k in keys:
            assert all(v is not None and not isinstance(v, (list, dict)) for v in k), f"{name}: bad primary key {k}"
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        assert not dupes, f"{name}: records read twice: {dupes[:5]}"


def test_each_stream_reports_started_running_complete_around_its_records(full_reads, streams):
    sync = full_reads[0]
    assert set(sync.statuses) == {s["name"] for s in streams}
    for s in streams:
        name = s["name"]
        sequence = [status for _, status in sync.statuses[name]]
        assert re.fullmatch(r"STARTED( RUNNING)+ COMPLETE", " ".join(sequence)), f"{name}: {sequence}"
        first_running = next(pos for pos, st in sync.statuses[name] if st == "RUNNING")
        complete = sync.statuses[name][-1][0]
        positions = [pos for pos, _ in sync.records[name]]
        assert all(first_running < p < complete for p in positions), f"{name}: records outside RUNNING..COMPLETE"


def test_each_stream_checkpoints_with_source_stats_counting_its_records(full_reads, streams):
    sync = full_reads[0]
    assert set(sync.states) == {s["name"] for s in streams}, "a STATE that is not per-stream, or a stream without one"
    for s in streams:
        name = s["name"]
        record_positions = [pos for pos, _ in sync.records[name]]
        previous = -1
        for pos, state in sync.states[name]:
            assert state["type"] == "STREAM", state
            assert "sourceStats" in state and "recordCount" in state["sourceStats"], state
            # CDK semantics: the records of this stream since its previous STATE.
            since = sum(1 for p in record_positions if previous < p < pos)
            assert state["sourceStats"]["recordCount"] == since, f"{name}: {state} after {since} records"
            previous = pos
        assert not [p for p in record_positions if p > previous], f"{name}: records after its last STATE"


def test_two_full_reads_give_the_same_records_with_later_emitted_at(full_reads, streams):
    first, second = full_reads
    for s in streams:
        assert first.canonical(s["name"]) == second.canonical(s["name"]), s["name"]
    for sync in full_reads:
        stamps = sync.emitted_at()
        assert all(isinstance(t, int) for t in stamps)
        assert sync.started_ms <= min(stamps) and max(stamps) <= sync.finished_ms, "emitted_at is not the wall clock"
    assert max(first.emitted_at()) < min(second.emitted_at())


def test_read_emits_nothing_for_streams_outside_the_catalog(connector, work, config_file, streams):
    chosen = streams[-1]
    catalog = write_json(work / "one_stream.json", configured([chosen], lambda s: "full_refresh"))
    sync = timed_read(connector, "--config", config_file, "--catalog", catalog)
    assert sync.run.returncode == 0, sync.run.describe()
    assert set(sync.records) == {chosen["name"]}
    assert set(sync.states) == {chosen["name"]}
    assert set(sync.statuses) == {chosen["name"]}
    assert len(sync.data(chosen["name"])) == count_of(chosen["name"])


def cursor_value(record, path):
    """A cursor value, comparable across records: datetimes as instants."""
    value = value_at(record, path)
    if value is None:
        return (-1, 0)  # a row without a cursor cannot be newer than the state
    if isinstance(value, str):
        try:
            return (0, datetime.fromisoformat(value).timestamp())
        except ValueError:
            return (1, value)
    return (0, value)


def test_incremental_reads_resume_from_state(connector, work, config_file, streams):
    """Incremental where supported (CAT's test_two_sequential_reads), else full refresh.

    Read 2 gets read 1's last STATE of each stream, as Airbyte passes it. The
    mock's data does not change, so an incremental stream may only return
    rows at or after read 1's highest cursor; a full-refresh stream must
    return everything again.
    """
    catalog = write_json(work / "incremental.json",
                         configured(streams, lambda s: "incremental" if supports_incremental(s) else "full_refresh"))
    first = timed_read(connector, "--config", config_file, "--catalog", catalog)
    assert first.run.returncode == 0, first.run.describe()
    assert set(first.states) == {s["name"] for s in streams}, "every stream needs a STATE to resume from"
    state = [first.states[s["name"]][-1][1] for s in streams]
    state_file = write_json(work / "state.json", state)
    second = timed_read(connector, "--config", config_file, "--catalog", catalog, "--state", state_file)
    assert second.run.returncode == 0, second.run.describe()

    for s in streams:
        name = s["name"]
        assert len(first.data(name)) == count_of(name), name
        assert second.states[name], f"{name}: no STATE in read 2"
        if supports_incremental(s) and not s.get("default_cursor_field"):
            # The cursor is read 1's start time and no mock lead changed since.
            assert second.data(name) == [], f"{name}: read 2 re-read {len(second.data(name))} unchanged rows"
        elif supports_incremental(s):
            cursor = s["default_cursor_field"]
            high = max(cursor_value(r, cursor) for r in first.data(name))
            stale = [r for r in second.data(name) if cursor_value(r, cursor) < high]
            assert not stale, f"{name}: read 2 re-read {len(stale)} rows older than the state, e.g. {stale[0]}"
            assert len(second.data(name)) < len(first.data(name)), f"{name}: read 2 read everything again"
        else:
            assert first.canonical(name) == second.canonical(name), f"{name}: full refresh differs after a state"


def test_an_invalid_catalog_is_a_trace_error_and_a_failure(connector, work, config_file):
    # CAT's test_airbyte_trace_message_on_failure, verbatim catalog.
    catalog = write_json(work / "invalid.json", {"streams": [{
        "stream": {"name": "__AIRBYTE__stream_that_does_not_exist",
                   "json_schema": {"type": "object", "properties": {"f1": {"type": "string"}}},
                   "supported_sync_modes": ["full_refresh"]},
        "sync_mode": "INVALID",
        "destination_sync_mode": "overwrite",
    }]})
    sync = timed_read(connector, "--config", config_file, "--catalog", catalog)
    assert sync.errors, f"no TRACE ERROR:\n{sync.run.stdout}"
    assert all(e.get("message") for e in sync.errors)
    assert sync.run.returncode != 0, "an invalid catalog must fail the sync"
    assert not sync.records


def test_rate_limit_waits_are_valid_stream_statuses(connector, work, rate_limited_base_url, streams):
    """STREAM_STATUS RUNNING with reasons RATE_LIMITED, as the platform reads it.

    The mock enforces 5 requests per 2 s window and says so in X-RateLimit-*
    headers; the connector paces itself on them. Every line must parse as an
    AirbyteMessage, the waits must be stream statuses with the
    RATE_LIMITED reason and a quota_reset in epoch ms, and no 429 may be
    needed: the records are all there.
    """
    config = write_json(work / "rate-limited.json", {"api_key": API_KEY, "base_url": rate_limited_base_url})
    users = [s for s in streams if s["name"] in ("users", "leads")]
    catalog = write_json(work / "rate-limited-catalog.json", configured(users, lambda s: "full_refresh"))
    run = run_connector(connector, "read", "--config", config, "--catalog", catalog, timeout=120)
    assert run.returncode == 0, run.describe()
    messages = parse_messages(run)
    limited = [m for _, m in messages
               if m.type == Type.TRACE and m.trace.stream_status is not None and m.trace.stream_status.reasons]
    assert limited, "no RATE_LIMITED status while pacing"
    for m in limited:
        status = m.trace.stream_status
        assert status.status.value == "RUNNING"
        (reason,) = status.reasons
        assert reason.type.value == "RATE_LIMITED"
        assert reason.rate_limited is not None and reason.rate_limited.quota_reset > time.time() * 1000 - 5000
    records = Counter(m.record.stream for _, m in messages if m.type == Type.RECORD)
    assert records == {"users": count_of("users"), "leads": count_of("leads")}
    assert not [raw for raw, m in messages if m.type == Type.LOG and "429" in m.log.message]
