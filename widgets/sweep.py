"""The sweep view: best-so-far against trials, parallel coordinates, parameter importances and slices (Optuna's
own plotly figures, in the house style), and a trials table (status, params, objective, run id).

Every figure is a function of the stored study and runs, so a live sweep, a finished one and one on another
machine look the same::

    from widgets.sweep import sweep_figures, sweep_table, sweep_view
    figs = sweep_figures(sweep_id)          # {"history", "parallel", "importance", "slice"}: plotly figures
    sweep_table(sweep_id)                   # a DataFrame, one row per trial
    sweep_view(sweep_id)                    # a Panel layout that refreshes while trials run (Stop included)
"""
from __future__ import annotations

from typing import Any

from workbench.core.sweep import study as studies

FIGURES = ("history", "parallel", "importance", "slice")
TITLES = {"history": "Best so far against trials", "parallel": "Parameters against the objective",
          "importance": "Parameter importances", "slice": "Objective against each parameter"}


def sweep_table(sweep_id: str, store: Any = None):
    """Trials as a DataFrame: trial, state, status, objective(s), params, run id, seconds, error."""
    return studies.trials(sweep_id, store)


def sweep_figures(sweep_id: str, store: Any = None) -> dict[str, Any]:
    """The sweep's figures (those its trials can draw yet: importances need two completed trials and a varied
    parameter); each titled, in the house style."""
    import optuna.visualization as vis

    from workbench.store import runs as runs_api

    from .style import house

    study, spec = studies.load(store or runs_api.store(), sweep_id)
    target = None if len(spec.objectives) == 1 else (lambda t: t.values[0])
    name = spec.objectives[0]
    makers = {"history": lambda: vis.plot_optimization_history(study, target=target, target_name=name),
              "parallel": lambda: vis.plot_parallel_coordinate(study, target=target, target_name=name),
              "importance": lambda: vis.plot_param_importances(study, target=target, target_name=name),
              "slice": lambda: vis.plot_slice(study, target=target, target_name=name)}
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    out = {}
    for key, make in makers.items():
        if not done or (key == "importance" and (len(done) < 2 or not _varied(done))):
            continue
        try:
            fig = make()
        except (ValueError, RuntimeError):  # too few trials for this figure yet
            continue
        fig.update_layout(title=f"{TITLES[key]} ({name}, sweep {sweep_id})")
        out[key] = house(fig)
    return out


def _varied(trials: list[Any]) -> bool:
    return any(len({repr(t.params.get(k)) for t in trials}) > 1 for k in trials[0].params)


def _live() -> bool:
    """A server session (the app) or a running event loop (a notebook kernel): periodic refreshes can run."""
    import asyncio

    import panel as pn

    if pn.state.curdoc is not None:
        return True
    try:
        return asyncio.get_running_loop().is_running()
    except RuntimeError:
        return False


def sweep_view(sweep_id: str, store: Any = None, refresh_ms: int = 2000) -> Any:
    """A Panel layout of the sweep (figures and trials table), refreshed every ``refresh_ms`` while trials run;
    Stop asks every running trial's run to stop (the sweep's driver then ends them ``stopped``)."""
    import panel as pn

    from workbench.store import runs as runs_api

    store = store or runs_api.store()
    panes = {k: pn.pane.Plotly(None, sizing_mode="stretch_width") for k in FIGURES}
    table = pn.widgets.Tabulator(sweep_table(sweep_id, store), disabled=True, sizing_mode="stretch_width",
                                 show_index=False)
    stop = pn.widgets.Button(label="Stop", color="danger", css_classes=["wb-sweep-stop"])

    def refresh() -> None:
        frame = sweep_table(sweep_id, store)
        table.value = frame
        for key, fig in sweep_figures(sweep_id, store).items():
            panes[key].object = fig
        if len(frame) and not (frame["state"] == "RUNNING").any() and callback is not None:
            callback.stop()

    def on_stop(_: Any) -> None:
        frame = sweep_table(sweep_id, store)
        for run_id in frame.loc[frame["status"] == "running", "run_id"].dropna():
            store.request_stop(run_id)

    stop.on_click(on_stop)
    callback = None
    refresh()
    callback = pn.state.add_periodic_callback(refresh, period=refresh_ms) if _live() else None
    return pn.Column(pn.pane.Markdown(f"### Sweep {sweep_id}"), stop, panes["history"], panes["parallel"],
                     pn.Row(panes["importance"], panes["slice"]), table, sizing_mode="stretch_width")
