// Small DOM helpers. Everything is built with createElement and textContent (never innerHTML with data),
// so prompts and API messages can hold any characters.

import { hintFor } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

// replaceChildren, but like h(): arrays are flattened and null/false (conditional children) are skipped.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// Icons: 24x24 stroke paths (Lucide-style), drawn as inline SVG elements.
const ICONS = {
  spark: "M12 3l1.9 5.8L20 10.5l-6.1 1.7L12 18l-1.9-5.8L4 10.5l6.1-1.7z M19 17l.8 2.2L22 20l-2.2.8L19 23l-.8-2.2L16 20l2.2-.8z",
  grid: "M3 3h7v7H3z M14 3h7v7h-7z M14 14h7v7h-7z M3 14h7v7H3z",
  key: "M15.5 7.5a3.5 3.5 0 1 1-7 0 3.5 3.5 0 0 1 7 0z M12 11v10 M12 16h3 M12 19h2",
  hook: "M18 16.98h-5.99c-1.1 0-1.95.94-2.48 1.9A4 4 0 0 1 2 17c.01-.7.2-1.4.57-2 M6 17l3.13-5.78c.53-.97.1-2.18-.5-3.1a4 4 0 1 1 6.89-4.06 M12 6l3.13 5.73C15.66 12.7 16.9 13 18 13a4 4 0 0 1 0 8",
  chart: "M3 3v18h18 M7 15l4-4 3 3 5-6",
  logout: "M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4 M16 17l5-5-5-5 M21 12H9",
  download: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4 M7 10l5 5 5-5 M12 15V3",
  copy: "M9 9h11v11H9z M5 15H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v1",
  external: "M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6 M15 3h6v6 M10 14L21 3",
  link: "M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71 M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71",
  lock: "M5 11h14v10H5z M8 11V7a4 4 0 0 1 8 0v4",
  image: "M3 3h18v18H3z M8.5 10a1.5 1.5 0 1 0 0-3 1.5 1.5 0 0 0 0 3z M21 15l-5-5L5 21",
  alert: "M12 9v4 M12 17h.01 M10.3 3.9L1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z",
  refresh: "M23 4v6h-6 M1 20v-6h6 M3.5 9a9 9 0 0 1 14.9-3.4L23 10 M1 14l4.6 4.4A9 9 0 0 0 20.5 15",
  send: "M22 2L11 13 M22 2l-7 20-4-9-9-4z",
  eye: "M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  plus: "M12 5v14 M5 12h14",
  x: "M18 6L6 18 M6 6l12 12",
  trash: "M3 6h18 M8 6V4h8v2 M19 6l-1 14H6L5 6",
  layers: "M12 2L2 7l10 5 10-5-10-5z M2 17l10 5 10-5 M2 12l10 5 10-5",
  upload: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4 M17 8l-5-5-5 5 M12 3v12",
  wand: "M15 4V2 M15 16v-2 M8 9h2 M20 9h2 M17.8 11.8L19 13 M17.8 6.2L19 5 M12.2 6.2L11 5 M3 21l9-9",
};

export function icon(name, size = 18) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name] || "");
  svg.append(path);
  return svg;
}

export function button(label, { kind = "secondary", iconName, onclick, type = "button", ...attrs } = {}) {
  return h("button", { class: `btn btn-${kind}`, type, onclick, ...attrs },
           iconName ? icon(iconName, 16) : null, label ? h("span", {}, label) : null);
}

export function pageHeader(title, subtitle, ...actions) {
  return h("header", { class: "page-header" },
           h("div", {}, h("h1", {}, title), subtitle ? h("p", { class: "muted" }, subtitle) : null),
           actions.length ? h("div", { class: "page-actions" }, actions) : null);
}

export function emptyState(iconName, title, text, ...actions) {
  return h("div", { class: "empty" }, h("div", { class: "empty-icon" }, icon(iconName, 26)),
           h("h3", {}, title), text ? h("p", { class: "muted" }, text) : null,
           actions.length ? h("div", { class: "empty-actions" }, actions) : null);
}

