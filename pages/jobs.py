"""Jobs: launch an embedding job on this machine, follow its progress and log, cancel; job history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backend import jobs
from backend.store import Atlas, AtlasError
from pages import _state
from pages._shared import get_atlas, md_escape


def main() -> None:
    """The page, top to bottom: the launch form, then running jobs and the history (refreshing by themselves)."""
    atlas = get_atlas()
    st.title("Jobs")
    st.subheader("Embed the atlas with an encoder")
    embed_form(atlas)
    live_jobs(atlas)


@st.cache_resource(show_spinner=False)
def encoder_specs() -> dict[str, str]:
    """Registered encoders by name -> modality (without importing torch: the job imports the encoder)."""
    from embeddings.encoders.registry import encoder_modalities

    return encoder_modalities()


def embed_form(atlas: Atlas) -> None:
    """Modality, encoder, device, batch, limit and engine; submitting starts an embedding job."""
    specs = encoder_specs()
    top = st.columns(2)
    modality = top[0].selectbox("Modality", ["image", "spectrum"], key="embed_modality")
    names = [name for name, m in specs.items() if m == modality]
    with st.form("embed_form"):
        cols = st.columns(4)
        encoder = cols[0].selectbox("Encoder", names, key="embed_encoder",
                                    help="Pretrained families load from the hub or a local file; the builtin pair works offline.")
        device = cols[1].selectbox("Device", ["auto", "cpu", "cuda"], key="embed_device")
        batch_size = cols[2].number_input("Batch size", 1, 4096, 64, key="embed_batch")
        limit = cols[3].number_input("Limit (0 = all)", 0, 10_000_000, 0, key="embed_limit")
        engine_cols = st.columns([1, 3])
        engine = engine_cols[0].selectbox("Engine", ["local", "ray"], key="embed_engine",
                                          help="local: this process; ray: Ray Data on a local Ray instance or a cluster.")
        ray_address = engine_cols[1].text_input("Ray address (empty: a local Ray instance)", key="embed_ray_address")
        if st.form_submit_button("Launch embedding job", type="primary", disabled=not names):
            params = {"encoder": encoder, "modality": modality, "device": device, "batch_size": int(batch_size)}
            if limit:
                params["limit"] = int(limit)
            if engine == "ray":
                params.update(engine="ray", **({"ray_address": ray_address.strip()} if ray_address.strip() else {}))
            job_id = jobs.submit(atlas, "embed", params)
            job = jobs.get_job(atlas, job_id)
            if job["status"] == jobs.JobStatus.FAILED:  # refused at once (e.g. missing weights): say why here
                st.error(f"Job {job_id} not started:")
                st.code(job.get("message") or "", language="text", wrap_lines=True)
            else:
                st.session_state[_state.FOLLOWED_JOB] = job_id
                st.success(f"Started job {job_id}.")


@st.fragment(run_every=2.0)
def live_jobs(atlas: Atlas) -> None:
    """Running jobs with progress, log tail and a cancel button, then the history; refreshes by itself."""
    frame = jobs.list_jobs(atlas)
    active = frame[frame["status"].isin(jobs.ACTIVE)] if len(frame) else frame
    st.subheader("Running")
    if active.empty:
        st.caption("No job running.")
    for _, job in active.iterrows():
        running_job(atlas, job["job_id"])
    followed_job(atlas, set(active.get("job_id", [])))
    st.subheader("History")
    job_history(frame)


def running_job(atlas: Atlas, job_id: str) -> None:
    """One running job: status, progress bar, Cancel, and its log tail."""
    try:
        job = pd.Series(jobs.get_job(atlas, job_id))  # notices a dead process
    except AtlasError:
        return
    st.markdown(f"**{job['kind']}** `{job['job_id']}` — {job['status']}")
    st.progress(float(job["progress"] or 0.0), text=md_escape(job.get("message") or ""))
    if st.button("Cancel", key=f"cancel_{job['job_id']}"):
        jobs.cancel(atlas, job["job_id"])
        st.toast(f"Cancelling {job['job_id']}")
    tail = jobs.log_tail(job.get("log_path"))
    if tail:
        st.code(tail, language="text")


def followed_job(atlas: Atlas, running: set[str]) -> None:
    """How the job launched from this page ended, once it no longer runs."""
    followed = st.session_state.get(_state.FOLLOWED_JOB)
    if followed and followed not in running:
        try:
            done = jobs.get_job(atlas, followed)
            st.info(f"Job {followed}: {done['status']} — {md_escape(done.get('message') or '')}")
        except AtlasError:
            pass


def job_history(frame: pd.DataFrame) -> None:
    """Every job of the atlas, and the log of the one picked."""
    if not len(frame):
        st.caption("No jobs yet.")
        return
    st.dataframe(frame[["job_id", "kind", "status", "progress", "message", "created_at", "updated_at"]],
                 hide_index=True, column_config={"progress": st.column_config.ProgressColumn("progress")})
    chosen = st.selectbox("Show the log of", frame["job_id"].tolist(), index=None, key="log_job")
    if chosen:
        path = frame.loc[frame["job_id"] == chosen, "log_path"].iloc[0]
        st.code(jobs.log_tail(path, 200) or "(empty log)", language="text")


main()
