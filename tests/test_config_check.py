"""``edge config check`` through the real CLI: valid files print every service's
effective settings as TOML with secrets masked; invalid files exit non-zero with one
line per problem."""

from __future__ import annotations

import os
import re
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


def _problems(stderr: str) -> list[str]:
    return [line.removeprefix("invalid: ") for line in stderr.splitlines() if line.startswith("invalid: ")]


def test_invalid_files_fail_with_one_located_line_per_problem(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[influx]\nurl = "x"\n'  # 1
        '[amqp]\nport = "five"\nbogus = 1\n'  # 3
        '[parser]\nsite_timezones = { "000001" = "Mars/Olympus" }\n'  # 6
        '[metrics]\nport = 70000\n'  # 8
        '[log]\nlevel = "LOUD"\n'  # 10
        '[sink]\nbatch_max_lines = -5\n'  # 12
        '[influxdb]\nurl = "127.0.0.1:8086"\ndatabse = "x"\n'  # 14
    )
    result = _check("--config", str(config))
    assert result.returncode == 3
    problems = _problems(result.stderr)
    expected = [
        f"{config}:1: [influx]: read by no service; did you mean [influxdb]?",
        f"{config}:4: amqp.port: Input should be a valid integer, unable to parse string as an integer (got 'five')",
        f"{config}:5: amqp.bogus: unknown key",
        f"{config}:7: parser.site_timezones.000001: unknown time zone 'Mars/Olympus' (an IANA name such as 'Asia/Seoul')",
        f"{config}:9: metrics.port: Input should be less than or equal to 65535 (got 70000)",
        f"{config}:11: log.level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL' (got 'LOUD')",
        f"{config}:13: sink.batch_max_lines: Input should be greater than 0 (got -5)",
        f"{config}:15: influxdb.url: must be an http:// or https:// URL with a host, e.g. http://influx.example:8086"
        " (got '127.0.0.1:8086')",
        f"{config}:16: influxdb.databse: unknown key; did you mean 'database'?",
    ]
    assert problems == expected  # each once (log.level is read by all seven services), in file order
    assert result.stderr.splitlines()[-1] == f"edge config: {len(expected)} problem(s) in {config}; no service can start"
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_an_environment_variable_is_named_as_the_source(tmp_path):
    result = _check("--service", "sink", env={"EDGE_INFLUXDB__DATABSE": "x", "EDGE_SINK__BATCH_MAX_LINES": "many"})
    assert result.returncode == 3
    assert _problems(result.stderr) == [
        "environment EDGE_INFLUXDB__DATABSE: influxdb.databse: unknown key; did you mean 'EDGE_INFLUXDB__DATABASE'?",
        "environment EDGE_SINK__BATCH_MAX_LINES: sink.batch_max_lines: Input should be a valid integer, "
        "unable to parse string as an integer (got many)",
    ]


def test_an_unknown_key_names_the_key_meant_even_in_another_section(tmp_path):
    """A near miss in its own table by its name; a key that lives in another
    section (the bridge's prefetch, not AMQP's) in full; from the environment as
    the variable to set."""
    config = tmp_path / "edge.toml"
    config.write_text('[amqp]\nprefetch_count = 50\nqueu = "q"\n[metrics]\nenable = false\n'
                      '[metrics.ports]\nparsr = 9700\n')
    result = _check("--config", str(config), "--service", "bridge")
    assert result.returncode == 3
    assert _problems(result.stderr) == [
        f"{config}:2: amqp.prefetch_count: unknown key; did you mean 'bridge.prefetch'?",
        f"{config}:3: amqp.queu: unknown key; did you mean 'queue'?",
        f"{config}:5: metrics.enable: unknown key; did you mean 'enabled'?",
        f"{config}:6: metrics.ports: no service named 'parsr' has a metrics port (one of bridge, parser, sink, archive)",
    ]
    result = _check("--service", "bridge", env={"EDGE_AMQP__PREFETCH_COUNT": "50"})
    assert _problems(result.stderr) == [
        "environment EDGE_AMQP__PREFETCH_COUNT: amqp.prefetch_count: unknown key; did you mean 'EDGE_BRIDGE__PREFETCH'?"]


