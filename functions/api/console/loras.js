// LoRAs: the workspace's adapters. GET /api/loras (with the workspace's usage and limits), POST /api/loras (a
// .safetensors file as multipart/form-data, or JSON naming an https URL or a Hugging Face Hub file),
// DELETE /api/loras/{id}. Also what the playground and the gallery use to list and show adapters.

import { api } from "./api.js";
import { button, confirmDialog, emptyState, errorBox, field, fill, formatBytes, formatDate, formatNumber, h,
         loading, pageHeader, toast } from "./ui.js";

// A file through the API itself rides in the request (the API takes up to 4 MiB this way); larger ones go
// through POST /api/uploads (purpose lora), which the console does not do.
export const MAX_FORM_BYTES = 4 * 1024 * 1024;
export const MAX_LORAS = 4;  // per generation (input.loras)
export const SCALE = { min: -4, max: 4, step: 0.05, default: 1 };

const SOURCES = { upload: "Upload", url: "URL", hub: "Hub" };

export function listLoras() {
  return api("/api/loras");
}

// The adapters a finished generation ran (its `loras`: path, id, name, scale, sha256 of the file).
export function adaptersList(loras) {
  if (!Array.isArray(loras) || !loras.length) return null;
  return h("ul", { class: "adapters" }, loras.map((lora) => h("li", { class: "adapter", "data-lora-id": lora.id || false },
    h("span", { class: "adapter-name", title: lora.path || "" }, lora.name || lora.path || "LoRA"),
    h("span", { class: "adapter-scale", title: "Scale" }, `× ${formatNumber(Number(lora.scale))}`),
    lora.sha256 ? h("code", { class: "adapter-sha", title: `sha256 ${lora.sha256}` }, String(lora.sha256).slice(0, 12))
      : null)));
}

function where(lora) {
  if (lora.source === "hub") {
    return [lora.hf_repo, lora.weight_name, lora.revision ? `@${lora.revision}` : null].filter(Boolean).join(" · ");
  }
  return lora.source === "url" ? lora.url || "" : "";
}

