// The console's shell: sign-in, navigation (hash routes) and the account every page can read.

import { api, ApiError, session } from "./api.js";
import { button, errorBox, h, icon, loading, fill } from "./ui.js";
import * as playground from "./playground.js";
import * as gallery from "./gallery.js";
import * as loras from "./loras.js";
import * as keys from "./keys.js";
import * as webhooks from "./webhooks.js";
import * as usage from "./usage.js";

const PAGES = [
  { path: "playground", label: "Playground", icon: "spark", page: playground },
  { path: "gallery", label: "Gallery", icon: "grid", page: gallery },
  { path: "loras", label: "LoRAs", icon: "layers", page: loras },
  { path: "keys", label: "API keys", icon: "key", page: keys },
  { path: "webhooks", label: "Webhooks", icon: "hook", page: webhooks },
  { path: "usage", label: "Usage", icon: "chart", page: usage },
];

const root = document.getElementById("app");
let account = null;
let cleanup = null;

function navigate(path) {
  if (location.hash === `#/${path}`) route();
  else location.hash = `#/${path}`;
}

function signOut() {
  session.key = null;
  account = null;
  location.hash = "";
  render();
}

function brand() {
  return h("a", { class: "brand", href: "#/playground" },
           h("img", { src: "/console/icon.svg", alt: "", width: 28, height: 28 }), h("span", {}, "Darkroom"));
}

function signInView(error) {
  const input = h("input", { type: "password", name: "key", id: "api-key", placeholder: "dr_…", autocomplete: "off",
                             spellcheck: "false", required: true, "aria-label": "API key" });
  const submit = button("Sign in", { kind: "primary", type: "submit" });
  const status = h("div", { class: "signin-status" }, error ? errorBox(error, "Could not sign in") : null);
  const form = h("form", { class: "signin-card", onsubmit: async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    submit.disabled = true;
    fill(status, loading("Checking the key…"));
    try {
      account = await api("/api/account", { key });
      session.key = key;
      if (!location.hash || location.hash === "#/") location.hash = "#/playground";
      render();
    } catch (err) {
      submit.disabled = false;
      fill(status, errorBox(err, "Could not sign in"));
      input.select();
    }
  } },
    brand(),
    h("h1", {}, "Sign in to the console"),
    h("p", { class: "muted" }, "Use an API key of this Darkroom. It is kept in this browser tab only, and sent to the API " +
      "as curl sends it."),
    h("label", { class: "field" }, h("span", { class: "field-label" }, "API key"), input),
    submit,
    status,
    h("details", { class: "signin-help" },
      h("summary", {}, "Where do I find a key?"),
      h("p", {}, "Locally, ", h("code", {}, "make dev"), " prints one and writes it to ",
        h("code", {}, ".darkroom/dev.env"), " as ", h("code", {}, "DARKROOM_API_KEY"), "."),
      h("p", {}, "Deployed, ", h("code", {}, "darkroom deploy"), " writes an admin key to ",
        h("code", {}, ".darkroom/deploy.env"), "; ", h("code", {}, "darkroom keys create"), " makes more.")));
  fill(root, h("main", { class: "signin" }, form));
  input.focus();
}

function shell(current) {
  const admin = account.key.scopes.includes("admin");
  const nav = h("nav", { class: "nav", "aria-label": "Console" },
    PAGES.map((p) => h("a", { href: `#/${p.path}`, class: p.path === current ? "active" : "",
                              "aria-current": p.path === current ? "page" : false },
                       icon(p.icon, 18), h("span", {}, p.label))));
  const who = h("div", { class: "who" },
    h("div", { class: "who-text" },
      h("span", { class: "who-workspace" }, account.workspace.name || account.workspace.id),
      h("span", { class: "who-key" }, account.key.id, admin ? h("span", { class: "badge" }, "admin") : null)),
    h("button", { class: "icon-btn", type: "button", title: "Sign out", "aria-label": "Sign out", onclick: signOut },
      icon("logout", 18)));
  const content = h("main", { class: "content", id: "content" });
  fill(root, h("div", { class: "shell" },
    h("aside", { class: "sidebar" }, brand(), nav, who), content));
  return content;
}

async function route() {
  if (!session.key) return signInView();
  const [path, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const entry = PAGES.find((p) => p.path === path) || PAGES[0];
  if (cleanup) { cleanup(); cleanup = null; }
  if (!account) {
    fill(root, h("main", { class: "signin" }, loading("Signing in…")));
    try {
      account = await api("/api/account");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) { session.key = null; return signInView(err); }
      fill(root, h("main", { class: "signin" }, h("div", { class: "signin-card" }, brand(),
        errorBox(err, "Could not load your account"), button("Try again", { kind: "primary", onclick: route }),
        button("Sign out", { kind: "ghost", onclick: signOut }))));
      return;
    }
  }
  const content = shell(entry.path);
  document.title = `${entry.label} · Darkroom`;
  cleanup = entry.page.render(content, { account, navigate, params: rest.map(decodeURIComponent), signOut }) || null;
}

function render() { route(); }

window.addEventListener("hashchange", route);
render();
