// A gallery of object cards drawn in the page itself (Rare's clusters, anomalies and "more like these"; the Galaxy
// page's neighbours; the Map's selection and "more like these"):
// in place of ~7 Streamlit elements a card (an image, a caption, four buttons in nested columns), which cost a new tab
// ~20 ms of browser rendering a card on the 2-core box. Nothing is fetched: thumbnails come as data URIs, the icons are
// inline SVG. Data is set as text or attributes, never as HTML.
// `data`: {cards: [{id, caption, src (data:image/png;base64,... or ""), vote: "up" | "down" | null}], columns,
//          votes (false: Open alone, as the Galaxy page's neighbours)}.
// Sends one trigger, `action`: {kind: "up" | "down" | "tag" | "open", id}.
const SVG_OPEN = '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false" fill="none" ' +
  'stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">';
// a hand with its cuff, thumb raised; thumb down is the same hand flipped upside down
const HAND = '<path d="M3 10.5h4V21H3z"/><path d="M7 10.5 10.6 3.2c1.5 0 2.6 1.3 2.2 2.9l-.7 3h6.2c1.3 0 2.3 1.2 ' +
  '2 2.5l-1.7 7.5c-.2 1.1-1.2 1.9-2.3 1.9H7"/>';
const ICONS = {
  up: `${SVG_OPEN}${HAND}</svg>`,
  down: `${SVG_OPEN}<g transform="matrix(1 0 0 -1 0 24)">${HAND}</g></svg>`,
  // a luggage tag: a square with one corner cut into a point, and its eyelet
  tag: `${SVG_OPEN}<path d="M3 4.2v7.3l9.6 9.6 8.5-8.5L11.5 3H4.2C3.5 3 3 3.5 3 4.2z"/><circle cx="7.6" cy="7.6" r="1.5"/></svg>`,
};
const BUTTONS = [
  ["up", "Interesting", "interesting (click again to take the vote back)"],
  ["down", "Boring", "boring (click again to take the vote back)"],
  ["tag", "Tag", "tag it with the full tag bar"],
];

function button(kind, label, title, id) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `arp-card-button arp-card-${kind}`;
  b.dataset.kind = kind;
  b.setAttribute("data-testid", `arp-card-${kind}`);
  b.setAttribute("aria-label", `${label}: ${id}`);
  b.title = title;
  if (kind in ICONS) {
    b.innerHTML = ICONS[kind];  // a constant of this file, no data
  } else {
    b.textContent = label;
  }
  return b;
}

function card(c, votes) {
  const id = String(c.id);
  const el = document.createElement("div");
  el.className = "arp-card";
  el.setAttribute("data-testid", "arp-card");
  el.setAttribute("data-object-id", id);
  if (c.src) {
    const img = document.createElement("img");
    img.className = "arp-card-img";
    img.alt = `thumbnail of ${id}`;
    img.decoding = "async";
    img.src = c.src;
    el.appendChild(img);
  } else {
    const blank = document.createElement("div");
    blank.className = "arp-card-img arp-card-blank";
    el.appendChild(blank);
  }
  const caption = document.createElement("div");
  caption.className = "arp-card-caption";
  caption.textContent = String(c.caption ?? id);
  el.appendChild(caption);
  if (votes) {
    const row = document.createElement("div");
    row.className = "arp-card-buttons";
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", `Vote on ${id}`);
    for (const [kind, label, title] of BUTTONS) row.appendChild(button(kind, label, title, id));
    el.appendChild(row);
  }
  el.appendChild(button("open", "Open", "open its Galaxy page", id));
  return el;
}

function showVote(el, vote) {
  for (const kind of ["up", "down"]) {
    const b = el.querySelector(`:scope > .arp-card-buttons > .arp-card-${kind}`);
    if (b) b.setAttribute("aria-pressed", vote === kind ? "true" : "false");
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let root = parentElement.querySelector(":scope > .arp-cards");
  if (!root) {
    root = document.createElement("div");
    root.className = "arp-cards";
    root.setAttribute("data-testid", "arp-cards");
    root.addEventListener("click", (event) => {
      const b = event.target.closest("button[data-kind]");
      const el = b && b.closest(".arp-card");
      if (!el || !root.contains(el)) return;
      root.arpSend({ kind: b.dataset.kind, id: el.getAttribute("data-object-id") });
    });
    parentElement.appendChild(root);
  }
  root.arpSend = (value) => setTriggerValue("action", value);
  const cards = data && Array.isArray(data.cards) ? data.cards : [];
  root.style.setProperty("--arp-cards-columns", String((data && data.columns) || 6));
  // a rerun with the same cards (a vote) keeps the drawn cards and only shows the votes
  const votes = !data || data.votes !== false;
  const drawn = `${votes}\u0002` + cards.map((c) => `${c.id}\u0001${c.caption}\u0001${(c.src || "").length}`).join("\u0002");
  if (root.arpDrawn !== drawn) {
    root.replaceChildren(...cards.map((c) => card(c, votes)));
    root.arpDrawn = drawn;
  }
  cards.forEach((c, i) => showVote(root.children[i], c.vote));
  root.dataset.cards = String(cards.length);  // set once drawn: tests and benchmarks wait for it
}
