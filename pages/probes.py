"""Probes: train a probe on frozen vectors as a background job, watch it, inspect its metrics and plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from backend import jobs, probes
from backend.store import Atlas, AtlasError
from pages import _state
from pages._shared import get_atlas, md_escape, spaces_or_stop

PROBE_PICK = "probe_pick"  # the Results selectbox
PICK_SYNCED = "probe_pick_synced"  # the finished probe already put into the selectbox

def main() -> None:
    """The page, top to bottom: the training form, the running job, then one saved probe's results."""
    atlas = get_atlas()
    st.title("Probes")
    spaces = spaces_or_stop(atlas)
    training_form(atlas, spaces)
    probe_progress(atlas)
    saved = probes.list_probes(atlas)
    if saved.empty:
        st.caption("No probe trained yet.")
        return
    st.subheader("Results")
    probe_id = probe_picker(saved["probe_id"].tolist())
    info = saved.set_index("probe_id").loc[probe_id]
    metric_tiles(info)
    if info["task"] == "regression":
        predicted_vs_true(atlas, probe_id, info["target"])
    else:
        confusion_matrix(info["metrics"])
    if st.button("Colour the map by this probe", key="colour_map"):
        st.session_state[_state.MAP_COLOUR] = f"probe:{probe_id}"
        st.session_state[_state.MAP_SPACE] = info["space"]
        st.switch_page("pages/map.py")


def training_form(atlas: Atlas, spaces: list[str]) -> None:
    """Space, target column and method; submitting starts a probe job."""
    targets = list(dict.fromkeys(["redshift", *[c for c in atlas.label_columns() if c not in ("object_id",)]]))
    with st.form("probe_form"):
        cols = st.columns(3)
        space = cols[0].selectbox("Space", spaces, key="probe_space")
        target = cols[1].selectbox("Target column", targets, key="probe_target")
        method = cols[2].selectbox("Method", probes.METHODS, key="probe_method",
                                   format_func={"knn": "kNN (k=64, zero-shot)", "linear": "linear", "mlp": "small MLP"}.get)
        if st.form_submit_button("Train probe", type="primary"):
            st.session_state[_state.PROBE_JOB] = jobs.submit(atlas, "probe", {"space": space, "target": target, "method": method})


@st.fragment(run_every=1.5)
def probe_progress(atlas: Atlas) -> None:
    """Live status of the probe job launched from this page."""
    job_id = st.session_state.get(_state.PROBE_JOB)
    if not job_id:
        return
    try:
        job = jobs.get_job(atlas, job_id)
    except AtlasError:
        return
    st.markdown(f"Probe job `{job_id}`: **{job['status']}**")
    st.progress(float(job["progress"] or 0.0), text=md_escape(job.get("message") or ""))
    if job["status"] == jobs.JobStatus.DONE and job.get("result"):
        st.session_state[_state.PROBE_SHOWN] = job["result"]["probe_id"]
        if st.session_state.get(_state.PROBE_REFRESHED) != job_id:  # one full rerun so the results below show it
            st.session_state[_state.PROBE_REFRESHED] = job_id
            st.rerun()
    elif job["status"] == jobs.JobStatus.FAILED:
        st.error(job.get("message") or "failed")


def probe_picker(ids: list[str]) -> str:
    """The saved probe to show (a probe that just finished is picked once, then the user's pick stands)."""
    shown = st.session_state.get(_state.PROBE_SHOWN)
    if shown in ids and st.session_state.get(PICK_SYNCED) != shown:
        st.session_state[PROBE_PICK] = shown
        st.session_state[PICK_SYNCED] = shown
    if st.session_state.get(PROBE_PICK) not in ids:
        st.session_state[PROBE_PICK] = ids[0]
    return st.selectbox("Probe", ids, key=PROBE_PICK)


def metric_tiles(info: pd.Series) -> None:
    """What the probe is, its train/test sizes, and one tile per held-out metric."""
    metrics = info["metrics"]
    st.caption(md_escape(f"{info['method']} probe of {info['target']} on {info['space']} ({info['task']}), "
                         f"{metrics.get('n_train', '?')} train / {metrics.get('n_test', '?')} held-out objects."))
    scalars = {k: v for k, v in metrics.items() if isinstance(v, float)}
    for col, (name, value) in zip(st.columns(max(1, len(scalars))), scalars.items(), strict=False):
        col.metric(name, f"{value:.3f}")


def predicted_vs_true(atlas: Atlas, probe_id: str, target: str) -> None:
    """Held-out predictions against the truth, outliers marked (redshift: |dz|/(1+z) rule; else 3 NMAD)."""
    pred = probes.predictions(atlas, probe_id)
    test = pred[pred["split"] == "test"]
    truth, guess = test["truth"].to_numpy(float), test["prediction"].to_numpy(float)
    if target == "redshift":
        outlier = np.abs(guess - truth) / (1 + truth) > probes.REDSHIFT_OUTLIER_DZ
        rule = f"|Δz|/(1+z) > {probes.REDSHIFT_OUTLIER_DZ}"
    else:
        resid = guess - truth
        outlier = np.abs(resid - np.median(resid)) > 3 * 1.4826 * np.median(np.abs(resid - np.median(resid)))
        rule = "residual beyond 3 NMAD"
    fig = go.Figure()
    fig.add_trace(go.Scattergl(x=truth[~outlier], y=guess[~outlier], mode="markers", marker={"size": 4}, name="held-out",
                               customdata=test["object_id"][~outlier], hovertemplate="%{customdata}<extra></extra>"))
    fig.add_trace(go.Scattergl(x=truth[outlier], y=guess[outlier], mode="markers", marker={"size": 6, "color": "#ff6b6b"},
                               name=f"outliers ({rule}): {int(outlier.sum())}", customdata=test["object_id"][outlier],
                               hovertemplate="%{customdata}<extra></extra>"))
    lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "grey"}, name="1:1"))
    fig.update_layout(title="Predicted vs true (held-out)", xaxis_title=f"true {target}",
                      yaxis_title=f"predicted {target}", height=450)
    st.plotly_chart(fig, key="pred_vs_true")


def confusion_matrix(metrics: dict) -> None:
    """The held-out confusion matrix of a classification probe."""
    labels, confusion = metrics.get("labels", []), np.asarray(metrics.get("confusion", []))
    if confusion.size:
        fig = go.Figure(go.Heatmap(z=confusion, x=labels, y=labels, colorscale="Blues", text=confusion,
                                   texttemplate="%{text}"))
        fig.update_layout(title="Confusion matrix (held-out)", xaxis_title="predicted", yaxis_title="true", height=450,
                          yaxis={"autorange": "reversed"})
        st.plotly_chart(fig, key="confusion")


main()
