"""Self-contained HTML reports, domain-free: the engine's half of every report.

Two layers, split by who owns the knowledge:

* here, in the engine — a small page API (:func:`figure_html`, :func:`table_html`,
  :func:`html_section`, :func:`render_html`, :func:`write_html`, :func:`new_figure`; module
  :mod:`pe_tabular.report.page`) plus the two sections every PE run has,
  :func:`privacy_section` (the ledger) and :func:`evolution_section` (the per-iteration curves;
  module :mod:`pe_tabular.report.sections`). It knows nothing of tables, traces or images;
* in each wing — the domain's own sections built with that API: per-column distributions, Cramér's V
  and DCR for tables (:func:`pe_tabular.tables.report.write_report`, which also accepts other
  sections as ``extra_sections``), CDFs and port bars for traces (``simulators.network.report``),
  sample grids for digits (``renderers.digits.report``). Each wing calls :func:`write_html` itself.

Wings import this package, never each other's reports, so a new domain gets a report by adding its
sections, not by depending on the tables wing.
"""

from pe_tabular.report.page import (
    DPI,
    HOLDOUT_COLOR,
    REAL_COLOR,
    SYNTH_COLOR,
    FigureLike,
    Section,
    TableLike,
    figure_html,
    html_section,
    new_figure,
    render_html,
    table_html,
    write_html,
)
from pe_tabular.report.sections import MAX_RELEASES_SHOWN, evolution_section, privacy_section

__all__ = ["DPI", "HOLDOUT_COLOR", "MAX_RELEASES_SHOWN", "REAL_COLOR", "SYNTH_COLOR", "FigureLike", "Section",
           "TableLike", "evolution_section", "figure_html", "html_section", "new_figure", "privacy_section",
           "render_html", "table_html", "write_html"]
