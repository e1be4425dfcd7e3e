"""The start every page shares: its header, the run picker in the sidebar, the stop when no run is chosen, the
run's folder and the "how to read this page" guide.

A page is `run, compare, folder = start(...)` followed by what only that page shows.

Example:
    >>> run, compare, folder = start("Probes", "Linear probes ...", "- **Label sources**: ...")  # doctest: +SKIP
    >>> frame = data.probe_frame(folder)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import streamlit as st

from app import data, state, ui

#: the guide's title on the pages that show results
READ_GUIDE = "How to read this page"


class RunPage(NamedTuple):
    """The run a page shows (unpacks as `run, compare, folder`).

    Args:
        run: the chosen run's name.
        compare: the run to compare with, or None.
        folder: the run's folder under the artifacts root.
    """

    run: str
    compare: str | None
    folder: Path


def frame(title: str, intro: str) -> tuple[str | None, str | None]:
    """The header and the sidebar's run picker; (run, compare run), either None when not chosen.

    Args:
        title: the page title.
        intro: one or two sentences under it: what the page shows and which command made it.
    """
    ui.header(title, intro)
    return state.sidebar()


def start(title: str, intro: str, guide: str, guide_title: str = READ_GUIDE) -> RunPage:
    """Header, sidebar, the no-run stop, and the guide (folded): the start of every page that shows one run.

    Stops the page (with a note on how to make a run) when no run is chosen.

    Args:
        title: the page title.
        intro: one or two sentences under it.
        guide: markdown of the folded guide (what each number means).
        guide_title: the guide's title ("How to read this page" unless the page is about doing, not reading).
    """
    run, compare = frame(title, intro)
    if run is None:
        ui.no_run()
        st.stop()
    folder = data.run_folder(run)
    with st.expander(guide_title, expanded=False):
        st.markdown(guide)
    return RunPage(run, compare, folder)


__all__ = ["READ_GUIDE", "RunPage", "frame", "start"]
