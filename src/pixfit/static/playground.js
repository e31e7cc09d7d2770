// Renders the chosen image once per network class and shows what each answer cost.
// Every figure comes from pixfit's own response: headers, and the decoded image.
"use strict";

const form = document.getElementById("controls");
const prefix = form.dataset.prefix;
// fetch() sends "Accept: */*", so ask for what an <img> request would accept.
const IMAGE_ACCEPT = "image/avif,image/webp,*/*";
// Where the detail under each image is centred, as fractions of the image (click to move).
const focus = { x: 0.5, y: 0.5 };

function optionsQuery(extra) {
  const params = new URLSearchParams();
  for (const name of ["w", "h", "fit", "pos", "rotate", "flip", "blur", "sharpen", "dpr", "screen"]) {
    const value = form.elements[name].value;
    // pos only matters to fit=cover; leaving the default out keeps URLs short.
    if (value && !(name === "pos" && value === "centre")) params.set(name, value);
  }
  for (const [key, value] of Object.entries(extra)) params.set(key, value);
  return params.toString();
}

// The network headers the controls ask for. The page's own Accept-CH leaves ECT out, so
// Chromium adds none of its own and the one set here is the one pixfit reads.
function networkHeaders() {
  const headers = {};
  if (form.elements.ect.value) headers.ECT = form.elements.ect.value;
  if (form.elements.save_data.checked) headers["Save-Data"] = "on";
  return headers;
}

function imagePath() {
  return `${prefix}/${form.elements.image.value.split("/").map(encodeURIComponent).join("/")}`;
}

