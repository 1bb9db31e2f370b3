"""Typed field readers that name the offending field in every error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orch8.domain.durations import parse_duration_ms
from orch8.domain.errors import ValidationError


def obj(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError("must be a JSON object", path=path)
    return value


def req(data: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in data or data[key] is None:
        raise ValidationError("is required", path=f"{path}.{key}" if path else key)
    return data[key]


def string(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    where = f"{path}.{key}" if path else key
    value = req(data, key, path) if required else data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("must be a string", path=where)
    return value


# Integers in request fields are signed 64-bit, what every storage column holds.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def integer(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> int | None:
    """An integer field; a JSON number with no fraction (`3.0`) is the integer it equals."""
    where = f"{path}.{key}" if path else key
    value = req(data, key, path) if required else data.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValidationError("integer out of the 64-bit range", path=where)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("must be an integer", path=where)
    return value


def number(data: Mapping[str, Any], key: str, path: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError("must be a number", path=f"{path}.{key}" if path else key)
    return float(value)


def boolean(data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError("must be true or false", path=f"{path}.{key}" if path else key)
    return value


def duration(data: Mapping[str, Any], key: str, path: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    return parse_duration_ms(value, path=f"{path}.{key}" if path else key)


def json_object(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    return obj(value, f"{path}.{key}" if path else key)


def array(data: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> list[Any]:
    where = f"{path}.{key}" if path else key
    value = req(data, key, path) if required else data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError("must be an array", path=where)
    return value
