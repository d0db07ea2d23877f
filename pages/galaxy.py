"""Galaxy: cutout, spectrum with lines, metadata, and neighbours in every direction. Deep link `?object=ID`.

Reads one object by id (and its neighbours' rows), never the whole catalogue, so opening a galaxy costs the same
at 10k and at 1M objects.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from backend import export, links, samp
from backend import neighbours as nb
from backend.object_reads import object_row, object_rows
from backend.spectrum_svg import Neighbour, neighbour_spectra_svg, spectrum_svg
from backend.store import Atlas, AtlasError
from pages import _state
from pages._cards import card_gallery, frame_cards
from pages._copy import copy_texts
from pages._export import export_panel
from pages._galaxy_figures import composite_png, neighbour_spectra, spectrum_figure
from pages._shared import (
    catalogue_columns,
    get_atlas,
    html_table,
    md_escape,
    redshift_range,
    surveys,
    tag_bar,
    wavelength,
)

FLUX_UNIT = "10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹"  # demo, SDSS and DESI spectra; a survey may name its own (`flux_unit`)
INTERACTIVE = "spectrum_interactive"  # the toggle's key: spectra drawn with Plotly (zoom, hover) instead of as SVG
DEFAULT_SMOOTH = 9  # spectrum smoothing window (pixels) until the user moves the slider


def main() -> None:
    """The page, top to bottom: the object, its position and links, cutout and spectrum, then its neighbours."""
    atlas = get_atlas()
    opened = st.session_state.pop(_state.NEIGHBOUR_ACTION, None)  # a neighbour's Open: this run draws that one
    if opened and opened["kind"] == "open":
        show(opened["id"])
    view = nb.open_view(atlas)  # one view of the atlas for the whole run: each table opened once, datasets warm
    row = current_row(atlas, view)
    object_id = str(row["object_id"])
    survey_meta = surveys(atlas).get(row.get("survey"), {})
    st.title(f"Galaxy {md_escape(object_id)}")
    if notice := st.session_state.pop(_state.OPENED_NOTICE, None):
        st.info(md_escape(notice), icon=":material/info:")
    tag_bar(atlas, object_id, key="galaxy")
    position_and_links(row.get("ra"), row.get("dec"), row.get("survey"))
    left, middle = st.columns([1, 2])
    with left:
        cutout_panel(atlas, row, survey_meta)
        point_aladin_button(row.get("ra"), row.get("dec"))
        metadata_table(atlas, row)
    with middle:
        spectrum_panel(atlas, row, survey_meta)
    st.divider()
    neighbours_section(atlas, row, view)


def current_row(atlas: Atlas, view: nb.View) -> pd.Series:
    """The object from `?object=ID` (or `?id=ID`), else the last one opened, else the first in the atlas (said when
    not found)."""
    wanted = st.query_params.get("object") or st.query_params.get("id") or st.session_state.get(_state.OBJECT_ID)
    row = object_row(view, str(wanted)) if wanted else None
    if row is None:
        first = atlas.objects(["object_id"], limit=1)["object_id"]
        if first.empty:
            st.info("This atlas has no objects yet: ingest data on the Data page.")
            st.stop()
        if wanted:
            st.warning(f"No object {md_escape(wanted)} in this atlas; showing the first one instead.")
        row = object_row(view, str(first.iloc[0]))
    assert row is not None  # the first object exists: it was just listed
    st.query_params.pop("id", None)
    st.query_params["object"] = st.session_state[_state.OBJECT_ID] = str(row["object_id"])
    return row


def show(oid: str) -> None:
    """Move this page to another object before it is drawn (one run, no page switch)."""
    st.session_state[_state.OBJECT_ID] = oid
    st.query_params["object"] = oid


def _fmt(key: str, value: object) -> str:
    """A metadata value for the table: RA/Dec to 1e-6 degree, other floats to 6 significant digits, empty if missing."""
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return ""
        return f"{value:.6f}" if key in ("ra", "dec") else f"{value:.6g}"
    return "" if value is None else str(value)


def position_and_links(ra: float | None, dec: float | None, survey: str | None) -> None:
    """Coordinates in degrees and sexagesimal (each with a copy button) and links to the archives at this position."""
    if not has_position(ra, dec):
        st.caption("No position for this object.")
        return
    copy_texts([links.degrees_text(ra, dec), links.sexagesimal_text(ra, dec)], key="coordinates",
               links=links.links_for(ra, dec, survey))


def has_position(ra: float | None, dec: float | None) -> bool:
    """Whether both coordinates are known and finite."""
    return ra is not None and dec is not None and bool(np.isfinite(ra) and np.isfinite(dec))


def point_aladin_button(ra: float | None, dec: float | None) -> None:
    """Send this position over SAMP (coord.pointAt.sky), saying so when no hub is running."""
    if not has_position(ra, dec):
        return
    if st.button("Point Aladin here", key="samp_point", icon=":material/my_location:",
                 help="Sends this position over SAMP (coord.pointAt.sky) to Aladin or TOPCAT."):
        try:
            samp.point_at(ra, dec)
            st.toast(md_escape(f"Sent {links.degrees_text(ra, dec)} to the SAMP hub."), icon=":material/send:")
        except AtlasError as exc:
            st.warning(md_escape(exc), icon=":material/portable_wifi_off:")


def object_fits(atlas: Atlas, oid: str, what: str) -> Callable[[], bytes]:
    """One object's cutout or spectrum as FITS bytes, made only when the download button is clicked."""
    make = export.cutout_fits if what == "cutout" else export.spectrum_fits
    return lambda: make(atlas, oid)


