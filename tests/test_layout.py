"""The package's shape, kept by the suite: layers (import-linter), file sizes, no
dead code (vulture), benches that stand on their own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MAX_LINES = 400


def test_the_import_layers_hold():
    # .importlinter: cli > commands > ops|simulator > stages|archive|query >
    # kafka|influx > runtime > config > core, and the parser imports no client.
    result = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_file_in_the_package_is_over_400_lines():
    # The compiled parser's Cython sources count too.
    sources = [p for pattern in ("*.py", "*.pyx", "*.pxi") for p in (ROOT / "edge").rglob(pattern)]
    long = {str(p.relative_to(ROOT)): n for p in sources
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_benches_import_nothing_from_the_tests():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imported_modules(p) if m.split(".")[0] == "tests")
                 for p in (ROOT / "bench").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_dead_code_at_80_percent_confidence():
    # Names only a framework calls are listed, with the reason, in the whitelist.
    targets = ["edge", "bench", "lambdas", "stacks", "app.py", "devtools/demo.py", "devtools/services.py",
               "devtools/vulture_whitelist.py"]
    result = subprocess.run([str(BIN / "vulture"), *targets, "--min-confidence", "80"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
