"""The worker's settings file: defaults, the shipped example, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import load_worker_settings

CONFIGS = Path(__file__).parents[2] / "configs"


def test_no_file_means_defaults_and_the_embedded_broker() -> None:
    """Without a file every setting has its default and no broker is named."""
    settings = load_worker_settings(None)
    assert settings.broker is None
    assert settings.speed == 3600.0
    assert settings.window == 100
    assert settings.policy.retention == 90 * 86400


def test_the_shipped_worker_settings_load() -> None:
    """configs/worker.toml is valid and says what it says."""
    settings = load_worker_settings(CONFIGS / "worker.toml")
    assert settings.worker_id == "dc-west-1"
    assert dict(settings.datacenter.locations) == {"West US": 2, "East US": 3}
    assert settings.replay_tail == 2.0


def test_broker_settings_and_credentials(tmp_path: Path) -> None:
    """[broker] gives the URL, credentials (over the URL's) and TLS; mqtts means TLS."""
    path = tmp_path / "w.toml"
    path.write_text(
        '[broker]\nurl = "mqtts://u:p@broker.example:8884"\npassword = "secret"\n'
        'protocol = "3.1.1"\ntls_insecure = true\n'
    )
    broker = load_worker_settings(path).broker
    assert broker is not None
    assert (broker.host, broker.port, broker.tls) == ("broker.example", 8884, True)
    assert (broker.username, broker.password) == ("u", "secret")
    assert broker.protocol == "3.1.1"
    assert broker.url == "mqtts://u@broker.example:8884"  # never the password


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('worker_id = "has space"', "worker_id"),
        ("speed = 0", "speed"),
        ("window = 0", "window"),
        ("surprise = 1", "surprise"),
        ('[broker]\nurl = "http://x"', "broker.url"),
        ('[broker]\nprotocol = "4"', "broker.protocol"),
        ("[datacenter]\nthroughput_mb_s = -1", "datacenter.throughput_mb_s"),
    ],
)
def test_bad_settings_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    """Each invalid setting is reported with the file and its key."""
    path = tmp_path / "w.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_worker_settings(path)
    assert info.value.path == str(path)
    assert info.value.key == key


def test_a_postgresql_store_is_kept_as_its_url(tmp_path: Path) -> None:
    """``db`` may be a PostgreSQL URL: it reaches the worker as written, not as a path."""
    url = "postgresql://drivesim@127.0.0.1:5432/sim"
    path = tmp_path / "worker.toml"
    path.write_text(f'db = "{url}"\n')
    assert load_worker_settings(path).db == url
