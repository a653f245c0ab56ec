"""Promotion leases on a real SQLite registry: a held number refuses the second caller and
records its attempt; an abandoned one (its event never came) is skipped after the TTL."""

from __future__ import annotations

import pytest
from registry_support import three_versions

from housing.registry import MODEL_NAME, RegistryError
from housing.registry.history import read_events
from housing.registry.lease import attempts_from_tags, lease_name, lease_ttl_s, take_lease

pytestmark = pytest.mark.slow


@pytest.fixture
def client_and_next(tmp_path):
    from mlflow import MlflowClient

    uri = three_versions(tmp_path)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    events, _ = read_events(client, MODEL_NAME)
    return client, events[-1].seq + 1


def test_a_live_lease_refuses_the_second_caller_and_records_its_attempt(client_and_next):
    client, seq = client_and_next
    first = take_lease(client, MODEL_NAME, target="1", who="ana", exclusive=False)
    assert first.seq == seq
    with pytest.raises(RegistryError, match=rf"promotion #{seq} .* was taken by ana"):
        take_lease(client, MODEL_NAME, target="2", who="ben", exclusive=False, ttl_s=3600)
    tags = dict(client.get_registered_model(MODEL_NAME).tags or {})
    (attempt,) = attempts_from_tags(tags)
    assert attempt["who"] == "ben" and attempt["version"] == "2" and attempt["seq"] == seq


def test_an_abandoned_lease_is_skipped_after_its_ttl_or_at_once_under_the_file_lock(
    client_and_next,
):
    client, seq = client_and_next
    take_lease(client, MODEL_NAME, target="1", who="killed", exclusive=False)
    later = take_lease(client, MODEL_NAME, target="2", who="ben", exclusive=False, ttl_s=1e-6)
    assert later.seq == seq + 1  # a gap, never a repeat
    locked = take_lease(client, MODEL_NAME, target="2", who="cy", exclusive=True)
    assert locked.seq == seq + 2
    holder = client.get_registered_model(lease_name(MODEL_NAME, seq + 2)).tags
    assert holder["lease.holder"] == "cy"


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_a_bad_ttl_is_one_line(raw):
    with pytest.raises(RegistryError, match="HOUSING_PROMOTION_LEASE_TTL_S must be a positive"):
        lease_ttl_s({"HOUSING_PROMOTION_LEASE_TTL_S": raw})
