"""Rare: clusters ranked by rarity, the anomaly ranking (re-ranked by your tags), more like these, tagging and export."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from backend import active, anomaly, rare, selection, similar, tags
from backend.discovery import discover
from backend.features import PARAMETER_LABELS, PARAMETER_SETS, REDSHIFT_WINDOW, scored_relative_to_redshift
from backend.store import Atlas, AtlasError
from backend.svg_plot import WIDTH, line_svg
from pages import _state
from pages._cards import card_gallery, frame_cards
from pages._export import export_panel
from pages._shared import (
    TAG_BUTTONS,
    get_atlas,
    html_table,
    md_escape,
    open_galaxy,
    spaces_or_stop,
    table,
    tag_bar,
    undo_button,
)

COMBINED = "all feature sets (combined)"
LEGEND = (":material/thumb_up: interesting · :material/thumb_down: boring (click a vote again to take it back) · "
          ":material/sell: tag it with the full tag bar · Open: its Galaxy page")  # one legend, no tooltip per button


def main() -> None:
    """The page, top to bottom: the space, the focused object's tag bar, then four tabs."""
    atlas = get_atlas()
    card_action(atlas)
    st.title("Rare objects")
    spaces = spaces_or_stop(atlas)
    parameter_sets = {PARAMETER_LABELS[name]: name for name in anomaly.ranked_parameter_sets(atlas)}
    choice = space_picker([*spaces, *parameter_sets])
    space = None if choice == COMBINED else parameter_sets.get(choice, choice)
    focus_tag_bar(atlas)
    st.caption(LEGEND)
    votes = current_votes(atlas)
    # on_change="rerun" makes the tabs stateful, so a vote's rerun keeps the user on the tab they were on; only the
    # open tab is drawn (`.open`), not four galleries of thumbnails and vote buttons on every run
    clusters_tab, anomalies_tab, similar_tab, tagged_tab = st.tabs(
        ["Rare clusters", "Anomalies", "More like these", "Tagged"], key="rare_tab", on_change="rerun")
    if clusters_tab.open:
        with clusters_tab:
            clusters_section(atlas, space or rare.COMBINED, votes)
    if anomalies_tab.open:
        with anomalies_tab:
            anomalies_section(atlas, space, choice, votes)
    if similar_tab.open:
        with similar_tab:
            similar_section(atlas, space, choice, votes)
    if tagged_tab.open:
        with tagged_tab:
            tagged_section(atlas)


def space_picker(spaces: list[str]) -> str:
    """The space whose rarities are shown (the map's space by default), or the combined ranking."""
    choices = [COMBINED, *spaces]
    shown = st.session_state.get(_state.MAP_SPACE)
    return st.selectbox("Space", choices, index=choices.index(shown) if shown in choices else 0, key="rare_space",
                        help="The combined ranking scores each object by its distance to its 50 nearest others in "
                             "all unimodal spaces and the morphology parameters together. The morphology parameters "
                             "and spectral indices (catalogue columns morph_* and line_*) also rank on their own.")


def card_action(atlas: Atlas) -> None:
    """What a card's button asked, before anything is drawn: a vote, the full tag bar for it, or its Galaxy page."""
    action = st.session_state.pop(_state.RARE_ACTION, None)
    if not action:
        return
    oid = action["id"]
    if action["kind"] == "open":
        open_galaxy(oid)
    elif action["kind"] == "tag":
        st.session_state[_state.RARE_FOCUS] = oid
    else:
        vote(atlas, oid, "interesting" if action["kind"] == "up" else "boring", current_votes(atlas).get(oid))


def focus_tag_bar(atlas: Atlas) -> None:
    """The full tag bar of the object whose tag button was clicked last."""
    focus = st.session_state.get(_state.RARE_FOCUS)
    if focus:
        st.markdown(f"Tagging **{md_escape(focus)}**")
        tag_bar(atlas, focus, key="rare")


