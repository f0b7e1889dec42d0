"""Validation of what the JSON API receives."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.http import QueryDict
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from graphapp import strictjson
from graphapp.models import Node, NodeType, Tier

FieldErrors = dict[str, list[str]]

NODE_FIELDS: dict[str, tuple[type, ...]] = {
    "content": (str,),
    "node_type": (str,),
    "momentum": (int, float),
    "metadata": (dict,),
}
REQUIRED_FIELDS = ("content", "node_type")
# The whole message per JSON type: a translation cannot put a name inside a sentence.
EXPECTED_TYPE = {
    str: _("Expected a string."),
    int: _("Expected a number."),
    float: _("Expected a number."),
    dict: _("Expected an object."),
}
MAX_BATCH = 1000
MAX_METADATA_DEPTH = strictjson.MAX_DEPTH
GIVEN_TWICE = _("Given more than once.")


def number_bounds(field: models.Field[Any, Any]) -> dict[str, Any]:
    """``min_value`` and ``max_value`` for the form field of a model's number
    ``field``, from its validators: the browser's number input then refuses what
    the model would (``step="any"`` keeps every value in between)."""
    bounds: dict[str, Any] = {}
    for validator in field.validators:
        if isinstance(validator, MinValueValidator):
            bounds["min_value"] = validator.limit_value
        elif isinstance(validator, MaxValueValidator):
            bounds["max_value"] = validator.limit_value
    return bounds


class PayloadError(ValueError):
    """The request body is not the JSON the API expects."""

    def __init__(self, errors: FieldErrors | dict[str, FieldErrors]) -> None:
        super().__init__(errors)
        self.errors = errors


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN or Infinity literals; raises PayloadError."""
    try:
        return strictjson.loads(body)
    except RecursionError as exc:
        problem = "nested too deeply"
        cause: Exception = exc
    except ValueError as exc:  # UnicodeDecodeError included
        problem, cause = str(exc), exc
    message = gettext("Malformed JSON: %(problem)s.") % {"problem": problem}
    errors: FieldErrors = {NON_FIELD_ERRORS: [message]}
    raise PayloadError(errors) from cause


def _type_error(value: object, kinds: tuple[type, ...]) -> str | None:
    if isinstance(value, bool) or not isinstance(value, kinds):
        return str(EXPECTED_TYPE[kinds[0]])
    if isinstance(value, int | float) and strictjson.number_problem(value):
        return gettext("Expected a finite number (this one is beyond ±1.8e308).")
    return None


def json_type_errors(data: object) -> FieldErrors:
    """Errors a form would not see: unknown or repeated fields, values of the wrong JSON type."""
    if not isinstance(data, dict):
        return {NON_FIELD_ERRORS: [gettext("Expected a JSON object.")]}
    errors: FieldErrors = {}
    for key in data:
        if key not in NODE_FIELDS:
            known = ", ".join(NODE_FIELDS)
            errors[key] = [gettext("Unknown field; known fields: %(known)s.") % {"known": known}]
    for key in data.repeated if isinstance(data, strictjson.RepeatedKeys) else ():
        errors.setdefault(key, []).append(str(GIVEN_TWICE))
    for key, kinds in NODE_FIELDS.items():
        if key not in data:
            if key in REQUIRED_FIELDS:
                errors[key] = [gettext("This field is required.")]
            continue
        problem = _type_error(data[key], kinds)
        if problem:
            errors.setdefault(key, []).append(problem)
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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Stored exactly as sent: no stripping of leading or trailing whitespace.
        content = self.fields["content"]
        assert isinstance(content, forms.CharField)
        content.strip = False

    def clean_content(self) -> str:
        value: str = self.cleaned_data["content"]
        if not value.strip():
            raise forms.ValidationError(_("This field cannot be blank."))
        problem = strictjson.text_problem(value)
        if problem:
            raise forms.ValidationError(
                _("The content %(problem)s."), params={"problem": problem}
            )
        return value

    def clean_metadata(self) -> dict[str, Any]:
        # The form field turns an empty object into None; the column wants {}.
        value: dict[str, Any] | None = self.cleaned_data["metadata"]
        found = strictjson.value_problem(value, "metadata")
        if found:
            raise forms.ValidationError(f"{found[0]}: {found[1]}.")
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

    def clean_limit(self) -> int | None:
        # int() also takes " 5", "+5", "5.0" and other scripts' digits; the API does not.
        raw = self.data.get("limit", "")
        if raw and not re.fullmatch(r"[0-9]+", raw):
            raise forms.ValidationError(_("Enter a whole number (digits 0-9 only)."))
        limit: int | None = self.cleaned_data["limit"]
        return limit


F = TypeVar("F", bound=forms.Form)


class HistoryQueryForm(forms.Form):
    """Filters of ``GET /graph/api/history/``."""

    since = forms.DateTimeField(
        required=False, help_text=_("ISO 8601; points at or after it (default: the whole window).")
    )


def parse_query(form_class: type[F], params: QueryDict) -> F | FieldErrors:
    """A valid ``form_class`` for the query string, or the errors by parameter."""
    errors: FieldErrors = {}
    for name, values in params.lists():
        if name not in form_class.base_fields:
            known = ", ".join(form_class.base_fields)
            message = gettext("Unknown parameter; known parameters: %(known)s.")
            errors[name] = [message % {"known": known}]
        elif len(values) > 1:
            errors[name] = [str(GIVEN_TWICE)]
    query = form_class(params)
    if not query.is_valid():
        for field, messages in query.errors.items():
            errors.setdefault(field, []).extend(str(message) for message in messages)
    return errors or query


def node_query(params: QueryDict) -> NodeQueryForm | FieldErrors:
    """A valid NodeQueryForm for the query string, or the errors by parameter."""
    return parse_query(NodeQueryForm, params)
