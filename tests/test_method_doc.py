"""docs/method.md and the code that cites it stay in step.

* Every numbered heading of docs/method.md (``## 3. ...``, ``### 3.8 ...``) defines a section number.
* Every ``method.md`` section reference in the code and the docs (the section sign followed by a number, also a
  list or range such as "3.6-3.8" or "2.2, 2.3" after ``method.md``) must name a section that exists. ``X.0`` stands
  for the introduction of section ``X``.
* No code comment or docstring, and no doc, may still cite the old, unshipped spec document by number (the old form
  was the word "spec", a space and a section number, also prefixed ``nero_``).

The source of this file spells the section sign as an escape and never writes an old-style citation literally, so it
does not trip its own checks.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Set, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
METHOD_DOC = REPO_ROOT / "docs" / "method.md"
CODE_DIRS = ("nero_nerfstudio", "benchmarks", "blender_backend", "tests")
"""Folders whose .py files are checked (recursively)."""
DOC_FILES = ("README.md", "docs")
"""Markdown files (or folders of them) whose references are checked too."""

SECTION_SIGN = "\u00a7"
_NUMBER = r"\d+(?:\.\d+)*"
_DOTTED = r"\d+(?:\.\d+)+"

HEADING = re.compile(r"^(#{1,6})\s+(" + _NUMBER + r")\.?\s+\S")
"""A numbered Markdown heading: ``## 3. Title`` or ``### 3.8 Title``."""
FENCE = re.compile(r"^\s*(```|~~~)")

BARE_REFERENCE = re.compile(SECTION_SIGN + r"\s*(" + _NUMBER + r")")
"""Any section sign followed by a number refers to method.md."""
REFERENCE_RUN = re.compile(
    r"method\.md\s*"
    + SECTION_SIGN
    + r"\s*"
    + _NUMBER
    + r"(?:\s*(?:,|-|\u2013|\u2014|and|&|/|to)\s*(?:"
    + SECTION_SIGN
    + r"\s*"
    + _NUMBER
    + r"|"
    + _DOTTED
    + r"))*"
)
"""``method.md`` + section sign + number, with follow-up numbers of a list or range (a follow-up without its own
section sign must be dotted, so "..., 20 steps" is not read as section 20)."""

OLD_NUMBERED = re.compile(r"\bspec \d+(\.\d+)*\b")
"""The old citation form, case-sensitive (the brief's pattern)."""
OLD_NUMBERED_PREFIXED = re.compile(r"\bnero_spec \d+(\.\d+)*\b")
"""The same with the document's file stem, which ``\\bspec`` misses (``_`` is a word character)."""


# ---------------------------------------------------------------------------------------------------------------
# Parsing


def section_numbers(markdown: str) -> Dict[str, int]:
    """Section number -> heading level of every numbered heading outside code fences."""
    sections: Dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        match = HEADING.match(line)
        if match:
            sections.setdefault(match.group(2), len(match.group(1)))
    return sections


def references_in_line(line: str) -> Set[str]:
    """Section numbers a line refers to."""
    found = {match.group(1) for match in BARE_REFERENCE.finditer(line)}
    for run in REFERENCE_RUN.finditer(line):
        found.update(re.findall(_NUMBER, run.group(0)))
    return found


def resolves(number: str, sections: Set[str]) -> bool:
    """Whether ``number`` names a section; trailing ``.0`` components name the enclosing section's introduction."""
    while True:
        if number in sections:
            return True
        if not number.endswith(".0"):
            return False
        number = number[: -len(".0")]


def unresolved_references(path: Path, text: str, sections: Set[str]) -> List[str]:
    """``path:line: number`` of every reference in ``text`` that names no section."""
    problems = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        for number in sorted(references_in_line(line)):
            if not resolves(number, sections):
                problems.append(f"{path}:{line_number}: {SECTION_SIGN}{number}")
    return problems


def comment_and_string_lines(source: str) -> Iterator[Tuple[int, str]]:
    """``(line number, text)`` of each line of every comment and string literal (docstrings included); the whole
    source, line by line, if it does not tokenize."""
    text_tokens = {tokenize.COMMENT, tokenize.STRING}
    fstring_middle = getattr(tokenize, "FSTRING_MIDDLE", None)
    if fstring_middle is not None:
        text_tokens.add(fstring_middle)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        yield from enumerate(source.splitlines(), start=1)
        return
    for token in tokens:
        if token.type in text_tokens:
            for offset, line in enumerate(token.string.splitlines()):
                yield token.start[0] + offset, line


def old_citations(path: Path, source: str, patterns: Iterable[re.Pattern]) -> List[str]:
    """``path:line: match`` of every old-style citation in the comments and strings of a .py source."""
    patterns = list(patterns)
    problems = []
    for line_number, line in comment_and_string_lines(source):
        for pattern in patterns:
            for match in pattern.finditer(line):
                problems.append(f"{path}:{line_number}: {match.group(0)!r}")
    return problems


def python_files() -> List[Path]:
    files: List[Path] = []
    for folder in CODE_DIRS:
        files.extend(sorted((REPO_ROOT / folder).rglob("*.py")))
    return [path for path in files if ".venv" not in path.parts and "__pycache__" not in path.parts]


def markdown_files() -> List[Path]:
    files: List[Path] = []
    for name in DOC_FILES:
        path = REPO_ROOT / name
        files.extend(sorted(path.rglob("*.md")) if path.is_dir() else [path] if path.is_file() else [])
    return files


def relative(path: Path) -> Path:
    try:
        return path.relative_to(REPO_ROOT)
    except ValueError:
        return path


