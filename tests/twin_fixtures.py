"""The twin as the Twilio peer of every test: one ``threadline twin`` process per test session.

Use the function fixture ``twin`` (it resets the twin first) and hand its settings to the code
under test::

    def test_something(twin):
        env = twin.env()                       # for a threadline subprocess (Proc(..., env=env))
        settings = twin.settings()             # for in-process code (load_settings(...) overrides)
        config_id = twin.create_configuration()            # a COMPLETED v2 configuration
        twin.set_faults(rate_500=0.3, path="/Communications")
        ...
        state = twin.wait_for(lambda s: len(s["conversations"]) == 1)
        conv = state["conversations"][0]       # with "participants" and "communications"
        assert twin.count("POST /v2/Conversations", 201) == 1

Traffic from Twilio's side (the twin sends the signed webhooks; ``receiver`` is a real HTTP
server that records them, when the test is not pointing the twin at ``threadline web``)::

        twin.give_number("+14155550100", SmsUrl=web.url + "/webhooks/twilio/messaging")
        twin.create_sink(web.url + "/webhooks/twilio/events", ["com.twilio.messaging.message.delivered"])
        twin.simulate_message(from_="+14155550123", to="+14155550100", body="Hi")
        twin.simulate_call(from_=…, to=…, utterances=[{"track": "inbound_track", "text": "…"}])
        attempts = twin.wait_deliveries("incoming_message", 1)   # each with status or error

The session twin records every request (``twin.record_path``, JSON lines); tests/twilio/test_contract.py
validates the ones threadline sent against ../shared/specs at the end of the run.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.procs import Proc, free_port

API_KEY = "SK" + "7" * 32
API_SECRET = "twin-test-api-secret"
# A subaccount the twin also accepts (as THREADLINE_AUTH_TOKENS would list it).
SUBACCOUNT_SID = "AC" + "5" * 32
SUBACCOUNT_TOKEN = "fedcba9876543210fedcba9876543210"


class TwinHandle:
    """A test's view of the session twin: its address, credentials and control API."""

    account_sid = ACCOUNT_SID
    auth_token = AUTH_TOKEN
    api_key = API_KEY
    api_secret = API_SECRET
    subaccount_sid = SUBACCOUNT_SID
    subaccount_token = SUBACCOUNT_TOKEN

    def __init__(self, base_url: str, record_path: Path, proc: Proc) -> None:
        self.base_url = base_url
        self.record_path = record_path
        self.proc = proc
        self._control = httpx.Client(base_url=base_url + "/_twin", timeout=10)

    @property
    def url(self) -> str:
        """The same as ``base_url`` (what THREADLINE_TWILIO_BASE_URL should be)."""
        return self.base_url

    # --- pointing threadline at the twin ---------------------------------------------------

    def env(self, api_key: bool = False) -> dict[str, str]:
        """Environment for a threadline process: base URL and credentials (API key if asked)."""
        env = {"THREADLINE_TWILIO_BASE_URL": self.base_url,
               "TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_AUTH_TOKEN": self.auth_token}
        if api_key:
            env.update(TWILIO_API_KEY=self.api_key, TWILIO_API_SECRET=self.api_secret)
        return env

    def settings(self, **overrides: Any) -> Any:
        """``workers.foundations.settings.Settings`` aimed at the twin (keyword overrides by field name)."""
        from workers.foundations.settings import load_settings

        fields = {"twilio_base_url": self.base_url, "twilio_account_sid": self.account_sid,
                  "twilio_auth_token": self.auth_token, **overrides}
        return load_settings(**fields)

    def client(self) -> Any:
        """A stock ``twilio.rest.Client`` whose traffic goes to the twin."""
        from twilio.rest import Client

        from workers.twilio.rest import RebasingHttpClient

        return Client(self.account_sid, self.auth_token,
                      http_client=RebasingHttpClient(self.settings()))

    def http(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the twin's API, authenticated as the account."""
        kwargs.setdefault("auth", (self.account_sid, self.auth_token))
        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 10), **kwargs)

    # --- control API --------------------------------------------------------------------------

    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._control.request(method, path, json=json)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Empty state, no faults, zero counts, the start-up operation delay."""
        self._call("POST", "/reset")

    def set_faults(self, **spec: Any) -> dict[str, Any]:
        """Replace the faults: latency_ms, jitter_ms, rate_429, retry_after, rate_500, rate_503,
        rate_timeout, hold_seconds, path (regex), seed. Omitted = off."""
        return self._call("POST", "/faults", spec)

    def clear_faults(self) -> None:
        self._call("POST", "/faults", {})

    def set_operation_delay(self, seconds: float) -> None:
        self._call("POST", "/operation-delay", {"seconds": seconds})

    def state(self) -> dict[str, Any]:
        """configurations, operations, conversations (each with participants and
        communications), messages, memory (store id → profiles with identifiers)."""
        return self._call("GET", "/state")

    def conversations(self, status: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.state()["conversations"]
                if status is None or c["status"] == status]

    def counts(self) -> dict[str, Any]:
        """``{"total": n, "routes": {"POST /v2/Conversations": {"201": 3, "500": 1}}}``."""
        return self._call("GET", "/counts")

    def count(self, route: str, status: int | None = None) -> int:
        """Requests to ``route`` (e.g. ``"POST /v2/Conversations"``), of one status or all."""
        by_status = self.counts()["routes"].get(route, {})
        if status is None:
            return sum(by_status.values())
        return by_status.get(str(status), 0)

    def seed_message(self, from_: str, to: str, body: str, sid: str | None = None,
                     **fields: Any) -> dict[str, Any]:
        """Make a Message fetchable at /2010-04-01/Accounts/{sid}/Messages/{sid}.json
        (``account_sid=twin.subaccount_sid`` puts it in the subaccount)."""
        data = {"from": from_, "to": to, "body": body, **fields}
        if sid:
            data["sid"] = sid
        return self._call("POST", "/messages", data)

    def give_number(self, phone_number: str, **urls: str) -> dict[str, Any]:
        """Give the account a number (``POST /_twin/numbers``) and set its URLs through the
        core API (``SmsUrl=…, VoiceUrl=…, StatusCallback=…`` as Twilio spells them)."""
        number = self._call("POST", "/numbers", {"phoneNumber": phone_number})
        if urls:
            with self.http() as http:
                r = http.post(f"/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers/"
                              f"{number['sid']}.json", data=urls)
                r.raise_for_status()
                number = r.json()
        return number

    def simulate_message(self, **body: Any) -> dict[str, Any]:
        """``POST /_twin/simulate/message`` (``from_=`` for ``from``) → ``{"sid", "status"}``."""
        if "from_" in body:
            body["from"] = body.pop("from_")
        return self._call("POST", "/simulate/message", body)

    def simulate_call(self, **body: Any) -> dict[str, Any]:
        """``POST /_twin/simulate/call`` (``from_=`` for ``from``) → ``{"sid", "status"}``."""
        if "from_" in body:
            body["from"] = body.pop("from_")
        return self._call("POST", "/simulate/call", body)

    def create_sink(self, destination: str, types: list[str]) -> str:
        """An Event Streams webhook sink subscribed to ``types``, through the API; its SID."""
        events = self.client().events.v1
        sink = events.sinks.create(description="test sink", sink_type="webhook",
                                   sink_configuration={"destination": destination,
                                                       "method": "POST", "batch_events": True})
        events.subscriptions.create(description="test subscription", sink_sid=sink.sid,
                                    types=[{"type": t} for t in types])
        return sink.sid

    def deliveries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every webhook attempt the twin made (``kind``: incoming_message, message_status,
        incoming_call, call_status, transcription, event_streams), oldest first."""
        return [d for d in self.state()["deliveries"] if kind in (None, d["kind"])]

    def resend(self, kind: str) -> list[int]:
        """Twilio retrying: every attempt of ``kind`` sent again, signed as Twilio signs it;
        the status codes answered."""
        from twilio.request_validator import RequestValidator

        validator = RequestValidator(self.auth_token)
        return [httpx.post(d["url"], data=d["params"], timeout=10, headers={
            "X-Twilio-Signature": validator.compute_signature(d["url"], d["params"])}).status_code
            for d in self.deliveries(kind)]

    def wait_deliveries(self, kind: str, count: int, timeout: float = 10.0
                        ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` attempts of ``kind`` were made; those attempts."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries(kind)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} {kind} deliveries, wanted {count}")
            time.sleep(0.05)

    def create_memory_store(self, store_id: str | None = None) -> str:
        return self._call("POST", "/memory/stores", {"id": store_id} if store_id else {})["id"]

    # --- shortcuts through the real API ---------------------------------------------------------

    def create_profile(self, store_id: str, **identifiers: str | list[str]) -> str:
        """A Memory profile holding identifiers, e.g. ``phone=["+1…", "+1…"], whatsapp="+1…"``."""
        with self.http() as http:
            pairs = [(t, v) for t, vs in identifiers.items()
                     for v in ([vs] if isinstance(vs, str) else vs)]
            first_type, first_value = pairs[0]
            r = http.post(f"/v1/Stores/{store_id}/Profiles",
                          json={"traits": {"Contact": {first_type: first_value}}})
            r.raise_for_status()
            profile_id = r.json()["id"]
            for id_type, value in pairs[1:]:
                http.post(f"/v1/Stores/{store_id}/Profiles/{profile_id}/Identifiers",
                          json={"idType": id_type, "value": value}).raise_for_status()
        return profile_id

    def create_configuration(self, **fields: Any) -> str:
        """A v2 configuration, created through the API and waited for (operation COMPLETED)."""
        body = {"displayName": "test", "description": "created by a test",
                "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE",
                "memoryStoreId": "mem_store_00000000000000000000000000", **fields}
        with self.http() as http:
            r = http.post("/v2/ControlPlane/Configurations", json=body)
            r.raise_for_status()
            config_id = r.json()["related"]["configurationId"]
            op_path = "/" + r.json()["statusUrl"].split("/", 3)[3]
            deadline = time.monotonic() + 10
            while http.get(op_path).json()["status"] == "PENDING":
                if time.monotonic() > deadline:
                    raise TimeoutError("configuration operation still PENDING")
                time.sleep(0.02)
        return config_id

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                 timeout: float = 10.0) -> dict[str, Any]:
        """Poll :meth:`state` until ``predicate(state)`` holds; the last state on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"twin state never satisfied the condition: "
                                   f"{len(state['conversations'])} conversations")
            time.sleep(0.05)


class Receiver:
    """A real HTTP server standing in for a webhook's owner: it records every request and
    answers with ``status``/``body``/``content_type`` (set them per test; TwiML for voice)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[dict[str, Any]] = []
        self.status, self.body, self.content_type = 200, "<Response/>", "text/xml"
        self.bodies: dict[str, str] = {}  # path → answer body (overrides ``body``)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                receiver.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers.items()),
                                          "body": raw.decode("utf-8", "replace")})
                path = self.path.split("?", 1)[0]
                answer = receiver.bodies.get(path, receiver.body).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", receiver.content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.requests)} requests received, wanted {count}")
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="session")
def twin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinHandle]:
    """The session's ``threadline twin``, recording every request to a JSONL file."""
    port = free_port()
    record = tmp_path_factory.mktemp("twin") / "requests.jsonl"
    record.touch()
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
           "TWILIO_API_KEY": API_KEY, "TWILIO_API_SECRET": API_SECRET,
           "THREADLINE_AUTH_TOKENS": f"{SUBACCOUNT_SID}={SUBACCOUNT_TOKEN}",
           "THREADLINE_TWILIO_BASE_URL": ""}
    base_url = f"http://127.0.0.1:{port}"
    proc = Proc(["twin", "--port", str(port), "--record", str(record)], env,
                ready_url=base_url + "/_twin/healthz")
    handle = TwinHandle(base_url, record, proc)
    try:
        yield handle
    finally:
        proc.stop()


@pytest.fixture
def twin(twin_server: TwinHandle) -> TwinHandle:
    """The session twin, reset: no state, no faults, zero counts."""
    twin_server.reset()
    return twin_server
