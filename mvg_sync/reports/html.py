"""A report as one self-contained HTML page: inline CSS and SVG, no script, no URL."""

from __future__ import annotations

from html import escape

from mvg_sync.reports.format import format_percent, format_value
from mvg_sync.reports.model import Report, View
from mvg_sync.reports.svg import render_chart

# Beyond this a table is cut in the page (the XLSX and CSV files hold every row): a browser
# stays responsive and the file small enough to mail.
MAX_HTML_ROWS = 2000
# Text without spaces up to this length (ids, HSA-ids, codes) is kept on one line.
_TOKEN_MAX = 32
_LONG_TEXT = 24

# The policy forbids every fetch: the page cannot load anything even if a value smuggled
# markup past the escaping.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'"

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem 2rem;
       color: #1a1a1a; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
.intro { max-width: 60rem; line-height: 1.45; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
nav ul { columns: 2; padding-left: 1.2rem; }
figure { margin: 1rem 0 1.5rem; }
figcaption { font-weight: 600; margin-bottom: .3rem; }
.chart-note, .note { color: #555; font-size: .9rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { border: 1px solid #d0d0d0; padding: .2rem .45rem; text-align: left;
         vertical-align: top; }
th { background: #eef2f6; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.nw { white-space: nowrap; }
td.txt { min-width: 14rem; }
tr.flag td { background: #fdecea; }
tbody tr:nth-child(even):not(.flag) td { background: #fafafa; }
footer { margin-top: 2rem; color: #555; font-size: .85rem; }
@media print { nav { display: none; } th { position: static; } }
"""


def _is_truthy(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value != ""
    return bool(value)


def _rows(n: int) -> str:
    return "1 rad" if n == 1 else f"{format_value(n)} rader"


def _is_token(text: str) -> bool:
    return 0 < len(text) <= _TOKEN_MAX and not any(c.isspace() for c in text)


def _table(view: View) -> str:
    frame = view.frame
    numeric = {c for c, t in frame.schema.items() if t.is_numeric()}
    temporal = {c for c, t in frame.schema.items() if t.is_temporal()}
    percent = set(view.percent_columns)
    ids = set(view.id_columns)
    shown = frame.head(MAX_HTML_ROWS)
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in frame.columns)
    rows = []
    flag_index = frame.columns.index(view.highlight) if view.highlight else None
    for row in shown.iter_rows():
        cls = ' class="flag"' if flag_index is not None and _is_truthy(row[flag_index]) else ""
        cells = []
        for name, value in zip(frame.columns, row, strict=True):
            if name in percent:
                text = format_percent(value)
            elif name in ids and value is not None:
                text = str(value)
            else:
                text = format_value(value)
            if name in numeric:
                td = '<td class="num">'
            elif name in temporal or _is_token(text):
                # a date, time or id broken over two lines is misread
                td = '<td class="nw">'
            elif len(text) > _LONG_TEXT:
                # a wide table squeezes its wrappable columns: keep long text readable
                td = '<td class="txt">'
            else:
                td = "<td>"
            cells.append(f"{td}{escape(text)}</td>")
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{max(1, frame.width)}">Inga rader.</td></tr>')
    note = ""
    if frame.height > MAX_HTML_ROWS:
        note = (f'<p class="note">Visar de första {MAX_HTML_ROWS} av {frame.height} raderna; '
                f"alla finns i XLSX-filen.</p>")
    return (f'<div class="table-wrap"><table data-rows="{frame.height}"><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>{note}")


def render_html(report: Report) -> str:
    """The whole page as a string (UTF-8 when written)."""
    facts = ""
    if report.facts:
        items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in report.facts)
        facts = f'<dl class="facts">{items}</dl>'
    toc = "".join(
        f'<li><a href="#view-{i}">{escape(v.name)}</a> ({_rows(v.frame.height)})</li>'
        for i, v in enumerate(report.views, start=1)
    )
    charts = "".join(
        f'<figure id="chart-{i}"><figcaption>{escape(c.title)}</figcaption>{render_chart(c)}'
        f"</figure>"
        for i, c in enumerate(report.charts, start=1)
    )
    sections = [
        f'<section id="view-{i}"><h2>{escape(v.name)}</h2>'
        + (f'<p class="note">{escape(v.note)}</p>' if v.note else "")
        + _table(v)
        + "</section>"
        for i, v in enumerate(report.views, start=1)
    ]
    lead, rest = "".join(sections[:report.lead_views]), "".join(sections[report.lead_views:])
    generated = (f"Skapad {format_value(report.generated_at)}. "
                 if report.generated_at is not None else "")
    privacy = ""
    if report.holds_patient_data:
        privacy = ("Pseudonymiserad: personnummer maskerade, namn och fritext borttagna. "
                   if report.pseudonymised else
                   "Innehåller patientuppgifter: sprid inte filen vidare. ")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="sv"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(report.title)}</h1>"
        f'<p class="intro">{escape(report.intro)}</p>{facts}</header>'
        f"<nav><ul>{toc}</ul></nav>"
        + lead
        + (f'<section class="charts"><h2>Diagram</h2>{charts}</section>' if charts else "")
        + rest
        + f"<footer>{escape(generated + privacy)}Källa: Cosmic via mvg-sync.</footer>"
        "</body></html>\n"
    )


def count_marks(report: Report) -> dict[str, int]:
    """How many tables and charts the page holds (tests compare the rendered page with it)."""
    return {"tables": len(report.views), "charts": len(report.charts)}
