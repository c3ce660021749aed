"""The officials' console behind HAProxy (issue 23, item 5): a person's session outlives the
console that signed them in (docs/adr/0017: the session is a cookie signed with the secret the
two consoles share), and a report form sent across the restart makes exactly one event.

Plain HTTP, as a browser with JavaScript off sends it: the development sign-in form with its
CSRF token, then the pages and the report form with the same cookie. HAProxy names the console
that answered each request (`X-Served-By`), so the one killed is the one that signed the person in.
"""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser

import asyncpg
import httpx

from deploy.demo.samples import programme
from deploy.local.cluster import LocalCluster
from deploy.tokens import demo_token
from services.console.sessions import COOKIE
from tests.cluster.conftest import record
from tests.faults.harness import STARTED_WITHIN, wait_until

# A demo official (services/console/officials.py) and the body she acts for.
OFFICIAL, NAME, PARTY = "demo-nguyen-thi-hoa", "Nguyễn Thị Hoa", "mttq-phu-tho"
OBLIGATION = "nhan-dao"  # led by the province's Front committee in deploy/demo/samples.programme


class _Inputs(HTMLParser):
    """The name and value of each <input> of a page (the hidden CSRF token and form key among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        if tag == "input" and fields.get("name"):
            self.values[str(fields["name"])] = fields.get("value") or ""


def inputs(page: httpx.Response) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(page.text)
    return parser.values


async def _up(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.TransportError:
        return False


async def test_a_session_survives_the_console_that_signed_it_in(
    cluster: LocalCluster, pool: asyncpg.Pool
) -> None:
    scenario = "C6 console kill -9"
    # An agreement whose obligation the person's body leads, signed and projected.
    key = str(uuid.uuid4())
    body = programme("Phú Thọ", "phu-tho", f"{key[:8]}/CTPH-MTTQ-HCTĐ")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {demo_token()}"}, timeout=10) as api:
        signed = await api.post(
            f"{cluster.registry_url}/v1/agreements", json=body, headers={"Idempotency-Key": key}
        )
        assert signed.status_code == 201, signed.text
        agreement = signed.json()["agreement_id"]
        projected = await api.get(
            f"{cluster.projections_url}/v1/agreements/{agreement}",
            params={"min_position": signed.json()["position"]},
        )
        assert projected.status_code == 200, projected.text

    # Signed in through HAProxy: the sign-in page draws a session and its CSRF token, the form
    # sent with them gives the person's cookie.
    async with httpx.AsyncClient(base_url=cluster.console_url, timeout=10) as browser:
        form = await browser.get("/dang-nhap")
        answer = await browser.post("/dang-nhap", data={"csrf": inputs(form)["csrf"], "official": OFFICIAL})
    assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
    cookie = {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}"}
    victim = answer.headers["X-Served-By"]
    survivor = "console-2" if victim == "console-1" else "console-1"
    number = int(victim.rpartition("-")[2])
    direct = f"http://127.0.0.1:{cluster.ports.consoles[number - 1]}"

    async with httpx.AsyncClient(base_url=cluster.console_url, headers=cookie, timeout=10) as person:
        mine = await person.get("/")
        assert mine.status_code == 200 and NAME in mine.text and body["obligations"][0]["title"] in mine.text
        # The report form, drawn before the kill: its CSRF token and its Idempotency-Key.
        drawn = inputs(await person.get(f"/bao-cao/{agreement}/{OBLIGATION}"))
        report = {
            **{name: drawn[name] for name in ("csrf", "idempotency_key", "period", "reported_on")},
            "party_id": PARTY,
            "status": "in_progress",
            "completion_percent": "40",
            "summary": f"Báo cáo qua cụm {key}",
        }

        killed = time.monotonic()
        cluster.processes[victim].kill()
        # Every request below goes to the other console by construction: HAProxy's checks have
        # taken the killed one out.
        await wait_until(lambda: _taken_out(cluster, number), 30, 0.05)
        out_after = time.monotonic() - killed
        served = []
        for _ in range(4):
            page = await person.get("/")
            assert page.status_code == 200 and NAME in page.text, page.text
            served.append(page.headers["X-Served-By"])
        assert set(served) == {survivor}
        sent = await person.post(f"/bao-cao/{agreement}/{OBLIGATION}", data=report)
        assert sent.status_code == 303 and sent.headers["X-Served-By"] == survivor, sent.text

    cluster.start_service(victim)
    async with httpx.AsyncClient(base_url=direct, headers=cookie, timeout=10) as restarted:
        ready = await wait_until(lambda: _up(restarted), STARTED_WITHIN)
        page = await restarted.get("/")
        assert page.status_code == 200 and NAME in page.text, page.text
        # The same form again, on the restarted console: the registry answers it from its key.
        again = await restarted.post(f"/bao-cao/{agreement}/{OBLIGATION}", data=report)
        assert again.status_code == 303 and again.headers["location"] == sent.headers["location"]
        stored = await restarted.get(sent.headers["location"])
        assert stored.status_code == 200 and report["summary"] in stored.text

    reports = await pool.fetch(
        "SELECT envelope::jsonb ->> 'actor' AS actor FROM registry.events "
        "WHERE agreement_id = $1 AND event_type LIKE '%.ProgressReported.v1'",
        agreement,
    )
    record(scenario, "console killed (it had signed the person in)", victim)
    record(scenario, "kill until HAProxy's checks took it out (s)", f"{out_after:.1f}")
    record(scenario, "pages with the same cookie after the kill, all served by", f"{len(served)}, {survivor}")
    record(scenario, "restart until it answered (s)", f"{ready:.1f}")
    record(scenario, "report events for one form sent before and after the restart", len(reports), "1")
    assert [row["actor"] for row in reports] == [OFFICIAL]


async def _taken_out(cluster: LocalCluster, number: int) -> bool:
    # DOWN, not merely a first failed check (`UP 1/2`), after which HAProxy still sends it requests.
    return cluster.balancer.server_status("console", number) == "DOWN"
