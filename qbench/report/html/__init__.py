"""Static HTML leaderboards: a browsable page per published version and an index of them all.

``qbench leaderboard SUITE --html`` and ``qbench publish`` write them. The chart is a small SVG
drawer in ``app.js`` rather than a vendored library: a scatter with a log axis, a step line and
a tooltip is ~150 lines, ships no third-party license, and keeps each page one small file.
"""
from qbench.report.html.data import page_data
from qbench.report.html.page import (
    publish_pages,
    render_index,
    render_page,
    write_index,
    write_pages,
    write_version_page,
)

__all__ = ["page_data", "publish_pages", "render_index", "render_page", "write_index", "write_pages",
           "write_version_page"]
