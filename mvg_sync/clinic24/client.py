"""HTTP client for the Clinic24 integration API: token, reads, and batched idempotent upserts."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import orjson

from mvg_sync.clinic24.baseurl import InsecureBaseURL, check_base_url
from mvg_sync.clinic24.payloads import (
    BOOKING_BASIS_SYSTEM,
    BOOKING_SYSTEM,
    HSA_SYSTEM,
    PATIENT_ID_SYSTEMS,
    upsert_url,
)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)  # ~5x cheaper than json for 100-entry bodies


def _loads(data: bytes) -> Any:
    return orjson.loads(data)


log = logging.getLogger(__name__)
_DIAGNOSTICS_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,80}")
T = TypeVar("T")
# The Prefect Secret block named in the credentials message (settings.CLIENT_SECRET_BLOCK; not
# imported, so the client stays free of the settings and Prefect imports).
_SECRET_BLOCK = "clinic24-client-secret"  # noqa: S105 - a block name, not a secret

FHIR_JSON = "application/fhir+json"
MAX_BATCH = 100
RETRY_AFTER_CAP_S = 60.0
_STAT_KEYS = (
    "requests",
    "retries",
    "throttled",
    "token_fetches",
    "pacing_wait_s",
    "http_wait_s",
    "encode_s",
)
Outcome = Literal["accepted", "stale", "rejected", "transient"]


class Clinic24Error(RuntimeError):
    """Base of the client's errors; messages never hold credentials, tokens or patient data."""


class Clinic24AuthError(Clinic24Error):
    """Clinic24 refused the client's access: a configuration error, never retried."""


class Clinic24CredentialsRejected(Clinic24AuthError):
    """The token endpoint refused the client id/secret; `str()` is one line naming the URL and the fix."""


class Clinic24UnavailableError(Clinic24Error):
    """A call still failed (5xx, 429, timeout, connection) after the retry policy gave up."""


class Clinic24Unreachable(Clinic24UnavailableError):
    """No connection to Clinic24 at all; `str()` is one line naming the URL, the cause and the fix."""


__all__ = [
    "Clinic24AuthError",
    "Clinic24BatchRefusedError",
    "Clinic24Client",
    "Clinic24CredentialsRejected",
    "Clinic24Error",
    "Clinic24ProtocolError",
    "Clinic24UnavailableError",
    "Clinic24Unreachable",
    "EntryOutcome",
    "InsecureBaseURL",
    "RetryPolicy",
    "UpsertEntry",
]


class Clinic24ProtocolError(Clinic24Error):
    """Clinic24 answered something the API contract does not allow for this call."""


class Clinic24BatchRefusedError(Clinic24ProtocolError):
    """Clinic24 refused a whole batch with a status the batch contract does not have.

    The contract gives a whole batch only 200, 401, 413, 429 or 5xx; anything else (403, 404,
    400, a redirect) says the client is pointed or configured wrongly, not that any entry is bad.
    Raising leaves every unsettled entry pending instead of dead-lettering it.
    """

    def __init__(self, http_status: int, code: str | None, request_id: str | None) -> None:
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        # Only the status, the OperationOutcome code and our request id: Clinic24's diagnostics
        # are free text and could echo what was sent.
        super().__init__(
            f"Clinic24 refused a whole batch (HTTP {http_status}, code {code or 'none'}, "
            f"request id {request_id}); check CLINIC24_BASE_URL and the client's access. "
            "The batch's entries stay pending"
        )


@dataclass(frozen=True, slots=True)
class UpsertEntry:
    """One conditional upsert: `change_id` is the caller's (outbox) id, `key` the Cosmic id."""

    change_id: str
    resource_type: str
    key: str
    # The resource, or its JSON text as the outbox stores it (sent verbatim: parsing 250k
    # payloads only to encode them again cost 10 s of an initial load). It holds personnummer
    # and name: keep it out of reprs.
    resource: dict | str = field(repr=False)


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    """How Clinic24 settled one entry. `version` comes from the ETag of an accepted write."""

    change_id: str
    outcome: Outcome
    http_status: int | None
    version: str | None = None
    code: str | None = None
    diagnostics: str | None = None
    expression: list[str] | None = None


