"""Security of deployment: Kafka TLS/SASL reach aiokafka and faust, API keys never reach a log,
and names that become paths or topics (run ids, sample ids, checkpoint ids) cannot escape.

- TLS/SASL: for every ``security_protocol`` the options built from the config are asserted on the
  objects the clients are made of (the project's producer and consumer, and the mapping faust hands
  to aiokafka), and a real round trip runs over mutual TLS (a TLS proxy in front of Tansu; see
  tls.py) with the project's producer, replay and a faust stage worker.
- API keys: a recognisable key set through the environment and through a key file goes to a local
  HTTP endpoint (it must arrive there) whose error pages echo it back; the captured logs (structlog
  JSON and the stdlib records), exception messages and tracebacks are grepped for it, for the stage
  in-process and for a faust worker on the broker.
- Paths: accepted run ids are single safe path components and valid topic prefixes; derived
  export/replay/result paths stay under their folders; hostile sample ids are rows, never paths.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import ssl
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faust
import pytest
import structlog
from aiokafka.errors import KafkaConnectionError
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bus.config import KafkaSettings
from bus.kafka import (
    EventProducer,
    GroupConsumer,
    KafkaSetupError,
    client_options,
    ensure_topics,
    replay,
)
from bus.topics import TOPICS, topic_name
from bus.worker import faust_broker_options, run_stages
from common.logs import LogSettings, configure_logging, get_logger
from looptool.config import Settings, load_settings
from looptool.wiring import AppClients
from schemas.events import Event, LabelCorrected, Producer, SampleAdded
from streams.judge import JudgeStage
from streams.relabel import RelabelStage
from streams.stage import TransientError
from tests.foundation.events_factory import LABEL, PREDICTION, event_of, sample_added
from tests.reliability.endpoint import Endpoint, serve
from tests.reliability.tls import Certificates, TlsBroker, make_certificates
from tests.streams.test_stage_logic import probe_event, verdict_event

SASL_PASSWORD = "kafka-pw-DO-NOT-LEAK-77"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def kafka_settings(
    protocol: str, certificates: Certificates, mechanism: str | None = "PLAIN"
) -> KafkaSettings:
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = protocol.startswith("SASL")
    return KafkaSettings(
        bootstrap_servers="broker-1:9093,broker-2:9093",
        security_protocol=protocol,  # type: ignore[arg-type]
        ssl_cafile=certificates.ca if tls else None,
        ssl_certfile=certificates.client_cert if tls else None,
        ssl_keyfile=certificates.client_key if tls else None,
        sasl_mechanism=mechanism if sasl else None,  # type: ignore[arg-type]
        sasl_username="looptool" if sasl else None,
        sasl_password=SASL_PASSWORD if sasl else None,  # type: ignore[arg-type]
    )


PROTOCOLS = [
    ("PLAINTEXT", None),
    ("SSL", None),
    *[
        (protocol, mechanism)
        for protocol in ("SASL_PLAINTEXT", "SASL_SSL")
        for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
    ],
]


def assert_verifying_context(context: Any) -> None:
    """A TLS context that verifies the broker against the configured CA, and only that CA."""
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert _trusts(context, "looptool test CA") and not _trusts(context, "some other CA")


def _trusts(context: ssl.SSLContext, common_name: str) -> bool:
    return any(
        dict(item[0] for item in cert["subject"]).get("commonName") == common_name
        for cert in context.get_ca_certs()
    )


@pytest.mark.parametrize(("protocol", "mechanism"), PROTOCOLS)
async def test_security_options_reach_the_project_clients_and_faust(
    protocol: str, mechanism: str | None, certificates: Certificates
) -> None:
    kafka = kafka_settings(protocol, certificates, mechanism)
    options = client_options(kafka)
    tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL")
    assert options["security_protocol"] == protocol
    if tls:
        assert_verifying_context(options["ssl_context"])
    else:
        assert "ssl_context" not in options
    if sasl:
        assert options["sasl_mechanism"] == mechanism
        assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("looptool", SASL_PASSWORD)
    else:
        assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & set(options)

    # The project's producer and group consumer carry exactly these settings into aiokafka's client.
    producer = EventProducer(kafka)
    consumer = GroupConsumer(kafka, "run", ["samples"], "group", producer, Producer(stage="t", version="0"))
    try:
        for client in (producer._producer.client, consumer._consumer._client):
            assert client._security_protocol == protocol
            assert client._bootstrap_servers == "broker-1:9093,broker-2:9093"
            if tls:
                assert_verifying_context(client._ssl_context)
            else:
                assert client._ssl_context is None
            if sasl:
                assert (client._sasl_mechanism, client._sasl_plain_username) == (mechanism, "looptool")
                assert client._sasl_plain_password == SASL_PASSWORD
    finally:
        await consumer._consumer.stop()
        await producer._producer.stop()

    # faust: the app's settings, and what faust's aiokafka driver passes on to its clients.
    broker_options = faust_broker_options(kafka)
    assert broker_options["broker"] == "kafka://broker-1:9093;kafka://broker-2:9093"
    app = faust.App(
        f"security-{protocol}-{mechanism}", autodiscover=False, web_enabled=False, **broker_options
    )
    handed_to_aiokafka = credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context)
    assert handed_to_aiokafka["security_protocol"] == protocol
    if tls:
        assert_verifying_context(handed_to_aiokafka["ssl_context"])
    else:
        assert handed_to_aiokafka.get("ssl_context") is None
    if sasl:
        assert handed_to_aiokafka["sasl_mechanism"] == mechanism
        assert handed_to_aiokafka["sasl_plain_username"] == "looptool"
        assert handed_to_aiokafka["sasl_plain_password"] == SASL_PASSWORD
        assert SASL_PASSWORD not in repr(app.conf.broker_credentials)
    assert SASL_PASSWORD not in repr(kafka) and SASL_PASSWORD not in kafka.model_dump_json()


def test_incomplete_or_wrong_security_settings_fail_at_start(certificates: Certificates) -> None:
    for missing in ("sasl_mechanism", "sasl_username", "sasl_password"):
        kafka = kafka_settings("SASL_SSL", certificates).model_copy(update={missing: None})
        with pytest.raises(KafkaSetupError, match="SASL needs"):
            client_options(kafka)
    mismatched = kafka_settings("SSL", certificates).model_copy(
        update={"ssl_keyfile": certificates.server_key}
    )
    with pytest.raises(ssl.SSLError):  # a key that is not the certificate's is refused, not ignored
        client_options(mismatched)
    with pytest.raises(ValidationError):
        KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI")  # type: ignore[arg-type]


def test_kafka_secrets_come_from_env_and_stay_out_of_repr_and_logs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOOPTOOL_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LOOPTOOL_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LOOPTOOL_KAFKA__SASL_USERNAME", "looptool")
    monkeypatch.setenv("LOOPTOOL_KAFKA__SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("LOOPTOOL_KAFKA__BOOTSTRAP_SERVERS", "kafka:9092")
    loaded = load_settings()
    assert client_options(loaded.kafka)["sasl_plain_password"] == SASL_PASSWORD
    with captured_logs() as (logged, records):
        get_logger("security-test").info("settings", settings=loaded.model_dump(), kafka=loaded.kafka)
        logging.getLogger("aiokafka").warning("stdlib record %s", loaded.kafka)
    for text in (logged(), records(), repr(loaded), str(loaded), loaded.model_dump_json()):
        assert SASL_PASSWORD not in text
    assert '"settings"' in logged() and "looptool" in logged()  # the lines were written


# --- mutual TLS end to end: the project's clients and a faust worker ----------------------------------


@pytest.fixture(scope="module")
def tls_broker(certificates: Certificates) -> Iterator[TlsBroker]:
    broker = TlsBroker(certificates)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def tls_settings(broker: TlsBroker, certificates: Certificates, run_id: str, **kafka: Any) -> Settings:
    options = {
        "bootstrap_servers": broker.bootstrap_servers,
        "security_protocol": "SSL",
        "ssl_cafile": certificates.ca,
        "ssl_certfile": certificates.client_cert,
        "ssl_keyfile": certificates.client_key,
        "request_timeout_s": 10,
        **kafka,
    }
    return load_settings(None, run_id=run_id, kafka=options)


async def _ready(settings: Settings, timeout_s: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await ensure_topics(settings.kafka, settings.run_id)
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _events(settings: Settings, topics: list[str]) -> list[Event[Any]]:
    found: list[Event[Any]] = []
    async for batch in replay(settings.kafka, settings.run_id, topics):
        found.extend(d.event for d in batch)
    return found


@pytest.mark.timeout(240)
async def test_events_flow_over_mutual_tls_through_producer_replay_and_a_faust_worker(
    tls_broker: TlsBroker,
    certificates: Certificates,
    run_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = tls_settings(tls_broker, certificates, run_id)
    await _ready(settings)
    handshakes = tls_broker.proxy.handshakes
    added = [event_of(sample_added(f"s_{i}"), run_id) for i in range(5)]
    async with EventProducer(settings.kafka) as producer:
        await producer.send_all(added)
    assert sorted(e.event_id for e in await _events(settings, ["samples"])) == sorted(
        e.event_id for e in added
    )
    assert tls_broker.proxy.handshakes > handshakes  # the traffic went through the TLS listener

    # A faust stage worker over the same TLS settings: a LABEL_WRONG verdict in, a relabel out.
    monkeypatch.chdir(tmp_path)  # faust writes its app folder into the working directory
    verdict = verdict_event("LABEL_WRONG").model_copy(update={"run_id": run_id})
    stop = asyncio.Event()
    worker = asyncio.create_task(run_stages(settings, [RelabelStage(run_id)], stop))
    try:
        async with EventProducer(settings.kafka) as producer:
            await producer.send_all([verdict])
        deadline = asyncio.get_running_loop().time() + 120
        while not (
            labels := [
                e for e in await _events(settings, ["labels"]) if isinstance(e.payload, LabelCorrected)
            ]
        ):
            assert asyncio.get_running_loop().time() < deadline and not worker.done()
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(worker, timeout=60)
    assert labels[0].payload.new_label == PREDICTION and labels[0].payload.old_label == LABEL


@pytest.mark.parametrize(
    "variant",
    ["plaintext-client", "untrusted-ca", "no-client-certificate"],
)
async def test_clients_without_the_right_tls_settings_are_refused(
    variant: str, tls_broker: TlsBroker, certificates: Certificates, run_id: str
) -> None:
    good = tls_settings(tls_broker, certificates, run_id)
    await _ready(good)
    kafka = {
        "plaintext-client": {"security_protocol": "PLAINTEXT"},
        "untrusted-ca": {"ssl_cafile": certificates.other_ca},
        "no-client-certificate": {"ssl_certfile": None, "ssl_keyfile": None},
    }[variant]
    bad = tls_settings(tls_broker, certificates, run_id, request_timeout_s=3, **kafka)
    # The same broker answers the right settings (above) and refuses these at the TLS handshake.
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        await asyncio.wait_for(ensure_topics(bad.kafka, bad.run_id), timeout=20)


# --- API keys never reach logs or exceptions -----------------------------------------------------------

API_KEY = "sk-looptool-NEVER-LOG-31337"


@contextmanager
def captured_logs() -> Iterator[tuple[Any, Any]]:
    """Everything logged meanwhile: structlog JSON and the stdlib root logger (faust, aiokafka)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    configure_logging(LogSettings(format="json", level="debug"), stream=stream)
    keeper = Keep(level=logging.DEBUG)
    root.addHandler(keeper)
    root.setLevel(logging.DEBUG)
    try:
        yield (
            stream.getvalue,
            lambda: "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}" for r in records),
        )
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


