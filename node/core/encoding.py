"""Canonical msgpack: exactly one byte string for every value.

Consensus objects are hashed over their encoding, so an encoding that admitted two spellings of the
same value would give one transaction two ids (the malleability Bitcoin fought for years). msgpack
allows several spellings (an int in a wider format than needed, a str8 where a fixstr fits, a map
in any key order); we accept only the one our own encoder produces. The check is the simplest
that cannot be wrong: decode, encode again, and compare the bytes.

Consensus objects use arrays, never maps, so field order is fixed by position.

This module knows nothing of transactions or blocks; it turns bytes into plain Python values and
checks their shape with the ``expect_*`` helpers, raising :class:`DecodeError` for every fault.
"""

from __future__ import annotations

from typing import Any

import msgpack

from node.core.errors import DecodeError


def pack(obj: Any) -> bytes:
    """Encode plain values (ints, bytes, lists) in msgpack's shortest form."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack_canonical(data: bytes, *, max_size: int, what: str) -> Any:
    """Decode ``data`` that must be the one canonical encoding of a single value.

    The size is checked before anything is decoded, so a peer cannot make us allocate for a
    length it merely claims (btcd's rule for wire messages).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"{what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise DecodeError(f"{what}: {len(data)} bytes exceeds the limit of {max_size}")
    if not data:
        raise DecodeError(f"{what}: empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_size,
            max_str_len=max_size,
            max_array_len=max_size,
            max_map_len=max_size,
            max_ext_len=0,
        )
    except msgpack.ExtraData as exc:
        raise DecodeError(f"{what}: trailing bytes after the encoded value") from exc
    except (ValueError, RecursionError, msgpack.UnpackException) as exc:
        raise DecodeError(f"{what}: truncated or malformed msgpack ({exc})") from exc
    if pack(obj) != data:
        raise DecodeError(f"{what}: non-canonical encoding")
    return obj


def expect_list(obj: Any, what: str, length: int | None = None) -> list[Any]:
    if not isinstance(obj, list):
        raise DecodeError(f"{what}: expected an array, got {_kind(obj)}")
    if length is not None and len(obj) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(obj)}")
    return obj


def expect_int(obj: Any, what: str, low: int, high: int) -> int:
    # bool is a subclass of int in Python; msgpack's true/false must not pass for 1/0.
    if not isinstance(obj, int) or isinstance(obj, bool):
        raise DecodeError(f"{what}: expected an integer, got {_kind(obj)}")
    if not low <= obj <= high:
        raise DecodeError(f"{what}: {obj} is outside [{low}, {high}]")
    return obj


def expect_bytes(
    obj: Any, what: str, *, size: int | None = None, max_size: int | None = None
) -> bytes:
    if not isinstance(obj, bytes):
        raise DecodeError(f"{what}: expected bytes, got {_kind(obj)}")
    if size is not None and len(obj) != size:
        raise DecodeError(f"{what}: expected {size} bytes, got {len(obj)}")
    if max_size is not None and len(obj) > max_size:
        raise DecodeError(f"{what}: {len(obj)} bytes exceeds the limit of {max_size}")
    return obj


def _kind(obj: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        bytes: "bytes",
        str: "a string",
        list: "an array",
        dict: "a map",
        float: "a float",
        type(None): "nil",
    }.get(type(obj), type(obj).__name__)