class _RedactQuery(logging.Filter):
    """httpx logs every URL at INFO; search URLs carry personnummer, so drop the query part."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and isinstance(args[1], httpx.URL):
            record.args = (args[0], args[1].copy_with(query=None), *args[2:])
        return True


_REDACT = _RedactQuery()


class _TokenBucket:
    """Client-side pacing so a bulk load stays under Clinic24's rate limit instead of hitting 429."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                if now < self._paused_until:
                    wait = self._paused_until - now
                else:
                    self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
                    self._stamp = now
                    if self._tokens >= 1.0:
                        self._tokens -= 1.0
                        return
                    wait = (1.0 - self._tokens) / self._rate
            time.sleep(wait)

    def pause(self, seconds: float) -> None:
        """A 429 means the server's bucket is empty: hold every thread, not just the one told."""
        with self._lock:
            now = time.monotonic()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens = 0.0
            self._stamp = max(self._stamp, self._paused_until)


class _Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"


def _retry_after(response: httpx.Response, cap_s: float = RETRY_AFTER_CAP_S) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(tz=UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap_s)


def _oauth_error(response: httpx.Response) -> str | None:
    """The OAuth `error` code (e.g. `invalid_client`) or OperationOutcome code, if short and plain."""
    body = _safe_json(response)
    code = None
    if isinstance(body, dict):
        code = body.get("error")
        if code is None:
            code, _, _ = _first_issue(body)
    if isinstance(code, str) and code.replace("_", "").replace("-", "").isalnum() and len(code) <= 40:
        return code
    return None


def _is_invalid_token(response: httpx.Response) -> bool:
    return 'error="invalid_token"' in response.headers.get("WWW-Authenticate", "")


def _version(etag: str | None) -> str | None:
    if not etag:
        return None
    return etag.removeprefix("W/").strip('"')


def _status_code(status: Any) -> int | None:
    try:
        return int(str(status).split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def _first_issue(outcome: Any) -> tuple[str | None, str | None, list[str] | None]:
    if not isinstance(outcome, dict):
        return None, None, None
    issues = outcome.get("issue") or []
    if not issues or not isinstance(issues[0], dict):
        return None, None, None
    issue = issues[0]
    expression = issue.get("expression")
    return issue.get("code"), issue.get("diagnostics"), list(expression) if expression else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What the client retries and for how long: one policy for the token, reads and batches.

    Transient: no connection, a timeout or a broken answer, 429 (waiting `Retry-After`) and
    5xx (clinic24-api.md). Never retried: 400, 403, 404, 409, 413, 422 and a 401 from the token
    endpoint: the same request cannot cure a configuration or a data problem. `budget_s` bounds
    the time one call spends retrying, so an unreachable Clinic24 is reported within a minute
    (issue 11) instead of after every attempt's full backoff.
    """

    attempts: int = 6
    backoff_base_s: float = 0.2
    backoff_cap_s: float = 10.0
    budget_s: float = 40.0
    retry_after_cap_s: float = RETRY_AFTER_CAP_S

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("a retry policy needs at least 1 attempt")

    @staticmethod
    def transient_status(status: int) -> bool:
        """429 and 5xx; everything else is an answer to act on, not to repeat."""
        return status == 429 or status >= 500

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter, so parallel batches do not retry in step."""
        return random.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1)))


class _Transient(Exception):
    """One attempt failed in a way the policy retries; `delay` overrides the backoff (429)."""

    def __init__(self, problem: str, *, status: int | None = None, delay: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status
        self.delay = delay
        self.unreachable = False


def _transport_problem(exc: httpx.TransportError) -> tuple[str, bool]:
    """A short cause for a transport error, and whether it means "no connection at all"."""
    text = str(exc).lower()
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out", True
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text:
            return "connection refused", True
        if "name or service not known" in text or "nodename nor servname" in text or "no address" in text:
            return "host name not found", True
        if "certificate" in text or "ssl" in text:
            return "TLS handshake failed (certificate?)", True
        if "unreachable" in text:
            return "network unreachable", True
        return f"cannot connect ({type(exc).__name__})", True
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})", False
    return f"connection lost ({type(exc).__name__})", False


