"""``edge config check`` through the real CLI: valid files print every service's
effective settings as TOML with secrets masked; invalid files exit non-zero with one
line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

from edge.ops.config_check import MASK, looks_secret, mask_url

ROOT = Path(__file__).resolve().parent.parent
SKELETON = ROOT / "deploy" / "edge.toml"


def _check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGE_", "CREDENTIALS_DIRECTORY"))}
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "config", "check", *args],
        cwd=ROOT, env={**clean, "EDGE_CONFIG": "", **(env or {})},
        capture_output=True, text=True, timeout=60,
    )


def test_secrets_are_masked_wherever_they_come_from(tmp_path):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "influx_password").write_text("from-a-credential-file\n")
    (creds / "kafka_password").write_text("kafka-file-secret\n")
    config = tmp_path / "edge.toml"
    config.write_text(
        '[amqp]\nhost = "rabbit.example"\npassword = "amqp-inline-secret"\n'
        '[kafka]\nbootstrap_servers = "k1:9092"\n'
        '[kafka.client]\n"sasl.username" = "edge"\n"sasl.password" = "sasl-inline-secret"\n'
        '"ssl.key.password" = "keypass-secret"\n"sasl.oauthbearer.client.secret" = "oauth-secret"\n'
        '"ssl.key.location" = "/etc/edge/tls/client.key"\n'
        '[kafka.client_secret_files]\n"sasl.password" = "kafka_password"\n'
        '[influxdb]\nurl = "http://reader:url-secret@influx.example:8086"\npassword_file = "influx_password"\n'
    )
    result = _check("--config", str(config), env={
        "CREDENTIALS_DIRECTORY": str(creds), "EDGE_S3__BUCKET": "b", "EDGE_AMQP__USERNAME": "edge-env"})
    assert result.returncode == 0, result.stderr
    for secret in ("amqp-inline-secret", "sasl-inline-secret", "keypass-secret", "oauth-secret",
                   "from-a-credential-file", "kafka-file-secret", "url-secret"):
        assert secret not in result.stdout, secret
    printed = tomllib.loads(result.stdout)
    assert set(printed) == {"bridge", "parser", "sink", "archive", "query", "simulate", "topics"}
    bridge, sink = printed["bridge"], printed["sink"]
    assert bridge["amqp"]["host"] == "rabbit.example" and bridge["amqp"]["password"] == MASK
    assert bridge["amqp"]["username"] == "edge-env"  # the environment wins over the file
    client = bridge["kafka"]["client"]
    assert client["sasl.password"] == MASK and client["ssl.key.password"] == MASK
    assert client["sasl.oauthbearer.client.secret"] == MASK
    assert client["sasl.username"] == "edge" and client["ssl.key.location"] == "/etc/edge/tls/client.key"
    assert bridge["kafka"]["client_secret_files"] == {"sasl.password": "kafka_password"}
    assert sink["influxdb"]["password"] == MASK  # read from $CREDENTIALS_DIRECTORY/influx_password
    # Credentials in the URL move to their fields (never shown in the URL).
    assert sink["influxdb"]["url"] in ("http://influx.example:8086", f"http://reader:{MASK}@influx.example:8086")
    assert printed["archive"]["s3"]["bucket"] == "b"
    assert "EDGE_S3__BUCKET" in result.stdout  # the overrides are listed


def test_one_service_only_and_command_aliases(tmp_path):
    result = _check("--service", "parse", "--format", "json")
    assert result.returncode == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert list(data["services"]) == ["parser"]
    assert data["services"]["parser"]["parser"]["group_id"] == "edge-parser"


def test_invalid_files_fail_with_one_clear_line_per_problem(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[influx]\nurl = "x"\n[amqp]\nport = "five"\nbogus = 1\n'
                      '[parser]\nsite_timezones = { "000001" = "Mars/Olympus" }\n[metrics]\nport = 70000\n')
    result = _check("--config", str(config))
    assert result.returncode == 1
    err = result.stderr
    assert "[influx] is read by no service" in err
    assert "bridge: amqp.port: Input should be a valid integer" in err and "'five'" in err
    assert "bridge: amqp.bogus: Extra inputs are not permitted" in err
    assert "parser: parser.site_timezones.000001: unknown time zone 'Mars/Olympus'" in err
    assert "metrics.port: 70000 is not a TCP port" in err
    assert result.stdout == ""

    syntax = tmp_path / "syntax.toml"
    syntax.write_text("[amqp\nhost = 1\n")
    result = _check("--config", str(syntax))
    assert result.returncode == 1 and "not valid TOML" in result.stderr

    result = _check("--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 1 and "config file not found" in result.stderr

    secret_missing = tmp_path / "secret.toml"
    secret_missing.write_text('[amqp]\npassword_file = "/nonexistent/amqp_password"\n')
    result = _check("--config", str(secret_missing), "--service", "bridge")
    assert result.returncode == 1 and "/nonexistent/amqp_password" in result.stderr

    wrong_value = tmp_path / "wrong_secret.toml"
    wrong_value.write_text('[amqp]\npassword = 12\nport = "x"\n')
    assert "12" not in _check("--config", str(wrong_value), "--service", "bridge").stderr.split("amqp.port")[0]

    result = _check("--service", "nope")
    assert result.returncode == 2 and "unknown service nope" in result.stderr


def test_the_shipped_skeleton_is_valid():
    result = _check("--config", str(SKELETON))
    assert result.returncode == 0, result.stderr


def test_secret_names():
    for name in ("password", "sasl.password", "ssl.key.password", "ssl.key.pem", "token", "sasl.oauthbearer.client.secret"):
        assert looks_secret(name), name
    for name in ("password_file", "ssl.key.location", "sasl.username", "host", "client_secret_files"):
        assert not looks_secret(name), name
    assert mask_url("http://h:8086") == "http://h:8086"
    assert mask_url("https://u:p@h:8086/x") == f"https://u:{MASK}@h:8086/x"