def _everything_said(error: BaseException) -> str:
    """The traceback and every message of the chain a traceback or error reporter shows (``raise ...
    from None`` hides the context it replaced, and so do they)."""
    said = ["".join(traceback.format_exception(error))]
    current: BaseException | None = error
    while current is not None:
        said.append(f"{current!s} {current!r} {current.args}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\n".join(said)


def judge_settings(
    how: str, endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> Settings:
    monkeypatch.setenv("LOOPTOOL_JUDGE__BASE_URL", endpoint.base_url)
    monkeypatch.setenv("LOOPTOOL_JUDGE__MODEL", "judge")
    monkeypatch.setenv("LOOPTOOL_JUDGE__MAX_RETRIES", "1")
    monkeypatch.setenv("LOOPTOOL_JUDGE__TIMEOUT_S", "5")
    if how == "env":
        monkeypatch.setenv("LOOPTOOL_JUDGE__API_KEY", API_KEY)
    else:
        key_file = tmp_path / "judge.key"
        key_file.write_text(API_KEY + "\n", encoding="utf-8")
        key_file.chmod(0o600)
        monkeypatch.setenv("LOOPTOOL_JUDGE__API_KEY_FILE", str(key_file))
    return load_settings(None, **extra)


@pytest.mark.parametrize("how", ["env", "file"])
async def test_api_key_is_sent_but_never_logged_nor_raised(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with serve(Endpoint()) as endpoint:
        settings = judge_settings(how, endpoint, tmp_path, monkeypatch, run_id="r")
        probe = probe_event(PREDICTION)
        with captured_logs() as (logged, records):
            judge = AppClients(settings, log=None).judge()
            get_logger("security-test").info("config", settings=settings.model_dump(), judge=settings.judge)
            [verdict] = await JudgeStage("r", judge).process([probe])
            assert verdict.payload.verdict == "BOTH_CORRECT"
            errors = []
            for mode in ("echo", "reject"):
                endpoint.mode = mode
                with pytest.raises(TransientError) as failed:
                    await JudgeStage("r", judge).process([probe])
                errors.append(failed.value)
            await judge.backend.close()
    assert endpoint.authorizations and set(endpoint.authorizations) == {f"Bearer {API_KEY}"}
    said = [logged(), records(), repr(settings), settings.model_dump_json(), repr(judge.backend)]
    said += [_everything_said(error) for error in errors]
    for text in said:
        assert API_KEY not in text
    assert "openai.retry" in logged() and "you sent Bearer ***" in _everything_said(errors[0])


@pytest.mark.timeout(180)
async def test_a_worker_whose_endpoint_echoes_the_key_never_logs_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment path: config from env, the faust judge worker, its pause-and-retry logs."""
    monkeypatch.chdir(tmp_path)
    await ensure_topics(settings.kafka, settings.run_id)
    async with serve(Endpoint(mode="echo")) as endpoint:
        worker_settings = judge_settings(
            "file",
            endpoint,
            tmp_path,
            monkeypatch,
            run_id=settings.run_id,
            kafka={"bootstrap_servers": settings.kafka.bootstrap_servers},
        )
        probe = probe_event(PREDICTION).model_copy(update={"run_id": settings.run_id})
        with captured_logs() as (logged, records):
            judge = AppClients(worker_settings, log=None).judge()
            stop = asyncio.Event()
            worker = asyncio.create_task(
                run_stages(worker_settings, [JudgeStage(settings.run_id, judge)], stop)
            )
            try:
                async with EventProducer(settings.kafka) as producer:
                    await producer.send_all([probe])
                deadline = asyncio.get_running_loop().time() + 90
                while len(endpoint.authorizations) < 4 or "stage.paused" not in logged():
                    assert asyncio.get_running_loop().time() < deadline and not worker.done()
                    await asyncio.sleep(0.3)
            finally:
                stop.set()
                await asyncio.wait_for(worker, timeout=60)
    assert set(endpoint.authorizations) == {f"Bearer {API_KEY}"}
    assert "you sent Bearer ***" in logged()  # the echoed page was logged, with the key masked
    assert API_KEY not in logged() and API_KEY not in records()


# --- names that become paths or topics ----------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["..", ".", "a/b", "a\\b", "../../etc", "~root", "a\x00b", "run-1", "A_b-9"]),
    )
)
def test_an_accepted_run_id_is_a_safe_path_component_and_topic_prefix(run_id: str) -> None:
    try:
        settings = load_settings(None, run_id=run_id)
    except ValidationError:
        return
    assert run_id not in (".", "..") and os.sep not in run_id and "\\" not in run_id and "\x00" not in run_id
    assert Path(run_id).name == run_id and not Path(run_id).is_absolute()
    for spec in TOPICS:
        assert topic_name(settings.run_id, spec.name).startswith(run_id + ".")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_paths_derived_from_event_ids_stay_in_their_folders(checkpoint_id: str) -> None:
    from looptool.cli.evaluate import default_results_path
    from views.export import default_export_path
    from views.replay import Cut, default_replay_path

    settings = load_settings(
        None, run_id="run-1", store={"path": "/srv/looptool/store"}, eval={"results_dir": "/srv/eval"}
    )
    paths = [(default_export_path(settings, 3, "jsonl"), Path("/srv/looptool/exports/run-1"))]
    paths.append(
        (default_replay_path(settings, Cut(checkpoint_id=checkpoint_id)), Path("/srv/looptool/replay/run-1"))
    )
    paths.append((default_results_path(settings, checkpoint_id), Path("/srv/eval/run-1")))
    for path, folder in paths:
        assert path.parent == folder, (checkpoint_id, path)
        assert path.name not in ("", ".", "..") and "\x00" not in path.name


HOSTILE_SAMPLE_IDS = [
    "../../../../etc/passwd",
    "/absolute/path",
    "x' OR '1'='1",
    "'); DROP TABLE samples; --",
    'a"b',
    "back\\slash",
    "new\nline",
    "naïve ünïcode",
    "%2e%2e%2f",
    "",
]


def test_hostile_sample_ids_are_rows_not_paths(tmp_path: Path) -> None:
    from views.store import SampleStore

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    store_path = tmp_path / "outside" / "store"
    store = SampleStore(store_path)
    before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(store_path)}
    added = [event_of(sample_added(sample_id), "r") for sample_id in HOSTILE_SAMPLE_IDS]
    store.apply(added)
    quoted = next(e for e in added if e.payload.sample_id == "x' OR '1'='1")
    fix = event_of(
        LabelCorrected(
            sample_id="x' OR '1'='1", round=1, old_label=LABEL, new_label=PREDICTION, reason="test"
        ),
        "r",
        parent_ids=[quoted.event_id],
    )
    store.apply([fix])
    after = {p for p in tmp_path.rglob("*") if not p.is_relative_to(store_path)}
    assert after == before and (outside / "keep.txt").read_text() == "untouched"
    rows = {row["sample_id"]: row for row in store.rows("samples")}
    assert set(rows) == set(HOSTILE_SAMPLE_IDS)
    # The quote-bearing id relabelled only itself: ids are escaped in the store's queries.
    relabelled = {sid for sid, row in rows.items() if row["relabel_count"]}
    assert relabelled == {"x' OR '1'='1"}
    assert json.loads(rows["x' OR '1'='1"]["current_label_json"]) == PREDICTION.model_dump(mode="json")
    assert {e.payload.sample_id for e in added if isinstance(e.payload, SampleAdded)} == set(
        HOSTILE_SAMPLE_IDS
    )


def test_resetting_a_store_never_deletes_a_folder_that_is_not_a_store(tmp_path: Path) -> None:
    from views.store import SampleStore

    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(Exception, match="not a sample store"):
        SampleStore.reset(precious)
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_redaction_masks_secret_keys_but_not_token_counts() -> None:
    from common.logs import REDACTED, redact_secrets

    logged = redact_secrets(
        None,
        "info",
        {
            "api_token": "s3cr3t",
            "AuthToken": "s3cr3t",
            "nested": {"password": "x"},
            "tokens": 1124,
            "tokens_per_s": 709.5,
            "max_tokens": 96,
        },
    )
    assert logged["api_token"] == logged["AuthToken"] == logged["nested"]["password"] == REDACTED
    assert (logged["tokens"], logged["tokens_per_s"], logged["max_tokens"]) == (1124, 709.5, 96)