class Clinic24Client:
    """Synchronous Clinic24 client; batches are sent from a small thread pool.

    Retries follow one `RetryPolicy` for the token, reads and batches: 429 waits `Retry-After`
    (and pauses the whole client); 5xx, timeouts, connection errors and malformed answers back
    off exponentially with full jitter, up to `attempts` per request within `budget_s`. A 401
    `invalid_token` fetches a new token and retries at once (the API's token renewal, not a
    retry). Writes are conditional upserts that Clinic24 makes idempotent, so resending a batch
    whose answer was lost is safe. `requests_per_second`/`burst` pace the client below the
    API's 20/s (burst 40); `None` turns pacing off. The client's burst of 30 lets a run's few
    dozen requests go at once (a sync cycle's push is mostly R12 re-check batches) while
    leaving headroom for the run's other short-lived clients against the server's 40: a 429
    costs a whole second. `transport` replaces the network (unit tests).

    The base URL is checked before anything is sent: https, or http only to a loopback host
    (InsecureBaseURL otherwise), so the client secret never travels in clear.
    `max_attempts`, `backoff_base_s` and `backoff_cap_s` build the policy when `retry` is not given.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 10.0,
        max_concurrency: int = 4,
        max_attempts: int = 6,
        verify: bool = True,
        requests_per_second: float | None = 19.8,
        burst: int = 30,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_concurrency < 1 or max_attempts < 1:
            raise ValueError("max_concurrency and max_attempts must be at least 1")
        self.base_url = check_base_url(base_url).rstrip("/")
        self._client_id = _Secret(client_id)
        self._client_secret = _Secret(client_secret)
        self._max_concurrency = max_concurrency
        self.retry = retry or RetryPolicy(
            attempts=max_attempts, backoff_base_s=backoff_base_s, backoff_cap_s=backoff_cap_s
        )
        self._limiter = _TokenBucket(requests_per_second, burst) if requests_per_second else None
        self._token_lock = threading.Lock()
        self._token: _Secret | None = None
        self._token_refresh_at = 0.0
        pool = max_concurrency + 2
        self._http = httpx.Client(
            base_url=self.base_url,
            # A dead host should cost seconds, not the read timeout, per attempt (issue 11).
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            verify=verify,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            headers={"Accept": FHIR_JSON},
            transport=transport,
        )
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)
        self._stats_lock = threading.Lock()
        self._stats = dict.fromkeys(_STAT_KEYS, 0.0)
        httpx_logger = logging.getLogger("httpx")
        if _REDACT not in httpx_logger.filters:
            httpx_logger.addFilter(_REDACT)

    def __repr__(self) -> str:
        return f"Clinic24Client(base_url={self.base_url!r})"

    def stats(self) -> dict[str, float]:
        """Counters since the client was made: requests, retries, 429s, token fetches, and the
        seconds spent pacing, waiting for answers and encoding bodies (summed over threads)."""
        with self._stats_lock:
            return dict(self._stats)

    def _count(self, name: str, amount: float = 1.0) -> None:
        with self._stats_lock:
            self._stats[name] += amount

    def __enter__(self) -> Clinic24Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _with_retries(
        self,
        what: str,
        attempt: Callable[[], T],
        give_up: Callable[[_Transient, int], T] | None = None,
    ) -> T:
        """Run `attempt` until it returns, under the client's one RetryPolicy.

        `attempt` raises _Transient for what the policy retries (a transport error counts as
        one); anything else propagates at once. When the policy gives up, `give_up(last,
        attempts)` decides the result; without it Clinic24Unreachable (no connection) or
        Clinic24UnavailableError is raised, one line naming the URL and the cause.
        """
        policy = self.retry
        started = time.monotonic()
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except httpx.TransportError as exc:
                problem, unreachable = _transport_problem(exc)
                last = _Transient(problem)
                last.unreachable = unreachable
            except _Transient as exc:
                last = exc
            delay = last.delay if last.delay is not None else policy.backoff(tries)
            if last.status == 429:
                self._count("throttled")
                if self._limiter is not None:
                    self._limiter.pause(delay)  # the server's bucket is empty: hold every thread
            if tries >= policy.attempts or time.monotonic() - started + delay > policy.budget_s:
                break
            self._count("retries")
            # One short line per retry: no traceback, no URL query (it may hold patient ids).
            log.warning(
                "Clinic24 %s: %s (attempt %d/%d); retrying in %.1f s",
                what, last.problem, tries, policy.attempts, delay,
            )  # fmt: skip
            time.sleep(delay)
        if give_up is not None:
            return give_up(last, tries)
        if last.unreachable:
            raise Clinic24Unreachable(
                f"Clinic24 at {self.base_url} unreachable: {last.problem} "
                f"(after {tries} attempts in {time.monotonic() - started:.0f} s) — "
                "check CLINIC24_BASE_URL and that Clinic24 is up"
            )
        raise Clinic24UnavailableError(
            f"Clinic24 at {self.base_url}: {what} still failing after {tries} attempts "
            f"({last.problem}) — Clinic24 may be down or overloaded; the next run tries again"
        )

    def _transient_status(self, response: httpx.Response, problem: str | None = None) -> _Transient:
        """The _Transient for a 429/5xx (or a broken 200) answer; 429 carries `Retry-After`."""
        status = response.status_code
        delay = _retry_after(response, self.retry.retry_after_cap_s) if status == 429 else None
        return _Transient(problem or f"HTTP {status}", status=status, delay=delay)

    def _pace(self) -> None:
        if self._limiter is not None:
            started = time.perf_counter()
            self._limiter.acquire()
            self._count("pacing_wait_s", time.perf_counter() - started)

    def _fetch_token(self) -> None:
        def attempt() -> None:
            self._pace()
            self._count("token_fetches")
            response = self._http.post(
                "/oauth/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id.get(),
                    "client_secret": self._client_secret.get(),
                },
                headers={"X-Request-ID": str(uuid4()), "Accept": "application/json"},
            )
            status = response.status_code
            if status == 200:
                try:
                    body = _loads(response.content)
                    token = body["access_token"]
                    expires_in = float(body.get("expires_in", 300))
                except (ValueError, KeyError, TypeError):
                    raise Clinic24ProtocolError(
                        f"Clinic24 at {self.base_url}: the token endpoint answered without a token"
                    ) from None
                self._token = _Secret(token)
                # Renew a little early so a request does not leave with a token about to die.
                self._token_refresh_at = time.monotonic() + expires_in - min(30.0, expires_in * 0.1)
                return
            if status in (400, 401, 403):
                # clinic24-api.md: wrong client credentials are a configuration error, not retried.
                code = _oauth_error(response)
                raise Clinic24CredentialsRejected(
                    f"Clinic24 at {self.base_url} refused the client credentials "
                    f"(HTTP {status}{', ' + code if code else ''}) — check CLINIC24_CLIENT_ID and "
                    f"CLINIC24_CLIENT_SECRET (or the Prefect Secret block '{_SECRET_BLOCK}')"
                )
            if not RetryPolicy.transient_status(status):
                raise Clinic24ProtocolError(
                    f"Clinic24 at {self.base_url}: the token endpoint answered HTTP {status}; "
                    "check CLINIC24_BASE_URL"
                )
            raise self._transient_status(response)

        self._with_retries("token request", attempt)

    def _current_token(self) -> _Secret:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_refresh_at:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _drop_token(self, token: _Secret) -> None:
        with self._token_lock:
            # Only the thread holding the dead token clears it; others may already hold a new one.
            if self._token is token:
                self._token = None

    def _send(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        content: bytes | None = None,
    ) -> tuple[httpx.Response, str]:
        """One logical call with a bearer token; on 401 `invalid_token` a new token, retried once.

        Returns the response and the request id it went out with.
        """
        for renewed in (False, True):
            self._pace()
            token = self._current_token()
            request_id = str(uuid4())
            headers = {"Authorization": f"Bearer {token.get()}", "X-Request-ID": request_id}
            if content is not None:
                headers["Content-Type"] = FHIR_JSON
            started = time.perf_counter()
            try:
                response = self._http.request(
                    method, url, params=params, content=content, headers=headers
                )
            finally:
                self._count("requests")
                self._count("http_wait_s", time.perf_counter() - started)
            if response.status_code != 401:
                return response, request_id
            self._drop_token(token)
            if not _is_invalid_token(response):
                raise Clinic24AuthError(
                    "Clinic24 refused the request (HTTP 401 without invalid_token)"
                )
            if renewed:
                return response, request_id
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_json(self, what: str, url: str, params: Any = None) -> dict:
        """GET with retries; `what` names the call in errors (URLs may hold patient ids)."""

        def attempt() -> dict:
            response, request_id = self._send("GET", url, params=params)
            status = response.status_code
            if status == 200:
                try:
                    body = _loads(response.content)
                except ValueError:
                    raise _Transient(f"malformed JSON, request id {request_id}") from None
                if isinstance(body, dict):
                    return body
                raise _Transient(f"answer is not a JSON object, request id {request_id}")
            # A 401 here is a token refused right after renewal: the server's token churn.
            if RetryPolicy.transient_status(status) or status == 401:
                raise self._transient_status(response, f"HTTP {status}, request id {request_id}")
            code, diagnostics, _ = _first_issue(_safe_json(response))
            # Clinic24's free text may quote the request (a guardian lookup names a child's
            # personnummer, names are not masked): only a code-like token reaches the message.
            if diagnostics and not _DIAGNOSTICS_TOKEN.fullmatch(diagnostics):
                diagnostics = "(diagnostics withheld)"
            raise Clinic24ProtocolError(
                f"{what}: HTTP {status} ({code or '-'}: {diagnostics or '-'}), request id {request_id}"
            )

        return self._with_retries(what, attempt)

    def _same_origin(self, link: str) -> str:
        target = httpx.URL(self.base_url + "/").join(link)
        if (target.scheme, target.netloc.decode()) != self._origin:
            # The bearer token must never be sent to another host.
            raise Clinic24ProtocolError("Clinic24 paging link points to another origin")
        return str(target)

    def _search(self, what: str, url: str, params: Any) -> Iterable[dict]:
        """Every resource of a searchset, following `next` links."""
        body = self._get_json(what, url, params)
        while True:
            if body.get("resourceType") != "Bundle":
                raise Clinic24ProtocolError(f"{what}: answer is not a Bundle")
            for entry in body.get("entry") or []:
                yield entry["resource"]
            next_links = [
                link["url"] for link in body.get("link") or [] if link.get("relation") == "next"
            ]
            if not next_links:
                return
            body = self._get_json(what, self._same_origin(next_links[0]))

    # --- reads ---------------------------------------------------------------------------------

    def list_locations(self) -> list[str]:
        """HSA-ids of every unit that exists in Clinic24 (R01), in the order Clinic24 lists them."""
        hsa_ids = []
        for location in self._search("Location search", "/fhir/Location", {"_count": "100"}):
            ids = [
                i["value"]
                for i in location.get("identifier") or []
                if i.get("system") == HSA_SYSTEM
            ]
            if not ids:
                raise Clinic24ProtocolError("a Location without an HSA-id")
            hsa_ids.append(ids[0])
        return hsa_ids

    def has_primary_guardian(self, patient_id: str, kind: str) -> bool:
        """R12: does Clinic24 know the child's primary guardian? `kind` is `patient_id_kind`."""
        try:
            system = PATIENT_ID_SYSTEMS[kind]
        except KeyError:
            raise ValueError(f"unknown patient id kind {kind!r}") from None
        body = self._get_json(
            "primary-guardian lookup",
            "/fhir/RelatedPerson",
            {"patient-identifier": f"{system}|{patient_id}", "primary": "true"},
        )
        total = body.get("total")
        if total is None:
            total = len(body.get("entry") or [])
        return int(total) > 0

    def _one(self, what: str, resource_type: str, system: str, key: str) -> dict | None:
        body = self._get_json(what, f"/fhir/{resource_type}", {"identifier": f"{system}|{key}"})
        entries = body.get("entry") or []
        if len(entries) > 1:
            raise Clinic24ProtocolError(f"{what}: {len(entries)} resources for one identifier")
        return entries[0]["resource"] if entries else None

    def get_appointment(self, booking_id: str) -> dict | None:
        """The Appointment Clinic24 holds for a Cosmic booking id, or None."""
        return self._one("Appointment read", "Appointment", BOOKING_SYSTEM, booking_id)

    def get_service_request(self, basis_id: str) -> dict | None:
        """The ServiceRequest (booking ticket) Clinic24 holds for a booking-basis id, or None."""
        return self._one("ServiceRequest read", "ServiceRequest", BOOKING_BASIS_SYSTEM, basis_id)

    def search_appointments(
        self, unit_hsa_id: str, date_from: date | str, date_to: date | str
    ) -> list[dict]:
        """Every Appointment of one unit with a start date in [date_from, date_to] (reconcile)."""
        params = [
            ("location", unit_hsa_id),
            ("date", f"ge{_iso_date(date_from)}"),
            ("date", f"le{_iso_date(date_to)}"),
            ("_count", "100"),
        ]
        return list(self._search("Appointment search", "/fhir/Appointment", params))

    # --- writes --------------------------------------------------------------------------------

    def upsert(
        self,
        entries: Sequence[UpsertEntry],
        *,
        on_batch_settled: Callable[[list[EntryOutcome]], None] | None = None,
    ) -> list[EntryOutcome]:
        """Conditional upserts in batches of <= 100, one outcome per entry in input order.

        `on_batch_settled` is called in the caller's thread with each batch's outcomes as soon
        as that batch is settled, so the caller can persist them before the next ones arrive.
        Per-entry problems never raise; a configuration error does (Clinic24AuthError, or
        Clinic24BatchRefusedError for a whole batch refused with a status outside the contract),
        leaving the entries of unsettled batches unreported so the caller keeps them pending.
        """
        batches = [list(entries[i : i + MAX_BATCH]) for i in range(0, len(entries), MAX_BATCH)]
        settled: list[list[EntryOutcome] | None] = [None] * len(batches)
        if not batches:
            return []
        with ThreadPoolExecutor(
            max_workers=min(self._max_concurrency, len(batches)), thread_name_prefix="clinic24"
        ) as pool:
            futures = {pool.submit(self._upsert_batch, batch): n for n, batch in enumerate(batches)}
            try:
                for future in as_completed(futures):
                    outcomes = future.result()
                    settled[futures[future]] = outcomes
                    if on_batch_settled is not None:
                        on_batch_settled(outcomes)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return [outcome for batch in settled for outcome in batch]  # type: ignore[union-attr]

    def _upsert_batch(self, batch: list[UpsertEntry]) -> list[EntryOutcome]:
        outcomes: list[EntryOutcome | None] = [None] * len(batch)
        pending = list(range(len(batch)))
        requests = [
            {
                "request": {"method": "PUT", "url": upsert_url(e.resource_type, e.key)},
                "resource": orjson.Fragment(e.resource) if isinstance(e.resource, str) else e.resource,
            }
            for e in batch
        ]

        def attempt() -> list[EntryOutcome]:
            nonlocal pending
            started = time.perf_counter()
            body = _dumps(
                {"resourceType": "Bundle", "type": "batch", "entry": [requests[i] for i in pending]}
            )
            self._count("encode_s", time.perf_counter() - started)
            response, request_id = self._send("POST", "/fhir", content=body)
            status = response.status_code
            if status == 200:
                answers = _batch_answers(response, len(pending))
                if answers is None:
                    raise _Transient(f"malformed batch-response, request id {request_id}", status=200)
                retry, problem = [], ""
                for index, answer in zip(pending, answers, strict=True):
                    outcome = _entry_outcome(batch[index].change_id, answer)
                    if outcome is None:
                        retry.append(index)
                        problem = f"entry answered {answer.get('response', {}).get('status')}"
                    else:
                        outcomes[index] = outcome
                pending = retry
                if pending:
                    raise _Transient(
                        f"{len(pending)} of {len(batch)} entries unsettled ({problem}), "
                        f"request id {request_id}",
                        status=200,
                    )
                return outcomes  # type: ignore[return-value]
            if status == 413:
                raise Clinic24ProtocolError("Clinic24 refused a batch as too large (413)")
            if RetryPolicy.transient_status(status) or status == 401:
                raise self._transient_status(response, f"HTTP {status}, request id {request_id}")
            code, _, _ = _first_issue(_safe_json(response))
            raise Clinic24BatchRefusedError(status, code, request_id)

        def give_up(last: _Transient, tries: int) -> list[EntryOutcome]:
            # Entries stay pending in the outbox for the next run (never dead-lettered here).
            log.error("Clinic24 batch: %d entries still unsettled after %d attempts", len(pending), tries)
            for index in pending:
                outcomes[index] = EntryOutcome(
                    batch[index].change_id,
                    "transient",
                    last.status,
                    diagnostics=f"{last.problem} after {tries} attempts",
                )
            return outcomes  # type: ignore[return-value]

        return self._with_retries("batch", attempt, give_up)


def _iso_date(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else str(value)


def _safe_json(response: httpx.Response) -> Any:
    try:
        return _loads(response.content)
    except ValueError:
        return None


def _batch_answers(response: httpx.Response, expected: int) -> list[dict] | None:
    """The entries of a batch-response, or None when it cannot be trusted (then resend)."""
    body = _safe_json(response)
    if not isinstance(body, dict) or body.get("type") != "batch-response":
        return None
    entries = body.get("entry")
    if not isinstance(entries, list) or len(entries) != expected:
        return None
    if not all(isinstance(e, dict) and isinstance(e.get("response"), dict) for e in entries):
        return None
    return entries


def _entry_outcome(change_id: str, answer: dict) -> EntryOutcome | None:
    """Classify one batch-response entry; None means "retry this entry"."""
    response = answer["response"]
    status = _status_code(response.get("status"))
    if status is None or RetryPolicy.transient_status(status):
        return None
    if status in (200, 201):
        return EntryOutcome(change_id, "accepted", status, _version(response.get("etag")))
    code, diagnostics, expression = _first_issue(response.get("outcome"))
    kind: Outcome = "stale" if status == 409 else "rejected"
    return EntryOutcome(change_id, kind, status, None, code, diagnostics, expression)
