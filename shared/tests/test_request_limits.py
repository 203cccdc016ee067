"""The request-limits middleware, on its own: which paths, sizes and content types it refuses
before any route reads the request, and that it hands every other body on unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from pension_shared.web import RequestLimits, _is_json

BODY = b'{"amount": "1000.00", "channel": "counter"}'


def call(path: str = "/v1/fund-accounts/FA1/contributions", *, body: bytes = BODY,
         headers: dict[str, str] | None = None, chunks: int = 1) -> tuple[list[dict[str, Any]], bytes | None]:
    """What the middleware sent (a refusal's messages) and the body the app read, if it was called."""
    size = -(-len(body) // chunks) or 1
    pieces = [body[i:i + size] for i in range(0, len(body), size)] or [body]
    incoming = [{"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)]
    sent: list[dict[str, Any]] = []
    seen: list[bytes] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message["body"])
        assert message["more_body"] is False

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    given = {"content-type": "application/json", **(headers or {})}
    scope = {"type": "http", "path": path,
             "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in given.items()]}
    asyncio.run(RequestLimits(app, max_body_bytes=1024)(scope, receive, send))
    return sent, (seen[0] if seen else None)


def refusal(sent: list[dict[str, Any]]) -> tuple[int, str]:
    return sent[0]["status"], orjson.loads(sent[1]["body"])["code"]


@pytest.mark.parametrize("character", [chr(c) for c in range(32)] + ["\x7f"])
def test_a_path_with_a_control_character_is_404(character: str) -> None:
    sent, seen = call(f"/v1/participants/P1{character}x")
    assert refusal(sent) == (404, "NOT_FOUND") and seen is None


@pytest.mark.parametrize("path", ["/v1/participants/P 1", "/v1/participants/养老金", "/v1/participants/\x80\u202e", "/"])
def test_a_path_of_printable_or_other_characters_goes_on(path: str) -> None:
    sent, seen = call(path)
    assert sent == [] and seen == BODY


def test_the_body_is_handed_on_whole_however_it_arrives() -> None:
    assert call(chunks=5) == ([], BODY)


def test_a_body_over_the_limit_is_413_declared_or_not() -> None:
    assert refusal(call(body=b"x" * 1025)[0]) == (413, "PAYLOAD_TOO_LARGE")
    assert refusal(call(body=b"{}", headers={"content-length": "1025"})[0]) == (413, "PAYLOAD_TOO_LARGE")
    assert refusal(call(body=b"{}", headers={"content-length": "12abc"})[0]) == (413, "PAYLOAD_TOO_LARGE")
    assert refusal(call(body=b"{" * 1025, chunks=3)[0]) == (413, "PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(("content_type", "json"), [
    ("application/json", True), ("application/json; charset=utf-8", True), ("APPLICATION/JSON", True),
    ("application/problem+json", True), ("application/merge-patch+json", True),
    ("text/json", False), ("text/plain", False), ("application/xml", False), ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=b", False), ("", False), ("json", False), ("application/jsonx", False),
])
def test_only_a_json_content_type_is_taken_each_time_it_is_asked(content_type: str, json: bool) -> None:
    for _ in range(3):  # the answer is remembered: asked again, it is the same
        assert _is_json(content_type) is json
        sent, seen = call(headers={"content-type": content_type})
        assert (sent, seen) == ([], BODY) if json else refusal(sent) == (415, "UNSUPPORTED_MEDIA_TYPE")


def test_no_content_type_is_read_as_json_and_an_empty_body_needs_none() -> None:
    assert _is_json(None) is True
    assert call(body=b"", headers={"content-type": "text/plain"}) == ([], b"")
