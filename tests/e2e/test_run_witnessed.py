"""`make run`'s witnesses: the real command (`coordreg-stack run`), its data in a temporary
folder and every port moved to a free one, brings up two litewitness and one omniwitness, hands
their 2-of-3 policy to the registry, the relay and the console, and the demo's checkpoint is
cosigned by all three through the relay's own feeder. Stopped and started again, the witnesses
keep their keys and state: the feeder resumes where it stopped, and no witness answers with
another size (409). Witnesses whose folder was deleted start afresh under new key names, and
cosign the kept log from its start. The witnesses' folder of another database is started afresh.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from deploy.local.processes import free_ports
from deploy.local.stack import StackSettings, env_variable, witness_port_field
from deploy.local.witnesses import STACK_WITNESSES, LocalWitnesses
from deploy.tokens import demo_token
from services.transparency import note
from services.transparency.log import DEV_LOG_ORIGIN, DEV_LOG_VERIFIER_KEY
from services.transparency.policy import Policy, parse_policy
from tests.support.builders import sign_body

ROOT = Path(__file__).resolve().parents[2]
COMMAND = Path(sys.executable).parent / "coordreg-stack"
PORTS = (
    "postgres_port",
    "kafka_port",
    "kafka_controller_port",
    "registry_port",
    "projections_port",
    "console_port",
    *(witness_port_field(name) for name in STACK_WITNESSES),
)
UP_SECONDS = 300.0  # a bound on a start (Kafka's first start, a first build of the witnesses)
WAIT_SECONDS = 60.0
READY = "press Ctrl-C to stop"
HEADERS = {"Authorization": f"Bearer {demo_token()}"}


class Run:
    """One `coordreg-stack run`, its output read line by line as it comes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(COMMAND), "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, seconds: float = UP_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while not any(text in line for line in self.lines):
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {seconds}s:\n" + "\n".join(self.lines)) from None
            assert line is not None, f"the run ended before {text!r}:\n" + "\n".join(self.lines)
            self.lines.append(line)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; its exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            raise AssertionError("the run did not stop within 120s on Ctrl-C") from None


@contextlib.contextmanager
def running(env: dict[str, str]) -> Iterator[Run]:
    run = Run(env)
    try:
        run.wait_for(READY)
        yield run
    finally:
        status = run.stop()
    assert status == 0, "\n".join(run.lines)


def served_checkpoint(registry: str) -> httpx.Response:
    response = httpx.get(f"{registry}/v1/log/checkpoint", headers=HEADERS, timeout=10)
    assert response.status_code == 200, response.text
    return response


def size_of(checkpoint: str) -> int:
    return note.Checkpoint.parse(note.parse_note(checkpoint).body).size


def proof_page(console: str) -> str:
    """The console's proof page of an agreement, as the first demo official sees it."""
    with httpx.Client(base_url=console, timeout=30) as browser:
        form = browser.get("/dang-nhap").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        official = re.search(r'name="official"[^>]* value="([^"]+)"', form)
        assert csrf and official, form
        signed_in = browser.post("/dang-nhap", data={"csrf": csrf[1], "official": official[1]})
        assert signed_in.status_code == 303, signed_in.text
        agreement = re.search(r'href="/thoa-thuan/([0-9a-f-]{36})"', browser.get("/").text)
        assert agreement, "the home page lists no agreement"
        page = browser.get(f"/thoa-thuan/{agreement[1]}/chung-minh")
        assert page.status_code == 200, page.text
        return page.text


