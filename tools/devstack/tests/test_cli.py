"""The `maillage` command: tokens, keys, benchmarks, argument checks; and the mint fixture."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from maillage_common.auth.keys import DevSigningKey
from maillage_devstack import bench
from maillage_devstack.cli import main
from maillage_devstack.pytest_plugin import Mint


def _decode(token: str, jwks_path: Path, issuer: str) -> dict[str, Any]:
    keys = jwt.PyJWKSet.from_json(jwks_path.read_text())
    key = keys[jwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["ES256"], audience="maillage", issuer=issuer
    )
    return claims


def test_token_command_prints_a_token_the_dev_jwks_verifies(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "maillage_devstack", "token", "--state-dir", str(tmp_path)]
    options = ["--role", "nurse", "--subject", "nurse-42", "--site", "site-7", "--rpps", "10101"]
    completed = subprocess.run(
        [*command, *options, "--ttl", "600"], capture_output=True, text=True, check=True
    )
    token = completed.stdout.strip()

    claims = _decode(token, tmp_path / "dev-keys" / "jwks.json", issuer="maillage-dev")

    assert claims["sub"] == "nurse-42"
    assert claims["roles"] == ["nurse"]
    assert claims["site_id"] == "site-7"
    assert claims["rpps"] == "10101"
    assert claims["exp"] - claims["iat"] == 600
    assert abs(claims["iat"] - time.time()) < 60


def test_token_subject_defaults_to_the_role(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--role", "coordinator", "--state-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    claims = _decode(token, tmp_path / "dev-keys" / "jwks.json", issuer="maillage-dev")
    assert claims["sub"] == "dev-coordinator"
    assert "site_id" not in claims


def test_keys_are_created_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "--state-dir", str(tmp_path)]) == 0
    jwks_path = Path(capsys.readouterr().out.strip())
    assert jwks_path == (tmp_path / "dev-keys" / "jwks.json").resolve()
    first = jwks_path.read_text()

    assert main(["keys", "--state-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert jwks_path.read_text() == first


def test_token_refuses_an_unknown_role(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["token", "--role", "admin", "--state-dir", str(tmp_path)])
    assert exit_info.value.code == 2


def test_up_refuses_an_unknown_service(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--services", "directory,billing"]) == 2
    assert "billing" in capsys.readouterr().err


def test_bench_lists_every_service_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    listed = {line.split("\t")[0] for line in capsys.readouterr().out.splitlines()}
    expected = {"bus", "directory", "booking", "session-signalling", "telemetry", "statistics"}
    assert expected <= listed


def test_bench_runs_registered_benchmarks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(bench, "_REGISTRY", {})
    monkeypatch.setattr(bench, "RESULTS_DIRECTORY", tmp_path / "bench-results")
    monkeypatch.setattr(bench, "REPORT_PATH", tmp_path / "BENCHMARKS.md")
    ran: list[str] = []

    @bench.benchmark("noop")
    def noop() -> None:
        """Does nothing, quickly."""
        ran.append("noop")

    @bench.benchmark("failing")
    def failing() -> int:
        """Reports a regression."""
        ran.append("failing")
        return 3

    assert main(["bench", "--list"]) == 0
    assert (
        capsys.readouterr().out == "noop\tDoes nothing, quickly.\nfailing\tReports a regression.\n"
    )
    assert main(["bench", "noop"]) == 0
    assert main(["bench"]) == 3
    assert main(["bench", "missing"]) == 2
    assert ran == ["noop", "noop", "failing"]
    assert "## failing\n\nnot run yet" in (tmp_path / "BENCHMARKS.md").read_text()


def test_bench_report_puts_each_figure_beside_its_baseline(tmp_path: Path) -> None:
    results = bench.Results("relay", parameters={"events": 10})
    results.add(bench.Figure("publish", 900.0, "events/s", "raw aiokafka", 1200.0, "≥ 500"))
    results.write(tmp_path)

    report = bench.write_report(
        tmp_path, tmp_path / "BENCHMARKS.md", ["relay", "absent"], load_before=(1.0, 0.5, 0.25)
    ).read_text()

    assert "| publish | 900.0 events/s | raw aiokafka: 1,200.0 events/s | ≥ 500 |" in report
    assert "parameters: events=10" in report
    assert "before: 1.00 0.50 0.25; after: unknown" in report
    assert "## absent\n\nnot run yet" in report
    assert "cpus" in report

    # A later run with no result for `relay` (a fresh checkout) keeps its section as it was.
    (tmp_path / "relay.json").unlink()
    again = bench.write_report(tmp_path, tmp_path / "BENCHMARKS.md", ["relay", "absent"])
    assert "| publish | 900.0 events/s | raw aiokafka: 1,200.0 events/s | ≥ 500 |" in (
        again.read_text()
    )


def test_mint_fixture_signs_with_the_session_key(
    mint: Mint, dev_signing_key: DevSigningKey
) -> None:
    token = mint("kiosk", subject="kiosk-1", site_id="site-3", ttl_seconds=120)

    claims = _decode(token, dev_signing_key.jwks_path, issuer="maillage-test")

    assert claims["sub"] == "kiosk-1"
    assert claims["roles"] == ["kiosk"]
    assert claims["site_id"] == "site-3"
    assert claims["exp"] - claims["iat"] == 120
