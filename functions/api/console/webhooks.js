// Webhooks: the workspace's signing secret (reveal, copy, rotate with a grace period) and each job's
// delivery log with redelivery (GET /api/generations/{id}/deliveries, POST …/deliveries/redeliver).

import { api } from "./api.js";
import { button, confirmDialog, copyButton, emptyState, errorBox, formatDate, h, icon, loading, pageHeader,
         statusPill, timeAgo, toast, fill } from "./ui.js";

const GRACE = [[0, "No grace: the old secret stops now"], [3600, "1 hour"], [86400, "24 hours"], [604800, "7 days"]];

export function render(root, { navigate, params }) {
  let stopped = false;
  const secretPanel = h("section", { class: "panel", id: "webhook-secret" }, loading("Loading the secret…"));
  const jobs = h("div", { class: "job-list", id: "delivery-jobs" }, loading());
  const log = h("div", { class: "delivery-log", id: "delivery-log" });
  let selected = params[0] || null;

  async function loadSecret(rotated) {
    try {
      const data = await (rotated || api("/api/webhooks/secret"));
      if (stopped) return;
      let shown = false;
      const value = h("code", { class: "secret-value", id: "secret-value" });
      const draw = () => { value.textContent = shown ? data.secret : `${data.secret.slice(0, 6)}${"•".repeat(24)}`; };
      draw();
      const grace = h("select", { id: "grace", "aria-label": "Grace period" },
        GRACE.map(([s, label]) => h("option", { value: s, selected: s === 86400 }, label)));
      fill(secretPanel, 
        h("h2", {}, "Signing secret"),
        h("p", { class: "muted" }, "Verify each delivery's webhook-signature with it (Standard Webhooks)."),
        h("div", { class: "secret" }, value,
          button(shown ? "Hide" : "Reveal", { kind: "ghost", iconName: "eye", id: "reveal-secret", onclick: (e) => {
            shown = !shown; draw(); e.currentTarget.querySelector("span").textContent = shown ? "Hide" : "Reveal"; } }),
          copyButton(data.secret, "Copy", "Secret copied")),
        data.previous.length ? h("div", { class: "previous" }, h("span", { class: "muted small" }, "Still signing until it expires:"),
          data.previous.map((p) => h("div", { class: "muted small" }, h("code", {}, `${p.secret.slice(0, 10)}…`),
            ` until ${formatDate(p.expires_at)}`))) : null,
        h("div", { class: "rotate" }, h("label", { class: "field inline" }, h("span", { class: "field-label" }, "Old secret keeps signing for"), grace),
          button("Rotate secret", { kind: "secondary", iconName: "refresh", id: "rotate-secret", onclick: async () => {
            const seconds = Number(grace.value);
            if (!(await confirmDialog("Rotate the signing secret?",
              seconds ? "Deliveries carry both signatures during the grace period: update your receivers before it ends."
                      : "Receivers that only know the old secret will reject deliveries from now on.", "Rotate"))) return;
            try {
              await loadSecret(api("/api/webhooks/secret/rotate", { method: "POST", body: { grace_seconds: seconds } }));
              toast("Secret rotated", "success");
            } catch (err) { toast(err.message, "error"); }
          } })));
    } catch (err) {
      if (!stopped) fill(secretPanel, h("h2", {}, "Signing secret"), errorBox(err, "Could not load the secret"));
      if (rotated) throw err;
    }
  }

  async function loadJobs() {
    try {
      const { data } = await api("/api/generations?limit=30");
      if (stopped) return;
      if (!data.length) {
        fill(jobs, emptyState("hook", "No generations yet",
          "Submit one with \"webhook\": \"https://…\" (the Playground's Advanced options have the field)."));
        return;
      }
      fill(jobs, ...data.map((job) => h("button", {
        type: "button", class: `job-item ${job.id === selected ? "active" : ""}`, "data-id": job.id,
        onclick: () => { selected = job.id; history.replaceState(null, "", `#/webhooks/${job.id}`); markActive(); loadLog(); },
      }, h("span", { class: "job-prompt" }, job.payload?.prompt || job.id),
        h("span", { class: "job-foot" }, statusPill(job.status, job.error), h("span", { class: "muted small" }, timeAgo(job.createdAt))))));
      if (!selected) { selected = data[0].id; markActive(); loadLog(); }
    } catch (err) {
      if (!stopped) fill(jobs, errorBox(err, "Could not load generations"));
    }
  }

  function markActive() {
    jobs.querySelectorAll(".job-item").forEach((el) => el.classList.toggle("active", el.dataset.id === selected));
  }

  async function loadLog() {
    const id = selected;
    fill(log, loading("Loading deliveries…"));
    try {
      const data = await api(`/api/generations/${encodeURIComponent(id)}/deliveries`);
      if (stopped || id !== selected) return;
      const head = h("div", { class: "log-head" },
        h("div", {}, h("h2", {}, "Deliveries"), h("code", { class: "muted small" }, id)),
        data.webhook ? button("Redeliver", { kind: "primary", iconName: "send", id: "redeliver", onclick: redeliver }) : null);
      if (!data.webhook) {
        fill(log, head, emptyState("hook", "No webhook on this generation",
          "Add \"webhook\": \"https://your-server.com/hook\" to a submit, or fill Webhook URL in the Playground's Advanced options.",
          button("Open the Playground", { onclick: () => navigate("playground") })));
        return;
      }
      const rows = [...data.data].reverse();
      fill(log, head,
        h("p", { class: "muted small target" }, icon("send", 14), h("span", {}, data.webhook),
          data.disabled ? h("span", { class: "pill pill-error" }, "Disabled by a 410") : null),
        rows.length ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
          h("thead", {}, h("tr", {}, ["When", "Event", "Attempt", "Result", "Time", "Next attempt"].map((t) => h("th", {}, t)))),
          h("tbody", {}, rows.map((d) => h("tr", {},
            h("td", { "data-label": "When" }, formatDate(d.at)),
            h("td", { "data-label": "Event" }, h("code", {}, d.event)),
            h("td", { "data-label": "Attempt" }, String(d.attempt)),
            h("td", { "data-label": "Result" }, h("span", { class: `pill pill-${d.outcome === "delivered" ? "success" : d.outcome === "retrying" ? "pending" : "error"}` },
              d.status_code ? `${d.status_code} ${d.outcome}` : d.outcome), d.error ? h("div", { class: "muted small" }, d.error) : null),
            h("td", { "data-label": "Time" }, `${d.duration_ms} ms`),
            h("td", { "data-label": "Next attempt" }, d.next_attempt_at ? formatDate(d.next_attempt_at) : "—"))))))
          : emptyState("send", "No attempts yet", "The first delivery is made when the generation finishes."));
    } catch (err) {
      if (!stopped) fill(log, errorBox(err, "Could not load the deliveries"));
    }
  }

  // The queue delivers in the background: reload the log until the new attempt shows (or give up quietly).
  async function watch(id, rows, tries) {
    await new Promise((r) => setTimeout(r, 1000));
    if (stopped || id !== selected || tries <= 0) return;
    const { data } = await api(`/api/generations/${encodeURIComponent(id)}/deliveries`).catch(() => ({ data: [] }));
    if (data.length > rows) loadLog();
    else watch(id, rows, tries - 1);
  }

  async function redeliver() {
    try {
      const queued = await api(`/api/generations/${encodeURIComponent(selected)}/deliveries/redeliver`, { method: "POST" });
      toast(`Event ${queued.event_id} queued for delivery`, "success");
      watch(selected, log.querySelectorAll("tbody tr").length, 30);
    } catch (err) {
      log.prepend(errorBox(err, "Not redelivered"));
    }
  }

  fill(root, pageHeader("Webhooks", "The signing secret, and every delivery attempt of each generation."),
    secretPanel, h("section", { class: "panel split" }, jobs, log));
  loadSecret();
  loadJobs();
  if (selected) loadLog();
  return () => { stopped = true; };
}
