"""The pinned responses as a document: Markdown to read, CSV to analyse (the app's "Export the comparison").

A pin is the dict the app keeps (``explorer.app.state.Session.pinned``): ``weights``, ``method``,
``prompt``, ``sampling`` (SamplingConfig fields), ``response``, ``scores`` (this response's
score per objective), ``measured`` (the mix's means over the grid's prompts, when known) and
``partial`` (still streaming or cut off when pinned).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence

from explorer.mix import mix_label

DECODING = ("max_new_tokens", "temperature", "top_p", "seed")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run a cell starting with these


def _number(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.6g}"  # type: ignore[arg-type]


def _objectives(pins: Sequence[Mapping]) -> list[str]:
    """Every objective named by any pin, in first-seen order."""
    names: dict[str, None] = {}
    for pin in pins:
        names.update(dict.fromkeys(pin.get("scores", {})))
        names.update(dict.fromkeys(pin.get("measured", {})))
    return list(names)


def _adapters(pins: Sequence[Mapping]) -> list[str]:
    names: dict[str, None] = {}
    for pin in pins:
        names.update(dict.fromkeys(pin["weights"]))
    return list(names)


def comparison_rows(pins: Sequence[Mapping], *, reference: int = 0) -> list[dict[str, str]]:
    """One flat row per pin: its column, mix, method, prompt, decoding, scores, grid means and response."""
    adapters, objectives = _adapters(pins), _objectives(pins)
    rows = []
    for i, pin in enumerate(pins):
        row = {
            "pin": str(i + 1),
            "reference": "yes" if i == reference else "",
            "mix": mix_label(pin["weights"]),
            **{f"w_{n}": _number(pin["weights"].get(n)) for n in adapters},
            "method": str(pin.get("method", "soup")),
            "prompt": str(pin["prompt"]),
            **{k: _number(pin["sampling"].get(k)) for k in DECODING},
            **{f"score_{o}": _number(pin.get("scores", {}).get(o)) for o in objectives},
            **{f"grid_mean_{o}": _number(pin.get("measured", {}).get(o)) for o in objectives},
            "partial": "yes" if pin.get("partial") else "",
            "response": str(pin["response"]),
        }
        rows.append(row)
    return rows


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text, never runs (OWASP's CSV injection advice)."""
    return "'" + text if text.startswith(_FORMULA) else text


def comparison_csv(pins: Sequence[Mapping], *, reference: int = 0) -> str:
    """The comparison as CSV: a header line, then one line per pin (``comparison_rows``' columns).
    Text cells that a spreadsheet would read as a formula start with a quote."""
    rows = comparison_rows(pins, reference=reference)
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: _cell(v) if k in ("prompt", "response", "mix", "method") else v for k, v in row.items()}
        )
    return out.getvalue()


def _table_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> str:
    """``text`` in a code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def comparison_markdown(pins: Sequence[Mapping], *, reference: int = 0, title: str = "Pinned mixes") -> str:
    """The comparison as Markdown: a table of every pin's mix, decoding and scores, then each
    pin's prompt and response in full."""
    if not pins:
        return f"# {title}\n\nNo mix is pinned.\n"
    rows, objectives = comparison_rows(pins, reference=reference), _objectives(pins)
    head = ["pin", "mix", "method", *DECODING, *objectives, *(f"{o} (grid mean)" for o in objectives)]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        pin = (
            row["pin"]
            + (" (reference)" if row["reference"] else "")
            + (" (partial)" if row["partial"] else "")
        )
        cells = [
            pin,
            row["mix"],
            row["method"],
            *(row[k] for k in DECODING),
            *(row[f"score_{o}"] or "n/a" for o in objectives),
            *(row[f"grid_mean_{o}"] or "n/a" for o in objectives),
        ]
        lines.append("| " + " | ".join(_table_cell(c) for c in cells) + " |")
    lines.append("")
    lines.append("Scores are each response's own; grid means are the mix's mean over the grid's prompts.")
    for row in rows:
        lines += [
            "",
            f"## Pin {row['pin']}: {row['mix']} ({row['method']})",
            "",
            "Prompt:",
            "",
            _fenced(row["prompt"]),
        ]
        lines += ["", "Response:", "", _fenced(row["response"])]
    return "\n".join(lines) + "\n"