def clusters_section(atlas: Atlas, cluster_space: str, votes: dict[str, str]) -> None:
    """The rarest HDBSCAN clusters with exemplars, exporting one cluster's members, and (re)clustering."""
    combined = cluster_space == rare.COMBINED
    from_discovery = combined or cluster_space in PARAMETER_SETS  # clustered when the combined ranking is computed
    ranked = rare.clusters(atlas, cluster_space)
    if ranked.empty:
        st.info("No clusters for this space yet.")
    else:
        where = "all feature sets together" if combined else PARAMETER_LABELS.get(cluster_space, "the space")
        st.caption(f"HDBSCAN clusters of the {rare.TOP_ANOMALIES} most anomalous objects of {where} (laid out by "
                   "UMAP), most anomalous first (the mean anomaly percentile of the members); six exemplars each.")
        shown = st.slider("Clusters to show", 1, max(2, min(20, len(ranked))), min(5, len(ranked)), key="n_clusters")
        top = ranked.head(shown)
        every = pd.DataFrame({"object_id": list(dict.fromkeys(o for ex in top["exemplars"] for o in ex))})
        thumbs = with_thumbnails(atlas, every).set_index("object_id")  # one read for every cluster shown
        signatures = rare.parameter_signatures(atlas, cluster_space, [int(c) for c in top["cluster"]]) \
            if cluster_space in PARAMETER_SETS else {}
        for _, cl in top.iterrows():
            stands_out = " · ".join(f"{column} {inside:.3g} (atlas {typical:.3g})"
                                    for column, inside, typical in signatures.get(int(cl["cluster"]), []))
            st.markdown(f"**#{cl['rank']} · cluster {cl['cluster']}** — {cl['size']} objects, rarity {cl['rarity']:.2f}"
                        + (f" · median {md_escape(stands_out)}" if stands_out else ""))
            exemplars = [o for o in cl["exemplars"] if o in thumbs.index]
            gallery(thumbs.loc[exemplars].reset_index(), votes, key=f"cl{cl['cluster']}")
        take_away = st.popover("Take a cluster away", icon=":material/download:", key="cluster_export_open",
                               on_change="rerun")  # its members are read only while it is open
        with take_away:
            if take_away.open:
                rank_of = dict(zip(ranked["cluster"], ranked["rank"], strict=True))
                pick = st.selectbox("Export the members of cluster", list(rank_of), key="export_cluster",
                                    format_func=lambda c: f"#{int(rank_of[c])} · cluster {c}")
                export_panel(atlas, selection.by_cluster(atlas, cluster_space, int(pick)),
                             name=f"cluster {pick} of {cluster_space}", key="cluster_export")
    if st.button("Find rare clusters" if ranked.empty else "Recompute clusters", key="recluster"):
        with st.spinner("Clustering the anomalous tail with HDBSCAN…"):
            if from_discovery:
                discover(atlas, say=lambda _: None)
            else:
                rare.find_clusters(atlas, cluster_space)
        st.rerun()