def cutout_panel(atlas: Atlas, row: pd.Series, survey_meta: dict) -> None:
    """The colour composite with its scale bar and pixel scale, and the cutout as FITS."""
    image, oid = row.get("image"), str(row["object_id"])
    if image is None or not len(image):
        st.caption("No cutout for this object.")
        return
    bands = tuple(survey_meta.get("bands", []))
    shape = tuple(int(s) for s in row["image_shape"])
    scale = survey_meta.get("pixel_scale")
    png = composite_png(np.asarray(image), shape, bands, scale)
    size = f", {shape[-1]}×{shape[-2]} px at {scale:g}\"/px ({shape[-1] * scale:.1f}\" across)" if scale else ""
    st.image(png, output_format="PNG")  # as it is: "auto" would re-encode it as JPEG
    st.caption(md_escape(f"{row.get('survey')} {''.join(bands)} composite{size}"))
    st.download_button("Cutout (FITS)", object_fits(atlas, oid, "cutout"), file_name=f"{oid}_cutout.fits",
                       mime="application/fits", key="cutout_fits", icon=":material/download:", on_click="ignore")


def metadata_table(atlas: Atlas, row: pd.Series) -> None:
    """The object's catalogue columns as a two-column name/value table of escaped HTML (data as data)."""
    names = [k for k in catalogue_columns(atlas) if k in row.index]
    html_table(pd.DataFrame({"column": names, "value": [_fmt(k, row[k]) for k in names]}), header=False,
               row_headers=True, cls="arp-meta")


def spectrum_panel(atlas: Atlas, row: pd.Series, survey_meta: dict) -> None:
    """The spectrum with smoothing, rest-frame toggle and lines, and the spectrum as FITS."""
    flux, ivar, oid = row.get("spectrum_flux"), row.get("spectrum_ivar"), str(row["object_id"])
    wave = wavelength(atlas, str(row["survey"])) if row.get("survey") else None
    if flux is None or not len(flux) or wave is None or len(wave) != len(flux):
        st.caption("No spectrum for this object.")
        return
    controls = st.columns([1.2, 1, 0.8, 1.3], vertical_alignment="center")
    # the slider in a popover, drawn only when opened: on the page it cost every new tab ~0.04 s
    smoothing = int(st.session_state.get("smooth", DEFAULT_SMOOTH))
    with controls[0].popover(f"Smoothing {smoothing} px", icon=":material/tune:", width="stretch", key="smoothing"):
        smooth = st.slider("Smoothing (pixels, inverse-variance weighted)", 1, 51, DEFAULT_SMOOTH, step=2, key="smooth")
    rest = controls[1].toggle("Rest frame", key="rest_frame", help="Divide wavelengths by 1 + z.")
    interactive = controls[2].toggle("Zoom", key=INTERACTIVE, help="Draw the spectra with Plotly: zoom and hover "
                                     "(its script takes a few seconds to load in a new tab).")
    z = float(row["redshift"]) if pd.notna(row.get("redshift")) else 0.0
    unit = survey_meta.get("flux_unit", FLUX_UNIT)
    if interactive:
        st.plotly_chart(spectrum_figure(np.asarray(flux), np.asarray(ivar), wave, z, smooth, rest, unit), key="spectrum")
    else:
        with st.container(key="spectrum_svg"):
            st.image(spectrum_svg(wave, np.asarray(flux), np.asarray(ivar), z, smooth, rest, unit), width="stretch")
    controls[3].download_button("Spectrum (FITS)", object_fits(atlas, oid, "spectrum"), file_name=f"{oid}_spectrum.fits",
                                mime="application/fits", key="spectrum_fits", icon=":material/download:", on_click="ignore")


def direction_choice(directions: list[nb.Direction]) -> nb.Direction:
    """The search direction picked by the user (labels made unique where two aligned groups share one)."""
    clashes = {label for label in (d.label for d in directions) if sum(e.label == label for e in directions) > 1}
    by_label = {
        f"{d.label} · {d.group or '+'.join(q.name for q in d.query)}" if d.label in clashes else d.label: d
        for d in directions
    }
    labels = list(by_label)
    picked = st.segmented_control(
        "Direction", labels, default=labels[0], key="direction", format_func=lambda label: label.replace("->", "→")
    )
    return by_label[picked if picked in by_label else labels[0]]


