"""Settings: one class reads the environment; an invalid value names its variable."""
import subprocess

import pytest

from tests.procs import THREADLINE
from workers.foundations.settings import SettingsError, load_settings


def test_defaults_follow_design() -> None:
    s = load_settings(_env_file=None)
    assert s.shards == 16
    assert s.dedupe_window == 86400


@pytest.mark.parametrize(
    ("name", "value"),
    [("THREADLINE_SHARDS", "zero"), ("REDIS_URL", "http://x"), ("THREADLINE_AUTH_TOKENS", "nope"),
     ("THREADLINE_PUBLIC_URL", "capture.example.com"), ("THREADLINE_LOG_LEVEL", "LOUD")],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)


def test_subaccount_tokens_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADLINE_AUTH_TOKENS", "AC1=one, AC2=two")
    assert load_settings().subaccount_tokens == {"AC1": "one", "AC2": "two"}


def test_cli_stops_at_start_on_invalid_setting() -> None:
    run = subprocess.run([THREADLINE, "web", "--port", "1"], env={"THREADLINE_SHARDS": "-3"},
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "THREADLINE_SHARDS" in run.stderr


def test_cli_unknown_subcommand_is_usage_error() -> None:
    run = subprocess.run([THREADLINE, "no-such-thing"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "usage:" in run.stderr


def test_an_empty_path_setting_is_unset_not_the_current_directory(monkeypatch) -> None:
    monkeypatch.setenv("THREADLINE_CONFIG", "")
    monkeypatch.setenv("THREADLINE_SPOOL_DIR", "  ")
    settings = load_settings()
    assert settings.config_path is None and settings.spool_dir is None
