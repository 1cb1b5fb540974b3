"""The repository's documents: nothing links outside the repository, and every
relative Markdown link (README.md, CHANGELOG.md, docs/, recipes/, resources)
points at a file or folder that is there."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".md", ".py", ".sh", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini"}
URL = re.compile(r"\b(?:https?|ftp)://[^\s)>\]'\"`]+")
# Not links: the header kenlm writes into its binary LM files, which a test forges.
NOT_LINKS = {"http://kheafield.com/code"}
MD_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def _tracked(suffixes: set[str]) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        files = [ROOT / p for p in out.decode().split("\0") if p]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (an sdist): walk the tree
        files = [p for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts]
    return sorted(p for p in files if p.suffix in suffixes and p.is_file() and "resources/tiny/audio" not in str(p))


def test_the_documents_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in _tracked({".md"})}
    assert {"README.md", "CHANGELOG.md", "docs/design.md", "docs/index.md"} <= names
    assert sum(n.startswith("docs/") for n in names) >= 5


def test_the_documents_link_to_each_other():
    assert len(_md_targets((ROOT / "docs" / "index.md").read_text(encoding="utf-8"))) >= 10


def test_no_link_leaves_the_repository():
    found = []
    for path in _tracked(TEXT_SUFFIXES):
        text = path.read_text(encoding="utf-8", errors="replace")
        for n, line in enumerate(text.splitlines(), 1):
            for url in URL.findall(line):
                if url.rstrip(".,;:") not in NOT_LINKS:
                    found.append(f"{path.relative_to(ROOT)}:{n}: {url}")
    assert not found, "links outside the repository:\n" + "\n".join(found)


def test_the_url_pattern_finds_links():
    a, b = "https:" + "//example.org/a", "http:" + "//b.c/d"  # split so that this file holds no link itself
    assert URL.findall(f"see (<{a}>) and [x]({b})") == [a, b]


def _md_targets(text: str) -> list[str]:
    # code spans and fenced blocks hold examples, not links
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in MD_LINK.findall(text)]


def test_md_targets_skip_code():
    assert _md_targets("[a](x.md) `[b](y.md)` ![i](img/p.png)\n```\n[c](z.md)\n```") == ["x.md", "img/p.png"]


@pytest.mark.parametrize("path", _tracked({".md"}), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path):
    broken = []
    for target in _md_targets(path.read_text(encoding="utf-8")):
        if target.startswith(("#", "mailto:")) or URL.match(target):
            continue  # anchors; outside links are the test above's business
        file = target.split("#", 1)[0]
        if file and not (path.parent / file).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)}: links to missing files: {broken}"
