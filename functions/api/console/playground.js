// Playground: a prompt and its settings, submitted with POST /api/generate, followed by polling
// GET /api/generations/{id} (queued → running, step i of N → done) until the images are in.

import { api } from "./api.js";
import { button, copyButton, download, emptyState, errorBox, extensionOf, field, h, icon, loading, pageHeader,
         statusPill, fill } from "./ui.js";

const SIZES = ["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1280x720", "720x1280"];
const POLL_MS = 700;
export const DRAFT = "darkroom.draft";  // a gallery "Remix" hands its settings over through this

let catalog = null;  // {models, styles}, loaded once per tab

async function loadCatalog() {
  if (!catalog) {
    const [models, styles] = await Promise.all([api("/api/models"), api("/api/styles")]);
    catalog = { models: models.data.filter((m) => m.task === "text-to-image" || m.task === "text-to-video"),
                styles: styles.data };
  }
  return catalog;
}

export function render(root, { navigate }) {
  let stopped = false;
  let timer = null;
  fill(root, pageHeader("Playground", "Write a prompt, pick a model and generate."), loading("Loading models…"));
  loadCatalog().then((cat) => { if (!stopped) build(root, cat); })
    .catch((err) => { if (!stopped) fill(root, pageHeader("Playground"), errorBox(err, "Could not load the models")); });

  function build(root, { models, styles }) {
    const draft = JSON.parse(sessionStorage.getItem(DRAFT) || "null");
    sessionStorage.removeItem(DRAFT);
    const prompt = h("textarea", { name: "prompt", id: "prompt", rows: 4, required: true, maxlength: 4000,
      placeholder: "A lighthouse on a cliff at dusk, volumetric light, 35mm film" });
    const model = h("select", { name: "model", id: "model" },
      ["image", "video"].map((type) => {
        const group = models.filter((m) => m.type === type);
        return group.length ? h("optgroup", { label: type === "image" ? "Images" : "Videos" },
          group.map((m) => h("option", { value: m.id }, `${m.name} · ${m.credits} credit${m.credits === 1 ? "" : "s"}`))) : null;
      }));
    const size = h("select", { name: "size", id: "size" });
    const style = h("select", { name: "style", id: "style" }, h("option", { value: "" }, "No style"),
      styles.map((s) => h("option", { value: s.slug, title: s.description }, s.name)));
    const count = h("div", { class: "segmented", role: "radiogroup", "aria-label": "Number of images" },
      [1, 2, 3, 4].map((n) => h("label", {}, h("input", { type: "radio", name: "n", value: n, checked: n === 1 }), h("span", {}, n))));
    const negative = h("textarea", { name: "negative_prompt", id: "negative-prompt", rows: 2, maxlength: 4000,
      placeholder: "blurry, low quality, watermark" });
    const seed = h("input", { name: "seed", id: "seed", type: "number", min: 0, max: 4294967295, placeholder: "random" });
    const webhook = h("input", { name: "webhook", id: "webhook", type: "url", placeholder: "https://your-server.com/api/webhook" });
    const makePublic = h("input", { type: "checkbox", name: "make_public", id: "make-public" });
    const submit = button("Generate", { kind: "primary", type: "submit", iconName: "wand", id: "generate" });
    const result = h("section", { class: "panel result", id: "result", "aria-live": "polite" });

    function fillSizes() {
      const spec = models.find((m) => m.id === model.value);
      const d = spec?.defaults || {};
      const chosen = size.value;
      fill(size, h("option", { value: "" }, d.width ? `Model default (${d.width}×${d.height})` : "Model default"),
        SIZES.map((s) => h("option", { value: s }, s.replace("x", " × "))));
      size.value = SIZES.includes(chosen) ? chosen : "";
    }
    model.addEventListener("change", fillSizes);
    fillSizes();
    if (draft) {
      prompt.value = draft.prompt || "";
      if (models.some((m) => m.id === draft.model)) { model.value = draft.model; fillSizes(); }
      if (SIZES.includes(draft.size)) size.value = draft.size;
      if (draft.style) style.value = draft.style;
      if (draft.negative_prompt) negative.value = draft.negative_prompt;
    }

    const form = h("form", { class: "panel form", id: "generate-form", onsubmit: (e) => { e.preventDefault(); generate(); } },
      field("Prompt", prompt),
      field("Model", model),
      h("div", { class: "row" }, field("Size", size), field("Style", style)),
      field("Images", count),
      h("details", { class: "advanced", open: Boolean(draft?.negative_prompt) },
        h("summary", {}, "Advanced"),
        field("Negative prompt", negative),
        h("div", { class: "row" }, field("Seed", seed, "Same seed, same image."),
          field("Webhook URL", webhook, "Gets a signed POST when the job ends."))),
      h("label", { class: "check" }, makePublic, h("span", {}, "Create a public share link"),
        h("span", { class: "field-help" }, "Anyone with the link can see the result.")),
      h("div", { class: "form-actions" }, submit, h("span", { class: "muted small" }, "Ctrl + Enter")));
    prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit(); });

    idle();
    fill(root, pageHeader("Playground", "Write a prompt, pick a model and generate."),
      h("div", { class: "playground" }, form, result));
    prompt.focus();

    function idle() {
      fill(result, emptyState("image", "Your images appear here",
        "Write a prompt and press Generate. Every result is also kept in the Gallery."));
    }

    async function generate() {
      const input = { prompt: prompt.value.trim() };
      if (!input.prompt) { prompt.focus(); return; }
      if (size.value) input.size = size.value;
      if (style.value) input.style = style.value;
      const n = Number(form.querySelector("input[name=n]:checked").value);
      if (n > 1) input.n = n;
      if (negative.value.trim()) input.negative_prompt = negative.value.trim();
      if (seed.value !== "") input.seed = Number(seed.value);
      if (makePublic.checked) input.make_public = true;
      const body = { model: model.value, input };
      if (webhook.value.trim()) body.webhook = webhook.value.trim();
      submit.disabled = true;
      clearTimeout(timer);
      fill(result, progressView({ status: "pending" }, "Submitting…"));
      try {
        const job = await api("/api/generate", { method: "POST", body });
        poll(job.id);
      } catch (err) {
        submit.disabled = false;
        fill(result, errorBox(err, "The generation was not accepted"));
      }
    }

    async function poll(id) {
      if (stopped) return;
      try {
        const job = await api(`/api/generations/${encodeURIComponent(id)}`);
        if (stopped) return;
        if (job.status === "success" || job.status === "error") {
          submit.disabled = false;
          fill(result, job.status === "success" ? done(job) : failed(job));
          return;
        }
        fill(result, progressView(job));
      } catch (err) {
        if (stopped) return;
        if (err.status !== 429 && err.status < 500) {
          submit.disabled = false;
          fill(result, errorBox(err, "Could not read the generation"));
          return;
        }
      }
      timer = setTimeout(() => poll(id), POLL_MS);
    }

    function failed(job) {
      return h("div", { class: "result-body" },
        h("div", { class: "result-head" }, statusPill(job.status, job.error), h("code", { class: "muted small" }, job.id)),
        errorBox({ message: job.error || "The generation failed" }, "The generation failed"),
        h("p", { class: "muted small" }, "Its credits were refunded. Try again, or change the prompt or settings."));
    }

    function done(job) {
      const urls = job.outputs?.length ? job.outputs : [job.output].filter(Boolean);
      const isVideo = job.type === "video";
      const meta = job.metadata || {};
      return h("div", { class: "result-body" },
        h("div", { class: "result-head" }, statusPill(job.status),
          h("span", { class: "muted small" }, [job.model, meta.width ? `${meta.width}×${meta.height}` : null].filter(Boolean).join(" · ")),
          h("span", { class: "spacer" }),
          button("Open in Gallery", { kind: "ghost", iconName: "grid", onclick: () => navigate(`gallery/${job.id}`) })),
        h("div", { class: `outputs outputs-${Math.min(urls.length, 2)}` }, urls.map((url, i) => h("figure", { class: "output" },
          isVideo ? h("video", { src: url, controls: true, loop: true, muted: true, playsinline: true, poster: job.thumbnail || false })
                  : h("img", { src: url, alt: job.payload?.prompt || "Generated image", class: "result-image" }),
          h("figcaption", {},
            button("Download", { kind: "ghost", iconName: "download",
              onclick: () => download(url, `darkroom-${job.id}-${i}.${extensionOf(url, isVideo ? "mp4" : "png")}`) }),
            h("a", { class: "btn btn-ghost", href: url, target: "_blank", rel: "noopener" }, icon("external", 16), h("span", {}, "Open")))))),
        job.shareUrl ? h("div", { class: "share-row" }, icon("link", 16),
          h("a", { href: job.shareUrl, target: "_blank", rel: "noopener", class: "share-link" }, job.shareUrl),
          copyButton(job.shareUrl, "Copy link", "Share link copied")) : null);
    }
  }

  return () => { stopped = true; clearTimeout(timer); };
}

// Queued or running: the status pill, a bar (step i of N once the worker reports it) and what is going on.
export function progressView(job, note) {
  const step = job.progress?.step;
  const total = job.progress?.total;
  const bar = h("div", { class: `bar ${total ? "" : "bar-indeterminate"}` }, h("div", { class: "bar-fill" }));
  if (total) bar.firstChild.style.width = `${Math.round((100 * step) / total)}%`;
  const text = note || (job.status === "pending" ? "Queued: waiting for a GPU worker…"
    : total ? `Step ${step} of ${total}` : "Running: loading the model…");
  return h("div", { class: "result-body progress", "data-status": job.status },
    h("div", { class: "result-head" }, statusPill(job.status), job.id ? h("code", { class: "muted small" }, job.id) : null),
    bar, h("p", { class: "progress-text" }, text));
}
