// Thumbnail beside the cursor on the Map page. Listens to the window event `arp-map-hover` ({id, x, y}; id null when
// no point is under the cursor) that the map (map_canvas.js) sends, asks Python for a hovered object's thumbnail
// (debounced) through the component state `hovered`, and draws what comes back as `data` ({id, src, text}) in a
// floating card.
const S = window.__arpMapHover || (window.__arpMapHover = { cache: new Map(), want: null, x: 0, y: 0, timer: null, send: null });
const DEBOUNCE_MS = 90;

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
  const { id, x, y } = (ev && ev.detail) || {};
  if (!id) { hide(); return; }
  S.x = x;
  S.y = y;
  if (S.want === id) { if (S.cache.has(id)) show(); return; }
  S.want = id;
  clearTimeout(S.timer);
  if (S.cache.has(id)) { show(); return; }
  S.timer = setTimeout(() => { if (S.want === id && S.send) S.send(id); }, DEBOUNCE_MS);
}

export default function (component) {
  const { data, setStateValue } = component;
  S.send = (id) => setStateValue("hovered", id);
  if (data && data.id) {
    S.cache.set(data.id, data);
    if (S.cache.size > 500) S.cache.delete(S.cache.keys().next().value);
    if (S.want === data.id) show();
  }
  if (!S.listening) {  // once per page: the map (map_canvas.js) announces the point under the cursor
    S.listening = true;
    window.addEventListener("arp-map-hover", onHover);
  }
  return () => { S.listening = false; window.removeEventListener("arp-map-hover", onHover); hide(); };
}
