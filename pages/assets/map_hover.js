// Thumbnail beside the cursor on the Map page. Listens to the Plotly hover events of the map charts
// (elements keyed `chart_*`) in this same document, asks Python for a hovered object's thumbnail (debounced)
// through the component state `hovered`, and draws what comes back as `data` ({id, src, text}) in a floating
// card. Only listens: the chart's own click, box and lasso handling is left as it is.
const S = window.__arpMapHover || (window.__arpMapHover = { cache: new Map(), want: null, x: 0, y: 0, timer: null, send: null });
const DEBOUNCE_MS = 90;
const CHARTS = "[class*='st-key-chart_'] .js-plotly-plot";

function card() {
  let box = document.getElementById("arp-hover-card");
  if (!box) {
    box = document.createElement("div");
    box.id = "arp-hover-card";
    box.setAttribute("data-testid", "arp-hover-card");
    box.style.cssText = "position:fixed;z-index:1000;display:none;pointer-events:none;padding:4px;border-radius:6px;" +
      "background:rgba(14,17,23,0.92);border:1px solid rgba(250,250,250,0.25);font:12px sans-serif;color:#fafafa;";
    const img = document.createElement("img");
    img.style.cssText = "display:block;width:128px;height:128px;image-rendering:auto;";
    const text = document.createElement("div");
    text.style.cssText = "padding-top:3px;max-width:128px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;";
    box.append(img, text);
    document.body.appendChild(box);
  }
  return box;
}

function show() {
  const item = S.want && S.cache.get(S.want);
  const box = card();
  if (!item) return;
  const [img, text] = box.children;
  img.style.display = item.src ? "block" : "none";
  if (item.src && img.getAttribute("src") !== item.src) img.setAttribute("src", item.src);
  img.setAttribute("data-id", item.id);
  text.textContent = item.text || item.id;
  const left = S.x + 18 + 140 > window.innerWidth ? S.x - 18 - 140 : S.x + 18;
  box.style.left = `${Math.max(0, left)}px`;
  box.style.top = `${Math.max(0, Math.min(S.y + 12, window.innerHeight - 170))}px`;
  box.style.display = "block";
}

function hide() {
  S.want = null;
  clearTimeout(S.timer);
  card().style.display = "none";
}

function onHover(ev) {
  const point = ev && ev.points && ev.points.find((p) => p.customdata !== undefined && p.customdata !== null);
  if (!point) return;
  const id = String(Array.isArray(point.customdata) ? point.customdata[0] : point.customdata);
  if (ev.event) { S.x = ev.event.clientX; S.y = ev.event.clientY; }
  S.want = id;
  clearTimeout(S.timer);
  if (S.cache.has(id)) { show(); return; }
  S.timer = setTimeout(() => { if (S.want === id && S.send) S.send(id); }, DEBOUNCE_MS);
}

function attach() {
  document.querySelectorAll(CHARTS).forEach((gd) => {
    if (gd.__arpHover || typeof gd.on !== "function") return;
    gd.__arpHover = true;
    gd.on("plotly_hover", onHover);
    gd.on("plotly_unhover", hide);
    gd.addEventListener("mouseleave", hide);
  });
}

export default function (component) {
  const { data, setStateValue } = component;
  S.send = (id) => setStateValue("hovered", id);
  if (data && data.id) {
    S.cache.set(data.id, data);
    if (S.cache.size > 500) S.cache.delete(S.cache.keys().next().value);
    if (S.want === data.id) show();
  }
  attach();
  const poll = setInterval(attach, 500);  // the chart is redrawn (a new element) when the page reruns
  return () => clearInterval(poll);
}