def test_valid_services_are_printed_when_another_fails(tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[sink]\nbatch_max_lines = 0\n")
    result = _check("--config", str(config))
    assert result.returncode == 3
    printed = tomllib.loads(result.stdout)
    assert set(printed) == {"bridge", "parser", "archive", "query", "simulate", "topics"}
    assert "NOT valid for sink" in result.stdout.splitlines()[0]
    assert _problems(result.stderr) == [f"{config}:2: sink.batch_max_lines: Input should be greater than 0 (got 0)"]
    assert "valid: bridge, parser, archive, query, simulate, topics (printed)" in result.stderr


def test_kafka_client_properties_are_judged_by_librdkafka_without_connecting(tmp_path):
    import socket

    # A listening socket as the only broker: a connection attempt would queue here.
    with socket.socket() as broker:
        broker.bind(("127.0.0.1", 0))
        broker.listen(8)
        broker.setblocking(False)
        config = tmp_path / "edge.toml"
        config.write_text(
            f'[kafka]\nbootstrap_servers = "127.0.0.1:{broker.getsockname()[1]}"\n'
            '[kafka.client]\n"sasl.mechansim" = "PLAIN"\n"socket.timeout.ms" = 5\n"linger.ms" = 10\n'
        )
        result = _check("--config", str(config))
        try:
            broker.accept()
            connected = True
        except BlockingIOError:
            connected = False
    assert not connected
    assert result.returncode == 3
    assert _problems(result.stderr) == [
        f'{config}:4: kafka.client."sasl.mechansim": librdkafka refuses it: No such configuration property: '
        "\"sasl.mechansim\"; did you mean 'sasl.mechanism'?",
        f'{config}:5: kafka.client."socket.timeout.ms": librdkafka refuses it: Configuration property '
        '"socket.timeout.ms" value 5 is outside allowed range 10..300000',
    ]
    # The services that do not use Kafka are still valid and printed.
    assert set(tomllib.loads(result.stdout)) == {"archive", "query", "simulate"}


def test_secret_files_must_exist_and_hold_the_secret(tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "amqp_password").write_text("")
    config = tmp_path / "edge.toml"
    config.write_text('[amqp]\npassword_file = "amqp_password"\n[influxdb]\npassword_file = "/nonexistent/influx"\n')
    result = _check("--config", str(config), "--service", "bridge", "--service", "sink")
    assert result.returncode == 3
    assert _problems(result.stderr) == [
        f"{config}:2: amqp.password_file: secret file {creds}/amqp_password is empty: write the secret into it, "
        "or remove the setting",
        f"{config}:4: influxdb.password_file: secret file /nonexistent/influx cannot be read: No such file or directory",
    ]


def test_each_secret_says_where_it_comes_from(tmp_path):
    creds = tmp_path / "credentials"  # next to the config: the default --credentials-dir
    creds.mkdir()
    (creds / "amqp_password").write_text("s3cret-amqp\n")
    config = tmp_path / "edge.toml"
    config.write_text('[amqp]\nusername = "edge"\npassword_file = "amqp_password"\n'
                      '[influxdb]\npassword = "inline-secret"\n')
    result = _check("--config", str(config), env={"EDGE_KAFKA__SASL_PASSWORD": "env-secret"})
    assert result.returncode == 0, result.stderr
    assert "s3cret-amqp" not in result.stdout and "inline-secret" not in result.stdout
    assert "env-secret" not in result.stdout
    assert f"#   amqp.password: from file {creds}/amqp_password" in result.stdout
    assert "#   kafka.sasl_password: from environment EDGE_KAFKA__SASL_PASSWORD" in result.stdout
    assert f"#   influxdb.password: written in {config}:5 (readable by every local user" in result.stdout
    printed = tomllib.loads(result.stdout)
    assert printed["bridge"]["amqp"]["password"] == MASK

    # The built-in development account is shown as what it is, never masked.
    defaults = _check()
    assert defaults.returncode == 0
    assert "#   amqp.password: built-in development default 'guest', not a secret" in defaults.stdout
    assert "#   amqp.username: built-in development default 'guest', not a secret" in defaults.stdout
    assert tomllib.loads(defaults.stdout)["bridge"]["amqp"]["password"] == "guest"
    assert "built-in development defaults only" in defaults.stderr  # and a warning says so


def test_the_shipped_skeleton_is_valid_once_its_secret_files_are_filled(tmp_path):
    creds = tmp_path / "credentials"
    creds.mkdir()
    result = _check("--config", str(SKELETON), "--credentials-dir", str(creds))
    assert result.returncode == 3  # the slots it names are missing: each named
    assert {p.split(": ")[1] for p in _problems(result.stderr)} == {
        "amqp.password_file", "kafka.sasl_password_file", "influxdb.password_file"}
    for name in ("amqp_password", "kafka_password", "influx_password"):
        (creds / name).write_text(f"{name}-value\n")
    result = _check("--config", str(SKELETON), "--credentials-dir", str(creds))
    assert result.returncode == 0, result.stderr


def _value_and_comment(rest: str):
    """``value  # comment`` split where the value is valid TOML on its own."""
    for cut in [m.start() for m in re.finditer("#", rest)] + [len(rest)]:
        try:
            return tomllib.loads(f"v = {rest[:cut]}")["v"], rest[cut:]
        except tomllib.TOMLDecodeError:
            continue
    raise AssertionError(f"not a TOML value: {rest}")


def test_the_skeletons_comments_state_the_real_defaults():
    """Every commented ``# key = value`` line of deploy/edge.toml is the built-in
    default, unless the line says it is an example."""
    from edge.config.settings import SERVICE_SETTINGS

    defaults = {}
    for cls in SERVICE_SETTINGS.values():
        for name, field in cls.model_fields.items():
            defaults[name] = field.default_factory() if field.default_factory else field.default
    section, checked = None, 0
    for number, line in enumerate(SKELETON.read_text().splitlines(), 1):
        header = re.match(r"^\[([\w.]+)\]", line)
        if header:
            section = header.group(1)
            continue
        commented = re.match(r'^# ("[^"]+"|\w+) = (.*)$', line)
        if not commented or section is None:
            continue
        key, rest = commented.groups()
        value, comment = _value_and_comment(rest)
        if "example" in comment:
            continue
        assert "." not in section, f"line {number}: [{section}] holds examples only"
        actual = getattr(defaults[section], key)
        assert value == actual, f"deploy/edge.toml:{number}: {key} = {value!r}, but the default is {actual!r}"
        checked += 1
    assert checked >= 40


def test_a_missing_file_and_a_syntax_error_are_one_line_each(tmp_path):
    result = _check("--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 3
    assert result.stderr == f"edge config: {tmp_path}/missing.toml: config file does not exist\n"
    syntax = tmp_path / "syntax.toml"
    syntax.write_text('[amqp]\nhost = "a"\n[kafka\n')
    result = _check("--config", str(syntax))
    assert result.returncode == 3
    assert result.stderr == (f"edge config: {syntax}:3: not valid TOML: Expected ']' at the end of a table "
                             "declaration (column 7)\n")
    result = _check("--service", "nope")
    assert result.returncode == 2 and "unknown service nope" in result.stderr


def test_secret_names():
    for name in ("password", "sasl.password", "ssl.key.password", "ssl.key.pem", "token", "sasl.oauthbearer.client.secret"):
        assert looks_secret(name), name
    for name in ("password_file", "ssl.key.location", "sasl.username", "host", "client_secret_files"):
        assert not looks_secret(name), name
    assert mask_url("http://h:8086") == "http://h:8086"
    assert mask_url("https://u:p@h:8086/x") == f"https://u:{MASK}@h:8086/x"


def test_the_readmes_example_configuration_is_valid(tmp_path):
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```toml\n(.*?)```", readme[readme.index("## Configuration"):], re.DOTALL).group(1)
    config = tmp_path / "edge.toml"
    config.write_text(example)
    (tmp_path / "credentials").mkdir()
    for name in ("amqp_password", "kafka_password", "influx_password"):
        (tmp_path / "credentials" / name).write_text("secret\n")
    result = _check("--config", str(config))
    assert result.returncode == 0, result.stderr


def test_config_check_names_an_ambiguous_map(tmp_path):
    config = tmp_path / "nodes.toml"
    config.write_text('[influxdb]\nsite_map_version = 1\n'
                      '[influxdb.nodes.b]\nurl = "http://127.0.0.1:18096"\nsites = ["north-*", "x"]\n'
                      '[influxdb.nodes.c]\nurl = "http://127.0.0.1:18106"\nsites = ["nor*", "x"]\n')
    result = _check("--config", str(config))
    assert result.returncode == 3
    (problem,) = [p for p in _problems(result.stderr) if "influxdb" in p]
    assert "site 'x' is listed under more than one node: b, c" in problem
    assert "globs 'north-*' (node 'b') and 'nor*' (node 'c') can match the same site" in problem
    config.write_text('[influxdb]\nsite_map_version = 1\n'
                      '[influxdb.nodes.b]\nurl = "http://127.0.0.1:18096"\nsites = ["north-*", "x"]\n')
    result = _check("--config", str(config), "--service", "sink")
    assert result.returncode == 0, result.stderr
    assert 'sites = ["north-*", "x"]' in result.stdout
