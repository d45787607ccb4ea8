"""The status server's request checks, pure: Host names (DNS rebinding), bearer tokens,
body framing (Content-Length, chunked), and the connection cap from the descriptor limit."""

from __future__ import annotations

import http.client
import io
import resource

import pytest

from scheduler.http_conn import MAX_CONNECTIONS, connection_cap, url_host
from scheduler.http_status import (
    BodyError,
    bearer_token,
    host_name,
    host_problem,
    is_loopback,
    read_body,
    token_matches,
)


def _headers(*lines: str) -> http.client.HTTPMessage:
    return http.client.parse_headers(io.BytesIO(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")))


# -- the connection cap ------------------------------------------------------------------------
@pytest.mark.parametrize(("soft", "cap"), [(1024, 64), (256, 64), (160, 64), (100, 36), (68, 4), (64, 4),
                                           (10, 4), (1_048_576, 64), (resource.RLIM_INFINITY, 64), (None, 64)])
def test_connection_cap(soft: int | None, cap: int) -> None:
    assert connection_cap(soft) == cap


def test_the_cap_always_leaves_the_daemon_its_reserve() -> None:
    for soft in range(68, 70_000, 7):
        cap = connection_cap(soft)
        assert 4 <= cap <= MAX_CONNECTIONS
        assert soft - cap >= max(64, soft // 4), soft


# -- Host ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "name"), [
    ("localhost", "localhost"), ("LocalHost:8099", "localhost"), ("127.0.0.1:80", "127.0.0.1"),
    ("[::1]:8099", "::1"), ("[::1]", "::1"), ("example.com:", "example.com"), (" a.b ", "a.b"),
    ("[::1", None), ("[zz]:80", None), ("::1", None), ("host:80:80", None), ("host:8o", None),
    (":8099", None), ("", None), ("host:\u00b2", None), ("[::1]x", None),
])
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


ALLOWED = ["localhost", "localhost:8099", "LOCALHOST", "localhost.:1", "127.0.0.1", "127.0.0.1:8099", "127.9.8.7",
           "[::1]", "[::1]:8099", "[::ffff:127.0.0.1]:8099"]
REFUSED = ["evil.example", "evil.example:8099", "127.0.0.1.evil.example", "localhost.evil.example",
           "sub.localhost", "0.0.0.0", "[::]", "10.0.0.1", "[::2]", "192.168.1.1:8099", "2130706433", "127.1"]


@pytest.mark.parametrize("host", ALLOWED)
def test_loopback_host_names_are_answered_without_a_token(host: str) -> None:
    assert host_problem([host], "HTTP/1.1", None, "127.0.0.1") is None


@pytest.mark.parametrize("host", REFUSED)
def test_other_host_names_are_refused_without_a_token(host: str) -> None:
    code, message = host_problem([host], "HTTP/1.1", None, "127.0.0.1")
    assert code == 421 and "not this server" in message and "GO_TRADER_STATUS_TOKEN" in message


@pytest.mark.parametrize("host", REFUSED)
def test_with_a_token_any_host_name_is_answered(host: str) -> None:
    assert host_problem([host], "HTTP/1.1", "t0ken", "0.0.0.0") is None


def test_the_configured_host_is_answered() -> None:
    assert host_problem(["[::1]:8099"], "HTTP/1.1", None, "::1") is None
    assert host_problem(["my-box:8099"], "HTTP/1.1", None, "my-box") is None
    assert host_problem(["my-box:8099"], "HTTP/1.1", None, "127.0.0.1")[0] == 421
    assert host_problem(["0.0.0.0:8099"], "HTTP/1.1", None, "0.0.0.0")[0] == 421  # a wildcard is no name


def test_missing_duplicate_or_malformed_host() -> None:
    for version in ("HTTP/0.9", "HTTP/1.0", "HTTP/1.1", "HTTP/2.0"):  # no Host, no check: refused whatever the version
        for token in (None, "t0ken"):
            code, message = host_problem([], version, token, "127.0.0.1")
            assert code == 400 and "Host" in message and version in message
    assert host_problem([], "HTTP/1.1", None, "127.0.0.1")[0] == 400
    assert host_problem([], "HTTP/1.1", "t0ken", "127.0.0.1")[0] == 400
    assert host_problem(["localhost", "localhost"], "HTTP/1.1", None, "127.0.0.1")[0] == 400
    assert host_problem(["[::1"], "HTTP/1.0", None, "127.0.0.1")[0] == 400


def test_is_loopback_and_url_host() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "LOCALHOST", "[::1]", "127.3.2.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "", "10.0.0.1", "example.com"))
    assert (url_host("::1"), url_host("127.0.0.1"), url_host("[::1]")) == ("[::1]", "127.0.0.1", "[::1]")


# -- bearer -------------------------------------------------------------------------------------
@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "BeArEr s3cret",
                                    "Bearer   s3cret", "  Bearer s3cret  "])
