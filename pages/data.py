"""Data: the atlas's sources and ingest reports, uploads into an ingest job, exports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from backend import jobs
from backend.catalogue import sources
from backend.config import DATA_DIR
from backend.store import Atlas
from pages import _state
from pages._shared import get_atlas, light_objects, md_escape, surveys, table

MAX_UPLOAD_MB = 200  # matches server.maxUploadSize in .streamlit/config.toml

def main() -> None:
    """The page, top to bottom: sources and surveys, ingest reports, an upload, the catalogue export."""
    atlas = get_atlas()
    st.title("Data")
    catalogue = light_objects(atlas)
    st.subheader("Sources")
    sources_section(atlas, catalogue)
    st.subheader("Ingest reports")
    ingest_reports(atlas)
    st.subheader("Upload")
    upload_section(atlas)
    st.subheader("Export")
    export_section(catalogue)


def sources_section(atlas: Atlas, catalogue: pd.DataFrame) -> None:
    """Where the objects came from, and each survey's bands, pixel scale, image shape and spectral grid."""
    if catalogue.empty:
        st.info("No objects yet: upload a file below or run `python -m embeddings ingest SOURCE --atlas DIR`.")
    else:
        table(sources(catalogue))
    survey_meta = surveys(atlas)
    if survey_meta:
        table(pd.DataFrame(
            [
                {
                    "survey": name,
                    "bands": ",".join(meta.get("bands", [])),
                    "pixel scale (arcsec)": meta.get("pixel_scale"),
                    "image shape": "x".join(str(s) for s in meta.get("image_shape", [])),
                    "spectral pixels": len(meta.get("wavelength", []) or []),
                }
                for name, meta in survey_meta.items()
            ]
        ))


def ingest_reports(atlas: Atlas) -> None:
    """Every ingest's counts, and the five newest reports in full."""
    if not atlas.count("ingest_reports"):
        st.caption("No ingest report yet.")
        return
    reports = atlas.scan("ingest_reports").sort_values("created_at", ascending=False)
    reports["source"] = [Path(s).name for s in reports["source"]]  # file names only: no server paths in the browser
    reports["status"] = [json.loads(r or "{}").get("status", "done") for r in reports["report"]]
    table(reports[["created_at", "source", "kind", "status", "added", "skipped"]])
    for _, rep in reports.head(5).iterrows():
        with st.expander(md_escape(f"{rep['source']} — {rep['added']} added, {rep['skipped']} skipped")):
            st.json(json.loads(rep["report"] or "{}"))


def upload_section(atlas: Atlas) -> None:
    """A file checked on arrival; a valid one is stored under the atlas's uploads and ingested by a job."""
    st.caption(f"FITS cutouts or spectra, HDF5 (AstroCLIP / Multimodal Universe layouts) or a CSV catalogue, up to {MAX_UPLOAD_MB} MB.")
    upload = st.file_uploader(
        "File to ingest", type=["fits", "fit", "fts", "fz", "h5", "hdf5", "hdf", "csv", "parquet", "pq"], key="upload"
    )
    if upload is None:
        return
    from embeddings.ingest import validate_upload

    data = upload.getvalue()
    try:
        safe_name, kind = validate_upload(upload.name, data, MAX_UPLOAD_MB * 1024 * 1024)
    except ValueError as exc:
        st.error(md_escape(exc))
        return
    uploads = ((DATA_DIR / "uploads") if atlas.remote else Path(atlas.uri) / "uploads").resolve()
    if (uploads / safe_name).resolve().parent != uploads:
        st.error(f"{md_escape(upload.name)}: refusing a name that leaves the uploads folder.")
        return
    st.write(f"`{safe_name}` ({kind}, {len(data) / 1e6:.2f} MB) is valid.")
    if st.button("Ingest into this atlas", type="primary", key="ingest_go"):
        from embeddings.ingest.safety import store_upload

        target = store_upload(uploads, safe_name, data)  # never overwrites an earlier upload of the same name
        job_id = jobs.submit(atlas, "ingest", {"source": str(target)})
        st.session_state[_state.INGEST_JOB] = job_id
        st.success(f"Ingest job {job_id} started; follow it on the Jobs page.")


def export_section(catalogue: pd.DataFrame) -> None:
    """The catalogue as CSV (no pixels or spectra)."""
    if catalogue.empty:
        return
    st.download_button(  # the CSV is made when the button is clicked, not on every run of the page
        "Catalogue (CSV, no pixels or spectra)", lambda: catalogue.to_csv(index=False).encode(),
        file_name="arp_catalogue.csv", mime="text/csv", key="export_catalogue", on_click="ignore",
    )
    st.caption(md_escape(f"{len(catalogue):,} rows, columns: {', '.join(map(str, catalogue.columns))}"))


main()
