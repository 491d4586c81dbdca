"""SageMaker endpoints as an upstream, through one aioboto3 ``sagemaker-runtime`` client per worker.

``InvokeEndpoint`` serves non-streamed completions, ``InvokeEndpointWithResponseStream`` streamed
ones; the container's dialect (``sagemaker_prompt`` builds the body, ``sagemaker_dialects`` decodes
the output) is chosen per model, so clients always see OpenAI chunks and completions.

Client settings are deliberate (botocore's defaults are not): a pool of ``max_connections``
(botocore's 10 would cap concurrent streams), ``connect_timeout_s``, a socket read timeout covering
the longest wait (first byte or idle gap), standard-mode retries bounded by ``max_retries`` (they
happen only before any output reached the gateway), credentials from the default chain.

Deadlines: first byte (response headers, then the first payload part), idle (gap between payload
parts) and total, enforced with one ``asyncio.Timeout`` per stream, re-armed per part and disarmed
while the consumer holds a batch (a slow client is the route's business, not an upstream timeout).
Leaving the stream context closes the HTTP response, so a client disconnect stops the endpoint's
generation at once; the request body is checked against SageMaker's 6 MiB limit before sending.
The AWS SDK's loggers are capped at WARNING whatever the gateway's level: at DEBUG they record
request bodies, i.e. prompts (PHI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Final

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    EventStreamError,
    NoCredentialsError,
    ReadTimeoutError,
)

from gateway.config import SageMakerModelConfig, UpstreamConfig
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    TimeoutPhase,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstreams.base import UpstreamRequest
from gateway.upstreams.errors import error_from_sagemaker
from gateway.upstreams.sagemaker_dialects import (
    StreamDecoder,
    StreamFailed,
    StreamSettings,
    completion,
)
from gateway.upstreams.sagemaker_prompt import ContainerRequest, request_body
from gateway.wire import Chunk, Payload

if TYPE_CHECKING:
    from types_aiobotocore_sagemaker_runtime import SageMakerRuntimeClient
    from types_aiobotocore_sagemaker_runtime.type_defs import ResponseStreamTypeDef
else:
    SageMakerRuntimeClient = ResponseStreamTypeDef = Any

#: ``BodyBlob`` maximum of the botocore model: larger bodies are refused by SageMaker.
MAX_REQUEST_BYTES: Final = 6 * 1024 * 1024
_READ_MARGIN_S: Final = 5.0
_ACCEPT: Final = {"lmi": "application/jsonlines"}
#: PHI: at DEBUG these loggers record request bodies (prompts) and response bytes.
_SDK_LOGGERS: Final = ("aioboto3", "aiobotocore", "boto3", "botocore", "urllib3")


class SageMakerUpstream:
    """The SageMaker runtime of one region: ``open`` it in a running loop, ``aclose`` it."""

    def __init__(
        self,
        name: str,
        config: UpstreamConfig,
        client: SageMakerRuntimeClient,
        stack: AsyncExitStack,
    ) -> None:
        self.name = name
        self._config = config
        self._client = client
        self._stack = stack

    @classmethod
    async def open(cls, name: str, config: UpstreamConfig) -> SageMakerUpstream:
        """Create the worker's client (its connection pool opens on first use)."""
        for logger in _SDK_LOGGERS:  # PHI: whatever the gateway's own log level
            logging.getLogger(logger).setLevel(logging.WARNING)
        # botocore reads its config and JSON models from disk: do that in a thread, so that
        # creating the client in the loop only hits warm caches.
        session = await asyncio.to_thread(_new_session)
        aio_config = AioConfig(
            connect_timeout=config.connect_timeout_s,
            read_timeout=max(config.first_byte_timeout_s, config.idle_timeout_s) + _READ_MARGIN_S,
            max_pool_connections=config.max_connections,
            retries={"max_attempts": config.max_retries, "mode": "standard"},
            tcp_keepalive=True,
        )
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            session.client(
                "sagemaker-runtime",
                region_name=config.region,
                endpoint_url=config.endpoint_url,
                config=aio_config,
            )
        )
        return cls(name, config, client, stack)

    async def aclose(self) -> None:
        await self._stack.aclose()

    async def embed(self, request: UpstreamRequest) -> Payload:
        del request
        raise InvalidRequest("embeddings are not served by SageMaker models", param="model")

    async def complete(self, request: UpstreamRequest) -> Payload:
        sm = _settings_of(request)
        prepared = _prepare(request, sm, stream=False)
        total = self._config.total_timeout_s
        with self._map_errors("total", total):
            async with asyncio.timeout(total):
                response = await self._client.invoke_endpoint(
                    **_invoke_args(request, sm, prepared), Accept="application/json"
                )
                async with response["Body"] as body:
                    raw = await body.read()
        return completion(sm.dialect, raw, self._stream_settings(request, prepared))

    @contextlib.asynccontextmanager
    async def stream(self, request: UpstreamRequest) -> AsyncIterator[AsyncIterator[list[Chunk]]]:
        sm = _settings_of(request)
        prepared = _prepare(request, sm, stream=True)
        config = self._config
        deadline = asyncio.get_running_loop().time() + config.total_timeout_s
        with self._map_errors("first_byte", config.first_byte_timeout_s):
            async with asyncio.timeout(config.first_byte_timeout_s):
                response = await self._client.invoke_endpoint_with_response_stream(
                    **_invoke_args(request, sm, prepared),
                    Accept=_ACCEPT.get(sm.dialect, "text/event-stream"),
                )
        body = response["Body"]
        events = aiter(body)
        decoder = StreamDecoder(sm.dialect, self._stream_settings(request, prepared))
        try:
            yield self._chunks(events, decoder, deadline)
        finally:
            # Closing the HTTP response ends the stream on the endpoint's side (TGI stops
            # generating); after a complete stream the connection already went back to the pool.
            body.close()
            with contextlib.suppress(Exception):
                await events.aclose()  # type: ignore[attr-defined]

    async def _chunks(
        self, events: AsyncIterator[ResponseStreamTypeDef], decoder: StreamDecoder, deadline: float
    ) -> AsyncIterator[list[Chunk]]:
        config = self._config
        clock = asyncio.get_running_loop().time
        budget = config.first_byte_timeout_s
        phase: TimeoutPhase = "first_byte"
        with self._map_errors("idle", config.idle_timeout_s):
            try:
                async with asyncio.timeout(None) as timer:
                    while not decoder.done:
                        timer.reschedule(min(clock() + budget, deadline))
                        event = await anext(events, None)
                        timer.reschedule(None)  # the consumer's pace is not the upstream's
                        budget, phase = config.idle_timeout_s, "idle"
                        try:
                            batch = decoder.finish() if event is None else _feed(decoder, event)
                        except StreamFailed as failed:
                            if failed.chunks:
                                yield failed.chunks
                            raise failed.error from None
                        if batch:
                            yield batch
            except TimeoutError:
                raise _timeout(clock(), deadline, phase, budget, config) from None

    def _stream_settings(
        self, request: UpstreamRequest, prepared: ContainerRequest
    ) -> StreamSettings:
        options = request.body.get("stream_options")
        return StreamSettings(
            chunk_id="chatcmpl-" + request.request_id.removeprefix("req_"),
            created=int(time.time()),
            model=str(request.body.get("model", "")),
            include_usage=isinstance(options, dict) and options.get("include_usage") is True,
            prompt_chars=prepared.prompt_chars,
            max_event_bytes=self._config.max_event_bytes,
            upstream=self.name,
        )

    @contextlib.contextmanager
    def _map_errors(self, phase: TimeoutPhase, timeout_s: float) -> Iterator[None]:
        """Translate botocore and transport failures raised in the block to the error tree."""
        try:
            yield
        except GatewayError:
            raise
        except EventStreamError as exc:
            # A ModelStreamError or InternalStreamFailure frame after the 200; the route turns
            # the error into an SSE error event.
            code = exc.response.get("Error", {}).get("Code", "stream error")
            raise UpstreamError(
                f"upstream {self.name!r} failed during the stream ({code})"
            ) from exc
        except ClientError as exc:
            raise error_from_sagemaker(exc.response, self.name) from exc
        except ConnectTimeoutError as exc:
            raise UpstreamTimeout("connect", self._config.connect_timeout_s) from exc
        except (TimeoutError, ReadTimeoutError) as exc:
            raise UpstreamTimeout(phase, timeout_s) from exc
        except EndpointConnectionError as exc:
            raise UpstreamUnavailable(
                f"cannot connect to upstream {self.name!r}", retry_after_s=1.0
            ) from exc
        except NoCredentialsError as exc:
            raise UpstreamError(
                f"upstream {self.name!r}: the gateway has no AWS credentials"
            ) from exc
        except (BotoCoreError, OSError, ValueError) as exc:
            # aiohttp's ClientError is an OSError; a broken frame is a botocore ParserError.
            raise UpstreamProtocolError(f"upstream {self.name!r} broke the protocol") from exc


