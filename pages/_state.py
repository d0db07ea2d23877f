"""Session-state keys the pages share or keep between reruns, named once (widget keys stay beside their widgets)."""

from __future__ import annotations

ATLAS_URI = "atlas_uri"  # the sidebar picker's value: the atlas this session looks at
OBJECT_ID = "object_id"  # the galaxy opened last
TAG_UNDO = "tag_undo"  # this session's tag actions, newest last: (action, object_id, tag)
MAP_SPACE = "map_space"  # the space the map (and the rare page) shows
MAP_COLOUR = "map_colour"  # the map's colour column (`probe:<id>` for a probe's predictions)
MAP_ZOOM = "map_zoom"  # per map view: ((x0, x1), (y0, y1))
MAP_SELECTION = "map_selection"  # object ids selected by lasso/box
OPENED_NOTICE = "opened_notice"  # what a map click opened when it could not open exactly the dot under the cursor
RARE_FOCUS = "rare_focus"  # the object whose full tag bar the rare page shows
RARE_ACTION = "rare_action"  # a Rare card's button click (set by its gallery's callback, acted on before drawing)
NEIGHBOUR_ACTION = "neighbour_action"  # a Galaxy neighbour card's Open (set by its gallery's callback, acted on before drawing)
RERANKED = "reranked"  # per space: the ranking re-ranked from this session's tags
MORE_LIKE_THESE = "more_like_these_result"  # the last "more like these" result on the rare page (object_id, score)
FOLLOWED_JOB = "followed_job"  # the embedding job launched from the Jobs page
INGEST_JOB = "ingest_job"  # the ingest job launched from the Data page
PROBE_JOB = "probe_job"  # the probe job launched from the Probes page
PROBE_SHOWN = "probe_shown"  # the probe whose results the Probes page shows
PROBE_REFRESHED = "probe_refreshed"  # the finished probe job already followed by one full rerun
MAP_CARD_ACTION = "map_card_action"  # a Map gallery card's Open (selection, more like these), acted on before drawing
MAP_OPEN = "map_open"  # the object a map click asked to open (set by the chart's callback, acted on before drawing)
MAP_MORE_LIKE_THESE = "map_more_like_these_result"  # the map's last "more like these" result: space, seeds, ranked frame
MAP_HOVER = "map_hover"  # the map's hover component (its state holds the hovered object id)
MAP_HOVER_SHOWN = "map_hover_shown"  # the thumbnail payload sent to the hover component: id, PNG data URI, caption
