"""The project's own .pre-commit-config.yaml, run by the real pre-commit on a snapshot of this
checkout with one defect planted for each hook: each hook catches its own. (That the tree as it
is passes every hook is .ci/run's lint step.)

ruff and mypy are `language: system` hooks: they run this venv's own (its bin folder comes first
on PATH, as in an activated venv). The other hooks install pre-commit-hooks from the package
index into pre-commit's usual store (PRE_COMMIT_HOME or ~/.cache/pre-commit), where a developer's
`pre-commit install` and CI's lint step put the same environment, so it is built once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # pre-commit's own dependency

from .test_precommit import git, snapshot

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"
BIN = Path(sys.executable).parent

# one defect per hook: (path in the snapshot, content); None marks a hook planted otherwise
PLANTED: dict[str, tuple[str, bytes] | None] = {
    "ruff": ("validator/bulkreg_validator/_planted.py", b"import os\n"),  # F401
    "mypy": ("conformance/bulkreg_conformance/_planted.py",
             b"def answer() -> int:\n    return 'forty-two'\n"),
    "trailing-whitespace": ("planted/trailing.txt", b"a line   \n"),
    "end-of-file-fixer": ("planted/eof.txt", b"no newline at the end"),
    "mixed-line-ending": ("planted/mixed.txt", b"one\r\ntwo\n"),
    "check-yaml": ("planted/bad.yaml", b"key: [unclosed\n"),
    "check-toml": ("planted/bad.toml", b"key = [1,\n"),
    "check-json": ("planted/bad.json", b'{"a": 1,}\n'),
    "check-merge-conflict": ("planted/conflict.txt",
                             b"<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> theirs\n"),
    "check-added-large-files": ("planted/large.txt", b"x\n" * 300_000),  # 600 KB > 512
    "check-executables-have-shebangs": None,  # planted/run-me, executable, no #!
}


def hook_ids() -> list[str]:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return [hook["id"] for repo in config["repos"] for hook in repo["hooks"]]


def run_hooks(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k == "PRE_COMMIT_HOME" or not k.startswith(("PRE_COMMIT", "GIT_", "SKIP"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_every_hook_has_a_planted_defect() -> None:
    assert hook_ids() == list(PLANTED)


def test_each_hook_catches_its_defect(tmp_path: Path) -> None:
    repo = snapshot(tmp_path / "snapshot")
    for planted in PLANTED.values():
        if planted is not None:
            path = repo / planted[0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(planted[1])
    script = repo / "planted" / "run-me"
    script.write_text("echo no shebang\n")
    script.chmod(0o755)
    git(repo, "add", "-A")  # staged, not committed: "added" for check-added-large-files
    # check-merge-conflict looks only while a merge is under way
    (repo / ".git" / "MERGE_MSG").write_text("Merge branch 'theirs'\n")
    (repo / ".git" / "MERGE_HEAD").write_text(git(repo, "rev-parse", "HEAD"))
    run = run_hooks(repo)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    failed = re.findall(r"^- hook id: (\S+)$", run.stdout, re.MULTILINE)
    assert failed == list(PLANTED), output
    assert "F401" in output and "_planted.py" in output
    assert 'Incompatible return value type (got "str", expected "int")' in output