def anomalies_section(atlas: Atlas, space: str | None, choice: str, votes: dict[str, str]) -> None:
    """The found-vs-inspected curve, re-ranking from tags, and the top anomalies with votes and export."""
    n_top = st.slider("How many", 6, 96, 24, step=6, key="n_anomalies")
    learner_space = None if space in PARAMETER_SETS else space  # a parameter set re-ranks with all feature sets
    reranked = st.session_state.setdefault(_state.RERANKED, {})
    found_curve(atlas)
    cols = st.columns(3)
    if cols[0].button("Re-rank from my tags", key="rerank", help="interesting / boring votes and free tags steer the list"):
        try:
            with st.spinner("Re-ranking…"):
                reranked[space] = active.rerank(atlas, learner_space)
        except AtlasError as exc:
            st.info(str(exc))
    if space in reranked and cols[1].button("Back to unsupervised ranking", key="unrank"):
        reranked.pop(space)
    undo_button(atlas, key="anom_undo", container=cols[2])  # the tag bar above has its own (rare_undo)
    try:
        if space in reranked:
            st.caption(f"Re-ranked by your tags; objects you have not labelled yet come first: of every {active.ROUND}, "
                       f"{active.ROUND - active.EXPLORE} are like your finds, {active.EXPLORE} "
                       f"{'is an odd object' if active.EXPLORE == 1 else 'are odd objects'} unlike anything labelled "
                       "yet (exploration).")
            top, score_col = with_thumbnails(atlas, active.next_to_review(reranked[space], n_top)), "score"
        else:
            st.caption(f"kNN distance (pyod, {anomaly.JOINT_NEIGHBOURS} neighbours) in all feature sets together: the "
                       "unimodal spaces and the morphology parameters side by side." if space is None else
                       f"The highest of the ECOD, isolation forest and kNN distance percentiles (pyod) on the "
                       f"{PARAMETER_LABELS[space]}, each robustly standardised." if space in PARAMETER_SETS else
                       "Blend of ECOD, isolation forest and kNN distance (pyod, rank-averaged)"
                       + (f", each spectrum against the {REDSHIFT_WINDOW} objects nearest in redshift: odd for its "
                          "redshift." if scored_relative_to_redshift(atlas, space) else "."))
            top, score_col = anomaly.top_anomalies(atlas, space, n=n_top), "anomaly"
    except AtlasError as exc:
        st.info(str(exc))
        compute_anomalies_button(atlas, space)
        return
    gallery(top, votes, key="anom", score=score_col)
    st.caption("Take this list away:")
    export_panel(atlas, top[["object_id", score_col]], name=f"top {len(top)} anomalies of {choice}", key="anom_export")


def found_curve(atlas: Atlas) -> None:
    """How many interesting objects the labels found against how many were inspected."""
    curve = active.found_curve(atlas)
    if len(curve):
        found = int(curve["found"].iloc[-1])
        st.caption(f"Interesting found vs inspected: {found} of {len(curve)} labelled objects "
                   "(tags from every page count; :material/thumb_down: / not-interesting is a miss).")
        with st.container(key="found_curve"):  # an SVG image: st.line_chart's Vega-Lite costs a new tab ~1.6 s
            st.image(line_svg(curve["inspected"].to_numpy(), curve["found"].to_numpy(),
                              title=f"Interesting found: {found} of {len(curve)} inspected",
                              xlabel="inspected (labelled objects)", ylabel="found", height=200, integer=True),
                     width=WIDTH)


def compute_anomalies_button(atlas: Atlas, space: str | None) -> None:
    """Score every object when no anomaly scores exist yet (all feature sets for the combined ranking)."""
    if st.button("Compute anomaly scores", key="compute_anomalies"):
        with st.spinner("Scoring every object (ECOD, isolation forest, kNN distance)…"):
            if space is None or space in PARAMETER_SETS:
                discover(atlas, say=lambda _: None)
            else:
                anomaly.compute_anomalies(atlas, space)
        st.rerun()


def similar_section(atlas: Atlas, space: str | None, choice: str, votes: dict[str, str]) -> None:
    """'More like these': a positive-unlabelled ranking of the atlas from a Map selection or a tag."""
    counts = tags.tag_counts(atlas)
    sources = ["Map selection", *[t for t in counts.index if t != tags.NOT_INTERESTING]]
    source = st.selectbox("Start from", sources, key="mlt_source", help="3 or more objects: a Map selection or a tag")
    seeds = list(st.session_state.get(_state.MAP_SELECTION, [])) if source == "Map selection" else tags.tagged_ids(atlas, source)
    on = COMBINED if space in PARAMETER_SETS else choice
    st.caption(f"{len(seeds)} objects; a positive-unlabelled model on {on} ranks the whole atlas.")
    if st.button("More like these", key="more_like_these", disabled=len(seeds) < similar.MIN_POSITIVES):
        try:
            with st.spinner("Ranking the atlas…"):
                st.session_state[_state.MORE_LIKE_THESE] = similar.more_like_these(
                    atlas, seeds, None if space in PARAMETER_SETS else space, n=24)
        except AtlasError as exc:
            st.info(str(exc))
    if st.session_state.get(_state.MORE_LIKE_THESE) is not None:
        gallery(with_thumbnails(atlas, st.session_state[_state.MORE_LIKE_THESE]), votes, key="mlt", score="score")


