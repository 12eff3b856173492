"""The redactor: URL passwords and secret-named values become ***; normal arguments stay."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from aakit.config import Config
from aakit.experiment import studies
from aakit.redact import is_secret_name, redact_argv, redact_text


@pytest.mark.parametrize("text, want", [
    ("postgresql://aakit:s3cr3t@127.0.0.1:5432/db", "postgresql://aakit:***@127.0.0.1:5432/db"),
    ("postgresql+psycopg2://u:p%40ss@h/db", "postgresql+psycopg2://u:***@h/db"),
    ("mysql://u:p@ss@h/db", "mysql://u:***@h/db"),  # an unescaped '@' in the password
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
    ("storage 'postgresql://u:pw@h/db': cannot connect", "storage 'postgresql://u:***@h/db': cannot connect"),
    ("postgresql://h/db?sslmode=require&password=pw", "postgresql://h/db?sslmode=require&password=***"),
    ("aakit grid t.yaml --token abc123 --workers 2", "aakit grid t.yaml --token *** --workers 2"),
    ("aakit x --api-key=abc123", "aakit x --api-key=***"),
    ("WANDB_API_KEY=abc123 aakit train", "WANDB_API_KEY=*** aakit train"),
    ("PGPASSWORD='a b' psql", "PGPASSWORD=*** psql"),
    ("--set=db.token=abc", "--set=db.token=***"),
])
def test_redact_text(text: str, want: str) -> None:
    assert redact_text(text) == want
    assert redact_text(want) == want  # idempotent


@pytest.mark.parametrize("text", [
    "postgresql://postgres@127.0.0.1:5432/postgres",  # a user but no password
    "http://127.0.0.1:8080/path",
    "results/studies/grid-t1.log",
    "aakit grid experiments/grids/table1.yaml --set loss.lambda_aa=0.1 --workers 2",
    "--set train.epochs=3 --set loss.dilations=[4,8]",
    "step 12: cls=0.5 aa=0.2 lr=0.01 max_tokens=3",
    "FATAL: password authentication failed for user \"aakit\"",
    "--set 'loss.gamma': expected KEY=VALUE, e.g. loss.lambda_aa=0.2",
    "",
])
def test_no_false_positives(text: str) -> None:
    assert redact_text(text) == text


def test_redact_argv() -> None:
    argv = ["aakit", "grid", "t.yaml", "--storage", "postgresql://u:pw1@h/db", "--storage=postgresql://u:pw2@h/db",
            "--token", "pw3", "--password=pw4", "--api-key", "--looks-like-an-option", "--set", "db.token=pw5",
            "--set", "loss.lambda_aa=0.1", "HF_TOKEN=pw6", "--no-auth", "file.yaml", "--workers", "2"]
    out = redact_argv(argv)
    assert not any(f"pw{i}" in " ".join(out) for i in range(1, 7))
    assert "--looks-like-an-option" not in out  # whatever follows --api-key is its value
    assert out == ["aakit", "grid", "t.yaml", "--storage", "postgresql://u:***@h/db",
                   "--storage=postgresql://u:***@h/db", "--token", "***", "--password=***", "--api-key", "***",
                   "--set", "db.token=***", "--set", "loss.lambda_aa=0.1", "HF_TOKEN=***", "--no-auth",
                   "file.yaml", "--workers", "2"]
    assert argv[4] == "postgresql://u:pw1@h/db"  # the input is not modified


@pytest.mark.parametrize("name", ["password", "--db-password", "PGPASSWORD", "WANDB_API_KEY", "apiKey", "HF_TOKEN",
                                  "authToken", "client_secret", "--pass", "SSH_KEY", "aws_secret_access_key",
                                  "GOOGLE_APPLICATION_CREDENTIALS", "--auth"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["--storage", "--set", "loss.lambda_aa", "--workers", "max_tokens", "tokenizer",
                                  "keypoints", "monkey", "passes", "--no-auth", "KEY", "key", "--results", "session"])
def test_normal_names(name: str) -> None:
    assert not is_secret_name(name)


def test_the_redactor_needs_only_the_standard_library() -> None:
    code = ("import sys; before = set(sys.modules); import aakit.redact\n"
            "new = {m.split('.')[0] for m in set(sys.modules) - before} - {'aakit'}\n"
            "print(','.join(sorted(m for m in new if m not in sys.stdlib_module_names)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# ----------------------------------------------------------------------------- end to end
@pytest.fixture
def secret_postgres_url(postgres_url: str) -> tuple[str, str]:
    """(URL with a password, the password): a role ``aakit`` owning database ``aakit``.

    The server trusts local connections, so any password would do; what matters is that it is
    on the command line. It is random, so no source file or diff holds it.
    """
    import psycopg2

    password = "s3cr3t-" + secrets.token_hex(8)
    conn = psycopg2.connect(postgres_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE aakit LOGIN PASSWORD '{password}'")
        cur.execute("CREATE DATABASE aakit OWNER aakit")
    conn.close()
    host = postgres_url.split("@", 1)[1].rsplit("/", 1)[0]
    return f"postgresql://aakit:{password}@{host}/aakit", password


def test_a_database_password_is_written_and_printed_nowhere(
    tmp_path: Path, tiny_config: Config, secret_postgres_url: tuple[str, str]
) -> None:
    """``aakit grid`` / ``aakit search`` with ``--storage postgresql://aakit:PASSWORD@...`` train
    real (tiny) runs; no file under results/ and no line printed holds the password."""
    url, password = secret_postgres_url
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config.to_dict(), sort_keys=False))
    (tmp_path / "g.yaml").write_text("name: g\nbase: base.yaml\nseeds: [0]\ntable: 4\n"
                                     "row: 'gamma={loss.gamma}'\naxes: {loss.gamma: [2]}\n")
    (tmp_path / "s.yaml").write_text("name: s\nbase: base.yaml\nparams: {loss.gamma: {type: float, low: 0.0, high: 5.0}}\n"
                                     "sampler: {type: random, seed: 0}\npruner: {type: none}\n")
    results = tmp_path / "results"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def aakit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aakit.cli", *args, "--results", str(results)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

    bad_url = url.rsplit("@", 1)[0] + "@127.0.0.1:1/aakit"  # nothing listens on port 1
    done = [aakit("grid", "g.yaml", "--storage", url),
            aakit("search", "s.yaml", "--trials", "1", f"--storage={url}"),
            aakit("search", "--show", "--storage", url),
            aakit("grid", "g.yaml", "--storage", bad_url),  # an error message naming the storage
            aakit("grid", "g.yaml", "--workers", url)]  # a usage error about that value
    assert [p.returncode for p in done] == [0, 0, 0, 2, 2], [p.stderr for p in done]
    assert "cannot connect" in done[3].stderr and "aakit:***@127.0.0.1:1" in done[3].stderr
    for p in done:
        assert password not in p.stdout + p.stderr, p.args

    files = [f for f in results.rglob("*") if f.is_file()]
    assert len([f for f in files if f.name == "provenance.json"]) == 2  # the grid's run and the search's
    leaked = [str(f.relative_to(results)) for f in files if password.encode() in f.read_bytes()]
    assert leaked == []
    for f in results.rglob("provenance.json"):
        command = json.loads(f.read_text())["command"]
        assert any(a.startswith("--storage=postgresql://aakit:***@") or a.startswith("postgresql://aakit:***@")
                   for a in command), command
    assert json.loads((results / "grids" / "g" / "grid.json").read_text())["storage"].startswith("postgresql://aakit:***@")
    # nor in what the study itself holds
    storage = studies.open_storage(url, tmp_path / "unused.log")
    for summary in optuna.get_all_study_summaries(storage):
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).get_trials():
            assert password not in json.dumps([t.user_attrs, t.system_attrs, t.params], default=str)
