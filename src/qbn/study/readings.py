"""Readings written by hand (readings.md in the study directory), each after its claim's section,
citing generated numbers only: a number is written as its key in braces, `{claim1.adam_cosine.none.bn.minus_xnor}`,
and the report puts in the number as its table prints it (interval included). The report stops
with one line on an unknown key or a stray number.

A stray number: after every `{key}` is taken out, a digit that is not part of
- a name: a word (letters, digits, `_ . : / + -`) that begins with a letter or `_`, such as E_0.90,
  top-8, ResNet-20, layer1, S_0, epoch:1;
- `claim N` / `claims N` (any case) or `n = N` (a number of bits, as the tables write it).
So "0.25", "-0.31", "1/8", "3x3", "90 %" and "4 epochs" are stray: cite the key, or write the
words ("four epochs" is a choice the reading makes in words, not a measured number).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ..errors import QbnError

READINGS = "readings.md"
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
ALLOWED = re.compile(r"(?i)\b(?:claims? |n = )\d+\b")
WORD = re.compile(r"[\w.:/+\-]+")


def stray_numbers(text: str) -> list[str]:
    """The numbers of `text` that are not cited by key (the rule above)."""
    t = ALLOWED.sub(" ", PLACEHOLDER.sub(" ", text))
    return [
        w.rstrip(".:/-")
        for w in (m.group() for m in WORD.finditer(t))
        if re.search(r"\d", w) and not re.match(r"[A-Za-z_]", w)
    ]


def read_readings(study_dir: Path, sections: list[str]) -> dict[str, str]:
    """The readings of <study_dir>/readings.md keyed by their '## <section>' headings (as written,
    keys not yet filled in); none when the file is absent."""
    path = study_dir / READINGS
    if not path.exists():
        return {}
    readings: dict[str, list[str]] = {}
    key = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            key = line[3:].strip()
            if key not in sections:
                raise QbnError(
                    f"{path}: unknown section '## {key}'; readings are keyed by one of: {', '.join(sections)}"
                )
            readings[key] = []
        elif key is not None:
            readings[key].append(line)
        elif line.strip():
            raise QbnError(
                f"{path}: text before the first '## <section>' heading; start with one of: {', '.join(sections)}"
            )
    texts = {k: "\n".join(v).strip() for k, v in readings.items()}
    return {k: t for k, t in texts.items() if t}


def fill(text: str, numbers: dict[str, str], where: str) -> str:
    """`text` with every {key} replaced by its number; one QbnError line on an unknown key or a
    stray number (`where`: the file and section, for the message)."""
    stray = stray_numbers(text)
    if stray:
        raise QbnError(
            f"{where}: the number '{stray[0]}' is not cited by key; write {{key}} for a generated number "
            "(the keys are in numbers.json beside RESULTS.md)"
        )

    def one(m: re.Match) -> str:
        key = m.group(1).strip()
        if key not in numbers:
            close = difflib.get_close_matches(key, list(numbers), n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise QbnError(f"{where}: unknown key {{{key}}}{hint}; the keys are in numbers.json beside RESULTS.md")
        return numbers[key]

    return PLACEHOLDER.sub(one, text)