def test_make_run_is_witnessed_by_three_standard_witnesses_and_resumes(tmp_path: Path) -> None:
    assert COMMAND.exists(), f"{COMMAND} is installed by `make venv`"
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    local = tmp_path / "local"
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}}
    env |= {env_variable(field): str(port) for field, port in ports.items()}
    env |= {
        "COORDREG_LOCAL_DIR": str(local),
        # No fixed metrics listeners (another run's may hold them), checkpoints every second.
        "REGISTRY_RELAY_METRICS_PORT": "0",
        "PROJECTIONS_WORKER_METRICS_PORT": "0",
        "REGISTRY_LOG_CHECKPOINT_SECONDS": "1",
    }
    assert set(PORTS) <= set(StackSettings.model_fields)
    registry = f"http://127.0.0.1:{ports['registry_port']}"
    console = f"http://127.0.0.1:{ports['console_port']}"
    policy_file = local / "witnesses" / "policy"

    with running(env) as first:
        for name in STACK_WITNESSES:
            port = ports[witness_port_field(name)]
            assert any(
                f"{name} (" in line and f"127.0.0.1:{port}/add-checkpoint" in line for line in first.lines
            )
        assert any("quorum met" in line for line in first.lines), "\n".join(first.lines)
        policy_text = policy_file.read_text(encoding="utf-8")
        policy = parse_policy(policy_text)
        assert [w.name for w in policy.witnesses] == list(STACK_WITNESSES)
        served = served_checkpoint(registry)
        assert served.headers["Witness-Quorum"] == "met"
        assert policy.cosigners(served.text) == list(STACK_WITNESSES)
        before = size_of(served.text)
        page = proof_page(console)
        assert "Đã đủ" in page and "Chưa đủ" not in page
        assert all(f"{w.verifier.name}" in page for w in policy.witnesses)

    relay_log = local / "logs" / "relay.log"
    relay_seen = relay_log.stat().st_size
    with running(env) as second:
        # Same keys: the policy names the same witnesses as before.
        assert policy_file.read_text(encoding="utf-8") == policy_text
        assert not any("started afresh" in line for line in second.lines)
        signed = httpx.post(f"{registry}/v1/agreements", json=sign_body(), headers=HEADERS, timeout=30)
        assert signed.status_code == 201, signed.text
        latest = _wait_cosigned_beyond(registry, policy, before)
        assert size_of(latest) > before
    after = relay_log.read_text(encoding="utf-8", errors="replace")[relay_seen:]
    # Each witness took the new checkpoint from the size it had cosigned: none answered with
    # another size, as a witness that had lost its state would (409 with size 0).
    assert "witness holds another size" not in after, after[-3000:]
    assert "witness feeder is the leader" in after

    # The witnesses' state lost, the database kept: new witnesses, new key names, the quorum
    # met again on the log as it is.
    shutil.rmtree(local / "witnesses")
    with running(env) as third:
        assert any("quorum met" in line for line in third.lines), "\n".join(third.lines)
        renewed = parse_policy(policy_file.read_text(encoding="utf-8"))
        assert [w.name for w in renewed.witnesses] == list(STACK_WITNESSES)
        old_names = {w.verifier.name for w in policy.witnesses}
        assert not old_names & {w.verifier.name for w in renewed.witnesses}
        served = served_checkpoint(registry)
        assert served.headers["Witness-Quorum"] == "met"
        assert renewed.cosigners(served.text) == list(STACK_WITNESSES)


def _wait_cosigned_beyond(registry: str, policy: Policy, size: int) -> str:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        served = served_checkpoint(registry)
        if size_of(served.text) > size and policy.cosigners(served.text) == list(STACK_WITNESSES):
            assert served.headers["Witness-Quorum"] == "met"
            return served.text
        assert time.monotonic() < deadline, (
            f"no checkpoint beyond {size} cosigned by all three:\n{served.text}"
        )
        time.sleep(0.2)


def key_names(policy_text: str) -> list[str]:
    return [w.verifier.name for w in parse_policy(policy_text).witnesses]


def test_the_witnesses_of_another_database_or_log_start_afresh(tmp_path: Path) -> None:
    """Kept for the same database and log key; emptied, new keys and all, for another (a reset
    database: its witnesses would refuse the new, smaller tree) or another log key."""
    ports = dict(zip(STACK_WITNESSES, free_ports(len(STACK_WITNESSES)), strict=True))

    def prepared(identity: str, log_vkey: str = DEV_LOG_VERIFIER_KEY) -> tuple[bool, str]:
        witnesses = LocalWitnesses(tmp_path / "witnesses", ports, tmp_path / "logs")
        (tmp_path / "logs").mkdir(exist_ok=True)
        try:
            reset = witnesses.prepare(identity, DEV_LOG_ORIGIN, log_vkey)
            return reset, witnesses.policy_file.read_text(encoding="utf-8")
        finally:
            witnesses.stop()

    reset, first = prepared("7716576414083731632/5")
    assert not reset
    assert prepared("7716576414083731632/5") == (False, first)
    reset, other_database = prepared("7716576414083731633/5")
    assert reset and other_database != first
    # New witnesses, new key names (the policy names stay).
    assert not set(key_names(first)) & set(key_names(other_database))
    other_key = note.verifier_key(DEV_LOG_ORIGIN, bytes(32))
    reset, _ = prepared("7716576414083731633/5", other_key)
    assert reset
