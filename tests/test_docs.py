"""The README is a manual and the docs hold together: every relative link and image resolves to a file in the
repository (and every `#anchor` to a heading), no link leaves the repository, and the README stays short with no
result tables (results live in docs/results/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted([README, *(ROOT / "docs").rglob("*.md")])
MAX_README_LINES = 300

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: a result in a table: a confidence interval such as [0.12, 0.32], or a decimal such as 0.73 or +1.2e-4
_RESULT = re.compile(r"\[\s*[-+]?\d*\.?\d+\s*,\s*[-+]?\d*\.?\d+\s*\]|(?<![\w.])[-+]?\d+\.\d+")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (where brackets and numbers are not links or results).

    Example:
        >>> prose("a `[x](y)` b\\n```\\n[c](d)\\n```\\n")
        'a  b\\n\\n'
    """
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.

    Example:
        >>> slug("Measuring, not asserting")
        'measuring-not-asserting'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a page's headings (code in a heading counts, as on GitHub: "## `/metrics`" is #metrics).

    Example:
        >>> sorted(anchors(ROOT / "docs" / "serving.md"))[:2]
        ['errors', 'how-requests-are-scheduled']
    """
    return {slug(m.group(1)) for m in re.finditer(r"^#+[ \t]+(.+)$", _FENCE.sub("", path.read_text()), re.M)}


def links(path: Path) -> list[str]:
    return _LINK.findall(prose(path.read_text()))


def test_the_checks_see_links_and_results() -> None:
    text = "see [a](docs/a.md) and ![b](b.png)\n| x | 0.73 [0.65, 0.82] |\n```\n[c](http://x)\n```\n"
    assert _LINK.findall(prose(text)) == ["docs/a.md", "b.png"]
    assert _RESULT.search("| x | 0.73 [0.65, 0.82] |") and not _RESULT.search("| `--layers 6,10,14` | a table |")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_image_resolves_inside_the_repository(doc: Path) -> None:
    found = links(doc)
    assert found or doc != README
    for target in found:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I), f"{doc.name}: {target} leaves the repository"
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_relative_to(ROOT), f"{doc.name}: {target} points outside the repository"
        assert path.is_file(), f"{doc.name}: {target} is not a file in the repository"
        if anchor:
            assert path.suffix == ".md" and anchor in anchors(path), f"{doc.name}: no heading #{anchor} in {file}"


def test_the_readme_is_short_and_holds_no_result_table() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES
    rows = [line for line in prose(README.read_text()).splitlines() if line.lstrip().startswith("|")]
    assert rows, "the README's command table is gone"
    assert not [row for row in rows if _RESULT.search(row)], "result tables belong in docs/results/"


def test_every_results_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    pages = set((ROOT / "docs" / "results").glob("*.md"))
    assert pages and pages <= linked


def test_the_readme_frontier_sweep_is_the_benchmarked_one() -> None:
    """The README's frontier command and bench/frontier.py run the same sweep (methods, grids, test set, budget)."""
    import shlex
    import sys

    text = README.read_text()
    start = text.index("workbench sweep --run frontier")
    # bash drops a backslash-newline, inside double quotes too
    readme = shlex.split(text[start:text.index("```", start)].replace("\\\n", ""))
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import frontier
    finally:
        sys.path.remove(str(ROOT / "bench"))
    bench = frontier.sweep_command("frontier", Path("ARTIFACTS"), "ARC-Easy-Dev.jsonl", 200)
    bench = bench[bench.index("sweep"):]

    def options(argv: list[str]) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for i, arg in enumerate(argv):
            if arg.startswith("--"):
                name, eq, value = arg.partition("=")
                pairs[name] = value if eq else argv[i + 1]
        return pairs

    ours, theirs = options(readme), options(bench)
    theirs.pop("--artifacts")
    assert sorted(ours.pop("--method").split(",")) == sorted(theirs.pop("--method").split(","))
    assert ours == theirs
