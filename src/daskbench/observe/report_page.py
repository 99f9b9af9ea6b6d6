"""The report's pages: ``summary.md`` and the self-contained ``report.html`` (its
plots embedded), rendered from the tables and plots that :mod:`.report` gathers."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

MAX_ROWS = 100  # rows shown in the failure table


def _md_table(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def render_markdown(title, root, status, axes, images, fail, errors, slow, metrics, constants, band) -> str:
    import pandas as pd

    out = [
        f"# {title}",
        "",
        f"Results: `{root}`",
        "",
        "## Trials by status",
        "",
        _md_table(pd.DataFrame(status, columns=["status", "trials"])),
        "",
        "## Swept keys",
        "",
    ]
    out += [f"- `{k}`: {v}" for k, v in axes] or ["- none"]
    out += ["", f"## Metrics (band: {band})", ""]
    if constants:
        out += [f"The same in every ok trial (not plotted): {', '.join(f'`{k}` = {v}' for k, v in constants)}", ""]
    out += [f"![{name}]({p.name})\n\n*{caption}*\n" for name, p, caption in images]
    out += ["", f"## Failed, timed out or cancelled trials ({len(fail)})", ""]
    out += [_md_table(errors.head(MAX_ROWS)) + "\n\n" + _md_table(fail.head(MAX_ROWS)) if len(fail) else "None."]
    if len(fail) > MAX_ROWS:
        out.append(f"\n... and {len(fail) - MAX_ROWS} more")
    out += ["", "## Slowest trials", "", _md_table(slow), ""]
    return "\n".join(out)


def render_html(title, root, status, axes, images, fail, errors, slow, metrics, constants, band) -> str:
    import pandas as pd

    e = html.escape

    def tbl(d: pd.DataFrame) -> str:
        return d.to_html(index=False, border=0, classes="t", na_rep="")

    imgs = "".join(
        f'<figure><img alt="{e(n)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{e(c)} ({e(p.name)})</figcaption></figure>"
        for n, p, c in images
    )
    more = f"<p>... and {len(fail) - MAX_ROWS} more</p>" if len(fail) > MAX_ROWS else ""
    same = ", ".join(f"<code>{e(k)}</code> = {e(v)}" for k, v in constants)
    same = f"<p>The same in every ok trial (not plotted): {same}.</p>" if constants else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}} img{{max-width:100%}}
table.t{{border-collapse:collapse;font-size:.9em}} .t td,.t th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}
figure{{margin:1em 0}} figcaption{{color:#555}}</style></head><body>
<h1>{e(title)}</h1><p>Results: <code>{e(str(root))}</code></p>
<h2>Trials by status</h2>{tbl(pd.DataFrame(status, columns=["status", "trials"]))}
<h2>Swept keys</h2><ul>{"".join(f"<li><code>{e(k)}</code>: {e(v)}</li>" for k, v in axes) or "<li>none</li>"}</ul>
<h2>Metrics</h2><p>{e(", ".join(metrics)) or "no numeric metric that varies"}; band: {e(band)}.</p>{same}{imgs}
<h2>Failed, timed out or cancelled trials ({len(fail)})</h2>
{tbl(errors.head(MAX_ROWS)) + "<p></p>" + tbl(fail.head(MAX_ROWS)) if len(fail) else "<p>None.</p>"}{more}
<h2>Slowest trials</h2>{tbl(slow)}
</body></html>
"""
