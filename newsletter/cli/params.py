"""Quick start: plain help, and simple parameters converted without pydantic.

Typer checks every parameter value through a pydantic adapter, and importing pydantic costs
about as much as the rest of a short command together. The tool's parameters are plain ints,
floats, strings and paths (some optional, some repeatable), so those are converted here;
anything else (a parser, a choice, a date) keeps typer's own conversion. Help is click's
plain layout, which needs no rich import either.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from typer import BadParameter

_SIMPLE = (int, float, str, Path, bool)
_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _base(annotation: Any) -> tuple[type | None, bool]:
    """(int/float/str/Path, repeatable) for the annotations converted here, else (None, _)."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) != 1:
            return None, False
        annotation = inner[0]
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        return (item if item in _SIMPLE else None), True
    return (annotation if annotation in _SIMPLE else None), False


def _runtime_param(param: Any) -> Any:
    """A typer RuntimeParam doing what its adapter would for our simple types, or None."""
    try:
        from typer._coercion import RuntimeParam
    except ImportError:  # an older typer without the adapter layer: nothing to speed up
        return None
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(descriptor, "file_annotation", None) is not None:
        return None
    info = descriptor.parameter_info
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    kind, _ = _base(descriptor.annotation)
    if kind is None:
        return None
    low, high = getattr(info, "min", None), getattr(info, "max", None)

    def one(value: Any, param: Any, ctx: Any) -> Any:
        if kind is bool:
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word not in _TRUE | _FALSE:
                raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
            return word in _TRUE
        if kind in (int, float):
            try:
                number = kind(value)
            except (TypeError, ValueError):
                label = "integer" if kind is int else "number"
                raise BadParameter(
                    f"{value!r} is not a valid {label}.", ctx=ctx, param=param
                ) from None
            if (low is not None and number < low) or (high is not None and number > high):
                bounds = (
                    f"{'' if low is None else f'{low}<='}x{'' if high is None else f'<={high}'}"
                )
                raise BadParameter(f"{number} is not in the range {bounds}.", ctx=ctx, param=param)
            return number
        return Path(value) if kind is Path else str(value)

    class Simple(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, list | tuple):
                return [one(item, param, ctx) for item in value]
            return one(value, param, ctx)

    return Simple(parameter_info=info, annotation=descriptor.annotation)


def quicken(command: Any) -> None:
    """Plain help and pydantic-free conversion for ``command`` and everything under it."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    quicken_params(getattr(command, "params", []))
    for sub in getattr(command, "commands", {}).values():
        quicken(sub)


def quicken_params(params: list[Any]) -> list[Any]:
    for param in params:
        if hasattr(param, "_runtime_param") and param._runtime_param is None:
            param._runtime_param = _runtime_param(param)
    return params
