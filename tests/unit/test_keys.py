"""Signing keys: the generated HS256 secret (created once, private to its owner, reused afterwards)
and asymmetric keys, each bound to the one algorithm it signs."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from scoreboard.auth.keys import asymmetric_key, load_or_create_secret, symmetric_key
from tests.token_support import ed25519_key, pem, rsa_key


def test_secret_file_is_created_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"

    secret = load_or_create_secret(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text("utf-8") == secret
    assert len(secret) >= 32


def test_secret_file_is_reused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    first = load_or_create_secret(path)
    created = path.stat().st_mtime_ns

    assert load_or_create_secret(path) == first
    assert path.stat().st_mtime_ns == created


def test_existing_secret_is_read_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("s" * 40 + "\n", "utf-8")

    assert load_or_create_secret(path) == "s" * 40


def test_short_existing_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt.secret"
    path.write_text("too-short", "utf-8")

    with pytest.raises(ValueError, match="shorter than 32 characters"):
        load_or_create_secret(path)


def test_symmetric_key_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        symmetric_key("short")


# asymmetric keys: the key decides its algorithm ------------------------------------------------


@pytest.mark.parametrize(
    ("generate", "implied"),
    [
        (ed25519_key, "EdDSA"),
        (rsa_key, "RS256"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ES384"),
    ],
)
def test_key_file_without_an_algorithm_takes_the_one_its_key_type_signs(
    generate: Callable[[], PrivateKeyTypes], implied: str
) -> None:
    key = asymmetric_key(pem(generate()))

    assert key.algorithm == implied
    assert key.public_jwk is not None
    assert key.public_jwk["alg"] == implied
    assert key.public_jwk["kid"] == key.kid


def test_rsa_key_may_be_pinned_to_another_rsa_algorithm() -> None:
    assert asymmetric_key(pem(rsa_key()), "PS256").algorithm == "PS256"


@pytest.mark.parametrize(("generate", "algorithm"), [(ed25519_key, "RS256"), (rsa_key, "EdDSA")])
def test_key_that_cannot_sign_the_configured_algorithm_is_refused(
    generate: Callable[[], PrivateKeyTypes], algorithm: str
) -> None:
    with pytest.raises(ValueError, match=f"cannot sign {algorithm}"):
        asymmetric_key(pem(generate()), algorithm)


def test_previous_key_falls_back_to_its_own_algorithm_when_not_strict() -> None:
    assert asymmetric_key(pem(ed25519_key()), "RS256", strict=False).algorithm == "EdDSA"
    assert asymmetric_key(pem(rsa_key()), "HS256", strict=False).algorithm == "RS256"


def test_short_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point

    with pytest.raises(ValueError, match="too short"):
        asymmetric_key(pem(weak))


def test_file_that_is_not_a_private_key_is_refused() -> None:
    with pytest.raises(ValueError, match="not an unencrypted PEM private key"):
        asymmetric_key(b"-----BEGIN NOTHING-----\n")


def test_a_key_id_is_stable_for_the_same_key_and_differs_between_keys() -> None:
    private = ed25519_key()

    assert asymmetric_key(pem(private)).kid == asymmetric_key(pem(private)).kid
    assert asymmetric_key(pem(private)).kid != asymmetric_key(pem(ed25519_key())).kid


def test_concurrent_first_starts_agree_on_one_complete_secret(tmp_path: Path) -> None:
    """Several workers starting at once: none may read the file before its secret is written."""
    starters = 8
    for attempt in range(25):
        path = tmp_path / f"jwt-{attempt}.secret"
        barrier = threading.Barrier(starters)

        def start(path: Path = path, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            return load_or_create_secret(path)

        with ThreadPoolExecutor(starters) as pool:
            secrets = list(pool.map(lambda _: start(), range(starters)))

        assert len(set(secrets)) == 1
        assert path.read_text("utf-8") == secrets[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"jwt-{i}.secret" for i in range(25))
