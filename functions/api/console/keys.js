// API keys: GET /api/keys, POST /api/keys (the secret is in that answer only), DELETE /api/keys/{key_id}.
// All three need the admin scope; other keys see why and what to do instead.

import { api } from "./api.js";
import { button, confirmDialog, copyButton, emptyState, errorBox, field, formatDate, h, loading, pageHeader,
         toast, fill } from "./ui.js";

const SCOPES = [
  ["image:generate", "Generate images"], ["video:generate", "Generate videos"],
  ["media:read", "Read generations"], ["media:write", "Webhooks and redelivery"], ["admin", "Admin: keys, workspaces"],
];
const DEFAULT_SCOPES = ["image:generate", "video:generate", "media:read", "media:write"];

export function render(root, { account }) {
  let stopped = false;
  const header = pageHeader("API keys", "Keys of this workspace. A secret is shown once, when the key is created.");
  if (!account.key.scopes.includes("admin")) {
    fill(root, header, h("section", { class: "panel" }, emptyState("lock", "This key cannot manage keys",
      "Listing, creating and revoking keys needs the admin scope. Sign in with an admin key, or ask an operator to run " +
      "`darkroom keys create`.")));
    return;
  }
  const list = h("section", { class: "panel", id: "key-list" }, loading("Loading keys…"));
  const reveal = h("div", { id: "new-key" });
  const name = h("input", { name: "name", id: "key-name", required: true, maxlength: 100, placeholder: "backend" });
  const rate = h("input", { name: "rate_limit", id: "key-rate", type: "number", min: 1, max: 100000, value: "60" });
  const scopes = h("div", { class: "scopes" }, SCOPES.map(([scope, label]) =>
    h("label", { class: "check scope" }, h("input", { type: "checkbox", name: "scope", value: scope,
      checked: DEFAULT_SCOPES.includes(scope) }), h("span", {}, h("code", {}, scope), h("small", { class: "muted" }, label)))));
  const status = h("div");
  const create = button("Create key", { kind: "primary", type: "submit", iconName: "plus", id: "create-key" });
  const form = h("form", { class: "panel form key-form", id: "key-form", onsubmit: async (e) => {
    e.preventDefault();
    create.disabled = true;
    fill(status);
    try {
      const key = await api("/api/keys", { method: "POST", body: {
        name: name.value.trim(), rate_limit: Number(rate.value),
        scopes: [...form.querySelectorAll("input[name=scope]:checked")].map((c) => c.value) } });
      name.value = "";
      fill(reveal, h("div", { class: "alert alert-success secret-reveal", role: "status" },
        h("div", {}, h("strong", {}, `Key “${key.name}” created. Copy it now: it is never shown again.`),
          h("div", { class: "secret" }, h("code", { id: "new-key-secret" }, key.key), copyButton(key.key, "Copy", "Key copied")))));
      load();
    } catch (err) {
      fill(status, errorBox(err, "The key was not created"));
    } finally {
      create.disabled = false;
    }
  } },
    h("h2", {}, "New key"),
    h("div", { class: "row" }, field("Name", name), field("Rate limit", rate, "Requests per minute.")),
    h("div", { class: "field" }, h("span", { class: "field-label" }, "Scopes"), scopes),
    h("div", { class: "form-actions" }, create), status);

  async function load() {
    try {
      const { data } = await api("/api/keys");
      if (stopped) return;
      data.sort((a, b) => (a.revoked_at ? 1 : 0) - (b.revoked_at ? 1 : 0) || b.created_at - a.created_at);
      fill(list, h("h2", {}, "Keys"), data.length ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Key", "Scopes", "Rate limit", "Created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, data.map(row)))) : emptyState("key", "No keys yet", "Create one above."));
    } catch (err) {
      if (!stopped) fill(list, errorBox(err, "Could not load the keys"));
    }
  }

  function row(key) {
    const self = key.key_id === account.key.id;
    return h("tr", { "data-key-id": key.key_id, class: key.revoked_at ? "revoked" : "" },
      h("td", { "data-label": "Name" }, h("strong", {}, key.name), self ? h("span", { class: "badge" }, "this key") : null),
      h("td", { "data-label": "Key" }, h("code", {}, `${key.prefix}…`)),
      h("td", { "data-label": "Scopes" }, h("div", { class: "chips" }, key.scopes.map((s) => h("span", { class: "chip" }, s)))),
      h("td", { "data-label": "Rate limit" }, `${key.rate_limit}/min`),
      h("td", { "data-label": "Created" }, formatDate(key.created_at)),
      h("td", { class: "actions" }, key.revoked_at
        ? h("span", { class: "pill pill-canceled" }, "Revoked")
        : button("Revoke", { kind: "danger-ghost", iconName: "trash", onclick: () => revoke(key, self) })));
  }

  async function revoke(key, self) {
    const text = self ? "This is the key you are signed in with: the console signs out when it stops working."
      : "Requests with it are refused from now on (warm API functions may accept it for up to 30 seconds).";
    if (!(await confirmDialog(`Revoke “${key.name}”?`, text, "Revoke key"))) return;
    try {
      await api(`/api/keys/${encodeURIComponent(key.key_id)}`, { method: "DELETE" });
      toast(`Revoked ${key.name}`, "success");
      load();
    } catch (err) {
      toast(err.message, "error");
    }
  }

  fill(root, header, reveal, list, form);
  load();
  return () => { stopped = true; };
}
