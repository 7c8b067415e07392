"""The documented code: README.md and the hand-written pages of docs/, read by the tests that run it."""

import pathlib
import re
import textwrap

ROOT = pathlib.Path(__file__).parent.parent
#: Generated or built folders of docs/, whose pages are copies, not documentation written by hand.
GENERATED = {"_build", "auto_examples", "api"}


def documented_pages():
    """README.md and every hand-written page of docs/ (``.md`` and ``.rst``), in a fixed order."""
    pages = [ROOT / "README.md"]
    for page in sorted((ROOT / "docs").rglob("*")):
        if page.suffix in (".md", ".rst") and not GENERATED & set(page.relative_to(ROOT / "docs").parts):
            pages.append(page)
    return pages


def code_blocks(language):
    """The ``language`` code blocks of every documented page: fenced (Markdown) and ``code-block`` (reST)."""
    blocks = []
    for page in documented_pages():
        text = page.read_text()
        blocks += re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
        for body in re.findall(rf"^\.\. code-block:: {language}\n\n((?:(?:   .*)?\n)+)", text, flags=re.M):
            blocks.append(textwrap.dedent(body))
    return blocks
