"""Interactive dashboard over run and sweep folders (`streamlit run` on `APP_PATH`).

`discovery` finds completed runs and sweeps, `data` turns their tables into series,
`figures` draws them with matplotlib; only `app` imports streamlit.
"""

from __future__ import annotations

from pathlib import Path

APP_PATH = Path(__file__).with_name("app.py")

__all__ = ["APP_PATH"]
