"""Validation of what the JSON API receives."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS

from graphapp.models import Node, NodeType, Tier

FieldErrors = dict[str, list[str]]

NODE_FIELDS: dict[str, tuple[type, ...]] = {
    "content": (str,),
    "node_type": (str,),
    "momentum": (int, float),
    "metadata": (dict,),
}
REQUIRED_FIELDS = ("content", "node_type")
JSON_TYPE_NAMES = {str: "a string", int: "a number", float: "a number", dict: "an object"}
MAX_BATCH = 1000


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class PayloadError(ValueError):
    """The request body is not the JSON the API expects."""

    def __init__(self, errors: FieldErrors | dict[str, FieldErrors]) -> None:
        super().__init__(errors)
        self.errors = errors


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN or Infinity literals; raises PayloadError."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        problem = "nested too deeply"
        cause: Exception = exc
    except (ValueError, UnicodeDecodeError) as exc:
        problem, cause = str(exc), exc
    errors: FieldErrors = {NON_FIELD_ERRORS: [f"Malformed JSON: {problem}."]}
    raise PayloadError(errors) from cause


def json_type_errors(data: object) -> FieldErrors:
    """Errors a form would not see: unknown fields and values of the wrong JSON type."""
    if not isinstance(data, dict):
        return {NON_FIELD_ERRORS: ["Expected a JSON object."]}
    errors: FieldErrors = {}
    for key in data:
        if key not in NODE_FIELDS:
            errors[str(key)] = [f"Unknown field; known fields: {', '.join(NODE_FIELDS)}."]
    for key, kinds in NODE_FIELDS.items():
        value = data.get(key)
        if key not in data:
            if key in REQUIRED_FIELDS:
                errors[key] = ["This field is required."]
        elif isinstance(value, bool) or not isinstance(value, kinds):
            errors[key] = [f"Expected {JSON_TYPE_NAMES[kinds[0]]}."]
        elif isinstance(value, float) and not math.isfinite(value):
            errors[key] = ["Expected a finite number."]
    return errors


# ModelForm is generic only in django-stubs, not at run time.
if TYPE_CHECKING:
    NodeModelForm = forms.ModelForm[Node]
else:
    NodeModelForm = forms.ModelForm


class NodeForm(NodeModelForm):
    class Meta:
        model = Node
        fields: ClassVar = ["content", "node_type", "momentum", "metadata"]

    def clean_metadata(self) -> dict[str, Any]:
        # The form field turns an empty object into None; the column wants {}.
        value: dict[str, Any] | None = self.cleaned_data["metadata"]
        # PostgreSQL's jsonb refuses NUL characters anywhere in a document.
        if value is not None and _has_nul(value):
            raise forms.ValidationError("Null characters are not allowed.")
        return {} if value is None else value


def node_form(data: object) -> NodeForm | FieldErrors:
    """A bound, valid NodeForm for ``data``, or its field errors."""
    errors = json_type_errors(data)
    if errors:
        return errors
    assert isinstance(data, dict)
    form = NodeForm(data={"momentum": Node._meta.get_field("momentum").get_default(), **data})
    if not form.is_valid():
        return {
            field: [str(message) for message in messages] for field, messages in form.errors.items()
        }
    return form


class NodeQueryForm(forms.Form):
    """Filters of ``GET /graph/api/nodes/``."""

    type = forms.ChoiceField(choices=NodeType.choices, required=False)
    tier = forms.ChoiceField(choices=Tier.choices, required=False)
    limit = forms.IntegerField(min_value=1, max_value=100, required=False)
