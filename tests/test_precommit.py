"""The published pre-commit hook, run by the real pre-commit (`pre-commit try-repo`).

try-repo on a dirty checkout commits only tracked files, so the test first snapshots the checkout
under test (tracked and untracked, not ignored) into a temporary git repository and tries that:
the hook is tested exactly as it is in the working tree. pre-commit installs the snapshot
non-editable into a fresh virtualenv (pip fetches the build backend and orjson from PyPI), so this
also proves the package data works outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # pre-commit's own dependency

from bulkreg_validator.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / ".pre-commit-hooks.yaml"
GIT = ("git", "-c", "user.name=bulkreg-test", "-c", "user.email=test@invalid",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main")

GOOD = b'[{"id": "dev-1", "importMode": "create"}]\n'
BAD = b'[{"id": "bad id", "importMode": "create"}]\n'


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, check=True, timeout=60)
    return proc.stdout.decode()


def snapshot(dest: Path) -> Path:
    """A one-commit git repository holding the checkout's working tree."""
    if not (ROOT / ".git").exists():
        pytest.skip("the checkout under test is not a git repository")
    listed = git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # tracked files deleted in the working tree are left out
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "snapshot of the checkout under test")
    return dest


def try_repo(work: Path, repo: Path, hook: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "GIT_"))}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(repo), hook, "--color", "never",
         *args],
        cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_hook_manifest_is_valid_and_its_commands_parse() -> None:
    from pre_commit.clientlib import load_manifest  # type: ignore[import-untyped]  # noqa: PLC0415

    hooks = load_manifest(str(HOOKS))
    assert [h["id"] for h in hooks] == ["bulkreg-lint", "bulkreg-lint-import"]
    raw = yaml.safe_load(HOOKS.read_text())
    for hook in raw:
        command = hook["entry"].split()
        assert command[:2] == ["bulkreg", "lint"]
        args = build_parser().parse_args([*command[1:], *hook.get("args", []), "x.json"])
        assert args.command == "lint"
        assert hook["language"] == "python"


def test_hook_file_patterns() -> None:
    import re  # noqa: PLC0415

    files = {h["id"]: re.compile(h["files"]) for h in yaml.safe_load(HOOKS.read_text())}
    lint, imports = files["bulkreg-lint"], files["bulkreg-lint-import"]
    for name in ("a.bulk.json", "x/y/devices.txt", "d.jsonl", "d.ndjson"):
        assert lint.search(name), name
    for name in ("package.json", "notes.txt", "mydevices.txt", "a.bulk.json.bak"):
        assert not lint.search(name), name
    assert imports.search("sub/devices.txt") and not imports.search("a.bulk.json")


def work_repo(tmp_path: Path) -> Path:
    """A git repository holding one good and one bad payload, and JSON that is no payload."""
    work = tmp_path / "work"
    (work / "payloads").mkdir(parents=True)
    (work / "payloads" / "ok.bulk.json").write_bytes(GOOD)
    (work / "payloads" / "bad.bulk.json").write_bytes(BAD)
    (work / "package.json").write_bytes(b'{"name": "not a payload"}\n')  # not matched
    git(work, "init", "-q")
    git(work, "add", "-A")
    return work


def test_pre_commit_try_repo_fails_on_the_bad_payload(tmp_path: Path) -> None:
    work = work_repo(tmp_path)
    run = try_repo(work, snapshot(tmp_path / "snapshot"), "bulkreg-lint", "--all-files")
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "- hook id: bulkreg-lint" in output
    findings = [line for line in output.splitlines() if " error " in line]
    assert len(findings) == 1, output  # the good payload, linted in the same call, has none
    assert findings[0].startswith("payloads/bad.bulk.json:1:")
    assert "device-id-format [ArgumentInvalid] id 'bad id'" in findings[0]
    assert "bulkreg lint: failed: 2 files, 2 entries, 1 error" in output  # package.json skipped


# a second hook environment install (try-repo always uses a fresh store): 10-25 s
def test_pre_commit_try_repo_passes_the_good_payload_alone(tmp_path: Path) -> None:
    work = work_repo(tmp_path)
    run = try_repo(work, snapshot(tmp_path / "snapshot"), "bulkreg-lint",
                   "--files", "payloads/ok.bulk.json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Passed" in run.stdout
