// Usage and credits: GET /api/account, generation counts per status (GET /api/generations totals), and
// the operator's view (GET /api/admin/workspaces/{id}/usage) when the key has the admin scope.

import { api } from "./api.js";
import { errorBox, formatNumber, h, loading, pageHeader, fill } from "./ui.js";

const STATUSES = [["success", "Done"], ["processing", "Running"], ["pending", "Queued"], ["error", "Failed"],
                  ["canceled", "Canceled"]];

function stat(label, value, note, id) {
  return h("div", { class: "stat", id }, h("span", { class: "stat-label" }, label),
           h("span", { class: "stat-value" }, value), note ? h("span", { class: "muted small" }, note) : null);
}

export function render(root, { account }) {
  let stopped = false;
  const admin = account.key.scopes.includes("admin");
  const body = h("div", { class: "usage" }, loading("Loading usage…"));
  fill(root, pageHeader("Usage", `Credits and generations of ${account.workspace.name || account.workspace.id}.`), body);

  (async () => {
    try {
      const [fresh, ...counts] = await Promise.all([api("/api/account"),
        ...STATUSES.map(([s]) => api(`/api/generations?limit=1&status=${s}`).then((p) => p.pagination.total))]);
      const operator = admin ? await api(`/api/admin/workspaces/${encodeURIComponent(fresh.workspace.id)}/usage`)
        .catch((err) => err) : null;
      if (stopped) return;
      const total = counts.reduce((a, b) => a + b, 0);
      fill(body, 
        h("div", { class: "stats" },
          stat("Credits left", formatNumber(fresh.credits), fresh.plan, "credits-left"),
          stat("Used", formatNumber(fresh.usage.creditsUsed), "by generations that finished"),
          stat("Refunded", formatNumber(fresh.usage.creditsRefunded), "failed or canceled jobs"),
          stat("Added", formatNumber(fresh.usage.creditsAdded), "top-ups by an operator")),
        h("section", { class: "panel" }, h("h2", {}, "Generations"),
          h("div", { class: "bars" }, STATUSES.map(([s, label], i) => {
            const bar = h("div", { class: `hbar-fill pill-${s}` });
            bar.style.width = total ? `${Math.max(2, Math.round((100 * counts[i]) / total))}%` : "0";
            return h("div", { class: "hbar" }, h("span", { class: "hbar-label" }, label),
              h("div", { class: "hbar-track" }, bar), h("span", { class: "hbar-value" }, formatNumber(counts[i])));
          }))),
        h("section", { class: "panel" }, h("h2", {}, "This key"),
          h("dl", { class: "facts" },
            h("dt", {}, "Key"), h("dd", {}, h("code", {}, fresh.key.id)),
            h("dt", {}, "Scopes"), h("dd", {}, h("div", { class: "chips" }, fresh.key.scopes.map((s) => h("span", { class: "chip" }, s)))),
            h("dt", {}, "Rate limit"), h("dd", {}, `${formatNumber(fresh.key.rateLimit)} requests per minute`),
            h("dt", {}, "Workspace"), h("dd", {}, h("code", {}, fresh.workspace.id)))),
        operator ? h("section", { class: "panel", id: "operator-usage" }, h("h2", {}, "Operator view"),
          operator instanceof Error ? errorBox(operator, "Could not load the admin usage")
            : h("dl", { class: "facts" }, Object.entries(operator).map(([k, v]) =>
              [h("dt", {}, k.replaceAll("_", " ")), h("dd", {}, typeof v === "number" ? formatNumber(v) : h("code", {}, v))]))) : null);
    } catch (err) {
      if (!stopped) fill(body, errorBox(err, "Could not load usage"));
    }
  })();
  return () => { stopped = true; };
}
