// Read-only values with a copy button each (the Galaxy page's coordinates), drawn in the page itself: st.code's
// syntax highlighter (1.6 MB of script) cost every new tab ~0.9 s on the 2-core box for two one-line values.
// `data` is {values: [...]}; values are set as text, never as HTML.
const COPY = '<svg viewBox="0 0 24 24" width="16" height="16" aria-hidden="true"><path fill="currentColor" ' +
  'd="M16 1H4c-1.1 0-2 .9-2 2v14h2V3h12V1zm3 4H8c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h11c1.1 0 2-.9 2-2V7c0-1.1-.9-2-2-2z' +
  'm0 16H8V7h11v14z"/></svg>';

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

export default function (component) {
  const { data, parentElement } = component;
  let box = parentElement.querySelector(".arp-copy");
  if (!box) {
    box = document.createElement("div");
    box.className = "arp-copy";
    parentElement.appendChild(box);
  }
  const values = (data && Array.isArray(data.values)) ? data.values.map(String) : [];
  if (box.dataset.values !== JSON.stringify(values)) {
    box.dataset.values = JSON.stringify(values);
    box.replaceChildren(...values.map(item));
  }
}