def _feed(decoder: StreamDecoder, event: ResponseStreamTypeDef) -> list[Chunk]:
    part = event.get("PayloadPart")
    if part is None:
        return []  # an event type this gateway does not know: skip it
    return decoder.feed(part.get("Bytes", b""))


def _timeout(
    now: float, deadline: float, phase: TimeoutPhase, budget: float, config: UpstreamConfig
) -> UpstreamTimeout:
    if now >= deadline:
        return UpstreamTimeout("total", config.total_timeout_s)
    return UpstreamTimeout(phase, budget)


def _settings_of(request: UpstreamRequest) -> SageMakerModelConfig:
    sm = request.model.sagemaker if request.model is not None else None
    if sm is None:  # config validation makes this unreachable
        raise UpstreamError("the model has no SageMaker settings")
    return sm


def _prepare(
    request: UpstreamRequest, sm: SageMakerModelConfig, *, stream: bool
) -> ContainerRequest:
    prepared = request_body(request.body, sm, stream=stream)
    if len(prepared.body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"the request is larger than the model endpoint accepts ({MAX_REQUEST_BYTES} bytes)"
        )
    return prepared


def _invoke_args(
    request: UpstreamRequest, sm: SageMakerModelConfig, prepared: ContainerRequest
) -> dict[str, Any]:
    """Arguments shared by both operations; per-model headers go on both paths."""
    args: dict[str, Any] = {
        "EndpointName": sm.endpoint_name,
        "Body": prepared.body,
        "ContentType": "application/json",
        "InferenceId": request.request_id[:64],
    }
    if sm.inference_component is not None:
        args["InferenceComponentName"] = sm.inference_component
    if sm.target_variant is not None:
        args["TargetVariant"] = sm.target_variant
    if sm.custom_attributes is not None:
        args["CustomAttributes"] = sm.custom_attributes
    return args


def _new_session() -> aioboto3.Session:
    """A session with what client creation reads from disk already loaded (blocking: a thread)."""
    session = aioboto3.Session()
    core = session._session  # aioboto3 has no public handle on its botocore session
    core.get_scoped_config()
    loader = core.get_component("data_loader")
    for name in ("endpoints", "sdk-default-configuration", "_retry", "partitions"):
        loader.load_data(name)
    for kind in ("service-2", "endpoint-rule-set-1"):
        loader.load_service_model("sagemaker-runtime", kind, api_version=None)
    return session
