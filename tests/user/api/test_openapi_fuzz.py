"""Property-based API test: schemathesis generates requests from the app's own OpenAPI
document (valid and invalid ones) against a real server, and checks that no answer is a
5xx and every answer matches the documented schema."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.user.api.central_server import ThreadedCentral, central_on

EXAMPLES = int(os.environ.get("WRALE_FUZZ_EXAMPLES", "25"))
# Some rules cannot be written into OpenAPI (a threshold's range depends on the metric's
# unit; a query must not ask for more than 10,000 points): a schema-valid request may get
# a 422 there, which is right. Every other check runs: no 5xx, documented status codes,
# content types, headers and response schemas, invalid data refused.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]
# Calls that would end the fuzzing session itself.
SKIP = {"POST /api/v1/auth/logout"}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedCentral]:
    """A real server on its migrated schema, on SQLite and on a fresh PostgreSQL database."""
    data = Path(tmp_path_factory.mktemp("fuzz"))
    with central_on(request.param, data, f"wrale_fuzz_{os.getpid()}") as central:
        yield central


def make_check(
    strategy: st.SearchStrategy[schemathesis.Case], base_url: str, headers: dict[str, str]
) -> Callable[[], None]:
    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy)
        case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=EXCLUDED)

    return check


@pytest.mark.slow
def test_no_server_errors_and_schema_holds(server: ThreadedCentral) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {server.login()}"}
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in SKIP:
            continue
        check = make_check(operation.as_strategy(), server.url, headers)
        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # collect all failures, report at once
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
        tested += 1
    assert tested >= 10
    assert not failures, "\n\n".join(failures)
