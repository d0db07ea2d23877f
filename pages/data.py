"""Data: the atlas's sources and ingest reports, uploads into an ingest job, exports."""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from backend import jobs
from backend.catalogue import sources
from backend.config import DATA_DIR
from pages import _state
from pages._shared import get_atlas, light_objects, md_escape

MAX_UPLOAD_MB = 200  # matches server.maxUploadSize in .streamlit/config.toml

atlas = get_atlas()
st.title("Data")

catalogue = light_objects(atlas)
st.subheader("Sources")
if catalogue.empty:
    st.info("No objects yet: upload a file below or run `python -m embeddings ingest SOURCE --atlas DIR`.")
else:
    st.dataframe(sources(catalogue), hide_index=True)
surveys = atlas.surveys()
if surveys:
    st.dataframe(
        [
            {
                "survey": name,
                "bands": ",".join(meta.get("bands", [])),
                "pixel scale (arcsec)": meta.get("pixel_scale"),
                "image shape": "x".join(str(s) for s in meta.get("image_shape", [])),
                "spectral pixels": len(meta.get("wavelength", []) or []),
            }
            for name, meta in surveys.items()
        ],
        hide_index=True,
    )

st.subheader("Ingest reports")
if atlas.count("ingest_reports"):
    reports = atlas.scan("ingest_reports").sort_values("created_at", ascending=False)
    reports["source"] = [Path(s).name for s in reports["source"]]  # file names only: no server paths in the browser
    reports["status"] = [json.loads(r or "{}").get("status", "done") for r in reports["report"]]
    st.dataframe(reports[["created_at", "source", "kind", "status", "added", "skipped"]], hide_index=True)
    for _, rep in reports.head(5).iterrows():
        with st.expander(md_escape(f"{rep['source']} — {rep['added']} added, {rep['skipped']} skipped")):
            st.json(json.loads(rep["report"] or "{}"))
else:
    st.caption("No ingest report yet.")

st.subheader("Upload")
st.caption(f"FITS cutouts or spectra, HDF5 (AstroCLIP / Multimodal Universe layouts) or a CSV catalogue, up to {MAX_UPLOAD_MB} MB.")
upload = st.file_uploader(
    "File to ingest", type=["fits", "fit", "fts", "fz", "h5", "hdf5", "hdf", "csv", "parquet", "pq"], key="upload"
)
if upload is not None:
    from embeddings.ingest import validate_upload

    data = upload.getvalue()
    try:
        safe_name, kind = validate_upload(upload.name, data, MAX_UPLOAD_MB * 1024 * 1024)
    except ValueError as exc:
        st.error(md_escape(exc))
    else:
        uploads = ((DATA_DIR / "uploads") if atlas.remote else Path(atlas.uri) / "uploads").resolve()
        target = (uploads / safe_name).resolve()
        if target.parent != uploads:
            st.error(f"{md_escape(upload.name)}: refusing a name that leaves the uploads folder.")
        else:
            st.write(f"`{safe_name}` ({kind}, {len(data) / 1e6:.2f} MB) is valid.")
            if st.button("Ingest into this atlas", type="primary", key="ingest_go"):
                from embeddings.ingest.safety import store_upload

                target = store_upload(uploads, safe_name, data)  # never overwrites an earlier upload of the same name
                job_id = jobs.submit(atlas, "ingest", {"source": str(target)})
                st.session_state[_state.INGEST_JOB] = job_id
                st.success(f"Ingest job {job_id} started; follow it on the Jobs page.")

st.subheader("Export")
if not catalogue.empty:
    st.download_button(
        "Catalogue (CSV, no pixels or spectra)", catalogue.to_csv(index=False).encode(), file_name="arp_catalogue.csv",
        mime="text/csv", key="export_catalogue",
    )
    st.caption(md_escape(f"{len(catalogue):,} rows, columns: {', '.join(map(str, catalogue.columns))}"))