@pytest.fixture(scope="module")
def sections() -> Dict[str, int]:
    assert METHOD_DOC.is_file(), f"{METHOD_DOC} is missing"
    return section_numbers(METHOD_DOC.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# The document


# Section numbers cited by the code when the document was written (the old citations, rewritten one to one).
CITED_SECTIONS = (
    "1.2", "1.3", "1.4", "2", "2.1", "2.2", "2.3", "2.4", "3.1", "3.2", "3.3", "3.5", "3.6", "3.7", "3.8", "3.9",
    "4", "4.1", "4.2", "4.3", "4.4", "4.5", "4.7", "5.3", "6.1",
)  # fmt: skip


def test_method_doc_has_every_cited_section(sections: Dict[str, int]) -> None:
    missing = [number for number in CITED_SECTIONS if number not in sections]
    assert not missing, f"docs/method.md lacks sections {missing}"


def test_method_doc_numbering_is_consistent(sections: Dict[str, int]) -> None:
    """``## N.`` for sections, ``### N.M`` for subsections, every subsection inside an existing section."""
    problems = []
    for number, level in sections.items():
        depth = number.count(".") + 1
        if level != depth + 1:
            problems.append(f"{number}: heading level {level}, expected {depth + 1} ('{'#' * (depth + 1)}')")
        parent = number.rsplit(".", 1)[0] if "." in number else None
        if parent is not None and parent not in sections:
            problems.append(f"{number}: its section {parent} has no heading")
    assert not problems, "docs/method.md headings:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# References into it


def test_code_references_name_existing_sections(sections: Dict[str, int]) -> None:
    problems = []
    for path in python_files():
        problems.extend(unresolved_references(relative(path), path.read_text(encoding="utf-8"), set(sections)))
    assert not problems, "references to sections docs/method.md does not have:\n" + "\n".join(problems)


def test_doc_references_name_existing_sections(sections: Dict[str, int]) -> None:
    """README.md and docs/*.md, method.md's own cross-references included."""
    problems = []
    for path in markdown_files():
        problems.extend(unresolved_references(relative(path), path.read_text(encoding="utf-8"), set(sections)))
    assert not problems, "references to sections docs/method.md does not have:\n" + "\n".join(problems)


def test_code_no_longer_cites_the_old_spec_by_number() -> None:
    problems = []
    for path in python_files():
        problems.extend(
            old_citations(relative(path), path.read_text(encoding="utf-8"), (OLD_NUMBERED, OLD_NUMBERED_PREFIXED))
        )
    hint = f"rewrite each as 'method.md {SECTION_SIGN}X.Y'"
    assert not problems, f"old citations of the unshipped spec; {hint}:\n" + "\n".join(problems)


def test_docs_no_longer_cite_the_old_spec() -> None:
    problems = []
    for path in markdown_files():
        for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for pattern in (OLD_NUMBERED, OLD_NUMBERED_PREFIXED):
                problems.extend(f"{relative(path)}:{line_number}: {m.group(0)!r}" for m in pattern.finditer(line))
    assert not problems, "old citations of the unshipped spec in the docs:\n" + "\n".join(problems)


# ---------------------------------------------------------------------------------------------------------------
# Self-tests of the checker


SAMPLE_DOC = """# Title

Intro.

## 1. First

### 1.1 Sub

```
## 9. inside a fence, not a heading
```

## 2. Second
"""


def test_checker_parses_numbered_headings_only() -> None:
    assert section_numbers(SAMPLE_DOC) == {"1": 2, "1.1": 3, "2": 2}


def test_checker_reads_lists_ranges_and_bare_references() -> None:
    sign = SECTION_SIGN
    assert references_in_line(f"see method.md {sign}3.6-3.8 and method.md {sign}4") == {"3.6", "3.8", "4"}
    assert references_in_line(f"(method.md {sign}2.2, 2.3)") == {"2.2", "2.3"}
    assert references_in_line(f"(method.md {sign}3.8, {sign}4.5)") == {"3.8", "4.5"}
    assert references_in_line(f"method.md {sign}3.8, 20 steps later") == {"3.8"}
    assert references_in_line(f"as in {sign}5.3.") == {"5.3"}
    assert references_in_line("no reference here, method.md alone") == set()


def test_checker_detects_a_missing_section(tmp_path: Path) -> None:
    doc = tmp_path / "method.md"
    doc.write_text(SAMPLE_DOC, encoding="utf-8")
    code = tmp_path / "module.py"
    code.write_text(
        f'"""Uses method.md {SECTION_SIGN}1.1 and method.md {SECTION_SIGN}2.0."""\n'
        f"# but also method.md {SECTION_SIGN}7.4, which does not exist\n",
        encoding="utf-8",
    )
    sections = set(section_numbers(doc.read_text(encoding="utf-8")))
    problems = unresolved_references(code, code.read_text(encoding="utf-8"), sections)
    assert problems == [f"{code}:2: {SECTION_SIGN}7.4"]


def test_checker_detects_old_citations_in_comments_and_docstrings(tmp_path: Path) -> None:
    old = "spe" + "c"
    code = tmp_path / "module.py"
    code.write_text(
        f'"""Docstring citing {old} 3.5."""\n'
        f"value = 1  # comment citing nero_{old} 2.2-2.3\n"
        f"# {old}ial 4.1 and Spec 4.1 are not citations\n",
        encoding="utf-8",
    )
    source = code.read_text(encoding="utf-8")
    assert old_citations(code, source, (OLD_NUMBERED, OLD_NUMBERED_PREFIXED)) == [
        f"{code}:1: '{old} 3.5'",
        f"{code}:2: 'nero_{old} 2.2'",
    ]
