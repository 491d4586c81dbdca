from __future__ import annotations

import logging

from gateway.telemetry import JSONFormatter, Metrics, scrub


def test_render_merges_worker_snapshots() -> None:
    one, two = Metrics(), Metrics()
    one.requests.inc(("/v1/chat/completions", "200"))
    two.requests.inc(("/v1/chat/completions", "200"), 2)
    two.requests.inc(("/v1/models", "200"))
    one.latency.observe(0.003, ("/v1/chat/completions",))
    two.latency.observe(0.2, ("/v1/chat/completions",))
    one.open_streams.inc()
    two.open_streams.inc()
    two.open_streams.inc()
    one.open_streams.dec()
    text = one.render([two.snapshot(), b"{truncated"])
    assert 'gateway_requests_total{route="/v1/chat/completions",status="200"} 3' in text
    assert 'gateway_requests_total{route="/v1/models",status="200"} 1' in text
    assert (
        'gateway_request_duration_seconds_bucket{route="/v1/chat/completions",le="0.005"} 1' in text
    )
    assert (
        'gateway_request_duration_seconds_bucket{route="/v1/chat/completions",le="+Inf"} 2' in text
    )
    assert 'gateway_request_duration_seconds_count{route="/v1/chat/completions"} 2' in text
    assert "gateway_open_streams 2" in text
    assert "# TYPE gateway_time_to_first_token_seconds histogram" in text


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.upstream_errors.inc(('we"ird\\', "x"))
    assert 'upstream="we\\"ird\\\\"' in metrics.render()


def test_scrub_removes_tokens_and_keys() -> None:
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    text = scrub(f"header Authorization: Bearer {jwt} key sk-abcdef123456 done")
    assert "eyJ" not in text
    assert "sk-abcdef" not in text
    assert text.endswith("done")


def test_json_formatter_scrubs_messages() -> None:
    record = logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Got more than 8190 bytes: %s",
        ("Bearer eyJabc.def",),
        None,
    )
    line = JSONFormatter().format(record)
    assert "eyJ" not in line
    assert '"level":"error"' in line
