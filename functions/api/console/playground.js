// Playground: a prompt and its settings, submitted with POST /api/generate, followed by polling
// GET /api/generations/{id} (queued → running, step i of N → done) until the images are in.
// LoRA adapters (input.loras): up to 4 of the workspace's (GET /api/loras) or a Hub repo / https URL, each with a scale.

import { api } from "./api.js";
import { adaptersList, listLoras, MAX_LORAS, SCALE } from "./loras.js";
import { button, copyButton, download, emptyState, errorBox, extensionOf, field, h, icon, loading, pageHeader,
         statusPill, fill } from "./ui.js";

const SIZES = ["256x256", "512x512", "768x768", "1024x1024", "1024x768", "768x1024", "1280x720", "720x1280"];
const POLL_MS = 700;
const CUSTOM = "custom";  // the LoRA picker's "Hub repo or URL" choice (a LoRA id always starts with lora_)
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
  // The workspace's LoRAs are read on every visit (they change on the LoRAs page); a key that may not list
  // them can still name a Hub repo or URL.
  Promise.all([loadCatalog(), listLoras().then((r) => ({ loras: r.data }), (err) => ({ loras: [], listError: err }))])
    .then(([cat, workspace]) => { if (!stopped) build(root, cat, workspace); })
    .catch((err) => { if (!stopped) fill(root, pageHeader("Playground"), errorBox(err, "Could not load the models")); });

  function build(root, { models, styles }, { loras, listError }) {
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
    const adapters = loraPicker(loras, models, listError);
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
    model.addEventListener("change", () => adapters.setModel(model.value));
    fillSizes();
    adapters.setModel(model.value);
    if (draft) {
      prompt.value = draft.prompt || "";
      if (models.some((m) => m.id === draft.model)) { model.value = draft.model; fillSizes(); adapters.setModel(model.value); }
      if (SIZES.includes(draft.size)) size.value = draft.size;
      if (draft.style) style.value = draft.style;
      if (draft.negative_prompt) negative.value = draft.negative_prompt;
      if (Array.isArray(draft.loras)) draft.loras.slice(0, MAX_LORAS).forEach((l) => adapters.add(l.path, l.scale));
    }

    const form = h("form", { class: "panel form", id: "generate-form", onsubmit: (e) => { e.preventDefault(); generate(); } },
      field("Prompt", prompt),
      field("Model", model),
      h("div", { class: "row" }, field("Size", size), field("Style", style)),
      field("Images", count),
      adapters.element,
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
      const chosen = adapters.value();
      if (chosen.length) input.loras = chosen;
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
        job.loras?.length ? h("div", { class: "result-loras", id: "result-loras" },
          h("span", { class: "field-label" }, "LoRA adapters"), adaptersList(job.loras)) : null,
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

// The LoRA section: rows of (adapter, scale). An adapter is one of the workspace's, those made for the chosen model's
// family listed first (the API judges the fit at submit, and its 400 says why one does not), or a typed Hub repo /
// https URL. A model that takes no adapters disables the section, and nothing of it is sent.
function loraPicker(loras, models, listError) {
  const rows = h("div", { class: "lora-rows", id: "lora-rows" });
  const help = h("span", { class: "field-help" });
  const addButton = button("Add LoRA", { kind: "ghost", iconName: "plus", id: "add-lora", onclick: () => add() });
  const fieldset = h("fieldset", { class: "field lora-field", id: "loras" },
    h("legend", { class: "field-label" }, "LoRA adapters"), rows, h("div", { class: "lora-foot" }, addButton, help));
  let spec = null;

  function options(select) {
    const family = spec?.family;
    const fits = loras.filter((l) => (l.families || []).includes(family));
    const others = loras.filter((l) => !fits.includes(l));
    const option = (l) => h("option", { value: l.id, title: (l.families || []).join(", ") },
      `${l.name} · ${(l.families || []).join(", ") || "?"}`);
    const chosen = select.value;
    fill(select,
      fits.length ? h("optgroup", { label: `Made for ${spec?.name || "this model"}` }, fits.map(option)) : null,
      others.length ? h("optgroup", { label: fits.length ? "Other base families" : "This workspace's LoRAs" }, others.map(option)) : null,
      h("option", { value: CUSTOM }, "Hub repo or URL…"));
    if (chosen && [...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  function add(path, scale) {
    if (rows.children.length >= MAX_LORAS) return;
    const select = h("select", { name: "lora", class: "lora-pick", "aria-label": "LoRA" });
    const custom = h("input", { name: "lora_path", class: "lora-path", maxlength: 2048, spellcheck: "false",
      "aria-label": "Hub repo or URL", placeholder: "owner/name or https://…/lora.safetensors" });
    const weight = h("input", { name: "lora_scale", class: "lora-scale", type: "number", min: SCALE.min, max: SCALE.max,
      step: SCALE.step, required: true, value: String(scale ?? SCALE.default), "aria-label": "Scale", title: "Scale, -4 to 4" });
    const row = h("div", { class: "lora-row" }, select, custom, weight,
      h("button", { class: "icon-btn", type: "button", title: "Remove", "aria-label": "Remove this LoRA",
        onclick: () => { row.remove(); update(); } }, icon("x", 16)));
    options(select);
    if (path) {
      if (loras.some((l) => l.id === path)) select.value = path;
      else { select.value = CUSTOM; custom.value = path; }
    } else if (!loras.length) {
      select.value = CUSTOM;
    }
    const showCustom = () => { custom.hidden = select.value !== CUSTOM; custom.required = !custom.hidden; };
    select.addEventListener("change", showCustom);
    showCustom();
    rows.append(row);
    update();
    if (!path) (custom.hidden ? select : custom).focus();
  }

  function update() {
    const takes = spec?.capabilities?.lora !== false;
    fieldset.disabled = !takes;
    addButton.disabled = !takes || rows.children.length >= MAX_LORAS;
    help.textContent = !takes ? `${spec?.name || "This model"} takes no LoRA adapters.`
      : rows.children.length ? `Up to ${MAX_LORAS}; scale ${SCALE.min} to ${SCALE.max}, 1 is the adapter as trained.`
        : listError ? `Could not list this workspace's LoRAs (${listError.message}); a Hub repo or URL still works.`
          : loras.length ? `Optional: apply up to ${MAX_LORAS} of this workspace's LoRAs (see LoRAs), or one from the Hub.`
            : "Optional: name a Hub repo or URL, or add LoRAs to this workspace on the LoRAs page.";
  }

  return {
    element: fieldset,
    add,
    setModel(id) {
      spec = models.find((m) => m.id === id) || null;
      rows.querySelectorAll("select.lora-pick").forEach(options);
      update();
    },
    value() {
      if (fieldset.disabled) return [];
      return [...rows.children].map((row) => {
        const pick = row.querySelector(".lora-pick").value;
        const path = pick === CUSTOM ? row.querySelector(".lora-path").value.trim() : pick;
        return { path, scale: Number(row.querySelector(".lora-scale").value) };
      }).filter((l) => l.path);
    },
  };
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
