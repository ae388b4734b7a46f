"""The generated OPEX password."""

from __future__ import annotations

import string

import pytest

from services.user_sync.domain.password import (
    DEFAULT_LENGTH,
    SPECIALS,
    generate_password,
    is_strong,
)


def test_generate_when_called_then_long_with_every_class_and_json_safe() -> None:
    for _ in range(200):
        password = generate_password()
        assert len(password) == DEFAULT_LENGTH
        assert sum(c in string.ascii_lowercase for c in password) >= 2
        assert sum(c in string.ascii_uppercase for c in password) >= 2
        assert sum(c in string.digits for c in password) >= 2
        assert sum(c in SPECIALS for c in password) >= 2
        assert not set(password) & set("\"'\\ &$`/")
        assert is_strong(password)


def test_generate_when_called_twice_then_different() -> None:
    assert len({generate_password() for _ in range(1000)}) == 1000


@pytest.mark.parametrize("length", [7, 129])
def test_generate_when_the_length_is_out_of_bounds_then_refused(length: int) -> None:
    with pytest.raises(ValueError, match="8 to 128"):
        generate_password(length)


@pytest.mark.parametrize(
    "weak", ["short1!A", "alllowercaseletters", "NoDigitsHere!!!!", "N0Specials12345"]
)
def test_is_strong_when_a_class_or_length_is_missing_then_false(weak: str) -> None:
    assert not is_strong(weak)
