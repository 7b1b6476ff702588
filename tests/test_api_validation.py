"""The hot onboarding route validates into plain dicts (`schemas.ONBOARDING_BODY`);
`OnboardingRequest` documents the route. Both must accept the same bodies with the
same values (defaults included) and refuse the same bodies, and the route answers a
refused body with the model's errors."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from coldstart.api.hot import onboarding_answer
from coldstart.api.schemas import ONBOARDING_BODY, OnboardingRequest

VALID = [
    {},
    {"music": []},
    {"music": [{"item_id": "artist0001"}], "k": 3},
    {"music": [{"item_id": "a", "weight": 2.5}, {"item_id": "a", "weight": 1}]},
    {"music": [{"item_id": "a", "weight": "3"}], "age": "41", "k": "7"},
    {"country": "US", "language": "en", "age": 0, "k": 100},
    {"country": None, "language": None, "age": None},
    {"music": [{"item_id": "t" * 200, "weight": 1e9}], "age": 130.0},
]

INVALID = [
    {"music": [], "k": 0},
    {"music": [], "k": 1000},
    {"k": 2.5},
    {"music": [], "language": "english"},
    {"language": "EN"},
    {"music": [{"item_id": "a", "weight": -1}]},
    {"music": [{"item_id": "a", "weight": 1e10}]},
    {"music": [{"weight": 1}]},
    {"music": [{"item_id": ""}]},
    {"music": [{"item_id": "t" * 201}]},
    {"music": [{"item_id": 7}]},
    {"music": [{"item_id": "a", "plays": 3}]},
    {"music": [3]},
    {"music": "artist0001"},
    {"music": None},
    {"music": [{"item_id": "a"}] * 10_001},
    {"music": [], "age": "old"},
    {"age": -1},
    {"age": 131},
    {"country": "U"},
    {"country": "x" * 9},
    {"music": [], "favourite": "jazz"},
    [],
    "music",
]


def _errors(validate, body: bytes) -> list[tuple]:
    try:
        validate(body)
    except ValidationError as exc:
        return [(e["loc"], e["msg"], e["type"]) for e in exc.errors(include_url=False)]
    raise AssertionError(f"accepted: {body[:80]!r}")


@pytest.mark.parametrize("body", VALID, ids=lambda b: json.dumps(b)[:40])
def test_the_route_reads_a_valid_body_as_the_documented_model(body):
    raw = json.dumps(body).encode()
    model = OnboardingRequest.model_validate_json(raw)
    data = ONBOARDING_BODY.validate_json(raw)
    music = [(e["item_id"], e.get("weight", 1.0)) for e in data.get("music", [])]
    assert music == [(e.item_id, e.weight) for e in model.music]
    for name, default in (("country", None), ("language", None), ("age", None), ("k", 10)):
        assert data.get(name, default) == getattr(model, name), name
        assert type(data.get(name, default)) is type(getattr(model, name)), name


@pytest.mark.parametrize("body", INVALID, ids=lambda b: json.dumps(b)[:40])
def test_the_route_refuses_an_invalid_body_with_the_models_errors(body):
    raw = json.dumps(body).encode()
    documented = _errors(OnboardingRequest.model_validate_json, raw)
    fields = [(loc, kind) for loc, _, kind in _errors(ONBOARDING_BODY.validate_json, raw)]
    # The same places; a non-object is `dict_type` to a TypedDict, `model_type` to a model.
    assert fields == [(loc, kind.replace("model_type", "dict_type")) for loc, _, kind in documented]
    assert _errors(lambda b: onboarding_answer(None, b), raw) == documented


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"k": 3', b"\xff"])
def test_malformed_json_gets_the_models_errors(raw):
    assert _errors(lambda b: onboarding_answer(None, b), raw) == _errors(
        OnboardingRequest.model_validate_json, raw
    )
