// The official OpenAI Node SDK against Darkroom, with only baseURL changed: generate, an edit of several images
// with a mask, and an error. Prints one JSON object for tests/e2e/test_js_clients.py.
import OpenAI, { toFile } from "openai";
import { readFileSync } from "node:fs";

const client = new OpenAI({ apiKey: process.env.DARKROOM_API_KEY, baseURL: `${process.env.DARKROOM_URL}/v1`,
                            maxRetries: 0, timeout: 120_000 });
const file = (path, name) => toFile(readFileSync(path), name, { type: "image/png" });
const out = {};

const generated = await client.images.generate({ model: "flux-schnell", prompt: "a lighthouse at dusk",
                                                 n: 2, size: "256x256" });
out.generate = { count: generated.data.length, b64: generated.data.map((d) => d.b64_json?.length ?? 0),
                 url: generated.data[0].url, model: generated.model, size: generated.size };

const edited = await client.images.edit({
  model: "gpt-image-1", prompt: "make them one picture", size: "256x256",
  image: [await file(process.env.IMAGE_A, "a.png"), await file(process.env.IMAGE_B, "b.png")],
  mask: await file(process.env.MASK, "mask.png"),
});
out.edit = { count: edited.data.length, b64: edited.data[0].b64_json?.length ?? 0, model: edited.model };

try {
  await client.images.generate({ model: "flux-schnell", prompt: "x", size: "100x100" });
  out.error = null;
} catch (error) {
  out.error = { status: error.status, param: error.param, code: error.code, type: error.constructor.name };
}
console.log(JSON.stringify(out));
