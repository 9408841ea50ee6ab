// The public API, called exactly as curl calls it: the key in Authorization, JSON in and out (a file upload
// goes as multipart/form-data).
// Errors keep the API's own message (native shape {message, errors: [{field, message, code}]}).

const KEY = "darkroom.apiKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
};

export class ApiError extends Error {
  constructor(status, message, fields = []) {
    super(message);
    this.status = status;
    this.fields = fields;
  }
}

function messageOf(data) {
  if (!data || typeof data !== "object") return "";
  if (typeof data.message === "string") return data.message;
  if (typeof data.error === "string") return data.error;
  return data.error?.message || "";
}

// A FormData body goes as multipart/form-data (the browser writes the boundary); anything else as JSON.
export async function api(path, { method = "GET", body, key = session.key, signal } = {}) {
  const headers = { Authorization: key || "" };
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, signal,
                                   body: body === undefined ? undefined : form ? body : JSON.stringify(body) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "Could not reach the API. Check that the server is running, then try again.");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    throw new ApiError(response.status, messageOf(data) || `The API answered HTTP ${response.status}`,
                       Array.isArray(data?.errors) ? data.errors : []);
  }
  return data;
}

// What to do about an error, by status: the API's message says what went wrong, this says what to try.
export function hintFor(err) {
  switch (err.status) {
    case 0: return "";
    case 401: return "Sign in again with a valid key: locally it is DARKROOM_API_KEY in .darkroom/dev.env; " +
                     "deployed, create one with `darkroom keys create`.";
    case 402: return "Add credits to this workspace (`darkroom workspaces add-credits`), or choose a cheaper model.";
    case 403: return "Sign in with a key that has this scope (an admin key can do everything).";
    case 404: return "It may belong to another workspace, or the ID is mistyped.";
    case 409: return "Reload to see its current state.";
    case 429: return "You hit this key's rate limit. Wait a few seconds and try again.";
    default: return err.status >= 500 ? "This is on the server's side: try again shortly; the logs say more." : "";
  }
}
