"""The API fuzzed from its own OpenAPI schema (schemathesis, over real HTTP): valid and
invalid inputs for every operation. No input gets a 500; every 4xx carries a message,
and every validation error (422) names the field it is about."""

from __future__ import annotations

import shutil

import pytest
import serving_world
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr

from coldstart.core.config import ServeSettings, Settings

schemathesis = pytest.importorskip("schemathesis")

TOKEN = "fuzz-t0ken"
EXAMPLES = 25  # per operation and mode; `make test-slow` runs test_fuzz_long with more


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    return serving_world.build(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def live(served_home, tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz") / "home"  # a private copy: fuzzed writes stay there
    shutil.copytree(served_home, home, ignore=shutil.ignore_patterns("audiences"))
    settings = Settings(
        home=home, api_token=SecretStr(TOKEN), serve=ServeSettings(reload_check_seconds=5)
    )
    with serving_world.served(settings) as client:
        yield str(client.base_url)


@pytest.fixture(scope="module")
def api_schema(live):
    return schemathesis.openapi.from_url(f"{live}/openapi.json")


def operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def check(case, response) -> None:
    where = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}\n{case.as_curl_command()[:600]}"
    assert response.status_code < 500, where
    if 400 <= response.status_code < 500:
        body = response.json()
        assert body.get("detail"), where
        if response.status_code == 422:
            message = body["message"]
            # The innermost named part of each error's location (a list index is no name).
            fields = {
                [str(p) for p in err["loc"] if not str(p).isdigit()][-1] for err in body["detail"]
            }
            assert all(f"{name}" in message for name in fields), where


def fuzz(schema, live: str, examples: int) -> dict:
    """Every operation, valid and invalid inputs; returns status-code counts."""
    from schemathesis.generation import GenerationMode

    seen: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for operation in operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                deadline=None,
                suppress_health_check=list(HealthCheck),
                max_examples=examples,
                derandomize=True,
                database=None,
            )
            def run(case):
                response = case.call(base_url=live, headers=headers, timeout=60)
                seen[response.status_code] = seen.get(response.status_code, 0) + 1
                check(case, response)

            try:
                run()
            except Unsatisfiable:  # no invalid input exists (an operation without parameters)
                assert mode == GenerationMode.NEGATIVE, operation.label
    return seen


def test_fuzz_no_500_and_4xx_name_the_field(api_schema, live):
    seen = fuzz(api_schema, live, EXAMPLES)
    assert sum(seen.values()) > 100
    assert (
        any(code < 300 for code in seen) and 422 in seen
    )  # both valid and invalid inputs got through


@pytest.mark.slow
def test_fuzz_long(api_schema, live):
    seen = fuzz(api_schema, live, 300)
    assert sum(seen.values()) > 1000