function serverMs(header) {
  // Sum the stage durations in Server-Timing: "fetch;dur=1.2, decode;dur=30, encode;dur=9".
  return [...(header || "").matchAll(/dur=([\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

function setText(card, selector, text) {
  card.querySelector(selector).textContent = text;
}

function originalBytes() {
  const select = form.elements.image;
  return Number(select.options[select.selectedIndex].dataset.bytes);
}

function cardUrl(card) {
  // The headers card has no bw=: its class comes from ECT and Save-Data, as a browser's would.
  const extra = card.dataset.class === "headers" ? {} : { bw: card.dataset.class };
  return new URL(`${imagePath()}?${optionsQuery(extra)}`, location.href).href;
}

async function renderCard(card, original, generation) {
  const url = cardUrl(card);
  const headers = networkHeaders();
  card.querySelector(".url").textContent = url;
  const sent = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
  setText(card, ".headers", sent.length ? `with ${sent.join(", ")}` : "");
  const response = await fetch(url, { headers: { Accept: IMAGE_ACCEPT, ...headers } });
  if (generation !== currentGeneration) return;
  if (!response.ok) {
    setText(card, ".bytes", `error ${response.status}`);
    return;
  }
  const blob = await response.blob();
  const img = card.querySelector("img");
  const loaded = new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; });
  URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  await loaded;
  const budget = response.headers.get("X-Pixfit-Budget") || "none";
  card.dataset.bytes = String(blob.size);
  setText(card, ".class-used", response.headers.get("X-Pixfit-Class"));
  setText(card, ".bytes", blob.size.toLocaleString("en"));
  setText(card, ".dimensions", `${img.naturalWidth} × ${img.naturalHeight}`);
  setText(card, ".format", response.headers.get("Content-Type"));
  setText(card, ".quality", response.headers.get("X-Pixfit-Quality"));
  setText(card, ".score", response.headers.get("X-Pixfit-Score") || "not scored");
  const budgetCell = card.querySelector(".budget");
  budgetCell.textContent = budget;
  budgetCell.className = `budget ${budget.split(" ")[1] || ""}`;
  setText(card, ".time", `${serverMs(response.headers.get("Server-Timing")).toFixed(0)} ms`);
  setText(card, ".saving", original ? `${(100 * (1 - blob.size / original)).toFixed(1)} %` : "");
  card.dataset.ready = String(generation);
}

// Each card's detail shows its image at the size a page would display it: the largest
// rendering's width in CSS px (device pixels / DPR), so that one is 1:1 and a smaller
// rendering is scaled up as the browser would, which is where the classes differ.
function showDetails(cards) {
  const dpr = Number(form.elements.dpr.value) || 1;
  const loaded = cards.filter((card) => card.querySelector("img").naturalWidth);
  const display = Math.max(0, ...loaded.map((card) => card.querySelector("img").naturalWidth)) / dpr;
  document.body.dataset.detailWidth = String(display);
  for (const card of loaded) {
    const img = card.querySelector("img");
    const detail = card.querySelector(".detail");
    const height = display * img.naturalHeight / img.naturalWidth;
    const left = detail.clientWidth / 2 - focus.x * display;
    const top = detail.clientHeight / 2 - focus.y * height;
    detail.style.backgroundImage = `url("${img.src}")`;
    detail.style.backgroundSize = `${display}px ${height}px`;
    detail.style.backgroundPosition = `${left}px ${top}px`;
  }
}

function updateSnippet() {
  const widths = [320, 640, 960, 1280];
  const path = imagePath();
  const width = form.elements.w.value || 1280;
  // A page's markup knows neither the visitor's screen nor its DPR: pixfit reads those
  // from the client hints (Viewport-Width, Sec-CH-DPR).
  const query = (w) => optionsQuery({ w }).replace(/&?(dpr|screen)=[^&]*/g, "").replace(/^&/, "");
  const srcset = widths.map((w) => `${path}?${query(w)} ${w}w`).join(",\n             ");
  document.getElementById("snippet").textContent =
    `<img src="${path}?${query(width)}"\n     srcset="${srcset}"\n` +
    `     sizes="(max-width: ${width}px) 100vw, ${width}px"\n` +
    `     alt="" loading="lazy" decoding="async">`;
}

let currentGeneration = 0;

async function renderAll() {
  const generation = ++currentGeneration;
  document.body.dataset.ready = "";
  updateSnippet();
  const original = originalBytes();
  document.getElementById("original").textContent =
    `Original: ${original.toLocaleString("en")} bytes`;
  const cards = [...document.querySelectorAll(".variant")];
  await Promise.all(cards.map((card) => renderCard(card, original, generation)));
  if (generation !== currentGeneration) return;
  showDetails(cards);
  document.body.dataset.ready = String(generation);
}

async function copyUrl(button) {
  const url = button.closest(".variant").querySelector(".url").textContent;
  try {
    await navigator.clipboard.writeText(url);
    button.textContent = "Copied";
  } catch {
    // No clipboard permission (an insecure origin): select it for Ctrl+C instead.
    getSelection().selectAllChildren(button.closest(".variant").querySelector(".url"));
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy URL"; }, 2000);
}

// Defaults that show the classes apart: this screen, at this device's pixel ratio, and the
// network this browser measures (Chromium's navigator.connection; others have none).
function setDefaults() {
  const thisScreen = document.getElementById("this-screen");
  thisScreen.value = `${screen.width}x${screen.height}`;
  thisScreen.textContent = `this screen (${thisScreen.value})`;
  thisScreen.disabled = false;
  thisScreen.selected = true;
  const dprs = [...form.elements.dpr.options].map((option) => Number(option.value));
  form.elements.dpr.value = String(Math.max(...dprs.filter((d) => d <= devicePixelRatio), dprs[0]));
  const connection = navigator.connection;
  if (connection && [...form.elements.ect.options].some((o) => o.value === connection.effectiveType)) {
    form.elements.ect.value = connection.effectiveType;
  }
  form.elements.save_data.checked = Boolean(connection && connection.saveData);
}

// "Your link": the class /pixfit.js measured for this browser, and from what.
function showLink() {
  const link = window.pixfit;
  if (!link) return;
  const how = [];
  if (link.kbps >= 1e6) how.push("resources arrived faster than the timers can tell");
  else if (link.kbps) how.push(`the fastest resource came at ${Math.round(link.kbps)} kbps`);
  else how.push("no resource here was large enough to time");
  if (link.rtt) how.push(`a TCP handshake took ${link.rtt.toFixed(1)} ms`);
  how.push(link.conn ? `navigator.connection says ${link.conn}` : "no navigator.connection");
  const verdict = link.cls
    ? `${link.cls}: images written for the script get bw=${link.cls}`
    : "4g or faster: the script adds no bw=, so your hints or the server's default decide";
  const line = document.getElementById("your-link");
  line.textContent = `Your link: ${verdict} (${how.join("; ")}).`;
  line.dataset.class = link.cls || "fast";
}

document.addEventListener("pixfit", showLink);
showLink();
form.addEventListener("change", renderAll);
document.getElementById("classes").addEventListener("click", (event) => {
  if (event.target.matches(".copy-url")) copyUrl(event.target);
  if (event.target.matches(".frame img")) {
    const box = event.target.getBoundingClientRect();
    focus.x = (event.clientX - box.left) / box.width;
    focus.y = (event.clientY - box.top) / box.height;
    showDetails([...document.querySelectorAll(".variant")]);
  }
});
setDefaults();
if (form.elements.image.value) renderAll();
