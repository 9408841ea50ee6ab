// Gallery: GET /api/generations (newest first, filtered by status, paged), and a detail view of one.

import { api } from "./api.js";
import { adaptersList } from "./loras.js";
import { DRAFT, progressView } from "./playground.js";
import { button, confirmDialog, copyButton, download, emptyState, errorBox, extensionOf, formatDate, h, icon,
         pageHeader, skeletonGrid, statusPill, timeAgo, toast, fill } from "./ui.js";

const FILTERS = [["", "All"], ["success", "Done"], ["processing", "Running"], ["pending", "Queued"],
                 ["error", "Failed"], ["canceled", "Canceled"]];
const PAGE = 24;

export function render(root, { navigate, params }) {
  let stopped = false;
  let filter = sessionStorage.getItem("darkroom.galleryFilter") || "";
  const grid = h("div", { class: "grid", id: "gallery-grid" });
  const more = h("div", { class: "more" });
  const tabs = h("div", { class: "tabs", role: "tablist" });

  function drawTabs() {
    fill(tabs, ...FILTERS.map(([value, label]) => h("button", {
      type: "button", role: "tab", class: value === filter ? "tab active" : "tab", "aria-selected": String(value === filter),
      onclick: () => { filter = value; sessionStorage.setItem("darkroom.galleryFilter", value); drawTabs(); load(0); },
    }, label)));
  }

  // A new listing (a filter, a refresh, a closed detail) supersedes any still in flight: only the latest
  // one's responses are drawn, so a slow earlier answer never lands on top of a newer filter's.
  let listing = 0;

  async function load(offset) {
    if (offset === 0) { listing += 1; fill(grid, ...skeletonGrid(8).children); fill(more); }
    const mine = listing;
    const query = new URLSearchParams({ limit: PAGE, offset });
    if (filter) query.set("status", filter);
    try {
      const page = await api(`/api/generations?${query}`);
      if (stopped || mine !== listing) return;
      if (offset === 0) fill(grid);
      grid.append(...page.data.map(card));
      if (!page.data.length && offset === 0) {
        fill(grid, filter ? emptyState("grid", "Nothing with this status", "Try another filter.")
          : emptyState("image", "No generations yet", "Everything you generate, from the Playground or the API, shows up here.",
                       button("Open the Playground", { kind: "primary", iconName: "spark", onclick: () => navigate("playground") })));
      }
      const { total, hasMore } = page.pagination;
      fill(more, 
        h("span", { class: "muted small" }, `${Math.min(offset + page.data.length, total)} of ${total}`),
        hasMore ? button("Load more", { onclick: (e) => { e.currentTarget.disabled = true; load(offset + PAGE); } }) : null);
    } catch (err) {
      if (!stopped && mine === listing) fill(grid, errorBox(err, "Could not load the gallery"));
    }
  }

  function card(job) {
    const thumb = job.thumbnail || (job.type === "image" ? job.output : null);
    return h("button", { type: "button", class: "card gen-card", "data-id": job.id, onclick: () => openDetail(job.id) },
      h("div", { class: "thumb" }, thumb ? h("img", { src: thumb, alt: "", loading: "lazy" })
        : h("div", { class: "thumb-empty" }, icon(job.status === "error" ? "alert" : "image", 24))),
      h("div", { class: "gen-meta" },
        h("p", { class: "gen-prompt" }, job.payload?.prompt || "(no prompt)"),
        h("div", { class: "gen-foot" }, statusPill(job.status, job.error),
          h("span", { class: "muted small" }, timeAgo(job.createdAt)),
          job.shareUrl ? h("span", { class: "muted", title: "Public share link" }, icon("link", 14)) : null)));
  }

  function openDetail(id) {
    history.replaceState(null, "", `#/gallery/${encodeURIComponent(id)}`);
    showDetail(id, { navigate, onClose: () => { history.replaceState(null, "", "#/gallery"); load(0); } });
  }

  drawTabs();
  fill(root, pageHeader("Gallery", "Every generation of this workspace, newest first.",
    button("Refresh", { iconName: "refresh", onclick: () => load(0) })), tabs, grid, more);
  load(0);
  if (params[0]) showDetail(params[0], { navigate, onClose: () => history.replaceState(null, "", "#/gallery") });
  return () => { stopped = true; document.querySelectorAll("dialog.detail").forEach((d) => d.close()); };
}

