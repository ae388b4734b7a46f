"""Strong OPEX passwords, generated with `secrets`.

OPEX's identity server (Keycloak) enforces a configurable password policy; the usual
rules are a minimum length, upper and lower case letters, digits and special characters.
A generated password satisfies all of them at once: 24 characters (about 150 bits),
at least two of each class, and only specials that need no escaping in JSON, form
bodies or shells.
"""

from __future__ import annotations

import secrets
import string

__all__ = ["DEFAULT_LENGTH", "SPECIALS", "generate_password", "is_strong"]

DEFAULT_LENGTH = 24
SPECIALS = "!#%*+-=?@^_~"
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SPECIALS)
_ALPHABET = "".join(_CLASSES)
_PER_CLASS = 2


def generate_password(length: int = DEFAULT_LENGTH) -> str:
    """A random password of ``length`` characters with at least two lower case, upper
    case, digit and special characters each."""
    if length < _PER_CLASS * len(_CLASSES) or length > 128:
        raise ValueError("a generated password has 8 to 128 characters")
    chars = [secrets.choice(cls) for cls in _CLASSES for _ in range(_PER_CLASS)]
    chars += [secrets.choice(_ALPHABET) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def is_strong(password: str, *, min_length: int = 12) -> bool:
    """True if ``password`` has ``min_length`` characters and every character class."""
    return len(password) >= min_length and all(any(c in cls for c in password) for cls in _CLASSES)
