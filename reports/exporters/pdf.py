"""A report as PDF: its stored HTML, charts included, rendered by WeasyPrint, with its sign-offs appended."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string


class PdfUnavailable(Exception):
    """WeasyPrint cannot run here: the system lacks the Pango library it draws text with."""


def report_pdf(html: str, *, sha256: str, sign_offs: list[dict[str, Any]]) -> bytes:
    """The report's HTML, exactly as stored, followed by a page of the sign-offs bound to its sha256."""
    try:
        from weasyprint import HTML
    except OSError as exc:  # cffi raises OSError when libpango is missing
        raise PdfUnavailable(
            f"PDF export needs the Pango library (on Debian: apt-get install libpango-1.0-0 libpangoft2-1.0-0): {exc}"
        ) from None
    appendix = render_to_string("reports/sign_offs_appendix.html", {"sha256": sha256, "sign_offs": sign_offs})
    marker = html.rfind("</body>")
    document = html[:marker] + appendix + html[marker:] if marker >= 0 else html + appendix
    return HTML(string=document).write_pdf()