// One generation in a dialog: the media, its settings, the share link, download, cancel, remix.
function showDetail(id, { navigate, onClose }) {
  const body = h("div", { class: "detail-body" }, progressView({ status: "pending" }, "Loading…"));
  const dialog = h("dialog", { class: "dialog detail", "aria-label": "Generation" },
    h("button", { class: "icon-btn dialog-close", type: "button", "aria-label": "Close", onclick: () => dialog.close() }, icon("x", 18)),
    body);
  let timer = null;
  dialog.addEventListener("close", () => { clearTimeout(timer); dialog.remove(); onClose?.(); });
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  document.body.append(dialog);
  dialog.showModal();

  async function load() {
    try {
      const job = await api(`/api/generations/${encodeURIComponent(id)}`);
      if (!dialog.open) return;
      fill(body, view(job));
      if (job.status === "pending" || job.status === "processing") timer = setTimeout(load, 1000);
    } catch (err) {
      fill(body, errorBox(err, "Could not load this generation"));
    }
  }

  function view(job) {
    const urls = job.outputs?.length ? job.outputs : [job.output].filter(Boolean);
    const isVideo = job.type === "video";
    const finished = job.status === "success" || job.status === "error";
    const media = job.status === "success" && urls.length
      ? h("div", { class: "detail-media" }, urls.map((url) => isVideo
        ? h("video", { src: url, controls: true, loop: true, muted: true, playsinline: true })
        : h("img", { src: url, alt: job.payload?.prompt || "Generated image" })))
      : h("div", { class: "detail-media detail-media-empty" },
          finished ? errorBox({ message: job.error || "No output" }, "No image") : progressView(job));
    const meta = job.metadata || {};
    const rows = [
      ["Status", statusPill(job.status, job.error)],
      ["Model", job.model],
      ["Size", meta.width ? `${meta.width} × ${meta.height}` : job.payload?.size || "model default"],
      job.payload?.style ? ["Style", job.payload.style] : null,
      job.payload?.seed !== undefined ? ["Seed", String(job.payload.seed)] : null,
      job.loras?.length ? ["LoRAs", adaptersList(job.loras)] : null,
      ["Created", formatDate(job.createdAt)],
      ["ID", h("span", { class: "id-row" }, h("code", {}, job.id), copyButton(job.id, "", "ID copied"))],
    ].filter(Boolean);
    const share = shareBox(job);
    const actions = h("div", { class: "detail-actions" },
      job.status === "success" && urls.length ? button("Download", { kind: "primary", iconName: "download",
        onclick: () => urls.forEach((url, i) => download(url, `darkroom-${job.id}-${i}.${extensionOf(url, isVideo ? "mp4" : "png")}`)) }) : null,
      button("Remix", { iconName: "wand", onclick: () => {
        const loras = (job.loras || job.payload?.loras || []).map(({ path, scale }) => ({ path, scale }));
        sessionStorage.setItem(DRAFT, JSON.stringify({ ...job.payload, model: job.model, loras }));
        dialog.close(); navigate("playground");
      } }),
      button("Deliveries", { iconName: "hook", onclick: () => { dialog.close(); navigate(`webhooks/${job.id}`); } }),
      finished ? null : button("Cancel", { kind: "danger", iconName: "x", onclick: async () => {
        if (!(await confirmDialog("Cancel this generation?", "Its credits are refunded.", "Cancel generation"))) return;
        try { await api(`/api/generations/${encodeURIComponent(job.id)}/cancel`, { method: "POST" }); toast("Canceled", "success"); load(); }
        catch (err) { toast(err.message, "error"); }
      } }));
    return h("div", { class: "detail-grid" }, media,
      h("div", { class: "detail-side" },
        h("p", { class: "detail-prompt" }, job.payload?.prompt || ""),
        h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        share, actions));
  }

  load();
}

// The share toggle: POST /api/generations/{id}/share {public}. Turning it off kills the link for good;
// turning it on again makes a new one. A failed or canceled generation has nothing to share.
function shareBox(job) {
  const box = h("div", { class: "share-box" });
  let state = { public: Boolean(job.shareUrl), share_url: job.shareUrl || null };
  const shareable = job.status !== "error";

  async function toggle(event) {
    const input = event.currentTarget;
    input.disabled = true;
    try {
      state = await api(`/api/generations/${encodeURIComponent(job.id)}/share`, { method: "POST", body: { public: input.checked } });
      job.shareUrl = state.share_url || undefined;  // a re-render (polling) keeps what the API answered
      toast(state.public ? "Public: anyone with the link can see it" : "Private: the old link no longer works", "success");
    } catch (err) {
      toast(err.message, "error");
    }
    draw();
  }

  function draw() {
    const canToggle = shareable || state.public;  // a public failed job can still be made private
    const toggleSwitch = h("label", { class: "switch", title: state.public ? "Make private" : "Make public" },
      h("input", { type: "checkbox", role: "switch", id: "share-toggle", checked: state.public,
                   "aria-label": "Public share link", disabled: !canToggle, onchange: toggle }),
      h("span", { class: "switch-track", "aria-hidden": "true" }));
    box.className = state.public ? "share-box public" : "share-box";
    fill(box,
      h("div", { class: "share-title" }, icon(state.public ? "link" : "lock", 16),
        h("strong", {}, state.public ? "Public" : "Private"),
        h("span", { class: "muted small" }, state.public ? "Anyone with the link can see it"
          : shareable ? "Only keys of this workspace can read it" : "A failed or canceled generation cannot be shared"),
        toggleSwitch),
      state.public ? h("div", { class: "share-row" },
        h("a", { href: state.share_url, target: "_blank", rel: "noopener", class: "share-link" }, state.share_url),
        copyButton(state.share_url, "Copy", "Share link copied")) : null);
  }

  draw();
  return box;
}
