// fal's official JavaScript client (@fal-ai/client) against Darkroom through its proxyUrl: every call goes to
// <darkroom>/fal/proxy with x-fal-target-url naming the fal URL it meant, and `Authorization: Key <key>`.
// Outside a browser the proxy applies only with `when: "always"` (the client's own gate). Prints one JSON object
// for tests/e2e/test_fal_clients.py.
import { createFalClient, ApiError, ValidationError } from "@fal-ai/client";

const fal = createFalClient({
  credentials: process.env.DARKROOM_API_KEY,
  proxyUrl: { url: `${process.env.DARKROOM_URL}/fal/proxy`, when: "always" },
});
const ENDPOINT = "fal-ai/flux/schnell";
const input = { prompt: "a lighthouse at dusk", image_size: { width: 256, height: 256 }, num_images: 2, seed: 7 };
const out = {};

// subscribe: submit, poll the status (with logs) until COMPLETED, then the result.
const updates = [];
const subscribed = await fal.subscribe(ENDPOINT, {
  input, logs: true, pollInterval: 200,
  onQueueUpdate: (update) => updates.push({ status: update.status, logs: (update.logs ?? []).length }),
});
out.subscribe = {
  requestId: subscribed.requestId, statuses: updates.map((u) => u.status),
  logs: Math.max(0, ...updates.map((u) => u.logs)),
  images: subscribed.data.images.map((i) => ({ width: i.width, height: i.height, type: i.content_type, url: i.url })),
  seed: subscribed.data.seed, nsfw: subscribed.data.has_nsfw_concepts, timings: subscribed.data.timings,
};

// queue.submit, status, the status stream, result.
const submitted = await fal.queue.submit(ENDPOINT, { input: { ...input, num_images: 1, output_format: "png" } });
const first = await fal.queue.status(ENDPOINT, { requestId: submitted.request_id, logs: true });
const done = await fal.queue.subscribeToStatus(ENDPOINT, { requestId: submitted.request_id, mode: "streaming",
                                                            logs: true });
const result = await fal.queue.result(ENDPOINT, { requestId: submitted.request_id });
out.queue = {
  submitted: { request_id: submitted.request_id, status_url: submitted.status_url, status: submitted.status },
  first: first.status, streamed: done.status, resultId: result.requestId,
  image: { type: result.data.images[0].content_type, width: result.data.images[0].width },
};

// cancel, right after the submit: the request has not finished.
const doomed = await fal.queue.submit("fal-ai/wan/v2.2-5b/text-to-video", { input: { prompt: "waves", duration: 2 } });
await fal.queue.cancel("fal-ai/wan/v2.2-5b/text-to-video", { requestId: doomed.request_id });
const canceled = await fal.queue.status("fal-ai/wan/v2.2-5b/text-to-video", { requestId: doomed.request_id });
out.cancel = { requestId: doomed.request_id, status: canceled.status, error_type: canceled.error_type };

// run: fal's run host, the result itself.
const ran = await fal.run(ENDPOINT, { input: { prompt: "a fox", image_size: "square", sync_mode: true } });
out.run = { requestId: ran.requestId, url: ran.data.images[0].url.slice(0, 23), width: ran.data.images[0].width };

// Invalid input: fal's ValidationError, with the field at fault.
try {
  await fal.queue.submit(ENDPOINT, { input: { prompt: "x", num_images: 0 } });
  out.error = null;
} catch (error) {
  out.error = { validation: error instanceof ValidationError, status: error.status,
                fields: error.fieldErrors.map((e) => e.loc) };
}
// An endpoint no model answers: fal's 404.
try {
  await fal.queue.submit("fal-ai/recraft/v3", { input: { prompt: "x" } });
  out.missing = null;
} catch (error) {
  out.missing = { api: error instanceof ApiError, status: error.status };
}
console.log(JSON.stringify(out));
