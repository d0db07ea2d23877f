// Read-only values with a copy button each (the Galaxy page's coordinates), then links out (the archives at that
// position), drawn in the page itself: st.code's syntax highlighter (1.6 MB of script) cost every new tab ~0.9 s on
// the 2-core box for two one-line values, and four st.link_button in columns ~0.1 s more.
// `data` is {values: [...], links: [[name, url], ...]}; values and names are set as text, never as HTML, and a link
// is drawn only for an http(s) URL.
const COPY = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true"><path fill="currentColor" ' +
  'd="M16 1H4c-1.1 0-2 .9-2 2v14h2V3h12V1zm3 4H8c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h11c1.1 0 2-.9 2-2V7c0-1.1-.9-2-2-2z' +
  'm0 16H8V7h11v14z"/></svg>';

const OPEN = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true"><path fill="currentColor" ' +
  'd="M19 19H5V5h7V3H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14c1.1 0 2-.9 2-2v-7h-2v7zM14 3v2h3.59l-9.83 9.83 1.41 1.41' +
  'L19 6.41V10h2V3h-7z"/></svg>';

function fallbackCopy(text, root) {
  // Outside a secure context (plain http to another host) there is no navigator.clipboard.
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.cssText = "position:fixed;left:-9999px;top:0;";
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
  area.remove();
  return ok;
}

function item(value) {
  const row = document.createElement("div");
  row.className = "arp-copy-item";
  const text = document.createElement("code");
  text.textContent = value;
  const button = document.createElement("button");
  button.type = "button";
  button.title = "Copy to clipboard";
  button.setAttribute("aria-label", "Copy " + value);
  button.innerHTML = COPY;
  button.addEventListener("click", async () => {
    let ok = false;
    try {
      await navigator.clipboard.writeText(value);
      ok = true;
    } catch (e) {
      ok = fallbackCopy(value);
    }
    button.dataset.copied = ok ? "yes" : "no";
    button.title = ok ? "Copied" : "Select the text and copy it";
    setTimeout(() => { delete button.dataset.copied; button.title = "Copy to clipboard"; }, 1500);
  });
  row.append(text, button);
  return row;
}

function link([name, url]) {
  const a = document.createElement("a");
  a.className = "arp-link";
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer";
  const text = document.createElement("span");
  text.textContent = name;
  a.innerHTML = OPEN;
  a.prepend(text);
  return a;
}

function isWebLink(pair) {
  return Array.isArray(pair) && pair.length === 2 && /^https?:\/\//i.test(String(pair[1]));
}

export default function (component) {
  const { data, parentElement } = component;
  let box = parentElement.querySelector(".arp-copy");
  if (!box) {
    box = document.createElement("div");
    box.className = "arp-copy";
    parentElement.appendChild(box);
  }
  const values = (data && Array.isArray(data.values)) ? data.values.map(String) : [];
  const links = (data && Array.isArray(data.links)) ? data.links.filter(isWebLink).map(([n, u]) => [String(n), String(u)]) : [];
  const drawn = JSON.stringify([values, links]);
  if (box.dataset.drawn !== drawn) {
    box.dataset.drawn = drawn;
    box.replaceChildren(...values.map(item), ...links.map(link));
  }
}