def neighbour_filters(atlas: Atlas) -> dict:
    """How many neighbours, the same-source radius, and the redshift / column filters, as `nb.neighbours` keywords."""
    controls = st.columns(4, vertical_alignment="bottom")
    k = controls[0].number_input("How many", 4, 48, 12, step=4, key="k")
    same_source = controls[1].number_input("Drop same source within (arcsec)", 0.0, 60.0, 1.0, key="same_source")
    z_lo, z_hi = redshift_range(atlas)
    # a popover draws its widgets only when opened (an expander's cost every new tab of this page ~0.05 s); its
    # label stays the same so that it stays open while the filters change, and the caption under it says which apply
    with controls[2].popover("Filters", icon=":material/filter_list:", width="stretch"):
        z_range = st.slider("Redshift range", z_lo, z_hi, (z_lo, z_hi), key="z_range")
        conditions = st.text_input(
            "Column conditions", key="conditions", placeholder="e.g. morphology = 'spiral' AND split = 'test'",
            help="A SQL predicate over the objects' columns, applied before the search.",
        )
    return {"k": int(k), "where": conditions or None, "exclude_same_source_arcsec": float(same_source) or None,
            "z_range": None if tuple(z_range) == (z_lo, z_hi) else tuple(z_range)}


def filter_text(filters: dict) -> str:
    """The filters that apply, as a clause for the neighbours caption ('' when none)."""
    parts = []
    if filters.get("z_range"):
        parts.append("redshift {:.3f}–{:.3f}".format(*filters["z_range"]))
    if filters.get("where"):
        parts.append(f"where {filters['where']}")
    return f" ({'; '.join(parts)})" if parts else ""


def neighbours_section(atlas: Atlas, row: pd.Series, view: nb.View) -> None:
    """Neighbours in the chosen direction: caption, spectra overlay (spectrum targets), thumbnail grid, export."""
    object_id = str(row["object_id"])
    st.subheader("Neighbours")
    directions = nb.directions(atlas, object_id, view=view)
    if not directions:
        st.info("No embedding space holds this object yet: run an embedding job (Jobs page).")
        return
    choice = direction_choice(directions)
    filters = neighbour_filters(atlas)
    try:
        found = nb.neighbours(atlas, object_id, space=list(choice.query), target_space=choice.target, view=view,
                              columns=(), **filters)  # the grid shows id, similarity and redshift only
    except AtlasError as exc:  # a bad filter or a missing vector is the user's to fix, not a traceback
        st.error(f"Neighbour search failed: {md_escape(exc)}")
        return
    st.caption(md_escape(f"{choice.label.replace('->', '→')}: query {choice.query_name} against {choice.target.name}, "
                         f"{len(found)} neighbours{filter_text(filters)}."
                         + (" Ranked by CSLS: cosine less the target's hubness, so that objects close to every query of "
                            "the other modality do not crowd the list." if "csls" in found.columns else "")))
    wave = wavelength(atlas, str(row["survey"])) if row.get("survey") else None
    if choice.target.modality == "spectrum" and wave is not None and len(found):
        rows = object_rows(view, found["object_id"].tolist(), ["spectrum_flux", "spectrum_ivar", "redshift"])
        flux, ivar = row.get("spectrum_flux"), row.get("spectrum_ivar")
        flux, ivar = (None, None) if flux is None or ivar is None else (np.asarray(flux), np.asarray(ivar))
        if st.session_state.get(INTERACTIVE):
            st.plotly_chart(neighbour_spectra(rows, flux, ivar, wave, object_id), key="neighbour_spectra")
        else:
            drawn = [Neighbour(str(r["object_id"]), float(r["redshift"]) if pd.notna(r["redshift"]) else None,
                               np.asarray(r["spectrum_flux"]), np.asarray(r["spectrum_ivar"]))
                     for _, r in rows.iterrows() if r["spectrum_flux"] is not None and len(r["spectrum_flux"])]
            with st.container(key="neighbour_spectra_svg"):
                st.image(neighbour_spectra_svg(wave, None if flux is None else (flux, ivar), drawn, object_id),
                         width="stretch")
    if found.empty:
        st.info("No neighbour matches these filters: widen the redshift range or loosen the column conditions.")
    else:  # one component for the grid: 12 cards as Streamlit elements cost a click ~0.1 s of browser rendering
        card_gallery(frame_cards(found, neighbour_label), key="neighbour_cards", action_key=_state.NEIGHBOUR_ACTION,
                     votes=False)
        keep = [c for c in ("object_id", "similarity", "distance") if c in found.columns]
        with st.popover("Take these neighbours away", icon=":material/download:"):  # drawn when opened
            export_panel(atlas, found[keep], name=f"neighbours of {object_id}", key="neighbours_export")


def neighbour_label(n: pd.Series) -> str:
    """Id, similarity and redshift of one neighbour."""
    z_text = f"z={n['redshift']:.3f}" if pd.notna(n.get("redshift")) else ""
    return f"{n['object_id']} · sim {n['similarity']:.3f} {z_text}"


main()
