"""The report's sections as text: report.md, and report.html with its figures inlined."""

from __future__ import annotations

import base64
import html


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def markdown(sections: list) -> str:
    """report.md: figures are the PNG files written beside it."""
    lines = ["# cifar-ray report", ""]
    for _, title, blocks in sections:
        lines += [f"## {title}", ""]
        for kind, *args in blocks:
            if kind == "table":
                header, rows = args
                lines += ["| " + " | ".join(map(_cell, header)) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(map(_cell, r)) + " |" for r in rows]
            else:
                text = args[0]
                lines.append(
                    {"h3": f"### {text}", "p": text, "fig": f"![{text}]({text}.png)"}[kind]
                )
            lines.append("")
    return "\n".join(lines)


def _html_block(kind: str, args: list, figures: dict) -> str:
    esc = html.escape
    if kind == "table":
        header, rows = args
        head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if kind == "fig":
        data = base64.b64encode(figures[args[0]]).decode()
        title = esc(args[0].replace("-", " "))
        return f'<figure><img alt="{title}" src="data:image/png;base64,{data}"></figure>'
    return f"<{kind}>{esc(args[0])}</{kind}>"


def html_page(sections: list, figures: dict) -> str:
    """report.html, self-contained: every figure is inlined as base64."""
    nav = "".join(f'<li><a href="#{sid}">{html.escape(t)}</a></li>' for sid, t, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{html.escape(title)}</h2>'
        + "".join(_html_block(kind, args, figures) for kind, *args in blocks)
        + "</section>"
        for sid, title, blocks in sections
    )
    style = (
        "body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;"
        "padding:3px 9px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "th{background:#f3f3f3}img{max-width:100%}figure{margin:.5em 0 1.5em}"
        "nav ul{display:flex;flex-wrap:wrap;gap:.3em 1.2em;list-style:none;padding:0}"
        "section{border-top:1px solid #ddd;margin-top:1.5em}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cifar-ray report</title><style>{style}</style></head><body>"
        f"<h1>cifar-ray report</h1><nav><ul>{nav}</ul></nav>{body}</body></html>\n"
    )
