"""The components' database settings, named once (services/common/db_roles.py): each variable
the local stacks and Kubernetes hand a service is the one its settings class reads."""

from __future__ import annotations

import pytest

from services.common.db_roles import DATABASE_URL_SETTINGS
from services.projections.settings import ProjectionSettings
from services.registry.settings import RegistrySettings

READ_BY = {
    "registry": (RegistrySettings, "database_url"),
    "relay": (RegistrySettings, "relay_database_url"),
    "query": (ProjectionSettings, "database_url"),
    "worker": (ProjectionSettings, "worker_database_url"),
}


@pytest.mark.parametrize("component", sorted(DATABASE_URL_SETTINGS))
def test_each_components_variable_is_what_its_settings_read(
    component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_class, field = READ_BY[component]
    url = f"postgresql://{component}@db.example:5432/coordreg"
    monkeypatch.setenv(DATABASE_URL_SETTINGS[component], url)
    assert getattr(settings_class(), field) == url


def test_every_service_is_named() -> None:
    assert set(DATABASE_URL_SETTINGS) == set(READ_BY)
