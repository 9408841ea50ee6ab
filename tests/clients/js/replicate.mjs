// replicate-javascript against Darkroom, with only baseUrl changed (it includes /v1): run, predictions.create with a
// webhook and an events filter, wait, cancel, files.create and a file as input, errors. Prints one JSON object for
// tests/e2e/test_replicate_clients.py.
import Replicate from "replicate";

const replicate = new Replicate({ auth: process.env.DARKROOM_API_KEY, baseUrl: `${process.env.DARKROOM_URL}/v1`,
                                  useFileOutput: false });
const small = { prompt: "a lighthouse at dusk", width: 256, height: 256, num_inference_steps: 2 };
const out = {};

out.run = await replicate.run("black-forest-labs/flux-schnell", { input: { ...small, num_outputs: 2 } });

const created = await replicate.predictions.create({
  model: "black-forest-labs/flux-schnell", input: small,
  webhook: process.env.WEBHOOK_URL, webhook_events_filter: ["completed"],
});
out.created = { status: created.status };
const waited = await replicate.wait(created, { interval: 200 });
out.waited = { status: waited.status, output: waited.output };

const png = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAEAAAABACAIAAAAlC+aJAAAAYklEQVR4nO3PMQ0AIADAMEAN/lUgCxEcDcmqYJtn7/GzpQNeNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaA1oDWgNaBdCH8BmPRLpIsAAAAASUVORK5CYII=",
  "base64");
const file = await replicate.files.create(new File([png], "photo.png", { type: "image/png" }), { purpose: "test" });
out.file = { name: file.name, id: file.id, metadata: file.metadata };
const fromFile = await replicate.run("black-forest-labs/flux-schnell", { input: { ...small, image: file.urls.get } });
out.fileRun = fromFile.length;

const slow = await replicate.predictions.create({ model: "darkroom/ltx-video",
                                                  input: { prompt: "waves", num_inference_steps: 40 } });
out.canceled = (await replicate.predictions.cancel(slow.id)).status;

try {
  await replicate.run("acme/nothing", { input: small });
  out.error = null;
} catch (error) {
  out.error = { status: error.response?.status, name: error.name };
}
try {
  await replicate.run("black-forest-labs/flux-schnell", { input: { ...small, num_outputs: 99 } });
  out.invalid = null;
} catch (error) {
  out.invalid = error.response?.status;
}
out.secret = (await replicate.webhooks.default.secret.get()).key;
console.log(JSON.stringify(out));
