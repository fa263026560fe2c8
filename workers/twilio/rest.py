"""A twilio-python HTTP client that sends ``https://*.twilio.com`` traffic where threadline does.

``twilio.rest.Client(..., http_client=RebasingHttpClient(settings))`` behaves exactly like the
stock client except that every URL goes through :func:`workers.twilio.urls.rebase` — the same
mechanism ``THREADLINE_TWILIO_BASE_URL`` uses everywhere in threadline — so the library's own
requests reach the twin (or a proxy) unchanged. Without a base URL it is the stock client.
With ``user_agent`` its requests say who sent them (``threadline/…`` for threadline's own, e.g.
`threadline connect`, which the contract test then checks against Twilio's specs).
"""
from __future__ import annotations

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from workers.foundations.settings import Settings
from workers.twilio.urls import rebase


class RebasingHttpClient(TwilioHttpClient):
    def __init__(self, settings: Settings, user_agent: str | None = None, **kwargs: object) -> None:
        kwargs.setdefault("timeout", settings.twilio_timeout)
        super().__init__(**kwargs)
        self.settings = settings
        self.user_agent = user_agent

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> Response:
        headers = kwargs.get("headers")
        if self.user_agent is not None and isinstance(headers, dict):
            kwargs["headers"] = {**headers, "User-Agent": self.user_agent}
        return super().request(method, rebase(self.settings, url), *args, **kwargs)
