"""The method description the docstrings cite exists and has every section they cite."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "PAPER.md"
# "PAPER.md section 5", "PAPER.md sections 2-3 and 7-8", "PAPER.md sections 3, 5 and 9".
CITATION = re.compile(r"PAPER\.md,? sections? (\d+(?:\s*(?:-|,|and)\s*\d+)*)")


def cited_sections():
    cited = {}
    files = [*(ROOT / "catface_keras").rglob("*.py"), *(ROOT / "training").rglob("*.yaml")]
    for path in files:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for part in re.split(r"\s*,\s*|\s+and\s+", match.group(1)):
                first, _, last = part.replace(" ", "").partition("-")
                for number in range(int(first), int(last or first) + 1):
                    cited.setdefault(number, []).append(path.relative_to(ROOT).as_posix())
    return cited


def test_every_cited_section_exists():
    headings = set(map(int, re.findall(r"^## (\d+)\. ", PAPER.read_text(encoding="utf-8"), re.M)))
    cited = cited_sections()
    assert {2, 5, 9} <= set(cited)  # the pattern still finds the citations
    missing = {number: files for number, files in cited.items() if number not in headings}
    assert not missing, f"sections cited but absent from docs/PAPER.md: {missing}"


def test_the_cited_tables_are_described():
    text = PAPER.read_text(encoding="utf-8")
    for table in ("Table II", "Table VIII"):
        assert f"**{table}**" in text
