"""The recipes of the README and the docs, run as written in a temporary folder, as a new user
would run them.

Each test reads its recipe out of the page that shows it (README.md for the quick start,
docs/lint.md for the library, editor and pre-commit recipes, docs/conform.md for the CI one), so
a test cannot pass while the page says something else. It replaces only the placeholders a user
must fill in (`<owner>`'s repository URL, the commit SHA) with a local git repository holding
this checkout, and runs the commands with the real tools: the installed `bulkreg`, a real
`pre-commit`, a real `pip` into a fresh virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # pre-commit's own dependency

from .test_precommit import GIT, snapshot

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINT = ROOT / "docs" / "lint.md"
CONFORM = ROOT / "docs" / "conform.md"
BIN = Path(sys.executable).parent
GITHUB = "https://github.com/<owner>/bulkreg"

GOOD = b'[{"id": "dev-1", "importMode": "create", "tags": {"site": "A"}}]\n'
BAD = b'[{"id": "bad id", "importMode": "create"}]\n'
IMPORT = b'{"id": "dev-1"}\n{"id": "dev-2", "importMode": "create"}\n'


def block(page: Path, lang: str, containing: str) -> str:
    """The one fenced ``lang`` block of ``page`` that contains ``containing``."""
    text = page.read_text(encoding="utf-8")
    found = [b for b in re.findall(rf"^```{lang}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
             if containing in b]
    assert len(found) == 1, \
        f"{len(found)} ```{lang} blocks of {page.relative_to(ROOT)} contain {containing!r}"
    return str(found[0])


def env_without_git_state() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRE_COMMIT", "GIT_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def shell(command: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, shell=True, cwd=cwd, env=env_without_git_state(),
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- the library snippet ----------------------------------------------------------------------


def test_library_snippet_runs_as_written(tmp_path: Path) -> None:
    code = block(LINT, "python", "from bulkreg_validator import validate, validate_import")
    (tmp_path / "devices.bulk.json").write_bytes(BAD)
    (tmp_path / "devices.txt").write_bytes(IMPORT)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("1 ") and " device-id-format ArgumentInvalid " in lines[0]
    assert lines[1:] == ["bulk ok: False", "import ok: True entries: 2"]


# --- the editor bundle ------------------------------------------------------------------------


def test_editor_recipe_in_a_fresh_repository(tmp_path: Path) -> None:
    command = block(LINT, "sh", "bulkreg schema-bundle").strip()
    assert not (tmp_path / ".vscode").exists()
    proc = shell(command, tmp_path)
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    settings = json.loads(block(LINT, "json", '"json.schemas"'))
    (mapping,) = settings["json.schemas"]
    schema_file = tmp_path / mapping["url"]
    assert schema_file.is_file()

    import jsonschema  # noqa: PLC0415 - test-only dependency

    validator = jsonschema.Draft202012Validator(json.loads(schema_file.read_text()))
    assert validator.is_valid(json.loads(GOOD))
    assert not validator.is_valid(json.loads(BAD))
    assert Path("x.bulk.json").match(mapping["fileMatch"][0])


# --- pre-commit, pinned by `pre-commit autoupdate` --------------------------------------------


def test_pre_commit_recipe_with_autoupdate(tmp_path: Path) -> None:
    """docs/lint.md's config, pointed at a repository holding this checkout: autoupdate pins the
    commit SHA, then the hook fails the bad payload and passes once it is fixed."""
    upstream = snapshot(tmp_path / "bulkreg")
    sha = subprocess.run([*GIT, "rev-parse", "HEAD"], cwd=upstream, capture_output=True,
                         text=True, check=True).stdout.strip()
    config = block(LINT, "yaml", "id: bulkreg-lint").replace(GITHUB, upstream.as_uri())
    assert "<" not in config, config  # nothing else left to fill in
    work = tmp_path / "work"
    (work / "provisioning").mkdir(parents=True)
    (work / ".pre-commit-config.yaml").write_text(config)
    (work / "provisioning" / "batch.bulk.json").write_bytes(BAD)
    subprocess.run([*GIT, "init", "-q"], cwd=work, check=True)
    subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
    home = f"PRE_COMMIT_HOME={shlex.quote(str(tmp_path / 'cache'))} "
    pre_commit = f"{shlex.quote(sys.executable)} -m pre_commit"

    proc = shell(f"{home}{pre_commit} autoupdate", work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pinned = yaml.safe_load((work / ".pre-commit-config.yaml").read_text())
    assert pinned["repos"][0]["rev"] == sha

    proc = shell(f"{home}{pre_commit} run --all-files --color never", work, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "provisioning/batch.bulk.json:1:" in proc.stdout
    assert "device-id-format [ArgumentInvalid]" in proc.stdout

    (work / "provisioning" / "batch.bulk.json").write_bytes(GOOD)
    proc = shell(f"{home}{pre_commit} run --all-files --color never", work, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- CI: install from the repository into a fresh venv, then the workflow's steps --------------


@pytest.mark.slow
def test_ci_recipe_installs_from_the_repository_and_runs(tmp_path: Path) -> None:
    upstream = snapshot(tmp_path / "bulkreg")
    sha = subprocess.run([*GIT, "rev-parse", "HEAD"], cwd=upstream, capture_output=True,
                         text=True, check=True).stdout.strip()
    steps = yaml.safe_load(block(CONFORM, "yaml", "bulkreg conform --seed 1"))
    runs = [step["run"] for step in steps if "run" in step]
    assert runs[0].startswith("pip install "), runs
    # file://localhost/...: pip before 23.3 rejects a git+file:/// requirement without a host
    local = "file://localhost" + upstream.as_uri().removeprefix("file://")
    runs[0] = runs[0].replace(GITHUB, local).replace("<commit SHA>", sha)
    assert "<" not in runs[0], runs[0]
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    work = tmp_path / "ci"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{fresh / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for command in runs:
        proc = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True,
                              text=True, timeout=900, check=False)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert (work / "conform.xml").is_file()
    assert json.loads((work / "conform.json").read_text())["verdict"] == "pass"
    # the installed copy came from the repository, not from this checkout
    where = subprocess.run([str(fresh / "bin" / "python"), "-c",
                            "import bulkreg_schema; print(bulkreg_schema.__file__)"],
                           capture_output=True, text=True, check=True).stdout
    assert str(ROOT) not in where and str(fresh) in where
    # were the extra missing, the one-line message would name this very git URL and commit
    from .test_cli import WITHOUT_EXTRA  # noqa: PLC0415

    proc = subprocess.run([str(fresh / "bin" / "python"), "-c", WITHOUT_EXTRA, "conform"],
                          cwd=work, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"install it with: pip install 'bulkreg[conform] @ git+{local}@{sha}'" in proc.stderr


@pytest.mark.slow
def test_quick_start_from_a_fresh_checkout(tmp_path: Path) -> None:
    """The quick start's main job, as written, in a clone that has never been installed."""
    command = block(README, "sh", "pip install '.[conform]' && bulkreg conform").strip()
    checkout = snapshot(tmp_path / "bulkreg")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != str(BIN))  # not this test's venv: a fresh machine
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    proc = subprocess.run(["bash", "-c", command], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-6000:]}\n{proc.stderr[-1500:]}"
    assert "verdict: PASS" in proc.stdout
    assert (checkout / ".venv-conform" / "bin" / "bulkreg").is_file()
