// Renders the chosen image once per network class and shows what each answer cost.
// Every figure comes from pixfit's own response: headers, and the decoded image.
"use strict";

const form = document.getElementById("controls");
const prefix = form.dataset.prefix;
// fetch() sends "Accept: */*", so ask for what an <img> request would accept.
const IMAGE_ACCEPT = "image/avif,image/webp,*/*";

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

async function renderCard(card, original, generation) {
  const url = `${imagePath()}?${optionsQuery({ bw: card.dataset.class })}`;
  card.querySelector(".url").value = new URL(url, location.href).href;
  const response = await fetch(url, { headers: { Accept: IMAGE_ACCEPT } });
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

function updateSnippet() {
  const widths = [320, 640, 960, 1280];
  const path = imagePath();
  const query = (w) => optionsQuery({ w }).replace(/&?dpr=[^&]*/, "").replace(/^&/, "");
  const srcset = widths.map((w) => `${path}?${query(w)} ${w}w`).join(",\n             ");
  document.getElementById("snippet").textContent =
    `<img src="${path}?${query(form.elements.w.value)}"\n     srcset="${srcset}"\n` +
    `     sizes="(max-width: ${form.elements.w.value}px) 100vw, ${form.elements.w.value}px"\n` +
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
  if (generation === currentGeneration) document.body.dataset.ready = String(generation);
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
if (form.elements.image.value) renderAll();