def test_the_bearer_scheme_is_case_insensitive(header: str) -> None:
    assert bearer_token(header) == "s3cret" and token_matches(header, "s3cret")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearers3cret", "Basic s3cret", "s3cret",
                                    "Bearer s3cre", "Bearer s3crett", "Bearer S3CRET", "Bearer s3cret\u0100"])
def test_wrong_or_missing_tokens(header: str | None) -> None:
    assert not token_matches(header, "s3cret")


# -- bodies -------------------------------------------------------------------------------------
def test_content_length_bodies() -> None:
    assert read_body(_headers("Content-Length: 2"), io.BytesIO(b"{}xyz"), 100) == b"{}"
    assert read_body(_headers(), io.BytesIO(b"ignored"), 100) == b""  # no framing: no body
    assert read_body(_headers("Content-Length: 2", "Content-Length: 2"), io.BytesIO(b"{}"), 100) == b"{}"


@pytest.mark.parametrize(("lines", "data", "code"), [
    (["Content-Length: 101"], b"x" * 101, 413),
    (["Content-Length: 99999999999"], b"", 413),
    (["Content-Length: 5"], b"abc", 400),
    (["Content-Length: -1"], b"", 400),
    (["Content-Length: +5"], b"abcde", 400),
    (["Content-Length: 5, 5"], b"abcde", 400),
    (["Content-Length: 2", "Content-Length: 3"], b"abc", 400),
    (["Content-Length: abc"], b"", 400),
    (["Transfer-Encoding: chunked", "Content-Length: 5"], b"0\r\n\r\n", 400),
    (["Transfer-Encoding: gzip"], b"", 501),
    (["Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n", 501),
    (["Transfer-Encoding: chunked, chunked"], b"0\r\n\r\n", 501),
])
def test_refused_framing(lines: list[str], data: bytes, code: int) -> None:
    with pytest.raises(BodyError) as e:
        read_body(_headers(*lines), io.BytesIO(data), 100)
    assert e.value.code == code and e.value.message


CHUNKED = _headers("Transfer-Encoding: chunked")


@pytest.mark.parametrize(("data", "body"), [
    (b"7\r\n{\"a\": \"\r\n4;ext=1\r\nbc\"}\r\n0\r\n\r\n", b'{"a": "bc"}'),
    (b"2\n{}\n0\n\n", b"{}"),  # bare LF line ends, as http.server tolerates in headers
    (b"A\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", b"0123456789"),
    (b"0\r\n\r\n", b""),
    (b"000\r\n\r\n", b""),
])
def test_chunked_bodies_are_decoded(data: bytes, body: bytes) -> None:
    assert read_body(CHUNKED, io.BytesIO(data), 100) == body
    assert read_body(_headers("Transfer-Encoding: Chunked"), io.BytesIO(data), 100) == body


@pytest.mark.parametrize(("data", "code"), [
    (b"65\r\n" + b"x" * 101 + b"\r\n0\r\n\r\n", 413),  # over the limit in one chunk
    (b"32\r\n" + b"x" * 50 + b"\r\n33\r\n" + b"x" * 51 + b"\r\n0\r\n\r\n", 413),  # over it in total
    (b"ffffffffffffffff\r\n", 413),  # refused before a byte of it is read
    (b"0x5\r\nabcde\r\n0\r\n\r\n", 400),
    (b"+5\r\nabcde\r\n0\r\n\r\n", 400),
    (b"-1\r\n\r\n", 400),
    (b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", 400),
    (b"\r\n", 400),
    (b"zz\r\n", 400),
    (b"5\r\nabc", 400),  # the chunk is cut short
    (b"3\r\nabcde\r\n0\r\n\r\n", 400),  # the chunk is longer than its size
    (b"3\r\nabc\r\n", 400),  # no last chunk
    (b"3\r\nabc\r\n0\r\n", 400),  # no blank line after the last chunk
    (b"1" * 2000 + b"\r\n", 400),  # an endless size line
    (b"0\r\n" + b"X: y\r\n" * 40 + b"\r\n", 400),  # endless trailers
])
def test_bad_chunked_bodies_are_refused(data: bytes, code: int) -> None:
    with pytest.raises(BodyError) as e:
        read_body(CHUNKED, io.BytesIO(data), 100)
    assert e.value.code == code and e.value.message