def tagged_section(atlas: Atlas) -> None:
    """Tag counts, the tagged objects, and their export as CSV, FITS or VOTable."""
    counts = tags.tag_counts(atlas)
    if counts.empty:
        st.caption("Nothing tagged yet.")
        return
    html_table(counts.rename("objects").rename_axis("tag").reset_index(), cls="arp-narrow")
    which = st.selectbox("Tag", ["(all)", *counts.index], key="export_tag")
    tag = None if which == "(all)" else which
    tagged = tags.tagged_objects(atlas, tag)
    table(tagged)  # HTML up to 100 rows: the data grid costs the tab ~0.5 s of browser rendering on the 2-core box
    fmt = st.radio("Format", ["csv", "fits", "votable"], horizontal=True, key="export_fmt")
    suffix = {"csv": ".csv", "fits": ".fits", "votable": ".vot"}[fmt]
    st.download_button(f"Export {len(tagged)} rows ({fmt})", partial(tagged_file, atlas, tag, suffix),
                       file_name=f"arp_tagged{suffix}", key="export_tagged", on_click="ignore")


def tagged_file(atlas: Atlas, tag: str | None, suffix: str) -> bytes:
    """The tagged objects as a CSV, FITS or VOTable file's bytes (made when the download is clicked)."""
    with tempfile.TemporaryDirectory() as tmp:
        return tags.export_tagged(atlas, Path(tmp) / f"arp_tagged{suffix}", tag).read_bytes()


def gallery(frame: pd.DataFrame, votes: dict[str, str], *, key: str, score: str | None = None) -> None:
    """Cards of thumbnails, 6 a row, with quick 'interesting' / 'boring' votes, a focus button (full tag bar) and Open:
    one component a gallery (a card's buttons as Streamlit elements cost a new tab ~20 ms each)."""
    if frame.empty:
        return
    shown = {tags.INTERESTING: "up", tags.NOT_INTERESTING: "down"}
    cards = frame_cards(frame, lambda row: str(row["object_id"]) if score is None else f"{row['object_id']} · {row[score]:.3f}",
                        vote=lambda oid: shown.get(votes.get(oid, "")))
    card_gallery(cards, key=f"cards_{key}", action_key=_state.RARE_ACTION)


def current_votes(atlas: Atlas) -> dict[str, str]:
    """This atlas's interesting / not-interesting vote on each voted object (the latest wins)."""
    cur = tags.current_tags(atlas)
    cur = cur[cur["tag"].isin([tags.INTERESTING, tags.NOT_INTERESTING])]
    return dict(zip(cur["object_id"], cur["tag"], strict=True))


def vote(atlas: Atlas, oid: str, button: str, mine: str | None) -> None:
    """A quick vote (undoable): the same vote again takes it back; the other vote replaces it."""
    tag = TAG_BUTTONS[button]
    undo = st.session_state.setdefault(_state.TAG_UNDO, [])
    if mine == tag:
        tags.remove_tag(atlas, oid, tag)
        undo.append(("remove", oid, tag))
        st.toast(md_escape(f"{oid}: vote taken back"))
        return
    if mine is not None:
        tags.remove_tag(atlas, oid, mine)
    tags.add_tag(atlas, oid, tag)
    undo.append(("add", oid, tag))
    st.toast(md_escape(f"{oid}: {button}"))


def with_thumbnails(atlas: Atlas, frame: pd.DataFrame) -> pd.DataFrame:
    """Join thumbnails and redshifts onto a frame of object ids."""
    meta = atlas.get_objects(frame["object_id"].tolist(), ["thumbnail", "redshift"])
    return frame.drop(columns=[c for c in ("thumbnail", "redshift") if c in frame.columns]).merge(meta, on="object_id")


main()