export function loading(text = "Loading…") {
  return h("div", { class: "loading", role: "status" }, h("span", { class: "spinner" }), h("span", {}, text));
}

export function skeletonGrid(count = 6) {
  return h("div", { class: "grid" }, Array.from({ length: count }, () => h("div", { class: "card skeleton" })));
}

// An API error as a box: the API's own message, each field it names, and what to do next.
export function errorBox(err, title = "Something went wrong") {
  const hint = err.status !== undefined ? hintFor(err) : "";
  return h("div", { class: "alert alert-error", role: "alert" },
           icon("alert", 18),
           h("div", {},
             h("strong", {}, title),
             h("p", { class: "alert-message" }, err.message || String(err)),
             err.fields?.length ? h("ul", { class: "alert-fields" },
               err.fields.map((f) => h("li", {}, h("code", {}, f.field), " ", f.message))) : null,
             hint ? h("p", { class: "alert-hint" }, hint) : null));
}

const STATUS_LABELS = { pending: "Queued", processing: "Running", success: "Done", error: "Failed" };

export function statusPill(status, error) {
  const canceled = status === "error" && /cancel/i.test(error || "");
  const label = canceled ? "Canceled" : (STATUS_LABELS[status] || status);
  return h("span", { class: `pill pill-${canceled ? "canceled" : status}`, "data-status": status }, label);
}

export function timeAgo(iso) {
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (!Number.isFinite(seconds)) return "";
  if (seconds < 45) return "just now";
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  const [unit, size] = units.find(([, s]) => seconds >= s) || ["minute", 60];
  return new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }).format(-Math.round(seconds / size), unit);
}

export function formatDate(value) {
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? "" :
    date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatNumber(value) {
  return typeof value === "number" ? value.toLocaleString(undefined, { maximumFractionDigits: 2 }) : "—";
}

export function formatBytes(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit += 1; }
  return unit === 0 ? `${n} bytes` : `${n.toLocaleString(undefined, { maximumFractionDigits: 1 })} ${units[unit]}`;
}

let toastTimer;
export function toast(message, kind = "info") {
  let host = document.querySelector(".toast");
  if (!host) { host = h("div", { class: "toast", role: "status", "aria-live": "polite" }); document.body.append(host); }
  host.className = `toast toast-${kind} show`;
  host.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => host.classList.remove("show"), 2600);
}

export async function copyText(text, what = "Copied") {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what} to the clipboard`, "success");
  } catch {
    toast("Copying is blocked here: select the text and copy it by hand", "error");
  }
}

export function copyButton(text, label = "Copy", what = "Copied") {
  return button(label, { kind: "ghost", iconName: "copy", onclick: () => copyText(text, what), title: "Copy" });
}

// Outputs are media links that redirect to S3 (another origin): fetch them (the bucket allows CORS) so the file is saved
// under a useful name; if that fails, open the URL instead.
export async function download(url, filename) {
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(String(response.status));
    const objectUrl = URL.createObjectURL(await response.blob());
    const link = h("a", { href: objectUrl, download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(objectUrl), 10_000);
  } catch {
    window.open(url, "_blank", "noopener");
  }
}

export function extensionOf(url, fallback = "png") {
  const match = /\.([a-z0-9]+)(?:\?|$)/i.exec(url || "");
  return match ? match[1] : fallback;
}

// A modal dialog: resolves with true when confirmed.
export function confirmDialog(title, text, confirmLabel = "Confirm", kind = "danger") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "dialog dialog-small" },
      h("form", { method: "dialog" },
        h("h2", {}, title), h("p", { class: "muted" }, text),
        h("div", { class: "dialog-actions" },
          h("button", { class: "btn btn-secondary", value: "cancel" }, "Cancel"),
          h("button", { class: `btn btn-${kind}`, value: "ok" }, confirmLabel))));
    dialog.addEventListener("close", () => { resolve(dialog.returnValue === "ok"); dialog.remove(); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function field(label, control, help) {
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control,
           help ? h("span", { class: "field-help" }, help) : null);
}