export function render(root) {
  let stopped = false;
  const usage = h("p", { class: "muted small lora-usage", id: "lora-usage" });
  const list = h("section", { class: "panel", id: "lora-list" }, loading("Loading LoRAs…"));

  // ---- upload a file
  const file = h("input", { type: "file", name: "file", id: "lora-file", accept: ".safetensors", required: true });
  const fileName = h("input", { name: "name", id: "lora-name", maxlength: 100, placeholder: "from the file name" });
  const uploadStatus = h("div");
  const upload = button("Upload", { kind: "primary", type: "submit", iconName: "upload", id: "upload-lora" });
  const uploadForm = h("form", { class: "panel form", id: "lora-upload-form", onsubmit: async (e) => {
    e.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) { file.focus(); return; }
    if (chosen.size > MAX_FORM_BYTES) {
      fill(uploadStatus, errorBox({ message: `${chosen.name} is ${formatBytes(chosen.size)}: a file sent here may be at ` +
        `most ${formatBytes(MAX_FORM_BYTES)}. Add a larger one by URL or from the Hub, or upload it with ` +
        "POST /api/uploads (purpose lora) and register the reference." }, "The file is too large"));
      return;
    }
    const form = new FormData();
    form.append("file", chosen, chosen.name);
    if (fileName.value.trim()) form.append("name", fileName.value.trim());
    await register(form, upload, uploadStatus, () => { uploadForm.reset(); });
  } },
    h("h2", {}, "Upload a file"),
    h("div", { class: "row" }, field("File", file, `A .safetensors LoRA, up to ${formatBytes(MAX_FORM_BYTES)}.`),
      field("Name", fileName)),
    h("div", { class: "form-actions" }, upload), uploadStatus);

  // ---- add by URL or from the Hugging Face Hub
  const source = h("input", { name: "source", id: "lora-source", required: true, maxlength: 2048, spellcheck: "false",
    placeholder: "owner/name or https://…/lora.safetensors" });
  const weightName = h("input", { name: "weight_name", id: "lora-weight-name", maxlength: 255, spellcheck: "false",
    placeholder: "pytorch_lora_weights.safetensors" });
  const revision = h("input", { name: "revision", id: "lora-revision", maxlength: 100, spellcheck: "false",
    placeholder: "main" });
  const linkName = h("input", { name: "name", id: "lora-link-name", maxlength: 100, placeholder: "from the file name" });
  const linkStatus = h("div");
  const add = button("Add", { kind: "primary", type: "submit", iconName: "plus", id: "add-lora-link" });
  const hubOnly = h("div", { class: "row" }, field("File in the repo", weightName), field("Revision", revision));
  const isUrl = () => /^[a-z][a-z0-9+.-]*:\/\//i.test(source.value.trim());
  source.addEventListener("input", () => { hubOnly.hidden = isUrl(); });
  const linkForm = h("form", { class: "panel form", id: "lora-link-form", onsubmit: async (e) => {
    e.preventDefault();
    const value = source.value.trim();
    if (!value) { source.focus(); return; }
    const body = isUrl() ? { url: value } : { hf_repo: value };
    if (!isUrl()) {
      if (weightName.value.trim()) body.weight_name = weightName.value.trim();
      if (revision.value.trim()) body.revision = revision.value.trim();
    }
    if (linkName.value.trim()) body.name = linkName.value.trim();
    await register(body, add, linkStatus, () => { linkForm.reset(); hubOnly.hidden = false; });
  } },
    h("h2", {}, "Add by URL or from the Hub"),
    h("div", { class: "row" }, field("URL or Hub repo", source, "An https URL of a .safetensors file, or owner/name."),
      field("Name", linkName)),
    hubOnly,
    h("div", { class: "form-actions" }, add), linkStatus);

  async function register(body, submit, status, done) {
    submit.disabled = true;
    fill(status, loading("Reading the file's header…"));
    try {
      const lora = await api("/api/loras", { method: "POST", body });
      fill(status);
      done();
      toast(`Added ${lora.name}`, "success");
      load();
    } catch (err) {
      fill(status, errorBox(err, "The LoRA was not added"));
    } finally {
      submit.disabled = false;
    }
  }

  async function load() {
    try {
      const { data, usage: used } = await listLoras();
      if (stopped) return;
      if (used) {
        fill(usage, `${formatNumber(used.count)} of ${formatNumber(used.max_count)} LoRAs · ` +
          `${formatBytes(used.bytes)} of ${formatBytes(used.max_bytes)}`);
      }
      data.sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
      fill(list, h("h2", {}, "LoRAs"), data.length ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Base families", "Rank", "Size", "Source", "Added", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, data.map(row)))) : emptyState("layers", "No LoRAs yet", "Upload a .safetensors file, or add one by URL or from the Hub."));
    } catch (err) {
      if (!stopped) fill(list, errorBox(err, "Could not load the LoRAs"));
    }
  }

  function row(lora) {
    const from = where(lora);
    return h("tr", { "data-lora-id": lora.id },
      h("td", { "data-label": "Name" }, h("div", { class: "lora-name" }, h("strong", {}, lora.name),
        h("code", { class: "muted small" }, lora.id))),
      h("td", { "data-label": "Families" }, h("div", { class: "chips" }, (lora.families || []).map((f) => h("span", { class: "chip" }, f)))),
      h("td", { "data-label": "Rank" }, String(lora.rank ?? "—")),
      h("td", { "data-label": "Size" }, formatBytes(lora.size)),
      h("td", { "data-label": "Source" }, h("span", { class: "lora-source" }, SOURCES[lora.source] || lora.source || "",
        from ? h("span", { class: "muted small", title: from }, from) : null)),
      h("td", { "data-label": "Added" }, formatDate(lora.created_at)),
      h("td", { class: "actions" },
        button("Delete", { kind: "danger-ghost", iconName: "trash", onclick: () => remove(lora) })));
  }

  async function remove(lora) {
    if (!(await confirmDialog(`Delete “${lora.name}”?`, "Generations that name its id are refused from now on; " +
      "finished ones keep their images.", "Delete LoRA"))) return;
    try {
      await api(`/api/loras/${encodeURIComponent(lora.id)}`, { method: "DELETE" });
      toast(`Deleted ${lora.name}`, "success");
      load();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  fill(root, pageHeader("LoRAs", "Adapters of this workspace, for the models that take them.",
    button("Refresh", { iconName: "refresh", onclick: load })), usage, list, h("div", { class: "lora-forms" }, uploadForm, linkForm));
  load();
  return () => { stopped = true; };
}
