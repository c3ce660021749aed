"""The services' command lines: --help lists the settings' variables; an option is refused."""

from __future__ import annotations

import pytest

from services.common.cli import parse_no_arguments, variables
from services.projections.settings import ProjectionSettings
from services.registry.settings import RegistrySettings


def test_help_lists_every_setting_as_its_variable_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_no_arguments(["--help"], RegistrySettings, "Serves something.")
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "Serves something." in out
    for name, default in variables(RegistrySettings):
        assert f"  {name} " in out and default in out
    assert ("REGISTRY_PORT", "8000") in variables(RegistrySettings)
    assert ("PROJECTIONS_RUN_CONSUMER", "true") in variables(ProjectionSettings)
    assert ("REGISTRY_AUTH_JWKS", "(empty)") in variables(RegistrySettings)
    assert len(variables(RegistrySettings)) == len(RegistrySettings.model_fields)


def test_no_argument_is_accepted_and_none_is_needed(capsys: pytest.CaptureFixture[str]) -> None:
    parse_no_arguments([], ProjectionSettings, "x")
    with pytest.raises(SystemExit) as exited:
        parse_no_arguments(["--port", "9000"], ProjectionSettings, "x")
    assert exited.value.code == 2
    assert "unrecognized arguments: --port 9000" in capsys.readouterr().err


def test_the_demo_loader_says_in_one_line_that_the_registry_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from deploy.demo.__main__ import main as demo
    from deploy.tokens import DEV_PRIVATE_KEY

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit) as exited:
        demo(["--key", str(DEV_PRIVATE_KEY), f"http://127.0.0.1:{port}"])
    assert exited.value.code == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be reached" in err and str(port) in err
